//! What the registry says about status (SPEC §9): OCSP answers and the
//! CRL of the organisation CA from the store, and the contact person's
//! mails (issued, renewed, revoked, expiring).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::mail::Mail;
use super::model::{unix, Record, RevokedSerial, SerialStatus};
use super::Registry;
use crate::hsm::Hsm;
use crate::Error;

/// How long a CRL is served again while the revocations it lists are still
/// all there are: well inside its hour (`status::NEXT_UPDATE`), and never
/// past a revocation, on whichever replica it was made.
const CRL_REUSE: Duration = Duration::from_secs(300);

/// A CRL the registry made: when, for which revocations, its DER.
pub struct MadeCrl {
    made: Instant,
    revoked: Vec<RevokedSerial>,
    der: Vec<u8>,
}

impl Registry {
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

    /// The organisation CA's current CRL (RFC 5280 §5). The revocations
    /// are read from the store on every call; the CRL is signed again only
    /// when they changed or the last one is older than [`CRL_REUSE`], and
    /// only after `admit` (the anonymous HSM rate) lets it.
    pub async fn crl(
        &self,
        hsm: &Hsm,
        admit: impl FnOnce() -> Result<(), Error>,
    ) -> Result<Vec<u8>, Error> {
        let now = SystemTime::now();
        let revoked = self.store.revoked_unexpired(unix(now)).await?;
        if let Some(der) = self.reusable_crl(&revoked) {
            return Ok(der);
        }
        admit()?;
        let (ca, label) = (self.ca.clone(), self.settings.key_label.clone());
        let listed = revoked.clone();
        let der = hsm
            .run(move |session| {
                let signer = session.session_signer(&label)?;
                super::status::crl(&ca, listed, now, &signer)
            })
            .await?;
        *self.crl.lock().unwrap_or_else(|e| e.into_inner()) = Some(MadeCrl {
            made: Instant::now(),
            revoked,
            der: der.clone(),
        });
        Ok(der)
    }

    fn reusable_crl(&self, revoked: &[RevokedSerial]) -> Option<Vec<u8>> {
        let made = self.crl.lock().unwrap_or_else(|e| e.into_inner());
        made.as_ref()
            .filter(|m| m.made.elapsed() < CRL_REUSE && m.revoked == revoked)
            .map(|m| m.der.clone())
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

    /// Mails the contact person; a failure is logged, the change stands.
    pub(super) async fn notify(&self, record: &Record, what: &str) {
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
