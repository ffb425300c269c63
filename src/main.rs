//! `qsign`: the server and its command-line client in one binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
    /// Run the gRPC server (embedded development default without --config).
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
        } => serve(config, state_dir, listen, tsa_listen),
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
) -> Result<(), String> {
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
    let tsa_listen = tsa_listen.or(config.tsa.as_ref().and_then(|t| t.listen));
    let runtime = runtime()?;
    runtime.block_on(async {
        // The TSA first: once the gRPC port answers, both are listening.
        let tsa_server = match tsa_listen {
            Some(address) => Some(tsa_endpoint(&core, address, tls.as_ref()).await?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        tracing::info!(address = %config.listen, tls = tls.is_some(), mtls, "qsign serving");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
        };
        let served = qsign::service::serve(core, listener, tls.as_ref(), shutdown).await;
        if let Some(task) = tsa_server {
            task.abort();
        }
        served.map_err(|e| e.to_string())
    })?;
    drop(runtime);
    module.finalize();
    Ok(())
}

/// Starts the HTTP front door (RFC 3161, CRLs, OCSP, CA certificates,
/// metrics) on `address` (HTTPS with `tls`).
async fn tsa_endpoint(
    core: &std::sync::Arc<qsign::signing::SigningCore>,
    address: SocketAddr,
    tls: Option<&qsign::service::Tls>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        format!("cannot listen on {address} for the TSA: {e}; change [tsa] listen or --tsa-listen")
    })?;
    tracing::info!(%address, tsa = core.tsa.is_some(), ocsp = core.ocsp.is_some(), tls = tls.is_some(), "HTTP: RFC 3161 time-stamping, the CAs' CRLs and certificates, OCSP, metrics");
    let serving = qsign::service::http::serve(
        core.clone(),
        listener,
        tls.map(|t| t.acceptor(qsign::service::tls::ALPN_HTTP1)),
        std::future::pending(),
    );
    Ok(tokio::spawn(serving))
}

fn init_ca(
    config: PathBuf,
    root_key_label: Option<String>,
    organization: &str,
) -> Result<(), String> {
    let (config, module) =
        qsign::app::load(Some(&config), Path::new(""), None).map_err(|e| e.to_string())?;
    let root_key_label = root_key_label.as_deref().unwrap_or(&config.root_key_label);
    qsign::app::init_ca(&config, &module, root_key_label, organization)
        .map_err(|e| e.to_string())?;
    module.finalize();
    println!("{}", config.root_certificate.display());
    Ok(())
}

fn init_ocsp(config: PathBuf, organization: &str) -> Result<(), String> {
    let (config, module) =
        qsign::app::load(Some(&config), Path::new(""), None).map_err(|e| e.to_string())?;
    qsign::app::init_ocsp(&config, &module, organization).map_err(|e| e.to_string())?;
    module.finalize();
    if let Some(ocsp) = &config.ocsp {
        println!("{}", ocsp.certificate.display());
    }
    Ok(())
}

fn init_tsa(
    config: PathBuf,
    root_key_label: Option<String>,
    organization: &str,
) -> Result<(), String> {
    let (config, module) =
        qsign::app::load(Some(&config), Path::new(""), None).map_err(|e| e.to_string())?;
    let root_key_label = root_key_label.as_deref().unwrap_or(&config.root_key_label);
    qsign::app::init_tsa(&config, &module, root_key_label, organization)
        .map_err(|e| e.to_string())?;
    module.finalize();
    if let Some(tsa) = &config.tsa {
        println!("{}", tsa.certificate.display());
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
