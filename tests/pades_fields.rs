//! An existing empty signature field filled by name through SignPdf and
//! through the CLI's hash-only path (`--field`), with the appearance in
//! English and another time zone; bad options get INVALID_ARGUMENT.

use std::path::Path;

use qsign::client::{self, Connection, PdfJob, TokenSource};
use qsign::proto;
use qsign::signing::PdfOptions;
use tonic::Code;

use crate::pades::judge;
use crate::support::{env, server, sign_pdf_request, tools, Who};

/// The empty signature field "Godkendelse" on the rotated page.
const GODKENDELSE: &str =
    "<< /FT /Sig /T (Godkendelse) /Type /Annot /Subtype /Widget /F 4 /P 3 0 R /Rect [300 100 360 400] >>";

/// One page, rotated 90°, with an empty signature field "Godkendelse".
fn with_empty_field() -> Vec<u8> {
    form_pdf(&[GODKENDELSE])
}

/// One page, rotated 90°, whose AcroForm and /Annots hold `fields`
/// (objects 4, 5, ...).
fn form_pdf(fields: &[&str]) -> Vec<u8> {
    let refs: Vec<String> = (0..fields.len())
        .map(|i| format!("{} 0 R", i + 4))
        .collect();
    let refs = refs.join(" ");
    let catalog = format!("<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [{refs}] >> >>");
    let page = format!(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Rotate 90 /Annots [{refs}] >>"
    );
    let mut objects = vec![
        catalog.as_str(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        page.as_str(),
    ];
    objects.extend_from_slice(fields);
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

/// The field names and the appearance text of `signed`.
fn fields_and_text(signed: &Path) -> (String, String) {
    let run = |cmd: &mut std::process::Command| {
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    let fields = run(std::process::Command::new("qpdf")
        .args(["--json", "--json-key=acroform"])
        .arg(signed));
    let text = run(std::process::Command::new("pdftotext").arg(signed).arg("-"));
    (fields, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_field_is_filled_through_service_and_cli() {
    let server = server("pdf-fill").await;
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("form.pdf");
    std::fs::write(&original, with_empty_field()).unwrap();
    let pdf = with_empty_field();

    let mut request = sign_pdf_request(pdf.clone(), &Who::jens(), "", proto::Level::BB);
    request.field_name = Some("Godkendelse".into());
    request.language = Some("en".into());
    request.time_zone = Some("America/New_York".into());
    request.reason = Some("Approved".into());
    request.appearance = Some(proto::Appearance {
        page: 1,
        x: 0.0,
        y: 0.0,
        width: 1.0,
        height: 1.0,
    });
    let response = server
        .client()
        .await
        .sign_pdf(request)
        .await
        .expect("signed")
        .into_inner();
    assert!(!response.repaired);
    let signed = dir.path().join("service.pdf");
    std::fs::write(&signed, &response.signed_pdf).unwrap();
    judge(&signed, &original, "person");
    if tools::require("pdftotext") {
        let (fields, text) = fields_and_text(&signed);
        assert!(
            fields.contains("Godkendelse") && !fields.contains("Signature1"),
            "{fields}"
        );
        for needle in ["Digitally signed by Jens Hansen", "Reason: Approved"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(text.contains(" EST") || text.contains(" EDT"), "{text}");
    }

    for (language, zone) in [("fr", "Europe/Paris"), ("da", "Nowhere/City")] {
        let mut bad = sign_pdf_request(pdf.clone(), &Who::jens(), "", proto::Level::BB);
        bad.language = Some(language.into());
        bad.time_zone = Some(zone.into());
        bad.appearance = Some(proto::Appearance {
            page: 1,
            x: 0.0,
            y: 0.0,
            width: 10.0,
            height: 10.0,
        });
        let status = server
            .client()
            .await
            .sign_pdf(bad)
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    }

    let job = PdfJob {
        input: original.clone(),
        output: dir.path().join("cli.pdf"),
        seal_profile: Some("dev".into()),
        options: PdfOptions {
            visible: Some((1, [0.0, 0.0, 1.0, 1.0])),
            field_name: Some("Godkendelse".into()),
            ..Default::default()
        },
        key_algorithm: proto::KeyAlgorithm::EcP256,
        level: proto::Level::BB,
        hash_only_above: 0,
        durable: false,
    };
    let connection = Connection {
        server: format!("http://{}", server.address),
        ca: None,
        identity: None,
    };
    let token = TokenSource::Dev {
        state_dir: env().dir.clone(),
        name: "Mette Sørensen".into(),
    };
    client::sign_pdf(&connection, &token, &job)
        .await
        .expect("hash-only");
    judge(&job.output, &original, "seal");
    if tools::require("pdftotext") {
        let (_, text) = fields_and_text(&job.output);
        assert!(
            text.contains("Elektronisk segl: ") && text.contains("CVR "),
            "{text}"
        );
    }
    assert_eq!(env().leftover_keys("pdf-fill"), 0);
}

/// ISO 32000-1 §12.7.4.5 Table 233: a field whose /Lock names "Bilag"
/// is filled; the signature carries the FieldMDP reference (§12.8.2.4)
/// that validators read (pyHanko's `fieldmdp`), and "Bilag" can no longer
/// be filled.
#[tokio::test(flavor = "multi_thread")]
async fn a_field_lock_becomes_the_signatures_field_mdp() {
    let server = server("pdf-lock").await;
    let dir = tempfile::tempdir().unwrap();
    let locking =
        "<< /FT /Sig /T (Godkendelse) /Type /Annot /Subtype /Widget /F 4 /P 3 0 R /Rect [0 0 0 0] \
         /Lock << /Type /SigFieldLock /Action /Include /Fields [(Bilag)] >> >>";
    let bilag =
        "<< /FT /Sig /T (Bilag) /Type /Annot /Subtype /Widget /F 4 /P 3 0 R /Rect [0 0 0 0] >>";
    let pdf = form_pdf(&[locking, bilag]);
    let original = dir.path().join("locking.pdf");
    std::fs::write(&original, &pdf).unwrap();
    let sign = |pdf: Vec<u8>, field: &str| {
        let mut request = sign_pdf_request(pdf, &Who::jens(), "", proto::Level::BB);
        request.field_name = Some(field.into());
        request
    };
    let signed = server
        .client()
        .await
        .sign_pdf(sign(pdf.clone(), "Godkendelse"))
        .await
        .expect("signed")
        .into_inner()
        .signed_pdf;
    let path = dir.path().join("locked.pdf");
    std::fs::write(&path, &signed).unwrap();
    // pyHanko judges the signature (pdfsig_check.sh would count the still
    // empty field "Bilag" as a bad signature).
    let root = env().root_ca();
    let args = crate::pades::validate_pdf_args(&path, &root, &original, "person", "B-B", "now");
    tools::validate("validate_pdf.py", &args).unwrap_or_else(|e| panic!("{e}"));
    if let Some((python, _)) = tools::validator() {
        let script = "import sys; from pyhanko.pdf_utils.reader import PdfFileReader; \
            spec = PdfFileReader(open(sys.argv[1], 'rb')).embedded_signatures[0].fieldmdp; \
            print(spec.action.name, list(spec.fields))";
        let out = std::process::Command::new(python)
            .args(["-c", script])
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(said.trim(), "INCLUDE ['Bilag']");
    }
    let status = server
        .client()
        .await
        .sign_pdf(sign(signed, "Bilag"))
        .await
        .expect_err("locked");
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert_eq!(env().leftover_keys("pdf-lock"), 0);
}
