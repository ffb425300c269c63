//! The registry's records (SPEC §9), as the flow and the store share them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// SPEC §9 kinds: EN 319 412-3 organisation and system certificates, EN
/// 319 412-2 user certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Organization,
    System,
    User,
}

/// SPEC §9 status; EXPIRED is VALID past `not_after`, computed on reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Status {
    Pending,
    Valid,
    Revoked,
    Expired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Retrieval {
    Browser,
    Api,
}

macro_rules! text_enum {
    ($t:ty { $($v:ident = $s:literal),+ }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)+ _ => None }
            }
        }
    };
}
text_enum!(Kind { Organization = "ORGANIZATION", System = "SYSTEM", User = "USER" });
text_enum!(Status { Pending = "PENDING", Valid = "VALID", Revoked = "REVOKED", Expired = "EXPIRED" });
text_enum!(Retrieval { Browser = "BROWSER", Api = "API" });

/// RFC 5280 §5.3.1 CRLReason codes a revocation may give. certificateHold
/// (6) and removeFromCRL (8) are not offered: a revocation is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Reason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    PrivilegeWithdrawn = 9,
}

impl Reason {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<Self> {
        [
            Self::Unspecified,
            Self::KeyCompromise,
            Self::CaCompromise,
            Self::AffiliationChanged,
            Self::Superseded,
            Self::CessationOfOperation,
            Self::PrivilegeWithdrawn,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The RFC 5280 ASN.1 name, for the CSV and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
        }
    }
}

/// What an administrator orders (SPEC §9 OrderCertificate).
#[derive(Clone, Debug, Default)]
pub struct Order {
    pub kind: Option<Kind>,
    pub name: String,
    pub contact_name: String,
    pub contact_email: String,
    pub certificate_email: String,
    pub system_name: String,
    pub user_sub: String,
    pub retrieval: Option<Retrieval>,
    pub publish: bool,
}

/// One certificate of the registry; the issued fields are empty while it
/// is pending.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: uuid::Uuid,
    pub cvr: String,
    pub kind: Kind,
    pub name: String,
    /// As stored: PENDING, VALID or REVOKED (see [`Record::status`]).
    pub stored_status: Status,
    pub serial: String,
    pub subject: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub contact_name: String,
    pub contact_email: String,
    pub certificate_email: String,
    pub system_name: String,
    pub user_sub: String,
    pub retrieval: Retrieval,
    pub publish: bool,
    pub der: Vec<u8>,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<Reason>,
    /// Bumped by every change; guards renew against a concurrent revoke.
    pub version: i64,
}

impl Record {
    /// SPEC §9 status at `now`: a valid certificate past notAfter is EXPIRED.
    pub fn status(&self, now: i64) -> Status {
        match (self.stored_status, self.not_after) {
            (Status::Valid, Some(after)) if after < now => Status::Expired,
            (status, _) => status,
        }
    }
}

/// A freshly signed certificate, before the store records it.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    pub serial: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub der: Vec<u8>,
}

/// Which certificates a search or export selects (SPEC §9).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    pub query: String,
    pub kind: Option<Kind>,
    pub status: Option<Status>,
}

/// A revoked, unexpired serial for the CRL (RFC 5280 §5.1.2.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedSerial {
    pub serial: String,
    pub revoked_at: i64,
    pub reason: Reason,
}

/// What OCSP says about a serial of the organisation CA (RFC 6960 §2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialStatus {
    Good,
    Revoked { at: i64, reason: Reason },
    Unknown,
}

pub fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub fn from_unix(seconds: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds.max(0).unsigned_abs())
}

/// RFC 3339 UTC, e.g. `2026-12-02T06:40:00Z`.
pub fn rfc3339(seconds: i64) -> String {
    der::DateTime::from_unix_duration(Duration::from_secs(seconds.max(0).unsigned_abs()))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minutes(),
                t.seconds()
            )
        })
        .unwrap_or_default()
}
