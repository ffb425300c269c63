//! The activation token's claims (SPEC §3; RFC 7519 §4.1), checked once the
//! signature has verified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine as _};
use serde::Deserialize;

use super::{Activation, AuthError, ProfileId, TokenPolicy};
use crate::pki::name::{forbidden_character, nfc};

/// Longest `jti` remembered by the replay cache.
pub const MAX_JTI_LEN: usize = 256;

/// Digests are base64url without padding (RFC 7515 §2); padded is tolerated.
const DIGEST_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The claims as sent; all optional here so that a missing one gets a
/// message naming it. Duplicate members are refused by serde.
#[derive(Deserialize)]
pub(super) struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    iat: Option<f64>,
    exp: Option<f64>,
    nbf: Option<f64>,
    jti: Option<String>,
    sub: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    org_cvr: Option<String>,
    org_name: Option<String>,
    seal_profiles: Option<Vec<String>>,
    digests: Option<Vec<String>>,
}

/// RFC 7519 §4.1.3: one string or an array of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Claims {
    /// RFC 7519 §4.1.1, §4.1.3: `iss` equals ours, `aud` includes ours.
    pub(super) fn check_issuer_audience(
        &self,
        issuer: &str,
        audience: &str,
    ) -> Result<(), AuthError> {
        if required(&self.iss, "iss")? != issuer {
            return Err(AuthError::WrongIssuer {
                expected: issuer.to_owned(),
            });
        }
        let ours = |aud: &String| *aud == audience;
        let listed = match required(&self.aud, "aud")? {
            Audience::One(aud) => ours(aud),
            Audience::Many(auds) => auds.iter().any(ours),
        };
        if !listed {
            return Err(AuthError::WrongAudience {
                expected: audience.to_owned(),
            });
        }
        Ok(())
    }

    /// RFC 7519 §4.1.4-6 with leeway, plus a bounded `exp - iat`.
    /// Returns `exp`.
    pub(super) fn check_times(
        &self,
        policy: &TokenPolicy,
        now: SystemTime,
    ) -> Result<SystemTime, AuthError> {
        let leeway = policy.leeway;
        let iat = numeric_date(*required(&self.iat, "iat")?, "iat")?;
        let exp = numeric_date(*required(&self.exp, "exp")?, "exp")?;
        if now >= exp + leeway {
            return Err(AuthError::Expired { at: exp });
        }
        if iat > now + leeway {
            return Err(AuthError::NotYetValid { from: iat });
        }
        if let Some(nbf) = self.nbf {
            let nbf = numeric_date(nbf, "nbf")?;
            if nbf > now + leeway {
                return Err(AuthError::NotYetValid { from: nbf });
            }
        }
        let lifetime = exp
            .duration_since(iat)
            .map_err(|_| malformed("'exp' is before 'iat'"))?;
        if lifetime > policy.max_lifetime {
            return Err(AuthError::TooLongLived {
                lifetime,
                max: policy.max_lifetime,
            });
        }
        Ok(exp)
    }

    /// The identity claims, checked for shape (SPEC §3).
    /// Without `digests_required` (a bearer, SPEC §13) absent `digests`
    /// give an empty list.
    pub(super) fn into_activation(
        self,
        expires_at: SystemTime,
        digests_required: bool,
    ) -> Result<Activation, AuthError> {
        let jti = required(&self.jti, "jti")?;
        if jti.is_empty() || jti.len() > MAX_JTI_LEN {
            return Err(malformed(format!(
                "'jti' is empty or longer than {MAX_JTI_LEN} bytes"
            )));
        }
        let subject = uuid::Uuid::try_parse(required(&self.sub, "sub")?)
            .map_err(|_| malformed("'sub' is not a UUID"))?;
        let org_cvr = required(&self.org_cvr, "org_cvr")?
            .parse()
            .map_err(|_| malformed("'org_cvr' is not 8 digits"))?;
        let seal_profiles = self
            .seal_profiles
            .unwrap_or_default()
            .into_iter()
            .map(ProfileId::try_from)
            .collect::<Result<_, _>>()
            .map_err(|_| malformed("'seal_profiles' holds an invalid profile id"))?;
        Ok(Activation {
            jti: jti.clone(),
            subject,
            given_name: name(self.given_name, "given_name")?,
            family_name: name(self.family_name, "family_name")?,
            org_cvr,
            org_name: name(self.org_name, "org_name")?.ok_or_else(|| missing("org_name"))?,
            seal_profiles,
            digests: match (&self.digests, digests_required) {
                (None, false) => Vec::new(),
                (Some(encoded), false) if encoded.is_empty() => Vec::new(),
                (encoded, _) => digests(required(encoded, "digests")?)?,
            },
            expires_at,
        })
    }
}

/// A name claim: trimmed, NFC (UAX #15), empty counts as absent. A token
/// whose name holds control, bidirectional (UAX #9) or other invisible
/// format characters is a bad token: it could show one name and certify
/// another.
fn name(value: Option<String>, claim: &str) -> Result<Option<String>, AuthError> {
    let Some(value) = value else { return Ok(None) };
    if let Some(character) = forbidden_character(&value) {
        return Err(malformed(format!(
            "'{claim}' contains {character}; names may not hold control, bidirectional or \
             invisible format characters"
        )));
    }
    let trimmed = value.trim();
    Ok((!trimmed.is_empty()).then(|| nfc(trimmed)))
}

/// SPEC §3: a non-empty list of base64url SHA-256 digests.
fn digests(encoded: &[String]) -> Result<Vec<[u8; 32]>, AuthError> {
    if encoded.is_empty() {
        return Err(malformed("'digests' is empty"));
    }
    let one = |(i, text): (usize, &String)| {
        DIGEST_BASE64
            .decode(text)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| malformed(format!("'digests'[{i}] is not a base64url SHA-256 digest")))
    };
    encoded.iter().enumerate().map(one).collect()
}

/// RFC 7519 §2 NumericDate: seconds since 1970, fractions allowed.
fn numeric_date(secs: f64, claim: &str) -> Result<SystemTime, AuthError> {
    // Up to 9999-12-31, so that adding a leeway cannot overflow.
    const LATEST: f64 = 253_402_300_799.0;
    if !(0.0..=LATEST).contains(&secs) {
        return Err(malformed(format!("'{claim}' is not a NumericDate")));
    }
    Ok(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

fn required<'a, T>(value: &'a Option<T>, claim: &str) -> Result<&'a T, AuthError> {
    value.as_ref().ok_or_else(|| missing(claim))
}

fn missing(claim: &str) -> AuthError {
    malformed(format!("claim '{claim}' is missing"))
}

pub(super) fn malformed(message: impl Into<String>) -> AuthError {
    AuthError::Malformed(message.into())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
    use serde_json::{json, Value};

    use super::*;

    const ISS: &str = "https://idp.example";
    const AUD: &str = "qsign";

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn good() -> Value {
        json!({
            "iss": ISS, "aud": AUD, "iat": 1_800_000_000, "exp": 1_800_000_300,
            "jti": "j-1", "sub": "6f1e9a4e-8f5c-4b8e-9a43-3c1d2f0b7a10",
            "given_name": "Karen", "family_name": "Blixen",
            "org_cvr": "12345678", "org_name": "Acme A/S",
            "seal_profiles": ["acme-seal"], "digests": [URL_SAFE_NO_PAD.encode([1; 32])],
        })
    }

    /// All checks `Verifier::verify` runs after the signature.
    fn check(claims: &Value) -> Result<Activation, AuthError> {
        let policy = TokenPolicy::new(ISS, AUD);
        let claims: Claims =
            serde_json::from_value(claims.clone()).map_err(|e| malformed(e.to_string()))?;
        claims.check_issuer_audience(&policy.issuer, &policy.audience)?;
        let exp = claims.check_times(&policy, t0())?;
        claims.into_activation(exp, true)
    }

    fn with(claim: &str, value: Value) -> Value {
        let mut claims = good();
        claims[claim] = value;
        claims
    }

    fn without(claim: &str) -> Value {
        let mut claims = good();
        claims.as_object_mut().map(|o| o.remove(claim));
        claims
    }

    #[test]
    fn good_claims_make_an_activation() {
        let a = check(&good()).unwrap();
        assert_eq!(a.jti, "j-1");
        assert_eq!(
            a.subject.to_string(),
            "6f1e9a4e-8f5c-4b8e-9a43-3c1d2f0b7a10"
        );
        assert_eq!(a.org_cvr.as_str(), "12345678");
        assert_eq!(a.digests, vec![[1; 32]]);
        assert_eq!(a.expires_at, t0() + Duration::from_secs(300));
    }

    #[test]
    fn audience_may_be_an_array() {
        check(&with("aud", json!(["other", AUD]))).unwrap();
        let err = check(&with("aud", json!(["other"]))).unwrap_err();
        assert!(matches!(err, AuthError::WrongAudience { .. }));
    }

    #[test]
    fn times_are_checked() {
        let err = check(&with("nbf", json!(1_800_000_100))).unwrap_err();
        assert!(matches!(err, AuthError::NotYetValid { .. }));
        check(&with("nbf", json!(1_800_000_010))).unwrap();
        check(&with("iat", json!(1_799_999_999.5))).unwrap();
        let err = check(&with("exp", json!(1_799_999_999))).unwrap_err();
        assert!(matches!(err, AuthError::Malformed(m) if m.contains("before")));
        for bad in [json!(-1), json!(1e300), json!("soon")] {
            assert!(matches!(
                check(&with("iat", bad)),
                Err(AuthError::Malformed(_))
            ));
        }
    }

    #[test]
    fn claims_must_be_well_formed() {
        let cases = [
            ("sub", json!("not-a-uuid"), "UUID"),
            ("org_cvr", json!("1234"), "8 digits"),
            ("org_name", json!(" "), "org_name"),
            ("digests", json!([]), "empty"),
            ("digests", json!(["AAAA"]), "'digests'[0]"),
            (
                "digests",
                json!([URL_SAFE_NO_PAD.encode([1; 33])]),
                "'digests'[0]",
            ),
            (
                "digests",
                json!(["+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/"]),
                "[0]",
            ),
            ("seal_profiles", json!(["a b"]), "seal_profiles"),
            ("jti", json!(""), "jti"),
            ("jti", json!("j".repeat(MAX_JTI_LEN + 1)), "jti"),
            ("given_name", json!("Karen\nBlixen"), "control"),
            ("family_name", json!("Blixen\u{202E}"), "U+202E"),
            ("org_name", json!("Acme\u{200B} A/S"), "U+200B"),
        ];
        for (claim, value, expect) in cases {
            match check(&with(claim, value.clone())) {
                Err(AuthError::Malformed(m)) => assert!(m.contains(expect), "{claim}: {m}"),
                other => panic!("{claim}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn required_claims_must_be_present() {
        let required = [
            "iss", "aud", "iat", "exp", "jti", "sub", "org_cvr", "org_name", "digests",
        ];
        for claim in required {
            match check(&without(claim)) {
                Err(AuthError::Malformed(m)) => assert!(m.contains(claim), "{claim}: {m}"),
                other => panic!("without {claim}: {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_claims_are_refused() {
        // RFC 7519 §4: a parser must refuse duplicate claim names or keep the
        // last; qsign refuses.
        let twice = r#"{"iss":"https://idp.example","iss":"https://evil.example"}"#;
        assert!(serde_json::from_str::<Claims>(twice).is_err());
    }

    #[test]
    fn optional_claims_and_padded_digests() {
        let mut claims = without("seal_profiles");
        claims.as_object_mut().map(|o| o.remove("family_name"));
        claims["given_name"] = json!("  ");
        claims["digests"] = json!([URL_SAFE.encode([5; 32])]);
        let a = check(&claims).unwrap();
        assert!(a.seal_profiles.is_empty());
        assert_eq!((a.given_name, a.family_name), (None, None));
        assert_eq!(a.digests, vec![[5; 32]]);
        let a = check(&with("given_name", json!(" Karen "))).unwrap();
        assert_eq!(a.given_name.as_deref(), Some("Karen"));
        let a = check(&with("family_name", json!("A\u{30A}berg"))).unwrap();
        assert_eq!(a.family_name.as_deref(), Some("\u{C5}berg"), "NFC");
    }
}
