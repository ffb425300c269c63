//! Pre-generated key pairs (`[hsm.key_pool]`): an RSA key generation takes
//! SoftHSM 80-430 ms, so a thread of its own makes them ahead, one at a
//! time, while a pool is below its size. A request takes a pair (used once,
//! then destroyed by its `EphemeralKey` guard) or, with none ready,
//! generates its own as without a pool: it never waits for the refiller.
//!
//! The pairs are session objects (PKCS#11 v3.0 §4.4) of the refiller's
//! session, visible to every session of the application, so any pool
//! session may sign with and destroy them. They live as long as that
//! session: recovery (`link`) closes it together with the pool sessions
//! and forgets every handle (`close_for_recovery`); shutdown destroys
//! every pair, then closes it (`close`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use spki::SubjectPublicKeyInfoOwned;

use super::link::Link;
use super::{ephemeral, HsmError, KeyAlgorithm};
use crate::metrics::{metrics, AlgorithmLabel};

/// How often the refiller looks again while the token is Down, and how long
/// it waits after a failed generation.
const PAUSE: Duration = Duration::from_millis(500);

/// A pair ready for one signature.
pub(super) struct PooledPair {
    pub(super) public: ObjectHandle,
    pub(super) private: ObjectHandle,
    pub(super) public_key_info: SubjectPublicKeyInfoOwned,
}

pub(super) struct KeyPool {
    /// Pool size per algorithm; none is zero.
    targets: Vec<(KeyAlgorithm, usize)>,
    label: String,
    ready: Mutex<Ready>,
    /// Wakes the refiller: a pair taken, the pool emptied, shutdown.
    changed: Condvar,
    /// The refiller's session, locked while it generates: recovery and
    /// shutdown wait for the pair being made.
    session: Mutex<Option<Session>>,
    /// Pairs requests signed with (tests show the pool was used).
    used: AtomicU64,
}

#[derive(Default)]
struct Ready {
    pairs: HashMap<KeyAlgorithm, Vec<PooledPair>>,
    stopping: bool,
}

impl KeyPool {
    /// `None` when every size is 0 (the default): no thread, no session.
    pub(super) fn new(sizes: &[(KeyAlgorithm, usize)], label: String) -> Option<Self> {
        let targets: Vec<_> = sizes.iter().copied().filter(|(_, n)| *n > 0).collect();
        (!targets.is_empty()).then(|| Self {
            targets,
            label,
            ready: Mutex::default(),
            changed: Condvar::new(),
            session: Mutex::new(None),
            used: AtomicU64::new(0),
        })
    }

    fn ready(&self) -> MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn session(&self) -> MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ready pair of `algorithm`, removed from the pool.
    pub(super) fn take(&self, algorithm: KeyAlgorithm) -> Option<PooledPair> {
        let pair = self.ready().pairs.get_mut(&algorithm)?.pop()?;
        gauge(algorithm).dec();
        self.changed.notify_all();
        Some(pair)
    }

    pub(super) fn len(&self, algorithm: KeyAlgorithm) -> usize {
        self.ready().pairs.get(&algorithm).map_or(0, Vec::len)
    }

    /// A request adopted a pair it took (`EphemeralKey::adopt`).
    pub(super) fn note_used(&self) {
        self.used.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The refiller thread's loop, until [`Self::stop`]. A failure keeps
    /// the session: pairs taken from it may be signing right now. A token
    /// that is gone is the pool workers' to find; recovery then closes it.
    pub(super) fn refill(&self, link: &Link) {
        let mut failing = false;
        while let Some(algorithm) = self.wanted(link) {
            let made = self.make_one(&mut self.session(), link, algorithm);
            match made {
                Ok(()) => failing = false,
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "the key pool cannot make key pairs; requests make their own");
                    }
                    self.pause();
                }
            }
        }
    }

    /// The first algorithm below its size once the token is Up; `None`
    /// when stopping.
    fn wanted(&self, link: &Link) -> Option<KeyAlgorithm> {
        let mut ready = self.ready();
        loop {
            if ready.stopping {
                return None;
            }
            let short = self
                .targets
                .iter()
                .find(|(algorithm, size)| ready.pairs.get(algorithm).map_or(0, Vec::len) < *size);
            if let (Some((algorithm, _)), true) = (short, link.is_up()) {
                return Some(*algorithm);
            }
            // Timed: the token coming back Up does not notify us.
            ready = self
                .changed
                .wait_timeout(ready, PAUSE)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn make_one(
        &self,
        session: &mut Option<Session>,
        link: &Link,
        algorithm: KeyAlgorithm,
    ) -> Result<(), HsmError> {
        let session = match session {
            Some(session) => session,
            None => session.insert(link.open_session()?),
        };
        let (public, private) = ephemeral::generate(session, algorithm, &self.label, false)?;
        let made = session
            .get_attributes(public, algorithm.public_attributes())
            .map_err(HsmError::from)
            .and_then(|attributes| algorithm.subject_public_key_info(&attributes));
        let public_key_info = match made {
            Ok(info) => info,
            Err(e) => {
                destroy(session, public, private);
                return Err(e);
            }
        };
        let mut ready = self.ready();
        ready.pairs.entry(algorithm).or_default().push(PooledPair {
            public,
            private,
            public_key_info,
        });
        gauge(algorithm).inc();
        Ok(())
    }

    /// Waits [`PAUSE`] unless stopping.
    fn pause(&self) {
        let ready = self.ready();
        let _ = self
            .changed
            .wait_timeout_while(ready, PAUSE, |r| !r.stopping)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn forget_all(&self, ready: &mut Ready) {
        for (algorithm, pairs) in ready.pairs.drain() {
            gauge(algorithm).dec_by(pairs.len() as i64);
        }
        self.changed.notify_all();
    }

    /// For recovery, which holds every pool session closed (no job runs,
    /// so no taken pair is in use): closes the refiller's session, which
    /// destroys its pairs, forgets their handles, and keeps it closed
    /// while the guard is held. After a re-initialisation of the module
    /// the old handles could name someone else's objects.
    pub(super) fn close_for_recovery(&self) -> MutexGuard<'_, Option<Session>> {
        let mut session = self.session();
        self.forget_all(&mut self.ready());
        session.take();
        session
    }

    /// Ends [`Self::refill`].
    pub(super) fn stop(&self) {
        self.ready().stopping = true;
        self.changed.notify_all();
    }

    /// Shutdown, after the refiller and the pool workers have stopped:
    /// destroys every pair, then closes the session (which would destroy
    /// what a failed destroy left, §4.4).
    pub(super) fn close(&self) {
        let mut session = self.session();
        let mut ready = self.ready();
        if let Some(session) = session.as_ref() {
            for pair in ready.pairs.values().flatten() {
                destroy(session, pair.public, pair.private);
            }
        }
        self.forget_all(&mut ready);
        session.take();
    }
}

fn destroy(session: &Session, public: ObjectHandle, private: ObjectHandle) {
    for handle in [private, public] {
        if let Err(e) = session.destroy_object(handle) {
            tracing::warn!(error = %e, "could not destroy a pooled key; its session closes next");
        }
    }
}

fn gauge(algorithm: KeyAlgorithm) -> prometheus_client::metrics::gauge::Gauge {
    metrics()
        .key_pool
        .get_or_create(&AlgorithmLabel {
            algorithm: algorithm.name(),
        })
        .clone()
}
