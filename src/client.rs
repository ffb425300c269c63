//! The command-line client: signs files against a qsign server. In
//! development it mints the activation token itself from the state
//! directory's dev IdP key, as an identity provider would after login.

pub mod admin;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

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
    /// `http://` (plaintext) or `https://` (TLS) and the server's address.
    pub server: String,
    /// Trust anchor for an https server; the system roots are not used.
    pub ca: Option<PathBuf>,
    /// PEM client certificate and its key, for a server that asks for one
    /// (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

pub type ClientError = Box<dyn std::error::Error + Send + Sync>;

pub async fn connect(
    connection: &Connection,
) -> Result<SigningServiceClient<Channel>, ClientError> {
    Ok(SigningServiceClient::new(channel(connection).await?)
        .max_decoding_message_size(1 << 30)
        .max_encoding_message_size(1 << 30))
}

/// A channel to the server (plain or TLS), for any of its services.
pub async fn channel(connection: &Connection) -> Result<Channel, ClientError> {
    let mut endpoint =
        Endpoint::from_shared(connection.server.clone())?.connect_timeout(Duration::from_secs(10));
    if let Some(tls) = client_tls(connection)? {
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", connection.server))?;
    Ok(channel)
}

/// TLS for an `https://` server: its CA, and the client certificate if any.
fn client_tls(connection: &Connection) -> Result<Option<ClientTlsConfig>, ClientError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let https = connection.server.starts_with("https://");
    match (&connection.ca, &connection.identity) {
        (None, None) if !https => Ok(None),
        _ if !https => Err("--ca, --cert and --key are for an https:// server".into()),
        (None, _) => Err(format!(
            "{} needs --ca: the CA certificate (PEM) that issued the server's certificate",
            connection.server
        )
        .into()),
        (Some(ca), identity) => {
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
            if let Some((cert, key)) = identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            Ok(Some(tls))
        }
    }
}

/// A refused call as the user reads it. A transport failure keeps its
/// causes, e.g. the server's TLS alert when it wants a client certificate
/// (RFC 8446 §4.4.2.4 `certificate_required`).
pub(crate) fn status_error(status: tonic::Status) -> ClientError {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(&status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    if text.contains("CertificateRequired") {
        text.push_str("; the server wants a client certificate: give --cert and --key");
    }
    text.into()
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
        .map_err(status_error)?
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

/// Printed when the PDF was repaired for reading.
const REPAIRED_NOTE: &str = "note: the PDF's cross-reference data is damaged; it was repaired for \
reading (as PDF readers do) and signed; the original bytes are unchanged and covered";

/// What `qsign sign-pdf` was asked.
pub struct PdfJob {
    pub input: PathBuf,
    pub output: PathBuf,
    pub seal_profile: Option<String>,
    pub options: crate::signing::PdfOptions,
    pub key_algorithm: proto::KeyAlgorithm,
    pub level: proto::Level,
    /// Files above this size are signed hash-only (SignPdfDigest).
    pub hash_only_above: u64,
    /// fsync the output before it takes its name, so that it survives a
    /// power loss; off by default, as for cp or qpdf (the input is untouched
    /// either way, and a lost output can be signed again).
    pub durable: bool,
}

/// Signs a PDF: small files through SignPdf, big ones hash-only. The output
/// appears only complete (written to a temporary file, then renamed).
pub async fn sign_pdf(
    connection: &Connection,
    token: &TokenSource,
    job: &PdfJob,
) -> Result<String, ClientError> {
    let len = std::fs::metadata(&job.input)
        .map_err(|e| format!("cannot read {}: {e}", job.input.display()))?
        .len();
    let mut client = connect(connection).await?;
    let partial = partial_path(&job.output);
    let signature_id = if len <= job.hash_only_above {
        let pdf = std::fs::read(&job.input)?;
        let digest: [u8; 32] = Sha256::digest(&pdf).into();
        let request = proto::SignPdfRequest {
            pdf,
            activation_token: activation_token(token, &[digest], job.seal_profile.as_deref())?,
            seal_profile: job.seal_profile.clone().unwrap_or_default(),
            level: job.level as i32,
            key_algorithm: job.key_algorithm as i32,
            reason: job.options.reason.clone(),
            location: job.options.location.clone(),
            contact_info: job.options.contact_info.clone(),
            appearance: job.options.visible.map(|(page, [x, y, width, height])| {
                proto::Appearance {
                    page,
                    x,
                    y,
                    width,
                    height,
                }
            }),
            field_name: job.options.field_name.clone(),
            language: job.options.language.clone(),
            time_zone: job.options.time_zone.clone(),
        };
        let response = client
            .sign_pdf(request)
            .await
            .map_err(status_error)?
            .into_inner();
        if response.repaired {
            eprintln!("{REPAIRED_NOTE}");
        }
        let mut output = std::fs::File::create(&partial)?;
        std::io::Write::write_all(&mut output, &response.signed_pdf)?;
        if job.durable {
            output.sync_all()?;
        }
        response.signature_id
    } else {
        hash_only(&mut client, token, job, len, &partial).await?
    };
    std::fs::rename(&partial, &job.output)?;
    Ok(signature_id)
}

/// Prepares the update locally, streams the file once (hash + copy to the
/// partial output), sends only digests, embeds the CMS it gets back.
async fn hash_only(
    client: &mut SigningServiceClient<Channel>,
    token: &TokenSource,
    job: &PdfJob,
    len: u64,
    partial: &Path,
) -> Result<String, ClientError> {
    use std::io::{Seek, Write};
    let chain = client
        .get_trust_chain(proto::GetTrustChainRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .certificates;
    let signer = pdf_signer(token, job.seal_profile.is_some())?;
    let request = crate::signing::pdf_request(
        &signer,
        &job.options,
        SystemTime::now(),
        crate::signed_data::pades_capacity(&chain),
    )?;
    let mut input = std::fs::File::open(&job.input)?;
    let mut prepared = crate::pades::prepare(&mut input, &request)?;
    input.rewind()?;
    // The copy runs in the kernel (copy_file_range) beside the hashing, so
    // the file is read once by us and written without passing through us.
    let copy = {
        let (from, to) = (job.input.clone(), partial.to_owned());
        std::thread::spawn(move || std::fs::copy(from, to))
    };
    let hasher = hash_stream(&mut input, len, prepared.original_len());
    let copied = copy.join().map_err(|_| "the copy thread panicked")??;
    let hasher = hasher?;
    if copied != prepared.original_len() {
        return Err(format!("{} changed while it was signed", job.input.display()).into());
    }
    if prepared.repaired() {
        eprintln!("{REPAIRED_NOTE}");
    }
    let document_digest: [u8; 32] = hasher.clone().finalize().into();
    let hasher_of_original = hasher.clone();
    let byte_range_digest = prepared.digest(hasher);
    let response = client
        .sign_pdf_digest(proto::SignPdfDigestRequest {
            byte_range_digest: byte_range_digest.to_vec(),
            document_digest: document_digest.to_vec(),
            activation_token: activation_token(
                token,
                &[document_digest],
                job.seal_profile.as_deref(),
            )?,
            seal_profile: job.seal_profile.clone().unwrap_or_default(),
            level: job.level as i32,
            key_algorithm: job.key_algorithm as i32,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    prepared.embed(&response.cms)?;
    let mut output = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .open(partial)?;
    output.write_all(prepared.update())?;
    if matches!(job.level, proto::Level::BLt | proto::Level::BLta) {
        // The SHA-256 of the output so far, without reading it again.
        let mut written = hasher_of_original;
        written.update(prepared.update());
        long_term(client, &mut output, written, &response, job.level).await?;
    }
    if job.durable {
        output.sync_all()?;
    }
    Ok(response.signature_id)
}

/// PAdES B-LT and B-LTA of a hash-only signature (EN 319 142-1 §5.4, §5.5),
/// written by the client as SignPdf's server writes them: a /DSS update with
/// the response's validation data, then for B-LTA a document time-stamp
/// from the server's TSA over everything before it. `written` is the
/// SHA-256 state of `output`'s bytes so far; only the new updates are read
/// back (the lazy reader reads the tail and the cross-references).
async fn long_term(
    client: &mut SigningServiceClient<Channel>,
    output: &mut std::fs::File,
    mut written: Sha256,
    response: &proto::SignPdfDigestResponse,
    level: proto::Level,
) -> Result<(), ClientError> {
    use std::io::Write;
    if response.validation_certificates.is_empty() {
        return Err("the server sent no validation data for B-LT".into());
    }
    let dss = crate::pades::append_dss(
        output,
        &response.validation_certificates,
        &response.crls,
        &response.ocsps,
    )?;
    output.write_all(&dss)?;
    written.update(&dss);
    if level != proto::Level::BLta {
        return Ok(());
    }
    let mut prepared =
        crate::pades::prepare_document_timestamp(output, crate::signing::DOC_TIMESTAMP_CAPACITY)?;
    let digest = prepared.digest(written);
    let token = client
        .time_stamp(proto::TimeStampRequest {
            sha256_digest: digest.to_vec(),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .time_stamp_token;
    prepared.embed(&token)?;
    output.write_all(prepared.update())?;
    Ok(())
}

/// One pass over the original: SHA-256 with a progress bar on a terminal.
/// Memory stays at one buffer whatever the file's size.
fn hash_stream(input: &mut std::fs::File, len: u64, expected: u64) -> Result<Sha256, ClientError> {
    let progress = indicatif::ProgressBar::new(len);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        total += n as u64;
        progress.set_position(total);
    }
    progress.finish_and_clear();
    if total != expected {
        return Err(format!(
            "the file changed while it was read ({total} bytes, expected {expected})"
        )
        .into());
    }
    Ok(hasher)
}

/// Who the locally prepared signature shows, from the token's claims.
fn pdf_signer(token: &TokenSource, seal: bool) -> Result<crate::signing::PdfSigner, ClientError> {
    use crate::signing::PdfSigner;
    let (name, organization) = match token {
        TokenSource::Dev { name, .. } => {
            (name.trim().to_owned(), state::DEV_ORGANIZATION.to_owned())
        }
        TokenSource::File(path) => {
            let jws = std::fs::read_to_string(path)?;
            let payload = jws
                .split('.')
                .nth(1)
                .ok_or("the token is not a compact JWS")?;
            use base64::Engine;
            let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))?;
            let claims: serde_json::Value = serde_json::from_slice(&json)?;
            let text = |key: &str| {
                claims
                    .get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            (
                format!("{} {}", text("given_name"), text("family_name")),
                text("org_name"),
            )
        }
    };
    Ok(if seal {
        let cvr = match token {
            TokenSource::Dev { .. } => state::DEV_CVR.to_owned(),
            TokenSource::File(_) => String::new(),
        };
        PdfSigner::Seal {
            organization_name: organization,
            cvr,
        }
    } else {
        PdfSigner::Person { name }
    })
}

/// `OUT.pdf.partial` beside the output, renamed when complete.
fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}
