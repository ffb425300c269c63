//! Configuration: one TOML file, parsed strictly (unknown keys are errors),
//! then validated once into [`Config`]. Relative paths are relative to the
//! file's directory. `qsign.toml` in a dev state dir documents every knob.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Profile;
use crate::hsm::KeyAlgorithm;
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
    /// SPEC §9 (src/registry/settings.rs).
    registry: Option<crate::registry::settings::RegistryFile>,
    mail: Option<crate::registry::settings::MailFile>,
    audit: Option<AuditFile>,
    #[serde(default)]
    profiles: Vec<Profile>,
    #[serde(default)]
    csc: CscConfig,
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
    #[serde(default = "default_watchdog_seconds")]
    watchdog_seconds: u64,
    #[serde(default)]
    key_pool: KeyPoolFile,
}

/// `[hsm.key_pool]`: RSA key pairs generated ahead, per size (0: none).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPoolFile {
    #[serde(default)]
    rsa2048: usize,
    #[serde(default)]
    rsa3072: usize,
}

/// Pooled pairs are session objects of one session: bounded, as the
/// token's memory is.
const MAX_POOLED_KEYS: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaFile {
    root_certificate: PathBuf,
    issuing_certificate: PathBuf,
    /// Label of the root CA's key in the token (`qsign init-ca
    /// --root-key-label`), which signs the root's CRL.
    #[serde(default = "default_root_key_label")]
    root_key_label: String,
    #[serde(default = "default_root_crl_url")]
    root_crl_url: String,
    #[serde(default = "default_issuing_crl_url")]
    issuing_crl_url: String,
}

/// Where a development state serves the CA certificates and CRLs: the
/// `[tsa] listen` HTTP front door (`service::http`), plain http as RFC 5280
/// §4.2.1.13 and §4.2.2.1 expect (the objects are signed).
pub const DEV_ROOT_CRL_URL: &str = "http://127.0.0.1:50052/crl/root-ca.crl";
pub const DEV_ISSUING_CRL_URL: &str = "http://127.0.0.1:50052/crl/issuing-ca.crl";
pub const DEV_CA_ISSUERS_URL: &str = "http://127.0.0.1:50052/ca/issuing-ca.cer";
/// A PLACEHOLDER like the PDS URL: the registration authority of the `UI`
/// identifier scheme (EN 319 412-1 §5.1.3), set by a deployment.
pub const DEV_NAME_REGISTRATION_AUTHORITY: &str = "https://qsign.example/identifiers";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CertificateFile {
    lifetime_minutes: u64,
    backdate_seconds: u64,
    pds_url: String,
    serial_number_prefix: String,
    name_registration_authority: String,
    ca_issuers_url: String,
}

impl Default for CertificateFile {
    fn default() -> Self {
        Self {
            lifetime_minutes: 10,
            backdate_seconds: 60,
            pds_url: "https://qsign.example/pds/en".into(),
            serial_number_prefix: "UI".into(),
            name_registration_authority: DEV_NAME_REGISTRATION_AUTHORITY.into(),
            ca_issuers_url: DEV_CA_ISSUERS_URL.into(),
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

/// Request and connection limits (SPEC §7 RESOURCE_EXHAUSTED, §12). A
/// "calling system" is the client certificate when there is one, else the
/// peer IP address (`limits::Caller`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Documents in one `SignDetached` request.
    pub max_batch: usize,
    /// Bytes of one PDF, or of all contents of one batch.
    pub max_document_bytes: usize,
    /// gRPC requests of one calling system in progress at once.
    pub concurrent_requests_per_caller: usize,
    /// gRPC requests per second of one calling system (a token bucket
    /// holding one second's worth).
    pub requests_per_second_per_caller: u32,
    /// A gRPC request still running after this is answered UNAVAILABLE (its
    /// HSM work finishes on its own and destroys its key).
    pub request_timeout_seconds: u64,
    /// Bytes of request messages held at once, across all callers.
    pub memory_budget_bytes: usize,
    /// HSM signatures per second for anonymous work (HTTP time-stamps,
    /// OCSP, CRLs; the TimeStamp RPC), in total.
    pub anonymous_signatures_per_second: u32,
    /// How long a CRL served on `GET /crl/...` is reused before a new one
    /// is signed.
    pub crl_cache_seconds: u64,
    /// A connection that receives nothing for this long is closed.
    pub idle_timeout_seconds: u64,
    /// HTTP/2 keep-alive ping interval of the gRPC server (a peer that does
    /// not answer within it is dropped).
    pub keepalive_seconds: u64,
    /// A gRPC connection older than this is closed gracefully (HTTP/2
    /// GOAWAY; requests in progress end within `request_timeout_seconds`):
    /// it also ends connections that answer pings but send no requests.
    pub max_connection_age_seconds: u64,
    /// Open connections per listener, in total and per peer IP address;
    /// beyond them a new connection is closed at once.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// SIGTERM or SIGINT: requests in flight get this long to finish
    /// before their connections are cut.
    pub shutdown_grace_seconds: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_batch: 100,
            max_document_bytes: 64 << 20,
            concurrent_requests_per_caller: 16,
            requests_per_second_per_caller: 100,
            request_timeout_seconds: 60,
            memory_budget_bytes: 256 << 20,
            anonymous_signatures_per_second: 100,
            crl_cache_seconds: 60,
            idle_timeout_seconds: 120,
            keepalive_seconds: 30,
            max_connection_age_seconds: 3600,
            max_connections: 1024,
            max_connections_per_address: 64,
            shutdown_grace_seconds: 30,
        }
    }
}

impl Limits {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }
    pub fn max_connection_age(&self) -> Duration {
        Duration::from_secs(self.max_connection_age_seconds)
    }
    pub fn crl_cache(&self) -> Duration {
        Duration::from_secs(self.crl_cache_seconds)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }

    fn validate(&self) -> Result<(), Error> {
        let counts = [
            self.max_batch,
            self.concurrent_requests_per_caller,
            self.requests_per_second_per_caller as usize,
            self.anonymous_signatures_per_second as usize,
            self.max_connections,
            self.max_connections_per_address,
        ];
        let times = [
            self.request_timeout_seconds,
            self.idle_timeout_seconds,
            self.keepalive_seconds,
            self.max_connection_age_seconds,
        ];
        if counts.contains(&0) || times.contains(&0) {
            return Err(invalid(
                "[limits] counts, rates and timeouts must be at least 1",
            ));
        }
        // A peer's answers to the pings keep a connection with a long
        // request from looking idle.
        if self.keepalive_seconds >= self.idle_timeout_seconds {
            return Err(invalid(
                "[limits] keepalive_seconds must be shorter than idle_timeout_seconds",
            ));
        }
        // Semaphore permits are u32 (`limits::MemoryBudget`).
        if self.memory_budget_bytes < 1 << 20 || self.memory_budget_bytes > u32::MAX as usize {
            return Err(invalid(
                "[limits] memory_budget_bytes must be between 1 MiB and 4 GiB",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    certificate: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    client_auth: Option<ClientAuth>,
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
    /// A token that does not answer a probe within this is down.
    pub watchdog_seconds: u64,
    /// Pre-generated key pairs per algorithm (`[hsm.key_pool]`).
    pub key_pool: Vec<(KeyAlgorithm, usize)>,
}

impl HsmConfig {
    pub fn watchdog(&self) -> Duration {
        Duration::from_secs(self.watchdog_seconds)
    }
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

/// `[tls]`: both listeners, gRPC and HTTP (SPEC §12).
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// PEM: the server's certificate, then its chain.
    pub certificate: PathBuf,
    /// PEM: its private key.
    pub key: PathBuf,
    /// PEM: the CA(s) that client certificates must chain to (mTLS); none:
    /// no client certificates are asked for.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is needed; only with `client_ca`.
    pub client_auth: ClientAuth,
}

/// `[tls] client_auth`: with `client_ca`, whether every client must show a
/// certificate (the default) or may connect without one. A certificate that
/// is shown must chain to `client_ca` either way; profiles with
/// `allowed_clients` refuse callers without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
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
    /// `[ca] root_key_label`: the root CA's key in the token.
    pub root_key_label: String,
    /// RFC 5280 §4.2.1.13: the root's CRL, named by the issuing CA's and
    /// the TSA's certificates (`init-ca`, `init-tsa`).
    pub root_crl_url: String,
    /// The issuing CA's CRL, named by the OCSP responder's certificate
    /// (`init-ocsp`).
    pub issuing_crl_url: String,
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
    /// `[registry]` and `[mail]` (SPEC §9); needs `[database]`.
    pub registry: Option<crate::registry::RegistrySettings>,
    /// None: no audit log (tests' default cores, benches).
    pub audit: Option<AuditConfig>,
    pub profiles: Vec<Profile>,
    /// `[csc]`: the CSC API on the HTTP listener (SPEC §13).
    pub csc: CscConfig,
}

/// `[csc]`: the Cloud Signature Consortium API (SPEC §13), served on the
/// HTTP listener (`[tsa] listen`) under `/csc/`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CscConfig {
    pub enabled: bool,
    /// Required `aud` of the bearer tokens.
    pub audience: String,
    /// How long a one-time key waits for its signHash (SPEC §13: 300).
    pub key_lifetime_seconds: u64,
    /// Prepared one-time keys per `sub`, and in all.
    pub max_keys_per_subject: usize,
    pub max_keys: usize,
}

impl Default for CscConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            audience: "qsign-csc".into(),
            key_lifetime_seconds: 300,
            max_keys_per_subject: 4,
            max_keys: 256,
        }
    }
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
        if !is_uri(&c.name_registration_authority) {
            return Err(invalid(
                "[certificate] name_registration_authority must be a URI of at most 256 bytes \
                 (EN 319 412-1 §5.1.3)",
            ));
        }
        for (url, message) in [
            (
                &c.ca_issuers_url,
                "[certificate] ca_issuers_url must be an http:// URL of at most 256 bytes \
                 (EN 319 412-2 §4.4.1)",
            ),
            (
                &file.ca.root_crl_url,
                "[ca] root_crl_url must be an http:// URL of at most 256 bytes (RFC 5280 §4.2.1.13)",
            ),
            (
                &file.ca.issuing_crl_url,
                "[ca] issuing_crl_url must be an http:// URL of at most 256 bytes (RFC 5280 §4.2.1.13)",
            ),
        ] {
            if !is_http_url(url) {
                return Err(invalid(message));
            }
        }
        let mtls = file.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if let Some(p) = file
            .profiles
            .iter()
            .find(|p| !p.allowed_clients.is_empty() && !mtls)
        {
            return Err(Error::invalid_argument(format!(
                "profile '{}' has allowed_clients, which needs client certificates: \
                 set [tls] client_ca",
                p.id
            )));
        }
        if file.hsm.sessions == 0 {
            return Err(invalid("[hsm] sessions must be at least 1"));
        }
        if file.hsm.watchdog_seconds == 0 {
            return Err(invalid("[hsm] watchdog_seconds must be at least 1"));
        }
        let pool = &file.hsm.key_pool;
        if pool.rsa2048.max(pool.rsa3072) > MAX_POOLED_KEYS {
            return Err(invalid("[hsm.key_pool] sizes are at most 64"));
        }
        file.limits.validate()?;
        if file.limits.crl_cache_seconds >= lifetime.as_secs() {
            // The issuing CA's CRL is valid for one certificate lifetime.
            return Err(invalid(
                "[limits] crl_cache_seconds must be shorter than [certificate] lifetime_minutes",
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
                watchdog_seconds: file.hsm.watchdog_seconds,
                key_pool: [
                    (KeyAlgorithm::Rsa2048, pool.rsa2048),
                    (KeyAlgorithm::Rsa3072, pool.rsa3072),
                ]
                .into_iter()
                .filter(|(_, size)| *size > 0)
                .collect(),
            },
            root_certificate: resolve(&file.ca.root_certificate),
            issuing_certificate: resolve(&file.ca.issuing_certificate),
            root_key_label: file.ca.root_key_label.clone(),
            root_crl_url: file.ca.root_crl_url,
            issuing_crl_url: file.ca.issuing_crl_url,
            certificate: CertificatePolicy {
                lifetime,
                backdate: Duration::from_secs(c.backdate_seconds),
                pds_url: c.pds_url.clone(),
                serial_number_prefix: c.serial_number_prefix.clone(),
                name_registration_authority: c.name_registration_authority.clone(),
                ca_issuers_url: c.ca_issuers_url.clone(),
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
            tls: file.tls.map(|t| tls(t, &resolve)).transpose()?,
            tsa: file.tsa.map(|t| tsa(t, &resolve)).transpose()?,
            ocsp: file.ocsp.map(|o| ocsp(o, &resolve)).transpose()?,
            audit: file.audit.map(|a| audit(a, &resolve)).transpose()?,
            database: file.database.map(|d| database(d, &resolve)).transpose()?,
            registry: crate::registry::settings::validate(file.registry, file.mail, &resolve)?,
            profiles: file.profiles,
            csc: csc(file.csc)?,
        })
    }
}

fn csc(file: CscConfig) -> Result<CscConfig, Error> {
    if !(1..=300).contains(&file.key_lifetime_seconds) {
        return Err(invalid(
            "[csc] key_lifetime_seconds must be between 1 and 300 (SPEC §13: at most 5 minutes)",
        ));
    }
    if file.audience.is_empty() || file.max_keys_per_subject == 0 || file.max_keys == 0 {
        return Err(invalid(
            "[csc] audience must not be empty, max_keys_per_subject and max_keys at least 1",
        ));
    }
    Ok(file)
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

fn tls(file: TlsFile, resolve: &impl Fn(&Path) -> PathBuf) -> Result<TlsConfig, Error> {
    if file.client_auth.is_some() && file.client_ca.is_none() {
        return Err(invalid(
            "[tls] client_auth needs client_ca: the CA(s) that client certificates chain to",
        ));
    }
    Ok(TlsConfig {
        certificate: resolve(&file.certificate),
        key: resolve(&file.key),
        client_ca: file.client_ca.as_deref().map(resolve),
        client_auth: file.client_auth.unwrap_or_default(),
    })
}

/// A URL that goes into certificates: http, printable ASCII (IA5String),
/// bounded like the PDS URL so that `MAX_END_ENTITY_LEN` holds.
fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") && is_uri(url)
}

/// RFC 3986 §3.1: a scheme, then ':'; printable ASCII, at most 256 bytes.
fn is_uri(uri: &str) -> bool {
    let scheme = uri.split_once(':').map_or("", |(scheme, _)| scheme);
    uri.len() <= crate::pki::MAX_PDS_URL_LEN
        && uri.bytes().all(|b| b.is_ascii_graphic())
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
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
fn default_watchdog_seconds() -> u64 {
    10
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

/// The label `qsign init-ca` gives the root's key unless told otherwise.
pub const DEFAULT_ROOT_KEY_LABEL: &str = "qsign-root-ca";

fn default_root_key_label() -> String {
    DEFAULT_ROOT_KEY_LABEL.into()
}
fn default_root_crl_url() -> String {
    DEV_ROOT_CRL_URL.into()
}
fn default_issuing_crl_url() -> String {
    DEV_ISSUING_CRL_URL.into()
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
    fn key_pool_is_off_by_default_and_bounded() {
        let parse = |pool: &str| -> Result<Config, Error> {
            let text = BASE.replace("[ca]", &format!("[hsm.key_pool]\n{pool}\n[ca]"));
            let file: File =
                toml::from_str(&text).map_err(|e| Error::invalid_argument(e.to_string()))?;
            Config::validate(file, Path::new("/etc/qsign"))
        };
        let file: File = toml::from_str(BASE).unwrap();
        let config = Config::validate(file, Path::new("/")).unwrap();
        assert!(config.hsm.key_pool.is_empty());
        assert_eq!(
            parse("rsa2048 = 8\nrsa3072 = 0").unwrap().hsm.key_pool,
            [(KeyAlgorithm::Rsa2048, 8)]
        );
        assert_eq!(parse("rsa3072 = 4").unwrap().hsm.key_pool.len(), 1);
        for bad in ["rsa2048 = 65", "rsa4096 = 1", "rsa2048 = -1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csc_table_is_defaulted_and_bounded() {
        let parse = |csc: &str| -> Result<Config, Error> {
            let file: File = toml::from_str(&format!("{BASE}[csc]\n{csc}"))
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            Config::validate(file, Path::new("/etc/qsign"))
        };
        let file: File = toml::from_str(BASE).unwrap();
        let csc = Config::validate(file, Path::new("/")).unwrap().csc;
        assert_eq!(csc, CscConfig::default());
        assert!(csc.enabled && csc.audience == "qsign-csc" && csc.key_lifetime_seconds == 300);
        let short = parse("key_lifetime_seconds = 2\naudience = \"csc\"")
            .unwrap()
            .csc;
        assert_eq!(
            (short.key_lifetime_seconds, short.audience.as_str()),
            (2, "csc")
        );
        for bad in [
            "key_lifetime_seconds = 301",
            "key_lifetime_seconds = 0",
            "max_keys = 0",
            "audience = \"\"",
            "unknown = 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
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
    fn tls_client_auth_and_allowed_clients_need_a_client_ca() {
        let parse = |tls: &str| -> Result<Config, Error> {
            let file: File = toml::from_str(&format!("{BASE}[tls]\n{tls}"))
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            Config::validate(file, Path::new("/etc/qsign"))
        };
        let keys = "certificate = \"s.pem\"\nkey = \"s.key\"\n";
        let tls = parse(&format!("{keys}client_ca = \"ca.pem\""))
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Required);
        assert_eq!(tls.client_ca.unwrap(), Path::new("/etc/qsign/ca.pem"));
        let optional = format!("{keys}client_ca = \"ca.pem\"\nclient_auth = \"optional\"");
        assert_eq!(
            parse(&optional).unwrap().tls.unwrap().client_auth,
            ClientAuth::Optional
        );
        assert!(parse(&format!("{keys}client_auth = \"optional\"")).is_err());
        let profile = "[[profiles]]\nid = \"a\"\norganization_name = \"A\"\ncvr = \"12345678\"\n\
                       allow = [\"seal\"]\nallowed_clients = [\"CN=x\"]\n";
        assert!(parse(&format!("{keys}client_ca = \"ca.pem\"\n{profile}")).is_ok());
        let err = parse(&format!("{keys}{profile}")).unwrap_err();
        assert!(err.message().contains("set [tls] client_ca"), "{err}");
        assert!(parse(&format!(
            "{keys}client_ca = \"ca.pem\"\nclient_auth = \"maybe\""
        ))
        .is_err());
    }

    #[test]
    fn limits_are_validated() {
        let with = |limits: &str| {
            let file: File = toml::from_str(&format!("{BASE}[limits]\n{limits}"))
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            Config::validate(file, Path::new("/"))
        };
        let limits = with("").unwrap().limits;
        assert_eq!(limits.anonymous_signatures_per_second, 100);
        assert_eq!(limits.memory_budget_bytes, 256 << 20);
        for bad in [
            "max_batch = 0",
            "concurrent_requests_per_caller = 0",
            "requests_per_second_per_caller = 0",
            "request_timeout_seconds = 0",
            "memory_budget_bytes = 1000",
            "crl_cache_seconds = 600",
            "keepalive_seconds = 120",
            "max_connection_age_seconds = 0",
            "max_connections_per_address = 0",
            "unknown = 1",
        ] {
            assert!(with(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn certificate_urls_are_defaulted_and_validated() {
        let file: File = toml::from_str(BASE).unwrap();
        let config = Config::validate(file, Path::new("/")).unwrap();
        assert_eq!(config.certificate.ca_issuers_url, DEV_CA_ISSUERS_URL);
        assert_eq!(config.root_crl_url, DEV_ROOT_CRL_URL);
        assert_eq!(config.issuing_crl_url, DEV_ISSUING_CRL_URL);
        let parse = |ca: &str, certificate: &str| -> Result<Config, Error> {
            let text = BASE.replace("[ca]\n", &format!("[ca]\n{ca}\n"));
            let file: File = toml::from_str(&format!("{text}[certificate]\n{certificate}"))
                .map_err(|e| Error::invalid_argument(e.to_string()))?;
            Config::validate(file, Path::new("/"))
        };
        let good = parse(
            "root_crl_url = \"http://pki.example.com/root.crl\"",
            "name_registration_authority = \"urn:example:ra\"\n\
             ca_issuers_url = \"http://pki.example.com/ca.cer\"",
        )
        .unwrap();
        assert_eq!(good.root_crl_url, "http://pki.example.com/root.crl");
        assert_eq!(
            good.certificate.name_registration_authority,
            "urn:example:ra"
        );
        for (ca, certificate) in [
            ("", "ca_issuers_url = \"https://pki.example.com/ca.cer\""),
            ("", "ca_issuers_url = \"http://pki.example.com/a b\""),
            ("", "name_registration_authority = \"no scheme\""),
            ("", "name_registration_authority = \"1http://x\""),
            ("issuing_crl_url = \"ldap://x\"", ""),
            ("root_crl_url = \"\"", ""),
        ] {
            assert!(parse(ca, certificate).is_err(), "{ca}{certificate}");
        }
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
