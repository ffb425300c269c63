//! Start-up: from a validated [`Config`] and a loaded PKCS#11 module to a
//! ready [`SigningCore`], refusing to serve on any inconsistency.

use std::path::Path;
use std::sync::Arc;

use cryptoki::types::AuthPin;
use der::Decode;

use crate::auth::{Profiles, TokenPolicy, Verifier};
use crate::config::{Config, PinSource};
use crate::hsm::{Hsm, HsmSettings, Module};
use crate::pki::ocsp::Responder;
use crate::pki::Issuer;
use crate::service::outbound::HttpTransport;
use crate::signing::SigningCore;
use crate::state::{read_certificates, Delegate};
use crate::store::{redact, Database, SpentTokens};
use crate::tsa::{ExternalTsas, TimeStampAuthority};
use crate::{Error, ErrorKind};

/// Opens the token and builds everything a request needs.
pub fn signing_core(config: &Config, module: &Module) -> Result<Arc<SigningCore>, Error> {
    let hsm = Hsm::open(
        module,
        &pin(&config.hsm.pin)?,
        HsmSettings {
            token_label: config.hsm.token_label.clone(),
            sessions: config.hsm.sessions,
            issuing_key_label: config.hsm.issuing_key_label.clone(),
            ephemeral_label: config.hsm.ephemeral_key_label.clone(),
            watchdog: Some(config.hsm.watchdog()),
            key_pool: config.hsm.key_pool.clone(),
        },
    )?;
    let issuing = single_certificate(&config.issuing_certificate)?;
    let root = single_certificate(&config.root_certificate)?;
    let issuer = Issuer::from_der(issuing.clone())?;
    check_issuing_key(&hsm, &issuer, &config.hsm.issuing_key_label)?;
    let chain = vec![der::Any::from_der(&issuing)
        .map_err(|e| Error::internal("the issuing CA certificate is not DER").with_source(e))?];
    let root_issuer = Issuer::from_der(root.clone()).map_err(|e| {
        Error::internal(format!(
            "{} is not a certificate",
            config.root_certificate.display()
        ))
        .with_source(e)
    })?;

    let jwks = std::fs::read_to_string(&config.token.jwks_file).map_err(|e| {
        Error::internal(format!(
            "cannot read the IdP JWKS {}",
            config.token.jwks_file.display()
        ))
        .with_source(e)
    })?;
    let mut policy = TokenPolicy::new(config.token.issuer.clone(), config.token.audience.clone());
    policy.leeway = config.token.leeway;
    policy.max_lifetime = config.token.max_lifetime;
    let database = database(config)?;
    // One writer per replica: the ledger's and the audit log's operations
    // share its transactions.
    let spent = database.clone().map(SpentTokens::new);
    let verifier = single_use(Verifier::new(policy, &jwks)?, config, spent.as_ref())?;
    let profiles = Profiles::new(config.profiles.clone())?;
    let tsa = time_stamp_authority(config, &hsm)?;
    let ocsp = ocsp_responder(config, &hsm, &issuer)?;
    // On the ledger's database: a reservation brings the registry's profile
    // version with it (SPEC §9, `signing::live`).
    let registry = crate::registry::flow::open(config, database.as_ref(), &hsm, &root)?;
    let mut certificate_policy = config.certificate.clone();
    certificate_policy.ocsp_url = config.ocsp.as_ref().map(|o| o.url.clone());
    let audit = audit_log(config, &hsm, database.as_ref(), spent)?;
    Ok(Arc::new(SigningCore {
        database,
        audit,
        hsm,
        issuer,
        root: root_issuer,
        root_key_label: config.root_key_label.clone(),
        chain,
        trust_chain: vec![issuing, root],
        policy: certificate_policy,
        ocsp,
        verifier,
        profiles,
        limits: config.limits.clone(),
        limiter: crate::limits::Limiter::new(&config.limits),
        tsa,
        external_tsa: external_tsas(config),
        registry,
    }))
}

/// `[database]`, opened and migrated.
fn database(config: &Config) -> Result<Option<Database>, Error> {
    let Some(settings) = &config.database else {
        return Ok(None);
    };
    let database = Database::open(&settings.url, settings.max_connections).map_err(|e| {
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot open the database {}", redact(&settings.url)),
        )
        .with_source(e)
    })?;
    Ok(Some(database))
}

/// SPEC §3, §12: spent tokens in the database when there is one (shared by
/// every replica), else in the journal file (one server), else in memory.
fn single_use(
    verifier: Verifier,
    config: &Config,
    spent: Option<&SpentTokens>,
) -> Result<Verifier, Error> {
    match (spent, &config.token.replay_journal) {
        (Some(spent), journal) => {
            if let Some(path) = journal {
                tracing::warn!(
                    journal = %path.display(),
                    "[token] replay_journal is ignored: spent tokens are kept in [database]"
                );
            }
            Ok(verifier.with_ledger(Arc::new(spent.clone())))
        }
        (None, Some(path)) => Ok(verifier.with_journal(path, std::time::SystemTime::now())?),
        (None, None) => Ok(verifier),
    }
}

/// The audit log of `[audit]` (SPEC §11), in the `[database]`.
fn audit_log(
    config: &Config,
    hsm: &Hsm,
    database: Option<&Database>,
    spent: Option<SpentTokens>,
) -> Result<Option<Arc<crate::audit::Log>>, Error> {
    let Some(audit) = &config.audit else {
        return Ok(None);
    };
    let database = database.ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "[audit] needs a [database] to keep the log in",
        )
    })?;
    let spent = spent.unwrap_or_else(|| SpentTokens::new(database.clone()));
    let log =
        crate::audit::Log::start(database.clone(), spent, hsm.clone(), audit.settings.clone())?;
    Ok(Some(log))
}

/// `qsign init-audit`: the Ed25519 audit key of `[audit]` in the token, its
/// verifier key written to `[audit] vkey`; refuses to replace either.
pub fn init_audit(config: &Config, module: &Module) -> Result<String, Error> {
    let audit = config.audit.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the configuration has no [audit] table; add one (see qsign.toml of a dev state dir)",
        )
    })?;
    if audit.vkey.exists() {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("{} exists; refusing to replace it", audit.vkey.display()),
        ));
    }
    let hsm = setup_hsm(config, module)?;
    let settings = &audit.settings;
    let vkey = crate::audit::create_key(&hsm, &settings.key_label, &settings.origin)?;
    std::fs::write(&audit.vkey, format!("{vkey}\n")).map_err(|e| {
        Error::internal(format!("cannot write {}", audit.vkey.display())).with_source(e)
    })?;
    Ok(vkey)
}

/// The built-in TSA of `[tsa]`, checked against its key in the token.
fn time_stamp_authority(
    config: &Config,
    hsm: &Hsm,
) -> Result<Option<Arc<TimeStampAuthority>>, Error> {
    let Some(tsa) = &config.tsa else {
        return Ok(None);
    };
    let certificate = single_certificate(&tsa.certificate)?;
    let settings = tsa.settings.clone();
    let authority = hsm.run_blocking(move |session| {
        let key = session.persistent_public_key(&settings.key_label)?;
        let signer = session.session_signer(&settings.key_label)?;
        TimeStampAuthority::new(&key, &signer, settings, certificate)
    })?;
    Ok(Some(Arc::new(authority)))
}

/// `[tsa] urls`, reached over HTTP: the only place the domain's
/// [`Transport`](crate::tsa::Transport) meets its adapter.
fn external_tsas(config: &Config) -> Option<ExternalTsas> {
    let urls = config.tsa.as_ref().map(|t| t.urls.clone())?;
    (!urls.is_empty()).then(|| ExternalTsas::new(urls, Arc::new(HttpTransport)))
}

/// The OCSP responder of `[ocsp]`, checked against its key in the token.
fn ocsp_responder(
    config: &Config,
    hsm: &Hsm,
    issuer: &Issuer,
) -> Result<Option<Arc<Responder>>, Error> {
    let Some(ocsp) = &config.ocsp else {
        return Ok(None);
    };
    let responder = Responder::new(
        ocsp.key_label.clone(),
        single_certificate(&ocsp.certificate)?,
        issuer,
    )?;
    let label = ocsp.key_label.clone();
    let in_token = hsm.run_blocking(move |session| Ok(session.persistent_public_key(&label)?))?;
    if in_token
        != responder
            .certificate()
            .tbs_certificate
            .subject_public_key_info
    {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "the OCSP responder certificate does not match the token key '{}'",
                ocsp.key_label
            ),
        ));
    }
    Ok(Some(Arc::new(responder)))
}

/// Refuse to serve when the issuing certificate does not belong to the
/// issuing key (as rustls refuses inconsistent credentials).
fn check_issuing_key(hsm: &Hsm, issuer: &Issuer, label: &str) -> Result<(), Error> {
    let owned = label.to_owned();
    let in_token = hsm.run_blocking(move |session| Ok(session.persistent_public_key(&owned)?))?;
    if in_token != issuer.certificate.tbs_certificate.subject_public_key_info {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("the issuing CA certificate does not match the token key '{label}'"),
        ));
    }
    Ok(())
}

fn single_certificate(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    let mut certificates = read_certificates(path)?;
    match certificates.len() {
        1 => Ok(certificates.remove(0)),
        n => Err(Error::internal(format!(
            "{} must hold exactly one certificate, it holds {n}",
            path.display()
        ))),
    }
}

/// The token's user PIN, from a file or an environment variable.
pub fn pin(source: &PinSource) -> Result<AuthPin, Error> {
    let value = match source {
        PinSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot read the HSM PIN file {}", path.display()),
            )
            .with_source(e)
        })?,
        PinSource::Env(name) => std::env::var(name).map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                format!("environment variable {name} (HSM PIN) is not set"),
            )
        })?,
    };
    Ok(AuthPin::from(value.trim().to_owned()))
}

/// Loads the configuration and the PKCS#11 module: from `--config`, or from
/// the embedded default in `state_dir` (created on first start).
///
/// Sets `SOFTHSM2_CONF` for SoftHSM, which reads it when the module is
/// initialised: call this before other threads start (`main` calls it
/// before the async runtime exists).
pub fn load(
    config: Option<&std::path::Path>,
    state_dir: &std::path::Path,
    listen: Option<std::net::SocketAddr>,
) -> Result<(Config, Module), Error> {
    use crate::state::{softhsm_module, StateDir, CONFIG};
    let mut module = None;
    let config_path = match config {
        Some(path) => path.to_owned(),
        None => {
            let state = StateDir::open(state_dir)?;
            tracing::warn!(
                dir = %state.path().display(),
                "DEVELOPMENT setup: the identity provider's private key is dev-idp-key.pem in the \
                 state directory, so anyone who can read it can sign; never use it in production"
            );
            std::env::set_var("SOFTHSM2_CONF", state.softhsm_conf()?);
            if !state.is_initialised() {
                let loaded = Module::load(&softhsm_module())?;
                let default_listen = std::net::SocketAddr::from(([127, 0, 0, 1], 50051));
                state.bootstrap(&loaded, listen.unwrap_or(default_listen))?;
                module = Some(loaded);
            }
            state.file(CONFIG)
        }
    };
    let mut config = Config::load(&config_path)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let module = match module {
        Some(module) => module,
        None => {
            if let Some(conf) = &config.hsm.softhsm_conf {
                std::env::set_var("SOFTHSM2_CONF", conf);
            }
            Module::load(&config.hsm.module)?
        }
    };
    Ok((config, module))
}

/// `qsign init-ca`: a root and an issuing CA in the configured token, their
/// certificates written where the configuration expects them. For a token
/// made by hand (e.g. `softhsm/setup.sh DIR`) or a fresh HSM partition.
pub fn init_ca(
    config: &Config,
    module: &Module,
    root_key_label: &str,
    organization: &str,
) -> Result<(), Error> {
    for path in [&config.root_certificate, &config.issuing_certificate] {
        if path.exists() {
            return Err(Error::new(
                ErrorKind::FailedPrecondition,
                format!(
                    "{} exists; refusing to replace a CA certificate",
                    path.display()
                ),
            ));
        }
    }
    let hsm = setup_hsm(config, module)?;
    let (root, issuing) = crate::state::create_ca(
        &hsm,
        (root_key_label, &config.hsm.issuing_key_label),
        organization,
        &config.root_crl_url,
    )?;
    for (path, der) in [
        (&config.root_certificate, root),
        (&config.issuing_certificate, issuing),
    ] {
        let pem = crate::state::pem_certificate(&der)?;
        std::fs::write(path, pem).map_err(|e| {
            Error::internal(format!("cannot write {}", path.display())).with_source(e)
        })?;
    }
    Ok(())
}

/// `qsign init-tsa`: the TSA key of `[tsa]` in the configured token and its
/// certificate from the root (key `root_key_label`), written to `[tsa]
/// certificate`. For a `--config` deployment whose CA `init-ca` made.
pub fn init_tsa(
    config: &Config,
    module: &Module,
    root_key_label: &str,
    organization: &str,
) -> Result<(), Error> {
    let tsa = config.tsa.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the configuration has no [tsa] table; add one (see qsign.toml of a dev state dir)",
        )
    })?;
    let parent = (
        root_key_label,
        config.root_certificate.as_path(),
        config.root_crl_url.as_str(),
    );
    let made = (tsa.settings.key_label.as_str(), tsa.certificate.as_path());
    init_delegate(
        config,
        module,
        Delegate::TimeStamping,
        parent,
        made,
        organization,
    )
}

/// `qsign init-ocsp`: the OCSP responder key of `[ocsp]` in the configured
/// token and its certificate from the issuing CA, written to `[ocsp]
/// certificate`.
pub fn init_ocsp(config: &Config, module: &Module, organization: &str) -> Result<(), Error> {
    let ocsp = config.ocsp.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the configuration has no [ocsp] table; add one (see qsign.toml of a dev state dir)",
        )
    })?;
    let parent = (
        config.hsm.issuing_key_label.as_str(),
        config.issuing_certificate.as_path(),
        config.issuing_crl_url.as_str(),
    );
    let made = (ocsp.key_label.as_str(), ocsp.certificate.as_path());
    init_delegate(
        config,
        module,
        Delegate::OcspSigning,
        parent,
        made,
        organization,
    )
}

/// One session on the configured token, for the `init-*` commands.
fn setup_hsm(config: &Config, module: &Module) -> Result<Hsm, Error> {
    Ok(Hsm::open(
        module,
        &pin(&config.hsm.pin)?,
        HsmSettings {
            token_label: config.hsm.token_label.clone(),
            sessions: 1,
            issuing_key_label: config.hsm.issuing_key_label.clone(),
            ephemeral_label: config.hsm.ephemeral_key_label.clone(),
            watchdog: None,
            key_pool: Vec::new(),
        },
    )?)
}

/// Makes the key `made.0` of `delegate` under `parent` (key label,
/// certificate file, URL of its CRL) and writes its certificate to
/// `made.1`; refuses to replace either.
fn init_delegate(
    config: &Config,
    module: &Module,
    delegate: Delegate,
    parent: (&str, &Path, &str),
    made: (&str, &Path),
    organization: &str,
) -> Result<(), Error> {
    let (label, certificate) = made;
    if certificate.exists() {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!("{} exists; refusing to replace it", certificate.display()),
        ));
    }
    let parent_der = single_certificate(parent.1)?;
    let hsm = setup_hsm(config, module)?;
    let der = crate::state::create_delegate(
        &hsm,
        delegate,
        (parent.0, &parent_der, parent.2),
        label,
        organization,
    )?;
    std::fs::write(certificate, crate::state::pem_certificate(&der)?).map_err(|e| {
        Error::internal(format!("cannot write {}", certificate.display())).with_source(e)
    })
}

/// `qsign init-org-ca`: the organisation CA of `[registry]` (SPEC §9): its
/// key in the configured token and its certificate from the root (key
/// `root_key_label`), written to `[registry] certificate`.
pub fn init_org_ca(
    config: &Config,
    module: &Module,
    root_key_label: &str,
    organization: &str,
) -> Result<(), Error> {
    let registry = config.registry.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the configuration has no [registry] table; add one (see qsign.toml of a dev state dir)",
        )
    })?;
    if registry.certificate.exists() {
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "{} exists; refusing to replace it",
                registry.certificate.display()
            ),
        ));
    }
    let root = single_certificate(&config.root_certificate)?;
    let hsm = setup_hsm(config, module)?;
    let der = crate::state::create_organization_ca(
        &hsm,
        (root_key_label, &root, &config.root_crl_url),
        &registry.key_label,
        organization,
    )?;
    std::fs::write(&registry.certificate, crate::state::pem_certificate(&der)?).map_err(|e| {
        Error::internal(format!("cannot write {}", registry.certificate.display())).with_source(e)
    })
}
/// The audit log of a configuration, read whole: records, head size,
/// checkpoints (for `qsign audit verify|export|prove`).
fn read_audit_log(config: &Config) -> Result<crate::audit::verify::Export, Error> {
    let url = &config
        .database
        .as_ref()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "the configuration has no [database]",
            )
        })?
        .url;
    let database = Database::open(url, 1)?;
    let log = database.run_blocking(|db| async move {
        use crate::store::audit;
        let records = audit::records(&db).await?;
        let (size, _) = audit::head(&db).await?;
        Ok((records, size, audit::checkpoints(&db).await?))
    })?;
    database.close();
    Ok(log)
}

/// The `[audit] vkey` of a configuration as a note verifier.
pub fn audit_verifier(path: &Path) -> Result<crate::audit::NoteVerifier, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::FailedPrecondition,
            format!("cannot read the audit verifier key {}", path.display()),
        )
        .with_source(e)
    })?;
    crate::audit::NoteVerifier::from_vkey(&text).map_err(|e| {
        Error::new(
            ErrorKind::FailedPrecondition,
            format!("{} is not a signed-note verifier key", path.display()),
        )
        .with_source(e)
    })
}

/// `qsign audit verify`: the log of `config`, or of an export; a summary
/// line, or the first finding as the error.
pub fn audit_verify(
    config: Option<&Config>,
    export: Option<&Path>,
    vkey: &Path,
) -> Result<String, Error> {
    let verifier = audit_verifier(vkey)?;
    let (records, size, checkpoints) = match (export, config) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::invalid_argument(format!("cannot read {}", path.display())).with_source(e)
            })?;
            crate::audit::verify::read_export(&text).map_err(Error::invalid_argument)?
        }
        (None, Some(config)) => read_audit_log(config)?,
        (None, None) => {
            return Err(Error::invalid_argument(
                "give --config, --state-dir or --export",
            ))
        }
    };
    let summary = crate::audit::verify::verify(&records, size, &checkpoints, &verifier)
        .map_err(|finding| Error::new(ErrorKind::FailedPrecondition, finding.to_string()))?;
    Ok(format!(
        "audit log OK: {} records, {} signed checkpoints, root {}",
        summary.records,
        summary.checkpoints,
        hex::encode(summary.root)
    ))
}

/// `qsign audit export`: JSON lines (head, records, checkpoints).
pub fn audit_export(config: &Config) -> Result<String, Error> {
    use crate::audit::verify::ExportLine;
    let (records, size, checkpoints) = read_audit_log(config)?;
    let mut lines = vec![ExportLine::Head { size }];
    lines.extend(records.iter().map(ExportLine::record));
    lines.extend(
        checkpoints
            .into_iter()
            .map(|(size, note)| ExportLine::Checkpoint { size, note }),
    );
    let mut out = String::new();
    for line in lines {
        out.push_str(
            &serde_json::to_string(&line).map_err(|e| Error::internal("export").with_source(e))?,
        );
        out.push('\n');
    }
    Ok(out)
}

/// `qsign audit prove ID`: the C2SP tlog-proof of a record.
pub fn audit_prove(config: &Config, id: &str) -> Result<String, Error> {
    let audit = config.audit.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the configuration has no [audit] table",
        )
    })?;
    let verifier = audit_verifier(&audit.vkey)?;
    let (records, _, checkpoints) = read_audit_log(config)?;
    crate::audit::verify::prove(&records, &checkpoints, &verifier, id)
        .map_err(|e| Error::new(ErrorKind::FailedPrecondition, e))
}
