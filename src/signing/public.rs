//! What anyone may ask for, without an activation token: current CRLs of
//! the CAs, OCSP answers, RFC 3161 time-stamps (the HTTP front door and the
//! `TimeStamp` RPC). The HSM work of each runs in one [`Hsm::run`] job,
//! within the anonymous HSM rate of SPEC §12.
//!
//! [`Hsm::run`]: crate::hsm::Hsm::run

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::ltv::{crl, ROOT_CRL_LIFETIME};
use super::SigningCore;
use crate::pki::crl::CrlOf;
use crate::tsa::{protocol, MessageImprint};
use crate::{Error, ErrorKind};

/// A CRL (DER) and when it was made.
type Made = Option<(Instant, Vec<u8>)>;

/// The CRLs served over HTTP (issuing CA, root), each signed at most once
/// per `[limits] crl_cache_seconds`; one per front door.
#[derive(Default)]
pub struct CrlCache(tokio::sync::Mutex<[Made; 2]>);

impl SigningCore {
    /// A fresh CRL of the issuing CA or of the root, signed in the token.
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

    /// SPEC §12: a CRL is signed once per interval and served from `cache`,
    /// the signing within the anonymous HSM rate (RESOURCE_EXHAUSTED beyond
    /// it). B-LT embeds CRLs issued with the signature instead.
    pub async fn cached_crl(
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
    /// FAILED_PRECONDITION without `[ocsp]`.
    pub async fn ocsp_answer(self: &Arc<Self>, request: &[u8]) -> Result<Vec<u8>, Error> {
        let responder = self.ocsp.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "no OCSP responder is configured here",
            )
        })?;
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

    /// RFC 3161 §2.4: the DER TimeStampResp to a DER TimeStampReq from the
    /// built-in TSA — a token, or a rejection saying why. The caller has
    /// taken the anonymous rate.
    pub async fn time_stamp_reply(self: &Arc<Self>, query: &[u8]) -> Result<Vec<u8>, Error> {
        let tsa = self.built_in_tsa()?;
        let request = match protocol::check(&tsa, query) {
            Ok(request) => request,
            Err(rejection) => return protocol::rejection(rejection),
        };
        let signed = self
            .hsm
            .run(move |session| {
                let signer = session.session_signer(tsa.key_label())?;
                tsa.time_stamp(
                    &signer,
                    &request.message_imprint,
                    request.nonce.as_ref(),
                    request.cert_req.unwrap_or(false),
                    SystemTime::now(),
                )
            })
            .await;
        protocol::reply(signed)
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
        let tsa = self.built_in_tsa()?;
        self.hsm
            .run(move |session| {
                let imprint = MessageImprint::sha256(digest);
                let signer = session.session_signer(tsa.key_label())?;
                tsa.time_stamp(&signer, &imprint, None, true, SystemTime::now())
            })
            .await
    }

    fn built_in_tsa(&self) -> Result<Arc<crate::tsa::TimeStampAuthority>, Error> {
        self.tsa.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "this server has no built-in time-stamping authority",
            )
        })
    }
}
