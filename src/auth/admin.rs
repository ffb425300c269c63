//! The administration token of SPEC §9: a JWS from the trusted IdP (§3's
//! keys) with `aud` = the administration audience, `sub`, `org_cvr` and
//! `roles`. `user_admin` may administer its own organisation; anyone else
//! only issue and renew a user certificate ordered for their own `sub`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::json;

use super::dev::DevIdp;
use super::{AuthError, Cvr, Verifier};
use crate::{Error, ErrorKind};

/// Default `aud` of administration tokens.
pub const DEFAULT_AUDIENCE: &str = "qsign-admin";
/// The role that administers an organisation.
pub const USER_ADMIN: &str = "user_admin";

/// A verified administration caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Administrator {
    pub sub: String,
    pub org_cvr: Cvr,
    pub roles: Vec<String>,
}

impl Administrator {
    pub fn is_user_admin(&self) -> bool {
        self.roles.iter().any(|r| r == USER_ADMIN)
    }

    /// PERMISSION_DENIED unless a `user_admin` of `cvr`.
    pub fn require_admin_of(&self, cvr: &str) -> Result<(), Error> {
        if self.org_cvr.as_str() != cvr {
            return Err(denied(
                "the certificate or profile belongs to another organisation",
            ));
        }
        if !self.is_user_admin() {
            return Err(denied("this needs the role user_admin of the organisation"));
        }
        Ok(())
    }
}

pub fn denied(why: &'static str) -> Error {
    Error::new(ErrorKind::PermissionDenied, why)
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    sub: Option<String>,
    org_cvr: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    exp: Option<u64>,
}

/// Verifies `token` (the bearer) for `audience` at `now`: UNAUTHENTICATED
/// for a missing, bad, expired or foreign token.
pub fn verify(
    verifier: &Verifier,
    token: &str,
    audience: &str,
    now: SystemTime,
) -> Result<Administrator, Error> {
    let unauthenticated = |why: String| {
        Error::new(
            ErrorKind::Unauthenticated,
            format!("administration token: {why}"),
        )
    };
    let claims: Claims = verifier
        .verified_payload(token)
        .map_err(|e: AuthError| unauthenticated(e.to_string()))?;
    if claims.iss.as_deref() != Some(verifier.policy().issuer.as_str()) {
        return Err(unauthenticated("wrong issuer".into()));
    }
    let audience_ok = match &claims.aud {
        Some(serde_json::Value::String(a)) => a == audience,
        Some(serde_json::Value::Array(list)) => list.iter().any(|a| a == audience),
        _ => false,
    };
    if !audience_ok {
        return Err(unauthenticated(format!("aud must be {audience:?}")));
    }
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let leeway = verifier.policy().leeway.as_secs();
    match claims.exp {
        Some(exp) if exp + leeway > now_secs => {}
        _ => return Err(unauthenticated("expired or without exp".into())),
    }
    let sub = claims.sub.filter(|s| !s.is_empty() && s.len() <= 255);
    let sub = sub.ok_or_else(|| unauthenticated("no sub".into()))?;
    let org_cvr = claims
        .org_cvr
        .and_then(|c| c.parse::<Cvr>().ok())
        .ok_or_else(|| unauthenticated("org_cvr must be 8 digits".into()))?;
    Ok(Administrator {
        sub,
        org_cvr,
        roles: claims.roles,
    })
}

/// DEVELOPMENT: an administration token from the dev IdP (like the CLI's
/// `--dev-identity` activation tokens).
pub fn mint_dev(
    idp: &DevIdp,
    issuer: &str,
    audience: &str,
    who: (&str, &str, &[String]),
    lifetime: Duration,
) -> Result<String, AuthError> {
    let (sub, org_cvr, roles) = who;
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| AuthError::Config("the clock is before 1970".into()))?
        .as_secs();
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": idp.kid()});
    let payload = json!({
        "iss": issuer, "aud": audience, "sub": sub, "org_cvr": org_cvr, "roles": roles,
        "iat": iat, "exp": iat + lifetime.as_secs(),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    Ok(idp.sign_compact(&header, &payload))
}
