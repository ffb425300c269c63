//! Hand-made hostile structures: each must end in a precise Malformed,
//! never a panic, a hang or a stack overflow.

use std::io::Write as _;

use super::generated::Builder;
use super::support::{request, visible};
use crate::pades::{prepare_bytes, PdfError};

fn malformed(pdf: &[u8], page: u32) -> String {
    match prepare_bytes(pdf, &request(Some(visible(page)))) {
        Err(PdfError::Malformed(message)) => {
            eprintln!("Malformed: {message}");
            message
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

/// Catalog 1, a page tree from `nodes` (object 2 on), no content.
fn tree(nodes: &[&str]) -> Vec<u8> {
    let mut b = Builder::new("\n");
    b.add("<< /Type /Catalog /Pages 2 0 R >>");
    for node in nodes {
        b.add(*node);
    }
    b.finish(1)
}

#[test]
fn page_tree_cycles_are_malformed() {
    let pdf = tree(&[
        "<< /Type /Pages /Kids [3 0 R] /Count 5 >>",
        "<< /Type /Pages /Kids [2 0 R] /Count 5 >>",
    ]);
    let message = malformed(&pdf, 2);
    assert!(message.contains("loops back"), "{message}");
    let pdf = tree(&["<< /Type /Pages /Kids [2 0 R] /Count 3 >>"]);
    assert!(malformed(&pdf, 1).contains("loops back"));
}

#[test]
fn counts_that_lie_are_malformed() {
    let pdf = tree(&[
        "<< /Type /Pages /Kids [3 0 R] /Count 4294967295 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    ]);
    let message = malformed(&pdf, 300);
    assert!(message.contains("does not reach page 300"), "{message}");
    let pdf = tree(&[
        "<< /Type /Pages /Kids [3 0 R] /Count 2 >>",
        "<< /Type /Pages /Kids [] /Count -7 >>",
    ]);
    assert!(malformed(&pdf, 1).contains("/Count"));
}

#[test]
fn kids_that_are_not_references_are_malformed() {
    let pdf = tree(&["<< /Type /Pages /Kids [<< /Type /Page >>] /Count 1 >>"]);
    assert!(malformed(&pdf, 1).contains("not a reference"));
    let pdf = tree(&["<< /Type /Pages /Kids 2 0 R /Count 1 >>"]);
    assert!(malformed(&pdf, 1).contains("/Kids"));
}

/// Prepares `pdf`, expecting the object map to be rebuilt by scanning.
fn repaired(pdf: &[u8]) {
    match prepare_bytes(pdf, &request(Some(visible(1)))) {
        Ok(update) => assert!(update.repaired(), "expected a repair"),
        other => panic!("expected a repaired file, got {other:?}"),
    }
}

#[test]
fn a_huge_size_is_repaired() {
    let pdf = tree(&[
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    ]);
    let text = String::from_utf8_lossy(&pdf).replacen("/Size 4", "/Size 99999999999", 1);
    repaired(text.as_bytes());
}

/// An xref-stream file whose catalog (1) and the /Length (6) of its object
/// stream (5) both live in that object stream: resolving 1 needs 5, whose
/// length needs 5 again.
fn length_inside_its_own_object_stream() -> Vec<u8> {
    let mut out = b"%PDF-1.5\n".to_vec();
    let body = "1 0 6 40 << /Type /Catalog /Pages 2 0 R >> 100";
    let objstm_at = out.len();
    write!(out, "5 0 obj\n<< /Type /ObjStm /N 2 /First 9 /Length 6 0 R >>\nstream\n{body}\nendstream\nendobj\n").expect("vec");
    let xref_at = out.len();
    // /W [1 2 1], /Index [1 1 5 2]: 1 -> (2, 5, 0); 5 -> offset; 6 -> (2, 5, 1).
    let at = objstm_at as u16;
    let rows = [
        [2, 0, 5, 0],
        [1, (at >> 8) as u8, at as u8, 0],
        [2, 0, 5, 1],
    ]
    .concat();
    write!(out, "7 0 obj\n<< /Type /XRef /Size 8 /Root 1 0 R /W [1 2 1] /Index [1 1 5 2] /Length {} >>\nstream\n", rows.len()).expect("vec");
    out.extend_from_slice(&rows);
    write!(out, "\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").expect("vec");
    out
}

#[test]
fn recursive_references_through_object_streams_are_malformed() {
    // The scan cannot read the object stream either: no catalog.
    let message = malformed(&length_inside_its_own_object_stream(), 1);
    assert!(message.contains("catalog"), "{message}");
}

#[test]
fn a_prev_loop_and_an_xref_offset_into_nowhere_are_repaired() {
    let pdf = tree(&[
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
    ]);
    let text = String::from_utf8_lossy(&pdf).into_owned();
    let xref_at = text.rfind("xref\n0").expect("xref");
    let looped = text.replacen(
        ">>\nstartxref",
        &format!(" /Prev {xref_at} >>\nstartxref"),
        1,
    );
    repaired(looped.as_bytes());
    let nowhere = text.replacen(&format!("startxref\n{xref_at}"), "startxref\n3", 1);
    repaired(nowhere.as_bytes());
}
