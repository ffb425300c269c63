//! SPEC §9: a profile change takes effect for the next signature on every
//! replica. A signature is first authorised against the profiles this
//! replica last read, with no database trip; the reservation of its token
//! (`single_use`, the one trip every signature makes before HSM work) reads
//! the registry's profile version in its own transaction and brings it back
//! as the reservation's epoch. Only when that version moved are the
//! profiles read again and the request authorised again, so a change
//! committed before the reservation always holds.
//!
//! ```text
//! check ── cached profiles (version v) ── refused? read now, decide again
//! reserve ── ledger transaction: INSERT token, SELECT version ─► epoch e
//!         └─ e ≠ v: profiles at e, authorise again; refused: token released
//! ```
//!
//! The epoch is the registry's version because `app::signing_core` opens
//! the ledger and the registry on one database.

use std::sync::Arc;

use super::{Authorization, Job, SigningCore};
use crate::auth::{Activation, CallingSystem, Profiles, Reservation, Signatory};
use crate::registry::Registry;
use crate::Error;

/// Who signs, and the registry profile version that decided it.
pub(super) struct Authorized {
    pub(super) signatory: Signatory,
    /// None: no registry (the TOML profiles decide, nothing to confirm).
    version: Option<i64>,
}

impl SigningCore {
    /// SPEC §4, §9: the signatory the profiles allow. With a registry, the
    /// cached profiles decide and the reservation confirms their version
    /// (`reserve`); a refusal is decided again on profiles read now, so a
    /// profile just made elsewhere is never missed.
    pub(super) async fn authorize(
        &self,
        activation: &Activation,
        authorization: &Authorization,
    ) -> Result<Authorized, Error> {
        let (seal, client) = asked(authorization);
        let decide = |profiles: &Profiles| profiles.authorize(activation, seal, client);
        let Some(registry) = &self.registry else {
            return Ok(Authorized {
                signatory: decide(&self.profiles)?,
                version: None,
            });
        };
        let (version, cached) = registry.cached_profiles().await?;
        let (version, signatory) = match decide(&cached) {
            Ok(signatory) => (version, signatory),
            Err(_) => {
                let (version, profiles) = registry.live_profiles().await?;
                (version, decide(&profiles)?)
            }
        };
        Ok(Authorized {
            signatory,
            version: Some(version),
        })
    }

    /// SPEC §9: `decide` on the profiles as of now, the registry's when
    /// there is one (a version read; the rows again only when it moved),
    /// else the TOML's. The CSC facade's credentials are these (SPEC §13).
    pub(crate) async fn with_profiles<T>(
        &self,
        decide: impl FnOnce(&Profiles) -> T,
    ) -> Result<T, Error> {
        match &self.registry {
            Some(registry) => {
                let profiles = registry.current_profiles().await?;
                Ok(decide(&profiles))
            }
            None => Ok(decide(&self.profiles)),
        }
    }

    /// SPEC §3: reserves the job's token before any HSM work, then confirms
    /// its signatory (SPEC §9). A refusal then, or a failure to read the
    /// profiles, releases the token: as a refusal in `check`, it is not
    /// spent.
    pub(super) async fn reserve(
        &self,
        job: &mut Job,
        authorization: &Authorization,
    ) -> Result<Reservation, Error> {
        let reservation = self
            .verifier
            .reserve(&job.activation, std::time::SystemTime::now())
            .await?;
        let Some(registry) = &self.registry else {
            return Ok(reservation);
        };
        let confirmed = confirm(registry, job, authorization, &reservation).await;
        match confirmed {
            Ok(()) => Ok(reservation),
            Err(e) => {
                reservation.release().await;
                Err(e)
            }
        }
    }
}

/// The job's signatory as of the reservation: unchanged when the profiles'
/// version is the one that decided; else decided again on the profiles of
/// the version the reservation read (or, with no shared ledger to read it,
/// of a read now).
async fn confirm(
    registry: &Arc<Registry>,
    job: &mut Job,
    authorization: &Authorization,
    reservation: &Reservation,
) -> Result<(), Error> {
    let Some(decided) = job.authorized.version else {
        return Ok(());
    };
    let (version, profiles) = match reservation.epoch() {
        Some(epoch) if epoch == decided => return Ok(()),
        Some(epoch) => (epoch, registry.profiles_at(epoch).await?),
        None => registry.live_profiles().await?,
    };
    if version != decided {
        let (seal, client) = asked(authorization);
        job.authorized = Authorized {
            signatory: profiles.authorize(&job.activation, seal, client)?,
            version: Some(version),
        };
    }
    Ok(())
}

/// The seal profile asked for (None: a personal signature) and the caller.
fn asked(authorization: &Authorization) -> (Option<&str>, Option<&CallingSystem>) {
    let seal = authorization
        .seal_profile
        .as_deref()
        .filter(|p| !p.is_empty());
    (seal, authorization.client.as_ref())
}
