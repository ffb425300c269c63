//! The time-stamping authority: RFC 3161 over HTTP from an in-process
//! endpoint, checked with `openssl ts` and pyHanko; bad input; the external
//! client; the TSA certificate's profile. Shared helpers here.

pub mod authority;
mod endpoint;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use der::{Decode, Encode};
use qsign::signing::SigningCore;
use qsign::state;
use qsign::tsa::asn1::{FailureInfo, PkiStatusInfo, TimeStampResp};
use qsign::tsa::TimeStampAuthority;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{env, tools};

/// The placeholder policy of the development configuration.
const DEV_POLICY: &str = "1.3.6.1.4.1.32473.1.1";

/// The HTTP endpoint of a core's TSA on an ephemeral port, stopped on drop.
pub struct TsaServer {
    pub address: SocketAddr,
    pub core: Arc<SigningCore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TsaServer {
    async fn start(label: &str) -> Self {
        Self::start_with(label, false).await
    }

    /// With `ocsp`, the core's certificates name this endpoint's responder
    /// (the `[ocsp]` alternative to noRevAvail).
    pub async fn start_with(label: &str, ocsp: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let core = env().core(label, |c| {
            if ocsp {
                c.ocsp = Some(env().ocsp_config(&format!("http://{address}/ocsp")));
            }
        });
        assert!(core.tsa.is_some(), "the dev configuration has a TSA");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(qsign::service::http::serve(
            core.clone(),
            listener,
            None,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            core,
            stop: Some(stop),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    fn tsa(&self) -> &TimeStampAuthority {
        self.core.tsa.as_deref().expect("TSA")
    }
}

impl Drop for TsaServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An HTTP exchange over a fresh connection: status, Content-Type, body.
pub async fn http(address: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let (status, content_type, body, _) = http_with_headers(address, head, body).await;
    (status, content_type, body)
}

/// [`http`], and the Retry-After seconds if any (RFC 6585 §4).
pub async fn http_with_headers(
    address: SocketAddr,
    head: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>, Option<u64>) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut request = format!("{head}Host: {address}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    // A server that refuses a body early may close before reading it all:
    // the write then fails and the read ends in a reset after the reply.
    let _ = stream.write_all(&request).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("the server answers");
    assert!(read.is_ok() || !response.is_empty(), "no reply: {read:?}");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head[9..12].parse().expect("status code");
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix(name)
                .map(|v| v.trim().to_owned())
        })
    };
    let content_type = header("content-type:").unwrap_or_default();
    let retry_after = header("retry-after:").and_then(|v| v.parse().ok());
    (
        status,
        content_type,
        response[split + 4..].to_vec(),
        retry_after,
    )
}

/// POSTs a query with the RFC 3161 §3.4 content type.
async fn post_query(address: SocketAddr, query: &[u8]) -> (u16, String, Vec<u8>) {
    let head = format!(
        "POST / HTTP/1.1\r\nContent-Type: application/timestamp-query\r\nContent-Length: {}\r\n",
        query.len()
    );
    http(address, &head, query).await
}

/// A granted TimeStampResp's token; a rejection's failInfo otherwise.
fn decode_reply(body: &[u8]) -> TimeStampResp {
    TimeStampResp::from_der(body).expect("a DER TimeStampResp")
}

fn rejected_with(body: &[u8], failure: FailureInfo) {
    let reply = decode_reply(body);
    assert_eq!(reply.status.status, PkiStatusInfo::REJECTION, "{reply:?}");
    assert_eq!(
        reply.status.fail_info,
        Some(failure.bit_string()),
        "{reply:?}"
    );
    assert!(reply.time_stamp_token.is_none());
    assert!(reply.status.status_string.is_some(), "a reason to act on");
}

/// The certificates embedded in a token, DER; empty when there are none.
fn certificates(token: &[u8]) -> Vec<Vec<u8>> {
    let info = cms::content_info::ContentInfo::from_der(token).expect("ContentInfo");
    let signed: cms::signed_data::SignedData = info.content.decode_as().expect("SignedData");
    signed
        .certificates
        .map(|set| {
            set.0
                .iter()
                .map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => c.to_der().expect("DER"),
                    _ => panic!("unexpected certificate choice"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// pyHanko's RFC 3161 validation (intact, valid, trusted under the dev
/// root, soft-fail revocation) of a token on `digest`.
const PYHANKO_TST: &str = r#"
import asyncio, sys
from asn1crypto import cms, pem, x509
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext
token, root, digest = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
_, _, der = pem.unarmor(open(root, 'rb').read())
context = ValidationContext(trust_roots=[x509.Certificate.load(der)],
                            allow_fetching=False, revocation_mode='soft-fail')
signed = cms.ContentInfo.load(open(token, 'rb').read())['content']
status = asyncio.run(validate_tst_signed_data(signed, context, lambda algo: digest))
ok = status['intact'] and status['valid'] and status['trust_problem_indic'] is None
print(status)
sys.exit(0 if ok else 1)
"#;

fn pyhanko_validates(token: &[u8], digest: [u8; 32]) {
    let Some((python, _)) = tools::validator() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token.der");
    std::fs::write(&file, token).unwrap();
    let out = Command::new(python)
        .args(["-c", PYHANKO_TST, path(&file), path(&env().root_ca())])
        .arg(hex::encode(digest))
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "pyHanko: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tsa_pem() -> PathBuf {
    env().dir.join(state::TSA_CERTIFICATE)
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `openssl ts -verify -data FILE -in REPLY` against the dev root, with
/// the TSA certificate as an untrusted intermediate.
fn openssl_ts_verify(data: &Path, reply: &Path) -> (bool, String) {
    let (root, tsa) = (env().root_ca(), tsa_pem());
    let args = [
        "ts",
        "-verify",
        "-data",
        path(data),
        "-in",
        path(reply),
        "-CAfile",
        path(&root),
        "-untrusted",
        path(&tsa),
    ];
    let (ok, text) = openssl(&args);
    (ok && text.contains("Verification: OK"), text)
}
