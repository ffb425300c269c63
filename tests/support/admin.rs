//! The registry's test set-up (SPEC §9): a signing core on its own database
//! (SQLite file or a PostgreSQL URL) and outbox, served with its HTTP
//! listener; administration tokens and calls with a bearer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use qsign::config::DatabaseConfig;
use qsign::proto::administration_service_client::AdministrationServiceClient;
use qsign::registry::settings::MailTransport;
use qsign::signing::SigningCore;
use qsign::state;
use tonic::transport::Channel;

use super::{env, Server};

pub type AdminClient = AdministrationServiceClient<Channel>;

/// The organisation the registry tests administer (not the dev profile's).
pub const CVR: &str = "11223344";
pub const OTHER_CVR: &str = "55667788";

/// One replica: the gRPC server, its HTTP listener, its outbox.
pub struct Replica {
    pub server: Server,
    pub http: String,
    pub outbox: PathBuf,
    _dir: tempfile::TempDir,
}

/// A core for `label` on the database at `url` (None: a fresh SQLite file).
pub fn core(label: &str, url: Option<&str>, outbox: &Path) -> Arc<SigningCore> {
    core_with(label, url, outbox, |_| {})
}

/// [`core`] with `tweak` applied to its `[registry]` settings.
pub fn core_with(
    label: &str,
    url: Option<&str>,
    outbox: &Path,
    tweak: impl FnOnce(&mut qsign::registry::RegistrySettings),
) -> Arc<SigningCore> {
    let db = outbox.join("registry.db");
    let url = url.map_or_else(|| qsign::store::Database::sqlite_url(&db), str::to_owned);
    env().core(label, |config| {
        config.database = Some(DatabaseConfig {
            url,
            max_connections: 4,
        });
        let registry = config.registry.as_mut().expect("dev state has [registry]");
        registry.mail.transport = MailTransport::Outbox(outbox.join("outbox"));
        tweak(registry);
    })
}

impl Replica {
    pub async fn start(label: &str, url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let core = core(label, url, dir.path());
        Self::serve(core, dir).await
    }

    /// Serves `core`, whose outbox and database live in `dir`.
    pub async fn serve(core: Arc<SigningCore>, dir: tempfile::TempDir) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = format!("http://{}", listener.local_addr().unwrap());
        let serving =
            qsign::service::http::serve(core.clone(), listener, None, std::future::pending());
        tokio::spawn(serving);
        Self {
            server: Server::start(core).await,
            http,
            outbox: dir.path().join("outbox"),
            _dir: dir,
        }
    }

    pub async fn client(&self) -> AdministrationServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.server.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
        AdministrationServiceClient::new(channel)
    }

    /// The last code mailed to `email` (the `Kode: <code>` line).
    pub fn code_for(&self, email: &str) -> String {
        let mut mails = self.mails_to(email);
        mails.sort();
        let text = mails.last().expect("a mail to the address").1.clone();
        text.lines()
            .find_map(|l| l.strip_prefix("Kode: "))
            .expect("a Kode line")
            .trim()
            .to_owned()
    }

    /// (file name, text) of every mail in the outbox to `email`.
    pub fn mails_to(&self, email: &str) -> Vec<(String, String)> {
        let Ok(dir) = std::fs::read_dir(&self.outbox) else {
            return Vec::new();
        };
        dir.filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), text)
            })
            .filter(|(_, text)| text.contains(&format!("To: {email}")))
            .collect()
    }
}

/// An administration token of `sub` in `cvr` with `roles`.
pub fn token(sub: &str, cvr: &str, roles: &[&str]) -> String {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    qsign::auth::admin::mint_dev(
        &env().idp,
        state::DEV_ISSUER,
        qsign::auth::admin::DEFAULT_AUDIENCE,
        (sub, cvr, &roles),
        Duration::from_secs(300),
    )
    .unwrap()
}

/// The administrator of [`CVR`].
pub fn admin() -> String {
    token("ida", CVR, &["user_admin"])
}

/// `message` with `authorization: Bearer <token>`.
pub fn with<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// Runs openssl with `args`; (success, stdout + stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A PKCS#10 request (DER) for a fresh key that openssl makes with
/// `newkey` (e.g. `["-newkey", "rsa:2048"]`); the key in `dir/name.key`.
pub fn csr(dir: &Path, name: &str, newkey: &[&str]) -> Vec<u8> {
    let key = dir.join(format!("{name}.key"));
    let out = dir.join(format!("{name}.csr"));
    let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=ignored"];
    args.extend_from_slice(newkey);
    args.extend([
        "-keyout",
        key.to_str().unwrap(),
        "-outform",
        "DER",
        "-out",
        out.to_str().unwrap(),
    ]);
    let (ok, text) = openssl(&args);
    assert!(ok, "openssl req: {text}");
    std::fs::read(out).unwrap()
}

/// Writes `der` certificates as one PEM file.
pub fn pem_file(path: &Path, ders: &[&[u8]]) -> PathBuf {
    let text: String = ders
        .iter()
        .map(|d| state::pem_certificate(d).unwrap())
        .collect();
    std::fs::write(path, text).unwrap();
    path.to_owned()
}
