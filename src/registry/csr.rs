//! PKCS#10 requests (RFC 2986): the signature is checked (proof of
//! possession, §3) and the key must be strong: RSA of 2048 bits or more,
//! EC on P-256 or P-384 (what EN 319 412's algorithm list, ETSI TS 119 312,
//! accepts today). Verification through ring.

use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1,
    SECP_384_R_1, SHA_256_WITH_RSA_ENCRYPTION, SHA_384_WITH_RSA_ENCRYPTION,
    SHA_512_WITH_RSA_ENCRYPTION,
};
use der::{Decode, Encode};
use ring::signature as ring_sig;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::CertReq;

use crate::Error;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// The public key of a well-signed PKCS#10 request (DER or PEM) with a
/// strong key; INVALID_ARGUMENT naming the fault otherwise.
pub fn verified_key(csr: &[u8]) -> Result<SubjectPublicKeyInfoOwned, Error> {
    let der = match std::str::from_utf8(csr) {
        Ok(text) if text.contains("-----BEGIN") => der::pem::decode_vec(text.trim().as_bytes())
            .map(|(_, der)| der)
            .map_err(|_| refuse("the CSR is not PEM"))?,
        _ => csr.to_vec(),
    };
    let request = CertReq::from_der(&der).map_err(|_| refuse("the CSR is not PKCS#10 DER"))?;
    let spki = request.info.public_key.clone();
    let tbs = request
        .info
        .to_der()
        .map_err(|_| refuse("the CSR cannot be re-encoded"))?;
    let key = spki.subject_public_key.raw_bytes();
    let algorithm = verification_algorithm(&spki, &request.algorithm.oid)?;
    ring_sig::UnparsedPublicKey::new(algorithm, key)
        .verify(&tbs, request.signature.raw_bytes())
        .map_err(|_| refuse("the CSR's signature does not verify (RFC 2986 §3)"))?;
    Ok(spki)
}

fn verification_algorithm(
    spki: &SubjectPublicKeyInfoOwned,
    signature: &const_oid::ObjectIdentifier,
) -> Result<&'static dyn ring_sig::VerificationAlgorithm, Error> {
    match spki.algorithm.oid {
        ID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok());
            match (curve, *signature) {
                (Some(SECP_256_R_1), ECDSA_WITH_SHA_256) => Ok(&ring_sig::ECDSA_P256_SHA256_ASN1),
                (Some(SECP_256_R_1), ECDSA_WITH_SHA_384) => Ok(&ring_sig::ECDSA_P256_SHA384_ASN1),
                (Some(SECP_384_R_1), ECDSA_WITH_SHA_256) => Ok(&ring_sig::ECDSA_P384_SHA256_ASN1),
                (Some(SECP_384_R_1), ECDSA_WITH_SHA_384) => Ok(&ring_sig::ECDSA_P384_SHA384_ASN1),
                (Some(SECP_256_R_1 | SECP_384_R_1), _) => Err(refuse(
                    "the CSR's signature algorithm is not ECDSA with SHA-256 or SHA-384",
                )),
                _ => Err(refuse("the CSR's EC key is not on P-256 or P-384")),
            }
        }
        RSA_ENCRYPTION => {
            let bits = rsa_bits(spki.subject_public_key.raw_bytes())?;
            if bits < MIN_RSA_BITS {
                return Err(refuse(format!(
                    "the CSR's RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
                )));
            }
            match *signature {
                SHA_256_WITH_RSA_ENCRYPTION => Ok(&ring_sig::RSA_PKCS1_2048_8192_SHA256),
                SHA_384_WITH_RSA_ENCRYPTION => Ok(&ring_sig::RSA_PKCS1_2048_8192_SHA384),
                SHA_512_WITH_RSA_ENCRYPTION => Ok(&ring_sig::RSA_PKCS1_2048_8192_SHA512),
                _ => Err(refuse(
                    "the CSR's signature algorithm is not RSA PKCS#1 v1.5 with SHA-256/384/512",
                )),
            }
        }
        _ => Err(refuse("the CSR's key is neither RSA nor EC")),
    }
}

/// RFC 8017 §A.1.1 RSAPublicKey: the modulus's length in bits.
fn rsa_bits(key: &[u8]) -> Result<usize, Error> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        _exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(key).map_err(|_| refuse("the CSR's RSA key is malformed"))?;
    let bytes = key.modulus.as_bytes();
    let leading = bytes.first().map_or(8, |b| b.leading_zeros() as usize);
    Ok(bytes.len() * 8 - leading)
}

fn refuse(why: impl Into<String>) -> Error {
    Error::invalid_argument(why.into())
}
