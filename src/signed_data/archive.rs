//! CAdES B-LTA (ETSI EN 319 122-1 V1.3.1 §5.5): the archive-time-stamp-v3
//! unsigned attribute. Its time-stamp token stamps the hash of the signed
//! data, the SignerInfo's signed fields and an ats-hash-index-v3 (§5.5.2)
//! that names, by hash, every certificate, CRL and unsigned attribute value
//! of the signature as it is when the time-stamp is asked for. The index
//! rides in the token's own SignerInfo as an unsigned attribute, added after
//! the TSA signed, so the token's signature stays valid.
//!
//! ```text
//! SignedData + SignerInfo + content digest
//!     └─ ArchiveTimeStamp::prepare ─► index (§5.5.2), imprint (§5.5.3) ─► TSA
//!                                                                          │
//!  SignerInfo.unsignedAttrs += archive-time-stamp-v3 {                     │
//!      token + ats-hash-index-v3 in its SignerInfo } ◄── attach ◄──────────┘
//! ```

use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerInfo, SignerInfos};
use const_oid::db::rfc6268;
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, AnyRef, Decode, Encode, Sequence, Tag, TagNumber, Tagged};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;

use super::{add_unsigned_attribute, attribute, content_info, encoding, octets, CadesSignedData};
use crate::Error;

/// §5.5.3 / Annex D id-aa-ets-archiveTimestampV3.
pub const AA_ETS_ARCHIVE_TIMESTAMP_V3: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("0.4.0.1733.2.4");

/// §5.5.2 / Annex D id-aa-ATSHashIndex-v3 { etsi(0) cades(19122)
/// attributes(1) 5 }. (0.4.0.1733.2.5 is TS 101 733's ats-hash-index, whose
/// unsignedAttrsHashIndex hashed whole attributes: not this one.)
pub const AA_ATS_HASH_INDEX_V3: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.19122.1.5");

/// §5.5.2 / Annex D `ATSHashIndexV3`. V1.3.1 gives hashIndAlgorithm no
/// DEFAULT (TS 101 733's ATSHashIndex had `DEFAULT {id-sha256}`), so it is
/// always encoded; EU DSS writes it for v3 too, and puts it back when it
/// recomputes the imprint of an index that left it out.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
struct AtsHashIndexV3 {
    hash_ind_algorithm: AlgorithmIdentifierOwned,
    certificates_hash_index: Vec<OctetString>,
    crls_hash_index: Vec<OctetString>,
    unsigned_attr_values_hash_index: Vec<OctetString>,
}

/// An archive time-stamp about to be asked for: the index it will carry and
/// the SHA-256 message imprint (of the TSTInfo) it needs.
#[derive(Clone, Debug)]
pub struct ArchiveTimeStamp {
    index: AtsHashIndexV3,
    imprint: [u8; 32],
}

impl ArchiveTimeStamp {
    /// Index and imprint for `signer_info` in `signed_data` (whose
    /// certificates and crls are final), over content whose SHA-256 is
    /// `content_digest` — the message-digest attribute's value, so that
    /// hash-only requests work too (§5.5.3 2), NOTE 1). SHA-256 throughout:
    /// the index, the imprint and step 2) share one algorithm.
    pub fn prepare(
        signed_data: &CadesSignedData,
        signer_info: &SignerInfo,
        content_digest: &[u8; 32],
    ) -> Result<Self, Error> {
        let index = hash_index(signed_data, signer_info)?;
        // §5.5.3: the concatenation, in this order, of 1) eContentType,
        // 2) the signed data's hash, 3) the signed fields, 4) the index.
        let mut imprint = Sha256::new();
        imprint.update(
            signed_data
                .encap_content_info
                .econtent_type
                .to_der()
                .map_err(encoding)?,
        );
        imprint.update(content_digest);
        imprint.update(signed_fields(signer_info)?);
        imprint.update(index.to_der().map_err(encoding)?);
        Ok(Self {
            index,
            imprint: imprint.finalize().into(),
        })
    }

    /// The SHA-256 the time-stamp token's messageImprint must carry.
    pub fn imprint(&self) -> [u8; 32] {
        self.imprint
    }

    /// §5.5.3: `token` (over [`Self::imprint`]) with the single
    /// ats-hash-index-v3 in its SignerInfo's unsigned attributes, added to
    /// `signer_info` as an archive-time-stamp-v3 attribute.
    pub fn attach(self, signer_info: &mut SignerInfo, token: &[u8]) -> Result<(), Error> {
        // §5.5.2: exactly one AttributeValue, DER.
        let index = attribute(AA_ATS_HASH_INDEX_V3, &self.index)?;
        let token = with_unsigned_attribute(token, index)?;
        let value = Any::from_der(&token).map_err(encoding)?;
        let archive = Attribute {
            oid: AA_ETS_ARCHIVE_TIMESTAMP_V3,
            values: SetOfVec::try_from(vec![value]).map_err(encoding)?,
        };
        add_unsigned_attribute(signer_info, archive)
    }
}

/// §5.5.2: hashes of the entire encoding (tag, length, value) of each
/// CertificateChoices and RevocationInfoChoice of the SignedData, and of
/// attrType followed by each one AttributeValue of every unsigned attribute.
fn hash_index(
    signed_data: &CadesSignedData,
    signer_info: &SignerInfo,
) -> Result<AtsHashIndexV3, Error> {
    let hash = |parts: &[&[u8]]| {
        let mut hash = Sha256::new();
        parts.iter().for_each(|part| hash.update(part));
        octets(&hash.finalize())
    };
    let mut certificates = Vec::new();
    for certificate in signed_data.certificates.iter().flat_map(|c| c.iter()) {
        certificates.push(hash(&[&certificate.to_der().map_err(encoding)?])?);
    }
    let mut crls = Vec::new();
    for crl in signed_data.crls.iter().flat_map(|c| c.iter()) {
        crls.push(hash(&[&crl.to_der().map_err(encoding)?])?);
    }
    let mut values = Vec::new();
    for attribute in signer_info.unsigned_attrs.iter().flat_map(|a| a.iter()) {
        let attr_type = attribute.oid.to_der().map_err(encoding)?;
        for value in attribute.values.iter() {
            values.push(hash(&[&attr_type, &value.to_der().map_err(encoding)?])?);
        }
    }
    Ok(AtsHashIndexV3 {
        hash_ind_algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_256,
            parameters: None,
        },
        certificates_hash_index: certificates,
        crls_hash_index: crls,
        unsigned_attr_values_hash_index: values,
    })
}

/// §5.5.3 3): version, sid, digestAlgorithm, signedAttrs (with its [0]
/// IMPLICIT tag), signatureAlgorithm and signature, "in their binary encoded
/// form without any modification": the SignerInfo's own DER, every field
/// but [1] unsignedAttrs.
fn signed_fields(signer_info: &SignerInfo) -> Result<Vec<u8>, Error> {
    let der = signer_info.to_der().map_err(encoding)?;
    let unsigned = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N1,
    };
    let mut fields = Vec::with_capacity(der.len());
    for field in Vec::<AnyRef<'_>>::from_der(&der).map_err(encoding)? {
        if field.tag() != unsigned {
            field.encode_to_vec(&mut fields).map_err(encoding)?;
        }
    }
    Ok(fields)
}

/// `token`, a DER TimeStampToken with one SignerInfo, with `attribute`
/// added to that SignerInfo's unsigned attributes. Refuses a token that
/// decoding and encoding would change: its signature covers those bytes.
fn with_unsigned_attribute(token: &[u8], attribute: Attribute) -> Result<Vec<u8>, Error> {
    let malformed = || Error::internal("the TSA's token is not a DER SignedData with one signer");
    let info = ContentInfo::from_der(token).map_err(|e| malformed().with_source(e))?;
    if info.content_type != rfc6268::ID_SIGNED_DATA {
        return Err(malformed());
    }
    let mut signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| malformed().with_source(e))?;
    if content_info(signed.clone())? != token {
        return Err(malformed());
    }
    let mut signer_infos = signed.signer_infos.0.into_vec();
    let [signer_info] = signer_infos.as_mut_slice() else {
        return Err(malformed());
    };
    add_unsigned_attribute(signer_info, attribute)?;
    signed.signer_infos = SignerInfos(SetOfVec::try_from(signer_infos).map_err(encoding)?);
    content_info(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::cert::{CertificateChoices, OtherCertificateFormat};
    use cms::content_info::CmsVersion;
    use cms::revocation::{OtherRevocationInfoFormat, RevocationInfoChoice, RevocationInfoChoices};
    use cms::signed_data::{CertificateSet, EncapsulatedContentInfo, SignerIdentifier};
    use der::asn1::Int;
    use x509_cert::ext::pkix::SubjectKeyIdentifier;

    const SHA256: ObjectIdentifier = const_oid::db::rfc5912::ID_SHA_256;
    const ECDSA_SHA256: ObjectIdentifier = const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
    /// A private-arc attribute type, DER `06 03 2a 03 04` (1.2.3.4).
    const TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.3.4");

    fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid,
            parameters: None,
        }
    }

    fn integers(oid: ObjectIdentifier, values: &[u8]) -> Attribute {
        let values = values
            .iter()
            .map(|v| Any::encode_from(&Int::new(&[*v]).unwrap()).unwrap())
            .collect::<Vec<_>>();
        Attribute {
            oid,
            values: SetOfVec::try_from(values).unwrap(),
        }
    }

    fn signer_info(unsigned: Vec<Attribute>) -> SignerInfo {
        let signed = vec![
            integers(rfc6268::ID_CONTENT_TYPE, &[7]),
            integers(rfc6268::ID_MESSAGE_DIGEST, &[9]),
        ];
        SignerInfo {
            version: CmsVersion::V3,
            sid: SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
                OctetString::new([0x5a; 20]).unwrap(),
            )),
            digest_alg: algorithm(SHA256),
            signed_attrs: Some(SetOfVec::try_from(signed).unwrap()),
            signature_algorithm: algorithm(ECDSA_SHA256),
            signature: OctetString::new([0xee; 64]).unwrap(),
            unsigned_attrs: (!unsigned.is_empty()).then(|| SetOfVec::try_from(unsigned).unwrap()),
        }
    }

    fn signed_data(signer_info: SignerInfo, econtent: Option<Any>) -> SignedData {
        let certificate = CertificateChoices::Other(OtherCertificateFormat {
            other_cert_format: TYPE,
            other_cert: Any::encode_from(&Int::new(&[1]).unwrap()).unwrap(),
        });
        let crl = RevocationInfoChoice::Other(OtherRevocationInfoFormat {
            other_format: algorithm(TYPE),
            other: Any::encode_from(&Int::new(&[2]).unwrap()).unwrap(),
        });
        let econtent_type = match econtent {
            Some(_) => crate::signed_data::CT_TST_INFO,
            None => rfc6268::ID_DATA,
        };
        SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![algorithm(SHA256)]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type,
                econtent,
            },
            certificates: Some(CertificateSet(
                SetOfVec::try_from(vec![certificate]).unwrap(),
            )),
            crls: Some(RevocationInfoChoices(
                SetOfVec::try_from(vec![crl]).unwrap(),
            )),
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).unwrap()),
        }
    }

    /// `sd` as qsign's own CAdES SignedData (revocation choices encoded).
    fn cades(sd: SignedData) -> CadesSignedData {
        let crls = sd.crls.map(|c| {
            let encoded: Vec<Any> = c.0.iter().map(|r| Any::encode_from(r).unwrap()).collect();
            SetOfVec::try_from(encoded).unwrap()
        });
        let certificates = sd.certificates.map(|c| {
            let encoded: Vec<Any> = c.0.iter().map(|c| Any::encode_from(c).unwrap()).collect();
            SetOfVec::try_from(encoded).unwrap()
        });
        CadesSignedData {
            version: sd.version,
            digest_algorithms: sd.digest_algorithms,
            encap_content_info: sd.encap_content_info,
            certificates,
            crls,
            signer_infos: sd.signer_infos,
        }
    }

    /// §5.5.3 3) written out field by field: signedAttrs is the SET OF's
    /// DER under the [0] IMPLICIT constructed tag (0xa0).
    fn expected_signed_fields(signer_info: &SignerInfo) -> Vec<u8> {
        let mut signed_attrs = signer_info.signed_attrs.to_der().unwrap();
        assert_eq!(signed_attrs[0], 0x31);
        signed_attrs[0] = 0xa0;
        [
            signer_info.version.to_der().unwrap(),
            signer_info.sid.to_der().unwrap(),
            signer_info.digest_alg.to_der().unwrap(),
            signed_attrs,
            signer_info.signature_algorithm.to_der().unwrap(),
            signer_info.signature.to_der().unwrap(),
        ]
        .concat()
    }

    #[test]
    fn signed_fields_leave_out_only_the_unsigned_attributes() {
        let bare = signer_info(vec![]);
        let stamped = signer_info(vec![integers(TYPE, &[1])]);
        assert_eq!(signed_fields(&bare).unwrap(), expected_signed_fields(&bare));
        assert_eq!(
            signed_fields(&stamped).unwrap(),
            expected_signed_fields(&bare)
        );
        // The [0] sid (0x80) stays; only [1] (0xa1) goes.
        assert_eq!(signer_info(vec![]).sid.to_der().unwrap()[0], 0x80);
    }

    #[test]
    fn index_names_sha256_and_hashes_every_element_and_value() {
        // Two values of one attribute, one of another: three entries.
        let other = ObjectIdentifier::new_unwrap("1.2.3.5");
        let si = signer_info(vec![integers(TYPE, &[1, 2]), integers(other, &[3])]);
        let index = hash_index(&cades(signed_data(si.clone(), None)), &si).unwrap();
        let der = index.to_der().unwrap();
        // hashIndAlgorithm present: SEQUENCE { OID 2.16.840.1.101.3.4.2.1 }.
        let fields = Vec::<AnyRef<'_>>::from_der(&der).unwrap();
        assert_eq!(fields.len(), 4);
        assert_eq!(
            fields[0].to_der().unwrap(),
            hex::decode("300b0609608648016503040201").unwrap()
        );
        let sha = |bytes: &str| Sha256::digest(hex::decode(bytes).unwrap()).to_vec();
        let hashes = |v: &[OctetString]| {
            let mut v: Vec<Vec<u8>> = v.iter().map(|o| o.as_bytes().to_vec()).collect();
            v.sort();
            v
        };
        // OtherCertificateFormat under cms 0.2's [3] tag; [1] IMPLICIT
        // OtherRevocationInfoFormat: the whole choice, tag included.
        let certificate = signed_data(si.clone(), None).certificates.unwrap().0;
        let certificate = certificate.get(0).unwrap().to_der().unwrap();
        assert_eq!(certificate[0], 0xa3);
        assert_eq!(
            hashes(&index.certificates_hash_index),
            [Sha256::digest(&certificate).to_vec()]
        );
        assert_eq!(
            hashes(&index.crls_hash_index),
            [sha("a10a300506032a0304020102")]
        );
        let mut values = vec![
            sha("06032a0304020101"),
            sha("06032a0304020102"),
            sha("06032a0305020103"),
        ];
        values.sort();
        assert_eq!(hashes(&index.unsigned_attr_values_hash_index), values);
    }

    #[test]
    fn imprint_is_content_type_digest_signed_fields_and_index() {
        let si = signer_info(vec![integers(TYPE, &[1])]);
        let sd = cades(signed_data(si.clone(), None));
        let stamp = ArchiveTimeStamp::prepare(&sd, &si, &[0x11; 32]).unwrap();
        let expected = Sha256::digest(
            [
                hex::decode("06092a864886f70d010701").unwrap(), // id-data
                vec![0x11; 32],
                expected_signed_fields(&si),
                stamp.index.to_der().unwrap(),
            ]
            .concat(),
        );
        assert_eq!(stamp.imprint(), <[u8; 32]>::from(expected));
        // Another document, another imprint.
        let other = ArchiveTimeStamp::prepare(&sd, &si, &[0x12; 32]).unwrap();
        assert_ne!(other.imprint(), stamp.imprint());
    }

    #[test]
    fn attach_puts_the_index_in_the_token_and_the_token_in_the_signer() {
        let tst_info = Any::new(Tag::OctetString, [0x30, 0x00]).unwrap();
        let tsa_signer = signer_info(vec![]);
        let token = content_info(signed_data(tsa_signer.clone(), Some(tst_info))).unwrap();
        let mut signer = signer_info(vec![integers(TYPE, &[1])]);
        let stamp = ArchiveTimeStamp::prepare(
            &cades(signed_data(signer.clone(), None)),
            &signer,
            &[0x11; 32],
        )
        .unwrap();
        let index = stamp.index.to_der().unwrap();
        stamp.attach(&mut signer, &token).unwrap();

        let unsigned = signer.unsigned_attrs.unwrap();
        assert_eq!(unsigned.len(), 2, "the earlier attribute stays");
        let archive = unsigned
            .iter()
            .find(|a| a.oid == AA_ETS_ARCHIVE_TIMESTAMP_V3)
            .unwrap();
        assert_eq!(archive.values.len(), 1);
        let token = archive.values.get(0).unwrap().to_der().unwrap();
        let signed: SignedData = ContentInfo::from_der(&token)
            .unwrap()
            .content
            .decode_as()
            .unwrap();
        let stamped = signed.signer_infos.0.get(0).unwrap();
        // What the TSA signed is untouched; one index, one value.
        assert_eq!(
            signed_fields(stamped).unwrap(),
            expected_signed_fields(&tsa_signer)
        );
        let attributes = stamped.unsigned_attrs.as_ref().unwrap();
        assert_eq!(attributes.len(), 1);
        let attribute = attributes.get(0).unwrap();
        assert_eq!(attribute.oid, AA_ATS_HASH_INDEX_V3);
        assert_eq!(attribute.values.len(), 1);
        assert_eq!(attribute.values.get(0).unwrap().to_der().unwrap(), index);
    }

    #[test]
    fn attach_refuses_what_is_not_a_der_token() {
        let si = signer_info(vec![]);
        let stamp = ArchiveTimeStamp::prepare(&cades(signed_data(si.clone(), None)), &si, &[0; 32])
            .unwrap();
        let mut target = si.clone();
        assert!(stamp.clone().attach(&mut target, b"not DER").is_err());
        // BER long-form length where DER needs the short form.
        let token = content_info(signed_data(si.clone(), None)).unwrap();
        let (skip, len) = match token[1] {
            0x81 => (2, usize::from(token[2])),
            0x82 => (3, usize::from(u16::from_be_bytes([token[2], token[3]]))),
            short => (1, usize::from(short)),
        };
        let mut ber = vec![0x30, 0x84];
        ber.extend(u32::try_from(len).unwrap().to_be_bytes());
        ber.extend(&token[1 + skip..]);
        assert!(stamp.attach(&mut target, &ber).is_err());
        assert_eq!(target, si, "nothing added on refusal");
    }
}
