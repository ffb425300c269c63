//! The request flow, independent of gRPC:
//!
//! ```text
//! activation token ──verify──► Activation ──covers(digests)──► authorize(profile)
//!        │                                                          │
//!        └────────────── reserve jti (single use) ◄─────────────────┘
//!                                   │  spent or in use: UNAUTHENTICATED, no key made
//!                                   │  profiles moved meanwhile: authorize again (`live`)
//!                 Hsm::run (one job on a pooled session's worker thread)
//!                 ├─ generate_ephemeral       (or a pooled pair; guard: destroyed on drop)
//!                 ├─ pki::issue               (issuing CA key signs the TBS)
//!                 ├─ SignatureContext::sign   (ephemeral key signs attributes)
//!                 └─ drop key ───────────────► nothing left in the token
//!                                   │
//!        audit::Log::record (issuance or refusal; spends or releases the token
//!                            in the same transaction) ── response
//! ```
//!
//! Every answer of a signing request, success or error, is first committed
//! to the audit log (SPEC §11, [`crate::audit`]); if it cannot be, the
//! answer is UNAVAILABLE and what was signed is dropped.
//!
//! PAdES B-LT and B-LTA add updates after the signature (`ltv`); CAdES
//! B-LTA adds an archive-time-stamp-v3 to each SignerInfo (`archive`).
//! `csc` is the CSC API's flow (SPEC §13): a one-time key made at
//! `credentials/info`, kept on a dedicated session until `signHash`.

mod archive;
pub mod csc;
mod live;
mod ltv;
mod public;

use live::Authorized;

pub use public::CrlCache;

pub use ltv::DOC_TIMESTAMP_CAPACITY;
mod pdf;

pub use pdf::{pdf_request, PdfOptions, PdfSigner, SignedPdf};

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::audit::Settle;
use crate::auth::{Activation, CallingSystem, Profiles, Reservation, Signatory, Verifier};
use crate::config::Limits;
use crate::hsm::{Hsm, KeyAlgorithm};
use crate::pki::ocsp::Responder;
use crate::pki::{self, CertificatePolicy, Issuer, Subject};
use crate::signed_data;
use crate::signed_data::{SignatureContext, SigningTime};
use crate::tsa::{MessageImprint, TimeStampAuthority};
use crate::{Error, ErrorKind};

/// Everything a request needs; built once at start, shared by all requests.
pub struct SigningCore {
    pub hsm: Hsm,
    pub issuer: Issuer,
    /// The root CA, whose CRL B-LT carries (parsed once, at start).
    pub root: Issuer,
    /// `[ca] root_key_label`: the root's key in the token, which signs its CRL.
    pub root_key_label: String,
    /// Certificates (DER) embedded in every CMS after the signer's own.
    pub chain: Vec<der::Any>,
    /// DER, issuing CA first, root last (GetTrustChain).
    pub trust_chain: Vec<Vec<u8>>,
    pub policy: CertificatePolicy,
    pub verifier: Verifier,
    pub profiles: Profiles,
    pub limits: Limits,
    /// Per-caller and anonymous limits, memory budget (SPEC §12).
    pub limiter: Arc<crate::limits::Limiter>,
    /// The built-in time-stamping authority, when `[tsa]` is configured.
    pub tsa: Option<Arc<TimeStampAuthority>>,
    /// External TSAs (`[tsa] urls`), tried in order; when given they are
    /// used instead of the built-in one.
    pub external_tsa: Option<crate::tsa::ExternalTsas>,
    /// `[ocsp]`: certificates name this responder instead of carrying
    /// noRevAvail; B-LT embeds its response about the signer's certificate.
    pub ocsp: Option<Arc<Responder>>,
    /// `[database]`: spent tokens, the audit log and the registry.
    pub database: Option<crate::store::Database>,
    /// SPEC §9 `[registry]`: organisation certificates and live profiles.
    pub registry: Option<Arc<crate::registry::Registry>>,
    /// `[audit]` (SPEC §11): every request's record is written before its
    /// answer leaves. None: no audit log (tests' default cores, benches).
    pub audit: Option<Arc<crate::audit::Log>>,
}

/// A document of a detached request: its content or its SHA-256.
pub enum Document {
    Content(Vec<u8>),
    Digest(Vec<u8>),
}

/// Who asks, for what (the parts every kind of request shares).
pub struct Authorization {
    pub activation_token: String,
    /// Empty or None: personal signature of the token's subject.
    pub seal_profile: Option<String>,
    pub key_algorithm: KeyAlgorithm,
    /// None: the server's default, B-T wherever a TSA is available.
    pub level: Option<Level>,
    /// The caller's verified TLS client certificate (SPEC §1, §12); none
    /// without mTLS. Seal profiles with `allowed_clients` need it.
    pub client: Option<CallingSystem>,
    /// Who called, for the audit record: the client certificate's name,
    /// else the peer address.
    pub calling_system: Option<String>,
}

/// SPEC §6 baseline levels (EN 319 122-1 / EN 319 142-1), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    BB,
    BT,
    BLt,
    BLta,
}

pub struct DetachedSignatures {
    pub cms: Vec<Vec<u8>>,
    pub certificate: Vec<u8>,
    pub signature_id: String,
}

/// A hash-only PAdES signature, and for B-LT and up what the client writes
/// into the /DSS after it (EN 319 142-1 §5.4.2), DER.
pub struct PdfDigestSignature {
    pub signature: DetachedSignatures,
    pub validation_certificates: Vec<Vec<u8>>,
    pub crls: Vec<Vec<u8>>,
    pub ocsps: Vec<Vec<u8>>,
}

/// What one HSM task is asked: who, with which key, which digests.
struct Job {
    activation: Activation,
    authorized: Authorized,
    algorithm: KeyAlgorithm,
    /// What the token approved, for the audit record.
    approved: Vec<[u8; 32]>,
    /// What the SignerInfos sign (message-digest attribute).
    digests: Vec<[u8; 32]>,
    signing_time: SigningTime,
    level: Level,
    /// The audit record's id, which the response carries.
    signature_id: String,
}

/// What one HSM task returns.
struct Signed {
    signature_id: String,
    certificate: Vec<u8>,
    /// The certificate's serial number, for the audit record.
    serial: Vec<u8>,
    cms: Vec<Vec<u8>>,
    /// B-LT and up: CRLs, and with `[ocsp]` the responder's OCSPResponse
    /// about the signer's certificate.
    revocation: ltv::RevocationData,
}

impl SigningCore {
    /// SPEC §2 SignDetached: one key, one certificate, one CMS per document.
    pub async fn sign_detached(
        self: &Arc<Self>,
        documents: Vec<Document>,
        authorization: Authorization,
    ) -> Result<DetachedSignatures, Error> {
        let mut trail = Trail::new(&authorization);
        let result = self.detached(documents, authorization, &mut trail).await;
        self.audited(trail, result).await
    }

    async fn detached(
        self: &Arc<Self>,
        documents: Vec<Document>,
        authorization: Authorization,
        trail: &mut Trail,
    ) -> Result<DetachedSignatures, Error> {
        let level = trail.level(self.level(authorization.level)?);
        if documents.is_empty() {
            return Err(Error::invalid_argument(
                "the batch is empty: send at least one document",
            ));
        }
        if documents.len() > self.limits.max_batch {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "{} documents in one request; the limit is {}: split the batch",
                    documents.len(),
                    self.limits.max_batch
                ),
            ));
        }
        self.precheck(&authorization, content_bytes(&documents))?;
        let digests = digests(documents, self.limits.max_document_bytes).await?;
        trail.documents = digests.clone();
        let now = SystemTime::now();
        let (activation, authorized) = self.check(&authorization, &digests, now, trail).await?;
        let job = Job {
            activation,
            authorized,
            algorithm: authorization.key_algorithm,
            approved: digests.clone(),
            digests,
            signing_time: SigningTime::Attribute(now),
            level,
            signature_id: trail.id.clone(),
        };
        let (signed, reservation) = self.sign_digests(job, &authorization).await?;
        trail.issued(&signed);
        trail.reservation = Some(reservation);
        Ok(DetachedSignatures {
            cms: signed.cms,
            certificate: signed.certificate,
            signature_id: signed.signature_id,
        })
    }

    /// A signing request refused before it reached the flow (a malformed
    /// field the front door found): recorded like any refusal; the error
    /// to answer with (UNAVAILABLE when the record cannot be written).
    pub async fn refuse(&self, calling_system: Option<String>, error: Error) -> Error {
        let trail = Trail {
            calling_system,
            ..Trail::empty()
        };
        match self.audited(trail, Err::<(), _>(error)).await {
            Err(error) => error,
            Ok(()) => Error::internal("a refusal was recorded as a success"),
        }
    }

    /// SPEC §11 and §3: the request's record — an issuance or a refusal —
    /// is committed before the answer leaves; if it cannot be, the answer
    /// is UNAVAILABLE, whatever was signed is dropped and the token is
    /// released. The token is settled in the record's own transaction:
    /// spent when the signature leaves, released or spent on a failure
    /// (`spends`), so a record exists iff its token is settled and a
    /// signature costs one durable commit.
    async fn audited<T>(&self, mut trail: Trail, result: Result<T, Error>) -> Result<T, Error> {
        let reservation = trail.reservation.take();
        let Some(log) = &self.audit else {
            return settle(result, reservation).await;
        };
        let spend = result.as_ref().err().is_none_or(spends);
        let mut event = trail.event(result.as_ref().err().map(Error::kind));
        event.token = reservation
            .as_ref()
            .and_then(Reservation::ledger_id)
            .map(|id| {
                (
                    id,
                    if spend {
                        Settle::Spend
                    } else {
                        Settle::Release
                    },
                )
            });
        match log.record(event).await {
            Ok(index) => tracing::debug!(index, ok = result.is_ok(), "audit record written"),
            Err(e) => {
                tracing::error!(error = %e, "the audit log cannot be written; the answer is withheld");
                // Rolled back with the record: the token is still reserved.
                if let Some(reservation) = reservation {
                    reservation.release().await;
                }
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "the audit log cannot be written; nothing was signed, try again later",
                ));
            }
        }
        let Some(reservation) = reservation else {
            return result;
        };
        match (reservation.settled(spend), result) {
            (Ok(()), result) => result,
            (Err(e), Ok(_)) => Err(e.into()),
            (Err(e), Err(error)) => {
                tracing::warn!(error = %e, "could not spend a refused request's token");
                Err(error)
            }
        }
    }

    /// The level a request gets: B-T by default wherever a TSA is available;
    /// never a silent downgrade of an explicit request. B-LT and B-LTA need
    /// the built-in TSA, whose certificate and the CAs' CRLs the /DSS or the
    /// SignedData carries, and which stamps the PDF document time-stamp or
    /// the CAdES archive-time-stamp-v3.
    /// A hash-only PDF gets the validation data and the document time-stamp
    /// for the updates its client writes (`SignPdfDigest`, `TimeStamp`).
    fn level(&self, requested: Option<Level>) -> Result<Level, Error> {
        let time_stamps = self.tsa.is_some() || self.external_tsa.is_some();
        let built_in = self.tsa.is_some() && self.external_tsa.is_none();
        match requested {
            Some(l @ (Level::BLt | Level::BLta)) if built_in => Ok(l),
            Some(Level::BLt | Level::BLta) => Err(Error::new(
                ErrorKind::FailedPrecondition,
                "levels B_LT and B_LTA need the built-in time-stamping authority, and this \
                 server has none or uses external TSAs; ask for B_T or B_B",
            )),
            None if time_stamps => Ok(Level::BT),
            None | Some(Level::BB) => Ok(Level::BB),
            Some(Level::BT) if time_stamps => Ok(Level::BT),
            Some(Level::BT) => Err(Error::new(
                ErrorKind::FailedPrecondition,
                "level B_T needs a time-stamping authority and this server has none configured; ask for B_B",
            )),
        }
    }

    /// Certificates a validator needs beyond the CMS's own: the root and the
    /// TSA's (EN 319 122-1 §6.3, EN 319 142-1 §5.4.2).
    pub(super) fn validation_certificates(&self) -> Vec<Vec<u8>> {
        let mut certificates = self.trust_chain.clone();
        certificates.extend(self.tsa.iter().map(|tsa| tsa.certificate_der().to_vec()));
        certificates.extend(self.ocsp.iter().map(|r| r.certificate_der().to_vec()));
        certificates
    }

    /// SPEC §3, §4: a valid token that covers every digest and allows the
    /// profile. `sign_digests` reserves it before the HSM task (and confirms
    /// the profile, SPEC §9); `audited` spends it.
    async fn check(
        &self,
        authorization: &Authorization,
        digests: &[[u8; 32]],
        now: SystemTime,
        trail: &mut Trail,
    ) -> Result<(Activation, Authorized), Error> {
        let activation = self.verifier.verify(&authorization.activation_token, now)?;
        trail.sub = Some(activation.subject.to_string());
        activation.covers(digests)?;
        let authorized = self.authorize(&activation, authorization).await?;
        Ok((activation, authorized))
    }

    /// Before `bytes` of content are hashed: a token that cannot be valid
    /// (bad signature, expired, spent) is refused without the work. `check`
    /// verifies it again with the digests; small requests skip this.
    fn precheck(&self, authorization: &Authorization, bytes: usize) -> Result<(), Error> {
        if bytes >= LARGE {
            self.verifier
                .verify(&authorization.activation_token, SystemTime::now())?;
        }
        Ok(())
    }

    /// SPEC §3 single use without amplification: the token is reserved
    /// before any HSM work, so a spent or in-use token is refused before a
    /// key is made. The flow hands the reservation to its `Trail`;
    /// `audited` settles it.
    async fn sign_digests(
        self: &Arc<Self>,
        mut job: Job,
        authorization: &Authorization,
    ) -> Result<(Signed, Reservation), Error> {
        let reservation = self.reserve(&mut job, authorization).await?;
        match self.sign_reserved(job).await {
            Ok(signed) => Ok((signed, reservation)),
            Err(e) => Err(refused(reservation, e).await),
        }
    }

    /// One HSM task: a key, its certificate, one SignerInfo per digest.
    async fn sign_reserved(self: &Arc<Self>, job: Job) -> Result<Signed, Error> {
        let Job {
            activation: _,
            authorized: Authorized { signatory, .. },
            algorithm,
            approved,
            digests,
            signing_time,
            level,
            signature_id,
        } = job;
        let core = self.clone();
        let now = SystemTime::now();
        let cades = signing_time != SigningTime::Omitted;
        let content_digests = digests.clone();
        // The built-in TSA stamps inside the HSM task; external ones after it.
        let stamped = level >= Level::BT;
        let external = self.external_tsa.as_ref().filter(|_| stamped);
        let built_in = match (stamped, external, &self.tsa) {
            (true, None, Some(tsa)) => Some(tsa.clone()),
            _ => None,
        };
        let mut signed = self
            .hsm
            .run(move |session| {
                // The token is reserved (`sign_digests`): of two requests
                // with one token only one gets here.
                let key = session.generate_ephemeral(algorithm)?;
                let ca = session.issuing_ca()?;
                let issued = pki::issue(
                    &subject(&signatory),
                    key.public_key_info().clone(),
                    &core.policy,
                    &core.issuer,
                    &ca,
                    now,
                )?;
                let context = SignatureContext::new(&issued, &core.chain, &key)?;
                let mut signer_infos = Vec::with_capacity(digests.len());
                for digest in &digests {
                    let mut signer_info = context.sign(digest, signing_time, &key)?;
                    if let Some(tsa) = &built_in {
                        let imprint = MessageImprint::sha256_of(signer_info.signature.as_bytes());
                        let tsa_key = session.session_signer(tsa.key_label())?;
                        let token =
                            tsa.time_stamp(&tsa_key, &imprint, None, true, SystemTime::now())?;
                        signed_data::add_signature_time_stamp(&mut signer_info, &token)?;
                    }
                    signer_infos.push(signer_info);
                }
                drop(key);
                let revocation = if level >= Level::BLt {
                    ltv::revocation_data(session, &core, &issued)?
                } else {
                    Default::default()
                };
                let serial = issued
                    .certificate
                    .tbs_certificate
                    .serial_number
                    .as_bytes()
                    .to_vec();
                log_issuance(&signature_id, &signatory, &approved);
                Ok((
                    Signed {
                        signature_id,
                        serial,
                        certificate: issued.der,
                        cms: Vec::new(),
                        revocation,
                    },
                    context,
                    signer_infos,
                ))
            })
            .await?;
        let (ref mut result, ref mut context, ref mut signer_infos) = signed;
        if let Some(external) = external {
            for signer_info in signer_infos.iter_mut() {
                let imprint = MessageImprint::sha256_of(signer_info.signature.as_bytes());
                let token = external.time_stamp(&imprint).await?;
                signed_data::add_signature_time_stamp(signer_info, &token)?;
            }
        }
        // CAdES carries B-LT data in the CMS; PAdES in the /DSS (`ltv`).
        if level >= Level::BLt && cades {
            context.add_validation_data(
                &self.validation_certificates(),
                &result.revocation.crls,
                &result.revocation.ocsps,
            )?;
        }
        // CAdES B-LTA: then an archive time-stamp over all of it.
        if level == Level::BLta && cades {
            self.archive_time_stamps(context, signer_infos, &content_digests)
                .await?;
        }
        result.cms = signer_infos
            .drain(..)
            .map(|signer_info| context.content_info(signer_info))
            .collect::<Result<_, _>>()?;
        Ok(signed.0)
    }
}

/// Whether a failure after the reservation spends the token. The service's
/// own (HSM, TSA, database: UNAVAILABLE, INTERNAL) releases it; any other
/// spends it, or the same request could make the HSM work again and again.
fn spends(error: &Error) -> bool {
    !matches!(error.kind(), ErrorKind::Unavailable | ErrorKind::Internal)
}

/// A failure after the reservation, with no audit log: released or spent
/// by [`spends`].
pub(crate) async fn refused(reservation: Reservation, error: Error) -> Error {
    if !spends(&error) {
        reservation.release().await;
    } else if let Err(e) = reservation.commit().await {
        tracing::warn!(error = %e, "could not spend a refused request's token");
    }
    error
}

/// Settles the token without an audit log: a ledger trip of its own.
async fn settle<T>(result: Result<T, Error>, reservation: Option<Reservation>) -> Result<T, Error> {
    match (result, reservation) {
        (Ok(signed), Some(reservation)) => {
            reservation.commit().await?;
            Ok(signed)
        }
        (Err(e), Some(reservation)) => Err(refused(reservation, e).await),
        (result, None) => result,
    }
}

/// A digest field of a request as a SHA-256 value; `what` names the field.
fn sha256_digest(bytes: &[u8], what: &str) -> Result<[u8; 32], Error> {
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        Error::invalid_argument(format!(
            "{what} must be 32 bytes (a SHA-256), got {}",
            bytes.len()
        ))
    })
}

/// Bytes from which hashing or parsing is slow enough to matter.
const LARGE: usize = 256 << 10;

/// Runs `work` off the async workers when `len` bytes make it slow.
async fn blocking_if_large<T: Send + 'static>(
    len: usize,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    if len < LARGE {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::internal("a PDF task failed").with_source(e))?
}

/// The certificate subject of a signatory (SPEC §5).
pub(crate) fn subject(signatory: &Signatory) -> Subject<'_> {
    match signatory {
        Signatory::Person {
            given_name,
            family_name,
            subject,
            organization_name,
            cvr,
        } => Subject::NaturalPerson {
            given_name,
            surname: family_name,
            subject_id: *subject,
            organization_name,
            cvr: cvr.as_str(),
        },
        Signatory::Seal {
            organization_name,
            cvr,
            ..
        } => Subject::LegalPerson {
            organization_name,
            cvr: cvr.as_str(),
            common_name: organization_name,
        },
    }
}

fn content_bytes(documents: &[Document]) -> usize {
    documents
        .iter()
        .map(|d| match d {
            Document::Content(c) => c.len(),
            Document::Digest(_) => 0,
        })
        .sum()
}

/// SHA-256 of each document; big contents are hashed off the async workers.
async fn digests(documents: Vec<Document>, max_bytes: usize) -> Result<Vec<[u8; 32]>, Error> {
    let content_bytes = content_bytes(&documents);
    if content_bytes > max_bytes {
        return Err(Error::new(
            ErrorKind::ResourceExhausted,
            format!(
                "{content_bytes} bytes of content; the limit is {max_bytes}: send SHA-256 digests instead"
            ),
        ));
    }
    let hash = move || {
        documents
            .into_iter()
            .enumerate()
            .map(|(i, d)| match d {
                Document::Content(c) => Ok(Sha256::digest(&c).into()),
                Document::Digest(d) => sha256_digest(&d, &format!("document {i}: sha256_digest")),
            })
            .collect()
    };
    blocking_if_large(content_bytes, hash).await
}

/// A short log line per signature: no names, token id or subject (those
/// are for the audit log, SPEC §11).
fn log_issuance(signature_id: &str, signatory: &Signatory, digests: &[[u8; 32]]) {
    let kind = match signatory {
        Signatory::Person { .. } => "signature",
        Signatory::Seal { .. } => "seal",
    };
    tracing::info!(signature_id, kind, documents = digests.len(), "signed");
}

/// What a request's audit record says, filled in as the flow learns it.
pub(crate) struct Trail {
    id: String,
    calling_system: Option<String>,
    seal_profile: Option<String>,
    sub: Option<String>,
    documents: Vec<[u8; 32]>,
    level: Option<Level>,
    certificate: Option<(Vec<u8>, Vec<u8>)>,
    /// The token's single use, once reserved; `audited` settles it.
    reservation: Option<Reservation>,
}

impl Trail {
    fn new(authorization: &Authorization) -> Self {
        Self {
            calling_system: authorization.calling_system.clone(),
            seal_profile: authorization.seal_profile.clone().filter(|p| !p.is_empty()),
            ..Self::empty()
        }
    }

    fn empty() -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            calling_system: None,
            seal_profile: None,
            sub: None,
            documents: Vec::new(),
            reservation: None,
            level: None,
            certificate: None,
        }
    }

    fn level(&mut self, level: Level) -> Level {
        self.level = Some(level);
        level
    }

    fn issued(&mut self, signed: &Signed) {
        self.certificate = Some((signed.serial.clone(), signed.certificate.clone()));
    }

    /// The record: an issuance, or a refusal with the error's gRPC code.
    fn event(self, refused: Option<ErrorKind>) -> crate::audit::Event {
        use crate::audit::{Event, EventKind, Outcome};
        let mut event = match refused {
            None => Event::new(self.id, EventKind::Issuance, Outcome::Success),
            Some(kind) => {
                let mut event = Event::new(self.id, EventKind::Refusal, Outcome::Refused);
                event.error_code = Some(kind.grpc_code_name().to_owned());
                event
            }
        };
        if let (Some((serial, der)), None) = (&self.certificate, refused) {
            event.certificate(serial, der);
        }
        event.calling_system = self.calling_system;
        event.sub = self.sub;
        event.profile = Some(self.seal_profile.unwrap_or_else(|| "personal".into()));
        event.documents = self.documents;
        event.level = self.level.map(|l| l.name().to_owned());
        event
    }
}

impl Level {
    /// As the standards write it: `B-B`, `B-T`, `B-LT`, `B-LTA`.
    pub fn name(self) -> &'static str {
        match self {
            Level::BB => "B-B",
            Level::BT => "B-T",
            Level::BLt => "B-LT",
            Level::BLta => "B-LTA",
        }
    }
}
