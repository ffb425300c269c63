//! The Document Security Store (ISO 32000-2 §12.8.4.3; ETSI EN 319 142-1
//! §5.4): validation data for PAdES B-LT, appended as its own incremental
//! update after the signature, so the signature's byte range stays intact.
//!
//! The new revision holds one stream per certificate, CRL and OCSP
//! response (DER, uncompressed), the /DSS dictionary, and the catalog
//! rewritten under its own number with /DSS pointing at it. An existing
//! /DSS is merged: its entries stay, and the new streams are appended.

use std::io::{Read, Seek};

use sha2::{Digest, Sha256};

use super::document::Document;
use super::object::{Dictionary, ObjRef, Object};
use super::source::{Bytes, Reader, Source};
use super::update::{self, Body};
use super::PdfError;

/// The validation data of one /DSS update, DER each.
struct Data<'a> {
    certificates: &'a [Vec<u8>],
    crls: &'a [Vec<u8>],
    ocsps: &'a [Vec<u8>],
}

/// The update that adds `certificates`, `crls` and `ocsps` (DER) to the
/// document's /DSS, for a seekable file; the caller appends the bytes.
pub fn append_dss<R: Read + Seek>(
    src: &mut R,
    certificates: &[Vec<u8>],
    crls: &[Vec<u8>],
    ocsps: &[Vec<u8>],
) -> Result<Vec<u8>, PdfError> {
    let data = Data {
        certificates,
        crls,
        ocsps,
    };
    dss_update(Document::open(Reader::new(src)?)?, &data)
}

/// [`append_dss`] for an in-memory PDF.
pub fn append_dss_bytes(
    pdf: &[u8],
    certificates: &[Vec<u8>],
    crls: &[Vec<u8>],
    ocsps: &[Vec<u8>],
) -> Result<Vec<u8>, PdfError> {
    let data = Data {
        certificates,
        crls,
        ocsps,
    };
    dss_update(Document::open(Bytes::new(pdf))?, &data)
}

fn dss_update<S: Source>(mut doc: Document<S>, data: &Data<'_>) -> Result<Vec<u8>, PdfError> {
    let (root, mut catalog) = doc.catalog()?;
    let lists: [(&[u8], Vec<&Vec<u8>>); 3] = [
        (b"Certs", distinct(data.certificates)),
        (b"CRLs", distinct(data.crls)),
        (b"OCSPs", distinct(data.ocsps)),
    ];
    let streams: usize = lists.iter().map(|(_, items)| items.len()).sum();
    // The streams, perhaps a new /DSS, and the cross-reference stream.
    let count = u32::try_from(streams + 2)
        .map_err(|_| PdfError::InvalidRequest("too much validation data".into()))?;
    let mut next = doc.first_free_number(count)?;
    let mut allocate = || {
        let r = ObjRef::new(next, 0);
        next += 1;
        r
    };
    let (dss_ref, mut dss) = existing_dss(&mut doc, &catalog)?;
    let dss_ref = dss_ref.unwrap_or_else(&mut allocate);
    let mut objects = Vec::with_capacity(streams + 2);
    for (key, items) in lists {
        if items.is_empty() {
            continue;
        }
        let mut array = existing_array(&mut doc, &dss, key)?;
        for der in items {
            let r = allocate();
            objects.push((r, Body::Stream(Dictionary::new(), der.clone())));
            array.push(Object::Reference(r));
        }
        dss.insert(key, Object::Array(array));
    }
    dss.insert(b"Type", Object::name(b"DSS"));
    catalog.insert(b"DSS", Object::Reference(dss_ref));
    objects.push((dss_ref, Body::Object(Object::Dictionary(dss))));
    objects.push((root, Body::Object(Object::Dictionary(catalog))));
    let original_len = doc.len();
    let (trailer, layout) = doc.update_frame(root, 0, next, id_seed(original_len, data))?;
    tracing::debug!(original_len, streams, xref = ?layout.kind, "prepared /DSS update");
    Ok(update::write_plain(objects, &trailer, &layout))
}

/// The catalog's /DSS: its object number when indirect (rewritten as a new
/// revision of that number), and its entries; empty when there is none.
fn existing_dss<S: Source>(
    doc: &mut Document<S>,
    catalog: &Dictionary,
) -> Result<(Option<ObjRef>, Dictionary), PdfError> {
    let (reference, value) = match catalog.get(b"DSS").cloned() {
        Some(Object::Reference(r)) => (Some(r), doc.object(r)?),
        Some(other) => (None, other),
        None => (None, Object::Null),
    };
    match value {
        Object::Dictionary(d) => Ok((reference, d)),
        // A dangling reference reads as null (§7.3.10): start afresh.
        Object::Null => Ok((reference, Dictionary::new())),
        _ => Err(PdfError::Malformed(
            "the catalog's /DSS is not a dictionary".into(),
        )),
    }
}

/// The array under `key` of the existing /DSS (direct or indirect), to
/// which the new streams are appended; the merged array is written direct.
fn existing_array<S: Source>(
    doc: &mut Document<S>,
    dss: &Dictionary,
    key: &[u8],
) -> Result<Vec<Object>, PdfError> {
    let value = match dss.get(key).cloned() {
        Some(v) => doc.resolve(v)?,
        None => Object::Null,
    };
    match value {
        Object::Array(items) => Ok(items),
        Object::Null => Ok(Vec::new()),
        _ => Err(PdfError::Malformed(format!(
            "the /DSS /{} is not an array",
            String::from_utf8_lossy(key)
        ))),
    }
}

/// Each distinct value once, in the order given.
fn distinct(items: &[Vec<u8>]) -> Vec<&Vec<u8>> {
    let mut out: Vec<&Vec<u8>> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Differs per file and per set of validation data: the new /ID[1] seed.
fn id_seed(original_len: u64, data: &Data<'_>) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(original_len.to_be_bytes());
    for list in [data.certificates, data.crls, data.ocsps] {
        for item in list {
            hasher.update(Sha256::digest(item));
        }
        hasher.update(b"|");
    }
    hasher.finalize().to_vec()
}
