//! CAdES B-LTA (ETSI EN 319 122-1 §5.5.3; SPEC §6): after the B-T
//! signature-time-stamp and the B-LT certificates and CRLs, one
//! archive-time-stamp-v3 per SignerInfo from the built-in TSA, over the
//! SignedData exactly as it is returned.

use std::sync::Arc;
use std::time::SystemTime;

use cms::signed_data::SignerInfo;

use super::SigningCore;
use crate::signed_data::archive::ArchiveTimeStamp;
use crate::signed_data::SignatureContext;
use crate::tsa::MessageImprint;
use crate::Error;

impl SigningCore {
    /// `signer_infos[i]` signs content whose SHA-256 is `digests[i]`; the
    /// context already holds the validation data (`add_validation_data`).
    /// The time-stamps come from one HSM task, as ltv.rs's document
    /// time-stamp does: no nonce (the token is not requested over a
    /// network), the TSA certificate embedded.
    pub(super) async fn archive_time_stamps(
        self: &Arc<Self>,
        context: &SignatureContext,
        signer_infos: &mut [SignerInfo],
        digests: &[[u8; 32]],
    ) -> Result<(), Error> {
        let tsa = self
            .tsa
            .clone()
            .ok_or_else(|| Error::internal("B-LTA without the built-in TSA"))?;
        if signer_infos.len() != digests.len() {
            return Err(Error::internal("one content digest per SignerInfo"));
        }
        let stamps = signer_infos
            .iter()
            .zip(digests)
            .map(|(signer_info, digest)| {
                let signed_data = context.signed_data(signer_info.clone())?;
                ArchiveTimeStamp::prepare(&signed_data, signer_info, digest)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let imprints: Vec<_> = stamps
            .iter()
            .map(|stamp| MessageImprint::sha256(stamp.imprint()))
            .collect();
        let tokens = self
            .hsm
            .run(move |session| {
                let signer = session.session_signer(tsa.key_label())?;
                imprints
                    .iter()
                    .map(|imprint| tsa.time_stamp(&signer, imprint, None, true, SystemTime::now()))
                    .collect::<Result<Vec<_>, Error>>()
            })
            .await?;
        for ((signer_info, stamp), token) in signer_infos.iter_mut().zip(stamps).zip(tokens) {
            stamp.attach(signer_info, &token)?;
        }
        Ok(())
    }
}
