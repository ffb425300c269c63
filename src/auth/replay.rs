//! Single use of activation tokens (SPEC §3): every `jti` consumed is
//! remembered until its token could no longer verify, then forgotten.
//!
//! Memory is bounded by the token lifetime: at most `max_lifetime + leeway`
//! worth of signatures are remembered. Pruning pops a min-heap ordered by
//! expiry, so each `jti` costs O(log n) once, never a scan of the cache.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use super::AuthError;

#[derive(Default)]
pub(super) struct ReplayCache {
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    until: HashMap<Arc<str>, SystemTime>,
    by_expiry: BinaryHeap<Reverse<(SystemTime, Arc<str>)>>,
}

impl ReplayCache {
    /// Records `jti` until `until`; fails with [`AuthError::Replayed`] if it
    /// is already recorded. Check and record happen under one lock.
    pub(super) fn insert(
        &self,
        jti: &str,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        // The map stays consistent even if a holder panicked: each step
        // below leaves it valid.
        let mut seen = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        seen.prune(now);
        if seen.until.contains_key(jti) {
            return Err(AuthError::Replayed);
        }
        let jti: Arc<str> = Arc::from(jti);
        seen.until.insert(jti.clone(), until);
        seen.by_expiry.push(Reverse((until, jti)));
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        let seen = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        seen.until.len()
    }
}

impl Seen {
    /// Forgets every `jti` whose token has expired by `now`.
    fn prune(&mut self, now: SystemTime) {
        while let Some(Reverse((until, _))) = self.by_expiry.peek() {
            if *until > now {
                break;
            }
            if let Some(Reverse((until, jti))) = self.by_expiry.pop() {
                // Each recorded jti has exactly one heap entry; the check
                // only guards against removing a newer record.
                if self.until.get(&jti) == Some(&until) {
                    self.until.remove(&jti);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn second_insert_is_a_replay() {
        let cache = ReplayCache::default();
        cache.insert("a", at(100), at(10)).unwrap();
        assert!(matches!(
            cache.insert("a", at(100), at(11)),
            Err(AuthError::Replayed)
        ));
        cache.insert("b", at(100), at(11)).unwrap();
    }

    #[test]
    fn expired_entries_are_pruned() {
        let cache = ReplayCache::default();
        cache.insert("a", at(20), at(10)).unwrap();
        cache.insert("b", at(50), at(10)).unwrap();
        cache.insert("c", at(30), at(10)).unwrap();
        assert_eq!(cache.len(), 3);
        cache.insert("d", at(60), at(30)).unwrap();
        assert_eq!(cache.len(), 2, "a and c expired at 20 and 30");
        // Once forgotten a jti could be recorded again, but by then its
        // token no longer verifies.
        cache.insert("a", at(70), at(40)).unwrap();
    }
}
