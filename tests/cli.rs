//! The binary as a person uses it: `qsign serve` on a fresh state dir, then
//! `qsign sign-detached` against it, checked with `openssl cms -verify`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tools;

const QSIGN: &str = env!("CARGO_BIN_EXE_qsign");

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(state: &Path, port: u16) -> Serving {
    let child = Command::new(QSIGN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qsign serve");
    let serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "qsign serve did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serving
}

fn sign(state: &Path, port: u16, extra: &[&str], file: &Path) {
    let out = Command::new(QSIGN)
        .args([
            "sign-detached",
            "--server",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--dev-identity", "Karen Blixen", "--state-dir"])
        .arg(state)
        .args(extra)
        .arg(file)
        .output()
        .expect("qsign sign-detached");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn serve_on_fresh_state_dir_then_sign_with_the_cli() {
    let temp = tempfile::tempdir().unwrap();
    let state = temp.path().join("state");
    let port = free_port();
    let file = temp.path().join("filing.txt");
    std::fs::write(&file, b"annual report 2026").unwrap();
    let sig = temp.path().join("filing.txt.p7s");
    let root_before;
    {
        let _server = serve(&state, port);
        for name in [
            "root-ca.pem",
            "dev-idp-key.pem",
            "dev-idp-jwks.json",
            "qsign.toml",
            "user-pin",
        ] {
            assert!(state.join(name).is_file(), "{name} created on first start");
        }
        use std::os::unix::fs::PermissionsExt;
        for secret in ["user-pin", "dev-idp-key.pem"] {
            let mode = std::fs::metadata(state.join(secret))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{secret} is private");
        }
        root_before = std::fs::read(state.join("root-ca.pem")).unwrap();
        sign(&state, port, &[], &file);
        if tools::require("openssl") {
            let cms = std::fs::read(&sig).unwrap();
            tools::openssl_cms_verify(&cms, b"annual report 2026", &state.join("root-ca.pem"))
                .expect("verify");
        }
    }
    // A second start reuses the token, the CA and the IdP.
    let _server = serve(&state, port);
    assert_eq!(
        std::fs::read(state.join("root-ca.pem")).unwrap(),
        root_before
    );
    std::fs::remove_file(&sig).unwrap();
    sign(&state, port, &["--digest-only", "--seal", "dev"], &file);
    if tools::require("openssl") {
        let cms = std::fs::read(&sig).unwrap();
        tools::openssl_cms_verify(&cms, b"annual report 2026", &state.join("root-ca.pem"))
            .expect("verify seal");
    }
}
