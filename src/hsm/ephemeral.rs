//! The ephemeral key pair: generated per request as session objects,
//! sensitive and never extractable, destroyed by a guard on every path —
//! success, error, panic and client cancellation — the way cryptoki's own
//! `Drop for Session` cleans up.

use std::sync::atomic::{AtomicU64, Ordering};

use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};

use super::keypool::PooledPair;
use super::pool::Lease;
use super::{HsmError, KeyAlgorithm};
use crate::signer::SignatureValue;

pub struct EphemeralKey<'s> {
    handles: KeyPairHandles<'s>,
    algorithm: KeyAlgorithm,
    public_key_info: SubjectPublicKeyInfoOwned,
}

/// The guard proper: owns both halves from the moment they exist.
struct KeyPairHandles<'s> {
    lease: &'s Lease,
    public: ObjectHandle,
    private: ObjectHandle,
    /// The pool's gauge of pairs alive, counted down on drop.
    alive: &'s AtomicU64,
}

impl<'s> EphemeralKey<'s> {
    pub(super) fn generate(
        lease: &'s Lease,
        algorithm: KeyAlgorithm,
        label: &str,
        alive: &'s AtomicU64,
    ) -> Result<Self, HsmError> {
        let session = lease.session();
        let (public, private) = generate(session, algorithm, label, false)?;
        alive.fetch_add(1, Ordering::Relaxed);
        let handles = KeyPairHandles {
            lease,
            public,
            private,
            alive,
        };
        // Alive from here until `KeyPairHandles::drop`.
        crate::metrics::metrics().ephemeral_keys_alive.inc();
        let attributes = session.get_attributes(public, algorithm.public_attributes())?;
        Ok(Self {
            public_key_info: algorithm.subject_public_key_info(&attributes)?,
            handles,
            algorithm,
        })
    }

    /// A pair from the key pool, used once like a generated one. The pair
    /// is checked first: a logout destroys private session objects
    /// (PKCS#11 v3.0 §5.6 C_Logout) before recovery can empty the pool.
    /// Unusable, it is destroyed as far as it still exists and `None`.
    pub(super) fn adopt(
        lease: &'s Lease,
        algorithm: KeyAlgorithm,
        pair: PooledPair,
        alive: &'s AtomicU64,
    ) -> Option<Self> {
        let session = lease.session();
        if let Err(e) = session.get_attributes(pair.private, &[AttributeType::Sign]) {
            tracing::debug!(error = %e, "a pooled key pair is gone; generating one");
            for handle in [pair.private, pair.public] {
                let _ = session.destroy_object(handle);
            }
            return None;
        }
        alive.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics().ephemeral_keys_alive.inc();
        Some(Self {
            handles: KeyPairHandles {
                lease,
                public: pair.public,
                private: pair.private,
                alive,
            },
            algorithm,
            public_key_info: pair.public_key_info,
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    pub fn public_key_info(&self) -> &SubjectPublicKeyInfoOwned {
        &self.public_key_info
    }

    /// The private key's handle; tests use it to show `CKA_VALUE` is refused.
    pub fn private_handle(&self) -> ObjectHandle {
        self.handles.private
    }
}

impl Drop for KeyPairHandles<'_> {
    fn drop(&mut self) {
        crate::metrics::metrics().ephemeral_keys_alive.dec();
        let session = self.lease.session();
        for handle in [self.private, self.public] {
            if let Err(e) = session.destroy_object(handle) {
                // Closing the session destroys what is left (PKCS#11 §4.4).
                tracing::error!(error = %e, "could not destroy an ephemeral key; closing its session");
                self.lease.poison();
            }
        }
        // Destroyed, or about to go with its session.
        self.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

impl signature::Signer<SignatureValue> for EphemeralKey<'_> {
    fn try_sign(&self, message: &[u8]) -> Result<SignatureValue, signature::Error> {
        self.algorithm
            .sign(self.handles.lease.session(), self.handles.private, message)
            .map(SignatureValue::new)
            .map_err(|e| signature::Error::from_source(crate::Error::from(e)))
    }
}

impl DynSignatureAlgorithmIdentifier for EphemeralKey<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.algorithm.signature_algorithm())
    }
}

/// A persistent key pair (CA keys): token objects, private half sensitive,
/// non-extractable and private.
pub(super) fn generate_persistent(
    session: &Session,
    algorithm: KeyAlgorithm,
    label: &str,
) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
    let (public, _private) = generate(session, algorithm, label, true)?;
    let attributes = session.get_attributes(public, algorithm.public_attributes())?;
    algorithm.subject_public_key_info(&attributes)
}

pub(super) fn generate(
    session: &Session,
    algorithm: KeyAlgorithm,
    label: &str,
    token: bool,
) -> Result<(ObjectHandle, ObjectHandle), HsmError> {
    let label = Attribute::Label(label.as_bytes().to_vec());
    let mut public_template = algorithm.public_template()?;
    public_template.extend([
        Attribute::Token(token),
        Attribute::Verify(true),
        label.clone(),
    ]);
    let private_template = [
        Attribute::Token(token),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::KeyType(algorithm.key_type()),
        label,
    ];
    Ok(session.generate_key_pair(
        &algorithm.generation_mechanism(),
        &public_template,
        &private_template,
    )?)
}
