//! Filling an existing empty signature field, FieldMDP locks, and a
//! visible signature with a name outside WinAnsi on a rotated page,
//! rendered by pdftoppm.

use std::process::Command;

use super::generated::Builder;
use super::support::*;
use crate::pades::{prepare_bytes, Appearance, PdfError};

const NAME: &str = "Łukasz Żółć-Ørsted Ἀθηνᾶ";

/// One A4 page rotated by `rotate`, and an AcroForm with an empty
/// signature field "Approval" on it, plus `extra` root fields.
fn with_field(rotate: i64, extra: &[&str]) -> Vec<u8> {
    let mut b = Builder::new("\n");
    let catalog = b.reserve();
    let pages = b.reserve();
    let page = b.reserve();
    let field = b.add(format!(
        "<< /FT /Sig /T (Approval) /Type /Annot /Subtype /Widget /Rect [300 500 500 560] /F 4 /P {page} 0 R >>"
    ));
    let mut fields = vec![format!("{field} 0 R")];
    for body in extra {
        fields.push(format!("{} 0 R", b.add(*body)));
    }
    b.set(
        catalog,
        format!(
            "<< /Type /Catalog /Pages {pages} 0 R /AcroForm << /Fields [{}] >> >>",
            fields.join(" ")
        ),
    );
    b.set(
        pages,
        format!("<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>"),
    );
    b.set(
        page,
        format!("<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 595 842] /Rotate {rotate} /Annots [{field} 0 R] >>"),
    );
    b.finish(catalog)
}

/// One A4 page rotated by `rotate`, no form.
fn rotated(rotate: i64) -> Vec<u8> {
    let mut b = Builder::new("\n");
    b.add("<< /Type /Catalog /Pages 2 0 R >>");
    b.add("<< /Type /Pages /Kids [3 0 R] /Count 1 >>");
    b.add(format!(
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Rotate {rotate} >>"
    ));
    b.finish(1)
}

fn named(field: &str, appearance: Option<Appearance>) -> crate::pades::SignatureRequest {
    let mut req = request(appearance);
    req.field_name = Some(field.into());
    req
}

fn unicode_visible() -> Appearance {
    Appearance {
        page: 1,
        rect: [100.0, 100.0, 260.0, 60.0],
        lines: vec![
            format!("Digitalt signeret af {NAME}"),
            "Tidspunkt: 2026-12-02 07:05:39 CET".into(),
        ],
    }
}

#[test]
fn an_empty_field_is_filled_by_name() {
    let pdf = with_field(0, &[]);
    let update = prepare_bytes(&pdf, &named("Approval", Some(unicode_visible()))).expect("fills");
    assert_eq!(update.field_name(), "Approval");
    let text = String::from_utf8_lossy(update.update()).into_owned();
    assert!(
        text.contains("/T (Approval)") && text.contains("/V "),
        "{text}"
    );
    assert!(!text.contains("/T (Signature1)"));
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let signed = sign_and_check(
        &pdf,
        &named("Approval", Some(unicode_visible())),
        work.path(),
        "fill",
    );
    assert_eq!(qpdf_field_names(&signed), ["Approval"]);
}

#[test]
fn a_signed_or_foreign_field_is_refused() {
    let pdf = with_field(0, &["<< /FT /Tx /T (City) >>"]);
    let err = prepare_bytes(&pdf, &named("City", None)).expect_err("text field");
    assert!(matches!(err, PdfError::InvalidRequest(_)), "{err}");
}

#[test]
fn field_locks_of_earlier_signatures_are_honoured() {
    let locked = "<< /FT /Sig /T (First) /V << /Type /Sig >> /Lock << /Type /SigFieldLock /Action /Include /Fields [(Approval)] >> >>";
    let pdf = with_field(0, &[locked]);
    let err = prepare_bytes(&pdf, &named("Approval", None)).expect_err("locked");
    assert!(matches!(err, PdfError::Locked(_)), "{err}");
    assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition);
    // A new field changes no locked field.
    assert!(prepare_bytes(&pdf, &request(None)).is_ok());
    let all = "<< /FT /Sig /T (First) /V << /Type /Sig >> /Lock << /Action /All /P 1 >> >>";
    let err = prepare_bytes(&with_field(0, &[all]), &request(None)).expect_err("P 1");
    assert!(matches!(err, PdfError::Locked(_)), "{err}");
    let excluded = "<< /FT /Sig /T (First) /V << /Type /Sig >> /Lock << /Action /Exclude /Fields [(Approval)] >> >>";
    assert!(prepare_bytes(&with_field(0, &[excluded]), &named("Approval", None)).is_ok());
}

/// Renders page 1 at 72 dpi as PGM; returns (width, height, pixels).
fn render(pdf: &std::path::Path, out: &std::path::Path) -> (usize, usize, Vec<u8>) {
    let status = run(Command::new("pdftoppm")
        .args(["-r", "72", "-gray", "-singlefile", "-f", "1", "-l", "1"])
        .arg(pdf)
        .arg(out));
    assert!(status.status.success(), "pdftoppm failed");
    let bytes = std::fs::read(out.with_extension("pgm")).expect("pgm");
    // P5\n<w> <h>\n255\n<pixels>
    let mut fields = bytes.splitn(4, |b| b.is_ascii_whitespace());
    let _magic = fields.next();
    let w: usize = String::from_utf8_lossy(fields.next().expect("w"))
        .parse()
        .expect("w");
    let h: usize = String::from_utf8_lossy(fields.next().expect("h"))
        .parse()
        .expect("h");
    let rest = fields.next().expect("rest");
    let pixels = rest[rest.len() - w * h..].to_vec();
    (w, h, pixels)
}

#[test]
fn a_unicode_name_renders_on_a_rotated_page() {
    if !tools(&[SIGNING_TOOLS, &["pdftoppm"]].concat()) {
        return;
    }
    if crate::pades::font::shape(&[NAME.into()]).is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs fonts-dejavu-core"
        );
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let pdf = rotated(90);
    let original = work.path().join("rotated.pdf");
    std::fs::write(&original, &pdf).expect("write");
    // 60 x 260 in user space: 260 wide and 60 high as the page shows.
    let visible = Appearance {
        rect: [100.0, 100.0, 60.0, 260.0],
        ..unicode_visible()
    };
    let signed = sign_and_check(&pdf, &request(Some(visible)), work.path(), "rotated");
    let (w, h, before) = render(&original, &work.path().join("before"));
    let (w2, h2, after) = render(&signed, &work.path().join("after"));
    // /Rotate 90: the page shows landscape.
    assert_eq!((w, h), (842, 595));
    assert_eq!((w2, h2), (w, h));
    // The widget at x 100..160, y 100..360 of the unrotated page lands at
    // rows 100..160 and columns 100..360 of the rotated rendering.
    let region = |px: &[u8]| -> Vec<u8> {
        (100..160)
            .flat_map(|row| px[row * w + 100..row * w + 360].to_vec())
            .collect()
    };
    let (empty, drawn) = (region(&before), region(&after));
    assert!(empty.iter().all(|&p| p > 250), "the region is blank before");
    let dark = drawn.iter().filter(|&&p| p < 128).count();
    assert!(
        dark > 200,
        "text drawn in the widget region: {dark} dark pixels"
    );
    // The text runs along the long side (upright for the reader): ink in
    // most of the region's columns.
    let columns_with_ink = (0..260)
        .filter(|c| (0..60).any(|r| drawn[r * 260 + c] < 128))
        .count();
    assert!(
        columns_with_ink > 150,
        "{columns_with_ink} columns with text"
    );
    let text = String::from_utf8_lossy(&std::fs::read(&signed).expect("read")).into_owned();
    assert!(text.contains("/FontFile2") && text.contains("/Matrix [0 1 -1 0 0 0]"));
    // The /ToUnicode map gives the name back to text extraction.
    let out = run(Command::new("pdftotext").arg(&signed).arg("-"));
    let extracted = String::from_utf8_lossy(&out.stdout);
    assert!(extracted.contains(NAME), "{extracted}");
}
