//! SPEC §4 profiles as the registry administers them: the TOML defaults
//! (read-only) and the database's, live on every replica. Each signature
//! reads one counter row; the profiles are reread only when it moved, so a
//! change through any replica holds for the next signature everywhere.

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

    /// The profiles as of now (one cheap read when nothing changed).
    pub async fn current(&self, store: &RegistryStore) -> Result<Arc<Profiles>, Error> {
        let version = store.profiles_version().await?;
        if let Some((cached, profiles)) = &*self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            if *cached == version {
                return Ok(profiles.clone());
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
