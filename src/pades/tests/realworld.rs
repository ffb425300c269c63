//! Every file of `../shared/corpus/realworld/`: signed (invisible and
//! visible), then judged by qpdf and pdfsig.

use std::path::Path;
use std::process::Command;

use super::support::*;

fn realworld() -> Vec<(String, Vec<u8>)> {
    let dir = shared().join("corpus/realworld");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pdf"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect()
}

#[test]
fn realworld_files_prepare() {
    let mut failures = Vec::new();
    let mut repaired = Vec::new();
    for (name, pdf) in realworld() {
        match crate::pades::prepare_bytes(&pdf, &request(Some(visible(1)))) {
            Ok(update) if update.repaired() => repaired.push(name[..3].to_owned()),
            Ok(_) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Irregular but complete tables (120, 130) are read as they are; the
    // files whose cross-reference data is broken are repaired.
    assert_eq!(
        repaired,
        ["064", "076", "111", "112", "113", "114", "115", "119", "122", "131"],
    );
}

/// Signs every file invisibly and visibly (through the reader and the
/// slice path) and checks each with qpdf and pdfsig: no new qpdf warning,
/// our signature valid, earlier signatures as pdfsig judged them before.
/// Lists every failure.
#[test]
fn realworld_files_sign_valid() {
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for (name, pdf) in realworld() {
        let stem = name.trim_end_matches(".pdf").to_owned();
        let input = work.path().join(&name);
        std::fs::write(&input, &pdf).expect("write input");
        for (suffix, req) in [("inv", request(None)), ("vis", request(Some(visible(1))))] {
            let dir = work.path();
            let outcome = std::panic::catch_unwind(|| {
                let signed = sign(&pdf, &req, suffix == "inv", dir);
                let output = dir.join(format!("{stem}-{suffix}.signed.pdf"));
                std::fs::write(&output, &signed).expect("write output");
                assert_no_new_qpdf_warning(&output, &input);
                assert_signatures_keep_status(&output, &input);
            });
            if let Err(e) = outcome {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{name} ({suffix}): {msg}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A qpdf warning with its numbers (offsets, object numbers) blanked:
/// rewritten objects move.
fn normalized(warning: &str) -> String {
    let mut out = String::new();
    for c in warning.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Warnings about the original's own bytes that qpdf gives only once the
/// complete cross-reference section lets it read an object it could not
/// reach before (or recover a stream it gave up on): no new problem.
const ABOUT_ORIGINAL_BYTES: [&str; 2] = [
    "stream keyword followed by carriage return only",
    "recovered stream length",
];

/// `qpdf --check` of `signed` passes, or warns only as `original` does.
pub fn assert_no_new_qpdf_warning(signed: &Path, original: &Path) {
    let (rc, warnings) = qpdf_check(signed);
    if rc == 0 {
        return;
    }
    let (_, before) = qpdf_check(original);
    let before: Vec<String> = before.iter().map(|w| normalized(w)).collect();
    let new: Vec<&String> = warnings
        .iter()
        .filter(|w| !before.contains(&normalized(w)))
        .filter(|w| !ABOUT_ORIGINAL_BYTES.iter().any(|b| w.contains(b)))
        .collect();
    assert!(
        rc == 3 && new.is_empty(),
        "qpdf --check {} (rc {rc}) warns anew: {new:?}",
        signed.display()
    );
}

/// pdfsig_check's per-signature verdicts ("signature #n: ...").
fn verdicts(pdf: &Path) -> Vec<String> {
    let script = shared().join("validate/pdfsig_check.sh");
    let root = pki_in(pdf.parent().expect("dir")).root;
    let out = run(Command::new("bash").arg(&script).arg(pdf).arg(root));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("signature #"))
        .map(str::to_owned)
        .collect()
}

/// The new (last) signature is valid and trusted; the earlier ones keep
/// pdfsig's verdict on the original.
pub fn assert_signatures_keep_status(signed: &Path, original: &Path) {
    let after = verdicts(signed);
    let before = if after.len() > 1 {
        verdicts(original)
    } else {
        Vec::new()
    };
    let last = after.last().cloned().unwrap_or_default();
    assert!(last.ends_with(": OK"), "{}: {after:?}", signed.display());
    assert_eq!(
        &after[..after.len() - 1],
        &before[..],
        "{}: earlier signatures changed",
        signed.display()
    );
}

/// An encrypted file stays "encrypted" when its cross-reference data is
/// also damaged (the rebuilt trailer names /Encrypt), with junk before
/// the header too.
#[test]
fn damaged_encrypted_files_are_called_encrypted() {
    for name in ["encrypted_userpw.pdf", "encrypted_empty_userpw.pdf"] {
        let pdf = corpus_file(name);
        let at = pdf
            .windows(9)
            .rposition(|w| w == b"startxref")
            .expect("startxref");
        let mut damaged = b"junk\n".to_vec();
        damaged.extend_from_slice(&pdf[..at]);
        damaged.extend_from_slice(b"startxref\n12\n%%EOF\n");
        let err = crate::pades::prepare_bytes(&damaged, &request(None)).expect_err(name);
        assert!(
            matches!(err, crate::pades::PdfError::Encrypted),
            "{name}: {err}"
        );
    }
}
