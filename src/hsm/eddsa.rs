//! The audit key: one persistent Ed25519 key pair (RFC 8032, PKCS#11 3.0
//! CKM_EC_EDWARDS_KEY_PAIR_GEN / CKM_EDDSA) that signs the audit log's
//! checkpoints (C2SP signed-note). Kept apart from [`super::KeyAlgorithm`]:
//! it never signs certificates or CMS.

use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::Session;

use super::{find, find_one, HsmError};

/// DER of the OID id-Ed25519 1.3.101.112 (RFC 8410 §3), the CKA_EC_PARAMS
/// of an Edwards key (PKCS#11 3.0 §2.3.5).
const ED25519_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// Makes the persistent key pair `label`; returns the raw public key.
pub(super) fn generate(session: &Session, label: &str) -> Result<[u8; 32], HsmError> {
    if !find(session, ObjectClass::PRIVATE_KEY, label)?.is_empty() {
        return Err(HsmError::Token("a key with the audit key's label exists"));
    }
    let label = Attribute::Label(label.as_bytes().to_vec());
    let public_template = [
        Attribute::EcParams(ED25519_PARAMS.to_vec()),
        Attribute::Token(true),
        Attribute::Verify(true),
        label.clone(),
    ];
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::KeyType(KeyType::EC_EDWARDS),
        label,
    ];
    let (public, _) = session.generate_key_pair(
        &Mechanism::EccEdwardsKeyPairGen,
        &public_template,
        &private_template,
    )?;
    read_point(session, public)
}

/// The raw 32-byte public key of the pair `label`.
pub(super) fn public_key(session: &Session, label: &str) -> Result<[u8; 32], HsmError> {
    let public = find_one(session, ObjectClass::PUBLIC_KEY, label)?;
    read_point(session, public)
}

/// A pure Ed25519 signature (RFC 8032 §5.1.6) by the private key `label`.
pub(super) fn sign(session: &Session, label: &str, message: &[u8]) -> Result<[u8; 64], HsmError> {
    let private = find_one(session, ObjectClass::PRIVATE_KEY, label)?;
    let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let signature = session.sign(&mechanism, private, message)?;
    <[u8; 64]>::try_from(signature.as_slice())
        .map_err(|_| HsmError::Token("an Ed25519 signature is not 64 bytes"))
}

/// CKA_EC_POINT of an Edwards key: the 32 bytes, bare or (SoftHSM) as a
/// DER OCTET STRING.
fn read_point(
    session: &Session,
    public: cryptoki::object::ObjectHandle,
) -> Result<[u8; 32], HsmError> {
    let attributes = session.get_attributes(public, &[AttributeType::EcPoint])?;
    let point = attributes
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or(HsmError::Token("the audit key has no CKA_EC_POINT"))?;
    let raw = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        bare => bare,
    };
    <[u8; 32]>::try_from(raw).map_err(|_| HsmError::Token("the audit key is not an Ed25519 key"))
}
