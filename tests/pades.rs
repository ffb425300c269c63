//! PAdES end to end: every corpus file signed as a person and as a seal,
//! through SignPdf and through the CLI's hash-only path, judged by pyHanko
//! (`validate_pdf.py`), poppler (`pdfsig_check.sh`) and qpdf; refusals get
//! their codes; earlier signatures stay valid.

use std::path::{Path, PathBuf};

use qsign::client::{self, Connection, PdfJob, TokenSource};
use qsign::proto::{self, SignPdfRequest};
use qsign::signing::PdfOptions;
use tonic::Code;

use crate::support::{env, server, sign_pdf_request, tools, Server, Who};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
}

/// (file name, expected "sign" or "refuse") from the corpus manifest.
fn manifest() -> Vec<(String, String)> {
    let path = corpus().join("manifest.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(
            !tools::in_ci(),
            "the shared corpus is required under CI=true"
        );
        eprintln!("note: {} missing; skipping", path.display());
        return vec![];
    };
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).expect("manifest");
    entries
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["expected"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pdf_request(pdf: Vec<u8>, who: &Who, seal: &str) -> SignPdfRequest {
    SignPdfRequest {
        reason: Some("Godkendt".into()),
        location: Some("København".into()),
        ..sign_pdf_request(pdf, who, seal, proto::Level::BB)
    }
}

/// pyHanko, pdfsig and the byte-for-byte prefix check on one signed file.
pub fn judge(signed: &Path, original: &Path, expect: &str) {
    judge_at_level(signed, original, expect, "B-B", "now");
}

/// `judge` at a level, validating at `at` (`now`, `claimed`, `tst`).
pub fn judge_at_level(signed: &Path, original: &Path, expect: &str, level: &str, at: &str) {
    let signed_bytes = std::fs::read(signed).unwrap();
    let original_bytes = std::fs::read(original).unwrap();
    assert!(
        signed_bytes.starts_with(&original_bytes),
        "{}: input bytes untouched",
        signed.display()
    );
    let root = env().root_ca();
    tools::validate(
        "validate_pdf.py",
        &validate_pdf_args(signed, &root, original, expect, level, at),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", signed.display()));
    if tools::require("pdfsig") && tools::require("certutil") {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/validate/pdfsig_check.sh");
        let mut command = std::process::Command::new("bash");
        command.arg(script);
        if level == "B-LTA" {
            // poppler cannot verify ETSI.RFC3161 document time-stamps;
            // validate_pdf.py checks them instead.
            command.arg("--allow-doc-timestamps");
        }
        let out = command.arg(signed).arg(&root).output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            signed.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The arguments of `validate_pdf.py`.
pub fn validate_pdf_args<'a>(
    signed: &'a Path,
    root: &'a Path,
    original: &'a Path,
    expect: &'a str,
    level: &'a str,
    at: &'a str,
) -> [&'a std::ffi::OsStr; 11] {
    [
        signed.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
        "--expect".as_ref(),
        expect.as_ref(),
        "--original".as_ref(),
        original.as_os_str(),
        "--level".as_ref(),
        level.as_ref(),
        "--at".as_ref(),
        at.as_ref(),
    ]
}

/// `validate_pdf.py --at tst` with the validator's clock `tools::LATER`,
/// after the signing certificate expired: every EN 319 102-1 procedure
/// pyHanko runs on the file (with time, and LTA for B-LTA) must pass.
pub fn judge_later(signed: &Path, original: &Path, expect: &str, level: &str) {
    let root = env().root_ca();
    let verdict = tools::validate_later(
        &tools::shared_script("validate_pdf.py"),
        &validate_pdf_args(signed, &root, original, expect, level, "tst"),
    )
    .unwrap_or_else(|e| panic!("{} {}: {e}", signed.display(), tools::LATER));
    let Some(verdict) = verdict else { return };
    let procedures = verdict["pyhanko_ades"]
        .as_array()
        .unwrap_or_else(|| panic!("no pyHanko AdES results: {verdict}"));
    let expected = if level == "B-LTA" { 2 } else { 1 };
    assert_eq!(procedures.len(), expected, "{verdict}");
    for procedure in procedures {
        assert_eq!(
            procedure["indication"],
            "PASSED",
            "{} at {}: {procedure}",
            signed.display(),
            tools::LATER
        );
    }
}

async fn sign_corpus_through_service(label: &str, who: Who, seal: &str, expect: &str) {
    let server = server(label).await;
    let mut client = server.client().await;
    let out = tempfile::tempdir().unwrap();
    let mut signed_count = 0;
    for (name, expected) in manifest() {
        let original = corpus().join(&name);
        let pdf = std::fs::read(&original).unwrap();
        let result = client.sign_pdf(pdf_request(pdf, &who, seal)).await;
        match expected.as_str() {
            "sign" => {
                let response = result
                    .unwrap_or_else(|s| panic!("{name}: {s:?}"))
                    .into_inner();
                let signed = out.path().join(&name);
                std::fs::write(&signed, &response.signed_pdf).unwrap();
                judge(&signed, &original, expect);
                signed_count += 1;
            }
            _ => {
                let status = result.expect_err(&format!("{name} must be refused"));
                assert_eq!(
                    status.code(),
                    Code::FailedPrecondition,
                    "{name}: {}",
                    status.message()
                );
                assert!(
                    status.message().contains("encrypted"),
                    "{name}: {}",
                    status.message()
                );
            }
        }
    }
    if !manifest().is_empty() {
        assert!(signed_count >= 8, "every signable corpus file was signed");
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_personal_through_service() {
    sign_corpus_through_service("pdf-person", Who::jens(), "", "person").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_seal_through_service() {
    sign_corpus_through_service("pdf-seal", Who::sealer(), "dev", "seal").await;
}

async fn sign_corpus_hash_only(label: &str, name: &str, seal: Option<&str>, expect: &str) {
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
    for (file, expected) in manifest() {
        let original = corpus().join(&file);
        let job = PdfJob {
            input: original.clone(),
            output: out.path().join(&file),
            seal_profile: seal.map(str::to_owned),
            options: PdfOptions {
                visible: Some((1, [40.0, 40.0, 220.0, 50.0])),
                ..Default::default()
            },
            key_algorithm: proto::KeyAlgorithm::EcP256,
            level: proto::Level::BB,
            hash_only_above: 0,
            durable: true,
        };
        let result = client::sign_pdf(&connection, &token, &job).await;
        if expected == "sign" {
            result.unwrap_or_else(|e| panic!("{file}: {e}"));
            judge(&job.output, &original, expect);
        } else {
            let message = result.expect_err("encrypted files are refused").to_string();
            assert!(message.contains("encrypted"), "{file}: {message}");
            assert!(!job.output.exists(), "no output for a refused file");
        }
        let mut partial = job.output.clone().into_os_string();
        partial.push(".partial");
        assert!(
            expected != "sign" || !Path::new(&partial).exists(),
            "no partial file left"
        );
    }
    assert_eq!(env().leftover_keys(label), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_personal_hash_only_cli() {
    sign_corpus_hash_only("pdf-hash-person", "Jens Hansen", None, "person").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn corpus_seal_hash_only_cli() {
    sign_corpus_hash_only("pdf-hash-seal", "Mette Sørensen", Some("dev"), "seal").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_signatures_in_a_row_all_stay_valid() {
    let server = server("pdf-ten").await;
    let mut client = server.client().await;
    let Some(original) = manifest()
        .into_iter()
        .find(|(n, _)| n == "acroform_textfields.pdf")
    else {
        return;
    };
    let original = corpus().join(original.0);
    let out = tempfile::tempdir().unwrap();
    let mut pdf = std::fs::read(&original).unwrap();
    let mut previous = original.clone();
    for i in 0..10 {
        let (who, seal, expect) = if i % 2 == 0 {
            (Who::jens(), "", "person")
        } else {
            (Who::sealer(), "dev", "seal")
        };
        let response = client
            .sign_pdf(pdf_request(pdf, &who, seal))
            .await
            .expect("signed")
            .into_inner();
        pdf = response.signed_pdf;
        let path = out.path().join(format!("signed-{i}.pdf"));
        std::fs::write(&path, &pdf).unwrap();
        // validate_pdf.py checks every earlier signature is still intact and valid.
        judge(&path, &previous, expect);
        previous = path;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_pdf_carries_no_personal_name() {
    let server = server("pdf-seal-name").await;
    let pdf =
        std::fs::read(corpus().join("reportlab_simple.pdf")).unwrap_or_else(|_| minimal_pdf());
    let original_len = pdf.len();
    let mut request = pdf_request(pdf, &Who::sealer(), "dev");
    request.appearance = Some(proto::Appearance {
        page: 1,
        x: 40.0,
        y: 40.0,
        width: 200.0,
        height: 50.0,
    });
    let signed = server
        .client()
        .await
        .sign_pdf(request)
        .await
        .expect("signed")
        .into_inner()
        .signed_pdf;
    let who = Who::sealer();
    let update = &signed[original_len..];
    for needle in [who.given, who.family, "/Name"] {
        assert!(
            !update.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in a seal's update"
        );
    }
    // The text is set in an embedded subset (glyph ids); poppler reads it
    // back through the /ToUnicode map. Danish by default.
    if !tools::require("pdftotext") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed.pdf");
    std::fs::write(&path, &signed).unwrap();
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Elektronisk segl: Qsign Udvikling ApS",
        "CVR 12345678",
        "Årsag: Godkendt",
    ] {
        assert!(text.contains(line), "{line:?} in the appearance: {text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_pdfs_get_their_codes() {
    let server =
        Server::start(env().core("pdf-errors", |c| c.limits.max_document_bytes = 64 << 10)).await;
    let mut client = server.client().await;
    let cases: Vec<(&str, Vec<u8>, Code)> = vec![
        ("not a PDF", b"hello, world".to_vec(), Code::InvalidArgument),
        (
            "truncated",
            minimal_pdf()[..120].to_vec(),
            Code::InvalidArgument,
        ),
        ("empty", Vec::new(), Code::InvalidArgument),
        (
            "over the limit",
            vec![b' '; (64 << 10) + 1],
            Code::ResourceExhausted,
        ),
    ];
    for (case, pdf, code) in cases {
        let status = client
            .sign_pdf(pdf_request(pdf, &Who::jens(), ""))
            .await
            .expect_err(case);
        assert_eq!(status.code(), code, "{case}: {}", status.message());
        if code == Code::ResourceExhausted {
            assert!(
                status.message().contains("hash-only"),
                "{}",
                status.message()
            );
        }
    }
    assert_eq!(env().leftover_keys("pdf-errors"), 0);
}

/// A one-page PDF with a classic xref table.
pub fn minimal_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ];
    let mut pdf = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).bytes());
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for offset in offsets {
        pdf.extend(format!("{offset:010} 00000 n \n").bytes());
    }
    pdf.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .bytes(),
    );
    pdf
}
