//! CMS `SignedData` for CAdES baseline (ETSI EN 319 122-1) and PAdES
//! (EN 319 142-1 §6.3): detached, one signer, signed attributes computed
//! once per request and reused for every document of a batch. B-LTA's
//! archive-time-stamp-v3 is in `archive`.

pub mod archive;

use std::time::SystemTime;

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{EncapsulatedContentInfo, SignerIdentifier, SignerInfo, SignerInfos};
use const_oid::db::{rfc5911, rfc6268};
use const_oid::ObjectIdentifier;
use der::asn1::{ContextSpecific, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence, TagMode, TagNumber};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::Certificate;

use crate::pki::{rfc5280_time, Issued};
use crate::signer::Signer;
use crate::Error;

/// RFC 3161 §2.4.2 id-ct-TSTInfo, the eContentType of a TimeStampToken.
pub const CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// RFC 3161 Appendix A id-aa-timeStampToken: the unsigned attribute of a
/// SignerInfo that carries a signature time-stamp (CAdES-B-T).
pub const AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// RFC 6211 §2 id-aa-CMSAlgorithmProtection.
pub const AA_CMS_ALGORITHM_PROTECTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.52");

/// RFC 6211 §2 (IMPLICIT TAGS module).
#[derive(Sequence)]
struct CmsAlgorithmProtection {
    digest_algorithm: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    signature_algorithm: Option<AlgorithmIdentifierOwned>,
}

/// RFC 5940 §4.2.1 id-ri-ocsp-response: an OCSPResponse among a
/// SignedData's revocation information.
pub const ID_RI_OCSP_RESPONSE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.16.2");

/// RFC 5652 §10.2.1 `OtherRevocationInfoFormat`.
#[derive(Sequence)]
struct OtherRevocationInfoFormat {
    other_rev_info_format: ObjectIdentifier,
    other_rev_info: Any,
}

/// RFC 5652 §5.1 `SignedData` as cms 0.2's, with `certificates` and `crls`
/// holding encoded CertificateChoices and RevocationInfoChoices (see
/// `SignatureContext` and `add_validation_data`).
#[derive(Clone, Debug, Sequence)]
pub struct CadesSignedData {
    pub version: CmsVersion,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfo,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<SetOfVec<Any>>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<SetOfVec<Any>>,
    pub signer_infos: SignerInfos,
}

/// RFC 5035 §4 `IssuerSerial`.
#[derive(Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// RFC 5035 §4 `ESSCertIDv2`; hashAlgorithm is omitted as it is the
/// DEFAULT, SHA-256 (DER forbids encoding a default).
#[derive(Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: Option<IssuerSerial>,
}

/// RFC 5035 §3 `SigningCertificateV2`.
#[derive(Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

/// Whether the CMS carries the signing-time attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigningTime {
    /// CAdES baseline: signing-time shall be present (EN 319 122-1 §5.2.1).
    Attribute(SystemTime),
    /// PAdES baseline: shall not be present; the time is the PDF's `/M`
    /// (EN 319 142-1 §6.3).
    Omitted,
}

/// What every SignerInfo of one request shares: the signer's certificate,
/// the chain, and the attributes that depend only on them.
pub struct SignatureContext {
    /// DER certificates (RFC 5652 §10.2.2 CertificateChoices, the plain
    /// Certificate alternative): copied, never re-encoded.
    certificates: SetOfVec<Any>,
    /// B-LT: revocation data of the chain (RFC 5652 §10.2.1).
    crls: Option<SetOfVec<Any>>,
    sid: SignerIdentifier,
    digest_algorithm: AlgorithmIdentifierOwned,
    signature_algorithm: AlgorithmIdentifierOwned,
    signing_certificate_v2: Attribute,
    algorithm_protection: Attribute,
}

impl SignatureContext {
    /// `chain`: the DER issuing CA certificate(s) to embed (RFC 5652 §5.1).
    pub fn new(
        signer_certificate: &Issued,
        chain: &[Any],
        signer: &impl Signer,
    ) -> Result<Self, Error> {
        let digest_algorithm = signer.digest_algorithm();
        let signature_algorithm = signature_algorithm(signer)?;
        let mut certificates = SetOfVec::new();
        certificates
            .insert(Any::from_der(&signer_certificate.der).map_err(encoding)?)
            .map_err(encoding)?;
        for certificate in chain {
            certificates.insert(certificate.clone()).map_err(encoding)?;
        }
        Ok(Self {
            certificates,
            crls: None,
            sid: issuer_and_serial_number(&signer_certificate.certificate),
            // EN 319 122-1 §5.2.2.3: ESS signing-certificate-v2 binds the
            // signature to exactly this certificate.
            signing_certificate_v2: signing_certificate_v2(signer_certificate)?,
            algorithm_protection: algorithm_protection(&digest_algorithm, &signature_algorithm)?,
            digest_algorithm,
            signature_algorithm,
        })
    }

    /// Signs one document given its SHA-256 digest (RFC 5652 §5.4: the
    /// signature covers the DER of the signed attributes).
    pub fn sign(
        &self,
        message_digest: &[u8; 32],
        signing_time: SigningTime,
        signer: &impl Signer,
    ) -> Result<SignerInfo, Error> {
        let mut attributes = vec![
            // RFC 5652 §11.1 content-type, §11.2 message-digest.
            attribute(rfc6268::ID_CONTENT_TYPE, &rfc6268::ID_DATA)?,
            attribute(rfc6268::ID_MESSAGE_DIGEST, &octets(message_digest)?)?,
            self.signing_certificate_v2.clone(),
            self.algorithm_protection.clone(),
        ];
        if let SigningTime::Attribute(time) = signing_time {
            // RFC 5652 §11.3 signing-time: UTCTime through 2049.
            attributes.push(attribute(rfc6268::ID_SIGNING_TIME, &rfc5280_time(time)?)?);
        }
        signer_info(
            self.sid.clone(),
            &self.digest_algorithm,
            &self.signature_algorithm,
            attributes,
            signer,
        )
    }

    /// CAdES B-LT (EN 319 122-1 §6.3): the certificates of every path the
    /// signature and its time-stamp need, and CRLs and OCSP responses for
    /// them, in `SignedData.certificates` and `SignedData.crls` (an OCSP
    /// response as RFC 5940 §4.2.1 id-ri-ocsp-response).
    pub fn add_validation_data(
        &mut self,
        certificates: &[Vec<u8>],
        crls: &[Vec<u8>],
        ocsps: &[Vec<u8>],
    ) -> Result<(), Error> {
        for der in certificates {
            Certificate::from_der(der).map_err(encoding)?;
            let certificate = Any::from_der(der).map_err(encoding)?;
            if !self.certificates.iter().any(|c| c == &certificate) {
                self.certificates.insert(certificate).map_err(encoding)?;
            }
        }
        // RFC 5652 §10.2.1 RevocationInfoChoice: a CertificateList, or
        // [1] IMPLICIT OtherRevocationInfoFormat { OID, ANY }. (cms 0.2's
        // OtherRevocationInfoFormat wraps the OID in an AlgorithmIdentifier,
        // which is not the standard's encoding; hence DER built here.)
        let mut revocation = SetOfVec::new();
        for der in crls {
            x509_cert::crl::CertificateList::from_der(der).map_err(encoding)?;
            revocation
                .insert(Any::from_der(der).map_err(encoding)?)
                .map_err(encoding)?;
        }
        for der in ocsps {
            let other = ContextSpecific {
                tag_number: TagNumber::N1,
                tag_mode: TagMode::Implicit,
                value: OtherRevocationInfoFormat {
                    other_rev_info_format: ID_RI_OCSP_RESPONSE,
                    other_rev_info: Any::from_der(der).map_err(encoding)?,
                },
            };
            revocation
                .insert(Any::encode_from(&other).map_err(encoding)?)
                .map_err(encoding)?;
        }
        self.crls = Some(revocation);
        Ok(())
    }

    /// RFC 5652 §5.1: a detached `SignedData` in a `ContentInfo`, DER.
    pub fn content_info(&self, signer_info: SignerInfo) -> Result<Vec<u8>, Error> {
        content_info(self.signed_data(signer_info)?)
    }

    /// The detached `SignedData` of one SignerInfo, as `content_info`
    /// encodes it.
    pub fn signed_data(&self, signer_info: SignerInfo) -> Result<CadesSignedData, Error> {
        let mut digest_algorithms = SetOfVec::new();
        digest_algorithms
            .insert(self.digest_algorithm.clone())
            .map_err(encoding)?;
        // RFC 5652 §5.1: version 1 for id-data content and only
        // issuerAndSerialNumber signer identifiers.
        Ok(CadesSignedData {
            version: CmsVersion::V1,
            digest_algorithms,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: rfc6268::ID_DATA,
                econtent: None,
            },
            certificates: Some(self.certificates.clone()),
            crls: self.crls.clone(),
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(encoding)?),
        })
    }
}

/// Room for a signature-time-stamp token and its TSA certificate, kept in
/// every PDF signature so that B-T can be added (EN 319 142-1 §5.3).
pub const TIME_STAMP_ALLOWANCE: usize = 8192;

/// The DER length a PAdES CMS may reach, computed from what goes in it:
/// the end-entity certificate (bounded by `pki::MAX_END_ENTITY_LEN`), the
/// chain certificates, twice the issuer name (ESS issuerSerial and the
/// SignerIdentifier), signed attributes, an RSA-3072 signature, framing,
/// and the time-stamp allowance. Client and server compute the same value
/// from the chain that GetTrustChain returns.
pub fn pades_capacity(chain: &[Vec<u8>]) -> usize {
    const SIGNED_ATTRIBUTES: usize = 512;
    const SIGNATURE: usize = 400;
    const FRAMING: usize = 256;
    let chain_len: usize = chain.iter().map(Vec::len).sum();
    crate::pki::MAX_END_ENTITY_LEN
        + chain_len
        + 2 * crate::pki::MAX_ISSUER_NAME_LEN
        + SIGNED_ATTRIBUTES
        + SIGNATURE
        + FRAMING
        + TIME_STAMP_ALLOWANCE
}

/// The signer's algorithm, as SignerInfo.signatureAlgorithm names it.
pub(crate) fn signature_algorithm(signer: &impl Signer) -> Result<AlgorithmIdentifierOwned, Error> {
    signer
        .signature_algorithm_identifier()
        .map_err(|e| Error::internal("signer has no signature algorithm").with_source(e))
}

/// RFC 5652 §5.3 `SignerIdentifier` by issuer and serial number (SignerInfo
/// version 1).
pub(crate) fn issuer_and_serial_number(certificate: &Certificate) -> SignerIdentifier {
    let tbs = &certificate.tbs_certificate;
    SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer.clone(),
        serial_number: tbs.serial_number.clone(),
    })
}

/// RFC 5035 §3 ESS signing-certificate-v2 naming `certificate` by its
/// SHA-256 hash and issuerSerial (also RFC 5816 §2.2.1 for time-stamps).
pub(crate) fn signing_certificate_v2(certificate: &Issued) -> Result<Attribute, Error> {
    let tbs = &certificate.certificate.tbs_certificate;
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            cert_hash: octets(&Sha256::digest(&certificate.der))?,
            issuer_serial: Some(IssuerSerial {
                issuer: vec![GeneralName::DirectoryName(tbs.issuer.clone())],
                serial_number: tbs.serial_number.clone(),
            }),
        }],
    };
    attribute(rfc5911::ID_AA_SIGNING_CERTIFICATE_V_2, &ess)
}

/// RFC 6211 §2 CMS algorithm protection.
pub(crate) fn algorithm_protection(
    digest_algorithm: &AlgorithmIdentifierOwned,
    signature_algorithm: &AlgorithmIdentifierOwned,
) -> Result<Attribute, Error> {
    let protection = CmsAlgorithmProtection {
        digest_algorithm: digest_algorithm.clone(),
        signature_algorithm: Some(signature_algorithm.clone()),
    };
    attribute(AA_CMS_ALGORITHM_PROTECTION, &protection)
}

/// RFC 5652 §5.3, §5.4: a SignerInfo whose signature covers the DER of
/// `attributes` (a SET OF, so sorted by the encoder).
pub(crate) fn signer_info(
    sid: SignerIdentifier,
    digest_algorithm: &AlgorithmIdentifierOwned,
    signature_algorithm: &AlgorithmIdentifierOwned,
    attributes: Vec<Attribute>,
    signer: &impl Signer,
) -> Result<SignerInfo, Error> {
    let signed_attributes = SetOfVec::try_from(attributes).map_err(encoding)?;
    let to_sign = signed_attributes.to_der().map_err(encoding)?;
    let signature = signer.try_sign(&to_sign)?;
    Ok(SignerInfo {
        version: CmsVersion::V1,
        sid,
        digest_alg: digest_algorithm.clone(),
        signed_attrs: Some(signed_attributes),
        signature_algorithm: signature_algorithm.clone(),
        signature: octets(signature.as_bytes())?,
        unsigned_attrs: None,
    })
}

/// RFC 5652 §3: `signed_data` in a `ContentInfo`, DER.
pub(crate) fn content_info(
    signed_data: impl der::EncodeValue + der::Tagged,
) -> Result<Vec<u8>, Error> {
    let content_info = ContentInfo {
        content_type: rfc6268::ID_SIGNED_DATA,
        content: Any::encode_from(&signed_data).map_err(encoding)?,
    };
    content_info.to_der().map_err(encoding)
}

/// B-T: the signature-time-stamp unsigned attribute (EN 319 122-1 §5.3,
/// RFC 3161 Appendix A), a TimeStampToken over this SignerInfo's signature.
pub fn add_signature_time_stamp(signer_info: &mut SignerInfo, token: &[u8]) -> Result<(), Error> {
    let token = Any::from_der(token).map_err(encoding)?;
    let attribute = Attribute {
        oid: AA_SIGNATURE_TIME_STAMP_TOKEN,
        values: SetOfVec::try_from(vec![token]).map_err(encoding)?,
    };
    add_unsigned_attribute(signer_info, attribute)
}

/// Adds `attribute` to the SignerInfo's unsigned attributes (RFC 5652
/// §5.3), keeping those already there.
pub(crate) fn add_unsigned_attribute(
    signer_info: &mut SignerInfo,
    attribute: Attribute,
) -> Result<(), Error> {
    let mut attributes = signer_info.unsigned_attrs.take().unwrap_or_default();
    attributes.insert(attribute).map_err(encoding)?;
    signer_info.unsigned_attrs = Some(attributes);
    Ok(())
}

/// A single-valued attribute (RFC 5652 §5.3).
pub(crate) fn attribute(
    oid: ObjectIdentifier,
    value: &(impl der::EncodeValue + der::Tagged),
) -> Result<Attribute, Error> {
    let value = Any::encode_from(value).map_err(encoding)?;
    Ok(Attribute {
        oid,
        values: SetOfVec::try_from(vec![value]).map_err(encoding)?,
    })
}

pub(crate) fn octets(bytes: &[u8]) -> Result<OctetString, Error> {
    OctetString::new(bytes).map_err(encoding)
}

pub(crate) fn encoding(e: der::Error) -> Error {
    Error::internal("CMS encoding failed").with_source(e)
}
