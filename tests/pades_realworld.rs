//! Every file of `../shared/corpus/realworld/` (public projects' test
//! data, damaged ones included) signed as a person and as a seal, through
//! SignPdf and through the CLI's hash-only path. Each signed file is
//! judged by pdfsig (our signature valid, earlier ones as before) and
//! `qpdf --check` (no new warning), and by `validate_pdf.py` unless
//! pyHanko's strict reader already refuses the unsigned file or the file
//! carries earlier signatures pdfsig finds invalid.

use std::path::{Path, PathBuf};
use std::process::Command;

use qsign::client::{self, Connection, PdfJob, TokenSource};
use qsign::proto;
use qsign::signing::PdfOptions;

use crate::support::{env, server, sign_pdf_request, tools, Who};

fn realworld() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/realworld");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        assert!(
            !tools::in_ci(),
            "the shared corpus is required under CI=true"
        );
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    files.sort();
    files
}

/// pdfsig_check's per-signature lines.
fn pdfsig_verdicts(pdf: &Path) -> Vec<String> {
    let script = tools::shared_script("pdfsig_check.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(pdf)
        .arg(env().root_ca())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("signature #"))
        .map(str::to_owned)
        .collect()
}

/// `qpdf --check` warnings with their numbers blanked.
fn qpdf_warnings(pdf: &Path) -> (i32, Vec<String>) {
    let out = Command::new("qpdf")
        .arg("--check")
        .arg(pdf)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let name = pdf.display().to_string();
    let warnings = text
        .lines()
        .filter(|l| l.contains("WARNING"))
        .map(|l| {
            let mut w = String::new();
            for c in l.replace(&name, "FILE").chars() {
                if !c.is_ascii_digit() {
                    w.push(c);
                } else if !w.ends_with('#') {
                    w.push('#');
                }
            }
            w
        })
        .collect();
    (out.status.code().unwrap_or(-1), warnings)
}

/// Warnings about the original's own bytes that qpdf gives once it can
/// read an object it could not reach before: no new problem.
const ABOUT_ORIGINAL_BYTES: [&str; 2] = [
    "stream keyword followed by carriage return only",
    "recovered stream length",
];

/// True when pyHanko's strict reader refuses `pdf`.
fn pyhanko_refuses(pdf: &Path) -> bool {
    let Some((python, _)) = tools::validator() else {
        return false;
    };
    let script = tools::own_script("strict_read.py");
    !Command::new(python)
        .arg(script)
        .arg(pdf)
        .status()
        .unwrap()
        .success()
}

/// Judges one signed file; returns which validators passed it.
fn judge(signed: &Path, original: &Path, expect: &str) -> &'static str {
    let (signed_bytes, original_bytes) = (
        std::fs::read(signed).unwrap(),
        std::fs::read(original).unwrap(),
    );
    assert!(
        signed_bytes.starts_with(&original_bytes),
        "{}: original untouched",
        signed.display()
    );
    let after = pdfsig_verdicts(signed);
    let last = after.last().cloned().unwrap_or_default();
    assert!(
        last.ends_with(": OK"),
        "{}: pdfsig {after:?}",
        signed.display()
    );
    let before = if after.len() > 1 {
        pdfsig_verdicts(original)
    } else {
        Vec::new()
    };
    assert_eq!(
        after[..after.len() - 1],
        before[..],
        "{}: earlier signatures",
        signed.display()
    );
    let (rc, warnings) = qpdf_warnings(signed);
    if rc != 0 {
        let (_, known) = qpdf_warnings(original);
        let new: Vec<_> = warnings
            .iter()
            .filter(|w| !known.contains(w) && !ABOUT_ORIGINAL_BYTES.iter().any(|b| w.contains(b)))
            .collect();
        assert!(
            rc == 3 && new.is_empty(),
            "{}: qpdf warns anew {new:?}",
            signed.display()
        );
    }
    let root = env().root_ca();
    let args = [
        signed.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--expect".as_ref(),
        expect.as_ref(),
        "--original".as_ref(),
        original.as_os_str(),
    ];
    match tools::validate("validate_pdf.py", &args) {
        Ok(()) => "pyHanko+pdfsig+qpdf",
        Err(_) if before.iter().any(|v| !v.ends_with(": OK")) => {
            "pdfsig+qpdf (earlier signatures invalid)"
        }
        Err(_) if pyhanko_refuses(original) => "pdfsig+qpdf (pyHanko refuses the unsigned file)",
        Err(e) => panic!("{}: validate_pdf.py: {e}", signed.display()),
    }
}

async fn through_service(label: &str, who: Who, seal: &str, expect: &str) {
    let server = server(label).await;
    let mut client = server.client().await;
    let out = tempfile::tempdir().unwrap();
    let (mut verdicts, mut repaired) = (Vec::new(), 0);
    for (i, original) in realworld().into_iter().enumerate() {
        let pdf = std::fs::read(&original).unwrap();
        let mut request = sign_pdf_request(pdf, &who, seal, proto::Level::BB);
        request.reason = Some("Godkendt".into());
        if i % 2 == 0 {
            request.appearance = Some(proto::Appearance {
                page: 1,
                x: 40.0,
                y: 40.0,
                width: 240.0,
                height: 60.0,
            });
        }
        let name = original.file_name().unwrap().to_owned();
        let response = client
            .sign_pdf(request)
            .await
            .unwrap_or_else(|s| panic!("{name:?}: {s:?}"))
            .into_inner();
        repaired += usize::from(response.repaired);
        let signed = out.path().join(&name);
        std::fs::write(&signed, &response.signed_pdf).unwrap();
        verdicts.push((name, judge(&signed, &original, expect)));
    }
    eprintln!(
        "{label}: {} signed, {repaired} repaired: {verdicts:#?}",
        verdicts.len()
    );
    assert!(
        realworld().is_empty() || repaired >= 10,
        "{repaired} repaired"
    );
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn realworld_personal_through_service() {
    through_service("rw-person", Who::jens(), "", "person").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn realworld_seal_through_service() {
    through_service("rw-seal", Who::sealer(), "dev", "seal").await;
}

async fn hash_only(label: &str, name: &str, seal: Option<&str>, expect: &str) {
    let server = server(label).await;
    let connection = Connection {
        server: format!("http://{}", server.address),
        ca: None,
        identity: None,
    };
    let token = TokenSource::Dev {
        state_dir: env().dir.clone(),
        name: name.into(),
    };
    let out = tempfile::tempdir().unwrap();
    let mut verdicts = Vec::new();
    for (i, original) in realworld().into_iter().enumerate() {
        let file = original.file_name().unwrap().to_owned();
        let job = PdfJob {
            input: original.clone(),
            output: out.path().join(&file),
            seal_profile: seal.map(str::to_owned),
            options: PdfOptions {
                visible: (i % 2 == 1).then_some((1, [40.0, 40.0, 240.0, 60.0])),
                language: Some("en".into()),
                ..Default::default()
            },
            key_algorithm: proto::KeyAlgorithm::EcP256,
            level: proto::Level::BB,
            hash_only_above: 0,
            durable: false,
        };
        client::sign_pdf(&connection, &token, &job)
            .await
            .unwrap_or_else(|e| panic!("{file:?}: {e}"));
        verdicts.push((file, judge(&job.output, &original, expect)));
    }
    eprintln!("{label}: {} signed: {verdicts:#?}", verdicts.len());
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn realworld_personal_hash_only_cli() {
    hash_only("rw-hash-person", "Łukasz Żółć-Ørsted", None, "person").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn realworld_seal_hash_only_cli() {
    hash_only("rw-hash-seal", "Mette Sørensen", Some("dev"), "seal").await;
}
