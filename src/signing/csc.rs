//! The Cloud Signature Consortium flow (SPEC §13), independent of HTTP:
//!
//! ```text
//! bearer (IdP token, aud qsign-csc) ──verify_bearer──► the user (sub, names, seal_profiles)
//! credentials/info ──► one-time key (held session) + its certificate ──► Keys
//! credentials/authorize(hashes, activation token) ──► SAD = that token (SCAL2)
//! signatures/signHash(SAD, hashes) ──take the key (destroyed on every path)──►
//!     verify SAD · sub · digests == hashes · profile · reserve ──► sign ──► commit
//! ```
//!
//! A key signs one `signHash` batch; unused, the reaper destroys it after
//! `key_lifetime` (CSC v1.0.4.0 §11.5 / v2.0 §11.6 `credentials/info` says
//! nothing on key lifetime: this is qsign's one-time-certificate rule).

mod error;
mod keys;

pub use error::{CscError, CscErrorKind};

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use keys::{Keys, Prepared};

use super::{refused, subject, Authorization, Document, Level, PdfOptions, SigningCore};
use crate::auth::{Activation, ProfileId, Signatory};
use crate::hsm::KeyAlgorithm;
use crate::{pki, Error};

/// `[csc]`: the facade's settings.
#[derive(Clone, Debug)]
pub struct CscSettings {
    /// Required `aud` of bearer tokens (SPEC §13).
    pub audience: String,
    /// How long a one-time key waits for its `signHash` (SPEC §13: 5 min).
    pub key_lifetime: Duration,
    /// Prepared keys one `sub` may hold at once, and all users together:
    /// an idle client cannot fill the token.
    pub max_keys_per_subject: usize,
    pub max_keys: usize,
    pub key_algorithm: KeyAlgorithm,
}

impl From<&crate::config::CscConfig> for CscSettings {
    fn from(config: &crate::config::CscConfig) -> Self {
        Self {
            audience: config.audience.clone(),
            key_lifetime: Duration::from_secs(config.key_lifetime_seconds),
            max_keys_per_subject: config.max_keys_per_subject,
            max_keys: config.max_keys,
            key_algorithm: KeyAlgorithm::EcP256,
        }
    }
}

impl Default for CscSettings {
    fn default() -> Self {
        (&crate::config::CscConfig::default()).into()
    }
}

/// A CSC credential: the caller's personal signing or a seal profile.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Credential {
    Person,
    Seal(ProfileId),
}

impl Credential {
    fn seal_profile(&self) -> Option<&str> {
        match self {
            Self::Person => None,
            Self::Seal(id) => Some(id.as_str()),
        }
    }
}

impl FromStr for Credential {
    type Err = CscError;
    fn from_str(s: &str) -> Result<Self, CscError> {
        match s.split_once(':') {
            None if s == "person" => Ok(Self::Person),
            Some(("seal", id)) => id.parse().map(Self::Seal).map_err(|_| unknown_credential()),
            _ => Err(unknown_credential()),
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Person => f.write_str("person"),
            Self::Seal(id) => write!(f, "seal:{id}"),
        }
    }
}

fn unknown_credential() -> CscError {
    CscError::invalid_request("invalid parameter credentialID: 'person' or 'seal:<profile id>'")
}

/// What `credentials/info` returns about a prepared credential.
pub struct CredentialInfo {
    /// The one-time certificate (DER), then the chain up to the root.
    pub certificates: Vec<Vec<u8>>,
    pub algorithm: KeyAlgorithm,
    pub serial_hex: String,
    pub subject_dn: String,
    pub issuer_dn: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Hashes one `signHash` may carry (`multisign`).
    pub multisign: usize,
}

/// A SAD for `credentials/authorize`'s answer.
pub struct Sad {
    pub sad: String,
    pub expires_in: Duration,
}

/// What `signatures/signDoc` signs (CSC v2.0 §11.11).
pub enum DocumentToSign {
    Pdf(Vec<u8>),
    /// Detached CAdES of content, or of its SHA-256 (`documentDigests`).
    Cades(Document),
}

/// What it returns: signed PDFs (`DocumentWithSignature`) and CMS
/// signatures (`SignatureObject`).
#[derive(Default)]
pub struct SignedDocuments {
    pub documents: Vec<Vec<u8>>,
    pub signatures: Vec<Vec<u8>>,
}

/// The facade's shared state: the core, the one-time keys, the reaper.
pub struct Csc {
    core: Arc<SigningCore>,
    keys: Keys,
    settings: CscSettings,
}

impl Csc {
    /// Opens the held-keys session and starts the reaper (needs a tokio
    /// runtime); the reaper ends when the `Csc` is dropped.
    pub fn start(core: Arc<SigningCore>, settings: CscSettings) -> Result<Arc<Self>, Error> {
        let keys = Keys::new(core.hsm.held_keys()?, settings.clone());
        let csc = Arc::new(Self {
            core,
            keys,
            settings,
        });
        tokio::spawn(reap(Arc::downgrade(&csc)));
        Ok(csc)
    }

    pub fn settings(&self) -> &CscSettings {
        &self.settings
    }

    /// Largest request body: a PDF of the size limit, in base64, and JSON.
    pub fn max_request_bytes(&self) -> usize {
        self.core.limits.max_document_bytes / 3 * 4 + (64 << 10)
    }

    /// SPEC §13 (§9's rules): the bearer is an IdP token for our audience.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Activation, CscError> {
        let bearer = bearer.ok_or_else(|| {
            CscError::new(
                CscErrorKind::InvalidToken,
                "an Authorization: Bearer token is required",
            )
        })?;
        self.core
            .verifier
            .verify_bearer(bearer, &self.settings.audience, SystemTime::now())
            .map_err(|e| CscError::new(CscErrorKind::InvalidToken, e.to_string()))
    }

    /// `credentials/list`: `person` when the profiles allow it, and each
    /// seal profile the bearer may seal with; the registry's profiles are
    /// live here too (SPEC §9, §13).
    pub async fn credentials(&self, user: &Activation) -> Result<Vec<Credential>, CscError> {
        let listed = self.core.with_profiles(|profiles| {
            let person = profiles
                .authorize(user, None, None)
                .is_ok()
                .then_some(Credential::Person);
            let seals = user
                .seal_profiles
                .iter()
                .filter(|id| profiles.authorize(user, Some(id.as_str()), None).is_ok())
                .map(|id| Credential::Seal(id.clone()));
            person.into_iter().chain(seals).collect()
        });
        Ok(listed.await?)
    }

    /// SPEC §12's per-caller limits, the bearer's `sub` as the caller: every
    /// call that costs the HSM holds an admission (429 beyond the limits).
    fn admit(&self, user: &Activation) -> Result<crate::limits::Admission, CscError> {
        let caller = crate::limits::Caller::Subject(user.subject);
        Ok(self.core.limiter.callers.admit(caller)?)
    }

    /// The credential `id` if it is the bearer's, with its signatory.
    async fn credential(
        &self,
        user: &Activation,
        id: &str,
    ) -> Result<(Credential, Signatory), CscError> {
        let credential: Credential = id.parse()?;
        let signatory = self.signatory(user, &credential).await?;
        Ok((credential, signatory))
    }

    /// Who signs with `credential` for `user`, on the profiles as of now
    /// (SPEC §9: a registry profile deleted is refused at the next call).
    async fn signatory(
        &self,
        user: &Activation,
        credential: &Credential,
    ) -> Result<Signatory, CscError> {
        self.core
            .with_profiles(|profiles| profiles.authorize(user, credential.seal_profile(), None))
            .await?
            .map_err(|e| CscError::new(CscErrorKind::AccessDenied, e.to_string()))
    }

    /// `credentials/info`: prepares the one-time key and its certificate
    /// (SPEC §13), bound to the bearer's `sub` and the credential.
    pub async fn prepare(&self, user: &Activation, id: &str) -> Result<CredentialInfo, CscError> {
        let _admission = self.admit(user)?;
        let (credential, signatory) = self.credential(user, id).await?;
        let slot = self.keys.admit(user.subject, &credential)?;
        let (key, public_key) = self.keys.generate(self.settings.key_algorithm).await?;
        // From here the key is held by `prepared`: dropped, it is destroyed.
        let mut prepared = Prepared::new(self.keys.held(), key);
        let core = self.core.clone();
        let issued = self
            .core
            .hsm
            .run(move |session| {
                let ca = session.issuing_ca()?;
                let now = SystemTime::now();
                pki::issue(
                    &subject(&signatory),
                    public_key,
                    &core.policy,
                    &core.issuer,
                    &ca,
                    now,
                )
            })
            .await?;
        let info = self.info(&issued);
        prepared.certificate = issued.der;
        self.keys.insert(slot, user.subject, credential, prepared);
        Ok(info)
    }

    fn info(&self, issued: &pki::Issued) -> CredentialInfo {
        let tbs = &issued.certificate.tbs_certificate;
        let mut certificates = vec![issued.der.clone()];
        certificates.extend(self.core.trust_chain.iter().cloned());
        CredentialInfo {
            certificates,
            algorithm: self.settings.key_algorithm,
            serial_hex: hex::encode(tbs.serial_number.as_bytes()),
            subject_dn: tbs.subject.to_string(),
            issuer_dn: tbs.issuer.to_string(),
            not_before: tbs.validity.not_before.to_system_time(),
            not_after: tbs.validity.not_after.to_system_time(),
            multisign: self.core.limits.max_batch,
        }
    }

    /// `credentials/authorize` (SCAL2): the SAD is the activation token the
    /// IdP gave the signer for exactly these hashes (SPEC §3, §13); checked
    /// here, spent by `signHash`.
    pub async fn authorize(
        &self,
        user: &Activation,
        id: &str,
        hashes: &[[u8; 32]],
        activation_token: &str,
    ) -> Result<Sad, CscError> {
        self.credential(user, id).await?;
        let now = SystemTime::now();
        let sad = self.check_sad(user, activation_token, hashes, now)?;
        let expires_in = sad.expires_at.duration_since(now).unwrap_or_default();
        Ok(Sad {
            sad: activation_token.trim().to_owned(),
            expires_in,
        })
    }

    /// A SAD of this user whose `digests` are exactly `hashes` (SCAL2).
    fn check_sad(
        &self,
        user: &Activation,
        sad: &str,
        hashes: &[[u8; 32]],
        now: SystemTime,
    ) -> Result<Activation, CscError> {
        if hashes.is_empty() {
            return Err(CscError::invalid_request(
                "missing parameter hash: SCAL 2 binds the SAD to the hashes",
            ));
        }
        let sad = self
            .core
            .verifier
            .verify(sad, now)
            .map_err(|e| CscError::invalid_request(format!("invalid SAD: {e}")))?;
        if sad.subject != user.subject {
            return Err(CscError::invalid_request(
                "invalid SAD: it was issued to another user",
            ));
        }
        let mut approved = sad.digests.clone();
        let mut asked = hashes.to_vec();
        approved.sort_unstable();
        approved.dedup();
        asked.sort_unstable();
        asked.dedup();
        if approved != asked {
            return Err(CscError::invalid_request(
                "invalid SAD: its digests are not exactly the hashes to sign",
            ));
        }
        Ok(sad)
    }

    /// `signatures/signHash`: the prepared key signs `hashes` (SHA-256 of
    /// the client's signed attributes) once and is destroyed.
    ///
    /// SPEC §11: a refusal is recorded too (not one over the caller's
    /// limits: those write nothing); without its record the answer is
    /// `temporarily_unavailable`.
    pub async fn sign_hash(
        &self,
        user: &Activation,
        id: &str,
        sad: &str,
        hashes: &[[u8; 32]],
    ) -> Result<Vec<Vec<u8>>, CscError> {
        let _admission = self.admit(user)?;
        let outcome = self.try_sign_hash(user, id, sad, hashes).await;
        match &outcome {
            Err(e) if e.kind != CscErrorKind::TooManyRequests => {
                self.record_refusal(user, id, hashes, e).await?;
            }
            _ => {}
        }
        outcome
    }

    async fn try_sign_hash(
        &self,
        user: &Activation,
        id: &str,
        sad: &str,
        hashes: &[[u8; 32]],
    ) -> Result<Vec<Vec<u8>>, CscError> {
        let credential: Credential = id.parse()?;
        if hashes.len() > self.core.limits.max_batch {
            return Err(CscError::invalid_request(format!(
                "{} hashes; multisign is {}",
                hashes.len(),
                self.core.limits.max_batch
            )));
        }
        // Taken out of the store: destroyed on every path from here.
        let prepared = self.keys.take(user.subject, &credential).ok_or_else(|| {
            CscError::invalid_request(
                "no one-time key for this credential (never prepared, used or expired): call credentials/info",
            )
        })?;
        let now = SystemTime::now();
        let activation = self.check_sad(user, sad, hashes, now)?;
        let signatory = self.signatory(&activation, &credential).await?;
        let reservation = self
            .core
            .verifier
            .reserve(&activation, now)
            .await
            .map_err(|e| CscError::invalid_request(format!("invalid SAD: {e}")))?;
        match prepared.sign(hashes.to_vec()).await {
            Ok(signatures) => {
                // SPEC §11: the record before the answer; none, no answer.
                // The record spends the token in its transaction.
                let token = reservation.ledger_id();
                match self
                    .record(&activation, &signatory, &prepared, hashes, token)
                    .await
                {
                    Ok(true) => reservation.settled(true)?,
                    Ok(false) => reservation.commit().await?,
                    Err(e) => {
                        reservation.release().await;
                        return Err(e.into());
                    }
                }
                Ok(signatures)
            }
            Err(e) => Err(refused(reservation, e).await.into()),
        }
    }

    /// The audit record of a `signHash` (SPEC §11: the fields that exist
    /// here; the hashes are of the client's signed attributes), spending
    /// `token` in its transaction; false when there is no audit log.
    async fn record(
        &self,
        activation: &Activation,
        signatory: &Signatory,
        prepared: &Prepared,
        hashes: &[[u8; 32]],
        token: Option<crate::auth::TokenId>,
    ) -> Result<bool, Error> {
        use crate::audit::{Event, EventKind, Outcome, Settle};
        let Some(log) = &self.core.audit else {
            return Ok(false);
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut event = Event::new(id, EventKind::Issuance, Outcome::Success);
        let serial = <x509_cert::Certificate as der::Decode>::from_der(&prepared.certificate)
            .map(|c| c.tbs_certificate.serial_number.as_bytes().to_vec())
            .unwrap_or_default();
        event.certificate(&serial, &prepared.certificate);
        event.calling_system = Some("csc".into());
        event.sub = Some(activation.subject.to_string());
        event.profile = Some(match signatory {
            Signatory::Person { .. } => "personal".into(),
            Signatory::Seal { profile, .. } => profile.to_string(),
        });
        event.documents = hashes.to_vec();
        event.detail = Some("CSC signatures/signHash".into());
        event.token = token.map(|id| (id, Settle::Spend));
        log.record(event).await.map(|_| true)
    }

    /// The record of a refused `signHash`: who, which credential, the
    /// hashes and the CSC error code; no certificate, no token to settle
    /// (the refusal settled it already).
    async fn record_refusal(
        &self,
        user: &Activation,
        id: &str,
        hashes: &[[u8; 32]],
        refusal: &CscError,
    ) -> Result<(), CscError> {
        use crate::audit::{Event, EventKind, Outcome};
        let Some(log) = &self.core.audit else {
            return Ok(());
        };
        let record_id = uuid::Uuid::new_v4().to_string();
        let mut event = Event::new(record_id, EventKind::Refusal, Outcome::Refused);
        event.error_code = Some(refusal.kind.code().to_owned());
        event.calling_system = Some("csc".into());
        event.sub = Some(user.subject.to_string());
        event.profile = Some(match id.parse::<Credential>() {
            Ok(credential) => credential.seal_profile().unwrap_or("personal").to_owned(),
            Err(_) => "unknown credential".into(),
        });
        event.documents = hashes.to_vec();
        event.detail = Some("CSC signatures/signHash".into());
        if let Err(e) = log.record(event).await {
            tracing::error!(error = %e, "the audit log cannot be written; the CSC refusal is withheld");
            return Err(CscError::new(
                CscErrorKind::TemporarilyUnavailable,
                "the audit log cannot be written; try again later",
            ));
        }
        Ok(())
    }

    /// `signatures/signDoc` (CSC v2.0 §11.11): the core's own flow, the SAD
    /// as activation token. One SAD is one signature request: one PDF, or
    /// a batch of detached CAdES.
    pub async fn sign_doc(
        &self,
        user: &Activation,
        id: &str,
        sad: &str,
        documents: Vec<DocumentToSign>,
        level: Option<Level>,
    ) -> Result<SignedDocuments, CscError> {
        let _admission = self.admit(user)?;
        let (credential, _) = self.credential(user, id).await?;
        let activation = self
            .core
            .verifier
            .verify(sad, SystemTime::now())
            .map_err(|e| CscError::invalid_request(format!("invalid SAD: {e}")))?;
        if activation.subject != user.subject {
            return Err(CscError::invalid_request(
                "invalid SAD: it was issued to another user",
            ));
        }
        let authorization = Authorization {
            activation_token: sad.to_owned(),
            seal_profile: credential.seal_profile().map(str::to_owned),
            key_algorithm: self.settings.key_algorithm,
            level,
            client: None,
            calling_system: Some("csc".into()),
        };
        let mut signed = SignedDocuments::default();
        let mut pdfs = Vec::new();
        let mut detached = Vec::new();
        for document in documents {
            match document {
                DocumentToSign::Pdf(pdf) => pdfs.push(pdf),
                DocumentToSign::Cades(d) => detached.push(d),
            }
        }
        match (pdfs.len(), detached.is_empty()) {
            (1, true) => {
                let pdf = pdfs.pop().unwrap_or_default();
                let out = self
                    .core
                    .sign_pdf(pdf, PdfOptions::default(), authorization)
                    .await?;
                signed.documents.push(out.signed_pdf);
            }
            (0, false) => {
                let out = self.core.sign_detached(detached, authorization).await?;
                signed.signatures = out.cms;
            }
            _ => {
                return Err(CscError::invalid_request(
                    "one SAD signs one PDF (signature_format P) or a batch of CAdES (C), not a mix",
                ))
            }
        }
        Ok(signed)
    }

    /// Shutdown (SPEC §12): every prepared key is destroyed before this
    /// returns, unless the token hangs past `deadline` (`None`: no bound;
    /// see `Hsm::close`); later CSC calls that need a key fail.
    pub fn shutdown(&self, deadline: Option<std::time::Instant>) {
        self.keys.close(deadline);
    }

    /// Prepared keys right now (metrics, tests).
    pub fn prepared(&self) -> usize {
        self.keys.len()
    }
}

/// The reaper: destroys keys unused for `key_lifetime`; ends with the facade.
async fn reap(csc: Weak<Csc>) {
    let period = match csc.upgrade() {
        Some(csc) => (csc.settings.key_lifetime / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(15)),
        None => return,
    };
    loop {
        tokio::time::sleep(period).await;
        match csc.upgrade() {
            Some(csc) => csc.keys.reap(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn credential_ids_round_trip() {
        for id in ["person", "seal:dev", "seal:acme-seal.2"] {
            assert_eq!(id.parse::<Credential>().unwrap().to_string(), id);
        }
        for bad in ["", "Person", "seal:", "seal:a b", "org:dev", "person:x"] {
            let e = bad.parse::<Credential>().unwrap_err();
            assert_eq!(e.kind, CscErrorKind::InvalidRequest, "{bad}");
        }
    }

    #[test]
    fn core_errors_keep_their_meaning() {
        let kind = |k| CscError::from(Error::new(k, "x")).kind;
        assert_eq!(
            kind(ErrorKind::Unauthenticated),
            CscErrorKind::InvalidRequest
        );
        assert_eq!(
            kind(ErrorKind::PermissionDenied),
            CscErrorKind::AccessDenied
        );
        assert_eq!(
            kind(ErrorKind::Unavailable),
            CscErrorKind::TemporarilyUnavailable
        );
        assert_eq!(kind(ErrorKind::Internal), CscErrorKind::ServerError);
    }
}
