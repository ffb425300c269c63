//! Configuration: one TOML file, parsed strictly (unknown keys are errors),
//! then validated once into [`Config`]. Relative paths are relative to the
//! file's directory. `qsign.toml` in a dev state dir documents every knob.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Profile;
use crate::pki::{CertificatePolicy, MAX_LIFETIME};
use crate::tsa::TsaSettings;
use crate::Error;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    hsm: HsmFile,
    ca: CaFile,
    #[serde(default)]
    certificate: CertificateFile,
    token: TokenFile,
    #[serde(default)]
    limits: Limits,
    tls: Option<TlsFile>,
    tsa: Option<TsaFile>,
    ocsp: Option<OcspFile>,
    database: Option<DatabaseFile>,
    audit: Option<AuditFile>,
    #[serde(default)]
    profiles: Vec<Profile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseFile {
    url: String,
    #[serde(default = "default_max_connections")]
    max_connections: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    origin: String,
    #[serde(default = "default_audit_key_label")]
    key_label: String,
    #[serde(default = "default_checkpoint_interval_millis")]
    checkpoint_interval_millis: u64,
    #[serde(default = "default_audit_vkey")]
    vkey: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HsmFile {
    module: PathBuf,
    token_label: String,
    pin_file: Option<PathBuf>,
    pin_env: Option<String>,
    #[serde(default = "default_sessions")]
    sessions: usize,
    #[serde(default = "default_issuing_key_label")]
    issuing_key_label: String,
    #[serde(default = "default_ephemeral_key_label")]
    ephemeral_key_label: String,
    softhsm_conf: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    root_certificate: PathBuf,
    issuing_certificate: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CertificateFile {
    lifetime_minutes: u64,
    backdate_seconds: u64,
    pds_url: String,
    serial_number_prefix: String,
}

impl Default for CertificateFile {
    fn default() -> Self {
        Self {
            lifetime_minutes: 10,
            backdate_seconds: 60,
            pds_url: "https://qsign.example/pds/en".into(),
            serial_number_prefix: "UI".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    issuer: String,
    audience: String,
    jwks_file: PathBuf,
    #[serde(default = "default_leeway")]
    leeway_seconds: u64,
    #[serde(default = "default_token_lifetime")]
    max_lifetime_seconds: u64,
    replay_journal: Option<PathBuf>,
}

/// Request limits (SPEC §7 RESOURCE_EXHAUSTED).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Documents in one `SignDetached` request.
    pub max_batch: usize,
    /// Bytes of one PDF, or of all contents of one batch.
    pub max_document_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch: 100,
            max_document_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    certificate: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TsaFile {
    #[serde(default = "default_tsa_key_label")]
    key_label: String,
    certificate: PathBuf,
    policy: String,
    #[serde(default = "default_accuracy_millis")]
    accuracy_millis: u64,
    listen: Option<SocketAddr>,
    #[serde(default)]
    urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OcspFile {
    #[serde(default = "default_ocsp_key_label")]
    key_label: String,
    certificate: PathBuf,
    url: String,
}

/// Where the HSM PIN comes from; never the file itself.
#[derive(Clone, Debug)]
pub enum PinSource {
    File(PathBuf),
    Env(String),
}

#[derive(Clone, Debug)]
pub struct HsmConfig {
    pub module: PathBuf,
    pub token_label: String,
    pub pin: PinSource,
    pub sessions: usize,
    pub issuing_key_label: String,
    pub ephemeral_key_label: String,
    pub softhsm_conf: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct TokenConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: PathBuf,
    pub leeway: Duration,
    pub max_lifetime: Duration,
    /// Spent tokens on disk (survives restarts); none = memory only.
    pub replay_journal: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// `[ocsp]`: the alternative to noRevAvail (SPEC §5): ephemeral
/// certificates name `url`, and B-LT embeds a response of the responder.
#[derive(Clone, Debug)]
pub struct OcspConfig {
    /// Label of the responder's persistent private key in the token.
    pub key_label: String,
    /// Its certificate, issued by the issuing CA (`qsign init-ocsp`).
    pub certificate: PathBuf,
    /// RFC 6960 §3.1 / App. A: the responder's http:// URL.
    pub url: String,
}

/// `[tsa]`: the built-in time-stamping authority and external ones.
#[derive(Clone, Debug)]
pub struct TsaConfig {
    pub settings: TsaSettings,
    /// The TSA certificate (PEM), checked against the key at start.
    pub certificate: PathBuf,
    /// RFC 3161 §3.4 HTTP endpoint; none without it.
    pub listen: Option<SocketAddr>,
    /// External TSAs (http), tried in order instead of the built-in one
    /// when not empty.
    pub urls: Vec<String>,
}

/// `[database]`: spent tokens, the audit log and the registry (SPEC §9,
/// §11, §12). A relative `sqlite://` path is relative to the file.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

/// `[audit]` (SPEC §11): the log's origin and key, checkpoint interval, and
/// where the verifier key is written (`qsign init-audit`, the development
/// bootstrap) and read (`qsign audit verify`). Needs `[database]`.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub settings: crate::audit::AuditSettings,
    pub vkey: PathBuf,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub hsm: HsmConfig,
    pub root_certificate: PathBuf,
    pub issuing_certificate: PathBuf,
    pub certificate: CertificatePolicy,
    pub token: TokenConfig,
    pub limits: Limits,
    pub tls: Option<TlsConfig>,
    /// None: no time-stamping authority (levels above B-B are refused).
    pub tsa: Option<TsaConfig>,
    /// None: certificates carry noRevAvail (the default).
    pub ocsp: Option<OcspConfig>,
    /// None: no database; spent tokens go to `[token] replay_journal`.
    pub database: Option<DatabaseConfig>,
    /// None: no audit log (tests' default cores, benches).
    pub audit: Option<AuditConfig>,
    pub profiles: Vec<Profile>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::invalid_argument(format!("cannot read configuration {}", path.display()))
                .with_source(e)
        })?;
        let file: File = toml::from_str(&text).map_err(|e| {
            Error::invalid_argument(format!("configuration {} is invalid: {e}", path.display()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::validate(file, base)
    }

    fn validate(file: File, base: &Path) -> Result<Self, Error> {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_owned()
            } else {
                base.join(p)
            }
        };
        let pin = match (&file.hsm.pin_file, &file.hsm.pin_env) {
            (Some(f), None) => PinSource::File(resolve(f)),
            (None, Some(v)) => PinSource::Env(v.clone()),
            _ => return Err(invalid("[hsm] needs exactly one of pin_file or pin_env")),
        };
        let c = &file.certificate;
        let lifetime = Duration::from_secs(c.lifetime_minutes * 60);
        if lifetime.is_zero() || lifetime > MAX_LIFETIME {
            return Err(invalid(
                "[certificate] lifetime_minutes must be between 1 and 60",
            ));
        }
        if !c.pds_url.starts_with("https://") || c.pds_url.len() > crate::pki::MAX_PDS_URL_LEN {
            return Err(invalid(
                "[certificate] pds_url must be an https URL of at most 256 bytes (EN 319 412-5 §4.3.4)",
            ));
        }
        if c.serial_number_prefix.is_empty()
            || !c
                .serial_number_prefix
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "[certificate] serial_number_prefix must be letters or digits, e.g. \"UI\"",
            ));
        }
        if file.hsm.sessions == 0 || file.limits.max_batch == 0 {
            return Err(invalid(
                "[hsm] sessions and [limits] max_batch must be at least 1",
            ));
        }
        Ok(Self {
            listen: file.listen,
            hsm: HsmConfig {
                module: resolve(&file.hsm.module),
                token_label: file.hsm.token_label,
                pin,
                sessions: file.hsm.sessions,
                issuing_key_label: file.hsm.issuing_key_label,
                ephemeral_key_label: file.hsm.ephemeral_key_label,
                softhsm_conf: file.hsm.softhsm_conf.as_deref().map(resolve),
            },
            root_certificate: resolve(&file.ca.root_certificate),
            issuing_certificate: resolve(&file.ca.issuing_certificate),
            certificate: CertificatePolicy {
                lifetime,
                backdate: Duration::from_secs(c.backdate_seconds),
                pds_url: c.pds_url.clone(),
                serial_number_prefix: c.serial_number_prefix.clone(),
                ocsp_url: None,
            },
            token: TokenConfig {
                issuer: file.token.issuer,
                audience: file.token.audience,
                jwks_file: resolve(&file.token.jwks_file),
                leeway: Duration::from_secs(file.token.leeway_seconds),
                max_lifetime: Duration::from_secs(file.token.max_lifetime_seconds),
                replay_journal: file.token.replay_journal.as_deref().map(resolve),
            },
            limits: file.limits,
            tls: file.tls.map(|t| TlsConfig {
                certificate: resolve(&t.certificate),
                key: resolve(&t.key),
                client_ca: t.client_ca.as_deref().map(resolve),
            }),
            tsa: file.tsa.map(|t| tsa(t, &resolve)).transpose()?,
            ocsp: file.ocsp.map(|o| ocsp(o, &resolve)).transpose()?,
            audit: file.audit.map(|a| audit(a, &resolve)).transpose()?,
            database: file.database.map(|d| database(d, &resolve)).transpose()?,
            profiles: file.profiles,
        })
    }
}

fn tsa(file: TsaFile, resolve: &impl Fn(&Path) -> PathBuf) -> Result<TsaConfig, Error> {
    let policy = const_oid::ObjectIdentifier::new(&file.policy).map_err(|_| {
        invalid("[tsa] policy must be an object identifier such as \"1.3.6.1.4.1.32473.1.1\"")
    })?;
    if !(1..=1000).contains(&file.accuracy_millis) {
        return Err(invalid(
            "[tsa] accuracy_millis must be between 1 and 1000 (EN 319 421's baseline \
             policy asks for one second or better)",
        ));
    }
    if file.urls.iter().any(|u| !u.starts_with("http://")) {
        return Err(invalid(
            "[tsa] urls must be http:// URLs (https is not supported)",
        ));
    }
    Ok(TsaConfig {
        settings: TsaSettings {
            key_label: file.key_label,
            policy,
            accuracy: Duration::from_millis(file.accuracy_millis),
        },
        certificate: resolve(&file.certificate),
        listen: file.listen,
        urls: file.urls,
    })
}

fn invalid(message: &'static str) -> Error {
    Error::invalid_argument(message)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
/// About one session per core: SoftHSM works inside this process.
fn default_sessions() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}
fn default_issuing_key_label() -> String {
    "qsign-issuing-ca".into()
}
fn default_ephemeral_key_label() -> String {
    "qsign-ephemeral".into()
}
fn ocsp(file: OcspFile, resolve: &impl Fn(&Path) -> PathBuf) -> Result<OcspConfig, Error> {
    // RFC 6960 Appendix A: OCSP over HTTP; the URL goes into every
    // certificate, so it is bounded like the PDS URL.
    if !file.url.starts_with("http://") || file.url.len() > crate::pki::MAX_PDS_URL_LEN {
        return Err(invalid(
            "[ocsp] url must be an http:// URL of at most 256 bytes (RFC 6960 Appendix A)",
        ));
    }
    Ok(OcspConfig {
        key_label: file.key_label,
        certificate: resolve(&file.certificate),
        url: file.url,
    })
}

fn database(
    file: DatabaseFile,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<DatabaseConfig, Error> {
    let url = match file.url.strip_prefix("sqlite://") {
        Some(rest) if !rest.starts_with('/') => {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let query = if query.is_empty() { "mode=rwc" } else { query };
            format!("sqlite://{}?{query}", resolve(Path::new(path)).display())
        }
        _ => file.url,
    };
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres:")
        || url.starts_with("postgresql:"))
    {
        return Err(invalid(
            "[database] url must be sqlite://FILE or postgres://USER@HOST/DB",
        ));
    }
    if file.max_connections == 0 {
        return Err(invalid("[database] max_connections must be at least 1"));
    }
    Ok(DatabaseConfig {
        url,
        max_connections: file.max_connections,
    })
}

fn audit(file: AuditFile, resolve: &impl Fn(&Path) -> PathBuf) -> Result<AuditConfig, Error> {
    // C2SP signed-note: a key name has no spaces or '+'.
    if file.origin.is_empty() || file.origin.contains([' ', '+', '\n', '\t']) {
        return Err(invalid(
            "[audit] origin must be a name without spaces or '+', e.g. \"qsign.example/audit\"",
        ));
    }
    Ok(AuditConfig {
        settings: crate::audit::AuditSettings {
            origin: file.origin,
            key_label: file.key_label,
            checkpoint_interval: Duration::from_millis(file.checkpoint_interval_millis),
        },
        vkey: resolve(&file.vkey),
    })
}

fn default_audit_key_label() -> String {
    "qsign-audit".into()
}
fn default_checkpoint_interval_millis() -> u64 {
    1000
}
fn default_audit_vkey() -> PathBuf {
    "audit.vkey".into()
}

fn default_max_connections() -> u32 {
    8
}

fn default_ocsp_key_label() -> String {
    "qsign-ocsp".into()
}

fn default_tsa_key_label() -> String {
    "qsign-tsa".into()
}
fn default_accuracy_millis() -> u64 {
    1000
}
fn default_leeway() -> u64 {
    30
}
fn default_token_lifetime() -> u64 {
    900
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[hsm]
module = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "qsign"
pin_env = "PIN"
[ca]
root_certificate = "root.pem"
issuing_certificate = "issuing.pem"
[token]
issuer = "idp"
audience = "qsign"
jwks_file = "jwks.json"
"#;

    fn with_tsa(tsa: &str) -> Result<Config, Error> {
        let file: File = toml::from_str(&format!("{BASE}[tsa]\n{tsa}"))
            .map_err(|e| Error::invalid_argument(e.to_string()))?;
        Config::validate(file, Path::new("/etc/qsign"))
    }

    #[test]
    fn tsa_table_is_optional_and_defaulted() {
        let file: File = toml::from_str(BASE).unwrap();
        assert!(Config::validate(file, Path::new("/"))
            .unwrap()
            .tsa
            .is_none());
        let tsa = with_tsa("certificate = \"tsa.pem\"\npolicy = \"1.3.6.1.4.1.32473.1.1\"")
            .unwrap()
            .tsa
            .unwrap();
        assert_eq!(tsa.settings.key_label, "qsign-tsa");
        assert_eq!(tsa.settings.accuracy, Duration::from_secs(1));
        assert_eq!(tsa.certificate, Path::new("/etc/qsign/tsa.pem"));
        assert!(tsa.listen.is_none() && tsa.urls.is_empty());
    }

    #[test]
    fn tsa_table_is_validated() {
        let policy = "certificate = \"tsa.pem\"\npolicy = \"1.3.6.1.4.1.32473.1.1\"\n";
        for bad in [
            "certificate = \"tsa.pem\"\npolicy = \"not an oid\"".to_owned(),
            format!("{policy}accuracy_millis = 0"),
            format!("{policy}accuracy_millis = 1001"),
            format!("{policy}urls = [\"https://tsa.example/\"]"),
            format!("{policy}unknown = 1"),
            "policy = \"1.2.3\"".to_owned(),
        ] {
            assert!(with_tsa(&bad).is_err(), "{bad}");
        }
        let ok = with_tsa(&format!(
            "{policy}urls = [\"http://tsa.example/\"]\nlisten = \"127.0.0.1:1\""
        ));
        assert_eq!(ok.unwrap().tsa.unwrap().urls, ["http://tsa.example/"]);
    }
}
