//! Single use of activation tokens (SPEC §3) within this process: every
//! `jti` reserved or spent is remembered until its token could no longer
//! verify, then forgotten. Without a database this is the whole record
//! (with the journal, across restarts); with one it answers known tokens
//! before any database work (`single_use`).
//!
//! Memory is bounded by the token lifetime: at most `max_lifetime + leeway`
//! worth of signatures are remembered. Pruning pops a min-heap ordered by
//! expiry, so each `jti` costs O(log n) once, never a scan of the cache.
//! With a database the database is the record: memory keeps the requests
//! in flight and at most [`REMEMBERED_WITH_LEDGER`] spent tokens (those
//! furthest from expiry), so it does not grow with the signatures made.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::single_use::TokenId;
use super::AuthError;

/// What this process knows of a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A request holds it; it is spent or released when that one ends.
    Reserved,
    Spent,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    until: SystemTime,
    state: State,
}

/// Spent tokens kept in memory in front of a database: replays of recent
/// tokens cost no database work; older ones ask the database. About 150
/// bytes each.
pub(super) const REMEMBERED_WITH_LEDGER: usize = 1024;

#[derive(Default)]
pub(super) struct ReplayCache {
    inner: Mutex<Seen>,
    /// Held while the cache lives: one server per journal.
    _lock: Option<File>,
}

#[derive(Default)]
struct Seen {
    entries: HashMap<TokenId, Entry>,
    /// Spent entries only: a reservation is always settled (committed or
    /// released) by its guard.
    by_expiry: BinaryHeap<Reverse<(SystemTime, TokenId)>>,
    journal: Option<Journal>,
    /// At most this many spent entries (`bounded`); none: the lifetime
    /// bounds them.
    limit: Option<usize>,
}

/// Spent tokens on disk, one `hex(sha256(jti)) unix-expiry` line each, so
/// that a restart does not forget them. Appended per token (no fsync: it
/// survives the process, which is what a restart is), compacted when most
/// lines have expired. Reservations are not written: a crash forgets
/// them, and nothing they held was handed out.
struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl ReplayCache {
    /// A cache in front of a shared record: at most `limit` spent tokens.
    pub(super) fn bounded(limit: usize) -> Self {
        let seen = Seen {
            limit: Some(limit),
            ..Seen::default()
        };
        Self {
            inner: Mutex::new(seen),
            _lock: None,
        }
    }

    /// A cache that also keeps its spent tokens in `path`, loading the
    /// unexpired ones written by an earlier run. Locks `path.lock` first:
    /// a second server on the same journal would not see this one's tokens,
    /// so it refuses to start ([`AuthError::JournalLocked`]).
    pub(super) fn with_journal(path: &Path, now: SystemTime) -> Result<Self, AuthError> {
        let lock = lock(path)?;
        let mut seen = Seen::default();
        if path.exists() {
            let file = File::open(path).map_err(AuthError::Journal)?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(AuthError::Journal)?;
                // A torn last line after a crash is skipped, not fatal.
                if let Some((id, until)) = parse_line(&line).filter(|(_, until)| *until > now) {
                    seen.record(id, until, State::Spent);
                }
            }
        }
        seen.journal = Some(Journal::rewrite(path, &seen.spent())?);
        Ok(Self {
            inner: Mutex::new(seen),
            _lock: Some(lock),
        })
    }

    /// Reserves `id` until `until`; fails with [`AuthError::Replayed`] if it
    /// is reserved or spent. Check and record happen under one lock.
    pub(super) fn reserve(
        &self,
        id: TokenId,
        until: SystemTime,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let mut seen = self.seen();
        seen.prune(now);
        if seen.entries.contains_key(&id) {
            return Err(AuthError::Replayed);
        }
        seen.record(id, until, State::Reserved);
        Ok(())
    }

    /// Spends a reservation: on the journal first, so a token whose use
    /// cannot be written stays reserved (and is released) and its
    /// signature does not leave.
    pub(super) fn commit(&self, id: TokenId, until: SystemTime) -> Result<(), AuthError> {
        let mut seen = self.seen();
        let live = seen.entries.len();
        if let Some(journal) = seen.journal.as_mut() {
            journal.append(&id, until, live)?;
        }
        seen.record(id, until, State::Spent);
        Ok(())
    }

    /// Forgets a reservation (never a spent token).
    pub(super) fn release(&self, id: TokenId) {
        let mut seen = self.seen();
        if seen
            .entries
            .get(&id)
            .is_some_and(|e| e.state == State::Reserved)
        {
            seen.entries.remove(&id);
        }
    }

    /// Remembers a token the shared record says is spent, so that its
    /// replays here cost no database work.
    pub(super) fn spent_elsewhere(&self, id: TokenId, until: SystemTime) {
        self.seen().record(id, until, State::Spent);
    }

    pub(super) fn len(&self) -> usize {
        self.seen().entries.len()
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        // The map stays consistent even if a holder panicked: each step
        // leaves it valid.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Seen {
    fn record(&mut self, id: TokenId, until: SystemTime, state: State) {
        self.entries.insert(id, Entry { until, state });
        if state == State::Spent {
            self.by_expiry.push(Reverse((until, id)));
            while self.limit.is_some_and(|limit| self.by_expiry.len() > limit) {
                self.forget_first();
            }
        }
    }

    /// Forgets the spent entry that expires first.
    fn forget_first(&mut self) {
        if let Some(Reverse((until, id))) = self.by_expiry.pop() {
            // A heap entry may outlive its map entry; only a spent entry
            // of the same expiry goes.
            let entry = self.entries.get(&id);
            if entry.is_some_and(|e| e.until == until && e.state == State::Spent) {
                self.entries.remove(&id);
            }
        }
    }

    fn spent(&self) -> HashMap<TokenId, SystemTime> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == State::Spent)
            .map(|(id, e)| (*id, e.until))
            .collect()
    }

    /// Forgets every `jti` whose token has expired by `now`.
    fn prune(&mut self, now: SystemTime) {
        while let Some(Reverse((until, _))) = self.by_expiry.peek() {
            if *until > now {
                break;
            }
            self.forget_first();
        }
    }
}

/// Takes the advisory lock (flock) of `path` + `.lock`, a file of its own:
/// the journal itself is replaced when compacted.
fn lock(path: &Path) -> Result<File, AuthError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(PathBuf::from(name))
        .map_err(AuthError::Journal)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(AuthError::JournalLocked(path.to_owned())),
        Err(TryLockError::Error(e)) => Err(AuthError::Journal(e)),
    }
}

impl Journal {
    /// Writes the live entries to a fresh file and renames it into place.
    fn rewrite(path: &Path, live: &HashMap<TokenId, SystemTime>) -> Result<Self, AuthError> {
        let mut fresh = path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let mut text = String::with_capacity(live.len() * 80);
        for (id, until) in live {
            text.push_str(&line(id, *until));
        }
        std::fs::write(&fresh, text).map_err(AuthError::Journal)?;
        std::fs::rename(&fresh, path).map_err(AuthError::Journal)?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(AuthError::Journal)?;
        Ok(Self {
            path: path.to_owned(),
            file,
            lines: live.len(),
        })
    }

    /// One line per spent token; compacts when expired lines dominate.
    fn append(&mut self, id: &TokenId, until: SystemTime, live: usize) -> Result<(), AuthError> {
        if self.lines > 2 * live + 1024 {
            let entries = std::fs::read_to_string(&self.path).map_err(AuthError::Journal)?;
            let now = SystemTime::now();
            let kept: HashMap<TokenId, SystemTime> = entries
                .lines()
                .filter_map(parse_line)
                .filter(|(_, until)| *until > now)
                .collect();
            *self = Journal::rewrite(&self.path, &kept)?;
        }
        self.file
            .write_all(line(id, until).as_bytes())
            .map_err(AuthError::Journal)?;
        self.lines += 1;
        Ok(())
    }
}

fn line(id: &TokenId, until: SystemTime) -> String {
    let secs = until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{} {secs}\n", hex::encode(id))
}

fn parse_line(line: &str) -> Option<(TokenId, SystemTime)> {
    let (digest, secs) = line.split_once(' ')?;
    let id: TokenId = hex::decode(digest).ok()?.try_into().ok()?;
    let until = UNIX_EPOCH + Duration::from_secs(secs.trim().parse().ok()?);
    Some((id, until))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::single_use::token_id;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// Reserve and spend at once, as a signature that leaves does.
    fn spend(cache: &ReplayCache, jti: &str, until: SystemTime, now: SystemTime) {
        cache.reserve(token_id(jti), until, now).unwrap();
        cache.commit(token_id(jti), until).unwrap();
    }

    #[test]
    fn reserved_and_spent_tokens_are_refused_released_ones_are_not() {
        let cache = ReplayCache::default();
        let a = token_id("a");
        cache.reserve(a, at(100), at(10)).unwrap();
        assert!(matches!(
            cache.reserve(a, at(100), at(11)),
            Err(AuthError::Replayed)
        ));
        cache.release(a);
        cache.reserve(a, at(100), at(12)).unwrap();
        cache.commit(a, at(100)).unwrap();
        cache.release(a);
        assert!(matches!(
            cache.reserve(a, at(100), at(13)),
            Err(AuthError::Replayed)
        ));
        cache.reserve(token_id("b"), at(100), at(13)).unwrap();
    }

    #[test]
    fn the_journal_remembers_across_restarts_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent");
        let cache = ReplayCache::with_journal(&path, at(10)).unwrap();
        spend(&cache, "a", at(100), at(10));
        spend(&cache, "b", at(20), at(10));
        // Only spent tokens are written.
        cache.reserve(token_id("c"), at(100), at(10)).unwrap();
        drop(cache);
        // A new process: "a" is still spent, "b" has expired and is dropped.
        let cache = ReplayCache::with_journal(&path, at(30)).unwrap();
        assert!(matches!(
            cache.reserve(token_id("a"), at(100), at(30)),
            Err(AuthError::Replayed)
        ));
        assert_eq!(cache.len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1, "compacted at start: {text}");
        assert_eq!(
            text.split(' ').next().unwrap().len(),
            64,
            "a SHA-256, not the jti"
        );
        drop(cache);
        // A torn line is skipped.
        std::fs::write(&path, format!("{text}deadbeef 12")).unwrap();
        let cache = ReplayCache::with_journal(&path, at(30)).unwrap();
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn one_server_per_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent");
        let first = ReplayCache::with_journal(&path, at(10)).unwrap();
        let second = ReplayCache::with_journal(&path, at(10));
        assert!(
            matches!(second, Err(AuthError::JournalLocked(_))),
            "a second cache on a locked journal"
        );
        drop(first);
        ReplayCache::with_journal(&path, at(10)).expect("the lock goes with its server");
    }

    #[test]
    fn in_front_of_a_database_memory_is_bounded() {
        let cache = ReplayCache::bounded(3);
        for (i, jti) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            spend(&cache, jti, at(100 + i as u64), at(10));
        }
        assert_eq!(cache.len(), 3, "the two closest to expiry are forgotten");
        // A reservation is never forgotten while it is held.
        cache.reserve(token_id("f"), at(50), at(10)).unwrap();
        spend(&cache, "g", at(200), at(10));
        assert!(matches!(
            cache.reserve(token_id("f"), at(50), at(11)),
            Err(AuthError::Replayed)
        ));
        assert!(matches!(
            cache.reserve(token_id("e"), at(104), at(11)),
            Err(AuthError::Replayed)
        ));
    }

    #[test]
    fn expired_entries_are_pruned() {
        let cache = ReplayCache::default();
        spend(&cache, "a", at(20), at(10));
        spend(&cache, "b", at(50), at(10));
        spend(&cache, "c", at(30), at(10));
        assert_eq!(cache.len(), 3);
        spend(&cache, "d", at(60), at(30));
        assert_eq!(cache.len(), 2, "a and c expired at 20 and 30");
        // Once forgotten a jti could be recorded again, but by then its
        // token no longer verifies.
        spend(&cache, "a", at(70), at(40));
    }
}
