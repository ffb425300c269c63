//! The binary as a person uses it: `qsign serve` on a fresh state dir, then
//! `qsign sign-detached` against it (B-T, then B-LTA hash-only), checked
//! with `openssl cms -verify` and `tests/validate/ats_v3.py`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tools;

const QSIGN: &str = env!("CARGO_BIN_EXE_qsign");

pub struct Serving(pub Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `qsign serve` on `port`, its RFC 3161 endpoint on a free port of its
/// own (not the configured 50052, which may be taken), returned with it.
fn serve(state: &Path, port: u16) -> (Serving, u16) {
    let tsa_port = free_port();
    let child = Command::new(QSIGN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tsa-listen",
            &format!("127.0.0.1:{tsa_port}"),
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
    (serving, tsa_port)
}

/// A token from the served TSA endpoint, checked for its imprint.
fn time_stamp(tsa_port: u16) {
    let imprint = qsign::tsa::MessageImprint::sha256_of(b"cli time-stamp");
    let tsa = crate::tsa::authority::external(&[&format!("http://127.0.0.1:{tsa_port}/")]);
    let token = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(tsa.time_stamp(&imprint))
        .expect("qsign serve answers RFC 3161 queries");
    let info = qsign::tsa::tst_info(&token).unwrap();
    assert_eq!(info.message_imprint, imprint);
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
        let (_server, tsa_port) = serve(&state, port);
        for name in [
            "root-ca.pem",
            "tsa.pem",
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
        time_stamp(tsa_port);
        sign(&state, port, &[], &file);
        if tools::require("openssl") {
            let cms = std::fs::read(&sig).unwrap();
            tools::openssl_cms_verify(&cms, b"annual report 2026", &state.join("root-ca.pem"))
                .expect("verify");
        }
    }
    // A second start reuses the token, the CA, the TSA and the IdP.
    let (_server, tsa_port) = serve(&state, port);
    time_stamp(tsa_port);
    assert_eq!(
        std::fs::read(state.join("root-ca.pem")).unwrap(),
        root_before
    );
    std::fs::remove_file(&sig).unwrap();
    let extra = ["--digest-only", "--seal", "dev", "--level", "b-lta"];
    sign(&state, port, &extra, &file);
    if tools::require("openssl") {
        let cms = std::fs::read(&sig).unwrap();
        let root = state.join("root-ca.pem");
        tools::openssl_cms_verify(&cms, b"annual report 2026", &root).expect("verify seal");
        let data = b"annual report 2026";
        if let Some(verdict) = crate::cades_lta::ats_v3_with_root(&cms, data, true, &root) {
            verdict.expect("CAdES B-LTA from the CLI");
        }
    }
}

/// `qsign serve --config` on a token made by `softhsm/setup.sh`, the PIN in
/// an environment variable, an IdP of the test's own and profiles of its
/// own, a TSA made by `init-tsa`, an OCSP responder made by `init-ocsp`
/// (`openssl ocsp` asks it about the signer's certificate); the CLI signs
/// with a token from a file.
#[test]
fn config_file_on_a_token_made_by_the_setup_script() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("softhsm/setup.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(dir.join("hsm"))
        .output()
        .expect("setup.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin = std::fs::read_to_string(dir.join("hsm/user-pin")).unwrap();
    let idp = qsign::auth::dev::DevIdp::generate();
    std::fs::write(dir.join("idp-jwks.json"), idp.jwks_json()).unwrap();
    let (port, tsa_port) = (free_port(), free_port());
    let config = format!(
        r#"listen = "127.0.0.1:{port}"
[hsm]
module = "{module}"
token_label = "qsign"
pin_env = "QSIGN_TEST_PIN"
softhsm_conf = "hsm/softhsm2.conf"
sessions = 2
[ca]
root_certificate = "root.pem"
issuing_certificate = "issuing.pem"
[certificate]
lifetime_minutes = 5
pds_url = "https://acme.example/pds/en"
[tsa]
certificate = "tsa.pem"
policy = "1.3.6.1.4.1.32473.1.2"
listen = "127.0.0.1:{tsa_port}"
[ocsp]
certificate = "ocsp.pem"
url = "http://127.0.0.1:{tsa_port}/ocsp"
[token]
issuer = "https://idp.acme.example"
audience = "qsign-acme"
jwks_file = "idp-jwks.json"
[database]
url = "sqlite://registry.db"
[registry]
certificate = "organization-ca.pem"
base_url = "http://127.0.0.1:{tsa_port}"
[mail]
from = "qsign <noreply@acme.example>"
outbox = "outbox"
[[profiles]]
id = "acme-seal"
organization_name = "Acme A/S"
cvr = "11223344"
allow = ["seal"]
"#,
        module = qsign::state::softhsm_module().display()
    );
    let config_path = dir.join("qsign.toml");
    std::fs::write(&config_path, config).unwrap();
    let qsign = |args: &[&str]| {
        let mut command = Command::new(QSIGN);
        command.args(args).env("QSIGN_TEST_PIN", pin.trim());
        command
    };
    let config_arg = config_path.to_str().unwrap();
    for init in ["init-ca", "init-tsa", "init-ocsp", "init-org-ca"] {
        let out = qsign(&[init, "--config", config_arg, "--organization", "Acme"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{init}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let again = qsign(&["init-tsa", "--config", config_arg])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "init-tsa refuses to replace the TSA"
    );
    let again = qsign(&["init-ca", "--config", config_arg])
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a second init-ca refuses to replace the CA"
    );

    let child = qsign(&["serve", "--config", config_arg])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _serving = Serving(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "qsign serve --config did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    time_stamp(tsa_port);

    let file = dir.join("invoice.xml");
    std::fs::write(&file, b"<invoice>42</invoice>").unwrap();
    let claims = qsign::auth::dev::DevClaims {
        issuer: "https://idp.acme.example".into(),
        audience: "qsign-acme".into(),
        subject: uuid::Uuid::new_v4(),
        given_name: Some("Ida".into()),
        family_name: Some("Jensen".into()),
        org_cvr: "11223344".into(),
        org_name: "Acme".into(),
        seal_profiles: vec!["acme-seal".into()],
        digests: vec![crate::support::sha256(b"<invoice>42</invoice>")],
        jti: None,
    };
    let token = idp
        .mint(
            &claims,
            std::time::SystemTime::now(),
            Duration::from_secs(120),
        )
        .unwrap();
    std::fs::write(dir.join("token.jws"), token).unwrap();
    let out = qsign(&[
        "sign-detached",
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--seal",
        "acme-seal",
    ])
    .arg("--token")
    .arg(dir.join("token.jws"))
    .arg(&file)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cms = std::fs::read(dir.join("invoice.xml.p7s")).unwrap();
    if tools::require("openssl") {
        tools::openssl_cms_verify(&cms, b"<invoice>42</invoice>", &dir.join("root.pem"))
            .expect("verify");
        ocsp_good(
            dir,
            &cms,
            &file,
            &format!("http://127.0.0.1:{tsa_port}/ocsp"),
        );
    }
    let needle = b"Acme A/S";
    assert!(
        cms.windows(needle.len()).any(|w| w == needle),
        "the seal names the profile's organisation"
    );
    admin_with_a_token_file(dir, &idp, port, &qsign);
}

/// SPEC §9 on the --config deployment: `qsign admin --token FILE` orders
/// and issues from a CSR under the organisation CA that init-org-ca made.
fn admin_with_a_token_file(
    dir: &Path,
    idp: &qsign::auth::dev::DevIdp,
    port: u16,
    qsign: &dyn Fn(&[&str]) -> Command,
) {
    let roles = ["user_admin".to_owned()];
    let token = qsign::auth::admin::mint_dev(
        idp,
        "https://idp.acme.example",
        "qsign-admin",
        ("ida", "11223344", &roles),
        Duration::from_secs(120),
    )
    .unwrap();
    std::fs::write(dir.join("admin.jws"), token).unwrap();
    let server = format!("http://127.0.0.1:{port}");
    let admin = |args: &[&str]| {
        let mut all = vec!["admin", "--server", &server, "--token"];
        let token = dir.join("admin.jws");
        let token = token.to_str().unwrap().to_owned();
        all.push(&token);
        all.extend_from_slice(args);
        let out = qsign(&all).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let id = admin(&[
        "order",
        "--kind",
        "system",
        "--name",
        "Invoicing",
        "--system-name",
        "Invoicing",
        "--contact-name",
        "Ida",
        "--contact-email",
        "ida@acme.example",
    ]);
    let csr = dir.join("sys.csr");
    if !tools::require("openssl") {
        return;
    }
    let out = Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=x", "-keyout",
        ])
        .arg(dir.join("sys.key"))
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out_prefix = dir.join("sys");
    admin(&[
        "issue",
        id.trim(),
        "--csr",
        csr.to_str().unwrap(),
        "--out",
        out_prefix.to_str().unwrap(),
    ]);
    let pem = std::fs::read_to_string(dir.join("sys.pem")).unwrap();
    let org_ca = std::fs::read_to_string(dir.join("organization-ca.pem")).unwrap();
    assert!(
        pem.contains(org_ca.trim()),
        "the chain carries the organisation CA"
    );
    assert!(admin(&["search", "invoic"]).contains("SYSTEM"));
    assert!(
        dir.join("outbox").read_dir().unwrap().count() >= 1,
        "the contact was mailed"
    );
}

/// `openssl ocsp` asks `url` about the signer of `cms` over `content` (in
/// `dir`, with the deployment's root.pem and issuing.pem) and gets a
/// verified "good".
fn ocsp_good(dir: &Path, cms: &[u8], content: &Path, url: &str) {
    let (sig, signer) = (dir.join("ocsp.p7s"), dir.join("signer.pem"));
    std::fs::write(&sig, cms).unwrap();
    let out = Command::new("openssl")
        .args(["cms", "-verify", "-inform", "DER", "-noverify", "-binary"])
        .args(["-out", "/dev/null", "-content"])
        .arg(content)
        .arg("-in")
        .arg(&sig)
        .arg("-signer")
        .arg(&signer)
        .output()
        .unwrap();
    assert!(signer.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("openssl")
        .args(["ocsp", "-url", url, "-issuer"])
        .arg(dir.join("issuing.pem"))
        .arg("-cert")
        .arg(&signer)
        .arg("-CAfile")
        .arg(dir.join("root.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(": good"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
