//! The command-line client: signs files against a qsign server. In
//! development it mints the activation token itself from the state
//! directory's dev IdP key, as an identity provider would after login.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::dev::{dev_subject, DevClaims, DevIdp};
use crate::proto::signing_service_client::SigningServiceClient;
use crate::proto::{self, document};
use crate::state;

/// Where the activation token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// A compact JWS issued by the IdP, in a file.
    File(PathBuf),
    /// DEVELOPMENT ONLY: minted from `<state_dir>/dev-idp-key.pem` for "Given Family".
    Dev { state_dir: PathBuf, name: String },
}

/// Connection settings of the client.
#[derive(Clone, Debug)]
pub struct Connection {
    pub server: String,
    /// Trust anchor for an https server; the system roots are not used.
    pub ca: Option<PathBuf>,
}

pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

pub async fn connect(
    connection: &Connection,
) -> Result<SigningServiceClient<Channel>, ClientError> {
    let mut endpoint =
        Endpoint::from_shared(connection.server.clone())?.connect_timeout(Duration::from_secs(10));
    if let Some(ca) = &connection.ca {
        let pem = std::fs::read(ca)?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", connection.server))?;
    Ok(SigningServiceClient::new(channel)
        .max_decoding_message_size(1 << 30)
        .max_encoding_message_size(1 << 30))
}

/// The activation token for `digests`.
pub fn activation_token(
    source: &TokenSource,
    digests: &[[u8; 32]],
    seal_profile: Option<&str>,
) -> Result<String, ClientError> {
    match source {
        TokenSource::File(path) => Ok(std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read token {}: {e}", path.display()))?
            .trim()
            .to_owned()),
        TokenSource::Dev { state_dir, name } => {
            let key_path = state_dir.join(state::DEV_IDP_KEY);
            let pem = std::fs::read_to_string(&key_path).map_err(|e| {
                format!(
                    "cannot read the dev IdP key {} ({e}); start `qsign serve` first",
                    key_path.display()
                )
            })?;
            let idp = DevIdp::from_pkcs8_pem(&pem)?;
            let (given, family) = match name.trim().rsplit_once(' ') {
                Some((given, family)) => (given.trim().to_owned(), family.to_owned()),
                None => {
                    return Err(
                        format!("--dev-identity wants \"Given Family\", got {name:?}").into(),
                    )
                }
            };
            let claims = DevClaims {
                issuer: state::DEV_ISSUER.into(),
                audience: state::DEV_AUDIENCE.into(),
                subject: dev_subject(name),
                given_name: Some(given),
                family_name: Some(family),
                org_cvr: state::DEV_CVR.into(),
                org_name: state::DEV_ORGANIZATION.into(),
                seal_profiles: seal_profile.map(|p| vec![p.to_owned()]).unwrap_or_default(),
                digests: digests.to_vec(),
                jti: None,
            };
            Ok(idp.mint(&claims, SystemTime::now(), Duration::from_secs(300))?)
        }
    }
}

/// SHA-256 of a file, read in chunks (memory independent of its size).
pub fn sha256_file(path: &Path) -> Result<[u8; 32], ClientError> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..n]);
    }
}

/// What `qsign sign-detached` was asked.
pub struct DetachedJob {
    pub files: Vec<PathBuf>,
    pub seal_profile: Option<String>,
    pub digest_only: bool,
    pub key_algorithm: proto::KeyAlgorithm,
    pub level: proto::Level,
}

/// Signs every file in one batch and writes `FILE.p7s` next to each.
pub async fn sign_detached(
    connection: &Connection,
    token: &TokenSource,
    job: &DetachedJob,
) -> Result<Vec<PathBuf>, ClientError> {
    let mut digests = Vec::with_capacity(job.files.len());
    let mut documents = Vec::with_capacity(job.files.len());
    for file in &job.files {
        let digest = sha256_file(file)?;
        digests.push(digest);
        let data = if job.digest_only {
            document::Data::Sha256Digest(digest.to_vec())
        } else {
            document::Data::Content(std::fs::read(file)?)
        };
        documents.push(proto::Document { data: Some(data) });
    }
    let request = proto::SignDetachedRequest {
        documents,
        activation_token: activation_token(token, &digests, job.seal_profile.as_deref())?,
        seal_profile: job.seal_profile.clone().unwrap_or_default(),
        level: job.level as i32,
        key_algorithm: job.key_algorithm as i32,
    };
    let response = connect(connection)
        .await?
        .sign_detached(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let mut written = Vec::with_capacity(job.files.len());
    for (file, cms) in job.files.iter().zip(response.cms) {
        let mut out = file.clone().into_os_string();
        out.push(".p7s");
        std::fs::write(&out, cms)?;
        written.push(PathBuf::from(out));
    }
    eprintln!(
        "signature {} ({} file(s))",
        response.signature_id,
        written.len()
    );
    Ok(written)
}
