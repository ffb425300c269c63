//! The calling system (SPEC §1): the TLS client certificate a request came
//! with, and the `allowed_clients` of a seal profile (SPEC §12) it must
//! match — by the SHA-256 of the certificate's DER or by its subject DN.
//!
//! Subject DNs are written as in RFC 4514 (most specific RDN first, e.g.
//! `CN=Invoicing,O=Acme A/S,C=DK`) and compared RDN by RDN in the spirit of
//! RFC 4518 `caseIgnoreMatch`: attribute names or OIDs, case, runs of spaces,
//! spaces after `,` `+` `=` and the ASN.1 string type do not matter; order
//! within a multi-valued RDN does not either.

use std::fmt;
use std::str::FromStr;

use const_oid::ObjectIdentifier;
use der::{Decode, Encode, Tag, Tagged};
use sha2::{Digest, Sha256};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::name::Name;

use super::AuthError;

/// Who is calling: the verified TLS client certificate of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallingSystem {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
    /// Its subject DN (RFC 5280 §4.1.2.6) as RFC 4514 writes it.
    pub subject: String,
    name: Dn,
}

impl CallingSystem {
    /// From the DER of a client certificate that TLS has already verified.
    pub fn from_der(der: &[u8]) -> Result<Self, AuthError> {
        let certificate =
            x509_cert::Certificate::from_der(der).map_err(AuthError::ClientCertificate)?;
        let subject = &certificate.tbs_certificate.subject;
        Ok(Self {
            fingerprint: Sha256::digest(der).into(),
            subject: subject.to_string(),
            name: Dn::from_name(subject),
        })
    }

    /// A stable id for logs and the audit record: `sha256:<hex>`.
    pub fn id(&self) -> String {
        format!("sha256:{}", hex::encode(self.fingerprint))
    }
}

#[cfg(test)]
impl CallingSystem {
    /// A calling system with the fingerprint `[n; 32]` and `subject`.
    pub(super) fn test(n: u8, subject: &str) -> Self {
        let name: Name = subject.parse().expect("an RFC 4514 DN");
        Self {
            fingerprint: [n; 32],
            subject: name.to_string(),
            name: Dn::from_name(&name),
        }
    }
}

impl fmt::Display for CallingSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id(), self.subject)
    }
}

/// One entry of a profile's `allowed_clients`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum AllowedClient {
    /// SHA-256 of the certificate DER: 64 hex digits, any case, colons
    /// allowed, optionally after `sha256:`.
    Fingerprint([u8; 32]),
    /// A subject DN (RFC 4514), as written in the configuration.
    Subject { text: String, name: Dn },
}

impl AllowedClient {
    pub fn matches(&self, client: &CallingSystem) -> bool {
        match self {
            AllowedClient::Fingerprint(f) => *f == client.fingerprint,
            AllowedClient::Subject { name, .. } => *name == client.name,
        }
    }
}

impl FromStr for AllowedClient {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, AuthError> {
        let trimmed = s.trim();
        let hex_part = trimmed
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("sha256:"))
            .map_or(trimmed, |_| &trimmed[7..])
            .replace(':', "");
        let mut fingerprint = [0u8; 32];
        if hex::decode_to_slice(&hex_part, &mut fingerprint).is_ok() {
            return Ok(AllowedClient::Fingerprint(fingerprint));
        }
        Dn::parse(trimmed)
            .map(|name| AllowedClient::Subject {
                text: trimmed.to_owned(),
                name,
            })
            .ok_or_else(|| AuthError::BadAllowedClient(s.to_owned()))
    }
}

impl TryFrom<String> for AllowedClient {
    type Error = AuthError;

    fn try_from(s: String) -> Result<Self, AuthError> {
        s.parse()
    }
}

impl fmt::Display for AllowedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowedClient::Fingerprint(fp) => write!(f, "sha256:{}", hex::encode(fp)),
            AllowedClient::Subject { text, .. } => f.write_str(text),
        }
    }
}

/// A DN reduced to what matching compares (RFC 5280 §7.1, RFC 4518): RDNs
/// in certificate order, each a sorted set of (type, normalised value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dn(Vec<Vec<(ObjectIdentifier, String)>>);

impl Dn {
    fn from_name(name: &Name) -> Self {
        Self(
            name.0
                .iter()
                .map(|rdn| rdn_of(rdn.0.iter().map(|atv| (atv.oid, value(&atv.value)))))
                .collect(),
        )
    }

    /// RFC 4514 §3 string form, tolerating spaces around separators;
    /// `None` if it is not one.
    fn parse(text: &str) -> Option<Self> {
        let mut rdns = Vec::new();
        for rdn in split_unescaped(text, b',') {
            let mut values = Vec::new();
            for atv in split_unescaped(rdn, b'+') {
                let (key, val) = atv.split_once('=')?;
                let atv: AttributeTypeAndValue = format!("{}={}", key.trim(), trim_unescaped(val))
                    .parse()
                    .ok()?;
                values.push((atv.oid, value(&atv.value)));
            }
            rdns.push(rdn_of(values.into_iter()));
        }
        // RFC 4514 §2.1: the string starts with the last RDN of the sequence.
        rdns.reverse();
        Some(Self(rdns))
    }
}

fn rdn_of(
    values: impl Iterator<Item = (ObjectIdentifier, String)>,
) -> Vec<(ObjectIdentifier, String)> {
    let mut values: Vec<_> = values.collect();
    values.sort();
    values
}

/// A string value with case and insignificant spaces folded (RFC 4518 §2.6,
/// §7.1); any other value as `#` and the hex of its DER (RFC 4514 §2.4).
fn value(any: &der::Any) -> String {
    let bytes = any.value();
    let text = match any.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::TeletexString
        | Tag::VisibleString => std::str::from_utf8(bytes).ok().map(str::to_owned),
        Tag::BmpString => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    match text {
        Some(text) => text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
        None => format!("#{}", hex::encode(any.to_der().unwrap_or_default())),
    }
}

/// Splits at `separator` where it is not escaped by a backslash (RFC 4514 §2.4).
fn split_unescaped(text: &str, separator: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, b) in text.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            _ if b == separator => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Trims spaces around a value, but keeps a trailing escaped space (`\ `).
fn trim_unescaped(value: &str) -> String {
    let trimmed = value.trim();
    let backslashes = trimmed.bytes().rev().take_while(|b| *b == b'\\').count();
    if backslashes % 2 == 1 {
        format!("{trimmed} ")
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(subject: &str) -> CallingSystem {
        CallingSystem::test(7, subject)
    }

    #[test]
    fn fingerprints_in_any_spelling() {
        let hex = "07".repeat(32);
        let colons = vec!["07"; 32].join(":");
        for text in [
            hex.clone(),
            hex.to_uppercase(),
            colons,
            format!("SHA256:{hex}"),
        ] {
            let allowed: AllowedClient = text.parse().unwrap();
            assert!(allowed.matches(&client("CN=x")), "{text}");
            assert_eq!(allowed.to_string(), format!("sha256:{hex}"));
        }
        let other: AllowedClient = "08".repeat(32).parse().unwrap();
        assert!(!other.matches(&client("CN=x")));
    }

    #[test]
    fn subjects_match_by_rdn_not_by_spelling() {
        let system = client("CN=Invoicing,O=Acme A/S,C=DK");
        for same in [
            "CN=Invoicing,O=Acme A/S,C=DK",
            "cn=invoicing, o=ACME  A/S, c=dk",
            "2.5.4.3=Invoicing,O=Acme A/S,C=DK",
        ] {
            let allowed: AllowedClient = same.parse().unwrap();
            assert!(allowed.matches(&system), "{same}");
        }
        for other in [
            "CN=Invoicing,O=Acme A/S",
            "O=Acme A/S,CN=Invoicing,C=DK",
            "CN=Invoicing2,O=Acme A/S,C=DK",
        ] {
            let allowed: AllowedClient = other.parse().unwrap();
            assert!(!allowed.matches(&system), "{other}");
        }
        let escaped = client("CN=Smith\\, J.,O=Acme");
        let allowed: AllowedClient = "CN=Smith\\, J., O=Acme".parse().unwrap();
        assert!(allowed.matches(&escaped));
    }

    #[test]
    fn multi_valued_rdns_ignore_their_order() {
        let system = client("CN=a+OU=b,O=c");
        let allowed: AllowedClient = "OU=b + CN=a,O=c".parse().unwrap();
        assert!(allowed.matches(&system));
    }

    #[test]
    fn nonsense_is_a_configuration_error() {
        for bad in ["", "abc", "07:07", "NOSUCHATTR=x", "CN"] {
            let err = bad.parse::<AllowedClient>().unwrap_err();
            assert!(matches!(err, AuthError::BadAllowedClient(_)), "{bad}");
        }
    }

    #[test]
    fn id_is_the_prefixed_fingerprint() {
        let system = client("CN=x");
        assert_eq!(system.id(), format!("sha256:{}", "07".repeat(32)));
        assert_eq!(system.to_string(), format!("{} (CN=x)", system.id()));
    }
}
