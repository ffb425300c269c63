//! PAdES baseline signatures as one incremental update of the untouched
//! original (ISO 32000-1 §7.5.6, §12.7, §12.8; ETSI EN 319 142-1 §5).
//!
//! ```text
//!            prepare(src) / prepare_bytes(pdf)
//! original ───────────────────────────────────▶ PreparedUpdate: sig dict with /ByteRange
//!    │        reads the tail, the xref chain     and a zeroed /Contents, field + widget,
//!    │        and the few objects it changes     rewritten AcroForm/page, xref, trailer
//!    │                                                │
//!    └── Sha256 over all original bytes ──▶ digest(hasher) ──▶ 32 bytes
//!                                                                 │ caller: CMS signed
//!                                                                 ▼ data (no CMS here)
//!                               embed(cms) ◀── DER ───────────────┘
//!                                   │
//!    signed file = original ‖ update()
//! ```
//!
//! The reader touches only what it needs: the last 4 KB (for `startxref`),
//! the cross-reference sections, the catalog, the page tree nodes on the
//! way to the target page, the AcroForm and its root fields, and /Perms.
//! Object streams are decoded only when a needed object lives in one. A
//! 1 GB file is read through a small window; nothing is held whole.
//!
//! `contents_capacity` is the DER size the CMS may reach: signer and
//! chain certificates, the signature, signed attributes, and for B-T and
//! up the time-stamp token with its TSA certificates. Reserve generously
//! (8-16 KB for B-T); an oversized placeholder only costs zeros.

mod appearance;
mod document;
mod dss;
mod fill;
mod filter;
pub(crate) mod font;
mod form;
mod lexer;
mod object;
mod repair;
mod source;
mod update;
mod xref;

#[cfg(test)]
mod tests;

use std::io::{Read, Seek};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::ErrorKind;
use document::Document;
use form::Edits;
use object::{Dictionary, ObjRef, Object, PdfString};
use source::{Bytes, Reader, Source};
use update::Body;

pub use dss::{append_dss, append_dss_bytes};
pub use update::PreparedUpdate;

/// Largest /Contents placeholder: 1 MiB of DER (2 MiB of hex).
pub const MAX_CONTENTS_CAPACITY: usize = 1 << 20;

/// A visible signature: where the widget goes and what it says.
#[derive(Clone, Debug)]
pub struct Appearance {
    /// 1-based page number.
    pub page: u32,
    /// x, y, width, height in default user space (points, origin bottom left).
    pub rect: [f32; 4],
    /// Lines of text, e.g. "Digitally signed by X", "2026-11-28 12:00:00 UTC".
    pub lines: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct SignatureRequest {
    /// /Name: the signer's name; only for personal signatures.
    pub name: Option<String>,
    pub reason: Option<String>,
    pub location: Option<String>,
    pub contact_info: Option<String>,
    /// Written as /M (D:YYYYMMDDHHmmSSZ); the CMS carries no signing-time.
    pub signing_time: SystemTime,
    /// None: an invisible widget on page 1 with /Rect [0 0 0 0].
    pub appearance: Option<Appearance>,
    /// Bytes of DER CMS to reserve; /Contents gets twice as many hex digits.
    pub contents_capacity: usize,
    /// Default: the first "Signature<N>" not used by a root field.
    pub field_name: Option<String>,
}

#[derive(thiserror::Error, Debug)]
pub enum PdfError {
    #[error("PDF is malformed: {0}")]
    Malformed(String),
    #[error(
        "the PDF is encrypted; remove the password protection (e.g. qpdf --decrypt) and sign again"
    )]
    Encrypted,
    #[error(
        "the PDF is certified with \"no changes allowed\" (DocMDP /P 1); it cannot take another signature"
    )]
    CertifiedNoChanges,
    #[error("the PDF is locked: {0}")]
    Locked(String),
    #[error("unsupported PDF: {0}")]
    Unsupported(String),
    #[error("invalid signature request: {0}")]
    InvalidRequest(String),
    #[error(
        "the signature ({need} bytes) does not fit the {have} bytes reserved for /Contents; prepare again with a larger contents_capacity"
    )]
    ContentsTooSmall { need: usize, have: usize },
    #[error("cannot read the PDF: {0}")]
    Io(#[from] std::io::Error),
}

impl PdfError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PdfError::Malformed(_) | PdfError::InvalidRequest(_) => ErrorKind::InvalidArgument,
            PdfError::Encrypted
            | PdfError::CertifiedNoChanges
            | PdfError::Locked(_)
            | PdfError::Unsupported(_) => ErrorKind::FailedPrecondition,
            PdfError::ContentsTooSmall { .. } | PdfError::Io(_) => ErrorKind::Internal,
        }
    }
}

impl From<PdfError> for crate::Error {
    fn from(e: PdfError) -> Self {
        match e {
            // The OS error text stays in the logs.
            PdfError::Io(_) => crate::Error::new(e.kind(), "cannot read the PDF").with_source(e),
            _ => crate::Error::new(e.kind(), e.to_string()),
        }
    }
}

/// Prepares the update for a seekable file. Reads only the tail, the
/// cross-reference sections and the few objects it needs, never the whole
/// file.
pub fn prepare<R: Read + Seek>(
    src: &mut R,
    request: &SignatureRequest,
) -> Result<PreparedUpdate, PdfError> {
    validate(request)?;
    let signature = signature_dictionary(request, pdf_date(request.signing_time)?);
    prepare_repairing(Document::open(Reader::new(src)?)?, request, signature)
}

/// Prepares the update for an in-memory PDF: one parse, no copy of `pdf`.
pub fn prepare_bytes(pdf: &[u8], request: &SignatureRequest) -> Result<PreparedUpdate, PdfError> {
    validate(request)?;
    let signature = signature_dictionary(request, pdf_date(request.signing_time)?);
    prepare_repairing(Document::open(Bytes::new(pdf))?, request, signature)
}

/// Prepares a document time-stamp (ISO 32000-2 §12.8.5; EN 319 142-1
/// §5.5, PAdES B-LTA) for a seekable file: an invisible field whose
/// /DocTimeStamp dictionary takes an RFC 3161 TimeStampToken of the
/// ByteRange's SHA-256 ([`PreparedUpdate::digest`]) through `embed`.
pub fn prepare_document_timestamp<R: Read + Seek>(
    src: &mut R,
    contents_capacity: usize,
) -> Result<PreparedUpdate, PdfError> {
    let request = timestamp_request(contents_capacity)?;
    let doc = Document::open(Reader::new(src)?)?;
    prepare_repairing(doc, &request, document_timestamp_dictionary())
}

/// [`prepare_document_timestamp`] for an in-memory PDF.
pub fn prepare_document_timestamp_bytes(
    pdf: &[u8],
    contents_capacity: usize,
) -> Result<PreparedUpdate, PdfError> {
    let request = timestamp_request(contents_capacity)?;
    let doc = Document::open(Bytes::new(pdf))?;
    prepare_repairing(doc, &request, document_timestamp_dictionary())
}

/// The field side of a document time-stamp: invisible, default name. The
/// time only seeds the new /ID; the token carries the time (§12.8.5).
fn timestamp_request(contents_capacity: usize) -> Result<SignatureRequest, PdfError> {
    let request = SignatureRequest {
        name: None,
        reason: None,
        location: None,
        contact_info: None,
        signing_time: SystemTime::now(),
        appearance: None,
        contents_capacity,
        field_name: None,
    };
    validate(&request)?;
    Ok(request)
}

/// ISO 32000-2 §12.8.5, Table 255: /Type /DocTimeStamp, /SubFilter
/// ETSI.RFC3161; no /M, /Name or /Reason (EN 319 142-1 §5.5).
fn document_timestamp_dictionary() -> Dictionary {
    let mut sig = Dictionary::new();
    sig.insert(b"Type", Object::name(b"DocTimeStamp"));
    sig.insert(b"Filter", Object::name(b"Adobe.PPKLite"));
    sig.insert(b"SubFilter", Object::name(b"ETSI.RFC3161"));
    sig
}

/// Prepares on `doc`; when its objects contradict the cross-reference
/// data (an object where another is listed, a broken entry), rebuilds the
/// object map by scanning the file and prepares again, as readers repair.
fn prepare_repairing<S: Source>(
    mut doc: Document<S>,
    request: &SignatureRequest,
    signature: Dictionary,
) -> Result<PreparedUpdate, PdfError> {
    match prepare_document(&mut doc, request, signature.clone()) {
        Err(PdfError::Malformed(why)) if !doc.repaired() => {
            tracing::info!(%why, "the objects contradict the cross-reference data; rebuilding it");
            doc.repair()?;
            prepare_document(&mut doc, request, signature)
        }
        other => other,
    }
}

fn prepare_document<S: Source>(
    doc: &mut Document<S>,
    request: &SignatureRequest,
    signature: Dictionary,
) -> Result<PreparedUpdate, PdfError> {
    let signing_time = pdf_date(request.signing_time)?;
    let (root, catalog) = doc.catalog()?;
    // §12.8.2.2: P 1 forbids any change, a new signature included.
    if doc.docmdp_permission(&catalog)? == Some(1) {
        return Err(PdfError::CertifiedNoChanges);
    }
    let name = request.field_name.as_deref();
    let target = match name {
        Some(n) => fill::find(doc, &catalog, n)?,
        None => None,
    };
    fill::check_locks(doc, &catalog, name.filter(|_| target.is_some()))?;
    // §12.7.4.5 Table 233: the field's own /Lock says what this signature
    // locks; it says so in its /Reference (FieldMDP, §12.8.2.4).
    let mut signature = signature;
    if let Some(t) = &target {
        if let Some(reference) = fill::field_mdp_reference(doc, t, root)? {
            signature.insert(b"Reference", reference);
        }
    }
    // Signature, field, five font objects, appearance, perhaps an
    // AcroForm, and the cross-reference stream.
    let mut edits = Edits::new(doc.first_free_number(11)?);
    let sig = edits.allocate()?;
    let (field_name, mut objects) = match target {
        Some(target) => fill_field(doc, request, &mut edits, (root, catalog), sig, target)?,
        None => new_field(doc, request, &mut edits, (root, catalog), sig)?,
    };
    let next_number = edits.next_number();
    objects.extend(edits.into_objects().map(|(r, o)| (r, Body::Object(o))));

    let original_len = doc.len();
    let id_seed = [
        &original_len.to_be_bytes()[..],
        signing_time.as_bytes(),
        field_name.as_bytes(),
    ]
    .concat();
    let (trailer, layout) =
        doc.update_frame(root, request.contents_capacity, next_number, id_seed)?;
    tracing::debug!(original_len, objects = objects.len() + 1, xref = ?layout.kind, "prepared PAdES update");
    let update = update::write((sig, &signature), objects, &trailer, &layout, field_name);
    Ok(update)
}

/// A new signature field merged with its widget, registered in the
/// AcroForm and the page's /Annots.
fn new_field<S: Source>(
    doc: &mut Document<S>,
    request: &SignatureRequest,
    edits: &mut Edits,
    (root, catalog): (ObjRef, Dictionary),
    sig: ObjRef,
) -> Result<(String, Vec<(ObjRef, Body)>), PdfError> {
    let page_index = request.appearance.as_ref().map_or(0, |a| a.page - 1);
    let page = doc.page(&catalog, page_index)?;
    let (page_ref, rotate) = (page.0, doc.page_rotation(&page.1)?);
    let field = edits.allocate()?;
    let name = request.field_name.as_deref();
    let field_name = form::register_field(doc, edits, (root, catalog), page, field, name)?;
    let visible = request.appearance.as_ref();
    let rect = visible.map_or([0.0; 4], |v| {
        let [x, y, w, h] = v.rect;
        [x, y, x + w, y + h].map(appearance::round)
    });
    let mut widget = form::signature_field(&field_name, sig, page_ref, rect);
    let mut objects = Vec::new();
    if let Some(visible) = visible {
        let ap = appearance_objects(visible, visible.rect, edits, rotate, &mut objects)?;
        widget.insert(b"AP", Object::Dictionary(ap));
    }
    objects.insert(0, (field, Body::Object(Object::Dictionary(widget))));
    Ok((field_name, objects))
}

/// Fills the existing empty field `target`: /V on the field, an
/// appearance in its widget's /Rect (when visible), every other entry
/// kept; /SigFlags set on the AcroForm.
fn fill_field<S: Source>(
    doc: &mut Document<S>,
    request: &SignatureRequest,
    edits: &mut Edits,
    (root, catalog): (ObjRef, Dictionary),
    sig: ObjRef,
    target: fill::Target,
) -> Result<(String, Vec<(ObjRef, Body)>), PdfError> {
    let name = request.field_name.clone().unwrap_or_default();
    form::set_sig_flags(doc, edits, root, catalog)?;
    let (field_ref, mut field) = target.field.clone();
    let (widget_ref, mut widget) = target.widget.clone();
    let mut objects = Vec::new();
    if let (Some(visible), Some(rect)) = (&request.appearance, target.rect()) {
        let rotate = match target.page() {
            Some(p) => {
                let page = doc.dictionary(p, "the field's page")?;
                doc.page_rotation(&page)?
            }
            None => 0,
        };
        let ap = appearance_objects(visible, rect, edits, rotate, &mut objects)?;
        widget.insert(b"AP", Object::Dictionary(ap));
    }
    if widget_ref == field_ref {
        widget.insert(b"V", Object::Reference(sig));
        objects.insert(0, (field_ref, Body::Object(Object::Dictionary(widget))));
    } else {
        field.insert(b"V", Object::Reference(sig));
        objects.insert(0, (field_ref, Body::Object(Object::Dictionary(field))));
        objects.insert(1, (widget_ref, Body::Object(Object::Dictionary(widget))));
    }
    Ok((name, objects))
}

/// The appearance of `visible` drawn in a box of `rect`'s size: the form
/// XObject and its font objects go to `objects`; returns the /AP.
fn appearance_objects(
    visible: &Appearance,
    rect: [f32; 4],
    edits: &mut Edits,
    rotate: i64,
    objects: &mut Vec<(ObjRef, Body)>,
) -> Result<Dictionary, PdfError> {
    let sized = Appearance {
        rect,
        ..visible.clone()
    };
    let font = edits.allocate()?;
    let xobject = edits.allocate()?;
    let shaped = font::shape(&sized.lines);
    let (dict, content) = appearance::form_xobject(&sized, font, shaped.as_ref(), rotate);
    let mut ap = Dictionary::new();
    ap.insert(b"N", Object::Reference(xobject));
    objects.push((xobject, Body::Stream(dict, content)));
    let Some(shaped) = shaped else {
        let helvetica = Object::Dictionary(appearance::helvetica());
        objects.push((font, Body::Object(helvetica)));
        return Ok(ap);
    };
    let parts = [
        edits.allocate()?,
        edits.allocate()?,
        edits.allocate()?,
        edits.allocate()?,
    ];
    for (r, object, data) in shaped.objects(font, parts) {
        objects.push(match (object, data) {
            (Object::Dictionary(d), Some(data)) => (r, Body::Stream(d, data)),
            (object, _) => (r, Body::Object(object)),
        });
    }
    Ok(ap)
}

fn validate(request: &SignatureRequest) -> Result<(), PdfError> {
    let invalid = |m: &str| Err(PdfError::InvalidRequest(m.into()));
    if !(1..=MAX_CONTENTS_CAPACITY).contains(&request.contents_capacity) {
        return invalid("contents_capacity must be between 1 and 1048576 bytes");
    }
    if let Some(name) = &request.field_name {
        // §12.7.3.2: a partial field name shall not contain a period.
        if name.is_empty() || name.contains('.') {
            return invalid("the field name must be non-empty and contain no period");
        }
    }
    if let Some(a) = &request.appearance {
        let [x, y, w, h] = a.rect;
        if a.page == 0 {
            return invalid("page numbers start at 1");
        }
        // 14,400 units is the largest page side (Annex C.2).
        let coordinate = |v: f32| v.is_finite() && v.abs() <= 14_400.0;
        if !(coordinate(x) && coordinate(y) && coordinate(w) && coordinate(h))
            || w <= 0.0
            || h <= 0.0
        {
            return invalid(
                "the appearance rectangle needs finite coordinates and a positive width and height",
            );
        }
    }
    Ok(())
}

/// The signature dictionary (§12.8.1, Table 252; ETSI EN 319 142-1 §5.3:
/// /SubFilter ETSI.CAdES.detached, the time in /M).
fn signature_dictionary(request: &SignatureRequest, signing_time: String) -> Dictionary {
    let mut sig = Dictionary::new();
    sig.insert(b"Type", Object::name(b"Sig"));
    sig.insert(b"Filter", Object::name(b"Adobe.PPKLite"));
    sig.insert(b"SubFilter", Object::name(b"ETSI.CAdES.detached"));
    sig.insert(b"M", Object::String(PdfString::literal(signing_time)));
    let texts: [(&[u8], &Option<String>); 4] = [
        (b"Name", &request.name),
        (b"Reason", &request.reason),
        (b"Location", &request.location),
        (b"ContactInfo", &request.contact_info),
    ];
    for (key, value) in texts {
        if let Some(text) = value {
            sig.insert(key, Object::String(PdfString::text(text)));
        }
    }
    sig
}

/// A PDF date in UTC (§7.9.4): `D:YYYYMMDDHHmmSSZ`.
fn pdf_date(time: SystemTime) -> Result<String, PdfError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PdfError::InvalidRequest("the signing time is before 1970".into()))?
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        return Err(PdfError::InvalidRequest(
            "the signing time is after the year 9999".into(),
        ));
    }
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    Ok(format!("D:{year:04}{month:02}{day:02}{h:02}{m:02}{s:02}Z"))
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
