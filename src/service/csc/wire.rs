//! CSC JSON: requests and answers, v1.0.4.0 (§11) and v2.0 (§11) names.
//! Where the versions differ only in a name (`hash`/`hashes`,
//! `hashAlgo`/`hashAlgorithmOID`) both are accepted.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::hsm::KeyAlgorithm;
use crate::signing::csc::{
    Credential, CredentialInfo, Csc, CscError, DocumentToSign, Sad, SignedDocuments,
};
use crate::signing::{Document, Level};

/// SHA-256 (RFC 5754 §2.2), the only hash qsign signs.
const SHA256: &str = "2.16.840.1.101.3.4.2.1";
/// id-ecPublicKey (RFC 5480), ecdsa-with-SHA256 (RFC 5758 §3.2).
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
/// rsaEncryption, sha256WithRSAEncryption (RFC 8017 App. C).
const RSA: &str = "1.2.840.113549.1.1.1";
const RSA_SHA256: &str = "1.2.840.113549.1.1.11";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Version {
    V1,
    V2,
}

impl Version {
    pub(super) fn parse(text: &str) -> Option<Self> {
        match text {
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            _ => None,
        }
    }
}

/// v1.0.4.0 §11.1, v2.0 §11.1 `info`.
pub(super) fn info(version: Version, csc: &Csc) -> Value {
    let methods = [
        "credentials/list",
        "credentials/info",
        "credentials/authorize",
        "signatures/signHash",
    ];
    let mut info = json!({
        "name": "qsign",
        "logo": "",
        "region": "DK",
        "lang": "en-US",
        "description": "qsign: one-time qualified certificates; SCAL 2, the SAD is an \
                        activation token whose digests are the hashes",
        "authType": ["external"],
        "methods": methods,
    });
    match version {
        Version::V1 => info["specs"] = json!("1.0.4.0"),
        Version::V2 => {
            info["specs"] = json!("2.0.0.2");
            info["methods"] = json!([&methods[..], &["signatures/signDoc"]].concat());
            info["signAlgorithms"] = json!({ "algos": algorithms(csc.settings().key_algorithm) });
            info["signature_formats"] = json!({
                "formats": ["C", "P"],
                "envelope_properties": [["Detached"], ["Certification", "Revision"]],
            });
            info["conformance_levels"] = json!(["Ades-B-B", "Ades-B-T", "Ades-B-LT", "Ades-B-LTA"]);
        }
    }
    info
}

/// The signature algorithms a key supports (OIDs, `key/algo`).
fn algorithms(algorithm: KeyAlgorithm) -> Vec<&'static str> {
    if algorithm.is_ec() {
        vec![ECDSA_SHA256]
    } else {
        vec![RSA_SHA256]
    }
}

/// v1.0.4.0 §11.4, v2.0 §11.4 `credentials/list`.
pub(super) fn list(version: Version, credentials: &[Credential]) -> Value {
    let ids: Vec<String> = credentials.iter().map(ToString::to_string).collect();
    match version {
        Version::V1 | Version::V2 => json!({ "credentialIDs": ids }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InfoRequest {
    #[serde(rename = "credentialID")]
    pub(super) credential_id: String,
    /// "none", "single" (default) or "chain".
    certificates: Option<String>,
    #[serde(default)]
    cert_info: bool,
}

/// v1.0.4.0 §11.5, v2.0 §11.5 `credentials/info`.
pub(super) fn credential_info(
    version: Version,
    request: &InfoRequest,
    info: &CredentialInfo,
) -> Value {
    let certificates: Vec<String> = match request.certificates.as_deref() {
        Some("none") => vec![],
        Some("chain") => info
            .certificates
            .iter()
            .map(|c| STANDARD.encode(c))
            .collect(),
        _ => info
            .certificates
            .iter()
            .take(1)
            .map(|c| STANDARD.encode(c))
            .collect(),
    };
    let mut cert = json!({ "status": "valid", "certificates": certificates });
    if request.cert_info {
        cert["issuerDN"] = json!(info.issuer_dn);
        cert["subjectDN"] = json!(info.subject_dn);
        cert["serialNumber"] = json!(info.serial_hex);
        cert["validFrom"] = json!(generalized_time(info.not_before));
        cert["validTo"] = json!(generalized_time(info.not_after));
    }
    let (len, curve) = key_size(info.algorithm);
    let mut key = json!({ "status": "enabled", "algo": algorithms(info.algorithm), "len": len });
    if let Some(curve) = curve {
        key["curve"] = json!(curve);
    }
    let otp = json!({
        "presence": "true", "type": "online", "ID": "activation_token", "format": "A",
        "provider": "the IdP",
        "description": "the activation token the IdP issued for these hashes (SPEC §3)",
    });
    let mut answer = json!({
        "description": "one-time key and certificate; signs one signHash",
        "key": key,
        "cert": cert,
        "SCAL": "2",
        "multisign": info.multisign,
        "lang": "en-US",
    });
    match version {
        Version::V1 => {
            answer["authMode"] = json!("explicit");
            answer["PIN"] = json!({ "presence": "false" });
            answer["OTP"] = otp;
        }
        Version::V2 => {
            answer["authMode"] = json!("explicit");
            answer["auth"] = json!({
                "mode": "explicit",
                "expression": "activation_token",
                "objects": [{ "type": "OTP", "id": "activation_token", "format": "A",
                              "label": "activation token", "description": otp["description"] }],
            });
        }
    }
    answer
}

fn key_size(algorithm: KeyAlgorithm) -> (u32, Option<&'static str>) {
    match algorithm {
        KeyAlgorithm::EcP256 => (256, Some("1.2.840.10045.3.1.7")),
        KeyAlgorithm::EcP384 => (384, Some("1.3.132.0.34")),
        KeyAlgorithm::Rsa2048 => (2048, None),
        KeyAlgorithm::Rsa3072 => (3072, None),
    }
}

/// "YYYYMMDDHHMMSSZ" (CSC's GeneralizedTime strings).
fn generalized_time(time: std::time::SystemTime) -> String {
    match der::DateTime::from_system_time(time) {
        Ok(t) => format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}Z",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minutes(),
            t.seconds()
        ),
        Err(_) => String::new(),
    }
}

#[derive(Deserialize)]
pub(super) struct AuthData {
    id: String,
    value: String,
}

#[derive(Deserialize)]
pub(super) struct AuthorizeRequest {
    #[serde(rename = "credentialID")]
    pub(super) credential_id: String,
    #[serde(rename = "hash", alias = "hashes")]
    pub(super) hashes: Option<Vec<String>>,
    /// v1: the activation token goes in `OTP`.
    #[serde(rename = "OTP")]
    otp: Option<String>,
    /// v2: `authData` `[{ "id": "activation_token", "value": ... }]`.
    #[serde(rename = "authData")]
    auth_data: Option<Vec<AuthData>>,
}

impl AuthorizeRequest {
    pub(super) fn activation_token(&self) -> Result<&str, CscError> {
        let from_auth_data = self
            .auth_data
            .iter()
            .flatten()
            .find(|a| a.id == "activation_token" || a.id.eq_ignore_ascii_case("otp"));
        self.otp
            .as_deref()
            .or(from_auth_data.map(|a| a.value.as_str()))
            .ok_or_else(|| {
                CscError::invalid_request(
                    "missing parameter OTP (v1) or authData activation_token (v2): the activation token",
                )
            })
    }
}

/// v1.0.4.0 §11.6, v2.0 §11.6 answer.
pub(super) fn sad(sad: &Sad) -> Value {
    json!({ "SAD": sad.sad, "expiresIn": sad.expires_in.as_secs() })
}

#[derive(Deserialize)]
pub(super) struct SignHashRequest {
    #[serde(rename = "credentialID")]
    pub(super) credential_id: String,
    #[serde(rename = "SAD")]
    pub(super) sad: String,
    #[serde(rename = "hash", alias = "hashes")]
    pub(super) hashes: Option<Vec<String>>,
    #[serde(rename = "hashAlgo", alias = "hashAlgorithmOID")]
    hash_algo: Option<String>,
    #[serde(rename = "signAlgo")]
    sign_algo: String,
}

impl SignHashRequest {
    /// v1.0.4.0 §11.9: `signAlgo` must be the credential's; `hashAlgo`
    /// SHA-256 when given.
    pub(super) fn check_algorithms(&self, csc: &Csc) -> Result<(), CscError> {
        if self.hash_algo.as_deref().is_some_and(|h| h != SHA256) {
            return Err(CscError::invalid_request(format!(
                "invalid parameter hashAlgo: only SHA-256 ({SHA256})"
            )));
        }
        let ec = csc.settings().key_algorithm.is_ec();
        let ours: &[&str] = if ec {
            &[ECDSA_SHA256, EC_PUBLIC_KEY]
        } else {
            &[RSA_SHA256, RSA]
        };
        if !ours.contains(&self.sign_algo.as_str()) {
            return Err(CscError::invalid_request(format!(
                "invalid parameter signAlgo: this credential signs with {}",
                ours[0]
            )));
        }
        Ok(())
    }
}

/// Base64 SHA-256 values (CSC sends standard base64; base64url tolerated).
pub(super) fn hashes(encoded: Option<&[String]>) -> Result<Vec<[u8; 32]>, CscError> {
    let encoded = encoded.unwrap_or_default();
    if encoded.is_empty() {
        return Err(CscError::invalid_request("missing parameter hash"));
    }
    encoded
        .iter()
        .map(|text| {
            let text = text.trim_end_matches('=');
            STANDARD
                .decode(format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4)))
                .or_else(|_| URL_SAFE_NO_PAD.decode(text))
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| {
                    CscError::invalid_request("invalid parameter hash: base64 SHA-256 values")
                })
        })
        .collect()
}

/// v1.0.4.0 §11.9, v2.0 §11.10 answer.
pub(super) fn signatures(signatures: &[Vec<u8>]) -> Value {
    let encoded: Vec<String> = signatures.iter().map(|s| STANDARD.encode(s)).collect();
    json!({ "signatures": encoded })
}

#[derive(Deserialize)]
pub(super) struct DocumentParam {
    document: String,
    signature_format: String,
    conformance_level: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct DigestParam {
    hashes: Vec<String>,
    #[serde(rename = "hashAlgorithmOID")]
    hash_algorithm: Option<String>,
    signature_format: String,
    conformance_level: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct SignDocRequest {
    #[serde(rename = "credentialID")]
    pub(super) credential_id: String,
    #[serde(rename = "SAD")]
    pub(super) sad: String,
    #[serde(default)]
    documents: Vec<DocumentParam>,
    #[serde(rename = "documentDigests", default)]
    document_digests: Vec<DigestParam>,
}

impl SignDocRequest {
    /// v2.0 §11.11: `documents` (P: PAdES of the PDF, C: detached CAdES of
    /// the content) and `documentDigests` (C only); one conformance level.
    pub(super) fn documents(&self) -> Result<(Vec<DocumentToSign>, Option<Level>), CscError> {
        let mut level = None;
        let mut out = Vec::new();
        for d in &self.documents {
            merge_level(&mut level, d.conformance_level.as_deref())?;
            let bytes = STANDARD
                .decode(&d.document)
                .map_err(|_| CscError::invalid_request("invalid parameter document: base64"))?;
            out.push(match d.signature_format.as_str() {
                "P" => DocumentToSign::Pdf(bytes),
                "C" => DocumentToSign::Cades(Document::Content(bytes)),
                _ => return Err(format_error()),
            });
        }
        for d in &self.document_digests {
            merge_level(&mut level, d.conformance_level.as_deref())?;
            if d.signature_format != "C" {
                return Err(format_error());
            }
            if d.hash_algorithm.as_deref().is_some_and(|h| h != SHA256) {
                return Err(CscError::invalid_request(
                    "invalid parameter hashAlgorithmOID: only SHA-256",
                ));
            }
            for hash in hashes(Some(&d.hashes))? {
                out.push(DocumentToSign::Cades(Document::Digest(hash.to_vec())));
            }
        }
        if out.is_empty() {
            return Err(CscError::invalid_request(
                "missing parameter documents or documentDigests",
            ));
        }
        Ok((out, level))
    }
}

fn format_error() -> CscError {
    CscError::invalid_request("invalid parameter signature_format: P (PAdES) or C (CAdES)")
}

/// v2.0 §11.11 `conformance_level`: one level for the whole request.
fn merge_level(level: &mut Option<Level>, text: Option<&str>) -> Result<(), CscError> {
    let Some(text) = text else { return Ok(()) };
    let parsed = match text {
        "Ades-B-B" | "AdES-B-B" | "Ades-B" => Level::BB,
        "Ades-B-T" | "AdES-B-T" | "Ades-T" => Level::BT,
        "Ades-B-LT" | "AdES-B-LT" | "Ades-LT" => Level::BLt,
        "Ades-B-LTA" | "AdES-B-LTA" | "Ades-LTA" => Level::BLta,
        _ => {
            return Err(CscError::invalid_request(
                "invalid parameter conformance_level",
            ))
        }
    };
    match level.replace(parsed) {
        Some(earlier) if earlier != parsed => Err(CscError::invalid_request(
            "one conformance_level per request",
        )),
        _ => Ok(()),
    }
}

/// v2.0 §11.11 answer.
pub(super) fn signed_documents(signed: &SignedDocuments) -> Value {
    let encode = |items: &[Vec<u8>]| items.iter().map(|d| STANDARD.encode(d)).collect::<Vec<_>>();
    json!({
        "DocumentWithSignature": encode(&signed.documents),
        "SignatureObject": encode(&signed.signatures),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_base64_sha256() {
        let digest = [7u8; 32];
        let standard = STANDARD.encode(digest);
        let url = URL_SAFE_NO_PAD.encode(digest);
        let parsed = hashes(Some(&[standard.clone(), url, standard.replace('=', "")])).unwrap();
        assert_eq!(parsed, vec![digest; 3]);
        assert!(hashes(Some(&[STANDARD.encode([1u8; 20])])).is_err());
        assert!(hashes(Some(&[])).is_err());
        assert!(hashes(None).is_err());
    }

    #[test]
    fn one_conformance_level_per_request() {
        let mut level = None;
        merge_level(&mut level, Some("Ades-B-T")).unwrap();
        merge_level(&mut level, None).unwrap();
        merge_level(&mut level, Some("AdES-B-T")).unwrap();
        assert_eq!(level, Some(Level::BT));
        assert!(merge_level(&mut level, Some("Ades-B-B")).is_err());
        assert!(merge_level(&mut None, Some("PAdES-E-BES")).is_err());
    }

    #[test]
    fn generalized_time_is_csc_text() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(generalized_time(t), "20231114221320Z");
    }
}
