//! Keys that outlive one request: the CSC API's one-time keys (SPEC §13),
//! made at `credentials/info` and used by a later `signatures/signHash`.
//!
//! An ephemeral key is a session object (PKCS#11 v3.0 §4.4), so the keys
//! live on one dedicated session owned by one worker thread, apart from the
//! pool: a pooled session goes back to other requests between jobs, this
//! one only ever holds these keys. Every path destroys them: `sign_once`
//! destroys the key after signing (or failing to), `discard` on demand
//! (the reaper), and the worker's `Drop` whatever is left when the holder
//! goes away (shutdown, panic). A failed destroy is logged; closing the
//! session at shutdown destroys what is left (PKCS#11 v3.0 §4.4).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Instant;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use spki::SubjectPublicKeyInfoOwned;
use tokio::sync::oneshot;

use super::link::Link;
use super::{ephemeral, mechanism, HsmError, KeyAlgorithm, KeyCounts};
use crate::Error;

/// A held key, by number; never reused within a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HeldKeyId(u64);

type Command = Box<dyn FnOnce(&mut Worker) + Send>;

/// The owner of the dedicated session; cheap to share behind an `Arc`.
pub struct HeldKeys {
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Told when the worker is left inside a call at shutdown; weak, so
    /// that the login session still closes with the pool's `Hsm`.
    link: Weak<Link>,
}

struct Pair {
    public: ObjectHandle,
    private: ObjectHandle,
    algorithm: KeyAlgorithm,
}

struct Worker {
    session: Session,
    /// Opens a new session when the token failed under this one (through
    /// the pool's link, so a re-initialised module is found too).
    link: Arc<Link>,
    label: String,
    keys: HashMap<HeldKeyId, Pair>,
    next: u64,
    counts: Arc<KeyCounts>,
}

impl HeldKeys {
    pub(super) fn open(
        link: Arc<Link>,
        label: String,
        counts: Arc<KeyCounts>,
    ) -> Result<Self, HsmError> {
        let session = link.open_session()?;
        let weak = Arc::downgrade(&link);
        let (sender, receiver) = mpsc::channel::<Command>();
        let mut worker = Worker {
            session,
            link,
            label,
            keys: HashMap::new(),
            next: 0,
            counts,
        };
        let thread = std::thread::Builder::new()
            .name("qsign-hsm-held".into())
            .spawn(move || {
                while let Ok(command) = receiver.recv() {
                    command(&mut worker);
                }
            })
            .map_err(|_| HsmError::Token("cannot start the held-keys worker thread"))?;
        Ok(Self {
            commands: Mutex::new(Some(sender)),
            worker: Mutex::new(Some(thread)),
            link: weak,
        })
    }

    /// A fresh key pair on the dedicated session: its id and public key.
    pub async fn generate(
        &self,
        algorithm: KeyAlgorithm,
    ) -> Result<(HeldKeyId, SubjectPublicKeyInfoOwned), Error> {
        let (done, result) = oneshot::channel();
        let sent = self.send(Box::new(move |w: &mut Worker| {
            // A caller that went away (cancelled) never learns the id: the
            // key would be held for nothing, so it goes at once.
            if let Err(Ok((id, _))) = done.send(w.generate(algorithm)) {
                w.destroy(id);
            }
        }));
        if !sent {
            return Err(closed().into());
        }
        Ok(result.await.map_err(|_| panicked())??)
    }

    /// Signs each SHA-256 digest with key `id` (X.509/CMS encoding), then
    /// destroys the key whatever happened: a key signs one batch only.
    /// Unknown `id` (destroyed, reaped): `Ok(None)`.
    pub async fn sign_once(
        &self,
        id: HeldKeyId,
        digests: Vec<[u8; 32]>,
    ) -> Result<Option<Vec<Vec<u8>>>, Error> {
        self.call(move |w| w.sign_once(id, &digests)).await
    }

    /// Destroys key `id` soon, without waiting (usable in `Drop`).
    pub fn discard(&self, id: HeldKeyId) {
        self.send(Box::new(move |w: &mut Worker| w.destroy(id)));
    }

    /// Keys held right now.
    pub async fn count(&self) -> Result<usize, Error> {
        self.call(|w| Ok(w.keys.len())).await
    }

    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Worker) -> Result<T, HsmError> + Send + 'static,
    ) -> Result<T, Error> {
        let (done, result) = oneshot::channel();
        let sent = self.send(Box::new(move |w: &mut Worker| {
            let _ = done.send(work(w));
        }));
        if !sent {
            return Err(closed().into());
        }
        Ok(result.await.map_err(|_| panicked())??)
    }

    fn send(&self, command: Command) -> bool {
        let commands = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        commands
            .as_ref()
            .is_some_and(|sender| sender.send(command).is_ok())
    }

    /// Destroys every held key and closes the session (shutdown); waits
    /// for the worker until `deadline` (`None`: however long it takes).
    /// A worker still inside a call then (a hung token) is left behind
    /// and counted (`Pool::close`). Idempotent; `Drop` does it too.
    pub fn close(&self, deadline: Option<Instant>) {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let thread = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        let left = super::pool::join_by(thread.into_iter().collect(), deadline);
        if let (1.., Some(link)) = (left, self.link.upgrade()) {
            link.leave_behind(left);
        }
    }
}

fn closed() -> HsmError {
    HsmError::Token("the held-keys session is closed")
}

fn panicked() -> HsmError {
    HsmError::Task("the held-keys task panicked".into())
}

impl Drop for HeldKeys {
    fn drop(&mut self) {
        self.close(None);
    }
}

impl Worker {
    /// A new key; when the token failed (SPEC §12: gone, logged out) the
    /// session is replaced, so that the next call works once it is back.
    fn generate(
        &mut self,
        algorithm: KeyAlgorithm,
    ) -> Result<(HeldKeyId, SubjectPublicKeyInfoOwned), HsmError> {
        let generated = self.try_generate(algorithm);
        if let Err(e) = &generated {
            if e.kind() == crate::ErrorKind::Unavailable {
                self.reopen();
            }
        }
        generated
    }

    /// The keys of the old session die with it (PKCS#11 v3.0 §4.4): they
    /// are forgotten, and their `sign_once` finds none.
    fn reopen(&mut self) {
        match self.link.open_session() {
            Ok(session) => {
                tracing::warn!("CSC: the token failed; a new held-keys session replaces the old");
                self.keys.clear();
                self.session = session;
            }
            Err(e) => tracing::warn!(error = %e, "CSC: cannot open a new held-keys session yet"),
        }
    }

    fn try_generate(
        &mut self,
        algorithm: KeyAlgorithm,
    ) -> Result<(HeldKeyId, SubjectPublicKeyInfoOwned), HsmError> {
        self.counts.generated.fetch_add(1, Ordering::Relaxed);
        let (public, private) = ephemeral::generate(&self.session, algorithm, &self.label, false)?;
        let id = HeldKeyId(self.next);
        self.next += 1;
        // Held from the moment it exists: any failure below still destroys it.
        self.keys.insert(
            id,
            Pair {
                public,
                private,
                algorithm,
            },
        );
        let attributes = self
            .session
            .get_attributes(public, algorithm.public_attributes())?;
        match algorithm.subject_public_key_info(&attributes) {
            Ok(spki) => Ok((id, spki)),
            Err(e) => {
                self.destroy(id);
                Err(e)
            }
        }
    }

    fn sign_once(
        &mut self,
        id: HeldKeyId,
        digests: &[[u8; 32]],
    ) -> Result<Option<Vec<Vec<u8>>>, HsmError> {
        let Some(pair) = self.keys.remove(&id) else {
            return Ok(None);
        };
        let taken = Taken {
            session: &self.session,
            pair,
        };
        let signatures = digests
            .iter()
            .map(|digest| taken.sign_digest(digest))
            .collect::<Result<_, _>>()?;
        drop(taken);
        Ok(Some(signatures))
    }

    fn destroy(&mut self, id: HeldKeyId) {
        if let Some(pair) = self.keys.remove(&id) {
            drop(Taken {
                session: &self.session,
                pair,
            });
        }
    }
}

impl Drop for Worker {
    /// Shutdown or a panic: no held key outlives the holder.
    fn drop(&mut self) {
        let ids: Vec<HeldKeyId> = self.keys.keys().copied().collect();
        for id in ids {
            self.destroy(id);
        }
    }
}

/// A key out of the map: destroyed when this guard drops.
struct Taken<'s> {
    session: &'s Session,
    pair: Pair,
}

impl Taken<'_> {
    /// Signs a SHA-256 digest computed by the client (CSC signHash).
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<Vec<u8>, HsmError> {
        let algorithm = self.pair.algorithm;
        if algorithm.is_ec() {
            let raw = self
                .session
                .sign(&Mechanism::Ecdsa, self.pair.private, digest)?;
            return mechanism::ecdsa_sig_value(&raw);
        }
        // RFC 8017 §9.2: CKM_RSA_PKCS pads a DigestInfo made here.
        let mut digest_info = mechanism::SHA256_DIGEST_INFO_PREFIX.to_vec();
        digest_info.extend_from_slice(digest);
        Ok(self
            .session
            .sign(&Mechanism::RsaPkcs, self.pair.private, &digest_info)?)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        for handle in [self.pair.private, self.pair.public] {
            if let Err(e) = self.session.destroy_object(handle) {
                // The objects go with the session when the worker ends.
                tracing::error!(error = %e, "could not destroy a held CSC key");
            }
        }
    }
}
