//! The administration flow (SPEC §9): who may do what, then the store and
//! the HSM. Every method takes the verified [`Administrator`].

use std::sync::Arc;
use std::time::SystemTime;

use der::Decode;
use p256::pkcs8::EncodePrivateKey;
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;

use super::mail::{Mail, Mailer};
use super::model::{unix, Kind, Order, Reason, Record, Selection, SerialStatus, Status};
use super::profiles::{self, LiveProfiles};
use super::settings::RegistrySettings;
use super::status::CaHashes;
use super::{certificate, csr, pkcs12};
use crate::auth::admin::{denied, Administrator};
use crate::auth::{Profile, Profiles};
use crate::hsm::Hsm;
use crate::pki::Issuer;
use crate::store::registry::ProfileRow;
use crate::store::{Database, RegistryStore};
use crate::{Error, ErrorKind};

/// SPEC §9: a code expires after 24 h; five wrong tries end it.
const CODE_LIFETIME: i64 = 24 * 3600;
const MAX_WRONG_CODES: i64 = 5;
/// Page size of a search without one, and the largest.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// The registry: built once at start, shared by all requests.
pub struct Registry {
    store: RegistryStore,
    settings: RegistrySettings,
    ca: Issuer,
    ca_hashes: CaHashes,
    /// DER: the organisation CA, then the root.
    chain: Vec<Vec<u8>>,
    mailer: Mailer,
    profiles: LiveProfiles,
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
        })
    }

    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    pub fn ca_certificate(&self) -> &[u8] {
        &self.chain[0]
    }

    /// The profiles a signature is checked against now (SPEC §4, §9).
    pub async fn current_profiles(&self) -> Result<Arc<Profiles>, Error> {
        self.profiles.current(&self.store).await
    }

    // ---- profiles --------------------------------------------------------

    pub async fn put_profile(
        &self,
        who: &Administrator,
        row: ProfileRow,
    ) -> Result<Profile, Error> {
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

    // ---- certificates ----------------------------------------------------

    pub async fn order(&self, who: &Administrator, order: Order) -> Result<Record, Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        let order = check_order(order)?;
        let id = uuid::Uuid::new_v4();
        if !self
            .store
            .insert_order(id, who.org_cvr.to_string(), order)
            .await?
        {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "the organisation already has a certificate of this name",
            ));
        }
        self.record(id).await
    }

    pub async fn get(&self, who: &Administrator, id: &str) -> Result<Record, Error> {
        let record = self.record(parse_id(id)?).await?;
        if !is_own_user_certificate(who, &record) {
            who.require_admin_of(&record.cvr)?;
        }
        Ok(record)
    }

    /// Issue (from PENDING) or renew (from VALID or EXPIRED): SPEC §9.
    pub async fn issue(
        &self,
        hsm: &Hsm,
        who: &Administrator,
        (id, renew): (&str, bool),
        key: KeySource,
    ) -> Result<IssueResult, Error> {
        let record = self.record(parse_id(id)?).await?;
        authorize_issue(who, &record)?;
        let from = match (renew, record.stored_status) {
            (false, Status::Pending) => Status::Pending,
            (true, Status::Valid) => Status::Valid,
            (false, _) => {
                return Err(precondition(
                    "the certificate is not pending; renew it instead",
                ))
            }
            (true, Status::Revoked) => return Err(precondition("the certificate is revoked")),
            (true, _) => {
                return Err(precondition(
                    "the certificate was never issued; issue it first",
                ))
            }
        };
        self.check_email_validated(&record).await?;
        let organization = self.organization_name(&record.cvr).await?;
        let subject = certificate::subject(&record, &organization)?;
        let (public_key, secret) = match &key {
            KeySource::Csr(bytes) => (csr::verified_key(bytes)?, None),
            KeySource::Generate(password) => {
                if password.chars().count() < 8 {
                    return Err(Error::invalid_argument(
                        "the PKCS#12 password must have at least 8 characters",
                    ));
                }
                let (spki, secret) = generated_key()?;
                (spki, Some(secret))
            }
        };
        let (ca, label, locations) = (
            self.ca.clone(),
            self.settings.key_label.clone(),
            self.settings.locations(),
        );
        let signing = record.clone();
        let issued = hsm
            .run(move |session| {
                let signer = session.session_signer(&label)?;
                certificate::issue(
                    &signing,
                    subject,
                    public_key,
                    (&ca, &signer),
                    &locations,
                    SystemTime::now(),
                )
            })
            .await?;
        let der = issued.der.clone();
        if !self
            .store
            .record_issued(record.id, (from, record.version), issued)
            .await?
        {
            return Err(precondition(if renew {
                "the certificate changed meanwhile (revoked or renewed); nothing was issued"
            } else {
                "the certificate was issued meanwhile; nothing was issued"
            }));
        }
        let pkcs12 = match (key, secret) {
            (KeySource::Generate(password), Some(secret)) => {
                let chain: Vec<Vec<u8>> = std::iter::once(der.clone())
                    .chain(self.chain.iter().cloned())
                    .collect();
                Some(
                    tokio::task::spawn_blocking(move || pkcs12::build(&secret, &chain, &password))
                        .await
                        .map_err(|e| Error::internal("PKCS#12 task failed").with_source(e))??,
                )
            }
            _ => None,
        };
        let record = self.record(record.id).await?;
        self.notify(&record, if renew { "renewed" } else { "issued" })
            .await;
        Ok(IssueResult {
            record,
            certificate: der,
            chain: self.chain.clone(),
            pkcs12,
        })
    }

    pub async fn revoke(
        &self,
        who: &Administrator,
        id: &str,
        reason: Reason,
    ) -> Result<Record, Error> {
        let record = self.record(parse_id(id)?).await?;
        who.require_admin_of(&record.cvr)?;
        if !self
            .store
            .revoke(record.id, reason, unix(SystemTime::now()))
            .await?
        {
            return Err(precondition(match record.stored_status {
                Status::Revoked => "the certificate is already revoked",
                _ => "only an issued certificate can be revoked",
            }));
        }
        let record = self.record(record.id).await?;
        self.notify(&record, "revoked").await;
        Ok(record)
    }

    /// SPEC §9 search: a page and the token of the next (empty at the end).
    pub async fn search(
        &self,
        who: &Administrator,
        selection: Selection,
        (page_size, page_token): (u32, &str),
    ) -> Result<(Vec<Record>, String), Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        let size = if page_size == 0 {
            DEFAULT_PAGE
        } else {
            page_size.min(MAX_PAGE)
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                parse_id(page_token)
                    .map_err(|_| Error::invalid_argument("bad page_token"))?
                    .to_string(),
            )
        };
        let now = unix(SystemTime::now());
        let mut page = self
            .store
            .search(
                who.org_cvr.to_string(),
                selection,
                after,
                Some(i64::from(size) + 1),
                now,
            )
            .await?;
        let next = if page.len() > size as usize {
            page.truncate(size as usize);
            page.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok((page, next))
    }

    /// SPEC §9 CSV export of the whole selection.
    pub async fn export(&self, who: &Administrator, selection: Selection) -> Result<String, Error> {
        who.require_admin_of(who.org_cvr.as_str())?;
        let now = unix(SystemTime::now());
        let records = self
            .store
            .search(who.org_cvr.to_string(), selection, None, None, now)
            .await?;
        Ok(super::csv::export(&records, now))
    }

    // ---- status ----------------------------------------------------------

    /// RFC 6960 answer for a request whose CertIDs are all the organisation
    /// CA's; `None` when it is not such a request (another responder's).
    pub async fn ocsp_answer(&self, hsm: &Hsm, request: &[u8]) -> Option<Result<Vec<u8>, Error>> {
        let (ids, nonce) = crate::pki::ocsp::parse_request(request)?;
        if !ids.iter().all(|id| self.ca_hashes.matches(id)) {
            return None;
        }
        Some(self.answer(hsm, ids, nonce).await)
    }

    async fn answer(
        &self,
        hsm: &Hsm,
        ids: Vec<x509_ocsp::CertId>,
        nonce: Option<Vec<x509_cert::ext::Extension>>,
    ) -> Result<Vec<u8>, Error> {
        let mut answers = Vec::with_capacity(ids.len());
        for id in ids {
            let status = self
                .store
                .serial_status(super::status::serial_of(&id))
                .await?;
            answers.push((id, status));
        }
        let (ca, label) = (self.ca.clone(), self.settings.key_label.clone());
        hsm.run(move |session| {
            let signer = session.session_signer(&label)?;
            super::status::respond(&ca, answers, nonce, SystemTime::now(), &signer)
        })
        .await
    }

    /// The organisation CA's current CRL (RFC 5280 §5).
    pub async fn crl(&self, hsm: &Hsm) -> Result<Vec<u8>, Error> {
        let now = SystemTime::now();
        let revoked = self.store.revoked_unexpired(unix(now)).await?;
        let (ca, label) = (self.ca.clone(), self.settings.key_label.clone());
        hsm.run(move |session| {
            let signer = session.session_signer(&label)?;
            super::status::crl(&ca, revoked, now, &signer)
        })
        .await
    }

    /// What OCSP says about `serial` (hex), for tests and tools.
    pub async fn serial_status(&self, serial: &str) -> Result<SerialStatus, Error> {
        Ok(self.store.serial_status(serial.to_lowercase()).await?)
    }

    /// SPEC §9: mails the contact of every certificate that expires within
    /// the notice period, once (each claimed in the store).
    pub async fn send_expiry_notices(&self) -> Result<usize, Error> {
        let now = unix(SystemTime::now());
        let horizon =
            now + i64::try_from(self.settings.expiry_notice.as_secs()).unwrap_or(i64::MAX / 2);
        let due = self.store.claim_expiring(now, horizon).await?;
        for record in &due {
            self.notify(record, "expiring").await;
        }
        Ok(due.len())
    }

    /// Runs [`Registry::send_expiry_notices`] now and then every hour.
    pub fn spawn_expiry_notices(self: &Arc<Self>) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                every.tick().await;
                match registry.send_expiry_notices().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(mails = n, "expiry notices sent"),
                    Err(e) => tracing::warn!(error = %e, "expiry notices failed; next hour"),
                }
            }
        });
    }

    // ---- helpers ---------------------------------------------------------

    async fn record(&self, id: uuid::Uuid) -> Result<Record, Error> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| not_found("no certificate with this id"))
    }

    async fn check_email_validated(&self, record: &Record) -> Result<(), Error> {
        if record.certificate_email.is_empty() {
            return Ok(());
        }
        let v = self
            .store
            .validation(record.cvr.clone(), record.certificate_email.clone())
            .await?;
        match v.and_then(|v| v.validated) {
            Some(_) => Ok(()),
            None => Err(precondition(
                "the certificate e-mail address has not been validated: StartEmailValidation, then ConfirmEmail",
            )),
        }
    }

    /// EN 319 412-3: O is the organisation's name as its profile states it.
    async fn organization_name(&self, cvr: &str) -> Result<String, Error> {
        let profiles = self.current_profiles().await?;
        let name = profiles
            .iter()
            .find(|p| p.cvr.as_str() == cvr)
            .map(|p| p.organization_name.clone());
        name.ok_or_else(|| {
            precondition("the organisation has no profile naming it; PutProfile first")
        })
    }

    /// Mails the contact person; a failure is logged, the change stands.
    async fn notify(&self, record: &Record, what: &str) {
        let when = record
            .not_after
            .map(super::model::rfc3339)
            .unwrap_or_default();
        let body = format!(
            "The certificate \"{}\" ({}) of your organisation was {what}.\r\n\
             Id: {}\r\nSerial: {}\r\nValid until: {when}\r\n",
            record.name,
            record.kind.as_str().to_lowercase(),
            record.id,
            record.serial,
        );
        let mail = Mail {
            to: record.contact_email.clone(),
            subject: format!("qsign: certificate \"{}\" {what}", record.name),
            body,
        };
        if let Err(e) = self.mailer.send(mail).await {
            tracing::error!(error = %e, id = %record.id, "contact mail not sent");
        }
    }
}

fn authorize_issue(who: &Administrator, record: &Record) -> Result<(), Error> {
    match record.kind {
        Kind::User if is_own_user_certificate(who, record) => Ok(()),
        Kind::User => Err(denied(
            "a user certificate is issued by the employee it names",
        )),
        _ => who.require_admin_of(&record.cvr),
    }
}

fn is_own_user_certificate(who: &Administrator, record: &Record) -> bool {
    record.kind == Kind::User && record.user_sub == who.sub && record.cvr == who.org_cvr.as_str()
}

/// A P-256 key made in software for the caller: it leaves in the PKCS#12
/// anyway, so the token would add nothing; it is never stored.
fn generated_key() -> Result<(SubjectPublicKeyInfoOwned, zeroize::Zeroizing<Vec<u8>>), Error> {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let pkcs8 = secret
        .to_pkcs8_der()
        .map_err(|e| Error::internal("PKCS#8 encoding failed").with_source(e))?;
    let spki_der = p256::pkcs8::EncodePublicKey::to_public_key_der(&secret.public_key())
        .map_err(|e| Error::internal("SPKI encoding failed").with_source(e))?;
    let spki =
        SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(crate::pki::encoding)?;
    Ok((spki, zeroize::Zeroizing::new(pkcs8.as_bytes().to_vec())))
}

fn check_order(mut order: Order) -> Result<Order, Error> {
    let kind = order
        .kind
        .ok_or_else(|| Error::invalid_argument("kind is ORGANIZATION, SYSTEM or USER"))?;
    order.name = order.name.trim().to_owned();
    let chars = order.name.chars().count();
    if chars == 0 || chars > crate::pki::MAX_NAME_CHARS || order.name.chars().any(char::is_control)
    {
        return Err(Error::invalid_argument(
            "name: 1 to 64 characters, no control characters",
        ));
    }
    if order.contact_name.trim().is_empty() {
        return Err(Error::invalid_argument("contact_name is mandatory"));
    }
    order.contact_email = normalise_email(&order.contact_email)?;
    if !order.certificate_email.is_empty() {
        order.certificate_email = normalise_email(&order.certificate_email)?;
    }
    match kind {
        Kind::System if order.system_name.trim().is_empty() => {
            return Err(Error::invalid_argument(
                "a SYSTEM certificate needs system_name",
            ))
        }
        Kind::User if order.user_sub.trim().is_empty() => {
            return Err(Error::invalid_argument("a USER certificate needs user_sub"))
        }
        _ => {}
    }
    if order.system_name.chars().count() > crate::pki::MAX_NAME_CHARS {
        return Err(Error::invalid_argument(
            "system_name: at most 64 characters",
        ));
    }
    if order.retrieval.is_none() {
        return Err(Error::invalid_argument("retrieval is BROWSER or API"));
    }
    Ok(order)
}

/// An address as it may go into a certificate (RFC 5280 §4.2.1.6
/// rfc822Name: ASCII `local@domain`), the domain lower-cased.
fn normalise_email(email: &str) -> Result<String, Error> {
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

fn parse_id(id: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(id.trim()).map_err(|_| Error::invalid_argument("id is not a UUID"))
}

fn precondition(why: &'static str) -> Error {
    Error::new(ErrorKind::FailedPrecondition, why)
}

fn not_found(why: &'static str) -> Error {
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
