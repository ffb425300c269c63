//! The incremental update (ISO 32000-1 §7.5.6): new and rewritten objects,
//! then a cross-reference section of the same kind as the file's last one
//! (a table, §7.5.4, or an uncompressed stream, §7.5.8), a trailer that
//! chains to the previous section with /Prev, and `%%EOF`.
//!
//! The signature dictionary's /ByteRange (§12.8.1) is written with fixed
//! width, so the layout is final before the offsets are filled in; its
//! /Contents is a run of hex zeros that [`PreparedUpdate::embed`] overwrites.

use std::io::Write as _;

use sha2::{Digest, Sha256};

use super::object::{Dictionary, ObjRef, Object, PdfString};
use super::xref::{Entry, XrefKind};
use super::PdfError;

/// Room for `0 a b c` with u64 values: 1 + 3 * (1 + 20) characters.
const BYTE_RANGE_WIDTH: usize = 64;

/// The body of one object in the update.
pub(crate) enum Body {
    Object(Object),
    /// A stream: its dictionary without /Length, and its data.
    Stream(Dictionary, Vec<u8>),
}

/// Trailer values carried over from the file's last trailer.
pub(crate) struct Trailer {
    pub root: ObjRef,
    pub info: Option<Object>,
    pub id: Option<Object>,
    /// The previous section's offset: the file's startxref; None when the
    /// update's section is complete on its own (a repaired file).
    pub prev: Option<u64>,
}

/// What `write` needs besides the objects.
pub(crate) struct Layout {
    /// Length from the `%PDF-` header on: offsets count from there.
    pub original_len: u64,
    /// Bytes before the header, outside the frame of the offsets.
    pub header: u64,
    /// Every object of a repaired file: the update's cross-reference
    /// section lists them all, so no reader needs the broken one.
    pub complete: Option<Vec<(u32, Entry)>>,
    /// The original does not end with an end-of-line: start with one, so
    /// the first object header starts a line (§7.5.6).
    pub leading_eol: bool,
    pub kind: XrefKind,
    pub contents_capacity: usize,
    /// One past the highest object number of the update, before the
    /// cross-reference stream takes one.
    pub next_number: u32,
    /// Seed for the new /ID[1]: any value that differs per signature.
    pub id_seed: Vec<u8>,
}

/// The update, ready to digest and embed. See the module documentation of
/// `pades` for the flow.
#[derive(Clone)]
pub struct PreparedUpdate {
    /// Length from the header on.
    original_len: u64,
    header: u64,
    repaired: bool,
    bytes: Vec<u8>,
    /// `<` and one past `>` of the /Contents placeholder, in `bytes`.
    contents: (usize, usize),
    field_name: String,
}

/// The bytes stay out: /Contents alone is kilobytes of hex.
impl std::fmt::Debug for PreparedUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedUpdate")
            .field("original_len", &self.original_len)
            .field("update_len", &self.bytes.len())
            .field("byte_range", &self.byte_range())
            .field("contents_capacity", &self.contents_capacity())
            .field("field_name", &self.field_name)
            .finish()
    }
}

impl PreparedUpdate {
    /// Length of the original file; the update goes right after it.
    pub fn original_len(&self) -> u64 {
        self.header + self.original_len
    }

    /// Bytes before the `%PDF-` header (ISO 32000-1 §7.5.2): object
    /// offsets count from the header, as qpdf and pdf.js read them.
    pub fn header_offset(&self) -> u64 {
        self.header
    }

    /// True when the file's cross-reference data was unusable and the
    /// object map was rebuilt by scanning it; the update's own section
    /// is then complete.
    pub fn repaired(&self) -> bool {
        self.repaired
    }

    /// The /ByteRange written in the update, in offsets of the final file
    /// from its first byte: bytes before the `%PDF-` header are signed too
    /// (poppler and pyHanko hash from the first byte).
    pub fn byte_range(&self) -> [u64; 4] {
        let at = self.header + self.original_len;
        let start = at + self.contents.0 as u64;
        let end = at + self.contents.1 as u64;
        let total = at + self.bytes.len() as u64;
        [0, start, end, total - end]
    }

    /// Bytes of DER the /Contents placeholder holds.
    pub fn contents_capacity(&self) -> usize {
        (self.contents.1 - self.contents.0 - 2) / 2
    }

    /// The signature field's name (/T).
    pub fn field_name(&self) -> &str {
        &self.field_name
    }

    /// SHA-256 over the byte range: `original` has already consumed every
    /// byte of the original file; this feeds the update except /Contents.
    pub fn digest(&self, mut original: Sha256) -> [u8; 32] {
        original.update(&self.bytes[..self.contents.0]);
        original.update(&self.bytes[self.contents.1..]);
        original.finalize().into()
    }

    /// Writes `cms` (DER) as hex into /Contents, zero-padded.
    pub fn embed(&mut self, cms: &[u8]) -> Result<(), PdfError> {
        let have = self.contents_capacity();
        if cms.len() > have {
            return Err(PdfError::ContentsTooSmall {
                need: cms.len(),
                have,
            });
        }
        let hex = &mut self.bytes[self.contents.0 + 1..self.contents.1 - 1];
        let (digits, padding) = hex.split_at_mut(cms.len() * 2);
        hex::encode_to_slice(cms, digits).map_err(|_| PdfError::ContentsTooSmall {
            need: cms.len(),
            have,
        })?;
        padding.fill(b'0');
        Ok(())
    }

    /// The bytes to append to the untouched original.
    pub fn update(&self) -> &[u8] {
        &self.bytes
    }
}

/// Serializes the signature dictionary (§12.8.1, Table 252; without
/// /ByteRange and /Contents, which are added as placeholders), `objects`,
/// and the cross-reference section.
pub(crate) fn write(
    (sig_ref, signature): (ObjRef, &Dictionary),
    objects: Vec<(ObjRef, Body)>,
    trailer: &Trailer,
    layout: &Layout,
    field_name: String,
) -> PreparedUpdate {
    let mut out = Vec::with_capacity(2048 + 2 * layout.contents_capacity);
    if layout.leading_eol {
        out.push(b'\n');
    }
    let base = layout.original_len;
    let mut offsets = Vec::with_capacity(objects.len() + 2);
    offsets.push((sig_ref, base + out.len() as u64));
    let _ = writeln!(out, "{} {} obj", sig_ref.num, sig_ref.gen);
    let (byte_range_at, contents) =
        signature_placeholders(&mut out, signature, layout.contents_capacity);
    out.extend_from_slice(b"\nendobj\n");
    write_objects(&mut out, offsets, objects, trailer, layout);
    let mut update = PreparedUpdate {
        original_len: base,
        header: layout.header,
        repaired: layout.complete.is_some(),
        bytes: out,
        contents,
        field_name,
    };
    let [a, b, c, d] = update.byte_range();
    let range = format!("{a} {b} {c} {d}");
    update.bytes[byte_range_at..byte_range_at + range.len()].copy_from_slice(range.as_bytes());
    update
}

/// An update without a signature (a /DSS revision, §7.5.6): `objects`
/// and the cross-reference section; the bytes to append.
pub(crate) fn write_plain(
    objects: Vec<(ObjRef, Body)>,
    trailer: &Trailer,
    layout: &Layout,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    if layout.leading_eol {
        out.push(b'\n');
    }
    write_objects(&mut out, Vec::new(), objects, trailer, layout);
    out
}

/// Appends `objects` after what `offsets` already lists, then the
/// cross-reference section and trailer.
fn write_objects(
    out: &mut Vec<u8>,
    mut offsets: Vec<(ObjRef, u64)>,
    objects: Vec<(ObjRef, Body)>,
    trailer: &Trailer,
    layout: &Layout,
) {
    let base = layout.original_len;
    for (r, body) in &objects {
        offsets.push((*r, base + out.len() as u64));
        let _ = writeln!(out, "{} {} obj", r.num, r.gen);
        match body {
            Body::Object(obj) => obj.write_to(out),
            Body::Stream(dict, data) => {
                let mut dict = dict.clone();
                dict.insert(b"Length", Object::Integer(data.len() as i64));
                dict.write_to(out);
                out.extend_from_slice(b"\nstream\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\nendstream");
            }
        }
        out.extend_from_slice(b"\nendobj\n");
    }
    let id = new_id(trailer.id.as_ref(), &layout.id_seed);
    let entries = all_entries(offsets, layout.complete.as_deref());
    match layout.kind {
        XrefKind::Table => xref_table(out, base, &entries, trailer, &id, layout.next_number),
        XrefKind::Stream => xref_stream(out, base, entries, trailer, &id, layout.next_number),
    }
}

/// The entries of the update's section: the new objects, and for a
/// repaired file every other object too, with free entries for the gaps
/// and object 0 (§7.5.4: the section is then one complete subsection).
fn all_entries(
    offsets: Vec<(ObjRef, u64)>,
    complete: Option<&[(u32, Entry)]>,
) -> Vec<(u32, Entry)> {
    let new = offsets
        .into_iter()
        .map(|(r, offset)| (r.num, Entry::InUse { offset, gen: r.gen }));
    let Some(old) = complete else {
        let mut entries: Vec<_> = new.collect();
        entries.sort_by_key(|e| e.0);
        return entries;
    };
    let mut map: std::collections::BTreeMap<u32, Entry> = old.iter().copied().collect();
    map.extend(new);
    map.insert(0, Entry::Free);
    let mut entries = Vec::with_capacity(map.len());
    for (num, entry) in map {
        let next = entries.last().map_or(0, |(n, _): &(u32, Entry)| n + 1);
        entries.extend((next..num).map(|n| (n, Entry::Free)));
        entries.push((num, entry));
    }
    entries
}

/// Writes the signature dictionary with a blank /ByteRange and a zero
/// /Contents; returns where the /ByteRange numbers go and the /Contents
/// span (`<` to one past `>`).
fn signature_placeholders(
    out: &mut Vec<u8>,
    dict: &Dictionary,
    capacity: usize,
) -> (usize, (usize, usize)) {
    dict.write_open(out);
    out.extend_from_slice(b" /ByteRange [");
    let byte_range_at = out.len();
    out.resize(out.len() + BYTE_RANGE_WIDTH, b' ');
    out.extend_from_slice(b"] /Contents ");
    let start = out.len();
    out.push(b'<');
    out.resize(out.len() + 2 * capacity, b'0');
    out.push(b'>');
    let end = out.len();
    out.extend_from_slice(b" >>");
    (byte_range_at, (start, end))
}

/// /ID (§14.4): the first string stays (it identifies the document); the
/// second changes with each revision.
fn new_id(old: Option<&Object>, seed: &[u8]) -> Object {
    let first = match old {
        Some(Object::Array(ids)) => match ids.first() {
            Some(Object::String(s)) => Some(s.bytes.clone()),
            _ => None,
        },
        _ => None,
    };
    let mut hasher = Sha256::new();
    hasher.update(first.as_deref().unwrap_or_default());
    hasher.update(seed);
    let second = hasher.finalize()[..16].to_vec();
    let hex = |bytes: Vec<u8>| Object::String(PdfString { bytes, hex: true });
    Object::Array(vec![
        hex(first.unwrap_or_else(|| second.clone())),
        hex(second),
    ])
}

fn trailer_entries(dict: &mut Dictionary, trailer: &Trailer, id: &Object, size: u32) {
    dict.insert(b"Size", Object::Integer(i64::from(size)));
    dict.insert(b"Root", Object::Reference(trailer.root));
    if let Some(info) = &trailer.info {
        dict.insert(b"Info", info.clone());
    }
    dict.insert(b"ID", id.clone());
    if let Some(prev) = trailer.prev {
        dict.insert(b"Prev", Object::Integer(prev as i64));
    }
}

/// Runs of consecutive object numbers: the subsections (§7.5.4) or /Index
/// pairs (§7.5.8.2).
fn runs(sorted: &[(u32, Entry)]) -> Vec<&[(u32, Entry)]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        if i == sorted.len() || sorted[i].0 != sorted[i - 1].0 + 1 {
            runs.push(&sorted[start..i]);
            start = i;
        }
    }
    runs
}

fn xref_table(
    out: &mut Vec<u8>,
    base: u64,
    entries: &[(u32, Entry)],
    trailer: &Trailer,
    id: &Object,
    size: u32,
) {
    let xref_offset = base + out.len() as u64;
    out.extend_from_slice(b"xref\n");
    for run in runs(entries) {
        let _ = writeln!(out, "{} {}", run[0].0, run.len());
        for (num, entry) in run {
            // Each entry is exactly 20 bytes, ending in CR LF (§7.5.4).
            let _ = match entry {
                Entry::InUse { offset, gen } => write!(out, "{offset:010} {gen:05} n\r\n"),
                _ if *num == 0 => write!(out, "0000000000 65535 f\r\n"),
                _ => write!(out, "0000000000 00000 f\r\n"),
            };
        }
    }
    let size = entries.last().map_or(size, |(n, _)| size.max(n + 1));
    let mut dict = Dictionary::new();
    trailer_entries(&mut dict, trailer, id, size);
    out.extend_from_slice(b"trailer\n");
    dict.write_to(out);
    let _ = write!(out, "\nstartxref\n{xref_offset}\n%%EOF\n");
}

/// One row of a cross-reference stream (§7.5.8.3): type, field 2, field 3.
fn row(entry: &Entry) -> (u8, u64, u64) {
    match *entry {
        Entry::Free => (0, 0, 0),
        Entry::InUse { offset, gen } => (1, offset, u64::from(gen)),
        Entry::Compressed { stream, index } => (2, u64::from(stream), u64::from(index)),
    }
}

/// Bytes needed to write `max` big-endian.
fn width(max: u64) -> usize {
    (1..=8).find(|w| max < 1u64 << (8 * w)).unwrap_or(8)
}

/// An uncompressed cross-reference stream; it lists itself too.
fn xref_stream(
    out: &mut Vec<u8>,
    base: u64,
    mut entries: Vec<(u32, Entry)>,
    trailer: &Trailer,
    id: &Object,
    number: u32,
) {
    let xref_offset = base + out.len() as u64;
    let number = entries.last().map_or(number, |(n, _)| number.max(n + 1));
    let own = (
        number,
        Entry::InUse {
            offset: xref_offset,
            gen: 0,
        },
    );
    entries.push(own);
    let rows: Vec<_> = entries.iter().map(|(_, e)| row(e)).collect();
    let w2 = width(rows.iter().map(|r| r.1).max().unwrap_or(0));
    let w3 = width(rows.iter().map(|r| r.2).max().unwrap_or(0)).max(2);
    let mut data = Vec::with_capacity(entries.len() * (1 + w2 + w3));
    for (kind, f2, f3) in rows {
        data.push(kind);
        data.extend_from_slice(&f2.to_be_bytes()[8 - w2..]);
        data.extend_from_slice(&f3.to_be_bytes()[8 - w3..]);
    }
    let mut index = Vec::new();
    for run in runs(&entries) {
        index.push(Object::Integer(i64::from(run[0].0)));
        index.push(Object::Integer(run.len() as i64));
    }
    let mut dict = Dictionary::new();
    dict.insert(b"Type", Object::name(b"XRef"));
    trailer_entries(&mut dict, trailer, id, number + 1);
    let widths = [1, w2 as i64, w3 as i64];
    dict.insert(
        b"W",
        Object::Array(widths.iter().map(|&w| Object::Integer(w)).collect()),
    );
    dict.insert(b"Index", Object::Array(index));
    dict.insert(b"Length", Object::Integer(data.len() as i64));
    let _ = writeln!(out, "{number} 0 obj");
    dict.write_to(out);
    out.extend_from_slice(b"\nstream\n");
    out.extend_from_slice(&data);
    let _ = write!(
        out,
        "\nendstream\nendobj\nstartxref\n{xref_offset}\n%%EOF\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: XrefKind) -> PreparedUpdate {
        let mut sig = Dictionary::new();
        sig.insert(b"Type", Object::name(b"Sig"));
        let objects = vec![
            (ObjRef::new(11, 0), Body::Object(Object::Integer(1))),
            (ObjRef::new(3, 0), Body::Object(Object::Null)),
        ];
        let trailer = Trailer {
            root: ObjRef::new(1, 0),
            info: None,
            id: None,
            prev: Some(500),
        };
        let layout = Layout {
            original_len: 1000,
            header: 0,
            complete: None,
            leading_eol: true,
            kind,
            contents_capacity: 4,
            next_number: 12,
            id_seed: b"seed".to_vec(),
        };
        write(
            (ObjRef::new(10, 0), &sig),
            objects,
            &trailer,
            &layout,
            "Signature1".into(),
        )
    }

    #[test]
    fn byte_range_brackets_the_contents_placeholder() {
        let update = sample(XrefKind::Table);
        let [a, b, c, d] = update.byte_range();
        assert_eq!(a, 0);
        let bytes = update.update();
        let (start, end) = ((b - 1000) as usize, (c - 1000) as usize);
        assert_eq!(&bytes[start..end], b"<00000000>");
        assert_eq!(c + d, 1000 + bytes.len() as u64);
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.contains(&format!("/ByteRange [0 {b} {c} {d}")),
            "{text}"
        );
        assert!(text.starts_with("\n10 0 obj\n"));
        assert!(text.contains("xref\n3 1\n"), "{text}");
        assert!(text.contains("10 2\n0000001001 00000 n\r\n"), "{text}");
    }

    #[test]
    fn embed_pads_and_refuses_overflow() {
        let mut update = sample(XrefKind::Stream);
        update.embed(&[0xAB]).expect("fits");
        let [_, b, _, _] = update.byte_range();
        let at = (b - 1000) as usize;
        assert_eq!(&update.update()[at..at + 10], b"<ab000000>");
        assert!(matches!(
            update.embed(&[0; 5]),
            Err(PdfError::ContentsTooSmall { need: 5, have: 4 })
        ));
    }

    #[test]
    fn digest_skips_only_the_contents() {
        let update = sample(XrefKind::Stream);
        let [_, b, c, _] = update.byte_range();
        let bytes = update.update();
        let mut covered = bytes[..(b - 1000) as usize].to_vec();
        covered.extend_from_slice(&bytes[(c - 1000) as usize..]);
        let expected: [u8; 32] = Sha256::digest([vec![7u8; 1000], covered].concat()).into();
        let mut original = Sha256::new();
        original.update([7u8; 1000]);
        assert_eq!(update.digest(original), expected);
    }
}
