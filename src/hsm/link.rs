//! The token as a connection that can be lost and found again (SPEC §12).
//!
//! ```text
//! job fails UNAVAILABLE ─► its session is closed; the worker opens a new
//!                          one and looks for the probe key
//!                          ├─ found: Up, the new session serves the next job
//!                          └─ not:   Down ─► jobs fail at once (UNAVAILABLE),
//!                                            health NOT_SERVING
//! recovery thread, while Down, with back-off:
//!   close every session ─► find the token by label ─► log in ─► probe ─► Up
//!        └─ the module lost the token: C_Finalize + C_Initialize first
//! ```
//!
//! A module whose device went away (a p11-kit client whose server was
//! restarted, a network HSM's client library) reconnects only through
//! C_Finalize and C_Initialize (PKCS#11 v2.40 and v3.0 §5.4). That drops every
//! session of the process, so it happens only when the token cannot be
//! found or reached at all, with every pooled session closed first: one
//! `Hsm` per module where a token can be lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectClass;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tokio::sync::watch;

use super::{find, token_gone, HsmError};

/// Whether the token can be reached (gRPC health follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Requests fail with UNAVAILABLE at once; recovery is under way.
    Down,
}

/// First and longest wait between two reconnection attempts.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

pub(super) struct Link {
    connection: Mutex<Connection>,
    pin: AuthPin,
    token_label: String,
    /// A persistent key that must be reachable for the token to count as
    /// back (the issuing CA's): a token without it is not the one we serve.
    probe_label: String,
    health: watch::Sender<Health>,
    /// Wakes the recovery thread (token lost, or shutting down).
    wake: Condvar,
    stopping: Mutex<bool>,
    /// Threads left inside a PKCS#11 call, or waiting behind one, at
    /// shutdown (a hung token): once there is one, nothing may close a
    /// session or finalise the module (`Pool::close`).
    left_behind: AtomicUsize,
}

struct Connection {
    context: Pkcs11,
    slot: Option<Slot>,
    /// Keeps the login alive while pool sessions come and go (closing the
    /// last session of an application logs it out, PKCS#11 v3.0 §5.6).
    login: Option<Session>,
}

impl Link {
    /// Finds the token and logs in; failing here refuses to start.
    pub(super) fn open(
        context: Pkcs11,
        pin: AuthPin,
        token_label: String,
        probe_label: String,
    ) -> Result<Self, HsmError> {
        let link = Self {
            connection: Mutex::new(Connection {
                context,
                slot: None,
                login: None,
            }),
            pin,
            token_label,
            probe_label,
            health: watch::Sender::new(Health::Up),
            wake: Condvar::new(),
            stopping: Mutex::new(false),
            left_behind: AtomicUsize::new(0),
        };
        link.connect()?;
        Ok(link)
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn health(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    pub(super) fn is_up(&self) -> bool {
        *self.health.borrow() == Health::Up
    }

    /// The token failed: Down, and the recovery thread takes over.
    pub(super) fn lost(&self, why: &HsmError) {
        let was_up = self
            .health
            .send_if_modified(|h| std::mem::replace(h, Health::Down) == Health::Up);
        if was_up {
            tracing::error!(error = %why, "the HSM token is unreachable; requests get UNAVAILABLE until it is back");
        }
        // Under the lock: the recovery thread is either before its check
        // of the health or waiting, never in between.
        drop(self.stopping.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_all();
    }

    /// A new session (a pool worker's), logged in by the login session:
    /// a lost login shows as CKR_USER_NOT_LOGGED_IN and is recovered here.
    pub(super) fn open_session(&self) -> Result<Session, HsmError> {
        let (context, slot) = {
            let connection = self.connection();
            let slot = connection.slot.ok_or(HsmError::Down)?;
            (connection.context.clone(), slot)
        };
        Ok(context.open_rw_session(slot)?)
    }

    /// After a failure that may be the token's: a new session that reaches
    /// the probe key, else the token is lost.
    pub(super) fn fresh_session(&self) -> Result<Session, HsmError> {
        let session = self.open_session()?;
        self.probe(&session)?;
        Ok(session)
    }

    /// C_GetTokenInfo on the token's slot: whether the token answers at
    /// all (`watchdog`). Under the connection lock, so that it never runs
    /// beside a C_Finalize (`reinitialize`; PKCS#11 v2.40 §5.4 leaves that
    /// undefined); a hung call holds the lock, as a hung `connect` would.
    pub(super) fn probe_token(&self) -> Result<(), HsmError> {
        let connection = self.connection();
        let slot = connection.slot.ok_or(HsmError::Down)?;
        connection.context.get_token_info(slot)?;
        Ok(())
    }

    fn probe(&self, session: &Session) -> Result<(), HsmError> {
        if find(session, ObjectClass::PRIVATE_KEY, &self.probe_label)?.is_empty() {
            return Err(HsmError::NoKey(self.probe_label.clone()));
        }
        Ok(())
    }

    /// Finds the token by label (its slot may have changed), opens the login
    /// session and logs in.
    fn connect(&self) -> Result<(), HsmError> {
        let mut connection = self.connection();
        connection.login = None;
        connection.slot = None;
        let slot = find_slot(&connection.context, &self.token_label)?;
        let session = connection.context.open_rw_session(slot)?;
        login(&session, &self.pin)?;
        connection.slot = Some(slot);
        connection.login = Some(session);
        Ok(())
    }

    /// One recovery attempt; the caller has closed every pooled session.
    fn reconnect(&self) -> Result<(), HsmError> {
        match self.connect() {
            Ok(()) => {}
            Err(e) if module_lost(&e) => {
                tracing::debug!(error = %e, "re-initialising the PKCS#11 module");
                self.reinitialize()?;
                self.connect()?;
            }
            Err(e) => return Err(e),
        }
        let connection = self.connection();
        let login = connection.login.as_ref().ok_or(HsmError::Down)?;
        self.probe(login)
    }

    /// PKCS#11 v2.40 §5.4: C_Finalize, then C_Initialize. No session of the
    /// old initialisation may survive it: its handle could name a session
    /// of the new one.
    fn reinitialize(&self) -> Result<(), HsmError> {
        let mut connection = self.connection();
        connection.login = None;
        connection.slot = None;
        if let Err(e) = connection.context.clone().finalize() {
            // CKR_CRYPTOKI_NOT_INITIALIZED after a failed C_Initialize.
            tracing::debug!(error = %e, "C_Finalize before re-initialising");
        }
        let args = CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK);
        match connection.context.initialize(args) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Logs the application out (`Hsm::logout`).
    pub(super) fn logout(&self) -> Result<(), HsmError> {
        let connection = self.connection();
        let login = connection.login.as_ref().ok_or(HsmError::Down)?;
        Ok(login.logout()?)
    }

    /// Ends [`recover`].
    pub(super) fn stop(&self) {
        *self.stopping.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Shutdown left `threads` behind, still in (or waiting for) a call.
    pub(super) fn leave_behind(&self, threads: usize) {
        self.left_behind.fetch_add(threads, Ordering::SeqCst);
    }

    pub(super) fn left_behind(&self) -> usize {
        self.left_behind.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` (for ever with `None`) while Up and running;
    /// false once stopping.
    pub(super) fn wait(&self, timeout: Option<Duration>) -> bool {
        let stopping = self.stopping.lock().unwrap_or_else(PoisonError::into_inner);
        let stopping = match timeout {
            Some(timeout) => {
                self.wake
                    .wait_timeout_while(stopping, timeout, |s| !*s)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => self
                .wake
                .wait_while(stopping, |s| !*s && self.is_up())
                .unwrap_or_else(PoisonError::into_inner),
        };
        !*stopping
    }
}

/// The recovery thread's loop: while Down, `close_sessions` (every pooled
/// session, holding them closed until it returns) then a reconnection,
/// with back-off, until the token is back or the pool stops.
pub(super) fn recover<G>(link: &Link, close_sessions: impl Fn() -> G) {
    let mut delay = FIRST_RETRY;
    let mut attempts = 0u32;
    while link.wait(None) {
        attempts += 1;
        let attempt = {
            let _closed = close_sessions();
            link.reconnect()
        };
        match attempt {
            Ok(()) => {
                link.health.send_replace(Health::Up);
                tracing::info!(attempts, "the HSM token is back; serving again");
                (delay, attempts) = (FIRST_RETRY, 0);
            }
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?delay, "the HSM token is still unreachable");
                if !link.wait(Some(delay)) {
                    return;
                }
                delay = (delay * 2).min(LAST_RETRY);
            }
        }
    }
}

/// The slot whose token carries `label`.
fn find_slot(context: &Pkcs11, label: &str) -> Result<Slot, HsmError> {
    for slot in context.get_slots_with_initialized_token()? {
        if context.get_token_info(slot)?.label() == label {
            return Ok(slot);
        }
    }
    Err(HsmError::NoToken(label.into()))
}

/// C_Login unless the application is logged in already: a login covers
/// every session of the application (PKCS#11 v2.40 §5.6 C_Login).
fn login(session: &Session, pin: &AuthPin) -> Result<(), HsmError> {
    if session.get_session_info()?.session_state() == SessionState::RwUser {
        return Ok(());
    }
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The module cannot reach the token at all (PKCS#11 v2.40 §5.1 return
/// values; §11.1 in v2.20): only a
/// fresh initialisation may find it again.
fn module_lost(error: &HsmError) -> bool {
    match error {
        HsmError::NoToken(_) => true,
        HsmError::Pkcs11(CkError::Pkcs11(rv, _)) => {
            token_gone(*rv) || matches!(rv, RvError::SlotIdInvalid)
        }
        _ => false,
    }
}
