//! Cross-reference sections: classic tables (ISO 32000-1 §7.5.4), streams
//! (§7.5.8), hybrid files (§7.5.8.4) and the /Prev chain of incremental
//! updates (§7.5.6).
//!
//! Classic tables are indexed, not read: an entry is 20 bytes at a known
//! place (§7.5.4), so a lookup reads just that entry. A cross-reference
//! stream is decoded once and kept (a few bytes per object).

use std::collections::{BTreeMap, HashSet};

use super::filter;
use super::lexer::{parse_unsigned, Lexer, ParseError};
use super::object::{Dictionary, Object};
use super::source::{parse_at, Source};
use super::PdfError;

/// More sections than this in one /Prev chain is taken as damage: files
/// signed a thousand times are unheard of.
const MAX_SECTIONS: usize = 10_000;
/// Subsections in one classic table.
const MAX_SUBSECTIONS: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Free,
    InUse {
        offset: u64,
        gen: u16,
    },
    /// Object `index` of object stream `stream` (§7.5.7).
    Compressed {
        stream: u32,
        index: u32,
    },
}

/// The kind of the newest section, which the update repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum XrefKind {
    Table,
    Stream,
}

struct Subsection {
    first: u32,
    count: u32,
    /// Where entry 0 starts.
    offset: u64,
    /// Entry width: 20 by the standard; 19 and 21 seen from sloppy writers.
    width: u64,
    /// The entries, read token by token when they are not of one width
    /// (space-padded or short fields, a comment between them).
    irregular: Option<Vec<Entry>>,
}

/// Entries of an irregular subsection read into memory at most.
const MAX_IRREGULAR: u32 = 1 << 20;

struct XrefStream {
    widths: [usize; 3],
    /// (first, count) pairs of /Index.
    index: Vec<(u32, u32)>,
    data: Vec<u8>,
}

enum Table {
    Classic(Vec<Subsection>),
    Stream(XrefStream),
    /// Rebuilt by scanning the file (`super::repair`).
    Rebuilt(BTreeMap<u32, Entry>),
}

struct Section {
    table: Table,
    trailer: Dictionary,
    /// A hybrid file's /XRefStm: searched after the table (§7.5.8.4).
    hidden: Option<XrefStream>,
}

/// All sections of the file, newest first.
pub(crate) struct Xref {
    sections: Vec<Section>,
}

impl Xref {
    /// Loads the section at `startxref` and every section its /Prev chain
    /// reaches.
    pub fn load<S: Source>(src: &mut S, startxref: u64) -> Result<Self, PdfError> {
        let mut sections = Vec::new();
        let mut seen = HashSet::new();
        let mut next = Some(startxref);
        while let Some(offset) = next {
            if !seen.insert(offset) {
                return Err(malformed(format!(
                    "the /Prev chain of cross-reference sections loops back to offset {offset}"
                )));
            }
            if sections.len() >= MAX_SECTIONS {
                return Err(malformed(format!(
                    "more than {MAX_SECTIONS} cross-reference sections"
                )));
            }
            let section = Section::load(src, offset)?;
            next = offset_entry(&section.trailer, b"Prev", src.len())?;
            sections.push(section);
        }
        Ok(Self { sections })
    }

    /// One section holding a rebuilt object map and trailer.
    pub fn rebuilt(entries: BTreeMap<u32, Entry>, trailer: Dictionary) -> Self {
        Self {
            sections: vec![Section {
                table: Table::Rebuilt(entries),
                trailer,
                hidden: None,
            }],
        }
    }

    /// The rebuilt object map, when the file was repaired for reading.
    pub fn rebuilt_entries(&self) -> Option<&BTreeMap<u32, Entry>> {
        match self.sections.first().map(|s| &s.table) {
            Some(Table::Rebuilt(entries)) => Some(entries),
            _ => None,
        }
    }

    /// Adds `entry` for `num` to a rebuilt map, unless `num` is known.
    pub fn add_rebuilt(&mut self, num: u32, entry: Entry) {
        if let Some(Table::Rebuilt(entries)) = self.sections.first_mut().map(|s| &mut s.table) {
            entries.entry(num).or_insert(entry);
        }
    }

    /// Sets a trailer value of a rebuilt map (the catalog found by scan).
    pub fn set_trailer_value(&mut self, key: &[u8], value: Object) {
        if let Some(section) = self.sections.first_mut() {
            section.trailer.insert(key, value);
        }
    }

    pub fn kind(&self) -> XrefKind {
        match self.sections.first().map(|s| &s.table) {
            Some(Table::Stream(_)) => XrefKind::Stream,
            // Object-stream members need a stream (type 2 entries, §7.5.8.3).
            Some(Table::Rebuilt(entries))
                if entries
                    .values()
                    .any(|e| matches!(e, Entry::Compressed { .. })) =>
            {
                XrefKind::Stream
            }
            _ => XrefKind::Table,
        }
    }

    /// The newest value of a trailer key (§7.5.6: each update's trailer
    /// repeats the keys, but older writers leave some out).
    pub fn trailer_value(&self, key: &[u8]) -> Option<&Object> {
        self.sections.iter().find_map(|s| s.trailer.get(key))
    }

    /// True when any trailer in the chain names an /Encrypt dictionary.
    pub fn encrypted(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.trailer.get(b"Encrypt").is_some())
    }

    /// The largest /Size of the chain: new objects are numbered from here.
    pub fn size(&self) -> u32 {
        let size = |s: &Section| s.trailer.integer(b"Size").unwrap_or(0);
        let max = self.sections.iter().map(size).max().unwrap_or(0);
        u32::try_from(max.max(1)).unwrap_or(u32::MAX)
    }

    /// Where object `num` lives; None when no section knows it (a
    /// reference to it is a reference to null, §7.3.10).
    pub fn lookup<S: Source>(&self, src: &mut S, num: u32) -> Result<Option<Entry>, PdfError> {
        for section in &self.sections {
            // A lookup scans the section's subsections or /Index pairs.
            let scanned = match &section.table {
                Table::Classic(subsections) => subsections.len(),
                Table::Stream(stream) => stream.index.len(),
                Table::Rebuilt(_) => 1,
            };
            src.budget().charge(16 + 16 * scanned as u64)?;
            let entry = match &section.table {
                Table::Classic(subsections) => classic_lookup(src, subsections, num)?,
                Table::Stream(stream) => stream.lookup(num),
                Table::Rebuilt(entries) => entries.get(&num).copied(),
            };
            // In a hybrid file the table may list hidden objects as free;
            // the /XRefStm entries come before the older sections.
            let hidden = match (&entry, &section.hidden) {
                (None | Some(Entry::Free), Some(h)) => h.lookup(num),
                _ => None,
            };
            if let Some(found) = hidden.filter(|e| *e != Entry::Free).or(entry) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

fn malformed(message: String) -> PdfError {
    PdfError::Malformed(message)
}

/// A trailer entry holding a file offset (/Prev, /XRefStm).
fn offset_entry(trailer: &Dictionary, key: &[u8], file_len: u64) -> Result<Option<u64>, PdfError> {
    match trailer.get(key) {
        None => Ok(None),
        Some(Object::Integer(i)) if (0..file_len as i64).contains(i) => Ok(Some(*i as u64)),
        Some(other) => Err(malformed(format!(
            "the trailer's /{} ({other:?}) is not an offset inside the file",
            String::from_utf8_lossy(key)
        ))),
    }
}

impl Section {
    fn load<S: Source>(src: &mut S, offset: u64) -> Result<Self, PdfError> {
        let context = || format!("cross-reference section at offset {offset} (startxref or /Prev)");
        let kind = parse_at(src, offset, &context, |lx| {
            if lx.eat_keyword(b"xref")? {
                return Ok(Some(true));
            }
            match lx.indirect_header() {
                Ok(_) => Ok(Some(false)),
                Err(ParseError::Syntax { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        let Some(is_table) = kind else {
            return Err(malformed(format!(
                "startxref or /Prev points to offset {offset}, where there is neither 'xref' nor a cross-reference stream"
            )));
        };
        if !is_table {
            let (table, trailer) = XrefStream::load(src, offset)?;
            return Ok(Self {
                table: Table::Stream(table),
                trailer,
                hidden: None,
            });
        }
        let (subsections, trailer) = load_classic(src, offset)?;
        let hidden = match offset_entry(&trailer, b"XRefStm", src.len())? {
            Some(at) => Some(XrefStream::load(src, at)?.0),
            None => None,
        };
        Ok(Self {
            table: Table::Classic(subsections),
            trailer,
            hidden,
        })
    }
}

/// Reads the subsection headers of a classic table and its trailer,
/// skipping over the entries themselves.
fn load_classic<S: Source>(
    src: &mut S,
    offset: u64,
) -> Result<(Vec<Subsection>, Dictionary), PdfError> {
    let context = || format!("cross-reference table at offset {offset}");
    let mut pos = parse_at(src, offset, &context, |lx| {
        lx.eat_keyword(b"xref")?;
        Ok(lx.offset())
    })?;
    let mut subsections = Vec::new();
    while let Some(sub) = subsection_at(src, pos, &context)? {
        if subsections.len() >= MAX_SUBSECTIONS {
            return Err(malformed(format!("{}: too many subsections", context())));
        }
        pos = match &sub.irregular {
            Some(_) => sub.width,
            None => sub.offset + u64::from(sub.count) * sub.width,
        };
        subsections.push(sub);
    }
    let trailer_context = || format!("trailer of the cross-reference table at offset {offset}");
    let trailer = parse_at(src, pos, &trailer_context, |lx| {
        lx.eat_keyword(b"trailer")?;
        match lx.object()? {
            Object::Dictionary(d) => Ok(d),
            _ => lx.syntax("expected the trailer dictionary"),
        }
    })?;
    Ok((subsections, trailer))
}

/// The subsection whose `first count` header is at `pos`; None at
/// `trailer`. Its entries must lie inside the file.
fn subsection_at<S: Source>(
    src: &mut S,
    pos: u64,
    context: &dyn Fn() -> String,
) -> Result<Option<Subsection>, PdfError> {
    let header = parse_at(src, pos, context, |lx| {
        if lx.eat_keyword(b"trailer")? {
            return Ok(None);
        }
        let first = lx.unsigned()?;
        let count = lx.unsigned()?;
        lx.skip_whitespace();
        Ok(Some((first, count, lx.offset())))
    })?;
    let Some((first, count, entries)) = header else {
        return Ok(None);
    };
    let bad = |what: &str| malformed(format!("{}: subsection {first} {count} {what}", context()));
    let (Ok(first), Ok(count)) = (u32::try_from(first), u32::try_from(count)) else {
        return Err(bad("is out of range"));
    };
    if first.checked_add(count).is_none() {
        return Err(bad("is out of range"));
    }
    let width = entry_width(src, entries, count).unwrap_or(0);
    if width > 0 && regular(src, entries, count, width)? {
        if entries + u64::from(count) * width > src.len() {
            return Err(bad("runs past the end of the file"));
        }
        return Ok(Some(Subsection {
            first,
            count,
            offset: entries,
            width,
            irregular: None,
        }));
    }
    if count > MAX_IRREGULAR {
        return Err(bad(
            "has irregular entries and is too long to read them one by one",
        ));
    }
    let (parsed, end) = parse_at(src, entries, context, |lx| {
        let mut parsed = Vec::with_capacity(count as usize);
        for _ in 0..count {
            parsed.push(token_entry(lx)?);
        }
        Ok((parsed, lx.offset()))
    })?;
    src.budget()
        .retain(parsed.len() * std::mem::size_of::<Entry>())?;
    // `width` carries where the next subsection starts.
    Ok(Some(Subsection {
        first,
        count,
        offset: entries,
        width: end,
        irregular: Some(parsed),
    }))
}

/// True when the last entry at the fixed `width` looks like an entry and
/// what follows it starts a subsection header or the trailer: then every
/// entry is at its place (§7.5.4). Otherwise the entries are read as
/// tokens, as qpdf and poppler do for space-padded or short fields.
fn regular<S: Source>(src: &mut S, entries: u64, count: u32, width: u64) -> Result<bool, PdfError> {
    let last = entries + u64::from(count.saturating_sub(1)) * width;
    let bytes = src.read_at(last, width as usize + 8)?.to_vec();
    let digits = |r: std::ops::Range<usize>| {
        bytes
            .get(r)
            .is_some_and(|b| b.iter().all(u8::is_ascii_digit))
    };
    let entry_ok = digits(0..10)
        && bytes.get(10) == Some(&b' ')
        && digits(11..16)
        && bytes.get(16) == Some(&b' ')
        && matches!(bytes.get(17), Some(b'n' | b'f'));
    let next = bytes.get(width as usize..).unwrap_or_default();
    let next = next.iter().copied().find(|b| !b.is_ascii_whitespace());
    Ok(entry_ok && matches!(next, Some(b'0'..=b'9' | b't') | None))
}

/// One entry read as tokens: offset, generation, `n` or `f`.
fn token_entry(lx: &mut Lexer<'_>) -> Result<Entry, ParseError> {
    let offset = lx.unsigned()?;
    let gen = lx.unsigned()?;
    let gen = u16::try_from(gen).unwrap_or(u16::MAX);
    if lx.eat_keyword(b"n")? {
        Ok(if offset > 0 {
            Entry::InUse { offset, gen }
        } else {
            Entry::Free
        })
    } else if lx.eat_keyword(b"f")? {
        Ok(Entry::Free)
    } else {
        lx.syntax("expected 'n' or 'f' in a cross-reference entry")
    }
}

/// The width of the entries: 18 bytes of fields and the end-of-line that
/// follows the first one.
fn entry_width<S: Source>(src: &mut S, entries: u64, count: u32) -> Result<u64, PdfError> {
    if count == 0 {
        return Ok(20);
    }
    let bytes = src.read_at(entries, 21)?;
    let eol = bytes
        .iter()
        .skip(18)
        .take_while(|&&b| matches!(b, b' ' | b'\r' | b'\n'))
        .count();
    match eol {
        1..=3 => Ok(18 + eol as u64),
        _ => Err(malformed(format!(
            "cross-reference entry at offset {entries} is not 20 bytes long"
        ))),
    }
}

fn classic_lookup<S: Source>(
    src: &mut S,
    subsections: &[Subsection],
    num: u32,
) -> Result<Option<Entry>, PdfError> {
    let Some(sub) = subsections
        .iter()
        .find(|s| num >= s.first && num - s.first < s.count)
    else {
        return Ok(None);
    };
    if let Some(entries) = &sub.irregular {
        return Ok(entries.get((num - sub.first) as usize).copied());
    }
    let at = sub.offset + u64::from(num - sub.first) * sub.width;
    let bytes = src.read_exact_at(at, 18, "cross-reference entry")?;
    let bad = || {
        malformed(format!(
            "cross-reference entry for object {num} at offset {at} is not 'nnnnnnnnnn ggggg n'"
        ))
    };
    let offset = parse_unsigned(&bytes[0..10]).ok_or_else(bad)?;
    let gen = parse_unsigned(&bytes[11..16])
        .and_then(|g| u16::try_from(g).ok())
        .ok_or_else(bad)?;
    match bytes[17] {
        // An in-use entry at offset 0 cannot be an object: old writers mean free.
        b'n' if offset > 0 => Ok(Some(Entry::InUse { offset, gen })),
        b'n' | b'f' => Ok(Some(Entry::Free)),
        _ => Err(bad()),
    }
}

impl XrefStream {
    /// Parses the cross-reference stream object at `offset` (§7.5.8.2);
    /// returns it with its dictionary, which is also the trailer.
    fn load<S: Source>(src: &mut S, offset: u64) -> Result<(Self, Dictionary), PdfError> {
        let context = || format!("cross-reference stream at offset {offset}");
        let (dict, data_start) = parse_at(src, offset, &context, |lx| {
            lx.indirect_header()?;
            let dict = match lx.object()? {
                Object::Dictionary(d) => d,
                _ => return lx.syntax("expected 'xref' or a cross-reference stream"),
            };
            match lx.stream_start()? {
                Some(start) => Ok((dict, start)),
                None => lx.syntax("expected 'xref' or a cross-reference stream"),
            }
        })?;
        // §7.5.8.2: the entries of this dictionary are direct objects, so
        // /Length can be used before any cross-reference data exists.
        let length = dict
            .integer(b"Length")
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| {
                malformed(format!(
                    "{}: /Length is missing or not a direct integer",
                    context()
                ))
            })?;
        if length > filter::MAX_DECODED {
            return Err(malformed(format!(
                "{}: /Length {length} is too large",
                context()
            )));
        }
        let raw = src.read_exact_at(data_start, length, &context())?;
        let data = filter::decode(&dict, raw, &context)?;
        src.budget().retain(data.len())?;
        let stream = Self::from_dict(&dict, data, &context)?;
        Ok((stream, dict))
    }

    fn from_dict(
        dict: &Dictionary,
        data: Vec<u8>,
        context: &dyn Fn() -> String,
    ) -> Result<Self, PdfError> {
        let bad = |what: &str| malformed(format!("{}: {what}", context()));
        let w = integers(dict, b"W").ok_or_else(|| bad("/W is missing or invalid"))?;
        let widths: [usize; 3] = match w[..] {
            [a, b, c] if [a, b, c].iter().all(|x| (0..=8).contains(x)) && a + b + c > 0 => {
                [a as usize, b as usize, c as usize]
            }
            _ => return Err(bad("/W is not three field widths of 0 to 8 bytes")),
        };
        let index = match integers(dict, b"Index") {
            Some(pairs) => pairs,
            None if dict.get(b"Index").is_some() => return Err(bad("/Index is invalid")),
            None => vec![
                0,
                dict.integer(b"Size")
                    .ok_or_else(|| bad("/Size is missing"))?,
            ],
        };
        if index.len() % 2 != 0 {
            return Err(bad("/Index has an odd number of entries"));
        }
        let pairs = index
            .chunks_exact(2)
            .map(|p| match (u32::try_from(p[0]), u32::try_from(p[1])) {
                (Ok(first), Ok(count)) => Ok((first, count)),
                _ => Err(bad("/Index has a negative or huge entry")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let rows: u64 = pairs.iter().map(|&(_, count)| u64::from(count)).sum();
        if rows * widths.iter().sum::<usize>() as u64 > data.len() as u64 {
            return Err(bad(
                "the stream holds fewer entries than /Index or /Size says",
            ));
        }
        Ok(Self {
            widths,
            index: pairs,
            data,
        })
    }

    fn lookup(&self, num: u32) -> Option<Entry> {
        let mut row = 0u64;
        for &(first, count) in &self.index {
            if num >= first && num - first < count {
                row += u64::from(num - first);
                return Some(self.entry(row as usize));
            }
            row += u64::from(count);
        }
        None
    }

    /// Row `row`; its bounds were checked in `from_dict`.
    fn entry(&self, row: usize) -> Entry {
        let [w0, w1, w2] = self.widths;
        let start = row * (w0 + w1 + w2);
        let field = |from: usize, width: usize| -> u64 {
            self.data[start + from..start + from + width]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        };
        // §7.5.8.3: a missing type field means type 1.
        let kind = if w0 == 0 { 1 } else { field(0, w0) };
        let (f2, f3) = (field(w0, w1), field(w0 + w1, w2));
        match kind {
            1 if f2 > 0 => Entry::InUse {
                offset: f2,
                gen: u16::try_from(f3).unwrap_or(u16::MAX),
            },
            2 => match (u32::try_from(f2), u32::try_from(f3)) {
                (Ok(stream), Ok(index)) => Entry::Compressed { stream, index },
                _ => Entry::Free,
            },
            // Type 0, and unknown types, which §7.5.8.3 says to read as null.
            _ => Entry::Free,
        }
    }
}

/// An array of integers, such as /W or /Index.
fn integers(dict: &Dictionary, key: &[u8]) -> Option<Vec<i64>> {
    match dict.get(key)? {
        Object::Array(items) => items
            .iter()
            .map(|o| match o {
                Object::Integer(i) => Some(*i),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Finds the offset after the last `startxref` in the file's tail
/// (§7.5.5). Bytes after %%EOF are tolerated.
pub(crate) fn startxref<S: Source>(src: &mut S) -> Result<u64, PdfError> {
    const TAIL: u64 = 4096;
    let len = src.len();
    let tail_start = len.saturating_sub(TAIL);
    let tail = src.read_at(tail_start, TAIL as usize)?;
    let at = tail
        .windows(9)
        .rposition(|w| w == b"startxref")
        .ok_or_else(|| {
            malformed(
                "cannot find the cross-reference table (no startxref in the last 4 KB)".into(),
            )
        })?;
    let mut lexer = Lexer::new(&tail[at + 9..], tail_start + at as u64 + 9, true);
    match lexer.unsigned() {
        Ok(offset) if offset < len => Ok(offset),
        Ok(offset) => Err(malformed(format!(
            "startxref points to offset {offset}, past the end of the file ({len} bytes)"
        ))),
        Err(ParseError::Eof | ParseError::Syntax { .. }) => {
            Err(malformed("startxref is not followed by an offset".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pades::source::Bytes;

    const TABLE: &[u8] = b"%PDF-1.4\nxref\r\n0 2\r\n0000000000 65535 f\r\n0000000009 00000 n\r\n5 1\n0000000042 00002 n \ntrailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n9\n%%EOF\n";

    #[test]
    fn classic_table_with_subsections_and_crlf() {
        let mut src = Bytes::new(TABLE);
        assert_eq!(startxref(&mut src).expect("startxref"), 9);
        let xref = Xref::load(&mut src, 9).expect("loads");
        assert_eq!(xref.kind(), XrefKind::Table);
        assert_eq!(xref.size(), 6);
        assert_eq!(xref.lookup(&mut src, 0).expect("ok"), Some(Entry::Free));
        assert_eq!(
            xref.lookup(&mut src, 1).expect("ok"),
            Some(Entry::InUse { offset: 9, gen: 0 })
        );
        assert_eq!(
            xref.lookup(&mut src, 5).expect("ok"),
            Some(Entry::InUse { offset: 42, gen: 2 })
        );
        assert_eq!(xref.lookup(&mut src, 3).expect("ok"), None);
    }

    #[test]
    fn irregular_entries_are_read_as_tokens() {
        let pdf = b"xref\n0 4\n0000000000 65535 f \n 0000000009 00000 n \n% a comment\n000000307 0000 n\n0000000403  00000  n \ntrailer\n<< /Size 4 >>\n";
        let mut src = Bytes::new(pdf);
        let xref = Xref::load(&mut src, 0).expect("loads");
        let offsets: Vec<_> = (1..4)
            .map(|n| xref.lookup(&mut src, n).expect("ok"))
            .collect();
        assert_eq!(
            offsets,
            [9, 307, 403].map(|offset| Some(Entry::InUse { offset, gen: 0 }))
        );
        assert_eq!(xref.size(), 4);
    }

    #[test]
    fn prev_cycle_is_malformed() {
        let pdf =
            b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< /Size 1 /Prev 0 >>\nstartxref\n0\n%%EOF";
        let Err(err) = Xref::load(&mut Bytes::new(pdf), 0) else {
            panic!("a /Prev cycle must be refused")
        };
        assert!(err.to_string().contains("loops"), "{err}");
    }

    #[test]
    fn huge_subsection_count_is_malformed() {
        let pdf = b"xref\n0 4294967295\n0000000000 65535 f \ntrailer\n<< /Size 1 >>\n";
        assert!(matches!(
            Xref::load(&mut Bytes::new(pdf), 0),
            Err(PdfError::Malformed(_))
        ));
    }

    #[test]
    fn xref_stream_entries() {
        // /W [1 2 1]: a free entry, an offset, and an object-stream member.
        let data = [0, 0, 0, 0xFF, 1, 0x01, 0x00, 0, 2, 0, 7, 3];
        let mut pdf =
            b"3 0 obj\n<< /Type /XRef /Size 3 /W [1 2 1] /Length 12 >>\nstream\n".to_vec();
        pdf.extend_from_slice(&data);
        pdf.extend_from_slice(b"\nendstream\nendobj\n");
        let mut src = Bytes::new(&pdf);
        let xref = Xref::load(&mut src, 0).expect("loads");
        assert_eq!(xref.kind(), XrefKind::Stream);
        assert_eq!(
            xref.lookup(&mut src, 1).expect("ok"),
            Some(Entry::InUse {
                offset: 256,
                gen: 0
            })
        );
        assert_eq!(
            xref.lookup(&mut src, 2).expect("ok"),
            Some(Entry::Compressed {
                stream: 7,
                index: 3
            })
        );
    }

    #[test]
    fn missing_startxref_is_malformed() {
        let err = startxref(&mut Bytes::new(b"%PDF-1.7\n junk")).expect_err("refused");
        assert!(err.to_string().contains("startxref"), "{err}");
    }
}
