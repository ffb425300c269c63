//! Long-term validation data (SPEC §6): the CRLs and OCSP responses a
//! B-LT signature carries (`revocation_data`), PAdES B-LT and B-LTA (ETSI
//! EN 319 142-1 §5.4, §5.5: after the B-T signature, one incremental update
//! with a /DSS, then for B-LTA a document time-stamp from the built-in TSA
//! over everything before it), and what the HTTP endpoint and the
//! `TimeStamp` RPC serve: current CRLs, OCSP answers, time-stamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{blocking_if_large, Level, SigningCore};
use crate::hsm::HsmSession;
use crate::pades;
use crate::pki::crl::issue_crl;
use crate::pki::Issued;
use crate::state::ROOT_KEY_LABEL;
use crate::tsa::http::CrlOf;
use crate::tsa::MessageImprint;
use crate::{Error, ErrorKind};

/// A CRL (DER) and when it was made.
type Made = Option<(Instant, Vec<u8>)>;

/// The CRLs of the HTTP endpoint (issuing CA, root).
#[derive(Default)]
struct CrlCache(tokio::sync::Mutex<[Made; 2]>);

/// nextUpdate - thisUpdate of the root's CRL (RFC 5280 §5.1.2.5).
const ROOT_CRL_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// DER bytes reserved for the document time-stamp token: TSTInfo, the
/// SignerInfo and the TSA certificate (at most `MAX_END_ENTITY_LEN`).
pub const DOC_TIMESTAMP_CAPACITY: usize = 4096 + crate::pki::MAX_END_ENTITY_LEN;

/// B-LT revocation data (EN 319 142-1 §5.4.2, EN 319 122-1 §6.3) for the
/// signer's certificate `issued` and the CAs, signed in the task's session:
/// CRLs, and with `[ocsp]` the responder's OCSPResponse.
///
/// - The root's CRL covers the issuing CA and the TSA.
/// - The signer's certificate: with noRevAvail (RFC 9608) it needs none,
///   but validators that know no noRevAvail look for some, so the issuing
///   CA's CRL goes along; with `[ocsp]` the OCSP response about it instead
///   (the responder's own certificate has ocsp-nocheck).
///
/// Either is fresh (nextUpdate) until the certificate's notAfter: a
/// validator runs the EN 319 102-1 §5.6.2.1 time-slide with it, and the
/// control time it ends at (the nextUpdate, once stale) must fall inside
/// the certificate's validity for the past validation to pass.
pub(super) fn revocation_data(
    session: &HsmSession<'_>,
    core: &SigningCore,
    issued: &Issued,
) -> Result<RevocationData, Error> {
    // Issued after the signature time-stamp of the same task, as validators
    // checking revocation freshness against the best signature time want.
    let now = SystemTime::now();
    let expiry = issued.certificate.tbs_certificate.validity.not_after;
    let expiry = expiry.to_system_time();
    let root_crl = crl(session, core, CrlOf::Root, now, now + ROOT_CRL_LIFETIME)?;
    let Some(responder) = &core.ocsp else {
        let issuing_crl = crl(session, core, CrlOf::IssuingCa, now, expiry)?;
        return Ok(RevocationData {
            crls: vec![issuing_crl, root_crl],
            ocsps: Vec::new(),
        });
    };
    let id = responder.cert_id(&issued.certificate.tbs_certificate.serial_number)?;
    let signer = session.session_signer(responder.key_label())?;
    let response = responder.respond(vec![id], now, expiry, &signer)?;
    Ok(RevocationData {
        crls: vec![root_crl],
        ocsps: vec![response],
    })
}

/// DER CRLs and OCSPResponses of one signature (`revocation_data`).
#[derive(Default)]
pub(super) struct RevocationData {
    pub crls: Vec<Vec<u8>>,
    pub ocsps: Vec<Vec<u8>>,
}

/// The empty CRL (qsign revokes nothing) of the issuing CA or of the root,
/// signed with its key, valid from `this_update` to `next_update`.
fn crl(
    session: &HsmSession<'_>,
    core: &SigningCore,
    which: CrlOf,
    this_update: SystemTime,
    next_update: SystemTime,
) -> Result<Vec<u8>, Error> {
    let number = crl_number(this_update)?;
    match which {
        CrlOf::IssuingCa => {
            let key = session.issuing_ca()?;
            issue_crl(&core.issuer, &key, this_update, next_update, number)
        }
        CrlOf::Root => {
            let key = session.persistent_signer(ROOT_KEY_LABEL)?;
            issue_crl(&core.root, &key, this_update, next_update, number)
        }
    }
}

/// RFC 5280 §5.2.3 cRLNumber: monotonically increasing — the milliseconds
/// since 1970, or one more than the last number this process gave when
/// CRLs are made within the same millisecond.
fn crl_number(now: SystemTime) -> Result<u64, Error> {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let millis = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::internal("the clock is before 1970"))?
        .as_millis();
    let millis = u64::try_from(millis).unwrap_or(u64::MAX);
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(millis.max(last.saturating_add(1)))
        })
        .unwrap_or(millis);
    Ok(millis.max(previous.saturating_add(1)))
}

/// `signed_pdf` (the B-T signature already embedded) extended to `level`:
/// the /DSS update, then for B-LTA the document time-stamp.
pub(super) async fn extend(
    core: &Arc<SigningCore>,
    mut signed_pdf: Vec<u8>,
    signer_certificate: Vec<u8>,
    revocation: RevocationData,
    level: Level,
) -> Result<Vec<u8>, Error> {
    // EN 319 142-1 §5.4.2: every certificate of the signer's and the
    // time-stamp's paths, and their revocation data.
    let mut certificates = vec![signer_certificate];
    certificates.extend(core.validation_certificates());
    signed_pdf = blocking_if_large(signed_pdf.len(), move || {
        let dss = pades::append_dss_bytes(
            &signed_pdf,
            &certificates,
            &revocation.crls,
            &revocation.ocsps,
        )?;
        signed_pdf.extend_from_slice(&dss);
        Ok(signed_pdf)
    })
    .await?;
    if level != Level::BLta {
        return Ok(signed_pdf);
    }
    let (signed_pdf, mut prepared, digest) = blocking_if_large(signed_pdf.len(), move || {
        let prepared =
            pades::prepare_document_timestamp_bytes(&signed_pdf, DOC_TIMESTAMP_CAPACITY)?;
        let digest = prepared.digest(Sha256::new_with_prefix(&signed_pdf));
        Ok((signed_pdf, prepared, digest))
    })
    .await?;
    // ISO 32000-2 §12.8.5: the token's imprint is the ByteRange digest.
    let token = core.time_stamp(&digest).await?;
    prepared.embed(&token)?;
    let mut signed_pdf = signed_pdf;
    signed_pdf.extend_from_slice(prepared.update());
    Ok(signed_pdf)
}

impl SigningCore {
    /// A fresh CRL of the issuing CA or of the root, signed in the token,
    /// for the HTTP endpoint (`GET /crl/...`).
    pub async fn current_crl(self: &Arc<Self>, which: CrlOf) -> Result<Vec<u8>, Error> {
        let core = self.clone();
        self.hsm
            .run(move |session| {
                let now = SystemTime::now();
                let next_update = match which {
                    CrlOf::IssuingCa => core.policy.not_after(now),
                    CrlOf::Root => now + ROOT_CRL_LIFETIME,
                };
                crl(session, &core, which, now, next_update)
            })
            .await
    }

    /// SPEC §12: a CRL is signed once per interval and served from the
    /// cache, the signing within the anonymous HSM rate. Only `GET /crl/...`
    /// uses it: B-LT embeds CRLs issued with the signature (`revocation_data`).
    async fn cached_crl(
        self: &Arc<Self>,
        cache: &CrlCache,
        which: CrlOf,
    ) -> Result<Vec<u8>, Error> {
        // One lock for both CRLs: at most one is being signed at a time, and
        // a burst of GETs waits for it instead of signing many.
        let mut slots = cache.0.lock().await;
        let slot = &mut slots[match which {
            CrlOf::IssuingCa => 0,
            CrlOf::Root => 1,
        }];
        if let Some((made, der)) = slot {
            if made.elapsed() < self.limits.crl_cache() {
                return Ok(der.clone());
            }
        }
        self.limiter.anonymous.admit("a new CRL")?;
        let der = self.current_crl(which).await?;
        *slot = Some((Instant::now(), der.clone()));
        Ok(der)
    }

    /// RFC 6960 Appendix A.1: the `[ocsp]` responder's answer to a DER
    /// OCSPRequest, signed in the token: "good" for the issuing CA's
    /// certificates (qsign revokes none), "unknown" for others (§2.2),
    /// malformedRequest (§2.3) for what is not a request it answers.
    pub async fn ocsp_answer(self: &Arc<Self>, request: &[u8]) -> Result<Vec<u8>, Error> {
        let responder = self
            .ocsp
            .clone()
            .ok_or_else(|| Error::internal("OCSP without an [ocsp] responder"))?;
        let Some((ids, nonce)) = crate::pki::ocsp::parse_request(request) else {
            return crate::pki::ocsp::malformed_request();
        };
        let now = SystemTime::now();
        let next_update = self.policy.not_after(now);
        self.hsm
            .run(move |session| {
                let signer = session.session_signer(responder.key_label())?;
                responder.respond_with(ids, nonce, now, next_update, &signer)
            })
            .await
    }

    /// The CA certificates, the CRLs and the OCSP responder (if any) for the
    /// HTTP endpoint. The CRLs come from a cache renewed every `[limits]
    /// crl_cache_seconds`.
    pub fn revocation_services(self: &Arc<Self>) -> crate::tsa::http::Revocation {
        let core = self.clone();
        let cache = Arc::new(CrlCache::default());
        let crls: crate::tsa::http::CrlSource = Arc::new(move |which| {
            let (core, cache) = (core.clone(), cache.clone());
            Box::pin(async move { core.cached_crl(&cache, which).await })
        });
        let core = self.clone();
        let ocsp: crate::tsa::http::OcspSource = Arc::new(move |request| {
            let core = core.clone();
            Box::pin(async move { core.ocsp_answer(&request).await })
        });
        let audit = self.audit.clone().map(|log| {
            let source: crate::tsa::http::AuditSource = Arc::new(move |document| {
                let log = log.clone();
                Box::pin(async move {
                    match document {
                        crate::tsa::http::AuditDocument::Vkey => Ok(Some(log.vkey() + "\n")),
                        crate::tsa::http::AuditDocument::Checkpoint => {
                            log.latest_checkpoint().await
                        }
                    }
                })
            });
            source
        });
        let services = crate::tsa::http::Revocation {
            crls: Some(crls),
            ocsp: self.ocsp.is_some().then_some(ocsp),
            ca_certificates: Some((self.issuer.der.clone().into(), self.root.der.clone().into())),
            documents: Vec::new(),
            audit,
            lookup: None,
        };
        match &self.registry {
            Some(registry) => crate::registry::http::extend(services, registry, &self.hsm),
            None => services,
        }
    }

    /// [`SigningCore::time_stamp`] for anyone (the TimeStamp RPC): within
    /// the rate of anonymous HSM signatures (SPEC §12), RESOURCE_EXHAUSTED
    /// beyond it.
    pub async fn anonymous_time_stamp(self: &Arc<Self>, digest: &[u8]) -> Result<Vec<u8>, Error> {
        super::sha256_digest(digest, "sha256_digest")?;
        self.limiter.anonymous.admit("TimeStamp")?;
        self.time_stamp(digest).await
    }

    /// A time-stamp token of the built-in TSA over `digest` (SHA-256): the
    /// document time-stamp of a hash-only B-LTA (ISO 32000-2 §12.8.5),
    /// whose update the client writes. Time-stamps are public, as on the
    /// RFC 3161 endpoint: no activation token.
    pub async fn time_stamp(self: &Arc<Self>, digest: &[u8]) -> Result<Vec<u8>, Error> {
        let digest = super::sha256_digest(digest, "sha256_digest")?;
        let tsa = self.tsa.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "this server has no built-in time-stamping authority",
            )
        })?;
        self.hsm
            .run(move |session| {
                let imprint = MessageImprint::sha256(digest);
                tsa.time_stamp(session, &imprint, None, true, SystemTime::now())
            })
            .await
    }
}
