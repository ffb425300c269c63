//! The embedded default (SPEC §8): a state directory that holds a SoftHSM
//! token, a development root and issuing CA and a time-stamping authority
//! whose keys live in that token, a development identity provider, and the
//! `qsign.toml` that ties them together. Made on first start, reused
//! afterwards (a directory made before the TSA existed runs without one).
//!
//! DEVELOPMENT ONLY: the IdP's private key sits in a file so that the CLI can
//! mint activation tokens. A production deployment trusts a real IdP's JWKS
//! and never has its key.

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use der::pem::LineEnding;
use rand::distributions::{Alphanumeric, DistString};

use crate::auth::dev::DevIdp;
use crate::config::{DEV_ISSUING_CRL_URL, DEV_ROOT_CRL_URL};
use crate::hsm::{Hsm, HsmSettings, KeyAlgorithm, Module};
use crate::pki::{self, name::NameBuilder, Issuer};
use crate::{Error, ErrorKind};

pub const CONFIG: &str = "qsign.toml";
pub const ROOT_CA: &str = "root-ca.pem";
pub const ISSUING_CA: &str = "issuing-ca.pem";
pub const TSA_CERTIFICATE: &str = "tsa.pem";
pub const OCSP_CERTIFICATE: &str = "ocsp-responder.pem";
pub const ORGANIZATION_CA: &str = "organization-ca.pem";
pub const ORGANIZATION_CA_KEY_LABEL: &str = "qsign-organization-ca";
pub const DEV_IDP_KEY: &str = "dev-idp-key.pem";
pub const DEV_IDP_JWKS: &str = "dev-idp-jwks.json";
pub const USER_PIN: &str = "user-pin";
pub const SOFTHSM_CONF: &str = "softhsm2.conf";

pub const TOKEN_LABEL: &str = "qsign";
pub const ROOT_KEY_LABEL: &str = crate::config::DEFAULT_ROOT_KEY_LABEL;
pub const ISSUING_KEY_LABEL: &str = "qsign-issuing-ca";
pub const TSA_KEY_LABEL: &str = "qsign-tsa";
pub const OCSP_KEY_LABEL: &str = "qsign-ocsp";
pub const AUDIT_KEY_LABEL: &str = "qsign-audit";
pub const AUDIT_ORIGIN: &str = "qsign.example/audit";
pub const AUDIT_VKEY: &str = "audit.vkey";
pub const DEV_ISSUER: &str = "qsign-dev-idp";
pub const DEV_AUDIENCE: &str = "qsign";
pub const DEV_PROFILE: &str = "dev";
pub const DEV_ORGANIZATION: &str = "Qsign Udvikling ApS";
pub const DEV_CVR: &str = "12345678";

const SOFTHSM_TEMPLATE: &str = include_str!("../softhsm/softhsm2.conf.in");
const CONFIG_TEMPLATE: &str = include_str!("state/qsign.toml.in");

/// A state directory (default `./.qsign`).
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Creates the directory (mode 0700) if needed.
    pub fn open(path: &Path) -> Result<Self, Error> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .and_then(|()| fs::canonicalize(path))
            .map(|path| Self { path })
            .map_err(|e| io_error("cannot create the state directory", path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether first start has completed (the config is written last).
    pub fn is_initialised(&self) -> bool {
        self.file(CONFIG).is_file()
    }

    /// The SoftHSM configuration of this directory, written from
    /// `softhsm/softhsm2.conf.in` if missing. Point `SOFTHSM2_CONF` at it
    /// before the module is loaded.
    pub fn softhsm_conf(&self) -> Result<PathBuf, Error> {
        let conf = self.file(SOFTHSM_CONF);
        let tokens = self.file("tokens");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tokens)
            .map_err(|e| io_error("cannot create the token directory", &tokens, e))?;
        if !conf.exists() {
            let text = SOFTHSM_TEMPLATE.replace("@TOKENDIR@", &tokens.to_string_lossy());
            write_private(&conf, text.as_bytes())?;
        }
        Ok(conf)
    }

    /// First start: token, CA keys and certificates, dev IdP, config.
    pub fn bootstrap(&self, module: &Module, listen: SocketAddr) -> Result<(), Error> {
        if module.slot(TOKEN_LABEL)?.is_some() {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "state directory {} holds a token but no {CONFIG}: an earlier first start was \
                     interrupted; delete the directory and start again",
                    self.path.display()
                ),
            ));
        }
        let user_pin = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        let so_pin = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        write_private(&self.file(USER_PIN), user_pin.as_bytes())?;
        module.init_token(TOKEN_LABEL, &so_pin.into(), &user_pin.clone().into())?;
        let hsm = Hsm::open(
            module,
            &user_pin.into(),
            HsmSettings {
                token_label: TOKEN_LABEL.into(),
                sessions: 1,
                issuing_key_label: ISSUING_KEY_LABEL.into(),
                ephemeral_label: "qsign-bootstrap".into(),
                watchdog: None,
                key_pool: Vec::new(),
            },
        )?;
        let (root, issuing) = create_ca(
            &hsm,
            (ROOT_KEY_LABEL, ISSUING_KEY_LABEL),
            DEV_ORGANIZATION,
            DEV_ROOT_CRL_URL,
        )?;
        write_public(&self.file(ROOT_CA), &pem_certificate(&root)?)?;
        write_public(&self.file(ISSUING_CA), &pem_certificate(&issuing)?)?;
        let tsa = create_delegate(
            &hsm,
            Delegate::TimeStamping,
            (ROOT_KEY_LABEL, &root, DEV_ROOT_CRL_URL),
            TSA_KEY_LABEL,
            DEV_ORGANIZATION,
        )?;
        write_public(&self.file(TSA_CERTIFICATE), &pem_certificate(&tsa)?)?;
        // For the `[ocsp]` alternative, commented out in the configuration.
        let responder = create_delegate(
            &hsm,
            Delegate::OcspSigning,
            (ISSUING_KEY_LABEL, &issuing, DEV_ISSUING_CRL_URL),
            OCSP_KEY_LABEL,
            DEV_ORGANIZATION,
        )?;
        write_public(&self.file(OCSP_CERTIFICATE), &pem_certificate(&responder)?)?;
        let organization_ca = create_organization_ca(
            &hsm,
            (ROOT_KEY_LABEL, &root, DEV_ROOT_CRL_URL),
            ORGANIZATION_CA_KEY_LABEL,
            DEV_ORGANIZATION,
        )?;
        write_public(
            &self.file(ORGANIZATION_CA),
            &pem_certificate(&organization_ca)?,
        )?;
        let vkey = crate::audit::create_key(&hsm, AUDIT_KEY_LABEL, AUDIT_ORIGIN)?;
        write_public(&self.file(AUDIT_VKEY), &format!("{vkey}\n"))?;

        let idp = DevIdp::generate();
        write_private(&self.file(DEV_IDP_KEY), idp.pkcs8_pem().as_bytes())?;
        write_public(&self.file(DEV_IDP_JWKS), &idp.jwks_json())?;

        let config = CONFIG_TEMPLATE
            .replace("@LISTEN@", &listen.to_string())
            .replace("@MODULE@", &softhsm_module().to_string_lossy());
        write_private(&self.file(CONFIG), config.as_bytes())?;
        tracing::info!(dir = %self.path.display(), "created a development state directory");
        Ok(())
    }
}

/// Makes a root and an issuing CA (keys `labels`: root, issuing) whose keys
/// are persistent, sensitive, non-extractable EC P-256 objects in the
/// token; the issuing CA's certificate names `root_crl_url` (RFC 5280
/// §4.2.1.13). Returns their DER certificates. Refuses when a key with
/// either label already exists.
pub fn create_ca(
    hsm: &Hsm,
    (root_label, issuing_label): (&str, &str),
    organization: &str,
    root_crl_url: &str,
) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let (root_label, issuing_label, organization, root_crl_url) = (
        root_label.to_owned(),
        issuing_label.to_owned(),
        organization.to_owned(),
        root_crl_url.to_owned(),
    );
    hsm.run_blocking(move |session| {
        let (root_label, issuing_label) = (root_label.as_str(), issuing_label.as_str());
        let organization = organization.as_str();
        for label in [root_label, issuing_label] {
            if session.has_private_key(label)? {
                return Err(Error::new(
                    ErrorKind::FailedPrecondition,
                    format!("the token already holds a key labelled '{label}'; refusing to replace a CA"),
                ));
            }
        }
        let now = SystemTime::now();
        let year = Duration::from_secs(365 * 24 * 3600);
        let name = |cn: &str| -> Result<_, Error> {
            Ok(NameBuilder::default()
                .printable(const_oid::db::rfc4519::C, "DK")
                .and_then(|b| b.utf8(const_oid::db::rfc4519::O, organization))
                .and_then(|b| b.utf8(const_oid::db::rfc4519::CN, cn))
                .map_err(pki::encoding)?
                .build())
        };
        let root_key = session.generate_persistent(KeyAlgorithm::EcP256, root_label)?;
        let root_signer = session.persistent_signer(root_label)?;
        let root = pki::ca::root(name(&format!("{organization} root CA"))?, root_key, &root_signer, now, 20 * year)?;
        let root_issuer = Issuer::from_der(root.der.clone())?;
        let issuing_key = session.generate_persistent(KeyAlgorithm::EcP256, issuing_label)?;
        let issuing = pki::ca::issuing(
            name(&format!("{organization} issuing CA"))?,
            issuing_key,
            (&root_issuer, &root_crl_url),
            &root_signer,
            now,
            10 * year,
        )?;
        Ok((root.der, issuing.der))
    })
}

/// SPEC §9: the organisation CA under the root (key `root.0`, certificate
/// `root.1`, CRL URL `root.2` for its CRL distribution point): a
/// persistent, sensitive, non-extractable EC P-256 key `label` and a
/// 10-year CA certificate (pathLenConstraint 0), DER. Refuses when a key
/// labelled `label` exists.
pub fn create_organization_ca(
    hsm: &Hsm,
    root: (&str, &[u8], &str),
    label: &str,
    organization: &str,
) -> Result<Vec<u8>, Error> {
    let issuer = Issuer::from_der(root.1.to_vec())?;
    let (root_label, label, organization) =
        (root.0.to_owned(), label.to_owned(), organization.to_owned());
    let crl_url = root.2.to_owned();
    hsm.run_blocking(move |session| {
        if session.has_private_key(&label)? {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "the token already holds a key labelled '{label}'; refusing to replace a CA"
                ),
            ));
        }
        let name = NameBuilder::default()
            .printable(const_oid::db::rfc4519::C, "DK")
            .and_then(|b| b.utf8(const_oid::db::rfc4519::O, &organization))
            .and_then(|b| {
                b.utf8(
                    const_oid::db::rfc4519::CN,
                    &format!("{organization} organisation CA"),
                )
            })
            .map_err(pki::encoding)?
            .build();
        let key = session.generate_persistent(KeyAlgorithm::EcP256, &label)?;
        let signer = session.persistent_signer(&root_label)?;
        let year = Duration::from_secs(365 * 24 * 3600);
        let parent = (&issuer, crl_url.as_str());
        Ok(pki::ca::issuing(name, key, parent, &signer, SystemTime::now(), 10 * year)?.der)
    })
}

/// A service that signs with a key of its own under one of the CAs.
#[derive(Clone, Copy, Debug)]
pub enum Delegate {
    /// The time-stamping authority, under the root (RFC 3161 §2.3).
    TimeStamping,
    /// The issuing CA's OCSP responder, under the issuing CA (RFC 6960
    /// §4.2.2.2: a delegated responder is certified by the CA it answers for).
    OcspSigning,
}

/// Makes the key `label` of `delegate` (persistent, sensitive,
/// non-extractable EC P-256) and its certificate from `parent` (key label,
/// certificate DER, http URL of its CRL); returns the certificate, DER.
/// Refuses when a key labelled `label` already exists.
pub fn create_delegate(
    hsm: &Hsm,
    delegate: Delegate,
    parent: (&str, &[u8], &str),
    label: &str,
    organization: &str,
) -> Result<Vec<u8>, Error> {
    let issuer = Issuer::from_der(parent.1.to_vec())?;
    let (parent_label, label) = (parent.0.to_owned(), label.to_owned());
    let parent_crl = parent.2.to_owned();
    let (role, lifetime_years) = match delegate {
        Delegate::TimeStamping => ("TSA", 5),
        Delegate::OcspSigning => ("OCSP responder", 1),
    };
    let common_name = format!("{organization} {role}");
    let organization = organization.to_owned();
    hsm.run_blocking(move |session| {
        if session.has_private_key(&label)? {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!("the token already holds a key labelled '{label}'; refusing to replace the {role} key"),
            ));
        }
        let name = NameBuilder::default()
            .printable(const_oid::db::rfc4519::C, "DK")
            .and_then(|b| b.utf8(const_oid::db::rfc4519::O, &organization))
            .and_then(|b| b.utf8(const_oid::db::rfc4519::CN, &common_name))
            .map_err(pki::encoding)?
            .build();
        let key = session.generate_persistent(KeyAlgorithm::EcP256, &label)?;
        let signer = session.persistent_signer(&parent_label)?;
        let (now, lifetime) = (SystemTime::now(), lifetime_years * Duration::from_secs(365 * 24 * 3600));
        let issued = match delegate {
            Delegate::TimeStamping => pki::ca::time_stamping(name, key, (&issuer, &parent_crl), &signer, now, lifetime)?,
            Delegate::OcspSigning => pki::ca::ocsp_signing(name, key, (&issuer, &parent_crl), &signer, now, lifetime)?,
        };
        Ok(issued.der)
    })
}

/// Where Debian puts SoftHSM's PKCS#11 module.
pub fn softhsm_module() -> PathBuf {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

pub fn pem_certificate(der: &[u8]) -> Result<String, Error> {
    der::pem::encode_string("CERTIFICATE", LineEnding::LF, der)
        .map_err(|e| Error::internal(format!("PEM encoding failed: {e}")))
}

/// DER of every certificate in a PEM file, in file order.
pub fn read_certificates(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let text =
        fs::read_to_string(path).map_err(|e| io_error("cannot read certificate", path, e))?;
    let mut out = Vec::new();
    for block in text.split_inclusive("-----END CERTIFICATE-----") {
        let Some(start) = block.find("-----BEGIN") else {
            continue;
        };
        let (label, der) = der::pem::decode_vec(&block.as_bytes()[start..]).map_err(|e| {
            Error::internal(format!("{} is not a PEM certificate: {e}", path.display()))
        })?;
        if label == "CERTIFICATE" {
            out.push(der);
        }
    }
    Ok(out)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| io_error("cannot write", path, e))
}

fn write_public(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|e| io_error("cannot write", path, e))
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("{what} {}", path.display())).with_source(e)
}
