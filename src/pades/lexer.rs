//! Tokenizer and object parser (ISO 32000-1 §7.2, §7.3).
//!
//! The parser works on a window of the file. When the window ends inside an
//! object and the file goes on, it reports [`ParseError::Eof`] so the caller
//! can retry with a larger window; only a window that reaches the end of the
//! file (or of a decoded object stream) is `complete`.

use super::object::{is_delimiter, is_whitespace, Dictionary, Name, ObjRef, Object, PdfString};

/// Arrays and dictionaries nested deeper than this are refused: real files
/// stay below ten, and the bound keeps the recursive parser off the stack's
/// edge.
const MAX_NESTING: u32 = 64;

#[derive(Debug, PartialEq)]
pub(crate) enum ParseError {
    /// The window ended before the object did.
    Eof,
    /// Not PDF syntax; `at` is an absolute file (or stream) offset.
    Syntax { at: u64, what: &'static str },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Eof => f.write_str("unexpected end of file"),
            ParseError::Syntax { at, what } => write!(f, "{what} at offset {at}"),
        }
    }
}

pub(crate) type ParseResult<T> = Result<T, ParseError>;

pub(crate) struct Lexer<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the file, for messages and stream offsets.
    base: u64,
    /// True when nothing follows `buf`: a token may end at its end.
    complete: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(buf: &'a [u8], base: u64, complete: bool) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            complete,
        }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn syntax<T>(&self, what: &'static str) -> ParseResult<T> {
        Err(ParseError::Syntax {
            at: self.offset(),
            what,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Skips white space and comments (§7.2.3: a comment runs to the end of
    /// the line and counts as white space).
    pub fn skip_whitespace(&mut self) {
        while let Some(b) = self.peek() {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(c) = self.peek() {
                    if c == b'\r' || c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// A run of regular characters (§7.2.2). Eof if the run touches the end
    /// of an incomplete window: it might go on.
    fn regular_run(&mut self) -> ParseResult<&'a [u8]> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_whitespace(b) || is_delimiter(b) {
                return Ok(&self.buf[start..self.pos]);
            }
            self.pos += 1;
        }
        if self.complete {
            Ok(&self.buf[start..])
        } else {
            Err(ParseError::Eof)
        }
    }

    /// The next keyword (`obj`, `xref`, `trailer`...), after white space.
    pub fn keyword(&mut self) -> ParseResult<&'a [u8]> {
        self.skip_whitespace();
        if self.peek().is_none() {
            return Err(ParseError::Eof);
        }
        self.regular_run()
    }

    /// Consumes `word` if it is the next keyword; leaves the position
    /// unchanged otherwise.
    pub fn eat_keyword(&mut self, word: &[u8]) -> ParseResult<bool> {
        let save = self.pos;
        let matched = self.keyword()? == word;
        if !matched {
            self.pos = save;
        }
        Ok(matched)
    }

    /// A non-negative integer such as an object number or an xref offset.
    pub fn unsigned(&mut self) -> ParseResult<u64> {
        self.skip_whitespace();
        let at = self.pos;
        let run = self.regular_run()?;
        parse_unsigned(run).ok_or(ParseError::Syntax {
            at: self.base + at as u64,
            what: "expected a non-negative integer",
        })
    }

    /// `num gen obj` (§7.3.10).
    pub fn indirect_header(&mut self) -> ParseResult<ObjRef> {
        let num = self.unsigned()?;
        let gen = self.unsigned()?;
        if !self.eat_keyword(b"obj")? {
            return self.syntax("expected 'obj'");
        }
        match (u32::try_from(num), u16::try_from(gen)) {
            (Ok(num), Ok(gen)) => Ok(ObjRef::new(num, gen)),
            _ => self.syntax("object number out of range"),
        }
    }

    /// After an indirect object's value: if the keyword `stream` follows,
    /// the absolute offset where the stream data starts (§7.3.8.1: after
    /// CRLF or LF; a lone CR is tolerated).
    pub fn stream_start(&mut self) -> ParseResult<Option<u64>> {
        if !self.eat_keyword(b"stream")? {
            return Ok(None);
        }
        match self.peek() {
            Some(b'\r') => {
                self.pos += 1;
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            Some(b'\n') => self.pos += 1,
            Some(_) => {}
            None if !self.complete => return Err(ParseError::Eof),
            None => {}
        }
        Ok(Some(self.offset()))
    }

    /// Parses one object.
    pub fn object(&mut self) -> ParseResult<Object> {
        self.object_at_depth(0)
    }

    fn object_at_depth(&mut self, depth: u32) -> ParseResult<Object> {
        if depth > MAX_NESTING {
            return self.syntax("arrays or dictionaries nested too deeply");
        }
        self.skip_whitespace();
        let Some(b) = self.peek() else {
            return Err(ParseError::Eof);
        };
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Object::Name(self.name()?))
            }
            b'(' => Ok(Object::String(self.literal_string()?)),
            b'<' if self.buf.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                Ok(Object::Dictionary(self.dictionary_body(depth)?))
            }
            b'<' if self.buf.len() == self.pos + 1 && !self.complete => Err(ParseError::Eof),
            b'<' => Ok(Object::String(self.hex_string()?)),
            b'[' => {
                self.pos += 1;
                self.array_body(depth)
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number_or_reference(),
            _ if is_delimiter(b) => self.syntax("unexpected delimiter"),
            _ => match self.regular_run()? {
                b"true" => Ok(Object::Boolean(true)),
                b"false" => Ok(Object::Boolean(false)),
                b"null" => Ok(Object::Null),
                _ => self.syntax("unexpected keyword"),
            },
        }
    }

    fn array_body(&mut self, depth: u32) -> ParseResult<Object> {
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                None => return Err(ParseError::Eof),
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Object::Array(items));
                }
                Some(_) => items.push(self.object_at_depth(depth + 1)?),
            }
        }
    }

    /// Entries up to `>>`; the opening `<<` is consumed.
    pub fn dictionary_body(&mut self, depth: u32) -> ParseResult<Dictionary> {
        let mut dict = Dictionary::new();
        loop {
            self.skip_whitespace();
            match (self.peek(), self.buf.get(self.pos + 1)) {
                (None, _) => return Err(ParseError::Eof),
                (Some(b'>'), Some(b'>')) => {
                    self.pos += 2;
                    return Ok(dict);
                }
                (Some(b'>'), None) if !self.complete => return Err(ParseError::Eof),
                (Some(b'/'), _) => {
                    self.pos += 1;
                    let key = self.name()?;
                    let value = self.object_at_depth(depth + 1)?;
                    dict.push_parsed(key, value);
                }
                _ => return self.syntax("expected a name as dictionary key"),
            }
        }
    }

    /// A name after its `/`, with `#xx` escapes decoded (§7.3.5).
    fn name(&mut self) -> ParseResult<Name> {
        let run = self.regular_run()?;
        let mut out = Vec::with_capacity(run.len());
        let mut i = 0;
        while i < run.len() {
            let escaped = run.get(i + 1..i + 3).and_then(|h| {
                let s = std::str::from_utf8(h).ok()?;
                u8::from_str_radix(s, 16).ok()
            });
            match (run[i], escaped) {
                (b'#', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Ok(Name(out))
    }

    /// `( ... )` with balanced parentheses, escapes, and end-of-line
    /// normalization (§7.3.4.2).
    fn literal_string(&mut self) -> ParseResult<PdfString> {
        self.pos += 1;
        let mut out = Vec::new();
        let mut depth = 0u32;
        loop {
            let Some(b) = self.peek() else {
                return Err(ParseError::Eof);
            };
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' if depth == 0 => return Ok(PdfString::literal(out)),
                b')' => {
                    depth -= 1;
                    out.push(b);
                }
                b'\\' => self.string_escape(&mut out)?,
                b'\r' => {
                    if self.peek() == Some(b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                _ => out.push(b),
            }
        }
    }

    fn string_escape(&mut self, out: &mut Vec<u8>) -> ParseResult<()> {
        let Some(b) = self.peek() else {
            return Err(ParseError::Eof);
        };
        self.pos += 1;
        match b {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0C),
            b'0'..=b'7' => {
                let mut value = u32::from(b - b'0');
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                // §7.3.4.2: high-order overflow is ignored.
                out.push((value & 0xFF) as u8);
            }
            // A backslash before an end-of-line continues the string.
            b'\r' => {
                if self.peek() == Some(b'\n') {
                    self.pos += 1;
                }
            }
            b'\n' => {}
            // Unknown escapes drop the backslash.
            _ => out.push(b),
        }
        Ok(())
    }

    /// `< hex digits >`, white space ignored, an odd final digit padded with
    /// 0 (§7.3.4.3).
    fn hex_string(&mut self) -> ParseResult<PdfString> {
        self.pos += 1;
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let Some(b) = self.peek() else {
                return Err(ParseError::Eof);
            };
            self.pos += 1;
            let nibble = match b {
                b'>' => break,
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                _ if is_whitespace(b) => continue,
                _ => return self.syntax("invalid character in hex string"),
            };
            match high.take() {
                Some(h) => out.push((h << 4) | nibble),
                None => high = Some(nibble),
            }
        }
        if let Some(h) = high {
            out.push(h << 4);
        }
        Ok(PdfString {
            bytes: out,
            hex: true,
        })
    }

    /// A number, or `num gen R` when two unsigned integers and `R` follow
    /// (§7.3.10).
    fn number_or_reference(&mut self) -> ParseResult<Object> {
        let start = self.pos;
        let run = self.regular_run()?;
        let Some(num) = parse_unsigned(run) else {
            return match parse_number(run) {
                Some(n) => Ok(n),
                None => {
                    self.pos = start;
                    self.syntax("invalid number")
                }
            };
        };
        let after_num = self.pos;
        match self.reference_tail() {
            Ok(Some(gen)) => match (u32::try_from(num), u16::try_from(gen)) {
                (Ok(num), Ok(gen)) => Ok(Object::Reference(ObjRef::new(num, gen))),
                _ => self.syntax("object number out of range in reference"),
            },
            Ok(None) => {
                self.pos = after_num;
                Ok(parse_number(run).unwrap_or(Object::Null))
            }
            Err(e) => Err(e),
        }
    }

    /// After an unsigned integer: `gen R` if it follows (consumed), else
    /// None. Eof only when the window is incomplete.
    fn reference_tail(&mut self) -> ParseResult<Option<u64>> {
        self.skip_whitespace();
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return self.more_or(None);
        }
        let Some(gen) = parse_unsigned(self.regular_run()?) else {
            return Ok(None);
        };
        self.skip_whitespace();
        if self.peek() != Some(b'R') {
            return self.more_or(None);
        }
        self.pos += 1;
        match self.peek() {
            Some(b) if !is_whitespace(b) && !is_delimiter(b) => Ok(None),
            None => self.more_or(Some(gen)),
            _ => Ok(Some(gen)),
        }
    }

    /// `value` unless the window ended and the file goes on.
    fn more_or<T>(&self, value: T) -> ParseResult<T> {
        if self.peek().is_none() && !self.complete {
            Err(ParseError::Eof)
        } else {
            Ok(value)
        }
    }
}

pub(crate) fn parse_unsigned(run: &[u8]) -> Option<u64> {
    if run.is_empty() || run.len() > 19 || !run.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(run).ok()?.parse().ok()
}

/// Integers and reals (§7.3.3): optional sign, digits, at most one point.
/// Integers too large for i64 are kept as reals.
fn parse_number(run: &[u8]) -> Option<Object> {
    let digits = run
        .strip_prefix(b"-")
        .or(run.strip_prefix(b"+"))
        .unwrap_or(run);
    let points = digits.iter().filter(|&&b| b == b'.').count();
    let valid = !digits.is_empty()
        && points <= 1
        && digits.iter().any(u8::is_ascii_digit)
        && digits.iter().all(|&b| b.is_ascii_digit() || b == b'.');
    if !valid {
        return None;
    }
    let text = std::str::from_utf8(run).ok()?;
    if points == 0 {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Object::Integer(i));
        }
    }
    let trimmed = text.strip_prefix('+').unwrap_or(text);
    trimmed.parse::<f64>().ok().map(Object::Real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &[u8]) -> ParseResult<Object> {
        Lexer::new(src, 0, true).object()
    }

    #[test]
    fn parses_nested_dictionary_with_references_and_comments() {
        let src =
            b"<< /Type /Page % comment\r\n /Kids [1 0 R 2 0 R] /N -3 /R .5 /S (a\\)b) /H <4a4> >>";
        let Object::Dictionary(d) = parse(src).expect("parses") else {
            panic!("not a dictionary")
        };
        assert_eq!(d.name(b"Type"), Some(&b"Page"[..]));
        assert_eq!(
            d.get(b"Kids"),
            Some(&Object::Array(vec![
                Object::Reference(ObjRef::new(1, 0)),
                Object::Reference(ObjRef::new(2, 0))
            ]))
        );
        assert_eq!(d.integer(b"N"), Some(-3));
        assert_eq!(d.get(b"R"), Some(&Object::Real(0.5)));
        assert_eq!(
            d.get(b"S"),
            Some(&Object::String(PdfString::literal(&b"a)b"[..])))
        );
        let hex = PdfString {
            bytes: vec![0x4a, 0x40],
            hex: true,
        };
        assert_eq!(d.get(b"H"), Some(&Object::String(hex)));
    }

    #[test]
    fn integers_not_followed_by_r_stay_integers() {
        assert_eq!(
            parse(b"[1 0 2]"),
            Ok(Object::Array(vec![
                Object::Integer(1),
                Object::Integer(0),
                Object::Integer(2)
            ]))
        );
        assert_eq!(parse(b"7"), Ok(Object::Integer(7)));
    }

    #[test]
    fn incomplete_window_reports_eof_and_complete_one_does_not() {
        assert_eq!(Lexer::new(b"1 0", 0, false).object(), Err(ParseError::Eof));
        assert_eq!(
            Lexer::new(b"<< /A 1", 0, true).object(),
            Err(ParseError::Eof)
        );
        assert_eq!(Lexer::new(b"12", 0, true).object(), Ok(Object::Integer(12)));
        assert_eq!(Lexer::new(b"12", 0, false).object(), Err(ParseError::Eof));
    }

    #[test]
    fn string_escapes_and_line_ends() {
        let s = parse(b"(a\\101\\\r\nb\r\nc\\q(d))").expect("parses");
        assert_eq!(s, Object::String(PdfString::literal(&b"aAb\ncq(d)"[..])));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let src = vec![b'['; 100_000];
        assert!(matches!(parse(&src), Err(ParseError::Syntax { .. })));
    }

    #[test]
    fn names_decode_hex_escapes() {
        assert_eq!(parse(b"/A#20B"), Ok(Object::name(b"A B")));
        assert_eq!(parse(b"/A#zz"), Ok(Object::name(b"A#zz")));
    }

    #[test]
    fn indirect_header_and_stream_start() {
        let mut lx = Lexer::new(b"12 0 obj\r\n<< /Length 3 >>\r\nstream\r\nabc", 100, true);
        assert_eq!(lx.indirect_header(), Ok(ObjRef::new(12, 0)));
        assert!(lx.object().is_ok());
        assert_eq!(lx.stream_start(), Ok(Some(100 + 35)));
    }

    #[test]
    fn invalid_numbers_are_syntax_errors() {
        assert!(matches!(parse(b"1.2.3"), Err(ParseError::Syntax { .. })));
        assert!(matches!(parse(b"--"), Err(ParseError::Syntax { .. })));
        assert_eq!(
            parse(b"99999999999999999999"),
            Ok(Object::Real(99999999999999999999.0))
        );
    }
}
