//! The one-time keys of CSC credentials (SPEC §13): at most one per `sub`
//! and credential, bounded per `sub` and in total, each destroyed when its
//! [`Prepared`] drops — used, replaced, expired (the reaper) or at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use spki::SubjectPublicKeyInfoOwned;
use uuid::Uuid;

use super::{Credential, CscError, CscErrorKind, CscSettings};
use crate::hsm::{HeldKeyId, HeldKeys, KeyAlgorithm};
use crate::{Error, ErrorKind};

/// A prepared key and its certificate; destroys the key when dropped.
pub(super) struct Prepared {
    held: Arc<HeldKeys>,
    key: HeldKeyId,
    /// DER of the one-time certificate (empty until issued).
    pub(super) certificate: Vec<u8>,
    made: Instant,
}

impl Prepared {
    pub(super) fn new(held: Arc<HeldKeys>, key: HeldKeyId) -> Self {
        Self {
            held,
            key,
            certificate: Vec::new(),
            made: Instant::now(),
        }
    }

    /// Signs the batch; the key is gone afterwards whatever happened.
    pub(super) async fn sign(&self, digests: Vec<[u8; 32]>) -> Result<Vec<Vec<u8>>, Error> {
        self.held
            .sign_once(self.key, digests)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::FailedPrecondition,
                    "the one-time key expired: call credentials/info again",
                )
            })
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // A no-op when `sign` already destroyed it.
        self.held.discard(self.key);
    }
}

#[derive(Default)]
struct State {
    prepared: HashMap<(Uuid, Credential), Prepared>,
    /// Keys being made, per `sub` (counted against the limits).
    pending: HashMap<Uuid, usize>,
}

pub(super) struct Keys {
    held: Arc<HeldKeys>,
    state: Arc<Mutex<State>>,
    settings: CscSettings,
}

/// A place for one key being made; given back when dropped.
pub(super) struct Slot {
    state: Arc<Mutex<State>>,
    subject: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = state.pending.get_mut(&self.subject) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.pending.remove(&self.subject);
            }
        }
    }
}

impl Keys {
    pub(super) fn new(held: HeldKeys, settings: CscSettings) -> Self {
        Self {
            held: Arc::new(held),
            state: Arc::default(),
            settings,
        }
    }

    pub(super) fn held(&self) -> Arc<HeldKeys> {
        self.held.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Room for a new key of `subject` for `credential` (whose earlier key,
    /// if any, is destroyed: one per credential), within the limits.
    pub(super) fn admit(&self, subject: Uuid, credential: &Credential) -> Result<Slot, CscError> {
        let mut state = self.state();
        state.prepared.remove(&(subject, credential.clone()));
        let of_subject = state.prepared.keys().filter(|(s, _)| *s == subject).count()
            + state.pending.get(&subject).copied().unwrap_or(0);
        let total = state.prepared.len() + state.pending.values().sum::<usize>();
        if of_subject >= self.settings.max_keys_per_subject || total >= self.settings.max_keys {
            return Err(CscError::new(
                CscErrorKind::TooManyRequests,
                "too many prepared credentials: sign with them or wait until they expire",
            ));
        }
        *state.pending.entry(subject).or_default() += 1;
        Ok(Slot {
            state: self.state.clone(),
            subject,
        })
    }

    pub(super) async fn generate(
        &self,
        algorithm: KeyAlgorithm,
    ) -> Result<(HeldKeyId, SubjectPublicKeyInfoOwned), Error> {
        self.held.generate(algorithm).await
    }

    pub(super) fn insert(&self, slot: Slot, subject: Uuid, credential: Credential, key: Prepared) {
        let replaced = self.state().prepared.insert((subject, credential), key);
        drop((slot, replaced));
    }

    /// The unexpired key of `subject` for `credential`, out of the store.
    pub(super) fn take(&self, subject: Uuid, credential: &Credential) -> Option<Prepared> {
        let prepared = self
            .state()
            .prepared
            .remove(&(subject, credential.clone()))?;
        (prepared.made.elapsed() < self.settings.key_lifetime).then_some(prepared)
    }

    /// Destroys every key unused for `key_lifetime`.
    pub(super) fn reap(&self) {
        let lifetime = self.settings.key_lifetime;
        let expired: Vec<Prepared> = {
            let mut state = self.state();
            let old: Vec<_> = state
                .prepared
                .iter()
                .filter(|(_, p)| p.made.elapsed() >= lifetime)
                .map(|(k, _)| k.clone())
                .collect();
            old.iter()
                .filter_map(|k| state.prepared.remove(k))
                .collect()
        };
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "CSC: destroying unused one-time keys"
            );
        }
    }

    /// Destroys every prepared key and closes the held-keys session
    /// (shutdown): returns once the token holds none of them, or at
    /// `deadline` if the token hangs (`HeldKeys::close`).
    pub(super) fn close(&self, deadline: Option<Instant>) {
        let all: Vec<_> = self.state().prepared.drain().collect();
        drop(all);
        self.held.close(deadline);
    }

    pub(super) fn len(&self) -> usize {
        self.state().prepared.len()
    }
}
