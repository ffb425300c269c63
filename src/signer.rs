//! The seam between the format modules (`pki`, `signed_data`) and the HSM:
//! they see a key only through the RustCrypto `signature` traits, as tmkms's
//! keyring does, so they never learn about PKCS#11.

use der::asn1::BitString;
use signature::SignatureEncoding;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier};

/// A signature value in the encoding X.509 and CMS carry: DER
/// `ECDSA-Sig-Value` (RFC 5480 §2.2.3 / RFC 5753 §2.1.1) or the raw RSA
/// PKCS#1 v1.5 octets (RFC 8017 §8.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureValue(Vec<u8>);

impl SignatureValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    /// The BIT STRING of `Certificate.signatureValue` (RFC 5280 §4.1.1.3).
    pub fn to_bit_string(&self) -> der::Result<BitString> {
        BitString::from_bytes(&self.0)
    }
}

impl TryFrom<&[u8]> for SignatureValue {
    type Error = signature::Error;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        Ok(Self(bytes.to_vec()))
    }
}

impl From<SignatureValue> for Vec<u8> {
    fn from(value: SignatureValue) -> Self {
        value.0
    }
}

impl SignatureEncoding for SignatureValue {
    type Repr = Vec<u8>;
}

/// A key that signs certificates and signed attributes, and names its
/// signature algorithm (`ecdsa-with-SHA256` or `sha256WithRSAEncryption`).
pub trait Signer: signature::Signer<SignatureValue> + DynSignatureAlgorithmIdentifier {
    /// The digest algorithm the signature hashes with (always SHA-256 here).
    fn digest_algorithm(&self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_SHA_256,
            parameters: None,
        }
    }
}

impl<T> Signer for T where T: signature::Signer<SignatureValue> + DynSignatureAlgorithmIdentifier {}
