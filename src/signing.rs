//! The request flow, independent of gRPC:
//!
//! ```text
//! activation token ──verify──► Activation ──covers(digests)──► authorize(profile)
//!        │                                                          │
//!        └────────────── consume jti (single use) ◄─────────────────┘
//!                                   │
//!                 Hsm::run (one blocking task, one pooled session)
//!                 ├─ EphemeralKey::generate   (guard: destroyed on drop)
//!                 ├─ pki::issue               (issuing CA key signs the TBS)
//!                 ├─ SignatureContext::sign   (ephemeral key signs attributes)
//!                 └─ drop key ───────────────► nothing left in the token
//! ```

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use x509_cert::Certificate;

use crate::auth::{Activation, Profiles, Signatory, Verifier};
use crate::config::Limits;
use crate::hsm::{Hsm, KeyAlgorithm};
use crate::pki::{self, CertificatePolicy, Issuer, Subject};
use crate::signed_data::{SignatureContext, SigningTime};
use crate::tsa::TimeStampAuthority;
use crate::{Error, ErrorKind};

/// Everything a request needs; built once at start, shared by all requests.
pub struct SigningCore {
    pub hsm: Hsm,
    pub issuer: Issuer,
    /// Certificates embedded in every CMS after the signer's own.
    pub chain: Vec<Certificate>,
    /// DER, issuing CA first, root last (GetTrustChain).
    pub trust_chain: Vec<Vec<u8>>,
    pub policy: CertificatePolicy,
    pub verifier: Verifier,
    pub profiles: Profiles,
    pub limits: Limits,
    /// The built-in time-stamping authority, when `[tsa]` is configured.
    pub tsa: Option<Arc<TimeStampAuthority>>,
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
}

pub struct DetachedSignatures {
    pub cms: Vec<Vec<u8>>,
    pub certificate: Vec<u8>,
    pub signature_id: String,
}

impl SigningCore {
    /// SPEC §2 SignDetached: one key, one certificate, one CMS per document.
    pub async fn sign_detached(
        self: &Arc<Self>,
        documents: Vec<Document>,
        authorization: Authorization,
    ) -> Result<DetachedSignatures, Error> {
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
        let digests = digests(documents, self.limits.max_document_bytes).await?;
        let now = SystemTime::now();
        let (activation, signatory) = self.authorize(&authorization, &digests, now)?;
        let signature_id = uuid::Uuid::new_v4().to_string();
        let id = signature_id.clone();
        let core = self.clone();
        let algorithm = authorization.key_algorithm;
        let (certificate, cms) = self
            .hsm
            .run(move |session| {
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
                let cms = digests
                    .iter()
                    .map(|digest| {
                        let signer_info =
                            context.sign(digest, SigningTime::Attribute(now), &key)?;
                        context.content_info(signer_info)
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                audit(&id, &activation, &signatory, &issued, &digests);
                Ok((issued.der, cms))
            })
            .await?;
        Ok(DetachedSignatures {
            cms,
            certificate,
            signature_id,
        })
    }

    /// SPEC §3, §4: a valid token that covers every digest and allows the
    /// profile; then, and only then, the token is spent.
    fn authorize(
        &self,
        authorization: &Authorization,
        digests: &[[u8; 32]],
        now: SystemTime,
    ) -> Result<(Activation, Signatory), Error> {
        let activation = self.verifier.verify(&authorization.activation_token, now)?;
        activation.covers(digests)?;
        let seal = authorization
            .seal_profile
            .as_deref()
            .filter(|p| !p.is_empty());
        let signatory = self.profiles.authorize(&activation, seal)?;
        self.verifier.consume(&activation, now)?;
        Ok((activation, signatory))
    }
}

/// The certificate subject of a signatory (SPEC §5).
fn subject(signatory: &Signatory) -> Subject<'_> {
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

/// SHA-256 of each document; big contents are hashed off the async workers.
async fn digests(documents: Vec<Document>, max_bytes: usize) -> Result<Vec<[u8; 32]>, Error> {
    let content_bytes: usize = documents
        .iter()
        .map(|d| match d {
            Document::Content(c) => c.len(),
            Document::Digest(_) => 0,
        })
        .sum();
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
                Document::Digest(d) => <[u8; 32]>::try_from(d.as_slice()).map_err(|_| {
                    Error::invalid_argument(format!(
                        "document {i}: sha256_digest must be 32 bytes, got {}",
                        d.len()
                    ))
                }),
            })
            .collect()
    };
    if content_bytes < 256 << 10 {
        hash()
    } else {
        tokio::task::spawn_blocking(hash)
            .await
            .map_err(|e| Error::internal("hashing task failed").with_source(e))?
    }
}

/// The audit record: the only place the activating person of a seal appears.
fn audit(
    signature_id: &str,
    activation: &Activation,
    signatory: &Signatory,
    issued: &pki::Issued,
    digests: &[[u8; 32]],
) {
    let serial = hex::encode(issued.certificate.tbs_certificate.serial_number.as_bytes());
    let digests: Vec<String> = digests.iter().map(hex::encode).collect();
    let kind = match signatory {
        Signatory::Person { .. } => "signature".to_owned(),
        Signatory::Seal { profile, .. } => format!("seal:{profile}"),
    };
    tracing::info!(
        target: "qsign::audit",
        signature_id,
        kind,
        activated_by = %activation.subject,
        given_name = activation.given_name.as_deref().unwrap_or(""),
        family_name = activation.family_name.as_deref().unwrap_or(""),
        org_cvr = %activation.org_cvr,
        token_id = %activation.jti,
        certificate_serial = %serial,
        documents = ?digests,
        "signed"
    );
}
