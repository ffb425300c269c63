//! Single use of activation tokens (SPEC §3): every `jti` consumed is
//! remembered until its token could no longer verify, then forgotten.
//!
//! Memory is bounded by the token lifetime: at most `max_lifetime + leeway`
//! worth of signatures are remembered. Pruning pops a min-heap ordered by
//! expiry, so each `jti` costs O(log n) once, never a scan of the cache.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::AuthError;

/// A spent `jti`, by its SHA-256 (constant size, and what the journal holds).
type Spent = [u8; 32];

#[derive(Default)]
pub(super) struct ReplayCache {
    inner: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    until: HashMap<Spent, SystemTime>,
    by_expiry: BinaryHeap<Reverse<(SystemTime, Spent)>>,
    journal: Option<Journal>,
}

/// Spent tokens on disk, one `hex(sha256(jti)) unix-expiry` line each, so
/// that a restart does not forget them. Appended per token (no fsync: it
/// survives the process, which is what a restart is), compacted when most
/// lines have expired.
struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl ReplayCache {
    /// A cache that also keeps its entries in `path`, loading the unexpired
    /// ones written by an earlier run.
    pub(super) fn with_journal(path: &Path, now: SystemTime) -> Result<Self, AuthError> {
        let mut seen = Seen::default();
        if path.exists() {
            let file = File::open(path).map_err(AuthError::Journal)?;
            for line in BufReader::new(file).lines() {
                let line = line.map_err(AuthError::Journal)?;
                // A torn last line after a crash is skipped, not fatal.
                if let Some((spent, until)) = parse_line(&line).filter(|(_, until)| *until > now) {
                    seen.record(spent, until);
                }
            }
        }
        seen.journal = Some(Journal::rewrite(path, &seen.until)?);
        Ok(Self {
            inner: Mutex::new(seen),
        })
    }

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
        let spent: Spent = Sha256::digest(jti.as_bytes()).into();
        if seen.until.contains_key(&spent) {
            return Err(AuthError::Replayed);
        }
        // On record first: a token whose use cannot be written is not used.
        let live = seen.until.len();
        if let Some(journal) = seen.journal.as_mut() {
            journal.append(&spent, until, live)?;
        }
        seen.record(spent, until);
        Ok(())
    }

    pub(super) fn len(&self) -> usize {
        let seen = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        seen.until.len()
    }
}

impl Seen {
    fn record(&mut self, spent: Spent, until: SystemTime) {
        self.until.insert(spent, until);
        self.by_expiry.push(Reverse((until, spent)));
    }

    /// Forgets every `jti` whose token has expired by `now`.
    fn prune(&mut self, now: SystemTime) {
        while let Some(Reverse((until, _))) = self.by_expiry.peek() {
            if *until > now {
                break;
            }
            if let Some(Reverse((until, spent))) = self.by_expiry.pop() {
                // Each recorded jti has exactly one heap entry; the check
                // only guards against removing a newer record.
                if self.until.get(&spent) == Some(&until) {
                    self.until.remove(&spent);
                }
            }
        }
    }
}

impl Journal {
    /// Writes the live entries to a fresh file and renames it into place.
    fn rewrite(path: &Path, live: &HashMap<Spent, SystemTime>) -> Result<Self, AuthError> {
        let mut fresh = path.as_os_str().to_owned();
        fresh.push(".new");
        let fresh = PathBuf::from(fresh);
        let mut text = String::with_capacity(live.len() * 80);
        for (spent, until) in live {
            text.push_str(&line(spent, *until));
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
    fn append(&mut self, spent: &Spent, until: SystemTime, live: usize) -> Result<(), AuthError> {
        if self.lines > 2 * live + 1024 {
            // `live` excludes this token; it is appended below.
            let entries = std::fs::read_to_string(&self.path).map_err(AuthError::Journal)?;
            let now = SystemTime::now();
            let kept: HashMap<Spent, SystemTime> = entries
                .lines()
                .filter_map(parse_line)
                .filter(|(_, until)| *until > now)
                .collect();
            *self = Journal::rewrite(&self.path, &kept)?;
        }
        self.file
            .write_all(line(spent, until).as_bytes())
            .map_err(AuthError::Journal)?;
        self.lines += 1;
        Ok(())
    }
}

fn line(spent: &Spent, until: SystemTime) -> String {
    let secs = until.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{} {secs}\n", hex::encode(spent))
}

fn parse_line(line: &str) -> Option<(Spent, SystemTime)> {
    let (digest, secs) = line.split_once(' ')?;
    let spent: Spent = hex::decode(digest).ok()?.try_into().ok()?;
    let until = UNIX_EPOCH + Duration::from_secs(secs.trim().parse().ok()?);
    Some((spent, until))
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
    fn the_journal_remembers_across_restarts_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent");
        let cache = ReplayCache::with_journal(&path, at(10)).unwrap();
        cache.insert("a", at(100), at(10)).unwrap();
        cache.insert("b", at(20), at(10)).unwrap();
        drop(cache);
        // A new process: "a" is still spent, "b" has expired and is dropped.
        let cache = ReplayCache::with_journal(&path, at(30)).unwrap();
        assert!(matches!(
            cache.insert("a", at(100), at(30)),
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
        // A torn line is skipped.
        std::fs::write(&path, format!("{text}deadbeef 12")).unwrap();
        let cache = ReplayCache::with_journal(&path, at(30)).unwrap();
        assert_eq!(cache.len(), 1);
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
