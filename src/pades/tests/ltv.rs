//! The /DSS update and the document time-stamp field on every signable
//! corpus file: read back by our reader, checked by `qpdf --check`.

use std::io::Cursor;

use super::corpus::signable;
use super::support::{assert_qpdf_ok, corpus_file, tools};
use crate::pades::document::Document;
use crate::pades::object::Object;
use crate::pades::source::Bytes;
use crate::pades::{
    append_dss, append_dss_bytes, prepare_document_timestamp, prepare_document_timestamp_bytes,
    PdfError,
};

/// Lengths of /Certs, /CRLs and /OCSPs in the catalog's /DSS.
fn dss_counts(pdf: &[u8]) -> [usize; 3] {
    let mut doc = Document::open(Bytes::new(pdf)).expect("reads back");
    let (_, catalog) = doc.catalog().expect("catalog");
    let dss = catalog.get(b"DSS").cloned().expect("/DSS");
    let Object::Dictionary(dss) = doc.resolve(dss).expect("resolves") else {
        panic!("/DSS is not a dictionary");
    };
    assert_eq!(dss.name(b"Type"), Some(&b"DSS"[..]));
    [&b"Certs"[..], b"CRLs", b"OCSPs"].map(|key| match dss.get(key) {
        Some(Object::Array(items)) => {
            for item in items {
                let Object::Reference(r) = item else {
                    panic!("a DSS entry is not a stream reference");
                };
                assert!(matches!(doc.object(*r), Ok(Object::Dictionary(_))));
            }
            items.len()
        }
        _ => 0,
    })
}

#[test]
fn dss_updates_read_back_merge_and_pass_qpdf() {
    let work = tempfile::tempdir().expect("temp dir");
    let check = tools(&["qpdf"]);
    for name in signable() {
        let original = corpus_file(&name);
        let certificates = vec![b"cert one".to_vec(), b"cert two".to_vec()];
        let first = append_dss(&mut Cursor::new(&original), &certificates, &[], &[])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            first,
            append_dss_bytes(&original, &certificates, &[], &[]).expect("same"),
            "{name}: reader and bytes agree"
        );
        let once = [&original[..], &first].concat();
        assert_eq!(dss_counts(&once), [2, 0, 0], "{name}");
        let crls = [b"crl".to_vec()];
        let second = append_dss_bytes(&once, &certificates[..1], &crls, &[b"ocsp".to_vec()])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let twice = [&once[..], &second].concat();
        assert_eq!(dss_counts(&twice), [3, 1, 1], "{name}: merged");
        if check {
            let (input, output) = (work.path().join(&name), work.path().join("dss.pdf"));
            std::fs::write(&input, &original).expect("write");
            std::fs::write(&output, &twice).expect("write");
            assert_qpdf_ok(&output, &input);
        }
    }
}

#[test]
fn document_time_stamp_field_has_the_rfc3161_dictionary() {
    let original = corpus_file("reportlab_simple.pdf");
    let prepared = prepare_document_timestamp(&mut Cursor::new(&original), 4096).expect("ok");
    let text = String::from_utf8_lossy(prepared.update());
    for needle in [
        "/Type /DocTimeStamp",
        "/Filter /Adobe.PPKLite",
        "/SubFilter /ETSI.RFC3161",
        "/FT /Sig",
        "/Rect [0 0 0 0]",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    for absent in ["/M (", "/Name", "/Reason"] {
        assert!(!text.contains(absent), "{absent} present: {text}");
    }
    assert_eq!(prepared.contents_capacity(), 4096);
    assert!(matches!(
        prepare_document_timestamp_bytes(&original, 0),
        Err(PdfError::InvalidRequest(_))
    ));
}
