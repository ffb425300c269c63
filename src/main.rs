//! `qsign`: the server and its command-line client in one binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use qsign::client::{self, Connection, DetachedJob, TokenSource};
use qsign::proto;

#[derive(Parser)]
#[command(
    version,
    about = "Remote qualified signing: ephemeral keys in a PKCS#11 token"
)]
struct Cli {
    /// Log lines as text or as JSON objects (one a line, for collectors).
    #[arg(long, global = true, env = "QSIGN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by RUST_LOG (default info); each line carries
/// its spans' fields, so a request's lines name its `request_id`.
fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().with_current_span(true).init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the gRPC server (embedded development default without --config)
    ///
    /// SIGTERM or SIGINT: the requests in flight get [limits] shutdown_grace_seconds,
    /// then the HSM's threads [hsm] watchdog_seconds to end.
    ///
    /// Exit status:
    ///   0   stopped: every ephemeral key destroyed, every session closed
    ///   1   could not start or serve
    ///   69  the HSM token hung at shutdown (sysexits EX_UNAVAILABLE): calls
    ///       still in progress, their sessions left to end with the process
    #[command(verbatim_doc_comment)]
    Serve {
        /// Configuration file; without it, the embedded default in --state-dir.
        #[arg(long)]
        config: Option<PathBuf>,
        /// State directory of the embedded default.
        #[arg(long, default_value = ".qsign")]
        state_dir: PathBuf,
        /// Listen address (overrides the configuration).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Address of the RFC 3161 HTTP time-stamping endpoint (overrides
        /// `[tsa] listen`; needs a `[tsa]` table).
        #[arg(long)]
        tsa_listen: Option<SocketAddr>,
    },
    /// Create a root and an issuing CA in the token of a configuration.
    InitCa {
        #[arg(long)]
        config: PathBuf,
        /// Label of the root CA key in the token (default: `[ca] root_key_label`).
        #[arg(long)]
        root_key_label: Option<String>,
        /// Organisation named in the CA certificates.
        #[arg(long, default_value = "qsign")]
        organization: String,
    },
    /// Sign a PDF (PAdES); big files are signed hash-only, streaming.
    SignPdf {
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Seal with this organisation profile instead of signing personally.
        #[arg(long)]
        seal: Option<String>,
        /// A visible signature: PAGE,X,Y,W,H (points, origin bottom left).
        #[arg(long, value_parser = parse_visible)]
        visible: Option<(u32, [f32; 4])>,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        location: Option<String>,
        #[arg(long)]
        contact_info: Option<String>,
        /// Fill this existing empty signature field (or name the new one).
        #[arg(long = "field")]
        field_name: Option<String>,
        /// Language of the visible text: da (default) or en.
        #[arg(long)]
        language: Option<String>,
        /// Time zone of the visible time (default Europe/Copenhagen).
        #[arg(long)]
        time_zone: Option<String>,
        /// Files above this many bytes are signed hash-only (SignPdfDigest).
        #[arg(long, default_value_t = 8 << 20)]
        hash_only_above: u64,
        /// fsync the output before renaming it into place (survives a power loss).
        #[arg(long)]
        durable: bool,
        #[command(flatten)]
        common: ClientArgs,
    },
    /// Create the time-stamping authority of `[tsa]`: a key in the token and
    /// a certificate from the root CA that init-ca made.
    InitTsa {
        #[arg(long)]
        config: PathBuf,
        /// Label of the root CA key in the token (default: `[ca] root_key_label`).
        #[arg(long)]
        root_key_label: Option<String>,
        /// Organisation named in the TSA certificate.
        #[arg(long, default_value = "qsign")]
        organization: String,
    },
    /// Create the OCSP responder of `[ocsp]`: a key in the token and a certificate from the issuing CA that init-ca made
    InitOcsp {
        #[arg(long)]
        config: PathBuf,
        /// Organisation named in the responder's certificate.
        #[arg(long, default_value = "qsign")]
        organization: String,
    },
    /// Create the organisation CA of `[registry]` (SPEC §9): a key in the
    /// token and a certificate from the root CA that init-ca made.
    InitOrgCa {
        #[arg(long)]
        config: PathBuf,
        /// Label of the root CA key in the token (default: `[ca] root_key_label`).
        #[arg(long)]
        root_key_label: Option<String>,
        /// Organisation named in the CA certificate.
        #[arg(long, default_value = "qsign")]
        organization: String,
    },
    /// Administer profiles and organisation certificates (SPEC §9).
    Admin(qsign::client::admin::AdminArgs),
    /// Create the Ed25519 audit key of `[audit]` in the token and write its
    /// verifier key to `[audit] vkey`.
    InitAudit {
        #[arg(long)]
        config: PathBuf,
    },
    /// The audit log (SPEC §11): verify it, export it, prove a record.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Sign files as detached CAdES; writes FILE.p7s next to each.
    SignDetached {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Seal with this organisation profile instead of signing personally.
        #[arg(long)]
        seal: Option<String>,
        /// Send only SHA-256 digests; the files never leave this machine.
        #[arg(long)]
        digest_only: bool,
        #[command(flatten)]
        common: ClientArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every leaf and the tree, check every checkpoint; name the
    /// first edited, deleted, inserted or reordered record (exit status 1).
    Verify {
        #[command(flatten)]
        source: AuditSource,
        /// Verify a `qsign audit export` file instead of the database.
        #[arg(long)]
        export: Option<PathBuf>,
        /// The log's verifier key; default: `[audit] vkey` of the configuration.
        #[arg(long)]
        vkey: Option<PathBuf>,
    },
    /// Print the log as JSON lines (head, records, checkpoints).
    Export {
        #[command(flatten)]
        source: AuditSource,
    },
    /// Print the C2SP tlog-proof of the record ID (a signature_id).
    Prove {
        id: String,
        #[command(flatten)]
        source: AuditSource,
    },
}

/// Which log: a configuration file, or the development state directory.
#[derive(clap::Args)]
struct AuditSource {
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value = ".qsign")]
    state_dir: PathBuf,
}

impl AuditSource {
    fn config(&self) -> Result<qsign::config::Config, String> {
        let path = match &self.config {
            Some(path) => path.clone(),
            None => self.state_dir.join(qsign::state::CONFIG),
        };
        qsign::config::Config::load(&path).map_err(|e| e.to_string())
    }
}

#[derive(clap::Args)]
struct ClientArgs {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    server: String,
    /// CA certificate (PEM) that signed an https server's certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Client certificate (PEM) for a server that asks for one (mTLS).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// The activation token (compact JWS) issued by the identity provider.
    #[arg(long, conflicts_with = "dev_identity")]
    token: Option<PathBuf>,
    /// DEVELOPMENT: mint the token from the state dir's dev IdP for "Given Family".
    #[arg(long)]
    dev_identity: Option<String>,
    /// State directory holding the dev IdP key.
    #[arg(long, default_value = ".qsign")]
    state_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::EcP256)]
    key_algorithm: KeyAlgorithm,
    /// Signature level (SPEC §6); without it, the server's default (B-T
    /// wherever a TSA is available).
    #[arg(long, value_enum)]
    level: Option<Level>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    #[value(name = "b-b")]
    BB,
    #[value(name = "b-t")]
    BT,
    #[value(name = "b-lt")]
    BLt,
    #[value(name = "b-lta")]
    BLta,
}

#[derive(Clone, Copy, ValueEnum)]
enum KeyAlgorithm {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
}

impl ClientArgs {
    fn connection(&self) -> Connection {
        Connection {
            server: self.server.clone(),
            ca: self.ca.clone(),
            identity: self.cert.clone().zip(self.key.clone()),
        }
    }

    fn token(&self) -> Result<TokenSource, String> {
        match (&self.token, &self.dev_identity) {
            (Some(file), None) => Ok(TokenSource::File(file.clone())),
            (None, Some(name)) => Ok(TokenSource::Dev {
                state_dir: self.state_dir.clone(),
                name: name.clone(),
            }),
            _ => Err("give --token FILE or --dev-identity \"Given Family\"".into()),
        }
    }

    fn level(&self) -> proto::Level {
        match self.level {
            None => proto::Level::Unspecified,
            Some(Level::BB) => proto::Level::BB,
            Some(Level::BT) => proto::Level::BT,
            Some(Level::BLt) => proto::Level::BLt,
            Some(Level::BLta) => proto::Level::BLta,
        }
    }

    fn key_algorithm(&self) -> proto::KeyAlgorithm {
        match self.key_algorithm {
            KeyAlgorithm::EcP256 => proto::KeyAlgorithm::EcP256,
            KeyAlgorithm::EcP384 => proto::KeyAlgorithm::EcP384,
            KeyAlgorithm::Rsa2048 => proto::KeyAlgorithm::Rsa2048,
            KeyAlgorithm::Rsa3072 => proto::KeyAlgorithm::Rsa3072,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Serve {
            config,
            state_dir,
            listen,
            tsa_listen,
        } => match serve(config, state_dir, listen, tsa_listen) {
            Ok(status) => return status,
            Err(e) => Err(e),
        },
        Command::InitCa {
            config,
            root_key_label,
            organization,
        } => init_ca(config, root_key_label, &organization),
        Command::InitTsa {
            config,
            root_key_label,
            organization,
        } => init_tsa(config, root_key_label, &organization),
        Command::InitOcsp {
            config,
            organization,
        } => init_ocsp(config, &organization),
        Command::InitOrgCa {
            config,
            root_key_label,
            organization,
        } => init_org_ca(config, root_key_label, &organization),
        Command::Admin(args) => runtime().and_then(|r| {
            r.block_on(qsign::client::admin::run(args))
                .map_err(|e| e.to_string())
        }),
        Command::InitAudit { config } => init_audit(config),
        Command::Audit { command } => audit(command),
        Command::SignDetached {
            files,
            seal,
            digest_only,
            common,
        } => sign_detached(files, seal, digest_only, &common),
        Command::SignPdf {
            input,
            output,
            seal,
            visible,
            reason,
            location,
            contact_info,
            field_name,
            language,
            time_zone,
            hash_only_above,
            durable,
            common,
        } => {
            let job = client::PdfJob {
                input,
                output,
                seal_profile: seal,
                options: qsign::signing::PdfOptions {
                    reason,
                    location,
                    contact_info,
                    visible,
                    field_name,
                    language,
                    time_zone,
                },
                key_algorithm: common.key_algorithm(),
                level: common.level(),
                hash_only_above,
                durable,
            };
            sign_pdf(&job, &common)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qsign: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    config: Option<PathBuf>,
    state_dir: PathBuf,
    listen: Option<SocketAddr>,
    tsa_listen: Option<SocketAddr>,
) -> Result<ExitCode, String> {
    // Before any thread exists: SoftHSM reads SOFTHSM2_CONF from the environment.
    let (config, module) =
        qsign::app::load(config.as_deref(), &state_dir, listen).map_err(|e| e.to_string())?;
    // One TLS set-up for both listeners (SPEC §12), checked before the HSM.
    let tls = config
        .tls
        .as_ref()
        .map(qsign::service::Tls::load)
        .transpose()
        .map_err(|e| e.to_string())?;
    let core = qsign::app::signing_core(&config, &module).map_err(|e| e.to_string())?;
    let hsm = core.hsm.clone();
    let tsa_listen = tsa_listen.or(config.tsa.as_ref().and_then(|t| t.listen));
    let runtime = runtime()?;
    let csc = runtime.block_on(async {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        // The TSA first: once the gRPC port answers, both are listening.
        let tsa_server = match tsa_listen {
            Some(address) => {
                let shutdown = stopped(stopping.clone());
                Some(tsa_endpoint(&core, &config, address, tls.as_ref(), shutdown).await?)
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        tracing::info!(address = %config.listen, tls = tls.is_some(), mtls, "qsign serving");
        let grpc = qsign::service::serve(core, listener, tls.as_ref(), stopped(stopping));
        let (http, csc) = tsa_server.unzip();
        let cut_http = http.as_ref().map(tokio::task::JoinHandle::abort_handle);
        // Both listeners drain within the one grace.
        let serving = async {
            let served = grpc.await;
            if let (Ok(()), Some(http)) = (&served, http) {
                let _ = http.await;
            }
            served
        };
        let served = until_signalled(serving, stop, config.limits.shutdown_grace()).await;
        if let Some(http) = cut_http {
            http.abort();
        }
        let csc = csc.flatten();
        // Serving failed: no HSM shutdown follows, but the CSC keys go.
        if let (Err(_), Some(csc)) = (&served, &csc) {
            csc.shutdown(None);
        }
        served.map(|()| csc)
    })?;
    Ok(shut_down(runtime, csc, hsm, module))
}

/// After the requests' grace: the HSM's threads get until a deadline
/// (`Hsm::shutdown_wait`) to end. Threads still inside a call then (a hung
/// token) are left behind: no session closes, no C_Finalize (`Hsm::close`),
/// and the exit status says so.
fn shut_down(
    runtime: tokio::runtime::Runtime,
    csc: Option<std::sync::Arc<qsign::signing::csc::Csc>>,
    hsm: qsign::hsm::Hsm,
    module: qsign::hsm::Module,
) -> ExitCode {
    let deadline = Instant::now() + hsm.shutdown_wait();
    // SPEC §12, §13: no prepared CSC key outlives the process.
    if let Some(csc) = csc {
        csc.shutdown(Some(deadline));
    }
    // Cancels what the grace cut; their key guards run as they drop.
    runtime.shutdown_timeout(deadline.saturating_duration_since(Instant::now()));
    let closed = hsm.close(deadline);
    if closed.calls_in_progress > 0 {
        tracing::error!(
            calls_in_progress = closed.calls_in_progress,
            ephemeral_keys_alive = closed.ephemeral_keys_alive,
            "the HSM token hangs: calls did not return by the shutdown deadline; sessions not closed, module not finalised (the token drops their objects, ephemeral keys included, when this process's connection ends)"
        );
        module.leave();
        return ExitCode::from(EXIT_HSM_HUNG);
    }
    match closed.ephemeral_keys_alive {
        0 => tracing::info!(ephemeral_keys_alive = 0, "HSM sessions closed"),
        alive => tracing::error!(
            ephemeral_keys_alive = alive,
            "HSM sessions closed with ephemeral keys alive"
        ),
    }
    module.finalize();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// `qsign serve`'s exit status when the token hung at shutdown: sysexits.h
/// EX_UNAVAILABLE (a service it needs is unavailable), apart from 1 (could
/// not start) and 2 (usage).
const EXIT_HSM_HUNG: u8 = 69;

/// Serves until SIGTERM or SIGINT, then tells the listeners to stop
/// accepting (`stop`) and gives the requests in flight `grace` to finish;
/// a second signal, or the end of the grace, cuts them.
async fn until_signalled(
    serving: impl std::future::Future<Output = Result<(), qsign::Error>>,
    stop: tokio::sync::watch::Sender<bool>,
    grace: std::time::Duration,
) -> Result<(), String> {
    tokio::pin!(serving);
    let mut signals = Signals::new()?;
    tokio::select! {
        served = &mut serving => return served.map_err(|e| e.to_string()),
        name = signals.next() => tracing::info!(signal = name, grace_seconds = grace.as_secs(), "stopping: no new connections, finishing the requests in flight"),
    }
    stop.send_replace(true);
    tokio::select! {
        served = &mut serving => served.map_err(|e| e.to_string()),
        () = tokio::time::sleep(grace) => {
            tracing::warn!("the shutdown grace is over; cutting the connections still open");
            Ok(())
        }
        name = signals.next() => {
            tracing::warn!(signal = name, "second signal; cutting the connections still open");
            Ok(())
        }
    }
}

/// SIGTERM (service managers, Kubernetes) and SIGINT (Ctrl-C).
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
        Ok(Self {
            terminate: listen(SignalKind::terminate())?,
            interrupt: listen(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// Completes once `stop` says so (or its sender is gone).
async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Starts the HTTP front door (RFC 3161, CRLs, OCSP, CA certificates,
/// metrics, audit) on `address` (HTTPS with `tls`); with `[csc] enabled`,
/// the CSC API is served there too (SPEC §13).
async fn tsa_endpoint(
    core: &std::sync::Arc<qsign::signing::SigningCore>,
    config: &qsign::config::Config,
    address: SocketAddr,
    tls: Option<&qsign::service::Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<HttpEndpoint, String> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        format!("cannot listen on {address} for the TSA: {e}; change [tsa] listen or --tsa-listen")
    })?;
    tracing::info!(%address, tsa = core.tsa.is_some(), ocsp = core.ocsp.is_some(), tls = tls.is_some(), "HTTP: RFC 3161 time-stamping, the CAs' CRLs and certificates, OCSP, metrics");
    let csc = match config.csc.enabled {
        true => Some(
            qsign::signing::csc::Csc::start(core.clone(), (&config.csc).into())
                .map_err(|e| format!("cannot start the CSC API: {e}"))?,
        ),
        false => None,
    };
    let serving = qsign::service::http::serve_with(
        core.clone(),
        csc.clone(),
        listener,
        tls.map(|t| t.acceptor(qsign::service::tls::ALPN_HTTP1)),
        shutdown,
    );
    Ok((tokio::spawn(serving), csc))
}

/// The HTTP endpoint's task, and the CSC facade to shut down with it.
type HttpEndpoint = (
    tokio::task::JoinHandle<()>,
    Option<std::sync::Arc<qsign::signing::csc::Csc>>,
);

/// The `init-*` commands: loads `config`, lets `work` make its keys and
/// certificates in the token, closes the module, prints what `work` names
/// (the file it wrote, or the audit verifier key).
fn init_with(
    config: PathBuf,
    work: impl FnOnce(&qsign::config::Config, &qsign::hsm::Module) -> Result<String, qsign::Error>,
) -> Result<(), String> {
    let (config, module) =
        qsign::app::load(Some(&config), Path::new(""), None).map_err(|e| e.to_string())?;
    let made = work(&config, &module).map_err(|e| e.to_string())?;
    module.finalize();
    println!("{made}");
    Ok(())
}

fn init_ca(
    config: PathBuf,
    root_key_label: Option<String>,
    organization: &str,
) -> Result<(), String> {
    init_with(config, |config, module| {
        let root_key_label = root_key_label.as_deref().unwrap_or(&config.root_key_label);
        qsign::app::init_ca(config, module, root_key_label, organization)?;
        Ok(config.root_certificate.display().to_string())
    })
}

fn init_ocsp(config: PathBuf, organization: &str) -> Result<(), String> {
    init_with(config, |config, module| {
        qsign::app::init_ocsp(config, module, organization)?;
        Ok(shown(config.ocsp.as_ref().map(|o| &o.certificate)))
    })
}

fn init_org_ca(
    config: PathBuf,
    root_key_label: Option<String>,
    organization: &str,
) -> Result<(), String> {
    init_with(config, |config, module| {
        let root_key_label = root_key_label.as_deref().unwrap_or(&config.root_key_label);
        qsign::app::init_org_ca(config, module, root_key_label, organization)?;
        Ok(shown(config.registry.as_ref().map(|r| &r.certificate)))
    })
}

fn init_tsa(
    config: PathBuf,
    root_key_label: Option<String>,
    organization: &str,
) -> Result<(), String> {
    init_with(config, |config, module| {
        let root_key_label = root_key_label.as_deref().unwrap_or(&config.root_key_label);
        qsign::app::init_tsa(config, module, root_key_label, organization)?;
        Ok(shown(config.tsa.as_ref().map(|t| &t.certificate)))
    })
}

fn init_audit(config: PathBuf) -> Result<(), String> {
    init_with(config, qsign::app::init_audit)
}

/// A written file's path, for the `init-*` commands' output.
fn shown(path: Option<&PathBuf>) -> String {
    path.map(|p| p.display().to_string()).unwrap_or_default()
}

fn audit(command: AuditCommand) -> Result<(), String> {
    let text = match command {
        AuditCommand::Verify {
            source,
            export,
            vkey,
        } => {
            let config = match (&export, &source.config) {
                (Some(_), None) if vkey.is_some() => None,
                _ => Some(source.config()?),
            };
            let vkey = vkey
                .or_else(|| config.as_ref()?.audit.as_ref().map(|a| a.vkey.clone()))
                .ok_or("give --vkey FILE or a configuration with [audit]")?;
            qsign::app::audit_verify(config.as_ref(), export.as_deref(), &vkey)
        }
        AuditCommand::Export { source } => qsign::app::audit_export(&source.config()?),
        AuditCommand::Prove { id, source } => qsign::app::audit_prove(&source.config()?, &id),
    }
    .map_err(|e| e.to_string())?;
    print!("{text}");
    if !text.ends_with('\n') {
        println!();
    }
    Ok(())
}

fn sign_detached(
    files: Vec<PathBuf>,
    seal: Option<String>,
    digest_only: bool,
    args: &ClientArgs,
) -> Result<(), String> {
    let job = DetachedJob {
        files,
        seal_profile: seal,
        digest_only,
        key_algorithm: args.key_algorithm(),
        level: args.level(),
    };
    let token = args.token()?;
    let written = runtime()?
        .block_on(client::sign_detached(&args.connection(), &token, &job))
        .map_err(|e| e.to_string())?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

fn sign_pdf(job: &client::PdfJob, args: &ClientArgs) -> Result<(), String> {
    let token = args.token()?;
    let id = runtime()?
        .block_on(client::sign_pdf(&args.connection(), &token, job))
        .map_err(|e| e.to_string())?;
    eprintln!("signature {id}");
    println!("{}", job.output.display());
    Ok(())
}

fn parse_visible(text: &str) -> Result<(u32, [f32; 4]), String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [page, x, y, w, h] = parts.as_slice() else {
        return Err("expected PAGE,X,Y,W,H".into());
    };
    let number = |s: &str| {
        s.parse::<f32>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let page = page
        .parse::<u32>()
        .map_err(|_| format!("{page:?} is not a page number"))?;
    Ok((page, [number(x)?, number(y)?, number(w)?, number(h)?]))
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}
