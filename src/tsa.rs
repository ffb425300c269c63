//! The time-stamping authority (RFC 3161, with RFC 5816's ESSCertIDv2): a
//! domain module like `pki`. It holds the TSA certificate and makes a
//! TimeStampToken with any [`Signer`] of its key — the flow hands it the
//! token key's signer inside an HSM job, so that a signature level
//! (CAdES/PAdES B-T) stamps its signature value in the same job as the
//! signing. It knows neither the HSM nor HTTP.
//!
//! ```text
//! service::http  POST application/timestamp-query (64 KiB limit)
//!   signing (flow): protocol::check (§2.4.1) ─────────┐ rejection: badAlg, ...
//!                   Hsm::run ─► TimeStampAuthority::time_stamp(signer)
//!                     TSTInfo (§2.4.2) → SignedData (eContent encapsulated)
//!                   protocol::reply ◄─────────────────┘
//! ◄── application/timestamp-reply TimeStampResp (granted + token | rejection)
//! ```
//!
//! [`ExternalTsas`] asks other TSAs (the `[tsa] urls`) instead, through a
//! [`Transport`] the wiring supplies (`service::outbound`: HTTP).

pub mod asn1;
pub mod client;
pub mod protocol;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::cert::CertificateChoices;
use cms::content_info::CmsVersion;
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfos,
};
use const_oid::db::rfc6268;
use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, Int, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use rand::RngCore;
use spki::AlgorithmIdentifierOwned;
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::Certificate;

use crate::pki::Issued;
use crate::signed_data::{self, encoding};
use crate::signer::Signer;
use crate::{Error, ErrorKind};
pub use asn1::{Accuracy, MessageImprint, TstInfo};
pub use client::{tst_info, Exchange, ExternalTsas, Transport, EXCHANGE_TIMEOUT};

/// What the operator chooses for the built-in TSA (`[tsa]`).
#[derive(Clone, Debug)]
pub struct TsaSettings {
    /// Label of the TSA's persistent private key in the token.
    pub key_label: String,
    /// RFC 3161 §2.4.2 TSTInfo.policy: the TSA policy under which every
    /// token is issued.
    pub policy: ObjectIdentifier,
    /// RFC 3161 §2.4.2 accuracy: the most the token's genTime may differ
    /// from UTC.
    pub accuracy: Duration,
}

/// The built-in TSA; built once at start, shared by every request.
pub struct TimeStampAuthority {
    settings: TsaSettings,
    certificate: Issued,
    accuracy: Option<Accuracy>,
    sid: SignerIdentifier,
    digest_algorithm: AlgorithmIdentifierOwned,
    signature_algorithm: AlgorithmIdentifierOwned,
    signing_certificate_v2: Attribute,
    algorithm_protection: Attribute,
}

impl TimeStampAuthority {
    /// Checks the certificate against RFC 3161 §2.3 and against `key`, the
    /// public key of the token's `settings.key_label` (refuses to serve on
    /// a mismatch), then precomputes what every token shares; `signer` (of
    /// that key) names the algorithms.
    pub fn new(
        key: &SubjectPublicKeyInfoOwned,
        signer: &impl Signer,
        settings: TsaSettings,
        certificate_der: Vec<u8>,
    ) -> Result<Self, Error> {
        let certificate = Certificate::from_der(&certificate_der)
            .map_err(|e| Error::internal("the TSA certificate is not valid DER").with_source(e))?;
        check_time_stamping_usage(&certificate)?;
        if *key != certificate.tbs_certificate.subject_public_key_info {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "the TSA certificate does not match the token key '{}'",
                    settings.key_label
                ),
            ));
        }
        let certificate = Issued {
            certificate,
            der: certificate_der,
        };
        let digest_algorithm = signer.digest_algorithm();
        let signature_algorithm = signed_data::signature_algorithm(signer)?;
        let millis = u32::try_from(settings.accuracy.as_millis()).unwrap_or(u32::MAX);
        Ok(Self {
            accuracy: Accuracy::from_millis(millis),
            sid: signed_data::issuer_and_serial_number(&certificate.certificate),
            // RFC 5816 §2.2.1: ESSCertIDv2 identifies the TSA certificate.
            signing_certificate_v2: signed_data::signing_certificate_v2(&certificate)?,
            algorithm_protection: signed_data::algorithm_protection(
                &digest_algorithm,
                &signature_algorithm,
            )?,
            digest_algorithm,
            signature_algorithm,
            certificate,
            settings,
        })
    }

    /// The TSA certificate, DER (GetTrustChain's `tsa_certificate`).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate.der
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate.certificate
    }

    pub fn policy(&self) -> ObjectIdentifier {
        self.settings.policy
    }

    /// Label of the TSA's key in the token: the flow signs with it.
    pub fn key_label(&self) -> &str {
        &self.settings.key_label
    }

    /// A TimeStampToken (RFC 3161 §2.4.2: a DER `ContentInfo` holding a
    /// `SignedData` whose encapsulated content is the TSTInfo) for `imprint`
    /// at `now`, signed by `signer` (the TSA key). SHA-256 imprints only.
    /// `cert_req`: embed the TSA certificate (§2.4.1 certReq).
    pub fn time_stamp(
        &self,
        signer: &impl Signer,
        imprint: &MessageImprint,
        nonce: Option<&Int>,
        cert_req: bool,
        now: SystemTime,
    ) -> Result<Vec<u8>, Error> {
        if imprint.sha256_digest().is_none() {
            return Err(Error::invalid_argument(
                "the message imprint must be a 32-byte SHA-256 digest",
            ));
        }
        self.check_validity(now)?;
        let serial_number = random_serial()?;
        let tst_info = asn1::TstInfo {
            version: 1,
            policy: self.settings.policy,
            message_imprint: imprint.clone(),
            serial_number: serial_number.clone(),
            gen_time: gen_time(now)?,
            accuracy: self.accuracy,
            ordering: None,
            nonce: nonce.cloned(),
            tsa: None,
            extensions: None,
        }
        .to_der()
        .map_err(encoding)?;
        let token = self.signed_data(&tst_info, cert_req, signer)?;
        tracing::info!(
            target: "qsign::audit",
            kind = "time-stamp",
            serial = %hex::encode(serial_number.as_bytes()),
            imprint = %hex::encode(imprint.hashed_message.as_bytes()),
            "time-stamped"
        );
        Ok(token)
    }

    /// RFC 3161 §2.4.2 / RFC 5652 §5: SignedData version 3 (eContentType is
    /// not id-data), eContent present, one SignerInfo whose signed
    /// attributes are content-type id-ct-TSTInfo, message-digest, ESS
    /// signing-certificate-v2 (RFC 5816) and CMS algorithm protection.
    fn signed_data(
        &self,
        tst_info: &[u8],
        cert_req: bool,
        signer: &impl Signer,
    ) -> Result<Vec<u8>, Error> {
        let digest = <sha2::Sha256 as sha2::Digest>::digest(tst_info);
        let attributes = vec![
            signed_data::attribute(rfc6268::ID_CONTENT_TYPE, &asn1::CT_TST_INFO)?,
            signed_data::attribute(rfc6268::ID_MESSAGE_DIGEST, &signed_data::octets(&digest)?)?,
            self.signing_certificate_v2.clone(),
            self.algorithm_protection.clone(),
        ];
        let signer_info = signed_data::signer_info(
            self.sid.clone(),
            &self.digest_algorithm,
            &self.signature_algorithm,
            attributes,
            signer,
        )?;
        // §2.4.1: the TSA certificate only when asked for; never the root,
        // which the relying party already trusts.
        let certificates = if cert_req {
            let mut set = SetOfVec::new();
            set.insert(CertificateChoices::Certificate(
                self.certificate.certificate.clone(),
            ))
            .map_err(encoding)?;
            Some(CertificateSet(set))
        } else {
            None
        };
        let econtent = OctetString::new(tst_info).map_err(encoding)?;
        signed_data::content_info(SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![self.digest_algorithm.clone()])
                .map_err(encoding)?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: asn1::CT_TST_INFO,
                econtent: Some(Any::new(Tag::OctetString, econtent.as_bytes()).map_err(encoding)?),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).map_err(encoding)?),
        })
    }

    /// A TSA must not sign outside its certificate's validity.
    fn check_validity(&self, now: SystemTime) -> Result<(), Error> {
        let validity = &self.certificate.certificate.tbs_certificate.validity;
        if now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the TSA certificate is not valid now; the operator must renew it",
            ));
        }
        Ok(())
    }
}

/// RFC 3161 §2.3: extendedKeyUsage present, critical, id-kp-timeStamping
/// only — otherwise relying parties refuse every token, so refuse to start.
fn check_time_stamping_usage(certificate: &Certificate) -> Result<(), Error> {
    let refuse = || {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the TSA certificate must carry a critical extendedKeyUsage of \
             id-kp-timeStamping only (RFC 3161 §2.3)",
        )
    };
    let extensions = certificate.tbs_certificate.extensions.as_deref();
    let eku = extensions
        .unwrap_or_default()
        .iter()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .ok_or_else(refuse)?;
    let usages = ExtendedKeyUsage::from_der(eku.extn_value.as_bytes()).map_err(|_| refuse())?;
    if !eku.critical || usages.0 != [const_oid::db::rfc5280::ID_KP_TIME_STAMPING] {
        return Err(refuse());
    }
    Ok(())
}

/// §2.4.2 genTime: GeneralizedTime in UTC, whole seconds (DER forbids a
/// fractional part of zeros, and whole seconds need no such care).
fn gen_time(now: SystemTime) -> Result<Any, Error> {
    let seconds = now
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Error::internal("the clock is before 1970").with_source(e))?
        .as_secs();
    let time = GeneralizedTime::from_system_time(UNIX_EPOCH + Duration::from_secs(seconds))
        .map_err(encoding)?;
    Any::encode_from(&time).map_err(encoding)
}

/// §2.4.2 serialNumber: unique per token; 126 random bits, positive.
fn random_serial() -> Result<Int, Error> {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Int::new(&bytes).map_err(encoding)
}

/// A random positive nonce for a request (§2.4.1), 126 bits.
pub(crate) fn random_nonce() -> Result<Int, Error> {
    random_serial()
}
