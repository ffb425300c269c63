//! A pool of logged-in sessions. A session is used by one thread at a time
//! and never held across `.await`; a session whose clean-up failed is closed
//! rather than returned, which also destroys any session object it still
//! owns (PKCS#11 v3.0 §4.4: session objects live as long as their session).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use der::Decode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{find_one, HsmError, KeyAlgorithm};

pub(super) struct Pool {
    context: Pkcs11,
    slot: Slot,
    idle: Mutex<Vec<PooledSession>>,
    permits: Arc<Semaphore>,
}

struct PooledSession {
    session: Session,
    /// Session copies of persistent keys, by label (see `Lease::ca_copy`).
    copies: RefCell<HashMap<String, ObjectHandle>>,
    algorithms: RefCell<HashMap<String, KeyAlgorithm>>,
}

impl Pool {
    pub(super) fn new(context: Pkcs11, slot: Slot, size: usize) -> Self {
        Self {
            context,
            slot,
            idle: Mutex::new(Vec::with_capacity(size)),
            permits: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// Waits until a session may be used; bounds the blocking tasks in flight.
    pub(super) async fn permit(&self) -> Result<OwnedSemaphorePermit, HsmError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HsmError::Token("session pool closed"))
    }

    /// An idle session, or a new one (the login is shared by the application).
    pub(super) fn lease(&self) -> Result<Lease<'_>, HsmError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let pooled = match idle {
            Some(pooled) => pooled,
            None => PooledSession {
                session: self.context.open_rw_session(self.slot)?,
                copies: RefCell::default(),
                algorithms: RefCell::default(),
            },
        };
        Ok(Lease {
            pool: self,
            pooled: Some(pooled),
            healthy: Cell::new(true),
        })
    }
}

/// A session lent to one request; returns to the pool on drop if healthy.
pub(super) struct Lease<'p> {
    pool: &'p Pool,
    pooled: Option<PooledSession>,
    healthy: Cell<bool>,
}

impl Lease<'_> {
    fn pooled(&self) -> &PooledSession {
        // Invariant: `pooled` is only taken in `drop`.
        self.pooled
            .as_ref()
            .expect("lease holds its session until dropped")
    }

    pub(super) fn session(&self) -> &Session {
        &self.pooled().session
    }

    /// Marks the session unfit for reuse: it is closed on drop.
    pub(super) fn poison(&self) {
        self.healthy.set(false);
    }

    /// A session copy of the persistent private key `label`, made once per
    /// session: SoftHSM re-reads token objects from disk on every use, a
    /// session copy stays in memory (still sensitive and non-extractable).
    pub(super) fn ca_copy(&self, label: &str) -> Result<ObjectHandle, HsmError> {
        let pooled = self.pooled();
        if let Some(handle) = pooled.copies.borrow().get(label) {
            return Ok(*handle);
        }
        let key = find_one(&pooled.session, ObjectClass::PRIVATE_KEY, label)?;
        let copy = pooled.session.copy_object(
            key,
            &[
                Attribute::Token(false),
                Attribute::Label(format!("{label} (session copy)").into_bytes()),
            ],
        )?;
        pooled.copies.borrow_mut().insert(label.to_owned(), copy);
        Ok(copy)
    }

    /// The algorithm of the persistent private key `label`, read once.
    pub(super) fn algorithm_of(&self, label: &str) -> Result<KeyAlgorithm, HsmError> {
        let pooled = self.pooled();
        if let Some(algorithm) = pooled.algorithms.borrow().get(label) {
            return Ok(*algorithm);
        }
        let key = find_one(&pooled.session, ObjectClass::PRIVATE_KEY, label)?;
        let algorithm = read_algorithm(&pooled.session, key)?;
        pooled
            .algorithms
            .borrow_mut()
            .insert(label.to_owned(), algorithm);
        Ok(algorithm)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(pooled) = self.pooled.take() else {
            return;
        };
        if self.healthy.get() && !std::thread::panicking() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(pooled);
        } else {
            tracing::warn!("closing an HSM session after a failure");
            // Dropping the session closes it and destroys its session objects.
        }
    }
}

fn read_algorithm(session: &Session, key: ObjectHandle) -> Result<KeyAlgorithm, HsmError> {
    let attributes = session.get_attributes(
        key,
        &[
            AttributeType::KeyType,
            AttributeType::EcParams,
            AttributeType::Modulus,
        ],
    )?;
    let mut key_type = None;
    let mut curve = None;
    let mut modulus_len = 0;
    for attribute in &attributes {
        match attribute {
            Attribute::KeyType(t) => key_type = Some(*t),
            Attribute::EcParams(p) => curve = const_oid::ObjectIdentifier::from_der(p).ok(),
            Attribute::Modulus(m) => modulus_len = m.len(),
            _ => {}
        }
    }
    match key_type {
        Some(KeyType::EC) => match curve {
            Some(const_oid::db::rfc5912::SECP_256_R_1) => Ok(KeyAlgorithm::EcP256),
            Some(const_oid::db::rfc5912::SECP_384_R_1) => Ok(KeyAlgorithm::EcP384),
            _ => Err(HsmError::Token("unsupported EC curve")),
        },
        Some(KeyType::RSA) if modulus_len > 300 => Ok(KeyAlgorithm::Rsa3072),
        Some(KeyType::RSA) => Ok(KeyAlgorithm::Rsa2048),
        _ => Err(HsmError::Token("unsupported key type")),
    }
}
