//! The identity provider's public keys: a JWK Set (RFC 7517), parsed once at
//! start-up into ready-to-use verification keys.
//!
//! Accepted: EC P-256 (ES256), RSA of at least 2048 bits (RS256, or the RSA
//! `alg` the key names), OKP Ed25519 (EdDSA). Each key verifies exactly one
//! algorithm (its `alg`, else the default for its type), so a token cannot
//! pick a weaker use for a key (RFC 8725 §3.1). Keys for encryption and keys
//! of other types are skipped with a warning; symmetric keys (`oct`) and
//! private key material are refused: qsign must not be able to mint tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::AuthError;

/// One trusted key.
struct TrustedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// The trusted keys, in JWKS order.
pub(super) struct KeySet {
    keys: Vec<TrustedKey>,
}

/// A JWK as found in the file (RFC 7517 §4, RFC 7518 §6).
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    alg: Option<String>,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    /// Private parts (`d` for EC/OKP/RSA): present means a leaked private key.
    d: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

impl KeySet {
    pub(super) fn from_json(json: &str) -> Result<Self, AuthError> {
        let raw: RawJwks = serde_json::from_str(json).map_err(|e| {
            AuthError::Config(format!("JWKS is not a JSON {{\"keys\": [..]}}: {e}"))
        })?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        for (index, jwk) in raw.keys.iter().enumerate() {
            let name = jwk.kid.clone().unwrap_or_else(|| format!("#{index}"));
            if let Some(key) = trusted_key(jwk, &name)? {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(AuthError::Config(
                "JWKS holds no usable signature key (EC P-256, RSA >= 2048 bits, Ed25519)".into(),
            ));
        }
        Ok(Self { keys })
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether any key verifies `alg`.
    pub(super) fn accepts(&self, alg: Algorithm) -> bool {
        self.keys.iter().any(|k| k.alg == alg)
    }

    /// The keys to try for a token header (RFC 7515 §4.1.1, §4.1.4): those of
    /// the token's algorithm and, when the header names one, of its `kid`.
    pub(super) fn candidates<'a>(
        &'a self,
        alg: Algorithm,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a DecodingKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
            .map(|k| &k.key)
    }
}

/// `Ok(None)`: a key qsign does not use (skipped with a warning).
fn trusted_key(jwk: &RawJwk, name: &str) -> Result<Option<TrustedKey>, AuthError> {
    let config = |what: &str| AuthError::Config(format!("JWKS key '{name}': {what}"));
    if jwk.d.is_some() {
        return Err(config(
            "holds private key material; give qsign the public key only",
        ));
    }
    if jwk.kty == "oct" {
        return Err(config(
            "symmetric (oct) keys are refused; qsign must not be able to mint tokens",
        ));
    }
    let for_signatures = jwk.usage.as_deref().is_none_or(|u| u == "sig")
        && jwk
            .key_ops
            .as_ref()
            .is_none_or(|ops| ops.iter().any(|op| op == "verify"));
    if !for_signatures {
        tracing::warn!(key = name, "JWKS key is not for signatures; skipped");
        return Ok(None);
    }
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => ec_p256(jwk).map_err(config)?,
        ("RSA", _) => rsa(jwk).map_err(config)?,
        ("OKP", Some("Ed25519")) => ed25519(jwk).map_err(config)?,
        (kty, crv) => {
            tracing::warn!(
                key = name,
                kty,
                crv,
                "JWKS key type is not supported; skipped"
            );
            return Ok(None);
        }
    };
    let kid = jwk.kid.clone();
    Ok(Some(TrustedKey { kid, alg, key }))
}

/// The algorithm a key verifies: its `alg`, which must be one of `allowed`,
/// or `default` when it names none (`alg` is optional, RFC 7517 §4.4).
fn key_algorithm(
    jwk: &RawJwk,
    default: Algorithm,
    allowed: &[Algorithm],
) -> Result<Algorithm, &'static str> {
    let Some(alg) = jwk.alg.as_deref() else {
        return Ok(default);
    };
    alg.parse::<Algorithm>()
        .ok()
        .filter(|a| allowed.contains(a))
        .ok_or("its alg does not fit its key type")
}

fn coordinate(value: &Option<String>, len: usize) -> Result<Vec<u8>, &'static str> {
    let bytes = value
        .as_deref()
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .ok_or("a public key parameter is missing or not base64url")?;
    if len != 0 && bytes.len() != len {
        return Err("a public key parameter has the wrong length");
    }
    Ok(bytes)
}

/// RFC 7518 §6.2: `x`, `y` are 32-byte big-endian coordinates.
fn ec_p256(jwk: &RawJwk) -> Result<(Algorithm, DecodingKey), &'static str> {
    let alg = key_algorithm(jwk, Algorithm::ES256, &[Algorithm::ES256])?;
    let mut point = vec![0x04];
    point.extend(coordinate(&jwk.x, 32)?);
    point.extend(coordinate(&jwk.y, 32)?);
    // Refuse points off the curve now rather than fail every request later.
    p256::PublicKey::from_sec1_bytes(&point).map_err(|_| "the point is not on P-256")?;
    // ring verifies ECDSA against the uncompressed SEC1 point, which is what
    // `from_ec_der` stores despite its name (as `from_ec_components` does).
    Ok((alg, DecodingKey::from_ec_der(&point)))
}

/// RFC 7518 §6.3.1: `n`, `e` big-endian; at least 2048 bits (ring's floor).
fn rsa(jwk: &RawJwk) -> Result<(Algorithm, DecodingKey), &'static str> {
    use Algorithm::{PS256, PS384, PS512, RS256, RS384, RS512};
    let alg = key_algorithm(jwk, RS256, &[RS256, RS384, RS512, PS256, PS384, PS512])?;
    let n = coordinate(&jwk.n, 0)?;
    let e = coordinate(&jwk.e, 0)?;
    // Base64urlUInt is minimal (RFC 7518 §2), but some producers pad with a
    // zero octet, which ring refuses.
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    if n.len() < 256 {
        return Err("RSA modulus is shorter than 2048 bits");
    }
    if e.is_empty() || e.len() > 4 {
        return Err("RSA exponent is not valid");
    }
    Ok((alg, DecodingKey::from_rsa_raw_components(n, &e)))
}

/// RFC 8037 §2: `x` is the 32-byte public key.
fn ed25519(jwk: &RawJwk) -> Result<(Algorithm, DecodingKey), &'static str> {
    let alg = key_algorithm(jwk, Algorithm::EdDSA, &[Algorithm::EdDSA])?;
    Ok((alg, DecodingKey::from_ed_der(&coordinate(&jwk.x, 32)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::fixtures;

    fn err(json: &str) -> String {
        match KeySet::from_json(json) {
            Err(AuthError::Config(m)) => m,
            Err(other) => panic!("not a config error: {other:?}"),
            Ok(_) => panic!("accepted: {json}"),
        }
    }

    #[test]
    fn accepts_ec_rsa_and_ed25519() {
        let set = KeySet::from_json(&fixtures::mixed_jwks()).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.accepts(Algorithm::ES256));
        assert!(set.accepts(Algorithm::RS256));
        assert!(set.accepts(Algorithm::EdDSA));
        assert!(!set.accepts(Algorithm::HS256));
        assert!(!set.accepts(Algorithm::PS256));
    }

    #[test]
    fn refuses_symmetric_private_and_broken_keys() {
        assert!(err(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).contains("symmetric"));
        let ec = fixtures::ec_jwk();
        let mut private = ec.clone();
        private["d"] = "AAAA".into();
        assert!(err(&format!(r#"{{"keys":[{private}]}}"#)).contains("private"));
        let mut off_curve = ec.clone();
        off_curve["y"] = URL_SAFE_NO_PAD.encode([1u8; 32]).into();
        assert!(err(&format!(r#"{{"keys":[{off_curve}]}}"#)).contains("P-256"));
        let mut wrong_alg = ec.clone();
        wrong_alg["alg"] = "RS256".into();
        assert!(err(&format!(r#"{{"keys":[{wrong_alg}]}}"#)).contains("alg"));
        let short_rsa = r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#;
        assert!(err(short_rsa).contains("2048"));
        assert!(err("[]").contains("JSON"));
    }

    #[test]
    fn skips_keys_it_does_not_use_but_needs_one() {
        let enc = r#"{"kty":"EC","crv":"P-256","use":"enc","x":"","y":""}"#;
        let p384 = r#"{"kty":"EC","crv":"P-384","x":"","y":""}"#;
        assert!(err(&format!(r#"{{"keys":[{enc},{p384}]}}"#)).contains("no usable"));
        let with_good = format!(r#"{{"keys":[{enc},{p384},{}]}}"#, fixtures::ec_jwk());
        assert_eq!(KeySet::from_json(&with_good).unwrap().len(), 1);
    }
}
