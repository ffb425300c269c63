//! Reconstruction of the object map by scanning the file, for files whose
//! cross-reference data is missing, points to the wrong place, loops or
//! disagrees with the objects (ISO 32000-1 §7.5.4 and §7.5.8 describe what
//! is lost; Annex C.2 leaves the recovery to the reader). It follows what
//! qpdf, poppler and pdf.js do: every `num gen obj` header is an object
//! (the last one of a number wins, as a later update would), every
//! `trailer` dictionary and cross-reference stream dictionary gives
//! /Root, /Info, /ID and /Encrypt; then, through the document (which can
//! read streams), the members of object streams, the catalog when no
//! trailer names a usable one, and the pages when the page tree is broken.

use std::collections::BTreeMap;

use super::document::Document;
use super::lexer::Lexer;
use super::object::{Dictionary, ObjRef, Object};
use super::source::{parse_at, Source};
use super::xref::{Entry, Xref};
use super::PdfError;

/// Bytes read per step; consecutive windows overlap by `OVERLAP`, so a
/// header or keyword that straddles two windows is seen whole.
const CHUNK: usize = 1 << 20;
const OVERLAP: usize = 64;
/// Trailer and stream dictionaries parsed at most.
const MAX_DICTS: usize = 10_000;

/// What the scan found, in file order.
#[derive(Default)]
pub(crate) struct Scan {
    /// Object number -> (offset of the header, generation).
    pub objects: BTreeMap<u32, Entry>,
    /// Objects whose dictionary names /ObjStm, /XRef or /Catalog.
    pub object_streams: Vec<u32>,
    pub catalogs: Vec<u32>,
    /// Objects naming /Page, in file order: the pages when the page tree
    /// is broken (as pdf.js and poppler fall back to).
    pub pages: Vec<u32>,
    xref_streams: Vec<u64>,
    trailers: Vec<u64>,
    /// `/Encrypt n g R` seen outside a parsed trailer.
    encrypt_reference: bool,
}

impl Scan {
    /// Scans the whole file once, through windows of `CHUNK` bytes.
    pub fn run<S: Source>(src: &mut S) -> Result<Self, PdfError> {
        let mut scan = Scan::default();
        let mut current: Option<(u32, u64)> = None;
        let len = src.len();
        let mut pos = 0u64;
        while pos < len {
            let start = pos.saturating_sub(OVERLAP as u64);
            let buf = src.read_at(start, CHUNK + OVERLAP)?.to_vec();
            src.budget().charge(buf.len() as u64)?;
            let skip = (pos - start) as usize;
            for i in skip..buf.len() {
                scan.token_at(&buf, i, start, &mut current);
            }
            pos = start + buf.len() as u64;
            if buf.len() <= skip {
                break;
            }
        }
        Ok(scan)
    }

    fn token_at(&mut self, buf: &[u8], i: usize, base: u64, current: &mut Option<(u32, u64)>) {
        let at = |word: &[u8]| keyword_at(buf, i, word, base + i as u64 == 0);
        match buf[i] {
            b'o' if at(b"obj") => {
                if let Some((num, gen, start)) = header_before(buf, i) {
                    let offset = base + start as u64;
                    self.objects.insert(num, Entry::InUse { offset, gen });
                    *current = Some((num, offset));
                }
            }
            b't' if at(b"trailer") => self.trailers.push(base + i as u64),
            b'/' => self.name_at(buf, i, *current),
            _ => {}
        }
    }

    fn name_at(&mut self, buf: &[u8], i: usize, current: Option<(u32, u64)>) {
        let name = |n: &[u8]| keyword_at(buf, i + 1, n, false);
        if name(b"Encrypt") && reference_follows(&buf[i + 8..]) {
            self.encrypt_reference = true;
        }
        let Some((num, offset)) = current else { return };
        let push = |list: &mut Vec<u32>| {
            if list.last() != Some(&num) {
                list.push(num);
            }
        };
        if name(b"ObjStm") {
            push(&mut self.object_streams);
        } else if name(b"Catalog") {
            push(&mut self.catalogs);
        } else if name(b"Page") {
            push(&mut self.pages);
        } else if name(b"XRef") && self.xref_streams.last() != Some(&offset) {
            self.xref_streams.push(offset);
        }
    }

    /// The trailer the file would have: for /Root, /Info, /ID and
    /// /Encrypt, the value of the last trailer (or cross-reference stream)
    /// that has it; /Size one past the highest object number.
    pub fn trailer<S: Source>(&self, src: &mut S) -> Result<Dictionary, PdfError> {
        let mut found: Vec<(u64, Dictionary)> = Vec::new();
        for &at in self.trailers.iter().rev().take(MAX_DICTS) {
            if let Ok(Object::Dictionary(d)) = parse_at(src, at, &String::new, |lx| {
                lx.eat_keyword(b"trailer")?;
                lx.object()
            }) {
                found.push((at, d));
            }
        }
        for &at in self.xref_streams.iter().rev().take(MAX_DICTS) {
            if let Ok((_, Object::Dictionary(d))) = parse_at(src, at, &String::new, |lx| {
                Ok((lx.indirect_header()?, lx.object()?))
            }) {
                if d.name(b"Type") == Some(b"XRef") {
                    found.push((at, d));
                }
            }
        }
        found.sort_by_key(|(at, _)| *at);
        let mut trailer = Dictionary::new();
        for (_, dict) in found {
            for key in [&b"Root"[..], b"Info", b"ID", b"Encrypt"] {
                if let Some(v) = dict.get(key) {
                    trailer.insert(key, v.clone());
                }
            }
        }
        if self.encrypt_reference && trailer.get(b"Encrypt").is_none() {
            trailer.insert(b"Encrypt", Object::Null);
        }
        let size = self
            .objects
            .keys()
            .next_back()
            .map_or(1, |n| i64::from(*n) + 1);
        trailer.insert(b"Size", Object::Integer(size));
        Ok(trailer)
    }
}

impl<S: Source> Document<S> {
    /// Rebuilds the object map by scanning the whole file (see `repair`):
    /// direct objects, then the members of object streams, then the
    /// catalog when no trailer names a usable one.
    pub fn repair(&mut self) -> Result<(), PdfError> {
        let scan = Scan::run(&mut self.src)?;
        let trailer = scan.trailer(&mut self.src)?;
        if trailer.get(b"Encrypt").is_some() {
            return Err(PdfError::Encrypted);
        }
        self.xref = Xref::rebuilt(scan.objects.clone(), trailer);
        self.startxref = None;
        self.scanned_pages = scan.pages.clone();
        self.object_streams.clear();
        for &stream in &scan.object_streams {
            let Ok(loaded) = self.load_object_stream(stream, 0) else {
                continue;
            };
            for (index, &(num, _)) in loaded.members.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                self.xref
                    .add_rebuilt(num, Entry::Compressed { stream, index });
            }
            self.object_streams.insert(stream, loaded);
        }
        if self.catalog().is_err() {
            let root = self.find_catalog(&scan.catalogs)?;
            self.xref
                .set_trailer_value(b"Root", Object::Reference(root));
        }
        Ok(())
    }

    /// The last object that is a catalog with /Pages (§7.7.2), among the
    /// direct objects naming /Catalog, then among object-stream members.
    fn find_catalog(&mut self, candidates: &[u32]) -> Result<ObjRef, PdfError> {
        let members: Vec<u32> = self
            .object_streams
            .values()
            .flat_map(|os| os.members.iter().map(|m| m.0))
            .collect();
        for &num in candidates.iter().rev().chain(members.iter()) {
            let r = ObjRef::new(num, 0);
            if let Ok(Object::Dictionary(d)) = self.object(r) {
                if d.name(b"Type") == Some(b"Catalog") && d.get(b"Pages").is_some() {
                    return Ok(r);
                }
            }
        }
        Err(PdfError::Malformed(
            "the cross-reference data is unusable and no document catalog was found by scanning the file".into(),
        ))
    }

    /// Page `index` among the page objects the scan found, in file
    /// order (what pdf.js and poppler fall back to); `why` the tree failed.
    pub(super) fn scanned_page(
        &mut self,
        index: u32,
        why: String,
    ) -> Result<(ObjRef, Dictionary), PdfError> {
        let mut seen = 0;
        for num in self.scanned_pages.clone() {
            let r = ObjRef::new(num, 0);
            let Ok(Object::Dictionary(dict)) = self.object(r) else {
                continue;
            };
            if dict.name(b"Type") == Some(b"Page") {
                if seen == index {
                    return Ok((r, dict));
                }
                seen += 1;
            }
        }
        Err(PdfError::Malformed(why))
    }
}

/// True when `word` is at `i`, delimited on both sides (§7.2.2, §7.2.3).
fn keyword_at(buf: &[u8], i: usize, word: &[u8], at_file_start: bool) -> bool {
    if !buf[i..].starts_with(word) {
        return false;
    }
    let before_ok = at_file_start || i == 0 || !is_regular(buf[i - 1]) || buf[i] == b'/';
    let after_ok = buf.get(i + word.len()).is_none_or(|&b| !is_regular(b));
    before_ok && after_ok
}

/// §7.2.2: neither white-space nor a delimiter.
fn is_regular(b: u8) -> bool {
    !matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b'\x0c'
            | b'\0'
            | b'('
            | b')'
            | b'<'
            | b'>'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'/'
            | b'%'
    )
}

/// `num gen` right before `obj` at `i`: the number, the generation and
/// where the number starts.
fn header_before(buf: &[u8], i: usize) -> Option<(u32, u16, usize)> {
    let mut j = i;
    let space = |j: &mut usize| {
        let end = *j;
        while *j > 0 && matches!(buf[*j - 1], b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0') {
            *j -= 1;
        }
        end - *j
    };
    let digits = |j: &mut usize| {
        let end = *j;
        while *j > 0 && buf[*j - 1].is_ascii_digit() && end - *j < 10 {
            *j -= 1;
        }
        std::str::from_utf8(&buf[*j..end]).ok()?.parse::<u64>().ok()
    };
    space(&mut j);
    let gen = digits(&mut j)?;
    if space(&mut j) == 0 {
        return None;
    }
    let num = digits(&mut j)?;
    if j > 0 && is_regular(buf[j - 1]) {
        return None;
    }
    Some((u32::try_from(num).ok()?, u16::try_from(gen).ok()?, j))
}

/// ` n g R` at the start of `rest`.
fn reference_follows(rest: &[u8]) -> bool {
    let mut lexer = Lexer::new(&rest[..rest.len().min(32)], 0, true);
    matches!(lexer.object(), Ok(Object::Reference(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pades::source::Bytes;

    #[test]
    fn finds_objects_trailers_and_the_last_definition() {
        let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n12 0 obj (old) endobj\n12 1 obj (new) endobj\ntrailer\n<< /Root 1 0 R /Size 3 >>\n";
        let mut src = Bytes::new(pdf);
        let scan = Scan::run(&mut src).expect("scans");
        assert_eq!(scan.objects.len(), 3);
        assert_eq!(scan.objects[&1], Entry::InUse { offset: 9, gen: 0 });
        assert!(matches!(scan.objects[&12], Entry::InUse { gen: 1, .. }));
        assert_eq!(scan.catalogs, vec![1]);
        let trailer = scan.trailer(&mut src).expect("trailer");
        assert_eq!(trailer.integer(b"Size"), Some(13));
        assert!(trailer.reference(b"Root").is_some());
    }

    #[test]
    fn an_encrypt_reference_is_seen_without_a_trailer() {
        let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\n<< /Encrypt 5 0 R /Root 1 0 R";
        let mut src = Bytes::new(pdf);
        let scan = Scan::run(&mut src).expect("scans");
        let trailer = scan.trailer(&mut src).expect("trailer");
        assert!(trailer.get(b"Encrypt").is_some());
    }
}
