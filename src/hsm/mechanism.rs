//! The mechanism table: what each key algorithm means to the token, and the
//! encodings X.509 and CMS need. Token quirks are written down once, here.
//!
//! - SoftHSM 2.6 has `CKM_ECDSA` but not `CKM_ECDSA_SHA256`: we hash in the
//!   caller and sign the raw digest (PKCS#11 v3.0 §2.3.6).
//! - `CKM_ECDSA` returns `r || s`; X.509 and CMS want the DER
//!   `ECDSA-Sig-Value` (RFC 5480 §2.2.3).
//! - Tokens return `CKA_EC_POINT` either DER-wrapped in an OCTET STRING (as
//!   PKCS#11 specifies) or raw; both are accepted.

use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType};
use der::asn1::{BitString, OctetStringRef, UintRef};
use der::{Decode, Encode, Sequence};
use sha2::{Digest, Sha256};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::HsmError;

/// RFC 8017 §9.2 note 1: the DER DigestInfo of a SHA-256 digest, up to the
/// digest itself (which follows).
pub(super) const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Key algorithms qsign generates (SPEC §2 `KeyAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Rsa2048 => "RSA-2048",
            Self::Rsa3072 => "RSA-3072",
        }
    }

    /// Whether this is an ECDSA key (else RSA PKCS#1 v1.5).
    pub fn is_ec(self) -> bool {
        self.curve().is_some()
    }

    fn curve(self) -> Option<ObjectIdentifier> {
        match self {
            Self::EcP256 => Some(rfc5912::SECP_256_R_1),
            Self::EcP384 => Some(rfc5912::SECP_384_R_1),
            Self::Rsa2048 | Self::Rsa3072 => None,
        }
    }

    pub(super) fn generation_mechanism(self) -> Mechanism<'static> {
        match self.curve() {
            Some(_) => Mechanism::EccKeyPairGen,
            None => Mechanism::RsaPkcsKeyPairGen,
        }
    }

    /// Public-key template attributes that depend on the algorithm.
    pub(super) fn public_template(self) -> Result<Vec<Attribute>, HsmError> {
        Ok(match (self, self.curve()) {
            (_, Some(curve)) => vec![Attribute::EcParams(curve.to_der()?)],
            (Self::Rsa2048, None) => rsa_template(2048),
            (_, None) => rsa_template(3072),
        })
    }

    pub(super) fn key_type(self) -> KeyType {
        match self.curve() {
            Some(_) => KeyType::EC,
            None => KeyType::RSA,
        }
    }

    /// `ecdsa-with-SHA256` (RFC 5758 §3.2, no parameters) or
    /// `sha256WithRSAEncryption` (RFC 4055 §5, NULL parameters).
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        match self.curve() {
            Some(_) => AlgorithmIdentifierOwned {
                oid: rfc5912::ECDSA_WITH_SHA_256,
                parameters: None,
            },
            None => AlgorithmIdentifierOwned {
                oid: rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
                parameters: Some(der::asn1::Null.into()),
            },
        }
    }

    /// Signs `message` on the token and returns the X.509/CMS encoding.
    pub(super) fn sign(
        self,
        session: &cryptoki::session::Session,
        key: cryptoki::object::ObjectHandle,
        message: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        match self.curve() {
            Some(_) => {
                let digest = Sha256::digest(message);
                let raw = session.sign(&Mechanism::Ecdsa, key, &digest)?;
                ecdsa_sig_value(&raw)
            }
            None => Ok(session.sign(&Mechanism::Sha256RsaPkcs, key, message)?),
        }
    }

    /// The attributes to read from a public key object to build its SPKI.
    pub(super) fn public_attributes(self) -> &'static [cryptoki::object::AttributeType] {
        use cryptoki::object::AttributeType;
        match self.curve() {
            Some(_) => &[AttributeType::EcPoint],
            None => &[AttributeType::Modulus, AttributeType::PublicExponent],
        }
    }

    /// RFC 5480 §2 (EC) or RFC 3279 §2.3.1 (RSA) SubjectPublicKeyInfo.
    pub(super) fn subject_public_key_info(
        self,
        attributes: &[Attribute],
    ) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
        match self.curve() {
            Some(curve) => {
                let point = attributes
                    .iter()
                    .find_map(|a| match a {
                        Attribute::EcPoint(p) => Some(p.as_slice()),
                        _ => None,
                    })
                    .ok_or(HsmError::Token("public key has no CKA_EC_POINT"))?;
                Ok(SubjectPublicKeyInfoOwned {
                    algorithm: AlgorithmIdentifierOwned {
                        oid: rfc5912::ID_EC_PUBLIC_KEY,
                        parameters: Some((&curve).into()),
                    },
                    subject_public_key: BitString::from_bytes(uncompressed_point(
                        point,
                        self.point_len(),
                    )?)?,
                })
            }
            None => rsa_public_key_info(attributes),
        }
    }

    /// Length of an uncompressed point: `04 || X || Y` (SEC 1 §2.3.3).
    fn point_len(self) -> usize {
        match self {
            Self::EcP384 => 97,
            _ => 65,
        }
    }

    /// Identifies the algorithm of an existing key, e.g. a CA key.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Option<Self> {
        if spki.algorithm.oid == rfc5912::RSA_ENCRYPTION {
            let bits = spki.subject_public_key.raw_bytes().len() * 8;
            return Some(if bits > 2400 {
                Self::Rsa3072
            } else {
                Self::Rsa2048
            });
        }
        let curve: ObjectIdentifier = spki.algorithm.parameters.as_ref()?.decode_as().ok()?;
        [Self::EcP256, Self::EcP384]
            .into_iter()
            .find(|alg| alg.curve() == Some(curve))
    }
}

fn rsa_template(bits: u64) -> Vec<Attribute> {
    vec![
        Attribute::ModulusBits(bits.into()),
        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
    ]
}

/// `CKA_EC_POINT` is a DER OCTET STRING holding the point (PKCS#11 v3.0
/// §2.3.3), but some tokens return the bare point; the length tells which.
fn uncompressed_point(value: &[u8], point_len: usize) -> Result<&[u8], HsmError> {
    let point = if value.len() == point_len {
        value
    } else {
        OctetStringRef::from_der(value)
            .map_err(|_| HsmError::Token("CKA_EC_POINT is neither a point nor an OCTET STRING"))?
            .as_bytes()
    };
    match point.first() {
        Some(0x04) if point.len() == point_len => Ok(point),
        _ => Err(HsmError::Token(
            "EC point is not an uncompressed point of the key's curve",
        )),
    }
}

#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// `r || s` (PKCS#11) to `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
pub(super) fn ecdsa_sig_value(raw: &[u8]) -> Result<Vec<u8>, HsmError> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(HsmError::Token("ECDSA signature has an odd length"));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let value = EcdsaSigValue {
        r: UintRef::new(r)?,
        s: UintRef::new(s)?,
    };
    Ok(value.to_der()?)
}

#[derive(Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    public_exponent: UintRef<'a>,
}

fn rsa_public_key_info(attributes: &[Attribute]) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
    let (mut modulus, mut exponent) = (None, None);
    for attribute in attributes {
        match attribute {
            Attribute::Modulus(m) => modulus = Some(m.as_slice()),
            Attribute::PublicExponent(e) => exponent = Some(e.as_slice()),
            _ => {}
        }
    }
    let (Some(modulus), Some(exponent)) = (modulus, exponent) else {
        return Err(HsmError::Token("RSA public key lacks modulus or exponent"));
    };
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus)?,
        public_exponent: UintRef::new(exponent)?,
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        subject_public_key: BitString::from_bytes(&key.to_der()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_both_encodings() {
        let mut raw = [7u8; 65];
        raw[0] = 4;
        raw[1] = 63; // would also parse as an OCTET STRING header
        assert_eq!(uncompressed_point(&raw, 65).unwrap(), &raw);
        let wrapped = OctetStringRef::new(&raw).unwrap().to_der().unwrap();
        assert_eq!(uncompressed_point(&wrapped, 65).unwrap(), &raw);
        assert!(uncompressed_point(&wrapped, 97).is_err());
        assert!(uncompressed_point(&[2u8, 1, 2], 65).is_err());
    }

    #[test]
    fn raw_signature_becomes_der() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // high bit: INTEGER needs a leading zero
        raw[63] = 1;
        let der = ecdsa_sig_value(&raw).unwrap();
        let parsed = EcdsaSigValue::from_der(&der).unwrap();
        assert_eq!(parsed.r.as_bytes()[0], 0x80);
        assert_eq!(parsed.s.as_bytes(), &[1]);
        assert!(ecdsa_sig_value(&raw[..63]).is_err());
    }
}
