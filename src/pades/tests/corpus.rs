//! Every file of `../shared/corpus/manifest.json`: signed and verified, or
//! refused as the manifest expects.

use std::io::Cursor;

use super::support::*;
use crate::pades::{prepare, prepare_bytes, PdfError};
use crate::ErrorKind;

struct Case {
    name: String,
    expected: String,
}

fn manifest() -> Vec<Case> {
    let path = shared().join("corpus/manifest.json");
    let text =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_slice(&text).expect("manifest JSON");
    let entries = json.as_array().expect("manifest is an array");
    let cases: Vec<Case> = entries
        .iter()
        .map(|e| Case {
            name: e["name"].as_str().expect("name").to_owned(),
            expected: e["expected"].as_str().expect("expected").to_owned(),
        })
        .collect();
    assert!(cases.len() >= 10, "the corpus lists {} files", cases.len());
    cases
}

pub fn signable() -> Vec<String> {
    manifest()
        .into_iter()
        .filter(|c| c.expected == "sign")
        .map(|c| c.name)
        .collect()
}

#[test]
fn corpus_files_sign_and_verify_with_qpdf_and_pdfsig() {
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    for name in signable() {
        let original = corpus_file(&name);
        let stem = name.trim_end_matches(".pdf");
        let input = work.path().join(&name);
        let before = qpdf_field_names(&input_written(&input, &original));

        let signed = sign_and_check(&original, &request(None), work.path(), stem);
        let after = qpdf_field_names(&signed);
        for field in &before {
            assert!(
                after.contains(field),
                "{name}: field {field} lost; now {after:?}"
            );
        }
        assert_eq!(
            after.len(),
            before.len() + 1,
            "{name}: one new field, {before:?} -> {after:?}"
        );
        assert!(
            after.iter().any(|f| f.starts_with("Signature")),
            "{name}: {after:?}"
        );
    }
}

fn input_written(path: &std::path::Path, bytes: &[u8]) -> std::path::PathBuf {
    std::fs::write(path, bytes).expect("write input");
    path.to_path_buf()
}

#[test]
fn corpus_files_take_a_visible_signature_that_renders() {
    if !tools(&[SIGNING_TOOLS, &["pdftoppm"]].concat()) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    for name in signable() {
        let original = corpus_file(&name);
        let stem = format!("{}-visible", name.trim_end_matches(".pdf"));
        let signed = sign_and_check(&original, &request(Some(visible(1))), work.path(), &stem);
        assert_renders(&signed, 1, work.path());
    }
}

#[test]
fn encrypted_corpus_files_are_refused() {
    for case in manifest().into_iter().filter(|c| c.expected == "refuse") {
        let original = corpus_file(&case.name);
        let err = prepare_bytes(&original, &request(None)).expect_err(&case.name);
        assert!(matches!(err, PdfError::Encrypted), "{}: {err}", case.name);
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
        let public = crate::Error::from(err);
        assert!(
            public.message().contains("qpdf --decrypt"),
            "{}",
            public.message()
        );
    }
}

#[test]
fn reader_and_slice_paths_write_the_same_update() {
    for name in signable() {
        let original = corpus_file(&name);
        let req = request(Some(visible(1)));
        let a = prepare(&mut Cursor::new(&original), &req).expect("reader path");
        let b = prepare_bytes(&original, &req).expect("slice path");
        assert_eq!(a.update(), b.update(), "{name}");
        assert_eq!(a.byte_range(), b.byte_range(), "{name}");
        assert_eq!(a.original_len(), original.len() as u64);
        assert_eq!(a.contents_capacity(), req.contents_capacity);
    }
}

#[test]
fn a_second_signature_keeps_the_first_valid() {
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    for name in [
        "acroform_textfields.pdf",
        "qpdf_object_streams.pdf",
        "qpdf_linearized.pdf",
    ] {
        let stem = name.trim_end_matches(".pdf");
        let once = std::fs::read(sign_and_check(
            &corpus_file(name),
            &request(None),
            work.path(),
            stem,
        ))
        .expect("read signed");
        let twice = sign_and_check(
            &once,
            &request(Some(visible(1))),
            work.path(),
            &format!("{stem}-2"),
        );
        let report = assert_pdfsig_ok(&twice);
        assert!(report.contains("signatures=2 bad=0"), "{report}");
        let names = qpdf_field_names(&twice);
        assert!(
            names.contains(&"Signature1".into()) && names.contains(&"Signature2".into()),
            "{names:?}"
        );
    }
}

#[test]
fn ten_signatures_in_a_row_all_stay_valid() {
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    for name in ["reportlab_simple.pdf", "qpdf_object_streams.pdf"] {
        let mut pdf = corpus_file(name);
        for round in 0..10 {
            let appearance = (round % 2 == 1).then(|| visible(1));
            pdf = sign(&pdf, &request(appearance), round % 3 == 0, work.path());
        }
        let path = work.path().join(format!("ten-{name}"));
        std::fs::write(&path, &pdf).expect("write");
        assert_qpdf_ok(&path, &shared().join("corpus").join(name));
        let report = assert_pdfsig_ok(&path);
        assert!(report.contains("signatures=10 bad=0"), "{name}: {report}");
    }
}

/// The checks above can fail: a byte changed inside the signed range, or
/// a wrong root, makes pdfsig_check reject the file.
#[test]
fn tampering_is_detected_by_the_checks() {
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let signed = sign_and_check(
        &corpus_file("reportlab_simple.pdf"),
        &request(None),
        work.path(),
        "tamper",
    );
    let mut bytes = std::fs::read(&signed).expect("read");
    // Inside the Info dictionary's /Producer text: covered by the signature.
    let at = bytes
        .windows(8)
        .position(|w| w == b"ReportLa")
        .expect("producer");
    bytes[at] = b'X';
    let tampered = work.path().join("tampered.pdf");
    std::fs::write(&tampered, &bytes).expect("write");
    assert!(
        !pdfsig_passes(&tampered),
        "pdfsig must reject a changed byte"
    );
    let [_, b, c, _] = last_byte_range(&bytes);
    assert!(
        (at as u64) < b || (at as u64) >= c,
        "the changed byte is covered"
    );
}
