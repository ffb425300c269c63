//! **DEVELOPMENT ONLY.** A built-in identity provider that mints signature
//! activation tokens (SPEC §3) for any identity it is asked for.
//!
//! Whoever holds its private key can make qsign sign as anyone. It exists so
//! that the embedded default configuration (SPEC §8), the CLI and the tests
//! work without a real IdP. **Never put its JWKS in a production
//! configuration.**

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::AuthError;

/// The development IdP: one P-256 key, signing ES256 (RFC 7518 §3.4).
#[derive(Clone)]
pub struct DevIdp {
    key: p256::ecdsa::SigningKey,
    /// Public coordinates, base64url (RFC 7518 §6.2.1).
    x: String,
    y: String,
    /// RFC 7638 thumbprint of the public JWK.
    kid: String,
}

/// The claims a development token carries (SPEC §3). `org_cvr` is a plain
/// string so that tests can mint malformed tokens.
#[derive(Clone, Debug, Default)]
pub struct DevClaims {
    pub issuer: String,
    pub audience: String,
    pub subject: uuid::Uuid,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub org_cvr: String,
    pub org_name: String,
    pub seal_profiles: Vec<String>,
    pub digests: Vec<[u8; 32]>,
    /// `None`: a random UUID v4.
    pub jti: Option<String>,
}

/// Namespace of [`dev_subject`] (a random UUID, fixed forever).
const DEV_SUBJECT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x96f7_69b1_388d_4e59_b31f_a74d_ebc7_fae2);

/// A stable subject UUID (v5) for a development identity name, so that
/// "Given Family" always maps to the same signer. The name is used as given:
/// no trimming or case folding.
pub fn dev_subject(name: &str) -> uuid::Uuid {
    uuid::Uuid::new_v5(&DEV_SUBJECT_NAMESPACE, name.as_bytes())
}

impl DevIdp {
    /// A fresh P-256 key from the operating system's generator.
    pub fn generate() -> Self {
        Self::from_secret(p256::SecretKey::random(&mut rand::rngs::OsRng))
    }

    /// Loads a key saved with [`DevIdp::pkcs8_pem`].
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, AuthError> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| {
            AuthError::Config(format!(
                "development IdP key is not a P-256 PKCS#8 PEM: {e}"
            ))
        })?;
        Ok(Self::from_secret(secret))
    }

    fn from_secret(secret: p256::SecretKey) -> Self {
        let point = secret.public_key().to_encoded_point(false);
        let (x, y) = match (point.x(), point.y()) {
            (Some(x), Some(y)) => (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y)),
            // An uncompressed point of a valid key always has both.
            _ => unreachable!("uncompressed P-256 point without coordinates"),
        };
        // RFC 7638 §3.2: required members only, in lexicographic order.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self {
            key: p256::ecdsa::SigningKey::from(secret),
            x,
            y,
            kid,
        }
    }

    /// The private key as PKCS#8 PEM (`PRIVATE KEY`), to persist it in the
    /// development state directory.
    pub fn pkcs8_pem(&self) -> zeroize::Zeroizing<String> {
        p256::SecretKey::from(self.key.as_nonzero_scalar())
            .to_pkcs8_pem(LineEnding::LF)
            // PKCS#8 encoding of a valid in-memory P-256 key cannot fail.
            .expect("PKCS#8 encoding of a P-256 key")
    }

    /// The key id: the RFC 7638 JWK thumbprint (base64url SHA-256).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS (RFC 7517 §5) to configure as the trusted IdP keys.
    pub fn jwks_json(&self) -> String {
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
            "kid": self.kid, "use": "sig", "alg": "ES256",
        }]})
        .to_string()
    }

    /// Mints an ES256 compact JWS: `iat` = `now`, `exp` = `now + lifetime`
    /// (whole seconds), `jti` random unless given.
    pub fn mint(
        &self,
        claims: &DevClaims,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<String, AuthError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| AuthError::Config("the clock is before 1970".into()))?
            .as_secs();
        let exp = iat.saturating_add(lifetime.as_secs());
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        Ok(self.sign_compact(&header, &claims.to_json(iat, exp)))
    }

    /// RFC 7515 §7.1 compact serialisation over any header and payload;
    /// ES256 signature is the raw `r || s` (RFC 7518 §3.4).
    pub(super) fn sign_compact(&self, header: &Value, payload: &Value) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload.to_string()));
        let signature: p256::ecdsa::Signature = self.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        token
    }
}

impl fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIdp")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl DevClaims {
    /// The JWT claims set of SPEC §3.
    fn to_json(&self, iat: u64, exp: u64) -> Value {
        let jti = self
            .jti
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let digests: Vec<String> = self
            .digests
            .iter()
            .map(|d| URL_SAFE_NO_PAD.encode(d))
            .collect();
        let mut claims = json!({
            "iss": self.issuer, "aud": self.audience, "iat": iat, "exp": exp,
            "jti": jti, "sub": self.subject.to_string(),
            "org_cvr": self.org_cvr, "org_name": self.org_name,
            "seal_profiles": self.seal_profiles, "digests": digests,
        });
        if let Some(given) = &self.given_name {
            claims["given_name"] = given.as_str().into();
        }
        if let Some(family) = &self.family_name {
            claims["family_name"] = family.as_str().into();
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_through_pkcs8_pem() {
        let idp = DevIdp::generate();
        let pem = idp.pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let again = DevIdp::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(again.jwks_json(), idp.jwks_json());
        assert!(DevIdp::from_pkcs8_pem("not a key").is_err());
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 gives an RSA example only; check the construction on
        // a fixed key against an independent computation of its members.
        let idp = DevIdp::generate();
        let jwks: Value = serde_json::from_str(&idp.jwks_json()).unwrap();
        let key = &jwks["keys"][0];
        let members = json!({"crv": key["crv"], "kty": key["kty"], "x": key["x"], "y": key["y"]});
        // serde_json orders object keys lexicographically and writes no spaces.
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(members.to_string()));
        assert_eq!(key["kid"], expected.as_str());
        assert_eq!(idp.kid(), expected);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(key["x"].as_str().unwrap())
                .unwrap()
                .len(),
            32
        );
    }

    #[test]
    fn dev_subject_is_stable_and_distinct() {
        assert_eq!(dev_subject("Karen Blixen"), dev_subject("Karen Blixen"));
        assert_ne!(dev_subject("Karen Blixen"), dev_subject("Karen  Blixen"));
        assert_eq!(dev_subject("x").get_version_num(), 5);
    }

    #[test]
    fn mint_writes_the_spec_claims() {
        let idp = DevIdp::generate();
        let claims = DevClaims {
            issuer: "iss".into(),
            audience: "aud".into(),
            given_name: Some("Karen".into()),
            digests: vec![[7; 32]],
            ..DevClaims::default()
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let token = idp.mint(&claims, now, Duration::from_secs(60)).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(payload["iat"], 1_000);
        assert_eq!(payload["exp"], 1_060);
        assert_eq!(payload["given_name"], "Karen");
        assert!(payload.get("family_name").is_none());
        assert_eq!(payload["digests"][0], URL_SAFE_NO_PAD.encode([7; 32]));
        assert!(uuid::Uuid::try_parse(payload["jti"].as_str().unwrap()).is_ok());
    }
}
