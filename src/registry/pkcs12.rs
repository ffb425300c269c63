//! A password-protected PKCS#12 (RFC 7292) of a key made for the caller and
//! its certificate chain, returned once and never stored (SPEC §9).
//!
//! The choice: both the key bag and the certificate bags are encrypted with
//! PBES2 (RFC 8018 §6.2) = PBKDF2-HMAC-SHA256 (600 000 iterations, 16-byte
//! salt) and AES-256-CBC; the whole is protected by an HMAC-SHA256 MAC
//! (RFC 7292 §5 and Appendix B KDF, the same iteration count). No RC2,
//! RC4 or 3DES: what OpenSSL 3 writes by default, and what it, NSS and
//! current Windows read.

use cms::content_info::ContentInfo;
use cms::encrypted_data::EncryptedData;
use cms::enveloped_data::EncryptedContentInfo;
use const_oid::db::rfc5911::{ID_DATA, ID_ENCRYPTED_DATA};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use hmac::{Hmac, Mac};
use pkcs12::digest_info::DigestInfo;
use pkcs12::mac_data::MacData;
use pkcs12::pfx::{Pfx, Version};
use pkcs12::safe_bag::SafeBag;
use rand::RngCore;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use zeroize::Zeroizing;

use crate::Error;

/// RFC 8018 §4.2 suggests at least 1 000; OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256 is 600 000.
const ITERATIONS: u32 = 600_000;
/// PKCS#9 localKeyId: pairs the key with its certificate for importers.
const LOCAL_KEY_ID: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");

/// A PFX of the PKCS#8 `key` (DER) and `certificates` (DER, the holder's
/// first), all under `password`.
pub fn build(key_pkcs8: &[u8], certificates: &[Vec<u8>], password: &str) -> Result<Vec<u8>, Error> {
    let key_id = Sha256::digest(certificates.first().map_or(&[][..], Vec::as_slice)).to_vec();
    let cert_bags = certificates
        .iter()
        .enumerate()
        .map(|(i, der)| cert_bag(der, (i == 0).then_some(&key_id[..])))
        .collect::<Result<Vec<_>, _>>()?;
    let key_bag = SafeBag {
        bag_id: pkcs12::PKCS_12_PKCS8_KEY_BAG_OID,
        bag_value: pbes2()?.encrypt_key(key_pkcs8, password)?,
        bag_attributes: Some(local_key_id(&key_id)?),
    };
    let certs_plain = Zeroizing::new(cert_bags.to_der().map_err(enc)?);
    let scheme = pbes2()?;
    let encrypted_certs = EncryptedData {
        version: cms::content_info::CmsVersion::V0,
        enc_content_info: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: scheme.algorithm()?,
            encrypted_content: Some(
                OctetString::new(scheme.encrypt(password, &certs_plain)?).map_err(enc)?,
            ),
        },
        unprotected_attrs: None,
    };
    let safe = vec![
        ContentInfo {
            content_type: ID_ENCRYPTED_DATA,
            content: Any::encode_from(&encrypted_certs).map_err(enc)?,
        },
        data(&vec![key_bag].to_der().map_err(enc)?)?,
    ];
    let auth_safe = safe.to_der().map_err(enc)?;
    let mac_data = mac(&auth_safe, password)?;
    Pfx {
        version: Version::V3,
        auth_safe: data(&auth_safe)?,
        mac_data: Some(mac_data),
    }
    .to_der()
    .map_err(enc)
}

/// RFC 7292 §4.2.3 certBag of an X.509 certificate.
fn cert_bag(der: &[u8], key_id: Option<&[u8]>) -> Result<SafeBag, Error> {
    let bag = pkcs12::cert_type::CertBag {
        cert_id: pkcs12::PKCS_12_X509_CERT_OID,
        cert_value: OctetString::new(der).map_err(enc)?,
    };
    Ok(SafeBag {
        bag_id: pkcs12::PKCS_12_CERT_BAG_OID,
        bag_value: bag.to_der().map_err(enc)?,
        bag_attributes: key_id.map(local_key_id).transpose()?,
    })
}

fn local_key_id(id: &[u8]) -> Result<SetOfVec<Attribute>, Error> {
    let value = Any::encode_from(&OctetString::new(id).map_err(enc)?).map_err(enc)?;
    let attribute = Attribute {
        oid: LOCAL_KEY_ID,
        values: SetOfVec::try_from(vec![value]).map_err(enc)?,
    };
    SetOfVec::try_from(vec![attribute]).map_err(enc)
}

/// ContentInfo of type data around `content` (RFC 5652 §4).
fn data(content: &[u8]) -> Result<ContentInfo, Error> {
    Ok(ContentInfo {
        content_type: ID_DATA,
        content: Any::encode_from(&OctetString::new(content).map_err(enc)?).map_err(enc)?,
    })
}

/// Fresh PBES2 parameters: a random salt and IV for each use.
struct Pbes2 {
    salt: [u8; 16],
    iv: [u8; 16],
}

fn pbes2() -> Result<Pbes2, Error> {
    let mut p = Pbes2 {
        salt: [0; 16],
        iv: [0; 16],
    };
    rand::rngs::OsRng.fill_bytes(&mut p.salt);
    rand::rngs::OsRng.fill_bytes(&mut p.iv);
    Ok(p)
}

impl Pbes2 {
    fn parameters(&self) -> Result<pkcs5::pbes2::Parameters<'_>, Error> {
        pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(ITERATIONS, &self.salt, &self.iv)
            .map_err(pbe)
    }

    fn algorithm(&self) -> Result<AlgorithmIdentifierOwned, Error> {
        let scheme = pkcs5::EncryptionScheme::Pbes2(self.parameters()?);
        AlgorithmIdentifierOwned::from_der(&scheme.to_der().map_err(enc)?).map_err(enc)
    }

    /// RFC 8018 §6.2.1 with the UTF-8 password (as OpenSSL reads PBES2 in
    /// PKCS#12).
    fn encrypt(&self, password: &str, plain: &[u8]) -> Result<Vec<u8>, Error> {
        self.parameters()?.encrypt(password, plain).map_err(pbe)
    }

    /// RFC 5958 EncryptedPrivateKeyInfo (the pkcs8ShroudedKeyBag value).
    fn encrypt_key(&self, key: &[u8], password: &str) -> Result<Vec<u8>, Error> {
        let encrypted = self.encrypt(password, key)?;
        pkcs8::EncryptedPrivateKeyInfo {
            encryption_algorithm: pkcs5::EncryptionScheme::Pbes2(self.parameters()?),
            encrypted_data: &encrypted,
        }
        .to_der()
        .map_err(enc)
    }
}

/// RFC 7292 §5: HMAC-SHA256 over the authSafe content, its key from the
/// Appendix B KDF (ID 3) of the BMPString password.
fn mac(auth_safe: &[u8], password: &str) -> Result<MacData, Error> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let rounds = i32::try_from(ITERATIONS).map_err(|_| Error::internal("iteration count"))?;
    let key = Zeroizing::new(
        pkcs12::kdf::derive_key_utf8::<Sha256>(
            password,
            &salt,
            pkcs12::kdf::Pkcs12KeyType::Mac,
            rounds,
            32,
        )
        .map_err(enc)?,
    );
    let mut hmac =
        Hmac::<Sha256>::new_from_slice(&key).map_err(|_| Error::internal("HMAC key length"))?;
    hmac.update(auth_safe);
    Ok(MacData {
        mac: DigestInfo {
            algorithm: AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::ID_SHA_256,
                parameters: Some(Any::from(der::asn1::Null)),
            },
            digest: OctetString::new(hmac.finalize().into_bytes().to_vec()).map_err(enc)?,
        },
        mac_salt: OctetString::new(salt.to_vec()).map_err(enc)?,
        iterations: rounds,
    })
}

fn enc(e: der::Error) -> Error {
    Error::internal("PKCS#12 encoding failed").with_source(e)
}

fn pbe(e: pkcs5::Error) -> Error {
    Error::internal(format!("PKCS#12 encryption failed: {e}"))
}
