//! The SoftHSM fixture, an in-process server, token minting and the
//! external verifiers (openssl, the shared pyHanko validators).

pub mod admin;
pub mod binary;
pub mod hang;
pub mod pki;
pub mod postgres;
pub mod token_copy;
pub mod tools;
pub mod webdriver;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use qsign::auth::dev::{dev_subject, DevClaims, DevIdp};
use qsign::config::{Config, DatabaseConfig};
use qsign::hsm::{Hsm, HsmSettings, Module};
use qsign::proto::signing_service_client::SigningServiceClient;
use qsign::proto::{self, SignPdfRequest};
use qsign::signing::SigningCore;
use qsign::state;
use tonic::transport::Channel;

pub struct Env {
    pub dir: PathBuf,
    pub config: Config,
    pub module: Module,
    pub idp: DevIdp,
    /// A session pool of the fixture's own, for looking into the token.
    pub hsm: Hsm,
    _temp: tempfile::TempDir,
}

static ENV: OnceLock<Env> = OnceLock::new();

/// Closes `hsm` as `qsign serve` does at shutdown: every key destroyed,
/// every session closed, no call left behind.
pub fn close_clean(hsm: Hsm) {
    let deadline = std::time::Instant::now() + hsm.shutdown_wait();
    let closed = hsm.close(deadline);
    assert_eq!(closed.ephemeral_keys_alive, 0, "no ephemeral key alive");
    assert_eq!(closed.calls_in_progress, 0, "every call returned");
}

/// The process-wide fixture: SoftHSM token, CA and dev IdP, made once.
pub fn env() -> &'static Env {
    ENV.get_or_init(|| {
        let temp = tempfile::Builder::new()
            .prefix("qsign-test-")
            .tempdir()
            .expect("tempdir");
        let dir = temp.path().join("state");
        let (config, module) = qsign::app::load(None, &dir, None).expect("development state");
        let pem = std::fs::read_to_string(dir.join(state::DEV_IDP_KEY)).expect("dev IdP key");
        let idp = DevIdp::from_pkcs8_pem(&pem).expect("dev IdP key parses");
        let hsm = Hsm::open(
            &module,
            &qsign::app::pin(&config.hsm.pin).expect("pin"),
            HsmSettings {
                token_label: config.hsm.token_label.clone(),
                sessions: 2,
                issuing_key_label: config.hsm.issuing_key_label.clone(),
                ephemeral_label: "qsign-test-fixture".into(),
                watchdog: None,
                key_pool: Vec::new(),
            },
        )
        .expect("fixture HSM");
        Env {
            dir,
            config,
            module,
            idp,
            hsm,
            _temp: temp,
        }
    })
}

impl Env {
    pub fn root_ca(&self) -> PathBuf {
        self.dir.join(state::ROOT_CA)
    }

    /// A signing core whose ephemeral keys carry `label`.
    pub fn core(&self, label: &str, tweak: impl FnOnce(&mut Config)) -> Arc<SigningCore> {
        let mut config = self.config.clone();
        config.hsm.ephemeral_key_label = key_label(label);
        // One journal of spent tokens per test: a "restart" reuses it. A
        // test that wants a database sets one (`sqlite`, `database`).
        config.token.replay_journal = Some(self.dir.join(format!("spent-tokens-{label}")));
        config.database = None;
        // The audit log is off unless a test turns it on (tests/audit.rs,
        // each with a database of its own).
        config.audit = None;
        tweak(&mut config);
        // The registry lives in the database: only with one.
        if config.database.is_none() {
            config.registry = None;
        }
        qsign::app::signing_core(&config, &self.module).expect("signing core")
    }

    /// `[database]` on the SQLite file of the test `label` (made on first
    /// use; cores of one label share it, as replicas would).
    pub fn sqlite(&self, label: &str) -> DatabaseConfig {
        database(&qsign::store::Database::sqlite_url(
            &self.dir.join(format!("{label}.db")),
        ))
    }

    /// `[ocsp]` with the development state's responder, answering at `url`.
    pub fn ocsp_config(&self, url: &str) -> qsign::config::OcspConfig {
        qsign::config::OcspConfig {
            key_label: state::OCSP_KEY_LABEL.into(),
            certificate: self.dir.join(state::OCSP_CERTIFICATE),
            url: url.into(),
        }
    }

    /// Objects in the token that carry the ephemeral label of `label`.
    pub fn leftover_keys(&self, label: &str) -> usize {
        let label = key_label(label);
        self.hsm
            .run_blocking(move |s| Ok(s.objects_labelled(&label)?.len()))
            .expect("find objects")
    }

    /// An activation token for `digests`.
    pub fn token(&self, who: &Who, digests: &[[u8; 32]]) -> String {
        self.token_at(who, digests, SystemTime::now(), Duration::from_secs(300))
    }

    pub fn token_at(
        &self,
        who: &Who,
        digests: &[[u8; 32]],
        now: SystemTime,
        lifetime: Duration,
    ) -> String {
        self.idp
            .mint(&who.claims(digests), now, lifetime)
            .expect("mint")
    }
}

/// `[database]` at `url` (e.g. a `postgres::Postgres`).
pub fn database(url: &str) -> DatabaseConfig {
    DatabaseConfig {
        url: url.into(),
        max_connections: 4,
    }
}

pub fn key_label(test: &str) -> String {
    format!("qsign-test-{test}")
}

/// The person behind a token.
pub struct Who {
    pub given: &'static str,
    pub family: &'static str,
    pub cvr: &'static str,
    pub seal_profiles: Vec<&'static str>,
}

impl Who {
    pub fn jens() -> Self {
        Self {
            given: "Jens",
            family: "Hansen",
            cvr: state::DEV_CVR,
            seal_profiles: vec![],
        }
    }

    pub fn sealer() -> Self {
        Self {
            given: "Mette",
            family: "Sørensen",
            cvr: state::DEV_CVR,
            seal_profiles: vec![state::DEV_PROFILE],
        }
    }

    pub fn claims(&self, digests: &[[u8; 32]]) -> DevClaims {
        DevClaims {
            issuer: state::DEV_ISSUER.into(),
            audience: state::DEV_AUDIENCE.into(),
            subject: dev_subject(&format!("{} {}", self.given, self.family)),
            given_name: Some(self.given.into()),
            family_name: Some(self.family.into()),
            org_cvr: self.cvr.into(),
            org_name: state::DEV_ORGANIZATION.into(),
            seal_profiles: self.seal_profiles.iter().map(|s| s.to_string()).collect(),
            digests: digests.to_vec(),
            jti: None,
        }
    }
}

/// An in-process server on an ephemeral port, stopped on drop.
pub struct Server {
    pub address: SocketAddr,
    #[allow(dead_code)]
    pub core: Arc<SigningCore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(core: Arc<SigningCore>) -> Self {
        Self::start_with(core, None).await
    }

    /// With `tls`, the port speaks TLS (and asks for client certificates
    /// as `tls` says).
    pub async fn start_with(core: Arc<SigningCore>, tls: Option<qsign::service::Tls>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = core.clone();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            qsign::service::serve(serving, listener, tls.as_ref(), shutdown)
                .await
                .expect("serve");
        });
        Self {
            address,
            core,
            stop: Some(stop),
            serving: Some(task),
        }
    }

    /// Stops serving and waits until the server has let go of its core
    /// (e.g. of a journal's lock), unlike a plain drop.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving.await.expect("the server stops");
        }
    }

    pub async fn client(&self) -> SigningServiceClient<Channel> {
        self.client_from(None).await
    }

    /// A client whose connection comes from `local` (e.g. 127.0.0.2: Linux
    /// routes all of 127/8 to lo), a different calling system.
    pub async fn client_from(
        &self,
        local: Option<std::net::IpAddr>,
    ) -> SigningServiceClient<Channel> {
        Self::client_at(self.address, local).await
    }

    /// A client of the server at `address` (for spawned tasks).
    pub async fn client_for(address: SocketAddr) -> SigningServiceClient<Channel> {
        Self::client_at(address, None).await
    }

    async fn client_at(
        address: SocketAddr,
        local: Option<std::net::IpAddr>,
    ) -> SigningServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("uri")
            .local_address(local)
            .connect()
            .await
            .expect("connect");
        SigningServiceClient::new(channel)
            .max_decoding_message_size(1 << 30)
            .max_encoding_message_size(1 << 30)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a server for the test `label` with the default configuration.
pub async fn server(label: &str) -> Server {
    Server::start(env().core(label, |_| {})).await
}

/// A SignPdf request at `level` with a token of `who` for `pdf`; `seal`
/// names a seal profile, or is empty for a personal signature.
pub fn sign_pdf_request(
    pdf: Vec<u8>,
    who: &Who,
    seal: &str,
    level: proto::Level,
) -> SignPdfRequest {
    SignPdfRequest {
        activation_token: env().token(who, &[sha256(&pdf)]),
        pdf,
        seal_profile: seal.into(),
        level: level as i32,
        key_algorithm: proto::KeyAlgorithm::EcP256 as i32,
        reason: None,
        location: None,
        contact_info: None,
        appearance: None,
        field_name: None,
        language: None,
        time_zone: None,
    }
}

/// A file of the shared corpus: its path and bytes; `None` (the test
/// skips) when the corpus is missing, which fails the test under CI.
pub fn corpus_file(name: &str) -> Option<(PathBuf, Vec<u8>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus")
        .join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some((path, bytes)),
        Err(_) => {
            assert!(
                !tools::in_ci(),
                "the shared corpus is required under CI=true"
            );
            None
        }
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
