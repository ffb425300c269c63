//! Verification of the signature activation token (SPEC §3): a compact JWS
//! (RFC 7515) carrying JWT claims (RFC 7519), checked along RFC 8725.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::claims::{malformed, Claims};
use super::jwks::KeySet;
use super::replay::ReplayCache;
use super::single_use::{token_id, Reservation, SingleUse, SpentLedger};
use super::{Activation, AuthError};

/// Longest token accepted, before any decoding: room for a few hundred
/// digests, and a cap on the work an unauthenticated caller can cause.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// What the server expects of every token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Required `iss`.
    pub issuer: String,
    /// Required in `aud`.
    pub audience: String,
    /// Clock skew allowed on `iat`, `nbf` and `exp`; at most 5 minutes.
    pub leeway: Duration,
    /// Upper bound on `exp - iat`; at most 24 hours. Also bounds how long
    /// the replay cache remembers a `jti`.
    pub max_lifetime: Duration,
}

impl TokenPolicy {
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(15 * 60);
    const MAX_LEEWAY: Duration = Duration::from_secs(5 * 60);
    const MAX_MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

    /// A policy with the default leeway (30 s) and maximum lifetime (15 min).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Self::DEFAULT_LEEWAY,
            max_lifetime: Self::DEFAULT_MAX_LIFETIME,
        }
    }

    fn check(&self) -> Result<(), AuthError> {
        let fail = |m: &str| Err(AuthError::Config(m.to_owned()));
        if self.issuer.is_empty() || self.audience.is_empty() {
            return fail("token issuer and audience must not be empty");
        }
        if self.leeway > Self::MAX_LEEWAY {
            return fail("token leeway is more than 5 minutes");
        }
        if self.max_lifetime.is_zero() || self.max_lifetime > Self::MAX_MAX_LIFETIME {
            return fail("token max_lifetime must be more than 0 and at most 24 hours");
        }
        Ok(())
    }
}

/// Verifies activation tokens and enforces their single use. One per server,
/// shared by all requests.
pub struct Verifier {
    policy: TokenPolicy,
    keys: KeySet,
    single_use: Arc<SingleUse>,
}

/// The JOSE header fields qsign reads (RFC 7515 §4.1). Keys are never taken
/// from the header (`jwk`, `jku`, `x5c`, `x5u` are ignored).
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

impl Verifier {
    /// Parses the JWKS once; refuses an unusable policy or key set
    /// ([`AuthError::Config`]).
    pub fn new(policy: TokenPolicy, jwks_json: &str) -> Result<Self, AuthError> {
        policy.check()?;
        let keys = KeySet::from_json(jwks_json)?;
        Ok(Self {
            policy,
            keys,
            single_use: Arc::default(),
        })
    }

    /// Keeps spent tokens in `path` too, so that a restart does not forget
    /// them (SPEC §3: a token is single use); loads those an earlier run
    /// spent. Without it, a restart within a token's lifetime forgets. One
    /// server per file: a second one is refused
    /// ([`AuthError::JournalLocked`]).
    pub fn with_journal(
        mut self,
        path: &std::path::Path,
        now: SystemTime,
    ) -> Result<Self, AuthError> {
        self.single_use = Arc::new(SingleUse {
            seen: ReplayCache::with_journal(path, now)?,
            ledger: None,
        });
        Ok(self)
    }

    /// Keeps spent tokens in `ledger`, shared by every replica (SPEC §12),
    /// with this process's memory in front of it; instead of a journal.
    pub fn with_ledger(mut self, ledger: Arc<dyn SpentLedger>) -> Self {
        self.single_use = Arc::new(SingleUse {
            seen: ReplayCache::bounded(super::replay::REMEMBERED_WITH_LEDGER),
            ledger: Some(ledger),
        });
        self
    }

    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// Checks the signature, `iss`, `aud`, `iat`/`nbf`/`exp` and the shape of
    /// every claim. Does not consume the `jti`: see [`Verifier::consume`].
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<Activation, AuthError> {
        self.verify_for(token, &self.policy.audience, true, now)
    }

    /// A bearer token of another front door (SPEC §9, §13): the same keys,
    /// issuer and times, `aud` = `audience`, `digests` optional (empty when
    /// absent). Never reserved: a bearer is reused for its lifetime.
    pub fn verify_bearer(
        &self,
        token: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<Activation, AuthError> {
        self.verify_for(token, audience, false, now)
    }

    fn verify_for(
        &self,
        token: &str,
        audience: &str,
        digests_required: bool,
        now: SystemTime,
    ) -> Result<Activation, AuthError> {
        let token = token.trim_ascii();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed(format!("longer than {MAX_TOKEN_LEN} bytes")));
        }
        let (header, payload, signature) = split_compact(token)?;
        let header: Header = decode_json(header, "header")?;
        let alg = self.algorithm(&header)?;
        // RFC 7515 §5.2: the signing input is the first two parts as sent.
        let signing_input = &token[..token.len() - signature.len() - 1];
        self.check_signature(alg, header.kid.as_deref(), signing_input, signature)?;
        let claims: Claims = decode_json(payload, "payload")?;
        claims.check_issuer_audience(&self.policy.issuer, audience)?;
        let expires_at = claims.check_times(&self.policy, now)?;
        claims.into_activation(expires_at, digests_required)
    }

    /// The payload of a compact JWS whose signature verifies against the
    /// trusted keys: the administration token of SPEC §9 shares them and
    /// checks its own claims (`auth::admin`).
    pub(super) fn verified_payload<T: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<T, AuthError> {
        let token = token.trim_ascii();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(malformed(format!("longer than {MAX_TOKEN_LEN} bytes")));
        }
        let (header, payload, signature) = split_compact(token)?;
        let header: Header = decode_json(header, "header")?;
        let alg = self.algorithm(&header)?;
        let signing_input = &token[..token.len() - signature.len() - 1];
        self.check_signature(alg, header.kid.as_deref(), signing_input, signature)?;
        decode_json(payload, "payload")
    }

    /// Single use (SPEC §3): reserves the `jti` until the token's `exp`
    /// plus leeway, on every replica when a ledger is shared. A token spent
    /// or reserved fails with [`AuthError::Replayed`]. Call it once every
    /// other check has passed and before any HSM work; commit the guard
    /// when the signature leaves.
    pub async fn reserve(
        &self,
        activation: &Activation,
        now: SystemTime,
    ) -> Result<Reservation, AuthError> {
        let until = activation.expires_at + self.policy.leeway;
        if now >= until {
            return Err(AuthError::Expired {
                at: activation.expires_at,
            });
        }
        let id = token_id(&activation.jti);
        self.single_use.reserve(id, until, now).await
    }

    /// RFC 8725 §3.1: only algorithms of configured keys; never `none`, and
    /// never HMAC (no symmetric key is ever configured).
    fn algorithm(&self, header: &Header) -> Result<Algorithm, AuthError> {
        if header.crit.is_some() {
            // RFC 7515 §4.1.11: qsign understands no extension.
            return Err(malformed(
                "header has 'crit' extensions qsign does not support",
            ));
        }
        header
            .alg
            .parse::<Algorithm>()
            .ok()
            .filter(|alg| self.keys.accepts(*alg))
            .ok_or_else(|| AuthError::Algorithm(clip(&header.alg, 40)))
    }

    fn check_signature(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        signing_input: &str,
        signature: &str,
    ) -> Result<(), AuthError> {
        if URL_SAFE_NO_PAD.decode(signature).is_err() {
            return Err(malformed("signature is not base64url"));
        }
        let mut tried = false;
        for key in self.keys.candidates(alg, kid) {
            tried = true;
            let verify =
                jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), key, alg);
            if matches!(verify, Ok(true)) {
                return Ok(());
            }
        }
        match (tried, kid) {
            (true, _) => Err(AuthError::BadSignature),
            (false, Some(kid)) => Err(AuthError::UnknownKey(clip(kid, 40))),
            // Unreachable: `algorithm` checked some key has `alg`.
            (false, None) => Err(AuthError::BadSignature),
        }
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("keys", &self.keys.len())
            .field("remembered_jti", &self.single_use.seen.len())
            .finish()
    }
}

/// RFC 7515 §7.1: `header.payload.signature`.
fn split_compact(token: &str) -> Result<(&str, &str, &str), AuthError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.count()) {
        (Some(h), Some(p), Some(s), 0) => Ok((h, p, s)),
        (_, _, _, 2) => Err(malformed(
            "it is an encrypted JWE; qsign expects a signed JWS",
        )),
        _ => Err(malformed(
            "not a compact JWS (three base64url parts joined by '.')",
        )),
    }
}

fn decode_json<T: DeserializeOwned>(part: &str, what: &str) -> Result<T, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| malformed(format!("{what}: {}", clip(&e.to_string(), 120))))
}

/// Attacker-chosen text, shortened and escaped before it reaches a message
/// or a log.
fn clip(text: &str, max: usize) -> String {
    let mut clipped: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(max).is_some() {
        clipped.push_str("...");
    }
    clipped
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    use jsonwebtoken::{EncodingKey, Header as JwtHeader};
    use serde_json::{json, Value};

    use super::*;
    use crate::auth::dev::{dev_subject, DevClaims, DevIdp};
    use crate::auth::fixtures;
    use crate::ErrorKind;

    const ISS: &str = "https://idp.example";
    const AUD: &str = "qsign";
    const MINUTE: Duration = Duration::from_secs(60);

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn claims() -> DevClaims {
        DevClaims {
            issuer: ISS.into(),
            audience: AUD.into(),
            subject: dev_subject("Karen Blixen"),
            given_name: Some("Karen".into()),
            family_name: Some("Blixen".into()),
            org_cvr: "12345678".into(),
            org_name: "Acme A/S".into(),
            seal_profiles: vec!["acme-seal".into()],
            digests: vec![[1; 32], [2; 32]],
            jti: None,
        }
    }

    fn verifier(idp: &DevIdp) -> Verifier {
        Verifier::new(TokenPolicy::new(ISS, AUD), &idp.jwks_json()).unwrap()
    }

    fn mint(idp: &DevIdp, claims: &DevClaims) -> String {
        idp.mint(claims, t0(), 5 * MINUTE).unwrap()
    }

    /// Decodes a token's header and payload for tampering.
    fn parts(token: &str) -> (Value, Value) {
        let mut it = token.split('.');
        let mut next = || {
            let part = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
            serde_json::from_slice(&part).unwrap()
        };
        (next(), next())
    }

    /// A token signed by `idp` whose payload went through `edit`.
    fn edited(idp: &DevIdp, edit: impl FnOnce(&mut Value)) -> String {
        let (header, mut payload) = parts(&mint(idp, &claims()));
        edit(&mut payload);
        idp.sign_compact(&header, &payload)
    }

    fn refused(v: &Verifier, token: &str) -> AuthError {
        v.verify(token, t0()).unwrap_err()
    }

    #[test]
    fn bearer_needs_its_own_audience_and_no_digests() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        let mut c = claims();
        c.audience = "qsign-csc".into();
        c.digests.clear();
        let bearer = mint(&idp, &c);
        let user = v.verify_bearer(&bearer, "qsign-csc", t0()).unwrap();
        assert!(user.digests.is_empty());
        assert!(matches!(
            refused(&v, &bearer),
            AuthError::WrongAudience { .. }
        ));
        // An activation token is no bearer: its audience is another.
        let activation = mint(&idp, &claims());
        let e = v.verify_bearer(&activation, "qsign-csc", t0()).unwrap_err();
        assert!(matches!(e, AuthError::WrongAudience { .. }));
    }

    #[test]
    fn good_token_verifies() {
        let idp = DevIdp::generate();
        let mut c = claims();
        c.jti = Some("jti-1".into());
        let a = verifier(&idp).verify(&mint(&idp, &c), t0()).unwrap();
        assert_eq!(a.jti, "jti-1");
        assert_eq!(a.subject, dev_subject("Karen Blixen"));
        assert_eq!(a.given_name.as_deref(), Some("Karen"));
        assert_eq!(a.family_name.as_deref(), Some("Blixen"));
        assert_eq!(a.org_cvr.as_str(), "12345678");
        assert_eq!(a.org_name, "Acme A/S");
        assert_eq!(a.seal_profiles, vec!["acme-seal".parse().unwrap()]);
        assert_eq!(a.digests, vec![[1; 32], [2; 32]]);
        assert_eq!(a.expires_at, t0() + 5 * MINUTE);
    }

    #[test]
    fn other_key_is_refused() {
        let (idp, other) = (DevIdp::generate(), DevIdp::generate());
        let token = mint(&other, &claims());
        // The other key's kid is unknown; without a kid every key is tried.
        assert!(matches!(
            refused(&verifier(&idp), &token),
            AuthError::UnknownKey(_)
        ));
        let (mut header, payload) = parts(&token);
        header.as_object_mut().unwrap().remove("kid");
        let no_kid = other.sign_compact(&header, &payload);
        let err = refused(&verifier(&idp), &no_kid);
        assert!(matches!(err, AuthError::BadSignature));
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[test]
    fn tampered_payload_is_refused() {
        let idp = DevIdp::generate();
        let token = mint(&idp, &claims());
        let (header, mut payload) = parts(&token);
        payload["digests"][0] = URL_SAFE_NO_PAD.encode([9; 32]).into();
        let signature = token.rsplit('.').next().unwrap();
        let forged = format!(
            "{}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        assert!(matches!(
            refused(&verifier(&idp), &forged),
            AuthError::BadSignature
        ));
        let mut truncated = token.clone();
        truncated.pop();
        assert!(refused(&verifier(&idp), &truncated).kind() == ErrorKind::Unauthenticated);
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let idp = DevIdp::generate();
        let (_, payload) = parts(&mint(&idp, &claims()));
        let payload_b64 = URL_SAFE_NO_PAD.encode(payload.to_string());
        let none = format!(
            "{}.{payload_b64}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)
        );
        assert!(matches!(refused(&verifier(&idp), &none), AuthError::Algorithm(a) if a == "none"));
        // Algorithm confusion: HMAC keyed with the public JWKS.
        let mut header = JwtHeader::new(Algorithm::HS256);
        header.kid = Some(idp.kid().to_owned());
        let key = EncodingKey::from_secret(idp.jwks_json().as_bytes());
        let hs256 = jsonwebtoken::encode(&header, &payload, &key).unwrap();
        let err = refused(&verifier(&idp), &hs256);
        assert!(matches!(err, AuthError::Algorithm(a) if a == "HS256"));
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        let mut c = claims();
        c.issuer = "https://evil.example".into();
        assert!(matches!(
            refused(&v, &mint(&idp, &c)),
            AuthError::WrongIssuer { .. }
        ));
        let mut c = claims();
        c.audience = "someone-else".into();
        assert!(matches!(
            refused(&v, &mint(&idp, &c)),
            AuthError::WrongAudience { .. }
        ));
        let many = edited(&idp, |p| p["aud"] = json!(["other", AUD]));
        v.verify(&many, t0()).unwrap();
        let none_ours = edited(&idp, |p| p["aud"] = json!(["other"]));
        assert!(matches!(
            refused(&v, &none_ours),
            AuthError::WrongAudience { .. }
        ));
    }

    #[test]
    fn expiry_and_future_iat_respect_the_leeway() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        let token = mint(&idp, &claims()); // iat = t0, exp = t0 + 5 min
        let leeway = TokenPolicy::DEFAULT_LEEWAY;
        let exp = t0() + 5 * MINUTE;
        v.verify(&token, exp + leeway - Duration::from_secs(1))
            .unwrap();
        let err = v.verify(&token, exp + leeway).unwrap_err();
        assert!(matches!(err, AuthError::Expired { at } if at == exp));
        v.verify(&token, t0() - leeway).unwrap();
        let err = v
            .verify(&token, t0() - leeway - Duration::from_secs(1))
            .unwrap_err();
        assert!(matches!(err, AuthError::NotYetValid { from } if from == t0()));
    }

    #[test]
    fn too_long_lived_is_refused() {
        let idp = DevIdp::generate();
        let token = idp.mint(&claims(), t0(), 16 * MINUTE).unwrap();
        let err = refused(&verifier(&idp), &token);
        assert!(matches!(err, AuthError::TooLongLived { .. }));
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        let backwards = edited(&idp, |p| p["exp"] = json!(1_799_999_999));
        assert!(matches!(
            refused(&verifier(&idp), &backwards),
            AuthError::Malformed(_)
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        assert!(matches!(v.verify("  ", t0()), Err(AuthError::Missing)));
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","crit":["b64"]}"#);
        for token in [
            "a",
            "a.b",
            "a.b.c.d",
            "a.b.c.d.e",
            "!.!.!",
            &long,
            &format!("{header}.e30.AA"),
        ] {
            let err = refused(&v, token);
            assert!(
                matches!(err, AuthError::Malformed(_)),
                "{token:.20}: {err:?}"
            );
        }
        let unknown_alg = format!("{}.e30.AA", URL_SAFE_NO_PAD.encode(r#"{"alg":"ES999"}"#));
        assert!(matches!(refused(&v, &unknown_alg), AuthError::Algorithm(_)));
    }

    #[tokio::test]
    async fn reserve_refuses_a_replay() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        let token = mint(&idp, &claims());
        let a = v.verify(&token, t0()).unwrap();
        let reserved = v.reserve(&a, t0()).await.unwrap();
        // verify does not reserve; a second reservation does not pass,
        // whether the first is in flight or spent.
        let again = v.verify(&token, t0()).unwrap();
        let err = v.reserve(&again, t0()).await.unwrap_err();
        assert!(matches!(err, AuthError::Replayed));
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        reserved.commit().await.unwrap();
        assert!(matches!(
            v.reserve(&again, t0()).await,
            Err(AuthError::Replayed)
        ));
        let other = v.verify(&mint(&idp, &claims()), t0()).unwrap();
        v.reserve(&other, t0())
            .await
            .unwrap()
            .commit()
            .await
            .unwrap();
        let late = t0() + 6 * MINUTE;
        assert!(matches!(
            v.reserve(&a, late).await,
            Err(AuthError::Expired { .. })
        ));
    }

    #[tokio::test]
    async fn a_released_or_dropped_reservation_frees_the_token() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        let a = v.verify(&mint(&idp, &claims()), t0()).unwrap();
        v.reserve(&a, t0()).await.unwrap().release().await;
        drop(v.reserve(&a, t0()).await.unwrap());
        let _held = v.reserve(&a, t0()).await.expect("still unspent");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reserve_is_atomic_across_threads() {
        const TASKS: usize = 16;
        let idp = DevIdp::generate();
        let v = Arc::new(verifier(&idp));
        let a = Arc::new(v.verify(&mint(&idp, &claims()), t0()).unwrap());
        let start = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                let (v, a, start) = (v.clone(), a.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    // Kept until counted: a dropped guard releases.
                    v.reserve(&a, t0()).await.ok()
                })
            })
            .collect();
        let mut held = Vec::new();
        for handle in handles {
            held.extend(handle.await.unwrap());
        }
        assert_eq!(held.len(), 1);
    }

    #[test]
    fn jwks_with_two_keys_selects_by_kid() {
        let (first, second) = (DevIdp::generate(), DevIdp::generate());
        let jwks = fixtures::jwks(&[fixtures::first_key(&first), fixtures::first_key(&second)]);
        let v = Verifier::new(TokenPolicy::new(ISS, AUD), &jwks).unwrap();
        v.verify(&mint(&first, &claims()), t0()).unwrap();
        v.verify(&mint(&second, &claims()), t0()).unwrap();
        // A kid selects its key only: signed by `second`, naming `first`.
        let (mut header, payload) = parts(&mint(&second, &claims()));
        header["kid"] = first.kid().into();
        let misnamed = second.sign_compact(&header, &payload);
        assert!(matches!(refused(&v, &misnamed), AuthError::BadSignature));
        header.as_object_mut().unwrap().remove("kid");
        v.verify(&second.sign_compact(&header, &payload), t0())
            .unwrap();
        header["kid"] = "nobody".into();
        let unknown = second.sign_compact(&header, &payload);
        assert!(matches!(refused(&v, &unknown), AuthError::UnknownKey(k) if k == "nobody"));
    }

    #[test]
    fn rs256_and_eddsa_keys_verify() {
        let v = Verifier::new(TokenPolicy::new(ISS, AUD), &fixtures::mixed_jwks()).unwrap();
        let (_, payload) = parts(&mint(&DevIdp::generate(), &claims()));
        let rsa = EncodingKey::from_rsa_pem(fixtures::RSA_PKCS1_PEM.as_bytes()).unwrap();
        let ed = EncodingKey::from_ed_pem(fixtures::ED25519_PKCS8_PEM.as_bytes()).unwrap();
        let sign = |alg, kid: &str, key| {
            let mut header = JwtHeader::new(alg);
            header.kid = Some(kid.into());
            jsonwebtoken::encode(&header, &payload, key).unwrap()
        };
        v.verify(&sign(Algorithm::RS256, "rsa-1", &rsa), t0())
            .unwrap();
        v.verify(&sign(Algorithm::EdDSA, "ed-1", &ed), t0())
            .unwrap();
        // A key verifies its own algorithm only.
        let swapped = sign(Algorithm::EdDSA, "rsa-1", &ed);
        assert!(matches!(refused(&v, &swapped), AuthError::UnknownKey(_)));
        let good = sign(Algorithm::RS256, "rsa-1", &rsa);
        let (header, _, signature) = split_compact(&good).unwrap();
        let other_payload = URL_SAFE_NO_PAD.encode(json!({"iss": ISS}).to_string());
        let forged = format!("{header}.{other_payload}.{signature}");
        assert!(matches!(refused(&v, &forged), AuthError::BadSignature));
    }

    #[test]
    fn policy_and_jwks_errors_are_internal() {
        let idp = DevIdp::generate();
        let mut policy = TokenPolicy::new(ISS, AUD);
        policy.max_lifetime = Duration::ZERO;
        let err = Verifier::new(policy, &idp.jwks_json()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        let err = Verifier::new(TokenPolicy::new("", AUD), &idp.jwks_json()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        let err = Verifier::new(TokenPolicy::new(ISS, AUD), "{}").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[test]
    fn clip_shortens_and_escapes() {
        assert_eq!(clip("kid", 40), "kid");
        assert_eq!(clip("a\nb", 40), "a\\nb");
        assert_eq!(clip(&"x".repeat(100), 40), format!("{}...", "x".repeat(40)));
    }

    /// Not an assertion: prints the cost of one verify. Run with
    /// `cargo test --release --lib auth::token::tests::verify_cost -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn verify_cost() {
        let idp = DevIdp::generate();
        let v = verifier(&idp);
        let token = mint(&idp, &claims());
        let rounds = 2_000;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(v.verify(std::hint::black_box(&token), t0()).unwrap());
        }
        println!(
            "{:.1} us/verify",
            start.elapsed().as_secs_f64() * 1e6 / rounds as f64
        );
    }
}
