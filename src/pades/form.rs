//! The interactive-form side of a signature (ISO 32000-1 §12.7): a
//! signature field merged with its widget annotation (§12.7.3.1, §12.5.6.19),
//! listed in the AcroForm's /Fields and in its page's /Annots.
//!
//! Only the objects that must change are rewritten, each as a new revision
//! under its own number (§7.5.6): the AcroForm (or the catalog, when the
//! AcroForm is direct or new), an indirect /Fields array, and the page or
//! its indirect /Annots array.

use std::collections::{BTreeMap, HashSet};

use super::document::Document;
use super::object::{Dictionary, ObjRef, Object, PdfString};
use super::source::Source;
use super::PdfError;

/// Annotation flags Print (bit 3) and Locked (bit 8), §12.5.3: a
/// signature's widget prints and cannot be moved or deleted.
const WIDGET_FLAGS: i64 = 4 | 128;
/// SigFlags SignaturesExist | AppendOnly (§12.7.2, Table 219).
const SIG_FLAGS: i64 = 3;

/// Objects of the update: new numbers and rewritten revisions.
pub(crate) struct Edits {
    changed: BTreeMap<u32, (ObjRef, Object)>,
    next: u32,
}

impl Edits {
    /// `size` is the trailer's /Size: the first free object number.
    pub fn new(size: u32) -> Self {
        Self {
            changed: BTreeMap::new(),
            next: size,
        }
    }

    /// A new object number (generation 0).
    pub fn allocate(&mut self) -> Result<ObjRef, PdfError> {
        let num = self.next;
        self.next = num.checked_add(1).ok_or_else(|| {
            PdfError::Malformed("the trailer's /Size leaves no object numbers".into())
        })?;
        Ok(ObjRef::new(num, 0))
    }

    /// One past the highest object number in use, new ones included.
    pub fn next_number(&self) -> u32 {
        self.next
    }

    /// The object as this update left it so far, else as the file has it.
    fn current<S: Source>(&self, doc: &mut Document<S>, r: ObjRef) -> Result<Object, PdfError> {
        match self.changed.get(&r.num) {
            Some((_, obj)) => Ok(obj.clone()),
            None => doc.object(r),
        }
    }

    fn set(&mut self, r: ObjRef, obj: Object) {
        self.changed.insert(r.num, (r, obj));
    }

    /// The rewritten and new objects, by number.
    pub fn into_objects(self) -> impl Iterator<Item = (ObjRef, Object)> {
        self.changed.into_values()
    }
}

/// Adds `field` to the AcroForm (created if absent) and to the page's
/// /Annots; returns the field's partial name: `requested`, or the first
/// free `Signature<N>`.
pub(crate) fn register_field<S: Source>(
    doc: &mut Document<S>,
    edits: &mut Edits,
    (root, mut catalog): (ObjRef, Dictionary),
    (page_ref, page): (ObjRef, Dictionary),
    field: ObjRef,
    requested: Option<&str>,
) -> Result<String, PdfError> {
    let names = match catalog.get(b"AcroForm").cloned() {
        Some(Object::Reference(r)) => match edits.current(doc, r)? {
            Object::Dictionary(mut form) => {
                let (names, changed) = add_to_form(doc, edits, &mut form, field)?;
                if changed {
                    edits.set(r, Object::Dictionary(form));
                }
                names
            }
            Object::Null => new_form(edits, root, &mut catalog, field)?,
            _ => {
                return Err(PdfError::Malformed(format!(
                    "the AcroForm ({r}) is not a dictionary"
                )))
            }
        },
        Some(Object::Dictionary(mut form)) => {
            let (names, _) = add_to_form(doc, edits, &mut form, field)?;
            catalog.insert(b"AcroForm", Object::Dictionary(form));
            edits.set(root, Object::Dictionary(catalog));
            names
        }
        None | Some(Object::Null) => new_form(edits, root, &mut catalog, field)?,
        Some(_) => {
            return Err(PdfError::Malformed(
                "the catalog's /AcroForm is not a dictionary".into(),
            ))
        }
    };
    add_to_annots(doc, edits, page_ref, page, field)?;
    field_name(&names, requested)
}

/// Sets /SigFlags on the existing AcroForm (when a field is filled).
pub(crate) fn set_sig_flags<S: Source>(
    doc: &mut Document<S>,
    edits: &mut Edits,
    root: ObjRef,
    mut catalog: Dictionary,
) -> Result<(), PdfError> {
    // The form with SignaturesExist and AppendOnly set, when they were not.
    let flagged = |form: &Dictionary| {
        let flags = form.integer(b"SigFlags").unwrap_or(0);
        let mut form = form.clone();
        form.insert(b"SigFlags", Object::Integer(flags | SIG_FLAGS));
        (flags & SIG_FLAGS != SIG_FLAGS).then_some(form)
    };
    match catalog.get(b"AcroForm").cloned() {
        Some(Object::Reference(r)) => {
            if let Object::Dictionary(form) = edits.current(doc, r)? {
                if let Some(form) = flagged(&form) {
                    edits.set(r, Object::Dictionary(form));
                }
            }
        }
        Some(Object::Dictionary(form)) => {
            if let Some(form) = flagged(&form) {
                catalog.insert(b"AcroForm", Object::Dictionary(form));
                edits.set(root, Object::Dictionary(catalog));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A new indirect AcroForm holding only the signature field; the catalog
/// is rewritten to point at it.
fn new_form(
    edits: &mut Edits,
    root: ObjRef,
    catalog: &mut Dictionary,
    field: ObjRef,
) -> Result<HashSet<String>, PdfError> {
    let form_ref = edits.allocate()?;
    let mut form = Dictionary::new();
    form.insert(b"Fields", Object::Array(vec![Object::Reference(field)]));
    form.insert(b"SigFlags", Object::Integer(SIG_FLAGS));
    edits.set(form_ref, Object::Dictionary(form));
    catalog.insert(b"AcroForm", Object::Reference(form_ref));
    edits.set(root, Object::Dictionary(catalog.clone()));
    Ok(HashSet::new())
}

/// Appends `field` to /Fields and sets /SigFlags, leaving every other entry
/// (/DA, /DR, /NeedAppearances, /XFA...) as it is. Returns the names of the
/// existing root fields, and whether `form` itself changed.
fn add_to_form<S: Source>(
    doc: &mut Document<S>,
    edits: &mut Edits,
    form: &mut Dictionary,
    field: ObjRef,
) -> Result<(HashSet<String>, bool), PdfError> {
    let (fields, mut changed) = append(doc, edits, form, b"Fields", field, "the AcroForm")?;
    let names = root_field_names(doc, &fields[..fields.len() - 1])?;
    let flags = form.integer(b"SigFlags").unwrap_or(0);
    if flags & SIG_FLAGS != SIG_FLAGS {
        form.insert(b"SigFlags", Object::Integer(flags | SIG_FLAGS));
        changed = true;
    }
    Ok((names, changed))
}

/// Appends `item` to the array under `key` in `dict`: in place when the
/// array is direct or absent (then `dict` changed: true is returned), as a
/// new revision of the array object when it is indirect. Returns the array
/// as it now is.
fn append<S: Source>(
    doc: &mut Document<S>,
    edits: &mut Edits,
    dict: &mut Dictionary,
    key: &[u8],
    item: ObjRef,
    owner: &str,
) -> Result<(Vec<Object>, bool), PdfError> {
    let key_name = String::from_utf8_lossy(key);
    let mut items = match dict.get(key).cloned() {
        Some(Object::Reference(r)) => match edits.current(doc, r)? {
            Object::Array(mut items) => {
                items.push(Object::Reference(item));
                edits.set(r, Object::Array(items.clone()));
                return Ok((items, false));
            }
            // A dangling reference reads as null (§7.3.10): start afresh.
            Object::Null => Vec::new(),
            _ => {
                return Err(PdfError::Malformed(format!(
                    "the /{key_name} of {owner} ({r}) is not an array"
                )))
            }
        },
        Some(Object::Array(items)) => items,
        None | Some(Object::Null) => Vec::new(),
        Some(_) => {
            return Err(PdfError::Malformed(format!(
                "the /{key_name} of {owner} is not an array"
            )))
        }
    };
    items.push(Object::Reference(item));
    dict.insert(key, Object::Array(items.clone()));
    Ok((items, true))
}

/// Partial names (/T) of the root fields: a new root field must differ
/// from all of them (§12.7.3.2); names of kids are qualified by their
/// parent's, so they cannot clash.
fn root_field_names<S: Source>(
    doc: &mut Document<S>,
    fields: &[Object],
) -> Result<HashSet<String>, PdfError> {
    let mut names = HashSet::new();
    for field in fields {
        if let Object::Dictionary(dict) = doc.resolve(field.clone())? {
            if let Some(Object::String(name)) = dict.get(b"T") {
                names.insert(name.to_text());
            }
        }
    }
    Ok(names)
}

/// Appends the widget to the page's /Annots (§12.5.2), which may be a
/// direct array, an indirect one, or absent.
fn add_to_annots<S: Source>(
    doc: &mut Document<S>,
    edits: &mut Edits,
    page_ref: ObjRef,
    page: Dictionary,
    widget: ObjRef,
) -> Result<(), PdfError> {
    let mut page = match edits.changed.get(&page_ref.num) {
        Some((_, Object::Dictionary(edited))) => edited.clone(),
        _ => page,
    };
    let owner = format!("page {page_ref}");
    let (_, changed) = append(doc, edits, &mut page, b"Annots", widget, &owner)?;
    if changed {
        edits.set(page_ref, Object::Dictionary(page));
    }
    Ok(())
}

fn field_name(existing: &HashSet<String>, requested: Option<&str>) -> Result<String, PdfError> {
    match requested {
        Some(name) if existing.contains(name) => Err(PdfError::InvalidRequest(format!(
            "the document already has a field named \"{name}\""
        ))),
        Some(name) => Ok(name.to_owned()),
        None => (1..=existing.len() + 1)
            .map(|n| format!("Signature{n}"))
            .find(|name| !existing.contains(name))
            .ok_or_else(|| PdfError::Malformed("no free field name".into())),
    }
}

/// The signature field merged with its widget (§12.7.4.5, §12.5.6.19).
pub(crate) fn signature_field(name: &str, sig: ObjRef, page: ObjRef, rect: [f64; 4]) -> Dictionary {
    let mut field = Dictionary::new();
    field.insert(b"Type", Object::name(b"Annot"));
    field.insert(b"Subtype", Object::name(b"Widget"));
    field.insert(b"FT", Object::name(b"Sig"));
    field.insert(b"F", Object::Integer(WIDGET_FLAGS));
    field.insert(b"T", Object::String(PdfString::text(name)));
    field.insert(b"V", Object::Reference(sig));
    field.insert(b"P", Object::Reference(page));
    field.insert(
        b"Rect",
        Object::Array(rect.iter().map(|&v| Object::Real(v)).collect()),
    );
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_skip_existing_ones() {
        let existing: HashSet<String> = ["Signature1", "Signature2", "city"]
            .map(String::from)
            .into();
        assert_eq!(
            field_name(&existing, None).expect("free name"),
            "Signature3"
        );
        assert_eq!(
            field_name(&HashSet::new(), None).expect("free name"),
            "Signature1"
        );
    }

    #[test]
    fn requested_name_must_be_new() {
        let existing: HashSet<String> = ["city".to_string()].into();
        assert!(matches!(
            field_name(&existing, Some("city")),
            Err(PdfError::InvalidRequest(_))
        ));
        assert_eq!(
            field_name(&existing, Some("Approval")).expect("free"),
            "Approval"
        );
    }
}
