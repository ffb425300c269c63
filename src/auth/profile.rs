//! Organisation profiles and the rights they grant (SPEC §4).
//!
//! A profile is trusted configuration: its `organization_name` and `cvr` go
//! into the certificate subject (SPEC §5), never the token's `org_name`.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::{Activation, AllowedClient, AuthError, CallingSystem, Signatory};

/// A profile id: 1 to 64 characters from `A-Z a-z 0-9 . _ -`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct ProfileId(String);

impl ProfileId {
    pub const MAX_LEN: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        (1..=Self::MAX_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }
}

impl FromStr for ProfileId {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AuthError::BadProfileId)
        }
    }
}

impl TryFrom<&str> for ProfileId {
    type Error = AuthError;

    fn try_from(s: &str) -> Result<Self, AuthError> {
        s.parse()
    }
}

impl TryFrom<String> for ProfileId {
    type Error = AuthError;

    fn try_from(s: String) -> Result<Self, AuthError> {
        if Self::is_valid(&s) {
            Ok(Self(s))
        } else {
            Err(AuthError::BadProfileId)
        }
    }
}

/// Lets a `HashMap<ProfileId, _>` be searched with a `&str`.
impl Borrow<str> for ProfileId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Danish company registration number (CVR): exactly 8 ASCII digits.
/// The modulus-11 check digit is not verified.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Cvr(String);

impl Cvr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit())
    }
}

impl FromStr for Cvr {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(AuthError::BadCvr)
        }
    }
}

impl TryFrom<&str> for Cvr {
    type Error = AuthError;

    fn try_from(s: &str) -> Result<Self, AuthError> {
        s.parse()
    }
}

impl TryFrom<String> for Cvr {
    type Error = AuthError;

    fn try_from(s: String) -> Result<Self, AuthError> {
        s.parse()
    }
}

impl fmt::Display for Cvr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a profile allows (SPEC §4: `allow` ⊆ {`sign`, `seal`}).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Personal signatures of the organisation's employees.
    Sign,
    /// Organisation seals under this profile.
    Seal,
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Right::Sign => "sign",
            Right::Seal => "seal",
        })
    }
}

/// One organisation profile, as configured (SPEC §4).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub id: ProfileId,
    pub organization_name: String,
    pub cvr: Cvr,
    pub allow: Vec<Right>,
    /// SPEC §12: the client certificates that may request seals under this
    /// profile; empty: any caller.
    #[serde(default)]
    pub allowed_clients: Vec<AllowedClient>,
}

impl Profile {
    pub fn allows(&self, right: Right) -> bool {
        self.allow.contains(&right)
    }

    /// Whether `client` may request seals under this profile (SPEC §12).
    pub fn admits(&self, client: Option<&CallingSystem>) -> bool {
        self.allowed_clients.is_empty()
            || client.is_some_and(|c| self.allowed_clients.iter().any(|a| a.matches(c)))
    }
}

/// The validated set of profiles.
#[derive(Clone, Debug)]
pub struct Profiles {
    by_id: HashMap<ProfileId, Profile>,
    /// The one profile per CVR that allows personal signatures.
    personal: HashMap<Cvr, ProfileId>,
}

impl Profiles {
    /// Refuses duplicate ids, empty organisation names, profiles that allow
    /// nothing, and two `sign` profiles for one CVR (which would make the `O`
    /// of personal certificates ambiguous).
    pub fn new(profiles: Vec<Profile>) -> Result<Self, AuthError> {
        let mut by_id = HashMap::with_capacity(profiles.len());
        let mut personal = HashMap::new();
        for mut profile in profiles {
            check_profile(&profile)?;
            // UAX #15: the certificate carries the NFC form.
            profile.organization_name = crate::pki::name::nfc(&profile.organization_name);
            if profile.allows(Right::Sign) {
                if let Some(other) = personal.insert(profile.cvr.clone(), profile.id.clone()) {
                    return Err(AuthError::Config(format!(
                        "profiles '{other}' and '{}' both allow 'sign' for CVR {}; \
                         keep one so personal certificates name one organisation",
                        profile.id, profile.cvr
                    )));
                }
            }
            let id = profile.id.clone();
            if by_id.insert(id.clone(), profile).is_some() {
                return Err(AuthError::Config(format!(
                    "profile '{id}' is defined twice"
                )));
            }
        }
        Ok(Self { by_id, personal })
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.by_id.get(id)
    }

    /// Every profile, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Decides who signs (SPEC §4). `None` or `Some("")` asks for a personal
    /// signature, `Some(id)` for a seal under profile `id`, which the calling
    /// system `client` must be allowed to request (SPEC §12).
    ///
    /// Errors: [`AuthError::NotAllowed`] (PERMISSION_DENIED) when a rule
    /// fails, including a personal signature whose token lacks `given_name`
    /// or `family_name` (the token is authentic, it just does not allow
    /// this); [`AuthError::UnknownProfile`] / [`AuthError::BadProfileId`]
    /// (INVALID_ARGUMENT) for a seal profile that is not configured.
    pub fn authorize(
        &self,
        activation: &Activation,
        seal_profile: Option<&str>,
        client: Option<&CallingSystem>,
    ) -> Result<Signatory, AuthError> {
        match seal_profile {
            None | Some("") => self.authorize_person(activation),
            Some(id) => self.authorize_seal(activation, id, client),
        }
    }

    fn authorize_person(&self, activation: &Activation) -> Result<Signatory, AuthError> {
        let cvr = &activation.org_cvr;
        let profile = self
            .personal
            .get(cvr)
            .and_then(|id| self.by_id.get(id))
            .ok_or_else(|| {
                AuthError::NotAllowed(format!(
                    "no profile allows personal signatures for CVR {cvr}"
                ))
            })?;
        let (Some(given_name), Some(family_name)) =
            (&activation.given_name, &activation.family_name)
        else {
            return Err(AuthError::NotAllowed(
                "a personal signature needs given_name and family_name in the activation token"
                    .into(),
            ));
        };
        Ok(Signatory::Person {
            given_name: given_name.clone(),
            family_name: family_name.clone(),
            subject: activation.subject,
            organization_name: profile.organization_name.clone(),
            cvr: profile.cvr.clone(),
        })
    }

    fn authorize_seal(
        &self,
        activation: &Activation,
        id: &str,
        client: Option<&CallingSystem>,
    ) -> Result<Signatory, AuthError> {
        let id: ProfileId = id.parse()?;
        let profile = self
            .by_id
            .get(&id)
            .ok_or_else(|| AuthError::UnknownProfile(id.clone()))?;
        if !profile.allows(Right::Seal) {
            return Err(AuthError::NotAllowed(format!(
                "profile '{id}' does not allow seals"
            )));
        }
        if !activation.seal_profiles.contains(&id) {
            return Err(AuthError::NotAllowed(format!(
                "the activation token does not list seal profile '{id}' in seal_profiles"
            )));
        }
        if profile.cvr != activation.org_cvr {
            return Err(AuthError::NotAllowed(format!(
                "profile '{id}' belongs to CVR {}, the activation token to CVR {}",
                profile.cvr, activation.org_cvr
            )));
        }
        if !profile.admits(client) {
            return Err(AuthError::NotAllowed(match client {
                Some(client) => format!(
                    "seal profile '{id}' does not allow the calling system {client}; \
                     add its fingerprint or subject to the profile's allowed_clients"
                ),
                None => format!(
                    "seal profile '{id}' accepts only the client certificates in its \
                     allowed_clients; connect with one of them (mTLS)"
                ),
            }));
        }
        Ok(Signatory::Seal {
            organization_name: profile.organization_name.clone(),
            cvr: profile.cvr.clone(),
            profile: id,
        })
    }
}

fn check_profile(profile: &Profile) -> Result<(), AuthError> {
    let id = &profile.id;
    if profile.organization_name.trim().is_empty() {
        return Err(AuthError::Config(format!(
            "profile '{id}' has an empty organization_name"
        )));
    }
    if let Some(character) = crate::pki::name::forbidden_character(&profile.organization_name) {
        return Err(AuthError::Config(format!(
            "profile '{id}' has {character} in organization_name; remove it"
        )));
    }
    if profile.allow.is_empty() {
        return Err(AuthError::Config(format!(
            "profile '{id}' allows nothing; set allow = [\"sign\"], [\"seal\"] or both"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::ErrorKind;

    fn profile(id: &str, cvr: &str, allow: &[Right]) -> Profile {
        Profile {
            id: id.parse().unwrap(),
            organization_name: format!("{id} A/S"),
            cvr: cvr.parse().unwrap(),
            allow: allow.to_vec(),
            allowed_clients: vec![],
        }
    }

    fn profiles() -> Profiles {
        Profiles::new(vec![
            profile("acme", "12345678", &[Right::Sign, Right::Seal]),
            profile("acme-invoices", "12345678", &[Right::Seal]),
            profile("other", "87654321", &[Right::Sign, Right::Seal]),
            profile("acme-nosign", "11111111", &[Right::Sign]),
        ])
        .unwrap()
    }

    fn activation(seal_profiles: &[&str]) -> Activation {
        Activation {
            jti: "j".into(),
            subject: uuid::Uuid::nil(),
            given_name: Some("Karen".into()),
            family_name: Some("Blixen".into()),
            org_cvr: "12345678".parse().unwrap(),
            org_name: "Token's own name".into(),
            seal_profiles: seal_profiles.iter().map(|s| s.parse().unwrap()).collect(),
            digests: vec![[0; 32]],
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1),
        }
    }

    #[test]
    fn personal_signature_uses_the_profile_organisation() {
        let signatory = profiles().authorize(&activation(&[]), None, None).unwrap();
        assert_eq!(
            signatory,
            Signatory::Person {
                given_name: "Karen".into(),
                family_name: "Blixen".into(),
                subject: uuid::Uuid::nil(),
                organization_name: "acme A/S".into(),
                cvr: "12345678".parse().unwrap(),
            }
        );
        // Empty string is the proto's "no seal profile".
        assert_eq!(
            profiles()
                .authorize(&activation(&[]), Some(""), None)
                .unwrap(),
            signatory
        );
    }

    #[test]
    fn personal_signature_needs_a_sign_profile_for_the_cvr() {
        let mut a = activation(&[]);
        a.org_cvr = "99999999".parse().unwrap();
        let err = profiles().authorize(&a, None, None).unwrap_err();
        assert!(matches!(err, AuthError::NotAllowed(ref m) if m.contains("99999999")));
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn personal_signature_needs_both_names() {
        let mut a = activation(&[]);
        a.family_name = None;
        let err = profiles().authorize(&a, None, None).unwrap_err();
        assert!(matches!(err, AuthError::NotAllowed(ref m) if m.contains("family_name")));
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn seal_listed_in_token_is_allowed() {
        let signatory = profiles()
            .authorize(&activation(&["acme-invoices"]), Some("acme-invoices"), None)
            .unwrap();
        assert_eq!(
            signatory,
            Signatory::Seal {
                organization_name: "acme-invoices A/S".into(),
                cvr: "12345678".parse().unwrap(),
                profile: "acme-invoices".parse().unwrap(),
            }
        );
    }

    #[test]
    fn seal_not_listed_in_token_is_refused() {
        let err = profiles()
            .authorize(&activation(&["acme"]), Some("acme-invoices"), None)
            .unwrap_err();
        assert!(matches!(err, AuthError::NotAllowed(ref m) if m.contains("does not list")));
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn seal_needs_the_seal_right() {
        let mut a = activation(&["acme-nosign"]);
        a.org_cvr = "11111111".parse().unwrap();
        let err = profiles()
            .authorize(&a, Some("acme-nosign"), None)
            .unwrap_err();
        assert!(matches!(err, AuthError::NotAllowed(ref m) if m.contains("does not allow seals")));
    }

    #[test]
    fn seal_needs_the_same_cvr() {
        let err = profiles()
            .authorize(&activation(&["other"]), Some("other"), None)
            .unwrap_err();
        assert!(matches!(err, AuthError::NotAllowed(ref m) if m.contains("87654321")));
    }

    fn caller(n: u8) -> CallingSystem {
        CallingSystem::test(n, "CN=Invoicing,O=Acme A/S")
    }

    #[test]
    fn seal_allowed_clients_admit_only_listed_callers() {
        let mut restricted = profile("acme-invoices", "12345678", &[Right::Seal]);
        restricted.allowed_clients = vec![format!("sha256:{}", "01".repeat(32)).parse().unwrap()];
        let profiles = Profiles::new(vec![restricted]).unwrap();
        let a = activation(&["acme-invoices"]);
        let seal = Some("acme-invoices");
        assert!(profiles.authorize(&a, seal, Some(&caller(1))).is_ok());
        for (client, says) in [
            (
                Some(caller(2)),
                "does not allow the calling system sha256:0202",
            ),
            (None, "connect with one of them"),
        ] {
            let err = profiles.authorize(&a, seal, client.as_ref()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::PermissionDenied);
            assert!(err.to_string().contains(says), "{err}");
        }
        // Personal signatures do not look at the calling system.
        let mut both = profile("acme", "12345678", &[Right::Sign]);
        both.allowed_clients = vec!["CN=nobody".parse().unwrap()];
        let profiles = Profiles::new(vec![both]).unwrap();
        assert!(profiles.authorize(&activation(&[]), None, None).is_ok());
    }

    #[test]
    fn unknown_or_invalid_seal_profile_is_invalid_argument() {
        let err = profiles()
            .authorize(&activation(&["nope"]), Some("nope"), None)
            .unwrap_err();
        assert!(matches!(err, AuthError::UnknownProfile(ref id) if id.as_str() == "nope"));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert_eq!(
            crate::Error::from(err).message(),
            "unknown seal profile 'nope'"
        );
        let err = profiles()
            .authorize(&activation(&[]), Some("a b"), None)
            .unwrap_err();
        assert!(matches!(err, AuthError::BadProfileId));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn profiles_refuse_bad_configuration() {
        let dup = vec![
            profile("a", "12345678", &[Right::Seal]),
            profile("a", "87654321", &[Right::Seal]),
        ];
        assert!(matches!(Profiles::new(dup), Err(AuthError::Config(m)) if m.contains("twice")));
        let mut unnamed = profile("a", "12345678", &[Right::Seal]);
        unnamed.organization_name = "  ".into();
        assert!(Profiles::new(vec![unnamed]).is_err());
        assert!(Profiles::new(vec![profile("a", "12345678", &[])]).is_err());
        let mut bidi = profile("a", "12345678", &[Right::Seal]);
        bidi.organization_name = "Acme\u{202E}S/A".into();
        let err = Profiles::new(vec![bidi]).unwrap_err();
        assert!(matches!(err, AuthError::Config(m) if m.contains("U+202E")));
        let mut decomposed = profile("a", "12345678", &[Right::Seal]);
        decomposed.organization_name = "A\u{30A}rhus A/S".into();
        let profiles = Profiles::new(vec![decomposed]).unwrap();
        let name = &profiles.get("a").unwrap().organization_name;
        assert_eq!(name, "\u{C5}rhus A/S", "NFC (UAX #15)");
        let two_sign = vec![
            profile("a", "12345678", &[Right::Sign]),
            profile("b", "12345678", &[Right::Sign]),
        ];
        let err = Profiles::new(two_sign).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[test]
    fn cvr_is_exactly_eight_digits() {
        assert_eq!("01234567".parse::<Cvr>().unwrap().to_string(), "01234567");
        for bad in [
            "",
            "1234567",
            "123456789",
            "1234567a",
            " 1234567",
            "１２３４５６７８",
        ] {
            assert!(bad.parse::<Cvr>().is_err(), "{bad:?} accepted");
        }
        assert!(Cvr::try_from("12345678").is_ok());
    }

    #[test]
    fn profile_id_syntax() {
        assert!("Acme_seal-2.v1".parse::<ProfileId>().is_ok());
        assert!("a".repeat(64).parse::<ProfileId>().is_ok());
        for bad in ["", "a b", "a/b", "æ", &"a".repeat(65)] {
            assert!(bad.parse::<ProfileId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn profiles_deserialize_from_toml_shaped_json() {
        let json = r#"{"id":"acme","organization_name":"Acme A/S","cvr":"12345678","allow":["sign","seal"]}"#;
        let p: Profile = serde_json::from_str(json).unwrap();
        assert!(p.allows(Right::Sign) && p.allows(Right::Seal));
        let bad_cvr = json.replace("12345678", "1234");
        assert!(serde_json::from_str::<Profile>(&bad_cvr).is_err());
        let clients = json.replace(
            r#""allow""#,
            r#""allowed_clients":["CN=Invoicing,O=Acme A/S","AB:cd"],"allow""#,
        );
        assert!(serde_json::from_str::<Profile>(&clients).is_err(), "AB:cd");
        let clients = clients.replace("AB:cd", &"ab".repeat(32));
        let p: Profile = serde_json::from_str(&clients).unwrap();
        assert_eq!(p.allowed_clients.len(), 2);
    }
}
