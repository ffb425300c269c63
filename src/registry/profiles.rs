//! SPEC §4 profiles as the registry administers them: the TOML defaults
//! (read-only) and the database's, live on every replica. Every change
//! bumps one counter row in its transaction; the profiles are reread only
//! when it moved, so a change through any replica holds for the next
//! signature everywhere. A signature gets the counter from its token's
//! reservation (`signing::live`), administration reads it.

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use crate::auth::{AllowedClient, Cvr, Profile, ProfileId, Profiles, Right};
use crate::store::registry::ProfileRow;
use crate::store::RegistryStore;
use crate::Error;

/// The current profiles, cached by version.
pub struct LiveProfiles {
    defaults: Vec<Profile>,
    cache: Mutex<Option<(i64, Arc<Profiles>)>>,
}

impl LiveProfiles {
    pub fn new(defaults: Vec<Profile>) -> Self {
        Self {
            defaults,
            cache: Mutex::new(None),
        }
    }

    pub fn is_default(&self, id: &str) -> bool {
        self.defaults.iter().any(|p| p.id.as_str() == id)
    }

    pub fn defaults(&self) -> &[Profile] {
        &self.defaults
    }

    /// The profiles last read and their version, with no read; None before
    /// the first.
    pub fn cached(&self) -> Option<(i64, Arc<Profiles>)> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The profiles as of now and their version (one cheap read when
    /// nothing changed).
    pub async fn current(&self, store: &RegistryStore) -> Result<(i64, Arc<Profiles>), Error> {
        let version = store.profiles_version().await?;
        Ok((version, self.at(store, version).await?))
    }

    /// The profiles at `version`, a counter the caller read from `store`:
    /// the cache when it is of that version, else read again. Rows read
    /// after the counter are at least that new, so caching them under it
    /// never hides a change.
    pub async fn at(&self, store: &RegistryStore, version: i64) -> Result<Arc<Profiles>, Error> {
        if let Some((cached, profiles)) = self.cached() {
            if cached == version {
                return Ok(profiles);
            }
        }
        let rows = store.profiles().await?;
        let profiles = Arc::new(self.merge(rows.iter().filter_map(|r| profile(r).ok()).collect()));
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((version, profiles.clone()));
        Ok(profiles)
    }

    /// Defaults first; a database profile that would clash with one kept
    /// (same id, or a second `sign` profile for a CVR) is left out.
    pub fn merge(&self, administered: Vec<Profile>) -> Profiles {
        let mut kept: Vec<Profile> = self.defaults.clone();
        for p in administered {
            let clash = kept.iter().any(|k| {
                k.id == p.id || (k.cvr == p.cvr && k.allows(Right::Sign) && p.allows(Right::Sign))
            });
            if clash {
                tracing::warn!(profile = %p.id, "administered profile clashes; ignored");
            } else {
                kept.push(p);
            }
        }
        Profiles::new(kept.clone()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "profiles do not validate; using the defaults");
            Profiles::new(self.defaults.clone()).unwrap_or_else(|_| {
                Profiles::new(Vec::new()).expect("an empty profile set is valid")
            })
        })
    }
}

/// A stored row as a [`Profile`]; INVALID_ARGUMENT naming the bad field.
pub fn profile(row: &ProfileRow) -> Result<Profile, Error> {
    let bad = |what: &str| Error::invalid_argument(format!("profile {what} is invalid"));
    let allow = row
        .allow
        .iter()
        .map(|r| match r.as_str() {
            "sign" => Ok(Right::Sign),
            "seal" => Ok(Right::Seal),
            _ => Err(bad("allow (sign, seal)")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_clients = row
        .allowed_clients
        .iter()
        .map(|c| AllowedClient::from_str(c).map_err(|_| bad("allowed_clients")))
        .collect::<Result<Vec<_>, _>>()?;
    if row.organization_name.trim().is_empty() || allow.is_empty() {
        return Err(bad("(organization_name and allow are mandatory)"));
    }
    Ok(Profile {
        id: ProfileId::try_from(row.id.as_str()).map_err(|_| bad("id"))?,
        organization_name: row.organization_name.clone(),
        cvr: Cvr::try_from(row.cvr.as_str()).map_err(|_| bad("cvr (8 digits)"))?,
        allow,
        allowed_clients,
    })
}

/// The row of a [`Profile`] (for ListProfiles of defaults).
pub fn row(p: &Profile) -> ProfileRow {
    ProfileRow {
        id: p.id.to_string(),
        cvr: p.cvr.to_string(),
        organization_name: p.organization_name.clone(),
        allow: p.allow.iter().map(ToString::to_string).collect(),
        allowed_clients: p.allowed_clients.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Database;

    /// SPEC §9: the cache answers at its own version and is read again at
    /// another (the one a signature's reservation brings).
    #[tokio::test]
    async fn profiles_are_read_again_only_when_the_version_moved() {
        let dir = tempfile::tempdir().unwrap();
        let url = Database::sqlite_url(&dir.path().join("q.db"));
        let store = RegistryStore::new(Database::open(&url, 2).unwrap());
        let live = LiveProfiles::new(Vec::new());
        assert!(live.cached().is_none());
        let (version, profiles) = live.current(&store).await.unwrap();
        assert_eq!((version, profiles.iter().count()), (0, 0));
        let acme = ProfileRow {
            id: "acme".into(),
            cvr: "12345678".into(),
            organization_name: "Acme A/S".into(),
            allow: vec!["seal".into()],
            allowed_clients: Vec::new(),
        };
        assert!(store.put_profile(acme, 0).await.unwrap());
        let cached = live.at(&store, 0).await.unwrap();
        assert_eq!(cached.iter().count(), 0, "no read at the cached version");
        let moved = live.at(&store, 1).await.unwrap();
        assert_eq!(moved.iter().count(), 1, "read again at a new version");
        assert_eq!(live.cached().map(|(v, _)| v), Some(1));
    }
}
