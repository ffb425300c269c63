//! The PDF object model (ISO 32000-1 §7.3) and its serialization.
//!
//! Objects are owned and small: the reader parses only the handful of
//! dictionaries a signature needs, and the writer re-serializes the few it
//! changes. Dictionaries keep their key order so that a rewritten object
//! differs from its previous revision only where the signature changed it.

use std::io::Write as _;

/// An indirect reference `num gen R` (ISO 32000-1 §7.3.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjRef {
    pub num: u32,
    pub gen: u16,
}

impl ObjRef {
    pub fn new(num: u32, gen: u16) -> Self {
        Self { num, gen }
    }
}

impl std::fmt::Display for ObjRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} R", self.num, self.gen)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Object {
    Null,
    Boolean(bool),
    Integer(i64),
    Real(f64),
    String(PdfString),
    Name(Name),
    Array(Vec<Object>),
    Dictionary(Dictionary),
    Reference(ObjRef),
}

/// A string object; `hex` remembers the form it was read in (§7.3.4) so a
/// rewrite keeps binary strings such as /ID readable.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PdfString {
    pub bytes: Vec<u8>,
    pub hex: bool,
}

impl PdfString {
    pub fn literal(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            hex: false,
        }
    }

    /// A text string (ISO 32000-1 §7.9.2.2): ASCII stays as is (a subset of
    /// PDFDocEncoding); anything else is UTF-16BE with a byte order mark.
    pub fn text(s: &str) -> Self {
        if s.is_ascii() {
            return Self::literal(s.as_bytes());
        }
        let mut bytes = vec![0xFE, 0xFF];
        for unit in s.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        Self { bytes, hex: true }
    }

    /// Decodes a text string for comparisons: UTF-16BE with a BOM, else
    /// PDFDocEncoding, whose printable ASCII range is all that field names
    /// use in practice (other bytes map to their Latin-1 code points).
    pub fn to_text(&self) -> String {
        match self.bytes.strip_prefix(&[0xFE, 0xFF]) {
            Some(utf16) => {
                let units = utf16
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect()
            }
            None => self.bytes.iter().map(|&b| char::from(b)).collect(),
        }
    }
}

/// A name object, stored decoded (`#xx` escapes resolved, §7.3.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Name(pub Vec<u8>);

impl Name {
    pub fn new(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

/// A dictionary (§7.3.7) in file order. Lookups are linear: the dictionaries
/// a signature touches have a few dozen keys at most.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Dictionary {
    entries: Vec<(Name, Object)>,
}

impl Dictionary {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &[u8]) -> Option<&Object> {
        self.entries
            .iter()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Object> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing value in place (keeps key order).
    pub fn insert(&mut self, key: &[u8], value: Object) {
        match self.get_mut(key) {
            Some(slot) => *slot = value,
            None => self.entries.push((Name::new(key), value)),
        }
    }

    /// Adds a parsed entry. A repeated key keeps its first value, as most
    /// readers do; the duplicate is dropped on rewrite.
    pub(crate) fn push_parsed(&mut self, key: Name, value: Object) {
        if self.get(&key.0).is_none() {
            self.entries.push((key, value));
        }
    }

    pub fn integer(&self, key: &[u8]) -> Option<i64> {
        match self.get(key) {
            Some(Object::Integer(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn name(&self, key: &[u8]) -> Option<&[u8]> {
        match self.get(key) {
            Some(Object::Name(n)) => Some(&n.0),
            _ => None,
        }
    }

    pub fn reference(&self, key: &[u8]) -> Option<ObjRef> {
        match self.get(key) {
            Some(Object::Reference(r)) => Some(*r),
            _ => None,
        }
    }
}

impl Object {
    pub fn name(bytes: &[u8]) -> Self {
        Object::Name(Name::new(bytes))
    }

    pub fn as_dict(&self) -> Option<&Dictionary> {
        match self {
            Object::Dictionary(d) => Some(d),
            _ => None,
        }
    }

    /// Appends the serialized object. Every token is followed by nothing and
    /// preceded by a space where the grammar needs one (§7.2.2: delimiters
    /// end tokens on their own).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Object::Null => out.extend_from_slice(b"null"),
            Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Object::Integer(i) => write_display(out, i),
            Object::Real(r) => write_real(out, *r),
            Object::String(s) => write_string(out, s),
            Object::Name(n) => write_name(out, &n.0),
            Object::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    item.write_to(out);
                }
                out.push(b']');
            }
            Object::Dictionary(d) => d.write_to(out),
            Object::Reference(r) => write_display(out, r),
        }
    }
}

impl Dictionary {
    pub fn write_to(&self, out: &mut Vec<u8>) {
        self.write_open(out);
        out.extend_from_slice(b" >>");
    }

    /// `<<` and the entries, leaving the dictionary open for more.
    pub fn write_open(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<<");
        for (key, value) in &self.entries {
            out.push(b' ');
            write_name(out, &key.0);
            out.push(b' ');
            value.write_to(out);
        }
    }
}

fn write_display(out: &mut Vec<u8>, value: &impl std::fmt::Display) {
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{value}");
}

/// Reals without exponent (§7.3.3 has no exponent form); Rust's `Display`
/// for f64 prints the shortest digits that read back to the same value.
pub(crate) fn write_real(out: &mut Vec<u8>, r: f64) {
    if r.is_finite() {
        write_display(out, &r);
    } else {
        out.push(b'0');
    }
}

/// A literal string with `\`, parentheses and line ends escaped (§7.3.4.2:
/// an unescaped end-of-line would be read back as a bare LF), or a hex
/// string when it was read as one.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &PdfString) {
    if s.hex {
        out.push(b'<');
        out.extend_from_slice(hex::encode_upper(&s.bytes).as_bytes());
        out.push(b'>');
        return;
    }
    out.push(b'(');
    for &b in &s.bytes {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
    out.push(b')');
}

/// `/` then the name; bytes outside the regular printable range, and `#`
/// itself, as `#xx` (§7.3.5).
pub(crate) fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        if (b'!'..=b'~').contains(&b) && !is_delimiter(b) && b != b'#' {
            out.push(b);
        } else {
            let _ = write!(out, "#{b:02X}");
        }
    }
}

/// The delimiter characters of ISO 32000-1 §7.2.2, Table 2.
pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

/// The white-space characters of ISO 32000-1 §7.2.2, Table 1.
pub(crate) fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\0' | b'\t' | b'\n' | b'\x0C' | b'\r' | b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(o: &Object) -> String {
        let mut out = Vec::new();
        o.write_to(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn names_escape_delimiters_and_hash() {
        assert_eq!(serialize(&Object::name(b"A B#(x)")), "/A#20B#23#28x#29");
    }

    #[test]
    fn literal_strings_escape_parentheses_backslash_and_line_ends() {
        let s = Object::String(PdfString::literal(&b"a(b)\\c\r\n"[..]));
        assert_eq!(serialize(&s), r"(a\(b\)\\c\r\n)");
    }

    #[test]
    fn text_strings_use_utf16_with_bom_outside_ascii() {
        let s = PdfString::text("Søren");
        assert_eq!(&s.bytes[..4], &[0xFE, 0xFF, 0x00, b'S']);
        assert_eq!(s.to_text(), "Søren");
        assert_eq!(PdfString::text("Signature1").bytes, b"Signature1");
    }

    #[test]
    fn dictionary_insert_replaces_in_place() {
        let mut d = Dictionary::new();
        d.insert(b"A", Object::Integer(1));
        d.insert(b"B", Object::Real(0.5));
        d.insert(b"A", Object::Reference(ObjRef::new(3, 0)));
        assert_eq!(serialize(&Object::Dictionary(d)), "<< /A 3 0 R /B 0.5 >>");
    }
}
