//! `[registry]` and `[mail]` of the configuration (SPEC §9).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;

/// `[registry]` as written in the TOML file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    #[serde(default = "default_key_label")]
    key_label: String,
    certificate: PathBuf,
    /// The HTTP listener as relying parties reach it (no trailing slash):
    /// certificates name `{base_url}/crl/organization-ca.crl`,
    /// `{base_url}/ocsp` and `{base_url}/ca/organization-ca.crt`.
    base_url: String,
    #[serde(default = "default_audience")]
    admin_audience: String,
    #[serde(default = "default_notice_days")]
    expiry_notice_days: u64,
}

/// `[mail]`: the development outbox, or SMTP with STARTTLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailFile {
    from: String,
    outbox: Option<PathBuf>,
    smtp_host: Option<String>,
    #[serde(default = "default_smtp_port")]
    smtp_port: u16,
    smtp_user: Option<String>,
    smtp_password_env: Option<String>,
}

/// The validated `[registry]` and `[mail]`.
#[derive(Clone, Debug)]
pub struct RegistrySettings {
    pub key_label: String,
    pub certificate: PathBuf,
    pub base_url: String,
    pub admin_audience: String,
    pub expiry_notice: Duration,
    pub mail: MailSettings,
}

#[derive(Clone, Debug)]
pub struct MailSettings {
    pub from: String,
    pub transport: MailTransport,
}

#[derive(Clone, Debug)]
pub enum MailTransport {
    /// DEVELOPMENT: `.eml` files in this directory.
    Outbox(PathBuf),
    /// SMTP submission with STARTTLS (RFC 3207), required.
    Smtp {
        host: String,
        port: u16,
        user: Option<String>,
        password_env: Option<String>,
    },
}

impl RegistrySettings {
    /// The organisation CA's CRL, OCSP and certificate URLs.
    pub fn locations(&self) -> super::certificate::Locations {
        super::certificate::Locations {
            crl: format!("{}{}", self.base_url, super::CRL_PATH),
            ocsp: format!("{}/ocsp", self.base_url),
            ca_issuers: format!("{}{}", self.base_url, super::CA_CERTIFICATE_PATH),
        }
    }
}

/// Validates the two tables; `[registry]` without `[mail]` writes mail to
/// `outbox` beside the configuration.
pub fn validate(
    registry: Option<RegistryFile>,
    mail: Option<MailFile>,
    resolve: &impl Fn(&Path) -> PathBuf,
) -> Result<Option<RegistrySettings>, Error> {
    let Some(file) = registry else {
        return Ok(None);
    };
    let invalid = |m: &'static str| Error::invalid_argument(m);
    if !file.base_url.starts_with("http://") || file.base_url.ends_with('/') {
        return Err(invalid(
            "[registry] base_url must be the http:// URL of the HTTP listener, without a trailing /",
        ));
    }
    let mail = match mail {
        None => MailSettings {
            from: "qsign <noreply@qsign.invalid>".into(),
            transport: MailTransport::Outbox(resolve(Path::new("outbox"))),
        },
        Some(m) => {
            let transport = match (m.outbox, m.smtp_host) {
                (Some(dir), None) => MailTransport::Outbox(resolve(&dir)),
                (None, Some(host)) => MailTransport::Smtp {
                    host,
                    port: m.smtp_port,
                    user: m.smtp_user,
                    password_env: m.smtp_password_env,
                },
                _ => return Err(invalid("[mail] needs exactly one of outbox or smtp_host")),
            };
            MailSettings {
                from: m.from,
                transport,
            }
        }
    };
    Ok(Some(RegistrySettings {
        key_label: file.key_label,
        certificate: resolve(&file.certificate),
        base_url: file.base_url,
        admin_audience: file.admin_audience,
        expiry_notice: Duration::from_secs(file.expiry_notice_days * 24 * 3600),
        mail,
    }))
}

fn default_key_label() -> String {
    "qsign-organization-ca".into()
}
fn default_audience() -> String {
    crate::auth::admin::DEFAULT_AUDIENCE.into()
}
fn default_notice_days() -> u64 {
    30
}
fn default_smtp_port() -> u16 {
    587
}
