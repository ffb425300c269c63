//! A pool of logged-in sessions, each owned by one worker thread. A session
//! is never held across `.await`; a session whose clean-up failed, or whose
//! job failed as if the token were gone, is closed rather than reused, which
//! also destroys any session object it still owns (PKCS#11 v3.0 §4.4:
//! session objects live as long as their session). Recovery from a lost
//! token is `link`'s.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::Decode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::keypool::KeyPool;
use super::link::{self, Link};
use super::{find_one, HsmError, KeyAlgorithm};

/// Work for a session: gets the session (or why none could be opened).
pub(super) type Job = Box<dyn FnOnce(Result<&Lease, HsmError>) + Send>;

/// A worker's idle session; locked while its job runs, so that recovery
/// can wait for running jobs and close every session.
type Idle = Mutex<Option<PooledSession>>;

/// One worker thread per session: a session stays on its thread for its
/// whole life (cryptoki's `Session` is not `Sync`), and the token's per
/// session state stays warm in that thread's cache.
pub(super) struct Pool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    permits: Arc<Semaphore>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    link: Arc<Link>,
    idle: Arc<[Idle]>,
    key_pool: Option<Arc<KeyPool>>,
}

struct PooledSession {
    session: Session,
    /// Session copies of persistent keys, by label (see `Lease::ca_copy`).
    copies: RefCell<HashMap<String, ObjectHandle>>,
    algorithms: RefCell<HashMap<String, KeyAlgorithm>>,
}

impl PooledSession {
    fn new(session: Session) -> Self {
        Self {
            session,
            copies: RefCell::default(),
            algorithms: RefCell::default(),
        }
    }
}

impl Pool {
    /// Starts `size` workers, each opening its session on first use, the
    /// recovery thread, with a timeout the watchdog, and the key pool's
    /// refiller if there is one.
    pub(super) fn new(
        link: Link,
        size: usize,
        watchdog: Option<std::time::Duration>,
        key_pool: Option<KeyPool>,
    ) -> Result<Self, HsmError> {
        let size = size.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let link = Arc::new(link);
        let key_pool = key_pool.map(Arc::new);
        let idle: Arc<[Idle]> = (0..size).map(|_| Mutex::new(None)).collect();
        let mut workers = (0..size)
            .map(|i| {
                let (link, idle, receiver) = (link.clone(), idle.clone(), receiver.clone());
                spawn(format!("qsign-hsm-{i}"), move || {
                    work(&link, &idle[i], &receiver)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (recovering, closing, pooled) = (link.clone(), idle.clone(), key_pool.clone());
        workers.push(spawn("qsign-hsm-recovery".into(), move || {
            // The key pool's session last: only with every job finished is
            // no pooled pair in use.
            link::recover(&recovering, || {
                let sessions = close_all(&closing);
                (sessions, pooled.as_deref().map(KeyPool::close_for_recovery))
            })
        })?);
        if let Some(timeout) = watchdog {
            workers.push(super::watchdog::start(link.clone(), timeout)?);
        }
        if let Some(pool) = &key_pool {
            let (link, pool) = (link.clone(), pool.clone());
            // Its own thread and session: refilling never takes a worker.
            workers.push(spawn("qsign-hsm-keypool".into(), move || {
                pool.refill(&link)
            })?);
        }
        Ok(Self {
            jobs: Mutex::new(Some(sender)),
            // Twice the workers: the next job waits in the queue, not in
            // the async caller, so a worker never idles between two jobs.
            permits: Arc::new(Semaphore::new(2 * size)),
            workers: Mutex::new(workers),
            link,
            idle,
            key_pool,
        })
    }

    pub(super) fn key_pool(&self) -> Option<&Arc<KeyPool>> {
        self.key_pool.as_ref()
    }

    pub(super) fn link(&self) -> &Arc<Link> {
        &self.link
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

    /// Shutdown by `deadline` (`None`: however long it takes): closes the
    /// queue, stops the recovery, the watchdog and the refiller and waits
    /// for every thread; the workers finish the jobs queued (their key
    /// guards destroy their keys). Then every session closes, the key
    /// pool's after destroying its pairs; the login one closes with the
    /// `Link`, last. Returns the threads left behind at the deadline, the
    /// held keys' worker's included (`Link::leave_behind`): with any, the
    /// token hangs and no session closes: C_CloseSession would hang too,
    /// and would pull a session from under the call using it.
    pub(super) fn close(&self, deadline: Option<Instant>) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.link.stop();
        if let Some(pool) = &self.key_pool {
            pool.stop();
        }
        let threads = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        // Just told to stop: an idle thread gets a moment even past the
        // deadline, so that only a thread in (or behind) a call counts.
        let deadline = deadline.map(|d| d.max(Instant::now() + STOPPING));
        self.link.leave_behind(join_by(threads, deadline));
        let left = self.link.left_behind();
        if left == 0 {
            drop(close_all(&self.idle));
            // The token keeps no key of ours.
            if let Some(pool) = &self.key_pool {
                pool.close();
            }
        }
        left
    }
}

/// Time a thread that is not inside a PKCS#11 call takes to end once told.
const STOPPING: Duration = Duration::from_millis(200);

impl Drop for Pool {
    /// [`Pool::close`], unless done. With threads left inside calls the
    /// sessions are leaked, never closed: the process exits next, and the
    /// token drops their objects when its connection ends.
    fn drop(&mut self) {
        if self.close(None) > 0 {
            std::mem::forget(self.idle.clone());
            std::mem::forget(self.key_pool.clone());
            std::mem::forget(self.link.clone());
        }
    }
}

/// Joins the threads that have ended by `deadline` (`None`: every one,
/// however long); returns how many have not, left behind (detached).
pub(super) fn join_by(threads: Vec<JoinHandle<()>>, deadline: Option<Instant>) -> usize {
    if let Some(deadline) = deadline {
        while Instant::now() < deadline && !threads.iter().all(JoinHandle::is_finished) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mut left = 0;
    for thread in threads {
        if deadline.is_none() || thread.is_finished() {
            let _ = thread.join();
        } else {
            let name = thread.thread().name().unwrap_or("?").to_owned();
            tracing::warn!(thread = name, "an HSM thread did not end by the deadline");
            left += 1;
        }
    }
    left
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, HsmError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .map_err(|_| HsmError::Token("cannot start an HSM worker thread"))
}

/// Closes every idle session, waiting for running jobs; the sessions stay
/// closed while the guards are held.
fn close_all(idle: &[Idle]) -> Vec<MutexGuard<'_, Option<PooledSession>>> {
    idle.iter()
        .map(|slot| {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.take();
            slot
        })
        .collect()
}

/// A worker's loop: one session, reopened after a failure; while the token
/// is Down, jobs fail at once.
fn work(link: &Link, idle: &Idle, receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = match receiver.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        if !link.is_up() {
            job(Err(HsmError::Down));
            continue;
        }
        let mut slot = idle.lock().unwrap_or_else(PoisonError::into_inner);
        let pooled = match slot
            .take()
            .map_or_else(|| link.open_session().map(PooledSession::new), Ok)
        {
            Ok(pooled) => pooled,
            Err(e) => {
                drop(slot);
                if e.token_gone() {
                    link.lost(&e);
                }
                job(Err(e));
                continue;
            }
        };
        let lease = Lease {
            pooled,
            healthy: Cell::new(true),
            suspect: Cell::new(false),
        };
        // A panic in the job has already dropped its guards (destroying
        // its keys); the session is closed all the same.
        let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&lease))));
        if finished.is_ok() && lease.healthy.get() && !lease.suspect.get() {
            *slot = Some(lease.pooled);
            continue;
        }
        tracing::warn!("closing an HSM session after a failure");
        drop(lease);
        if finished.is_ok() {
            *slot = reopen(link);
        }
    }
}

/// After a job that failed as if the token were gone: a new session that
/// reaches the token's keys, or the token is lost.
fn reopen(link: &Link) -> Option<PooledSession> {
    match link.fresh_session() {
        Ok(session) => Some(PooledSession::new(session)),
        Err(e) => {
            link.lost(&e);
            None
        }
    }
}

/// Whether a queued job may still run: the worker claims it, or its
/// caller (gone past its deadline, or failed by a Down token) abandons it;
/// whichever comes first. Dropping the caller's copy abandons.
#[derive(Clone, Default)]
pub(super) struct Claim(Arc<AtomicU8>);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Claim {
    pub(super) fn start(&self) -> bool {
        self.settle(STARTED)
    }

    pub(super) fn abandon(&self) -> bool {
        self.settle(ABANDONED)
    }

    fn settle(&self, to: u8) -> bool {
        let state = &self.0;
        state
            .compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// A session lent to one job.
pub(super) struct Lease {
    pooled: PooledSession,
    healthy: Cell<bool>,
    /// The job failed UNAVAILABLE: the token may be gone.
    suspect: Cell<bool>,
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

    /// The job failed as if the token were gone: the session is closed
    /// and the token checked with a new one.
    pub(super) fn suspect(&self) {
        self.suspect.set(true);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_that_does_not_end_by_the_deadline_is_left_behind() {
        let (release, held) = mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || held.recv().unwrap_or_default());
        let ends = std::thread::spawn(|| {});
        let started = Instant::now();
        let deadline = started + Duration::from_millis(100);
        assert_eq!(join_by(vec![ends, stuck], Some(deadline)), 1);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_secs(2));
        drop(release);
    }
}
