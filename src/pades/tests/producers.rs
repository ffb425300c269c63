//! A corpus made by real producers installed from Debian (Ghostscript,
//! MuPDF, cairo through pdftocairo, qpdf rewrites, pdfTeX when present),
//! plus damaged copies of each (startxref moved, xref offsets shifted, a
//! /Prev loop, the cross-reference data removed, junk before the header):
//! every one signed, valid for pdfsig, and no new qpdf warning.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::realworld::{assert_no_new_qpdf_warning, assert_signatures_keep_status};
use super::support::*;

const POSTSCRIPT: &str = "%!PS\n/Helvetica findfont 24 scalefont setfont\n\
72 700 moveto (Made by Ghostscript) show showpage\n\
72 700 moveto (Page two) show showpage\n";
const MUPDF: &str = "%%MediaBox 0 0 595 842\n%%Font F1 Helvetica\n\
BT /F1 24 Tf 72 700 Td (Made by mutool create) Tj ET\n";
/// pdfTeX without any format or font: two pages of rules.
const PDFTEX: &str = "\\pdfoutput=1 \\pdfpagewidth=595bp \\pdfpageheight=842bp \
\\pdfcompresslevel=9 \\pdfobjcompresslevel=2 \
\\shipout\\hbox{\\vrule width 100bp height 50bp} \\shipout\\hbox{\\vrule width 50bp height 100bp} \\end";

/// Runs `cmd` in `dir`; true on success.
fn make(cmd: &mut Command, dir: &Path) -> bool {
    let out = run(cmd.current_dir(dir));
    if !out.status.success() {
        eprintln!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// The producers' files that could be made; a missing producer is
/// skipped (under CI=true, `tools` fails the test instead).
fn produce(dir: &Path) -> Vec<PathBuf> {
    let mut made = Vec::new();
    let mut keep = |name: &str, ok: bool| {
        let path = dir.join(name);
        if ok && path.is_file() {
            made.push(path);
        }
    };
    std::fs::write(dir.join("in.ps"), POSTSCRIPT).expect("write");
    std::fs::write(dir.join("in.txt"), MUPDF).expect("write");
    if tools(&["gs"]) {
        let ok = make(
            Command::new("gs").args([
                "-q",
                "-dBATCH",
                "-dNOPAUSE",
                "-dSAFER",
                "-sDEVICE=pdfwrite",
                "-sOutputFile=gs.pdf",
                "in.ps",
            ]),
            dir,
        );
        keep("gs.pdf", ok);
    }
    if tools(&["mutool"]) {
        let ok = make(
            Command::new("mutool").args(["create", "-o", "mutool.pdf", "in.txt"]),
            dir,
        );
        keep("mutool.pdf", ok);
    }
    let base = if dir.join("gs.pdf").is_file() {
        "gs.pdf"
    } else {
        "mutool.pdf"
    };
    if tools(&["pdftocairo"]) && dir.join(base).is_file() {
        let ok = make(
            Command::new("pdftocairo").args(["-pdf", base, "cairo.pdf"]),
            dir,
        );
        keep("cairo.pdf", ok);
    }
    if dir.join(base).is_file() {
        for (name, args) in [
            ("qpdf-qdf.pdf", &["--qdf"][..]),
            ("qpdf-objstm.pdf", &["--object-streams=generate"][..]),
            ("qpdf-linearized.pdf", &["--linearize"][..]),
        ] {
            let ok = make(Command::new("qpdf").args(args).args([base, name]), dir);
            keep(name, ok);
        }
    }
    if Command::new("pdftex").arg("--version").output().is_ok() {
        // The source on the command line: without texmf files, kpathsea
        // finds no input file.
        let args = [
            "-ini",
            "-interaction=nonstopmode",
            "-jobname=pdftex",
            PDFTEX,
        ];
        let ok = make(Command::new("pdftex").args(args), dir);
        keep("pdftex.pdf", ok);
    }
    made
}

/// The offset `startxref` names, and where that number is written.
fn startxref(pdf: &[u8]) -> (usize, std::ops::Range<usize>) {
    let at = pdf
        .windows(9)
        .rposition(|w| w == b"startxref")
        .expect("startxref")
        + 9;
    let start = at
        + pdf[at..]
            .iter()
            .position(u8::is_ascii_digit)
            .expect("digits");
    let end = start
        + pdf[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    let value = std::str::from_utf8(&pdf[start..end])
        .expect("ascii")
        .parse()
        .expect("offset");
    (value, start..end)
}

/// The catalog reference as the last trailer writes it ("/Root n g R").
fn root(pdf: &[u8]) -> String {
    let text = String::from_utf8_lossy(pdf);
    let at = text.rfind("/Root").expect("/Root") + 5;
    let rest = text[at..].trim_start();
    let end = rest.find('R').expect("R") + 1;
    rest[..end].to_owned()
}

/// `pdf` with every `startxref` and classic `xref` keyword blanked: no
/// reader finds a cross-reference section (streams stay, unreferenced).
fn without_xref(pdf: &[u8]) -> Vec<u8> {
    let mut out = pdf.to_vec();
    for i in 0..out.len().saturating_sub(9) {
        if out[i..].starts_with(b"startxref") {
            out[i..i + 9].fill(b' ');
        }
    }
    for i in 1..out.len().saturating_sub(5) {
        let line_start = matches!(out[i - 1], b'\n' | b'\r');
        if line_start && out[i..].starts_with(b"xref") && matches!(out[i + 4], b'\n' | b'\r' | b' ')
        {
            out[i..i + 4].fill(b' ');
        }
    }
    out
}

/// Damaged copies of `pdf`, each named.
fn damaged(pdf: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let (xref_at, number) = startxref(pdf);
    let mut moved = pdf.to_vec();
    let wrong = (xref_at + 7).to_string();
    moved.splice(number.clone(), wrong.bytes());
    // Ten bytes after the header line: every offset is ten bytes short.
    let line = pdf.iter().position(|&b| b == b'\n').expect("header line") + 1;
    let mut shifted = pdf.to_vec();
    shifted.splice(line..line, b"%shifted!\n".iter().copied());
    let mut looped = pdf.to_vec();
    // An empty section whose /Prev is itself.
    let at = looped.len() + 1;
    let section = format!(
        "\nxref\n0 0\ntrailer\n<< /Size 1 /Root {} /Prev {at} >>\nstartxref\n{at}\n%%EOF\n",
        root(pdf)
    );
    looped.extend_from_slice(section.as_bytes());
    let removed = without_xref(pdf);
    let mut junk = b"From: mailer\r\nContent-Type: application/pdf\r\n\r\n\x00\x01".to_vec();
    junk.extend_from_slice(pdf);
    vec![
        ("startxref-moved", moved),
        ("offsets-shifted", shifted),
        ("prev-loop", looped),
        ("xref-removed", removed),
        ("junk-before-header", junk),
    ]
}

#[test]
fn producers_and_damaged_copies_sign_valid() {
    if !tools(&[SIGNING_TOOLS, &["pdftocairo"]].concat()) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let files = produce(work.path());
    assert!(files.len() >= 5, "made only {files:?}");
    let mut failures = Vec::new();
    let mut signed_count = 0;
    for file in &files {
        let pdf = std::fs::read(file).expect("read");
        let stem = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let mut cases = vec![("as-made", pdf.clone())];
        cases.extend(damaged(&pdf));
        for (kind, bytes) in cases {
            let name = format!("{stem}-{kind}");
            let input = work.path().join(format!("{name}.in.pdf"));
            std::fs::write(&input, &bytes).expect("write");
            let outcome = std::panic::catch_unwind(|| {
                let req = request(Some(visible(1)));
                let signed = sign(&bytes, &req, kind == "as-made", work.path());
                let output = work.path().join(format!("{name}.signed.pdf"));
                std::fs::write(&output, &signed).expect("write");
                assert_no_new_qpdf_warning(&output, &input);
                assert_signatures_keep_status(&output, &input);
            });
            match outcome {
                Ok(()) => signed_count += 1,
                Err(e) => failures.push(format!(
                    "{name}: {}",
                    e.downcast_ref::<String>().cloned().unwrap_or_default()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(signed_count, files.len() * 6);
}
