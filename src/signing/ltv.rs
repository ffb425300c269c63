//! Long-term validation data (SPEC §6): the CRLs and OCSP responses a
//! B-LT signature carries (`revocation_data`), PAdES B-LT and B-LTA (ETSI
//! EN 319 142-1 §5.4, §5.5: after the B-T signature, one incremental update
//! with a /DSS, then for B-LTA a document time-stamp from the built-in TSA
//! over everything before it). What the public endpoints ask for (current
//! CRLs, OCSP answers, time-stamps) is in `public`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{blocking_if_large, Level, SigningCore};
use crate::hsm::HsmSession;
use crate::pades;
use crate::pki::crl::{issue_crl, CrlOf};
use crate::pki::Issued;
use crate::Error;

/// nextUpdate - thisUpdate of the root's CRL (RFC 5280 §5.1.2.5).
pub(super) const ROOT_CRL_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
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
pub(super) fn crl(
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
            // `[ca] root_key_label`: the key `init-ca` made.
            let key = session.persistent_signer(&core.root_key_label)?;
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
