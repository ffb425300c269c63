//! The real `qsign serve --config` as a child process on the fixture's own
//! token (so that the fixture's HSM view sees its token objects), a load of
//! SignDetached requests against it, and health checks.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qsign::proto::signing_service_client::SigningServiceClient;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::{env, key_label, sha256, Who};
use crate::detached::{digest, request};

const QSIGN: &str = env!("CARGO_BIN_EXE_qsign");

/// The fixture's `qsign.toml` for the test `label`: its own port, key
/// label, database and `[hsm] module`; no HTTP listener; `limits` set.
/// Written next to the fixture's (its relative paths stay valid).
pub fn config(label: &str, module: &Path, port: u16, limits: &[(&str, &str)]) -> PathBuf {
    let dir = &env().dir;
    let text = std::fs::read_to_string(dir.join(qsign::state::CONFIG)).expect("fixture config");
    let mut section = String::new();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.trim_matches(['[', ']']).to_owned();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        let line = match (section.as_str(), key) {
            ("", "listen") => format!("listen = \"127.0.0.1:{port}\""),
            ("hsm", "module") => format!("module = \"{}\"", module.display()),
            ("hsm", "ephemeral_key_label") => {
                format!("ephemeral_key_label = \"{}\"", key_label(label))
            }
            ("tsa", "listen") => continue,
            ("database", "url") => format!("url = \"sqlite://{label}.db\""),
            ("limits", key) => match limits.iter().find(|(k, _)| *k == key) {
                Some((k, v)) => format!("{k} = {v}"),
                None => line.to_owned(),
            },
            _ => line.to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    let path = dir.join(format!("{label}.toml"));
    std::fs::write(&path, out).expect("write config");
    path
}

/// A running `qsign serve`; killed on drop.
pub struct Qsign {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Qsign {
    /// Starts `qsign serve --config config` with `envs`; waits until its
    /// gRPC port accepts.
    pub fn start(config: &Path, port: u16, envs: &[(&str, &str)]) -> Self {
        let log = config.with_extension("log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(QSIGN)
            .args(["serve", "--config"])
            .arg(config)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("qsign serve");
        let mut qsign = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = qsign.child.try_wait() {
                panic!("qsign serve exited ({status}): {}", qsign.log());
            }
            assert!(
                Instant::now() < deadline,
                "qsign serve did not start: {}",
                qsign.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        qsign
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` ("TERM", "INT", "KILL").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// The exit status, if it exits within `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub async fn client(&self) -> SigningServiceClient<Channel> {
        super::Server::client_for(([127, 0, 0, 1], self.port).into()).await
    }

    /// grpc.health.v1 status of SigningService; None when unreachable.
    pub async fn health(&self) -> Option<i32> {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .ok()?
            .connect()
            .await
            .ok()?;
        let request = HealthCheckRequest {
            service: "qsign.v1.SigningService".into(),
        };
        let reply = HealthClient::new(channel).check(request).await.ok()?;
        Some(reply.into_inner().status)
    }

    /// Polls health until it is `status`, for up to `timeout`.
    pub async fn await_health(&self, status: i32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.health().await == Some(status) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Qsign {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `qsign audit verify --config config` (the real binary, as an auditor
/// runs it) must pass: every record and checkpoint of the state verifies.
/// Its report, which names the record count.
pub fn audit_verified(config: &Path) -> String {
    let verified = Command::new(QSIGN)
        .args(["audit", "verify", "--config"])
        .arg(config)
        .output()
        .expect("qsign audit verify");
    let said = String::from_utf8_lossy(&verified.stdout).into_owned()
        + &String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success(), "{said}");
    assert!(said.contains("audit log OK"), "{said}");
    said
}

/// One request of a load: its outcome, how long it took, its token.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub code: Code,
    /// Shown when an assertion on the outcome fails.
    #[allow(dead_code)]
    pub message: String,
    pub elapsed: Duration,
    pub token: String,
    /// What was signed (the token covers its digest).
    pub data: Vec<u8>,
}

/// `clients` tasks signing one digest each (B-B) back to back until
/// `stop`; every outcome recorded.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub async fn start(qsign: &Qsign, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..clients {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            let mut client = qsign.client().await;
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let outcome = sign(&mut client, format!("load {i} {n}").as_bytes()).await;
                    outcomes.lock().unwrap().push(outcome);
                }
            }));
        }
        Self {
            stop,
            outcomes,
            tasks,
        }
    }

    /// Stops the clients after their current request; every outcome.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        outcomes
    }

    pub fn count(&self) -> usize {
        self.outcomes.lock().unwrap().len()
    }
}

/// SignDetached of `data`'s digest at B-B with a fresh token.
pub async fn sign(client: &mut SigningServiceClient<Channel>, data: &[u8]) -> Outcome {
    let token = env().token(&Who::jens(), &[sha256(data)]);
    sign_with(client, data, token).await
}

/// A SignDetached request of `data`'s digest at `level`, fresh token.
pub struct Signing {
    request: qsign::proto::SignDetachedRequest,
}

pub fn sign_at(data: &[u8], level: qsign::proto::Level) -> Signing {
    let token = env().token(&Who::jens(), &[sha256(data)]);
    let mut request = request(vec![digest(sha256(data))], token, "");
    request.level = level as i32;
    Signing { request }
}

impl Signing {
    pub async fn send(self, client: &mut SigningServiceClient<Channel>) -> Outcome {
        let started = Instant::now();
        let token = self.request.activation_token.clone();
        let reply = client.sign_detached(self.request).await;
        outcome(reply.map(drop), started, token, Vec::new())
    }
}

/// SignDetached of `data`'s digest at B-B with `token`.
pub async fn sign_with(
    client: &mut SigningServiceClient<Channel>,
    data: &[u8],
    token: String,
) -> Outcome {
    let started = Instant::now();
    let reply = client
        .sign_detached(request(vec![digest(sha256(data))], token.clone(), ""))
        .await;
    outcome(reply.map(drop), started, token, data.to_vec())
}

fn outcome(
    reply: Result<(), tonic::Status>,
    started: Instant,
    token: String,
    data: Vec<u8>,
) -> Outcome {
    let (code, message) = match reply {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    };
    Outcome {
        code,
        message,
        elapsed: started.elapsed(),
        token,
        data,
    }
}
