//! The certificates' lifecycle (SPEC §9): order, issue or renew from a
//! CSR or a generated key, revoke, search and export.

use std::time::SystemTime;

use der::Decode;
use p256::pkcs8::EncodePrivateKey;
use spki::SubjectPublicKeyInfoOwned;

use super::flow::{normalise_email, not_found, parse_id, precondition};
use super::model::{unix, Kind, Order, Reason, Record, Selection, Status};
use super::{certificate, csr, pkcs12, IssueResult, KeySource, Registry};
use crate::auth::admin::{denied, Administrator};
use crate::hsm::Hsm;
use crate::{Error, ErrorKind};

/// Page size of a search without one, and the largest.
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

impl Registry {
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
        let from = transition_from(renew, record.stored_status)?;
        self.check_email_validated(&record).await?;
        let organization = self.organization_name(&record.cvr).await?;
        let subject = certificate::subject(&record, &organization)?;
        let (public_key, secret) = public_key(&key)?;
        let der = self.sign(hsm, &record, subject, public_key).await?;
        let issued = certificate::described(der.clone())?;
        // The race is decided here: only a record still in `from` at the
        // version read takes the certificate (and its serial).
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
                let built =
                    tokio::task::spawn_blocking(move || pkcs12::build(&secret, &chain, &password));
                Some(
                    built
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

    /// The organisation CA signs the certificate of `record` in the token.
    async fn sign(
        &self,
        hsm: &Hsm,
        record: &Record,
        subject: x509_cert::name::Name,
        public_key: SubjectPublicKeyInfoOwned,
    ) -> Result<Vec<u8>, Error> {
        let (ca, label, locations) = (
            self.ca.clone(),
            self.settings.key_label.clone(),
            self.settings.locations(),
        );
        let record = record.clone();
        let issued = hsm
            .run(move |session| {
                let signer = session.session_signer(&label)?;
                let now = SystemTime::now();
                certificate::issue(
                    &record,
                    subject,
                    public_key,
                    (&ca, &signer),
                    &locations,
                    now,
                )
            })
            .await?;
        Ok(issued.der)
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
}

/// SPEC §9: issue from PENDING, renew from VALID (or EXPIRED, stored VALID).
fn transition_from(renew: bool, stored: Status) -> Result<Status, Error> {
    match (renew, stored) {
        (false, Status::Pending) => Ok(Status::Pending),
        (true, Status::Valid) => Ok(Status::Valid),
        (false, _) => Err(precondition(
            "the certificate is not pending; renew it instead",
        )),
        (true, Status::Revoked) => Err(precondition("the certificate is revoked")),
        (true, _) => Err(precondition(
            "the certificate was never issued; issue it first",
        )),
    }
}

/// A generated private key, PKCS#8 DER, wiped when dropped.
type Secret = zeroize::Zeroizing<Vec<u8>>;

/// The certificate's key: from the CSR, or made here for a PKCS#12.
fn public_key(key: &KeySource) -> Result<(SubjectPublicKeyInfoOwned, Option<Secret>), Error> {
    match key {
        KeySource::Csr(bytes) => Ok((csr::verified_key(bytes)?, None)),
        KeySource::Generate(password) if password.chars().count() < 8 => Err(
            Error::invalid_argument("the PKCS#12 password must have at least 8 characters"),
        ),
        KeySource::Generate(_) => generated_key().map(|(spki, secret)| (spki, Some(secret))),
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
fn generated_key() -> Result<(SubjectPublicKeyInfoOwned, Secret), Error> {
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
