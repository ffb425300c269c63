//! Single use without amplification (SPEC §3, §12): a token is RESERVED
//! before any HSM work, SPENT when its signature leaves, and RELEASED when
//! the service itself failed. A token spent or reserved is refused before a
//! key is made, so a replay costs no HSM time.
//!
//! ```text
//! reserve ── memory (ReplayCache): known here? refused, no database work
//!         └─ shared ledger (the database, when configured): one atomic
//!            insert that only one replica can win
//! commit  ── ledger, then memory (and the journal without a database)
//! release ── memory, then ledger; also when the guard is dropped
//! ```
//!
//! A reservation whose replica crashed stays in the ledger until its token
//! expires: the token is refused meanwhile (safe; the signer asks for a new
//! activation), and then the row is pruned.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::replay::ReplayCache;
use super::AuthError;

/// A token by the SHA-256 of its `jti`: constant size, and never the jti
/// itself in a file or table.
pub type TokenId = [u8; 32];

pub fn token_id(jti: &str) -> TokenId {
    Sha256::digest(jti.as_bytes()).into()
}

/// Why the ledger could not answer; the caller sees UNAVAILABLE.
pub type LedgerError = Box<dyn std::error::Error + Send + Sync>;

pub type LedgerFuture<T> = Pin<Box<dyn Future<Output = Result<T, LedgerError>> + Send>>;

/// A number the ledger reads in a reservation's own transaction, for the
/// holder to compare with one it read earlier from the same database.
/// `auth` gives it no meaning; the store's ledger reads the registry's
/// profile version there (SPEC §9), so a signature learns whether the
/// profiles it was checked against still hold without a trip of its own.
pub type Epoch = i64;

/// What the ledger says to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This replica holds the token now, as of `epoch`.
    Reserved { epoch: Epoch },
    /// Spent: refused for as long as the token could verify.
    Spent,
    /// Another request (on another replica) holds it.
    Held,
}

/// The record of tokens every replica shares (the database; its SQL lives
/// in `store::spent`). Each call starts its work at once: dropping the
/// future does not cancel it, so a guard can release from `Drop`.
pub trait SpentLedger: Send + Sync {
    /// Atomically: two replicas cannot both get [`Claim::Reserved`].
    fn reserve(&self, id: TokenId, until: SystemTime) -> LedgerFuture<Claim>;
    /// Marks this replica's reservation spent.
    fn commit(&self, id: TokenId) -> LedgerFuture<()>;
    /// Removes this replica's reservation (never a spent token).
    fn release(&self, id: TokenId) -> LedgerFuture<()>;
}

/// This process's cache in front of the shared ledger, if any.
#[derive(Default)]
pub(super) struct SingleUse {
    pub(super) seen: ReplayCache,
    pub(super) ledger: Option<Arc<dyn SpentLedger>>,
}

impl SingleUse {
    pub(super) async fn reserve(
        self: &Arc<Self>,
        id: TokenId,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<Reservation, AuthError> {
        self.seen.reserve(id, until, now)?;
        let mut guard = Reservation {
            owner: self.clone(),
            id,
            until,
            epoch: None,
            settled: false,
        };
        let Some(ledger) = &self.ledger else {
            return Ok(guard);
        };
        // Cancelled while waiting: the guard's drop releases what the
        // ledger may have granted.
        let claim = ledger.reserve(id, until).await;
        match claim {
            Ok(Claim::Reserved { epoch }) => {
                guard.epoch = Some(epoch);
                Ok(guard)
            }
            Ok(Claim::Spent) => {
                guard.forget();
                self.seen.spent_elsewhere(id, until);
                Err(AuthError::Replayed)
            }
            Ok(Claim::Held) => {
                // Not remembered: the other replica may still release it.
                guard.forget();
                Err(AuthError::Replayed)
            }
            Err(e) => {
                // The insert may have happened: released like any other.
                drop(guard);
                Err(AuthError::Ledger(e))
            }
        }
    }
}

/// A reserved token: spent by [`Reservation::commit`], released by
/// [`Reservation::release`] or when dropped unsettled (an error, a
/// cancelled request).
#[must_use = "a reservation is released when dropped"]
pub struct Reservation {
    owner: Arc<SingleUse>,
    id: TokenId,
    until: SystemTime,
    epoch: Option<Epoch>,
    settled: bool,
}

impl Reservation {
    /// SPEC §3: the token is spent; call it just before the signature
    /// leaves. On failure the token is released and nothing may leave.
    pub async fn commit(mut self) -> Result<(), AuthError> {
        if let Some(ledger) = &self.owner.ledger {
            ledger.commit(self.id).await.map_err(AuthError::Ledger)?;
        }
        self.owner.seen.commit(self.id, self.until)?;
        self.settled = true;
        Ok(())
    }

    /// The service failed: the signer may use the token again.
    pub async fn release(mut self) {
        self.settled = true;
        self.owner.seen.release(self.id);
        if let Some(ledger) = &self.owner.ledger {
            if let Err(e) = ledger.release(self.id).await {
                // The row stays reserved until the token expires: refused,
                // never signed twice.
                tracing::warn!(error = %e, "could not release an activation token");
            }
        }
    }

    /// The token's id in the shared ledger, for a store transaction that
    /// settles it together with the request's audit record; None without a
    /// ledger. Settle the reservation with [`Reservation::settled`] once
    /// that transaction committed.
    pub fn ledger_id(&self) -> Option<TokenId> {
        self.owner.ledger.as_ref().map(|_| self.id)
    }

    /// The ledger's [`Epoch`] as of this reservation; None without a ledger.
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }

    /// Another transaction (the audit record's) spent or released the token
    /// in the ledger: memory follows, with no ledger trip. Without a ledger
    /// it is [`Reservation::commit`] or [`Reservation::release`].
    pub fn settled(mut self, spent: bool) -> Result<(), AuthError> {
        if spent {
            self.owner.seen.commit(self.id, self.until)?;
        } else {
            self.owner.seen.release(self.id);
        }
        self.settled = true;
        Ok(())
    }

    /// Drops the memory reservation only: the ledger did not grant one.
    fn forget(mut self) {
        self.settled = true;
        self.owner.seen.release(self.id);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.owner.seen.release(self.id);
        if let Some(ledger) = &self.owner.ledger {
            // Started by the call; the ledger logs its own failure.
            drop(ledger.release(self.id));
        }
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("token", &hex::encode(&self.id[..4]))
            .field("settled", &self.settled)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// A ledger in memory that counts its calls; `fail` makes reserve fail.
    #[derive(Default)]
    struct Fake {
        rows: Mutex<HashMap<TokenId, Claim>>,
        calls: Mutex<Vec<&'static str>>,
        fail: bool,
    }

    impl Fake {
        fn calls(&self) -> Vec<&'static str> {
            self.calls.lock().unwrap().clone()
        }

        fn answer<T: Send + 'static>(&self, call: &'static str, value: T) -> LedgerFuture<T> {
            self.calls.lock().unwrap().push(call);
            Box::pin(async move { Ok(value) })
        }
    }

    impl SpentLedger for Fake {
        fn reserve(&self, id: TokenId, _until: SystemTime) -> LedgerFuture<Claim> {
            if self.fail {
                self.calls.lock().unwrap().push("reserve");
                return Box::pin(async { Err("down".into()) });
            }
            let mut rows = self.rows.lock().unwrap();
            let claim = match rows.get(&id) {
                Some(Claim::Spent) => Claim::Spent,
                Some(_) => Claim::Held,
                None => {
                    rows.insert(id, Claim::Held);
                    Claim::Reserved { epoch: 7 }
                }
            };
            drop(rows);
            self.answer("reserve", claim)
        }

        fn commit(&self, id: TokenId) -> LedgerFuture<()> {
            self.rows.lock().unwrap().insert(id, Claim::Spent);
            self.answer("commit", ())
        }

        fn release(&self, id: TokenId) -> LedgerFuture<()> {
            let mut rows = self.rows.lock().unwrap();
            if rows.get(&id) == Some(&Claim::Held) {
                rows.remove(&id);
            }
            drop(rows);
            self.answer("release", ())
        }
    }

    fn with(ledger: &Arc<Fake>) -> Arc<SingleUse> {
        Arc::new(SingleUse {
            seen: ReplayCache::default(),
            ledger: Some(ledger.clone()),
        })
    }

    fn times() -> (SystemTime, SystemTime) {
        let now = SystemTime::now();
        (now + Duration::from_secs(300), now)
    }

    #[tokio::test]
    async fn a_token_spent_here_is_refused_with_no_ledger_work() {
        let ledger = Arc::new(Fake::default());
        let single_use = with(&ledger);
        let (until, now) = times();
        let id = token_id("a");
        single_use
            .reserve(id, until, now)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        for _ in 0..5 {
            let replay = single_use.reserve(id, until, now).await;
            assert!(matches!(replay, Err(AuthError::Replayed)));
        }
        assert_eq!(ledger.calls(), ["reserve", "commit"]);
    }

    #[tokio::test]
    async fn spent_elsewhere_is_remembered_held_elsewhere_is_not() {
        let ledger = Arc::new(Fake::default());
        let (here, there) = (with(&ledger), with(&ledger));
        let (until, now) = times();
        let (spent, held) = (token_id("spent"), token_id("held"));
        there
            .reserve(spent, until, now)
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        let holding = there.reserve(held, until, now).await.unwrap();
        for _ in 0..2 {
            assert!(here.reserve(spent, until, now).await.is_err());
            assert!(here.reserve(held, until, now).await.is_err());
        }
        // spent: asked once, then known; held: asked each time.
        assert_eq!(ledger.calls().len(), 3 + 1 + 2);
        holding.release().await;
        let _held = here
            .reserve(held, until, now)
            .await
            .expect("released there");
    }

    #[tokio::test]
    async fn errors_and_drops_release_in_memory_and_in_the_ledger() {
        let ledger = Arc::new(Fake::default());
        let single_use = with(&ledger);
        let (until, now) = times();
        let id = token_id("a");
        drop(single_use.reserve(id, until, now).await.unwrap());
        assert_eq!(ledger.calls(), ["reserve", "release"]);
        let _held = single_use
            .reserve(id, until, now)
            .await
            .expect("free again");

        let down = Arc::new(Fake {
            fail: true,
            ..Fake::default()
        });
        let single_use = with(&down);
        let err = single_use.reserve(id, until, now).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);
        assert_eq!(down.calls(), ["reserve", "release"]);
    }

    #[tokio::test]
    async fn a_reservation_carries_the_ledgers_epoch() {
        let (until, now) = times();
        let ledger = Arc::new(Fake::default());
        let held = with(&ledger).reserve(token_id("a"), until, now).await;
        assert_eq!(held.unwrap().epoch(), Some(7));
        let alone = Arc::new(SingleUse::default());
        let held = alone.reserve(token_id("a"), until, now).await;
        assert_eq!(held.unwrap().epoch(), None);
    }
}
