//! PAdES requests (SPEC §2 SignPdf, hash-only SignPdfDigest; EN 319 142-1):
//! the PDF side of a signature around the common HSM task.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{
    blocking_if_large, ltv, sha256_digest, Authorization, Authorized, DetachedSignatures, Job,
    Level, PdfDigestSignature, Signed, SigningCore, Trail,
};
use crate::auth::{Activation, Signatory};
use crate::pades;
use crate::signed_data::SigningTime;
use crate::{Error, ErrorKind};

/// Options of a PAdES signature (SPEC §2 SignPdf).
#[derive(Clone, Debug, Default)]
pub struct PdfOptions {
    pub reason: Option<String>,
    pub location: Option<String>,
    pub contact_info: Option<String>,
    /// A visible appearance: page (1-based) and rectangle x, y, w, h.
    pub visible: Option<(u32, [f32; 4])>,
    /// An existing empty signature field to fill, or the new field's name.
    pub field_name: Option<String>,
    /// Language of the appearance text ("da" by default, "en").
    pub language: Option<String>,
    /// IANA zone of the time shown (default Europe/Copenhagen).
    pub time_zone: Option<String>,
}

/// Characters of each of reason, location and contact_info.
pub const MAX_TEXT_CHARS: usize = 256;

impl PdfOptions {
    /// The text fields go into the signature dictionary that viewers show
    /// (ISO 32000-2 §12.8.1 Table 255): bounded, and without control,
    /// bidirectional (UAX #9) or invisible format characters.
    fn check(&self) -> Result<(), Error> {
        let fields = [
            ("reason", &self.reason),
            ("location", &self.location),
            ("contact_info", &self.contact_info),
        ];
        for (field, value) in fields {
            let Some(value) = value else { continue };
            if value.chars().count() > MAX_TEXT_CHARS {
                return Err(Error::invalid_argument(format!(
                    "{field} is longer than {MAX_TEXT_CHARS} characters; shorten it"
                )));
            }
            if let Some(character) = crate::pki::name::forbidden_character(value) {
                return Err(Error::invalid_argument(format!(
                    "{field} contains {character}; remove it"
                )));
            }
        }
        Ok(())
    }
}

pub struct SignedPdf {
    pub signed_pdf: Vec<u8>,
    pub certificate: Vec<u8>,
    pub signature_id: String,
    /// The object map was rebuilt by scanning (damaged xref data).
    pub repaired: bool,
}

impl SigningCore {
    /// SPEC §2 SignPdf: the input followed by one incremental update with a
    /// PAdES baseline signature (EN 319 142-1). The token covers the SHA-256
    /// of the PDF as received.
    pub async fn sign_pdf(
        self: &Arc<Self>,
        pdf: Vec<u8>,
        options: PdfOptions,
        authorization: Authorization,
    ) -> Result<SignedPdf, Error> {
        let mut trail = Trail::new(&authorization);
        let result = self.pdf(pdf, options, authorization, &mut trail).await;
        self.audited(trail, result).await
    }

    async fn pdf(
        self: &Arc<Self>,
        pdf: Vec<u8>,
        options: PdfOptions,
        authorization: Authorization,
        trail: &mut Trail,
    ) -> Result<SignedPdf, Error> {
        let level = trail.level(self.level(authorization.level)?);
        options.check()?;
        if pdf.len() > self.limits.max_document_bytes {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "the PDF has {} bytes; the limit is {}: sign it hash-only (`qsign sign-pdf` \
                     does so for big files: it sends only the digest through SignPdfDigest)",
                    pdf.len(),
                    self.limits.max_document_bytes
                ),
            ));
        }
        self.precheck(&authorization, pdf.len())?;
        let pdf = Arc::new(pdf);
        let document_digest = blocking_if_large(pdf.len(), {
            let pdf = pdf.clone();
            move || Ok(Sha256::digest(pdf.as_slice()).into())
        })
        .await?;
        trail.documents = vec![document_digest];
        let now = SystemTime::now();
        let checked = self
            .check(&authorization, &[document_digest], now, trail)
            .await?;
        let shown = PdfSigner::from(&checked.1.signatory);
        let (mut prepared, byte_range_digest) = self.prepare(&pdf, &options, &shown, now).await?;
        let digests = (document_digest, byte_range_digest);
        let mut job = byte_range_job(checked, &authorization, digests, level, trail);
        let reservation = self.reserve(&mut job, &authorization).await?;
        // SPEC §9: profiles that moved since `check` may rename the seal
        // that the appearance shows.
        let signer = PdfSigner::from(&job.authorized.signatory);
        if signer != shown {
            match self.prepare(&pdf, &options, &signer, now).await {
                Ok((again, digest)) => (prepared, job.digests) = (again, vec![digest]),
                Err(e) => {
                    reservation.release().await;
                    return Err(e);
                }
            }
        }
        let signed = match self.sign_reserved(job).await {
            Ok(signed) => signed,
            Err(e) => return Err(super::refused(reservation, e).await),
        };
        trail.issued(&signed);
        // The update and B-LT/B-LTA data; `audited` settles the token.
        trail.reservation = Some(reservation);
        self.signed_pdf(pdf, prepared, signed, level).await
    }

    /// The input followed by its signed update, then for B-LT and up the
    /// validation data and the document time-stamp (`ltv`).
    async fn signed_pdf(
        self: &Arc<Self>,
        pdf: Arc<Vec<u8>>,
        mut prepared: pades::PreparedUpdate,
        signed: Signed,
        level: Level,
    ) -> Result<SignedPdf, Error> {
        prepared.embed(&signed.cms[0])?;
        let repaired = prepared.repaired();
        let mut signed_pdf = Arc::try_unwrap(pdf).unwrap_or_else(|shared| shared.as_ref().clone());
        signed_pdf.extend_from_slice(prepared.update());
        if level >= Level::BLt {
            let certificate = signed.certificate.clone();
            signed_pdf =
                ltv::extend(self, signed_pdf, certificate, signed.revocation, level).await?;
        }
        Ok(SignedPdf {
            signed_pdf,
            certificate: signed.certificate,
            signature_id: signed.signature_id,
            repaired,
        })
    }

    /// Hash-only PAdES: the client prepared the PDF with the same library
    /// and sends the ByteRange digest; the token covers the SHA-256 of the
    /// original PDF, which the signer approved. The CMS is made after the
    /// certificate exists, so its ESS signing-certificate-v2 is right.
    pub async fn sign_pdf_digest(
        self: &Arc<Self>,
        byte_range_digest: &[u8],
        document_digest: &[u8],
        authorization: Authorization,
    ) -> Result<PdfDigestSignature, Error> {
        let mut trail = Trail::new(&authorization);
        let result = self
            .pdf_digest(
                byte_range_digest,
                document_digest,
                authorization,
                &mut trail,
            )
            .await;
        self.audited(trail, result).await
    }

    async fn pdf_digest(
        self: &Arc<Self>,
        byte_range_digest: &[u8],
        document_digest: &[u8],
        authorization: Authorization,
        trail: &mut Trail,
    ) -> Result<PdfDigestSignature, Error> {
        let level = trail.level(self.level(authorization.level)?);
        let byte_range_digest = sha256_digest(byte_range_digest, "byte_range_digest")?;
        let document_digest = sha256_digest(document_digest, "document_digest")?;
        trail.documents = vec![document_digest];
        let now = SystemTime::now();
        let checked = self
            .check(&authorization, &[document_digest], now, trail)
            .await?;
        let digests = (document_digest, byte_range_digest);
        let job = byte_range_job(checked, &authorization, digests, level, trail);
        let (signed, reservation) = self.sign_digests(job, &authorization).await?;
        trail.issued(&signed);
        // EN 319 142-1 §5.4.2: the /DSS the client writes after the
        // signature holds every certificate of its paths and their
        // revocation data, as SignPdf's does (`ltv::extend`).
        let validation_certificates = if level >= Level::BLt {
            let mut certificates = vec![signed.certificate.clone()];
            certificates.extend(self.validation_certificates());
            certificates
        } else {
            Vec::new()
        };
        let signature = PdfDigestSignature {
            signature: DetachedSignatures {
                cms: signed.cms,
                certificate: signed.certificate,
                signature_id: signed.signature_id,
            },
            validation_certificates,
            crls: signed.revocation.crls,
            ocsps: signed.revocation.ocsps,
        };
        trail.reservation = Some(reservation);
        Ok(signature)
    }

    /// The incremental update for `signer`, whose name a visible
    /// appearance shows, and the ByteRange digest the CMS signs.
    async fn prepare(
        &self,
        pdf: &Arc<Vec<u8>>,
        options: &PdfOptions,
        signer: &PdfSigner,
        now: SystemTime,
    ) -> Result<(pades::PreparedUpdate, [u8; 32]), Error> {
        let capacity = crate::signed_data::pades_capacity(&self.trust_chain);
        let request = pdf_request(signer, options, now, capacity)?;
        let pdf = pdf.clone();
        blocking_if_large(pdf.len(), move || {
            let prepared = pades::prepare_bytes(&pdf, &request)?;
            let digest = prepared.digest(Sha256::new_with_prefix(pdf.as_slice()));
            Ok((prepared, digest))
        })
        .await
    }
}

/// PAdES (EN 319 142-1 §6.3): no signing-time attribute, the CMS signs the
/// ByteRange digest; the audit records the approved document.
fn byte_range_job(
    (activation, authorized): (Activation, Authorized),
    authorization: &Authorization,
    (document_digest, byte_range_digest): ([u8; 32], [u8; 32]),
    level: Level,
    trail: &Trail,
) -> Job {
    Job {
        activation,
        authorized,
        algorithm: authorization.key_algorithm,
        approved: vec![document_digest],
        digests: vec![byte_range_digest],
        signing_time: SigningTime::Omitted,
        level,
        signature_id: trail.id.clone(),
    }
}

/// Who a PDF signature shows: a person's name, or an organisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PdfSigner {
    Person {
        name: String,
    },
    Seal {
        organization_name: String,
        cvr: String,
    },
}

impl From<&Signatory> for PdfSigner {
    fn from(signatory: &Signatory) -> Self {
        match signatory {
            Signatory::Person {
                given_name,
                family_name,
                ..
            } => Self::Person {
                name: format!("{given_name} {family_name}"),
            },
            Signatory::Seal {
                organization_name,
                cvr,
                ..
            } => Self::Seal {
                organization_name: organization_name.clone(),
                cvr: cvr.to_string(),
            },
        }
    }
}

/// The PDF side of a signature, for the server and the hash-only client
/// alike: /Name for persons only (SPEC §5: no personal name in a seal),
/// and the visible appearance's text in the requested language (Danish
/// by default) with the time in the signer's zone.
pub fn pdf_request(
    signer: &PdfSigner,
    options: &PdfOptions,
    now: SystemTime,
    contents_capacity: usize,
) -> Result<pades::SignatureRequest, pades::PdfError> {
    let english = match options.language.as_deref() {
        None | Some("da") => false,
        Some("en") => true,
        Some(other) => {
            return Err(pades::PdfError::InvalidRequest(format!(
                "language {other:?} is not offered; use \"da\" or \"en\""
            )))
        }
    };
    let time = local_time(now, options.time_zone.as_deref())?;
    let name = match signer {
        PdfSigner::Person { name } => Some(name.clone()),
        PdfSigner::Seal { .. } => None,
    };
    let lines = appearance_lines(signer, options.reason.as_deref(), &time, english);
    Ok(pades::SignatureRequest {
        name,
        reason: options.reason.clone(),
        location: options.location.clone(),
        contact_info: options.contact_info.clone(),
        signing_time: now,
        appearance: options
            .visible
            .map(|(page, rect)| pades::Appearance { page, rect, lines }),
        contents_capacity,
        field_name: options.field_name.clone(),
    })
}

/// The lines of a visible signature: who, (a seal's CVR), when, why.
fn appearance_lines(
    signer: &PdfSigner,
    reason: Option<&str>,
    time: &str,
    english: bool,
) -> Vec<String> {
    let pick = |da: &str, en: &str| if english { en } else { da }.to_owned();
    let mut lines = match signer {
        PdfSigner::Person { name } => {
            vec![pick("Digitalt signeret af ", "Digitally signed by ") + name]
        }
        PdfSigner::Seal {
            organization_name,
            cvr,
        } => vec![
            pick("Elektronisk segl: ", "Electronic seal: ") + organization_name,
            format!("CVR {cvr}"),
        ],
    };
    lines.push(pick("Tidspunkt: ", "Time: ") + time);
    if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
        lines.push(pick("Årsag: ", "Reason: ") + reason);
    }
    lines
}

/// The signer's zone when none is asked for.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Copenhagen";

/// `2026-12-02 07:05:39 CET` in `zone` (an IANA name; the tz database is
/// bundled in the binary, so it does not depend on the host's).
fn local_time(now: SystemTime, zone: Option<&str>) -> Result<String, pades::PdfError> {
    let zone = zone.unwrap_or(DEFAULT_TIME_ZONE);
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| {
        pades::PdfError::InvalidRequest(format!(
            "unknown time zone {zone:?} (an IANA name such as Europe/Copenhagen)"
        ))
    })?;
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    let stamp = jiff::Timestamp::from_second(seconds)
        .map_err(|_| pades::PdfError::InvalidRequest("the signing time is out of range".into()))?;
    Ok(stamp
        .to_zoned(tz)
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn danish_by_default_with_copenhagen_time_reason_and_cvr() {
        // 2026-12-02 06:05:39 UTC is 07:05:39 in Copenhagen (CET).
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_796_191_539);
        let seal = PdfSigner::Seal {
            organization_name: "Qsign Udvikling ApS".into(),
            cvr: "12345678".into(),
        };
        let options = PdfOptions {
            visible: Some((1, [0.0, 0.0, 100.0, 40.0])),
            reason: Some("Godkendt".into()),
            ..Default::default()
        };
        let request = pdf_request(&seal, &options, now, 100).expect("request");
        let lines = request.appearance.expect("visible").lines;
        assert_eq!(
            lines,
            [
                "Elektronisk segl: Qsign Udvikling ApS",
                "CVR 12345678",
                "Tidspunkt: 2026-12-02 07:05:39 CET",
                "Årsag: Godkendt"
            ]
        );
        assert!(request.name.is_none());
        let english = PdfOptions {
            language: Some("en".into()),
            time_zone: Some("UTC".into()),
            ..options
        };
        let person = PdfSigner::Person {
            name: "Karen Blixen".into(),
        };
        let lines = pdf_request(&person, &english, now, 100)
            .expect("ok")
            .appearance
            .expect("v")
            .lines;
        assert_eq!(lines[0], "Digitally signed by Karen Blixen");
        assert_eq!(lines[1], "Time: 2026-12-02 06:05:39 UTC");
        let bad = PdfOptions {
            language: Some("xx".into()),
            ..Default::default()
        };
        assert!(pdf_request(&person, &bad, now, 100).is_err());
        let bad = PdfOptions {
            time_zone: Some("Mars/Olympus".into()),
            ..Default::default()
        };
        assert!(pdf_request(&person, &bad, now, 100).is_err());
    }
}
