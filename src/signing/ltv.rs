//! PAdES B-LT and B-LTA (ETSI EN 319 142-1 §5.4, §5.5; SPEC §6): after the
//! B-T signature, one incremental update with a /DSS holding the chain, the
//! TSA certificate and CRLs of both CAs, then, for B-LTA, a document
//! time-stamp from the built-in TSA over everything before it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{blocking_if_large, Level, SigningCore};
use crate::hsm::HsmSession;
use crate::pades;
use crate::pki::crl::issue_crl;
use crate::pki::Issuer;
use crate::state::ROOT_KEY_LABEL;
use crate::tsa::MessageImprint;
use crate::Error;

/// nextUpdate - thisUpdate of the root's CRL (RFC 5280 §5.1.2.5).
const ROOT_CRL_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// DER bytes reserved for the document time-stamp token: TSTInfo, the
/// SignerInfo and the TSA certificate (at most `MAX_END_ENTITY_LEN`).
const DOC_TIMESTAMP_CAPACITY: usize = 4096 + crate::pki::MAX_END_ENTITY_LEN;

/// CRLs of the issuing CA and of the root, signed with their keys in the
/// task's session. qsign revokes nothing, so they are empty (RFC 9608
/// certificates need none; the CAs' own certificates do).
///
/// The issuing CA's CRL is fresh exactly as long as the certificate issued
/// with it at `now`: a validator that knows no noRevAvail runs the
/// EN 319 102-1 §5.6.2.1 time-slide with it for the end-entity certificate,
/// and the control time it ends at (the CRL's nextUpdate, once stale) must
/// fall inside the certificate's validity for the past validation to pass.
pub(super) fn crls(
    session: &HsmSession<'_>,
    core: &SigningCore,
    now: SystemTime,
) -> Result<Vec<Vec<u8>>, Error> {
    let root_der = core
        .trust_chain
        .last()
        .ok_or_else(|| Error::internal("the trust chain has no root"))?;
    let root = Issuer::from_der(root_der.clone())?;
    // §5.2.3: monotonically increasing; milliseconds since 1970 are.
    let number = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::internal("the clock is before 1970"))?
        .as_millis();
    let number = u64::try_from(number).unwrap_or(u64::MAX);
    let issuing_key = session.issuing_ca()?;
    let root_key = session.persistent_signer(ROOT_KEY_LABEL)?;
    let issuing_next = core.policy.not_after(now);
    Ok(vec![
        issue_crl(&core.issuer, &issuing_key, now, issuing_next, number)?,
        issue_crl(&root, &root_key, now, now + ROOT_CRL_LIFETIME, number)?,
    ])
}

/// `signed_pdf` (the B-T signature already embedded) extended to `level`:
/// the /DSS update, then for B-LTA the document time-stamp.
pub(super) async fn extend(
    core: &Arc<SigningCore>,
    mut signed_pdf: Vec<u8>,
    signer_certificate: Vec<u8>,
    crls: Vec<Vec<u8>>,
    level: Level,
) -> Result<Vec<u8>, Error> {
    let tsa = core
        .tsa
        .clone()
        .ok_or_else(|| Error::internal("B-LT without the built-in TSA"))?;
    // EN 319 142-1 §5.4.2: every certificate of the signer's and the
    // time-stamp's paths, and their revocation data.
    let mut certificates = vec![signer_certificate];
    certificates.extend(core.validation_certificates());
    signed_pdf = blocking_if_large(signed_pdf.len(), move || {
        let dss = pades::append_dss_bytes(&signed_pdf, &certificates, &crls, &[])?;
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
    let token = core
        .hsm
        .run(move |session| {
            let imprint = MessageImprint::sha256(digest);
            tsa.time_stamp(session, &imprint, None, true, SystemTime::now())
        })
        .await?;
    prepared.embed(&token)?;
    let mut signed_pdf = signed_pdf;
    signed_pdf.extend_from_slice(prepared.update());
    Ok(signed_pdf)
}

impl SigningCore {
    /// A fresh CRL of the issuing CA or of the root, signed in the token,
    /// for the HTTP endpoint (`GET /crl/...`).
    pub async fn current_crl(
        self: &Arc<Self>,
        which: crate::tsa::http::CrlOf,
    ) -> Result<Vec<u8>, Error> {
        let core = self.clone();
        let mut crls = self
            .hsm
            .run(move |session| crls(session, &core, SystemTime::now()))
            .await?;
        let index = match which {
            crate::tsa::http::CrlOf::IssuingCa => 0,
            crate::tsa::http::CrlOf::Root => 1,
        };
        Ok(crls.swap_remove(index))
    }
}
