//! The audit record of SPEC §11 and its canonical JSON (RFC 8785), which
//! is the leaf the tree hashes. Never keys, PINs, tokens, documents or the
//! certificate itself: its serial and SHA-256 fingerprint only.

use serde::{Deserialize, Serialize};

use super::jcs;

/// What happened (SPEC §11's four kinds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A certificate was issued and used (a signature or seal).
    Issuance,
    /// A request was answered with an error.
    Refusal,
    Revocation,
    Administration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Refused,
}

/// One record; absent fields are left out of the JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The `signature_id` (or certificate id): a UUID.
    pub id: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The gRPC code name of a refusal, e.g. `PERMISSION_DENIED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Who called: the mTLS client, for now the peer address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calling_system: Option<String>,
    /// The activation token's `sub` (the signer's UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `personal` or the seal profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The certificate's serial number, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_serial: Option<String>,
    /// SHA-256 of the certificate's DER, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    /// SHA-256 of each document the signer approved, hex.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub documents: Vec<String>,
    /// `B-B`, `B-T`, `B-LT` or `B-LTA`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// What an administration change changed (no secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    /// RFC 8785 canonical JSON: the bytes of the Merkle leaf.
    pub fn canonical_json(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).expect("a record is plain strings and lists");
        jcs::canonical(&value).expect("a record holds no numbers")
    }

    pub fn parse(json: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(json)
    }
}

/// RFC 3339 UTC time with milliseconds.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn canonical_json_is_sorted_and_round_trips() {
        let record = Record {
            id: "b".into(),
            time: rfc3339(UNIX_EPOCH + Duration::from_millis(1_764_633_600_123)),
            event: Some(EventKind::Issuance),
            outcome: Some(Outcome::Success),
            documents: vec!["00".into()],
            ..Default::default()
        };
        let json = String::from_utf8(record.canonical_json()).unwrap();
        assert_eq!(
            json,
            "{\"documents\":[\"00\"],\"event\":\"issuance\",\"id\":\"b\",\"outcome\":\"success\",\
             \"time\":\"2025-12-02T00:00:00.123Z\"}"
        );
        assert_eq!(Record::parse(json.as_bytes()).unwrap(), record);
    }

    #[test]
    fn dates_across_leap_years() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
