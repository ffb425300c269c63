//! PAdES requests (SPEC §2 SignPdf, hash-only SignPdfDigest; EN 319 142-1):
//! the PDF side of a signature around the common HSM task.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{
    blocking_if_large, ltv, sha256_digest, Authorization, DetachedSignatures, Job, Level,
    PdfDigestSignature, Signed, SigningCore,
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
}

pub struct SignedPdf {
    pub signed_pdf: Vec<u8>,
    pub certificate: Vec<u8>,
    pub signature_id: String,
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
        let level = self.level(authorization.level)?;
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
        let pdf = Arc::new(pdf);
        let document_digest = blocking_if_large(pdf.len(), {
            let pdf = pdf.clone();
            move || Ok(Sha256::digest(pdf.as_slice()).into())
        })
        .await?;
        let now = SystemTime::now();
        let (activation, signatory) = self.check(&authorization, &[document_digest], now)?;
        let capacity = crate::signed_data::pades_capacity(&self.trust_chain);
        let request = pdf_request(&PdfSigner::from(&signatory), &options, now, capacity);
        let (prepared, byte_range_digest) = blocking_if_large(pdf.len(), {
            let pdf = pdf.clone();
            move || {
                let prepared = pades::prepare_bytes(&pdf, &request)?;
                let frame = usize::try_from(prepared.header_offset()).unwrap_or(0);
                let digest = prepared.digest(Sha256::new_with_prefix(&pdf[frame..]));
                Ok((prepared, digest))
            }
        })
        .await?;
        let signed = self
            .sign_byte_range(
                activation,
                signatory,
                &authorization,
                document_digest,
                byte_range_digest,
                level,
            )
            .await?;
        let mut prepared = prepared;
        prepared.embed(&signed.cms[0])?;
        let pdf = Arc::try_unwrap(pdf).unwrap_or_else(|shared| shared.as_ref().clone());
        let mut signed_pdf = pdf;
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
        let level = self.level(authorization.level)?;
        let byte_range_digest = sha256_digest(byte_range_digest, "byte_range_digest")?;
        let document_digest = sha256_digest(document_digest, "document_digest")?;
        let now = SystemTime::now();
        let (activation, signatory) = self.check(&authorization, &[document_digest], now)?;
        let signed = self
            .sign_byte_range(
                activation,
                signatory,
                &authorization,
                document_digest,
                byte_range_digest,
                level,
            )
            .await?;
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
        Ok(PdfDigestSignature {
            signature: DetachedSignatures {
                cms: signed.cms,
                certificate: signed.certificate,
                signature_id: signed.signature_id,
            },
            validation_certificates,
            crls: signed.revocation.crls,
            ocsps: signed.revocation.ocsps,
        })
    }
    /// PAdES (EN 319 142-1 §6.3): no signing-time attribute, the CMS signs
    /// the ByteRange digest; the audit records the approved document.
    async fn sign_byte_range(
        self: &Arc<Self>,
        activation: Activation,
        signatory: Signatory,
        authorization: &Authorization,
        document_digest: [u8; 32],
        byte_range_digest: [u8; 32],
        level: Level,
    ) -> Result<Signed, Error> {
        self.sign_digests(Job {
            activation,
            signatory,
            algorithm: authorization.key_algorithm,
            approved: vec![document_digest],
            digests: vec![byte_range_digest],
            signing_time: SigningTime::Omitted,
            level,
        })
        .await
    }
}

/// Who a PDF signature shows: a person's name, or an organisation.
#[derive(Clone, Debug)]
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
/// and the visible appearance's text.
pub fn pdf_request(
    signer: &PdfSigner,
    options: &PdfOptions,
    now: SystemTime,
    contents_capacity: usize,
) -> pades::SignatureRequest {
    let (name, first_line) = match signer {
        PdfSigner::Person { name } => (Some(name.clone()), format!("Digitally signed by {name}")),
        PdfSigner::Seal {
            organization_name,
            cvr,
        } => (None, format!("Sealed by {organization_name} (CVR {cvr})")),
    };
    pades::SignatureRequest {
        name,
        reason: options.reason.clone(),
        location: options.location.clone(),
        contact_info: options.contact_info.clone(),
        signing_time: now,
        appearance: options.visible.map(|(page, rect)| pades::Appearance {
            page,
            rect,
            lines: vec![first_line, utc(now)],
        }),
        contents_capacity,
        field_name: None,
    }
}

/// `2026-11-28 12:00:00 UTC`.
fn utc(time: SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    der::DateTime::from_unix_duration(Duration::from_secs(since.as_secs()))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minutes(),
                t.seconds()
            )
        })
        .unwrap_or_default()
}
