//! Filling an existing empty signature field by name (ISO 32000-1
//! §12.7.4.5), and the locks that earlier signatures put on fields (the
//! signature field's /Lock, §12.7.4.5 Table 233; FieldMDP, §12.8.2.4; the
//! /P of ISO 32000-2 §12.7.5.5 Table 236).

use super::document::Document;
use super::object::{Dictionary, ObjRef, Object};
use super::source::Source;
use super::PdfError;

/// An empty signature field found by name: the field (which carries /V)
/// and its widget (which carries /AP); the same object when merged.
pub(crate) struct Target {
    pub field: (ObjRef, Dictionary),
    pub widget: (ObjRef, Dictionary),
}

impl Target {
    /// The widget's page (/P), when it names one.
    pub fn page(&self) -> Option<ObjRef> {
        self.widget.1.reference(b"P")
    }

    /// The widget's /Rect as x, y, width, height; None when it is empty.
    pub fn rect(&self) -> Option<[f32; 4]> {
        let Some(Object::Array(items)) = self.widget.1.get(b"Rect") else {
            return None;
        };
        let v: Vec<f32> = items
            .iter()
            .filter_map(|o| match o {
                Object::Integer(i) => Some(*i as f32),
                Object::Real(r) => Some(*r as f32),
                _ => None,
            })
            .collect();
        let [x1, y1, x2, y2] = v[..] else { return None };
        let (w, h) = ((x2 - x1).abs(), (y2 - y1).abs());
        (w > 0.0 && h > 0.0).then_some([x1.min(x2), y1.min(y2), w, h])
    }
}

/// The root fields of the AcroForm (§12.7.2), with their references.
fn root_fields<S: Source>(
    doc: &mut Document<S>,
    catalog: &Dictionary,
) -> Result<Vec<(ObjRef, Dictionary)>, PdfError> {
    let form = match catalog.get(b"AcroForm").cloned() {
        Some(f) => doc.resolve(f)?,
        None => return Ok(Vec::new()),
    };
    let fields = match form.as_dict().and_then(|f| f.get(b"Fields")).cloned() {
        Some(f) => doc.resolve(f)?,
        None => return Ok(Vec::new()),
    };
    let Object::Array(items) = fields else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in items.into_iter().take(100_000) {
        if let Object::Reference(r) = item {
            if let Object::Dictionary(d) = doc.object(r)? {
                out.push((r, d));
            }
        }
    }
    Ok(out)
}

/// The empty signature field named `name`; None when there is none.
pub(crate) fn find<S: Source>(
    doc: &mut Document<S>,
    catalog: &Dictionary,
    name: &str,
) -> Result<Option<Target>, PdfError> {
    let Some((r, field)) = root_fields(doc, catalog)?
        .into_iter()
        .find(|(_, d)| matches!(d.get(b"T"), Some(Object::String(t)) if t.to_text() == name))
    else {
        return Ok(None);
    };
    let invalid = |why: &str| {
        Err(PdfError::InvalidRequest(format!(
            "the field \"{name}\" {why}"
        )))
    };
    if field.name(b"FT") != Some(b"Sig") {
        return invalid("exists and is not a signature field");
    }
    if !matches!(field.get(b"V"), None | Some(Object::Null)) {
        return invalid("is already signed");
    }
    let widget = match field
        .get(b"Kids")
        .cloned()
        .map(|k| doc.resolve(k))
        .transpose()?
    {
        None => (r, field.clone()),
        Some(Object::Array(kids)) => match kids[..] {
            [Object::Reference(kid)] => (kid, doc.dictionary(kid, "the field's widget")?),
            _ => return invalid("has several widgets; only one is supported"),
        },
        Some(_) => return invalid("has a /Kids entry that is not an array"),
    };
    Ok(Some(Target {
        field: (r, field),
        widget,
    }))
}

/// The FieldMDP signature reference (§12.8.1 Table 253, §12.8.2.4 Table
/// 256) that a signature in a field with a /Lock carries: the lock's
/// /Action and /Fields become the transform's parameters, /Data is the
/// catalog. None when the field has no usable /Lock.
pub(crate) fn field_mdp_reference<S: Source>(
    doc: &mut Document<S>,
    target: &Target,
    root: ObjRef,
) -> Result<Option<Object>, PdfError> {
    let lock = match target.field.1.get(b"Lock").cloned() {
        Some(l) => doc.resolve(l)?,
        None => return Ok(None),
    };
    let Some(lock) = lock.as_dict() else {
        return Ok(None);
    };
    let action = match lock.name(b"Action") {
        Some(a @ (b"All" | b"Include" | b"Exclude")) => a.to_vec(),
        _ => return Ok(None),
    };
    let mut params = Dictionary::new();
    params.insert(b"Type", Object::name(b"TransformParams"));
    params.insert(b"Action", Object::name(&action));
    if action != b"All" {
        let fields = match lock.get(b"Fields").cloned() {
            Some(f) => doc.resolve(f)?,
            None => Object::Array(Vec::new()),
        };
        params.insert(b"Fields", fields);
    }
    params.insert(b"V", Object::name(b"1.2"));
    let mut reference = Dictionary::new();
    reference.insert(b"Type", Object::name(b"SigRef"));
    reference.insert(b"TransformMethod", Object::name(b"FieldMDP"));
    reference.insert(b"TransformParams", Object::Dictionary(params));
    reference.insert(b"Data", Object::Reference(root));
    Ok(Some(Object::Array(vec![Object::Dictionary(reference)])))
}

/// Refuses when a signed field's /Lock forbids the change: /P 1 forbids
/// any (ISO 32000-2 Table 236), and filling the field `filling` is a
/// change of that field, locked by /Action /All, or /Include listing it,
/// or /Exclude not listing it (§12.7.4.5, Table 233). A new field changes
/// no locked field.
pub(crate) fn check_locks<S: Source>(
    doc: &mut Document<S>,
    catalog: &Dictionary,
    filling: Option<&str>,
) -> Result<(), PdfError> {
    for (_, field) in root_fields(doc, catalog)? {
        let signed = !matches!(field.get(b"V"), None | Some(Object::Null));
        let lock = match field.get(b"Lock").cloned() {
            Some(l) if signed && field.name(b"FT") == Some(b"Sig") => doc.resolve(l)?,
            _ => continue,
        };
        let Object::Dictionary(lock) = lock else {
            continue;
        };
        let by = match field.get(b"T") {
            Some(Object::String(t)) => t.to_text(),
            _ => "?".into(),
        };
        if lock.integer(b"P") == Some(1) {
            return Err(PdfError::Locked(format!(
                "the signature in field \"{by}\" locks the document against any change (/Lock /P 1)"
            )));
        }
        let Some(name) = filling else { continue };
        let listed = match lock
            .get(b"Fields")
            .cloned()
            .map(|f| doc.resolve(f))
            .transpose()?
        {
            Some(Object::Array(items)) => items
                .iter()
                .any(|o| matches!(o, Object::String(s) if s.to_text() == name)),
            _ => false,
        };
        let locked = match lock.name(b"Action") {
            Some(b"All") => true,
            Some(b"Include") => listed,
            Some(b"Exclude") => !listed,
            _ => false,
        };
        if locked {
            return Err(PdfError::Locked(format!(
                "the field \"{name}\" is locked by the signature in field \"{by}\" (FieldMDP)"
            )));
        }
    }
    Ok(())
}
