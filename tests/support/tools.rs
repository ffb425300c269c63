//! External verifiers. Under `CI=true` a missing tool fails the test;
//! elsewhere the check is skipped with a note.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether `tool` is on PATH; panics under CI when it is not.
pub fn require(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !in_ci(),
            "{tool} is required under CI=true but is not installed"
        );
        eprintln!("note: {tool} not installed; skipping this check");
    }
    found
}

/// `openssl cms -verify` of a detached signature against `root`.
pub fn openssl_cms_verify(cms: &[u8], content: &[u8], root: &Path) -> Result<(), String> {
    openssl_cms_verify_with(cms, content, root, &[])
}

/// [`openssl_cms_verify`] with `extra` options (e.g. `-crl_check_all`).
pub fn openssl_cms_verify_with(
    cms: &[u8],
    content: &[u8],
    root: &Path,
    extra: &[&str],
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sig = dir.path().join("s.p7s");
    let data = dir.path().join("content");
    std::fs::write(&sig, cms).map_err(|e| e.to_string())?;
    std::fs::write(&data, content).map_err(|e| e.to_string())?;
    let out = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ])
        .args(extra)
        .arg("-in")
        .arg(&sig)
        .arg("-content")
        .arg(&data)
        .arg("-CAfile")
        .arg(root)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The shared validators' Python (a venv with pyHanko), from
/// `QSIGN_VALIDATE_PY` or the default place of `shared/validate/setup.sh`.
pub fn validator() -> Option<(PathBuf, PathBuf)> {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/validate");
    let python = std::env::var_os("QSIGN_VALIDATE_PY")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(PathBuf::from(home).join(".cache/qsign-validate/bin/python"))
        })
        .filter(|p| p.exists());
    match (python, scripts.is_dir()) {
        (Some(python), true) => Some((python, scripts)),
        _ => {
            assert!(
                !in_ci(),
                "the shared validators (pyHanko venv) are required under CI=true"
            );
            eprintln!("note: shared validators not set up; skipping");
            None
        }
    }
}

/// How far libfaketime moves a validator's clock for the checks "after the
/// certificate expired": past the default 10-minute lifetime and the 60-minute maximum.
pub const LATER: &str = "+80m";

/// A script of the shared validators.
pub fn shared_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/validate")
        .join(name)
}

/// A validator script of this repository (`tests/validate/`).
pub fn own_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/validate")
        .join(name)
}

/// Runs a shared validator script; returns its JSON verdict on failure.
pub fn validate(script: &str, args: &[&OsStr]) -> Result<(), String> {
    run(&shared_script(script), args, None).map(drop)
}

/// Runs one of this repository's own checks (`tests/validate/`, see its
/// README); `None` when the validators' Python is not set up (which fails
/// the test under CI).
pub fn check(script: &str, args: &[&OsStr]) -> Option<Result<(), String>> {
    validator()?;
    Some(run(&own_script(script), args, None).map(drop))
}

/// Runs a validator script (`shared_script`, `own_script`) now; its JSON
/// verdict, or `None` where the tools are missing outside CI.
pub fn validate_own(script: &Path, args: &[&OsStr]) -> Result<Option<serde_json::Value>, String> {
    verdict(script, run(script, args, None)?)
}

/// Runs a validator script (`shared_script`, `own_script`) with its clock
/// moved by `LATER`; its JSON verdict, or `None` where the tools are
/// missing outside CI.
pub fn validate_later(script: &Path, args: &[&OsStr]) -> Result<Option<serde_json::Value>, String> {
    if !require("faketime") {
        return Ok(None);
    }
    verdict(script, run(script, args, Some(LATER))?)
}

fn verdict(script: &Path, stdout: Option<String>) -> Result<Option<serde_json::Value>, String> {
    let Some(stdout) = stdout else {
        return Ok(None);
    };
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|e| format!("{}: not a JSON verdict ({e}): {stdout}", script.display()))
}

/// `python script args`, under `faketime -f offset` when given: its
/// stdout when it exits 0, both outputs when not.
fn run(script: &Path, args: &[&OsStr], offset: Option<&str>) -> Result<Option<String>, String> {
    let Some((python, _)) = validator() else {
        return Ok(None);
    };
    let mut command = match offset {
        Some(offset) => {
            let mut c = Command::new("faketime");
            c.args(["-f", offset]).arg(python);
            c
        }
        None => Command::new(python),
    };
    let out = command
        .arg(script)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(Some(stdout))
    } else {
        Err(format!(
            "{} failed:\n{stdout}\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A detached signature and what it signs, written to a temporary folder
/// for the command-line checkers: `SIG.p7s CONTENT`, or with `digest_mode`
/// `SIG.p7s --digest-hex HEX` (hash-only signing: the checker never sees
/// the content).
pub struct DetachedFiles {
    _dir: tempfile::TempDir,
    sig: PathBuf,
    doc: PathBuf,
    digest_hex: Option<String>,
}

impl DetachedFiles {
    pub fn new(cms: &[u8], content: &[u8], digest_mode: bool) -> Self {
        use sha2::Digest;
        let dir = tempfile::tempdir().expect("temporary folder");
        let (sig, doc) = (dir.path().join("doc.p7s"), dir.path().join("doc.bin"));
        std::fs::write(&sig, cms).expect("write the signature");
        std::fs::write(&doc, content).expect("write the content");
        Self {
            _dir: dir,
            sig,
            doc,
            digest_hex: digest_mode.then(|| hex::encode(sha2::Sha256::digest(content))),
        }
    }

    /// The checker's leading arguments; append the rest.
    pub fn args(&self) -> Vec<&OsStr> {
        let mut args = vec![self.sig.as_os_str()];
        match &self.digest_hex {
            Some(hex) => args.extend([OsStr::new("--digest-hex"), hex.as_ref()]),
            None => args.push(self.doc.as_os_str()),
        }
        args
    }
}

/// Which pkilint linter (PyPI `pkilint`, installed by `softhsm/setup.sh
/// --verifiers` into the validators' venv) checks a certificate.
#[derive(Clone, Copy, Debug)]
pub enum Linter<'a> {
    /// `lint_etsi_cert lint -d`: the ETSI EN 319 412 type detected from the
    /// policy OIDs and QC statements.
    EtsiDetect,
    /// `lint_etsi_cert lint -t TYPE`, e.g. `QCP-N-QSCD-EIDAS-FINAL-CERTIFICATE`,
    /// `NCP-NATURAL-PERSON-CERTIFICATE`, `NCP-LEGAL-PERSON-CERTIFICATE`.
    Etsi(&'a str),
    /// `lint_pkix_cert lint`: RFC 5280 only (CA, TSA and OCSP certificates).
    Pkix,
    /// `lint_pkix_signer_signee_cert_chain lint ISSUER SUBJECT`: RFC 5280
    /// between the certificate and its issuer's (DER): names, AKI/SKI.
    IssuedBy(&'a [u8]),
}

/// One pkilint finding: where, which validator, the code and severity
/// (`FATAL`, `ERROR`, `WARNING`, `NOTICE`, `INFO`) and an optional message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub node_path: String,
    pub validator: String,
    pub severity: String,
    pub code: String,
    pub message: Option<String>,
}

impl Finding {
    /// FATAL or ERROR.
    pub fn is_error(&self) -> bool {
        matches!(self.severity.as_str(), "FATAL" | "ERROR")
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}) at {}", self.code, self.severity, self.node_path)?;
        match &self.message {
            Some(message) => write!(f, ": {message}"),
            None => Ok(()),
        }
    }
}

/// Where pkilint's commands are: the validators' venv (next to
/// `QSIGN_VALIDATE_PY` or in `~/.cache/qsign-validate`), else PATH. `None`
/// when pkilint is not installed, which fails the test under CI.
fn pkilint_bin(command: &str) -> Option<PathBuf> {
    let venv_bin = std::env::var_os("QSIGN_VALIDATE_PY")
        .map(PathBuf::from)
        .and_then(|python| python.parent().map(Path::to_owned))
        .or_else(|| {
            let home = std::env::var_os("HOME")?;
            Some(PathBuf::from(home).join(".cache/qsign-validate/bin"))
        });
    match venv_bin.map(|bin| bin.join(command)).filter(|p| p.exists()) {
        Some(path) => Some(path),
        None if require(command) => Some(PathBuf::from(command)),
        None => None,
    }
}

/// Lints the DER certificate `der` with pkilint; every finding of any
/// severity, or `None` where pkilint is missing outside CI. pkilint exits
/// with the number of findings, so only output that is not its JSON report
/// is an `Err`.
pub fn pkilint(der: &[u8], linter: Linter<'_>) -> Result<Option<Vec<Finding>>, String> {
    let command = match linter {
        Linter::EtsiDetect | Linter::Etsi(_) => "lint_etsi_cert",
        Linter::Pkix => "lint_pkix_cert",
        Linter::IssuedBy(_) => "lint_pkix_signer_signee_cert_chain",
    };
    let Some(bin) = pkilint_bin(command) else {
        return Ok(None);
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("certificate.der");
    std::fs::write(&file, der).map_err(|e| e.to_string())?;
    let mut lint = Command::new(bin);
    lint.args(["lint", "-f", "JSON", "--document-format", "DER"]);
    match linter {
        Linter::EtsiDetect => lint.arg("-d"),
        Linter::Etsi(kind) => lint.args(["-t", kind]),
        Linter::Pkix => &mut lint,
        Linter::IssuedBy(issuer) => {
            let path = dir.path().join("issuer.der");
            std::fs::write(&path, issuer).map_err(|e| e.to_string())?;
            lint.arg(path)
        }
    };
    let out = lint.arg(&file).output().map_err(|e| e.to_string())?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "{command}: no JSON report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let mut findings = Vec::new();
    for result in report["results"].as_array().into_iter().flatten() {
        for description in result["finding_descriptions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            findings.push(Finding {
                node_path: text(&result["node_path"]),
                validator: text(&result["validator"]),
                severity: text(&description["severity"]),
                code: text(&description["code"]),
                message: description["message"].as_str().map(str::to_owned),
            });
        }
    }
    Ok(Some(findings))
}
