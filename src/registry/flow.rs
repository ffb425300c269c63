//! The administration flow (SPEC §9): who may do what, then the store and
//! the HSM. Every method takes the verified [`Administrator`].

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::mail::{Mail, Mailer};
use super::model::{unix, Record};
use super::profiles::{self, LiveProfiles};
use super::settings::RegistrySettings;
use super::status::CaHashes;
use crate::auth::admin::Administrator;
use crate::auth::{Profile, Profiles};
use crate::hsm::Hsm;
use crate::pki::Issuer;
use crate::store::registry::ProfileRow;
use crate::store::{Database, RegistryStore};
use crate::{Error, ErrorKind};

/// SPEC §9: a code expires after 24 h; five wrong tries end it.
const CODE_LIFETIME: i64 = 24 * 3600;
const MAX_WRONG_CODES: i64 = 5;

/// The registry: built once at start, shared by all requests.
pub struct Registry {
    pub(super) store: RegistryStore,
    pub(super) settings: RegistrySettings,
    pub(super) ca: Issuer,
    pub(super) ca_hashes: CaHashes,
    /// DER: the organisation CA, then the root.
    pub(super) chain: Vec<Vec<u8>>,
    pub(super) mailer: Mailer,
    pub(super) profiles: LiveProfiles,
    /// The last CRL made and the revocations it lists (`notices.rs`).
    pub(super) crl: std::sync::Mutex<Option<super::notices::MadeCrl>>,
}

/// Where the key of an issued certificate comes from.
pub enum KeySource {
    /// A PKCS#10 request (DER or PEM): the key stays with the caller.
    Csr(Vec<u8>),
    /// A key made here, returned once in a PKCS#12 under this password.
    Generate(zeroize::Zeroizing<String>),
}

pub struct IssueResult {
    pub record: Record,
    pub certificate: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
    pub pkcs12: Option<Vec<u8>>,
}

impl Registry {
    /// `ca_der` and `root_der`: the organisation CA's and the root's
    /// certificates; `defaults`: the TOML profiles.
    pub fn new(
        settings: RegistrySettings,
        database: Database,
        (ca_der, root_der): (Vec<u8>, Vec<u8>),
        defaults: Vec<Profile>,
    ) -> Result<Self, Error> {
        let ca = Issuer::from_der(ca_der.clone())?;
        Ok(Self {
            store: RegistryStore::new(database),
            mailer: Mailer::new(settings.mail.clone()),
            settings,
            ca_hashes: CaHashes::of(&ca)?,
            ca,
            chain: vec![ca_der, root_der],
            profiles: LiveProfiles::new(defaults),
            crl: std::sync::Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    pub fn ca_certificate(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The profiles as of now (SPEC §4, §9): one read.
    pub async fn current_profiles(&self) -> Result<Arc<Profiles>, Error> {
        Ok(self.live_profiles().await?.1)
    }

    /// [`Registry::current_profiles`] and their version.
    pub async fn live_profiles(&self) -> Result<(i64, Arc<Profiles>), Error> {
        self.profiles.current(&self.store).await
    }

    /// The profiles last read and their version, with no read but the
    /// first; a signature's reservation confirms the version (SPEC §9,
    /// `signing::live`).
    pub async fn cached_profiles(&self) -> Result<(i64, Arc<Profiles>), Error> {
        match self.profiles.cached() {
            Some(cached) => Ok(cached),
            None => self.live_profiles().await,
        }
    }

    /// The profiles at `version`, read from this registry's database.
    pub async fn profiles_at(&self, version: i64) -> Result<Arc<Profiles>, Error> {
        self.profiles.at(&self.store, version).await
    }

    // ---- profiles --------------------------------------------------------

    pub async fn put_profile(
        &self,
        who: &Administrator,
        row: ProfileRow,
    ) -> Result<Profile, Error> {
        // An empty cvr is the caller's own organisation.
        let mut row = row;
        if row.cvr.is_empty() {
            row.cvr = who.org_cvr.to_string();
        }
        who.require_admin_of(&row.cvr)?;
        let profile = profiles::profile(&row)?;
        if self.profiles.is_default(&row.id) {
            return Err(precondition(
                "this profile is defined in the configuration file and is read-only",
            ));
        }
        let current = self.current_profiles().await?;
        let clash = current.iter().any(|p| {
            p.id != profile.id
                && p.cvr == profile.cvr
                && p.allows(crate::auth::Right::Sign)
                && profile.allows(crate::auth::Right::Sign)
        });
        if clash {
            return Err(Error::invalid_argument(
                "another profile of the organisation allows 'sign'; keep one",
            ));
        }
        if !self.store.put_profile(row, unix(SystemTime::now())).await? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "the profile id is taken",
            ));
        }
        Ok(profile)
    }

    /// The caller's organisation's profiles: (profile, read_only).
    pub async fn list_profiles(
        &self,
        who: &Administrator,
    ) -> Result<Vec<(ProfileRow, bool)>, Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        let current = self.current_profiles().await?;
        let mut out: Vec<_> = current
            .iter()
            .filter(|p| p.cvr == who.org_cvr)
            .map(|p| (profiles::row(p), self.profiles.is_default(p.id.as_str())))
            .collect();
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(out)
    }

    pub async fn delete_profile(&self, who: &Administrator, id: &str) -> Result<(), Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        if self.profiles.is_default(id) {
            return Err(precondition(
                "this profile is defined in the configuration file and is read-only",
            ));
        }
        if !self
            .store
            .delete_profile(who.org_cvr.to_string(), id.to_owned())
            .await?
        {
            return Err(not_found("no such profile in your organisation"));
        }
        Ok(())
    }

    // ---- e-mail validation -----------------------------------------------

    /// Mails a fresh one-time code to `email`; only its salted SHA-256 is kept.
    pub async fn start_email_validation(
        &self,
        who: &Administrator,
        email: &str,
    ) -> Result<(), Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        let email = normalise_email(email)?;
        let code = format!(
            "{:08}",
            rand::Rng::gen_range(&mut rand::rngs::OsRng, 0..100_000_000u32)
        );
        let salt: [u8; 16] = rand::random();
        let key = (who.org_cvr.to_string(), email.clone());
        let expires = unix(SystemTime::now()) + CODE_LIFETIME;
        self.store
            .start_validation(key, (code_hash(&salt, &code), salt.to_vec()), expires)
            .await?;
        self.mailer
            .send(Mail {
                to: email,
                subject: "qsign: confirm your e-mail address".into(),
                body: format!(
                    "Your organisation asks to use this address in a certificate.\r\n\
                     Give this code to your administrator within 24 hours:\r\n\r\n\
                     Kode: {code}\r\n"
                ),
            })
            .await
    }

    pub async fn confirm_email(
        &self,
        who: &Administrator,
        email: &str,
        code: &str,
    ) -> Result<(), Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        let email = normalise_email(email)?;
        let key = (who.org_cvr.to_string(), email.clone());
        let Some(v) = self.store.validation(key.0.clone(), email).await? else {
            return Err(precondition("no validation of this address was started"));
        };
        if v.validated.is_some() {
            return Ok(());
        }
        if v.failures >= MAX_WRONG_CODES {
            return Err(precondition("five wrong codes: start a new validation"));
        }
        let now = unix(SystemTime::now());
        if v.expires < now {
            return Err(precondition("the code has expired: start a new validation"));
        }
        let right = code_hash(&v.salt, code.trim()) == v.code_sha256;
        let settled = self
            .store
            .settle_validation(key, v.failures, right.then_some(now))
            .await?;
        match (right, settled) {
            (true, true) => Ok(()),
            (_, false) => Err(precondition(
                "another confirmation of this address ran at once; try again",
            )),
            (false, true) => Err(Error::invalid_argument(format!(
                "wrong code; {} tries left",
                MAX_WRONG_CODES - v.failures - 1
            ))),
        }
    }
}

/// An address as it may go into a certificate (RFC 5280 §4.2.1.6
/// rfc822Name: ASCII `local@domain`), the domain lower-cased.
pub(super) fn normalise_email(email: &str) -> Result<String, Error> {
    let email = email.trim();
    let valid = email.len() <= 254
        && email.is_ascii()
        && !email.contains(|c: char| {
            c.is_ascii_whitespace() || c.is_ascii_control() || "<>,;\"".contains(c)
        })
        && matches!(email.split_once('@'), Some((local, domain)) if !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if !valid {
        return Err(Error::invalid_argument(format!(
            "{email:?} is not an e-mail address (ASCII local@domain)"
        )));
    }
    let (local, domain) = email.split_once('@').expect("checked above");
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

fn code_hash(salt: &[u8], code: &str) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(code.as_bytes());
    h.finalize().to_vec()
}

pub(super) fn parse_id(id: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(id.trim()).map_err(|_| Error::invalid_argument("id is not a UUID"))
}

pub(super) fn precondition(why: &'static str) -> Error {
    Error::new(ErrorKind::FailedPrecondition, why)
}

pub(super) fn not_found(why: &'static str) -> Error {
    Error::new(ErrorKind::NotFound, why)
}

/// The registry of `config` (None without `[registry]`): the organisation
/// CA's certificate checked against its key in the token.
pub fn open(
    config: &crate::config::Config,
    database: Option<&Database>,
    hsm: &Hsm,
    root_der: &[u8],
) -> Result<Option<Arc<Registry>>, Error> {
    let Some(settings) = &config.registry else {
        return Ok(None);
    };
    let database = database.ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "[registry] needs a [database] table",
        )
    })?;
    let mut certificates = crate::state::read_certificates(&settings.certificate)?;
    if certificates.len() != 1 {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "{} must hold the organisation CA's certificate (qsign init-org-ca)",
                settings.certificate.display()
            ),
        ));
    }
    let ca_der = certificates.remove(0);
    let label = settings.key_label.clone();
    let in_token = hsm.run_blocking(move |session| Ok(session.persistent_public_key(&label)?))?;
    let ca = Issuer::from_der(ca_der.clone())?;
    if in_token != ca.certificate.tbs_certificate.subject_public_key_info {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "the organisation CA certificate does not match the token key '{}'",
                settings.key_label
            ),
        ));
    }
    let registry = Registry::new(
        settings.clone(),
        database.clone(),
        (ca_der, root_der.to_vec()),
        config.profiles.clone(),
    )?;
    Ok(Some(Arc::new(registry)))
}
