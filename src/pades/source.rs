//! Random access to the original file: a borrowed slice (gRPC path, no
//! copy) or a seekable reader (CLI path, a bounded window in memory), each
//! with the work budget of one request.

use std::io::{Read, Seek, SeekFrom};

use super::lexer::{Lexer, ParseError, ParseResult};
use super::PdfError;

/// The smallest read from a [`Reader`]: xref subsections, entries and
/// objects sit close together, so one window usually serves several reads.
const MIN_READ: usize = 8 << 10;

/// Windows tried in turn when parsing an object of unknown size. The last
/// one bounds what an object outside a stream may take.
const WINDOWS: [usize; 4] = [4 << 10, 64 << 10, 1 << 20, 8 << 20];

/// Work allowed for any file, in bytes parsed (plus a few units per
/// cross-reference lookup); four times the file's length comes on top.
const BASE_WORK: u64 = 64 << 20;
/// Decoded cross-reference and object stream data held at once. Real
/// files need a few MB even at a million objects.
const MAX_RETAINED: u64 = 64 << 20;

/// Bounds for one request. Every loop of the reader is bounded on its own,
/// but a hostile file can multiply the bounds (a million kids pointing
/// into one huge object, thousands of /Prev sections); the budget keeps
/// the total work near the file's size and the memory small.
pub(crate) struct Budget {
    work: u64,
    retained: u64,
}

impl Budget {
    fn new(file_len: u64) -> Self {
        Self {
            work: BASE_WORK.saturating_add(file_len.saturating_mul(4)),
            retained: MAX_RETAINED,
        }
    }

    /// Spends `units` of work.
    pub fn charge(&mut self, units: u64) -> Result<(), PdfError> {
        self.work = self.work.checked_sub(units).ok_or_else(|| {
            PdfError::Malformed(
                "reading the document structure takes too much work (damaged or looping references)"
                    .into(),
            )
        })?;
        Ok(())
    }

    /// Accounts for `bytes` of decoded stream data kept for the request.
    pub fn retain(&mut self, bytes: usize) -> Result<(), PdfError> {
        self.retained = self.retained.checked_sub(bytes as u64).ok_or_else(|| {
            PdfError::Unsupported(format!(
                "the cross-reference and object streams decode to more than {} MB",
                MAX_RETAINED >> 20
            ))
        })?;
        Ok(())
    }
}

pub(crate) trait Source {
    fn len(&self) -> u64;

    /// Up to `len` bytes at `offset`; shorter only at the end of the file.
    fn read_at(&mut self, offset: u64, len: usize) -> Result<&[u8], PdfError>;

    fn budget(&mut self) -> &mut Budget;

    /// Drops the first `start` bytes: bytes before the `%PDF-` header are
    /// outside the file's frame, all offsets count from the header (as
    /// qpdf, poppler and pdf.js read them).
    fn set_start(&mut self, start: u64);

    /// Exactly `len` bytes at `offset`, or Malformed naming `what`.
    fn read_exact_at(&mut self, offset: u64, len: usize, what: &str) -> Result<&[u8], PdfError> {
        let file_len = self.len();
        let bytes = self.read_at(offset, len)?;
        if bytes.len() < len {
            return Err(PdfError::Malformed(format!(
                "{what} (offset {offset}, {len} bytes) runs past the end of the file ({file_len} bytes)"
            )));
        }
        Ok(bytes)
    }
}

/// An in-memory PDF.
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    budget: Budget,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            budget: Budget::new(data.len() as u64),
        }
    }
}

impl Source for Bytes<'_> {
    fn set_start(&mut self, start: u64) {
        let start = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        self.data = &self.data[start..];
    }

    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<&[u8], PdfError> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let end = start.saturating_add(len).min(self.data.len());
        Ok(&self.data[start..end])
    }

    fn budget(&mut self) -> &mut Budget {
        &mut self.budget
    }
}

/// A seekable file; keeps one window of it.
pub(crate) struct Reader<'r, R> {
    inner: &'r mut R,
    /// Where the header starts; offsets are relative to it.
    start: u64,
    len: u64,
    window: Vec<u8>,
    window_offset: u64,
    budget: Budget,
}

impl<'r, R: Read + Seek> Reader<'r, R> {
    pub fn new(inner: &'r mut R) -> Result<Self, PdfError> {
        let len = inner.seek(SeekFrom::End(0))?;
        Ok(Self {
            inner,
            start: 0,
            len,
            window: Vec::new(),
            window_offset: 0,
            budget: Budget::new(len),
        })
    }
}

impl<R: Read + Seek> Source for Reader<'_, R> {
    fn set_start(&mut self, start: u64) {
        let start = start.min(self.len);
        self.start += start;
        self.len -= start;
        self.window.clear();
        self.window_offset = 0;
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<&[u8], PdfError> {
        let available = self.len.saturating_sub(offset);
        let wanted = (len as u64).min(available) as usize;
        let cached_end = self.window_offset + self.window.len() as u64;
        let hit = offset >= self.window_offset && offset + wanted as u64 <= cached_end;
        if !hit {
            let size = (wanted.max(MIN_READ) as u64).min(available) as usize;
            self.window.resize(size, 0);
            self.inner.seek(SeekFrom::Start(self.start + offset))?;
            self.inner.read_exact(&mut self.window)?;
            self.window_offset = offset;
        }
        let start = (offset - self.window_offset) as usize;
        Ok(&self.window[start..start + wanted])
    }

    fn budget(&mut self) -> &mut Budget {
        &mut self.budget
    }
}

/// Runs `parse` on growing windows at `offset` until it no longer needs more
/// bytes. `context` names what is parsed, for the error message.
pub(crate) fn parse_at<S: Source + ?Sized, T>(
    src: &mut S,
    offset: u64,
    context: &dyn Fn() -> String,
    mut parse: impl FnMut(&mut Lexer<'_>) -> ParseResult<T>,
) -> Result<T, PdfError> {
    let file_len = src.len();
    for window in WINDOWS {
        let buf = src.read_at(offset, window)?;
        let complete = offset + buf.len() as u64 >= file_len;
        let mut lexer = Lexer::new(buf, offset, complete);
        let result = parse(&mut lexer);
        let spent = match result {
            Err(ParseError::Eof) => buf.len() as u64,
            _ => lexer.offset() - offset,
        };
        src.budget().charge(spent)?;
        match result {
            Err(ParseError::Eof) if !complete => continue,
            Err(e) => return Err(PdfError::Malformed(format!("{}: {e}", context()))),
            Ok(value) => return Ok(value),
        }
    }
    Err(PdfError::Malformed(format!(
        "{}: larger than {} MB",
        context(),
        WINDOWS[WINDOWS.len() - 1] >> 20
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn reader_serves_the_same_bytes_as_a_slice() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let mut cursor = Cursor::new(data.clone());
        let mut reader = Reader::new(&mut cursor).expect("seekable");
        let mut bytes = Bytes::new(&data);
        for (offset, len) in [
            (0, 10),
            (49_990, 100),
            (20_000, 9000),
            (5, 8192),
            (60_000, 5),
        ] {
            let a = reader.read_at(offset, len).expect("reads").to_vec();
            let b = bytes.read_at(offset, len).expect("reads").to_vec();
            assert_eq!(a, b, "offset {offset} len {len}");
        }
    }

    #[test]
    fn parse_at_grows_the_window() {
        let mut data = b"[".to_vec();
        data.extend(std::iter::repeat_n(b"1 ".as_slice(), 10_000).flatten());
        data.extend_from_slice(b"] endobj");
        let parsed = parse_at(&mut Bytes::new(&data), 0, &|| "array".into(), |lx| {
            lx.object()
        });
        match parsed {
            Ok(crate::pades::object::Object::Array(items)) => assert_eq!(items.len(), 10_000),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn work_budget_runs_out() {
        let mut src = Bytes::new(b"<< /A 1 >>");
        src.budget().work = 15;
        let mut parse = || parse_at(&mut src, 0, &|| "dict".into(), |lx| lx.object());
        assert!(parse().is_ok());
        assert!(matches!(parse(), Err(PdfError::Malformed(_))));
    }
}
