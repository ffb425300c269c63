//! A pool of logged-in sessions, each owned by one worker thread. A session
//! is never held across `.await`; a session whose clean-up failed is closed
//! rather than reused, which also destroys any session object it still owns
//! (PKCS#11 v3.0 §4.4: session objects live as long as their session).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{mpsc, Arc, Mutex};

use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use der::Decode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{find_one, HsmError, KeyAlgorithm};

/// Work for a session: gets the session (or why none could be opened).
pub(super) type Job = Box<dyn FnOnce(Result<&Lease, HsmError>) + Send>;

/// One worker thread per session: a session stays on its thread for its
/// whole life (cryptoki's `Session` is not `Sync`), and the token's per
/// session state stays warm in that thread's cache.
pub(super) struct Pool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    permits: Arc<Semaphore>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

struct PooledSession {
    session: Session,
    /// Session copies of persistent keys, by label (see `Lease::ca_copy`).
    copies: RefCell<HashMap<String, ObjectHandle>>,
    algorithms: RefCell<HashMap<String, KeyAlgorithm>>,
}

impl Pool {
    /// Starts `size` workers; each opens its session on first use.
    pub(super) fn new(context: Pkcs11, slot: Slot, size: usize) -> Result<Self, HsmError> {
        let size = size.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..size)
            .map(|i| {
                let (context, receiver) = (context.clone(), receiver.clone());
                std::thread::Builder::new()
                    .name(format!("qsign-hsm-{i}"))
                    .spawn(move || work(&context, slot, &receiver))
                    .map_err(|_| HsmError::Token("cannot start an HSM worker thread"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            jobs: Mutex::new(Some(sender)),
            // Twice the workers: the next job waits in the queue, not in
            // the async caller, so a worker never idles between two jobs.
            permits: Arc::new(Semaphore::new(2 * size)),
            workers: Mutex::new(workers),
        })
    }

    /// Waits until a job may be queued; bounds the HSM work in flight.
    pub(super) async fn permit(&self) -> Result<OwnedSemaphorePermit, HsmError> {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| HsmError::Token("session pool closed"))
    }

    /// Queues `job` for the next free worker.
    pub(super) fn submit(&self, job: Job) -> Result<(), HsmError> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.as_ref()
            .and_then(|sender| sender.send(job).ok())
            .ok_or(HsmError::Token("session pool closed"))
    }
}

impl Drop for Pool {
    /// Closes the queue and waits for the workers: their sessions close
    /// before the module may be finalised.
    fn drop(&mut self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        for worker in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = worker.join();
        }
    }
}

/// A worker's loop: one session, reopened after a failure.
fn work(context: &Pkcs11, slot: Slot, receiver: &Mutex<mpsc::Receiver<Job>>) {
    let mut idle: Option<PooledSession> = None;
    loop {
        let job = match receiver.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let pooled = match idle.take() {
            Some(pooled) => pooled,
            None => match context.open_rw_session(slot) {
                Ok(session) => PooledSession {
                    session,
                    copies: RefCell::default(),
                    algorithms: RefCell::default(),
                },
                Err(e) => {
                    job(Err(e.into()));
                    continue;
                }
            },
        };
        let lease = Lease {
            pooled,
            healthy: Cell::new(true),
        };
        // A panic in the job has already dropped its guards (destroying
        // its keys); the session is closed all the same.
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&lease))));
        if finished.is_ok() && lease.healthy.get() {
            idle = Some(lease.pooled);
        } else {
            tracing::warn!("closing an HSM session after a failure");
        }
    }
}

/// A session lent to one job.
pub(super) struct Lease {
    pooled: PooledSession,
    healthy: Cell<bool>,
}

impl Lease {
    fn pooled(&self) -> &PooledSession {
        &self.pooled
    }

    pub(super) fn session(&self) -> &Session {
        &self.pooled().session
    }

    /// Marks the session unfit for reuse: it is closed after the job.
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
