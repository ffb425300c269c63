//! The only module that knows PKCS#11 (cryptoki).
//!
//! One shared context per process (`OS_LOCKING_OK`), a pool of logged-in
//! sessions, and [`Hsm::run`]: the single async boundary that waits for a
//! session and runs all HSM work of a request as one job on that session's
//! worker thread, off the async workers.

mod eddsa;
mod ephemeral;
mod held;
mod keypool;
mod link;
mod mechanism;
mod pool;
mod watchdog;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use spki::{AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, SubjectPublicKeyInfoOwned};

use crate::signer::SignatureValue;
use crate::{Error, ErrorKind};

pub use ephemeral::EphemeralKey;
pub use held::{HeldKeyId, HeldKeys};
use keypool::KeyPool;
pub use link::Health;
use link::Link;
pub use mechanism::KeyAlgorithm;
use pool::{Claim, Lease, Pool};
use tokio::sync::oneshot;

/// What the token did wrong. Kept whole: cryptoki records which `C_*`
/// function failed.
#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("PKCS#11: {0}")]
    Pkcs11(#[from] cryptoki::error::Error),
    #[error("token: {0}")]
    Token(&'static str),
    #[error("no token labelled '{0}' in the PKCS#11 module")]
    NoToken(String),
    #[error("no private key labelled '{0}' in the token")]
    NoKey(String),
    #[error("encoding: {0}")]
    Der(#[from] der::Error),
    #[error("HSM task failed: {0}")]
    Task(String),
    #[error("the token is unreachable; reconnecting")]
    Down,
    #[error("the token did not answer within {0:?}")]
    Hung(std::time::Duration),
}

impl HsmError {
    fn kind(&self) -> ErrorKind {
        use cryptoki::error::Error as CkError;
        match self {
            Self::Pkcs11(CkError::Pkcs11(rv, _)) if token_gone(*rv) => ErrorKind::Unavailable,
            // A key the configuration names and the token does not show:
            // the token is not (all) there, e.g. its storage went away.
            Self::Pkcs11(CkError::LibraryLoading(_))
            | Self::NoToken(_)
            | Self::NoKey(_)
            | Self::Down
            | Self::Hung(_) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    /// The token, not the request, failed (see `token_gone`).
    fn token_gone(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

/// Return values that mean the token, not the request, is the problem
/// (PKCS#11 v2.40 §5.1 return values; §11.1 in v2.20): the session is closed and
/// the token looked for again (`link`).
fn token_gone(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionClosed
            | RvError::SessionHandleInvalid
            | RvError::SessionCount
            | RvError::CryptokiNotInitialized
            | RvError::UserNotLoggedIn
            | RvError::PinExpired
            | RvError::GeneralError
            | RvError::HostMemory
    )
}

impl From<HsmError> for Error {
    fn from(e: HsmError) -> Self {
        let message = match e.kind() {
            ErrorKind::Unavailable => "the HSM is unavailable; try again later or ask the operator",
            _ => "the HSM failed to complete the operation",
        };
        Error::new(e.kind(), message).with_source(e)
    }
}

/// A PKCS#11 module, loaded and initialised once per process.
#[derive(Clone)]
pub struct Module {
    context: Pkcs11,
}

impl Module {
    pub fn load(path: &Path) -> Result<Self, HsmError> {
        let context = Pkcs11::new(path)?;
        context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))?;
        Ok(Self { context })
    }

    /// The slot whose token carries `label` (never a slot number).
    pub fn slot(&self, label: &str) -> Result<Option<Slot>, HsmError> {
        for slot in self.context.get_slots_with_initialized_token()? {
            if self.context.get_token_info(slot)?.label() == label {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// Initialises a fresh token in a free slot and sets its user PIN.
    /// Development and tests only: production tokens are made by the operator.
    pub fn init_token(
        &self,
        label: &str,
        so_pin: &AuthPin,
        user_pin: &AuthPin,
    ) -> Result<Slot, HsmError> {
        let free = self
            .context
            .get_slots_with_token()?
            .into_iter()
            .find(|slot| {
                self.context
                    .get_token_info(*slot)
                    .is_ok_and(|info| !info.token_initialized())
            })
            .ok_or(HsmError::Token("no free slot to initialise a token in"))?;
        self.context.init_token(free, so_pin, label)?;
        // SoftHSM moves a freshly initialised token to a new slot id.
        let slot = self
            .slot(label)?
            .ok_or_else(|| HsmError::NoToken(label.into()))?;
        let session = self.context.open_rw_session(slot)?;
        session.login(UserType::So, Some(so_pin))?;
        session.init_pin(user_pin)?;
        Ok(slot)
    }

    /// Finalises the module; call once at shutdown, after the last session.
    pub fn finalize(self) {
        if let Err(e) = self.context.finalize() {
            tracing::warn!(error = %e, "C_Finalize failed");
        }
    }

    /// Shutdown with calls still in progress ([`Closed`]): no C_Finalize,
    /// undefined while other threads are inside Cryptoki calls (PKCS#11
    /// v2.40 §5.4), and the library stays loaded under them. The process
    /// exits next; its connection to the token ends with it.
    pub fn leave(self) {
        std::mem::forget(self);
    }
}

/// Settings of the session pool.
#[derive(Clone, Debug)]
pub struct HsmSettings {
    pub token_label: String,
    /// Sessions that may work at once (the pool's size).
    pub sessions: usize,
    /// Label of the issuing CA's persistent private key.
    pub issuing_key_label: String,
    /// Label given to ephemeral keys; tests use it to find leftovers.
    pub ephemeral_label: String,
    /// A token that does not answer a probe within this is Down
    /// (`watchdog`); `None`: no watchdog (set-up, the CLI, tests).
    pub watchdog: Option<std::time::Duration>,
    /// Pre-generated key pairs kept ready, per algorithm (`[hsm.key_pool]`);
    /// empty or all 0: none.
    pub key_pool: Vec<(KeyAlgorithm, usize)>,
}

/// A logged-in token with a pool of sessions. Cheap to clone.
#[derive(Clone)]
pub struct Hsm {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    settings: Arc<HsmSettings>,
    keys: Arc<KeyCounts>,
}

/// Ephemeral key pairs: plain counters, exported as metrics elsewhere.
#[derive(Default)]
struct KeyCounts {
    /// Generations asked for (a failed one costs the HSM too).
    generated: AtomicU64,
    /// Pairs whose guard has not dropped yet.
    alive: AtomicU64,
}

impl Hsm {
    /// Finds the token by label, logs in, and starts the pool and its
    /// recovery (`link`): from here a lost token is found again by itself.
    pub fn open(module: &Module, pin: &AuthPin, settings: HsmSettings) -> Result<Self, HsmError> {
        let link = Link::open(
            module.context.clone(),
            pin.clone(),
            settings.token_label.clone(),
            settings.issuing_key_label.clone(),
        )?;
        let key_pool = KeyPool::new(&settings.key_pool, settings.ephemeral_label.clone());
        let pool = Pool::new(link, settings.sessions, settings.watchdog, key_pool)?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                settings: Arc::new(settings),
                keys: Arc::default(),
            }),
        })
    }

    /// A dedicated session for keys that outlive one request (the CSC
    /// one-time keys, SPEC §13), labelled like the ephemeral keys.
    pub fn held_keys(&self) -> Result<HeldKeys, HsmError> {
        let inner = &self.inner;
        HeldKeys::open(
            inner.pool.link().clone(),
            inner.settings.ephemeral_label.clone(),
            inner.keys.clone(),
        )
    }

    /// Up or Down as the token comes and goes; gRPC health follows it.
    pub fn health(&self) -> tokio::sync::watch::Receiver<Health> {
        self.inner.pool.link().health()
    }

    pub fn settings(&self) -> &HsmSettings {
        &self.inner.settings
    }

    /// Ephemeral key pairs this pool has generated since it opened: the HSM
    /// work requests caused (a Prometheus counter later; tests use it to
    /// show a refused request cost no key).
    pub fn ephemeral_keys_generated(&self) -> u64 {
        self.inner.keys.generated.load(Ordering::Relaxed)
    }

    /// Ephemeral key pairs that exist now (a gauge): 0 whenever no request
    /// is in the HSM.
    pub fn ephemeral_keys_alive(&self) -> u64 {
        self.inner.keys.alive.load(Ordering::Relaxed)
    }

    /// Key pairs of `algorithm` ready in the key pool now.
    pub fn pooled_keys(&self, algorithm: KeyAlgorithm) -> usize {
        self.inner
            .pool
            .key_pool()
            .map_or(0, |pool| pool.len(algorithm))
    }

    /// Key pairs from the key pool that requests used since it opened
    /// (not counting pairs found gone when taken).
    pub fn pooled_keys_used(&self) -> u64 {
        self.inner.pool.key_pool().map_or(0, |pool| pool.used())
    }

    /// How long shutdown waits for the HSM's threads once the requests'
    /// grace is over: the watchdog's timeout, the operator's bound on a
    /// token call; a call older than that counts as hung anyway.
    pub fn shutdown_wait(&self) -> Duration {
        self.inner.settings.watchdog.unwrap_or(SHUTDOWN_WAIT)
    }

    /// Shutdown by `deadline`: the workers finish their jobs (their guards
    /// destroy their keys) and every session closes, the login session
    /// last. Threads still inside a call at the deadline (a hung token)
    /// are left behind and no session closes (`Pool::close`); see
    /// [`Closed`]. Background tasks (the audit log's checkpoint signer)
    /// let go of their handles as they notice the shutdown; one still held
    /// after a moment keeps the login session, which C_Finalize closes.
    pub fn close(self, deadline: Instant) -> Closed {
        let keys = self.inner.keys.clone();
        // Down, a handle still held waits for a stuck call (a new job fails
        // at once): the threads get the time instead.
        let until = if self.inner.pool.link().is_up() {
            deadline.min(Instant::now() + HANDLES)
        } else {
            Instant::now()
        };
        let inner = last_handle(self.inner, until);
        let calls_in_progress = match &inner {
            Ok(inner) => inner.pool.close(Some(deadline)),
            Err(shared) => {
                tracing::warn!("the HSM is still in use; shutting it down all the same");
                shared.pool.close(Some(deadline))
            }
        };
        drop(inner);
        Closed {
            ephemeral_keys_alive: keys.alive.load(Ordering::Relaxed),
            calls_in_progress,
        }
    }

    /// The async boundary: waits for a permit, then runs `work` on a
    /// session's worker thread, off the async workers. Cancelling the
    /// caller does not cancel `work` once it runs (its guards still clean
    /// up); a job still queued is dropped unrun. A token Down (lost, or
    /// hung: `watchdog`) fails the request at once unless its work runs.
    pub async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&HsmSession<'_>) -> Result<T, Error> + Send + 'static,
    {
        let mut health = self.inner.pool.link().health();
        let down = async move {
            let _ = health.wait_for(|h| *h == Health::Down).await;
        };
        tokio::pin!(down);
        let permit = tokio::select! {
            permit = self.inner.pool.permit() => permit?,
            () = &mut down => return Err(HsmError::Down.into()),
        };
        let claim = Claim::default();
        let (done, result) = oneshot::channel();
        let starts = claim.clone();
        self.submit(
            work,
            move || starts.start(),
            move |outcome| {
                drop(permit);
                let _ = done.send(outcome);
            },
        )?;
        tokio::pin!(result);
        tokio::select! {
            biased;
            outcome = &mut result => return outcome.map_err(|_| panicked())?,
            () = &mut down => {}
        }
        if claim.abandon() {
            return Err(HsmError::Down.into());
        }
        // Running: its outcome, or the caller's deadline.
        result.await.map_err(|_| panicked())?
    }

    /// Queues `work` for a session's worker; `reply` gets its outcome, or
    /// `Down` unrun when `start` says its caller is gone. A panic in
    /// `work` drops `reply` unsent.
    fn submit<T, F>(
        &self,
        work: F,
        start: impl FnOnce() -> bool + Send + 'static,
        reply: impl FnOnce(Result<T, Error>) + Send + 'static,
    ) -> Result<(), Error>
    where
        F: FnOnce(&HsmSession<'_>) -> Result<T, Error> + Send + 'static,
    {
        let settings = self.inner.settings.clone();
        let keys = self.inner.keys.clone();
        let key_pool = self.inner.pool.key_pool().cloned();
        // The request's span (its request id) follows the job to the worker.
        let span = tracing::Span::current();
        let queued = std::time::Instant::now();
        self.inner.pool.submit(Box::new(move |lease| {
            let _entered = span.enter();
            if !start() {
                tracing::debug!("HSM job dropped unrun: its caller is gone");
                return reply(Err(HsmError::Down.into()));
            }
            let metrics = crate::metrics::metrics();
            metrics
                .hsm_queue_wait
                .observe(queued.elapsed().as_secs_f64());
            metrics.hsm_sessions_busy.inc();
            let started = std::time::Instant::now();
            let outcome = lease.map_err(Error::from).and_then(|lease| {
                let outcome = work(&HsmSession {
                    lease,
                    settings: &settings,
                    keys: &keys,
                    key_pool: key_pool.as_deref(),
                });
                if matches!(&outcome, Err(e) if e.kind() == ErrorKind::Unavailable) {
                    lease.suspect();
                }
                outcome
            });
            metrics.hsm_job.observe(started.elapsed().as_secs_f64());
            metrics.hsm_sessions_busy.dec();
            reply(outcome);
        }))?;
        Ok(())
    }

    /// Logs the application out of the token: every session loses the right
    /// to use private keys until the recovery (`link`) logs in again after
    /// the next request fails. For tests of the HSM-unavailable path (SPEC
    /// §7, §12).
    pub fn logout(&self) -> Result<(), HsmError> {
        self.inner.pool.link().logout()
    }

    /// Runs `work` on a session's worker and waits for it on the calling
    /// thread; for start-up, the CLI and tests (never on an async worker).
    pub fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&HsmSession<'_>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = std::sync::mpsc::channel();
        self.submit(
            work,
            || true,
            move |outcome| {
                let _ = done.send(outcome);
            },
        )?;
        result.recv().map_err(|_| panicked())?
    }
}

fn panicked() -> Error {
    Error::from(HsmError::Task("the HSM task panicked".into()))
}

/// [`Hsm::shutdown_wait`] without a watchdog (set-up, the CLI, tests).
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// How long background tasks get to let go of their handles.
const HANDLES: Duration = Duration::from_secs(5);

/// `inner` unshared once the other handles are gone, or still shared at
/// `until`.
fn last_handle(mut inner: Arc<Inner>, until: Instant) -> Result<Inner, Arc<Inner>> {
    loop {
        match Arc::try_unwrap(inner) {
            Err(shared) if Instant::now() < until => {
                inner = shared;
                std::thread::sleep(Duration::from_millis(10));
            }
            done => return done,
        }
    }
}

/// What [`Hsm::close`] left.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Ephemeral key pairs not destroyed: 0 after a clean close.
    pub ephemeral_keys_alive: u64,
    /// Threads left inside a PKCS#11 call, or waiting behind one, at the
    /// deadline: the token hangs. Their sessions stay open and the module
    /// may not be finalised ([`Module::leave`]).
    pub calls_in_progress: usize,
}

/// One pooled session, lent to one request.
pub struct HsmSession<'a> {
    lease: &'a Lease,
    settings: &'a HsmSettings,
    keys: &'a KeyCounts,
    key_pool: Option<&'a KeyPool>,
}

impl<'a> HsmSession<'a> {
    fn session(&self) -> &Session {
        self.lease.session()
    }

    /// A fresh key pair as sensitive, non-extractable session objects,
    /// destroyed when the guard drops: from the key pool when it has one
    /// ready, else generated now.
    pub fn generate_ephemeral(
        &self,
        algorithm: KeyAlgorithm,
    ) -> Result<EphemeralKey<'_>, HsmError> {
        // Counted when asked for: a failed generation costs the HSM too.
        self.keys.generated.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics().ephemeral_keys_generated.inc();
        if let Some(pool) = self.key_pool {
            let pair = pool.take(algorithm);
            let alive = &self.keys.alive;
            if let Some(key) =
                pair.and_then(|p| EphemeralKey::adopt(self.lease, algorithm, p, alive))
            {
                pool.note_used();
                return Ok(key);
            }
        }
        EphemeralKey::generate(
            self.lease,
            algorithm,
            &self.settings.ephemeral_label,
            &self.keys.alive,
        )
    }

    /// The issuing CA key, through this session's in-token session copy.
    pub fn issuing_ca(&self) -> Result<KeySigner<'_>, HsmError> {
        self.session_signer(&self.settings.issuing_key_label)
    }

    /// The persistent private key `label` (a CA or the TSA key) through a
    /// session copy made once per pooled session: faster than the token
    /// object in SoftHSM, and as sensitive and non-extractable.
    pub fn session_signer(&self, label: &str) -> Result<KeySigner<'_>, HsmError> {
        let key = self.lease.ca_copy(label)?;
        let algorithm = self.persistent_algorithm(label)?;
        Ok(KeySigner {
            session: self.session(),
            key,
            algorithm,
        })
    }

    /// A persistent private key by label, e.g. the root CA key at set-up.
    pub fn persistent_signer(&self, label: &str) -> Result<KeySigner<'_>, HsmError> {
        let key = find_one(self.session(), ObjectClass::PRIVATE_KEY, label)?;
        Ok(KeySigner {
            session: self.session(),
            key,
            algorithm: self.persistent_algorithm(label)?,
        })
    }

    /// The SPKI of the persistent public key labelled `label`.
    pub fn persistent_public_key(
        &self,
        label: &str,
    ) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
        let algorithm = self.persistent_algorithm(label)?;
        let key = find_one(self.session(), ObjectClass::PUBLIC_KEY, label)?;
        let attributes = self
            .session()
            .get_attributes(key, algorithm.public_attributes())?;
        algorithm.subject_public_key_info(&attributes)
    }

    /// Generates a persistent, sensitive, non-extractable key pair (CA set-up).
    pub fn generate_persistent(
        &self,
        algorithm: KeyAlgorithm,
        label: &str,
    ) -> Result<SubjectPublicKeyInfoOwned, HsmError> {
        ephemeral::generate_persistent(self.session(), algorithm, label)
    }

    /// Whether a private key labelled `label` exists.
    pub fn has_private_key(&self, label: &str) -> Result<bool, HsmError> {
        Ok(!find(self.session(), ObjectClass::PRIVATE_KEY, label)?.is_empty())
    }

    /// Handles of every object labelled `label`, token or session.
    pub fn objects_labelled(&self, label: &str) -> Result<Vec<ObjectHandle>, HsmError> {
        Ok(self
            .session()
            .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])?)
    }

    /// The labels of every token object (persistent, not session), e.g.
    /// to show that nothing but the CA, TSA and OCSP keys stays behind.
    pub fn token_object_labels(&self) -> Result<Vec<String>, HsmError> {
        let session = self.session();
        let mut labels = Vec::new();
        for object in session.find_objects(&[Attribute::Token(true)])? {
            for attribute in session.get_attributes(object, &[AttributeType::Label])? {
                if let Attribute::Label(label) = attribute {
                    labels.push(String::from_utf8_lossy(&label).into_owned());
                }
            }
        }
        Ok(labels)
    }

    /// Tries to read `CKA_VALUE`; `Ok(None)` when the token refuses
    /// (sensitive). Used by tests to prove ephemeral keys cannot leave.
    pub fn read_value(&self, object: ObjectHandle) -> Result<Option<Vec<u8>>, HsmError> {
        let info = self
            .session()
            .get_attribute_info(object, &[AttributeType::Value])?;
        match info.first() {
            Some(cryptoki::object::AttributeInfo::Available(_)) => {}
            _ => return Ok(None),
        }
        let attributes = self
            .session()
            .get_attributes(object, &[AttributeType::Value])?;
        Ok(attributes.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    /// Makes the persistent Ed25519 audit key `label` (refuses to replace
    /// one); returns its raw public key (RFC 8032).
    pub fn generate_ed25519(&self, label: &str) -> Result<[u8; 32], HsmError> {
        eddsa::generate(self.session(), label)
    }

    /// The raw public key of the Ed25519 key pair `label`.
    pub fn ed25519_public_key(&self, label: &str) -> Result<[u8; 32], HsmError> {
        eddsa::public_key(self.session(), label)
    }

    /// An Ed25519 signature of `message` by the persistent key `label`.
    pub fn ed25519_sign(&self, label: &str, message: &[u8]) -> Result<[u8; 64], HsmError> {
        eddsa::sign(self.session(), label, message)
    }

    fn persistent_algorithm(&self, label: &str) -> Result<KeyAlgorithm, HsmError> {
        self.lease.algorithm_of(label)
    }
}

fn find(session: &Session, class: ObjectClass, label: &str) -> Result<Vec<ObjectHandle>, HsmError> {
    Ok(session.find_objects(&[
        Attribute::Class(class),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ])?)
}

fn find_one(session: &Session, class: ObjectClass, label: &str) -> Result<ObjectHandle, HsmError> {
    match find(session, class, label)?.as_slice() {
        [one] => Ok(*one),
        [] => Err(HsmError::NoKey(label.into())),
        _ => Err(HsmError::Token("several keys share one label")),
    }
}

/// A private key in the token as a `signature::Signer`.
pub struct KeySigner<'s> {
    session: &'s Session,
    key: ObjectHandle,
    algorithm: KeyAlgorithm,
}

impl KeySigner<'_> {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
}

impl signature::Signer<SignatureValue> for KeySigner<'_> {
    fn try_sign(&self, message: &[u8]) -> Result<SignatureValue, signature::Error> {
        self.algorithm
            .sign(self.session, self.key, message)
            .map(SignatureValue::new)
            // As an Error, so that its kind survives the signature crate.
            .map_err(|e| signature::Error::from_source(Error::from(e)))
    }
}

impl DynSignatureAlgorithmIdentifier for KeySigner<'_> {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.algorithm.signature_algorithm())
    }
}
