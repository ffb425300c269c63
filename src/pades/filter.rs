//! Stream filters needed to read cross-reference streams and object
//! streams: FlateDecode with the PNG and TIFF predictors (ISO 32000-1
//! §7.4.4). Nothing else is decoded: page content is never read.

use std::io::Read as _;

use super::object::{Dictionary, Object};
use super::PdfError;

/// Decoded size limit for one stream. Cross-reference and object streams of
/// real files stay well below it; the bound stops a deflate bomb.
pub(crate) const MAX_DECODED: usize = 32 << 20;

/// Decodes `raw` per the stream dictionary's /Filter and /DecodeParms.
pub(crate) fn decode(
    dict: &Dictionary,
    raw: &[u8],
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>, PdfError> {
    let filters: Vec<&Object> = match dict.get(b"Filter") {
        None | Some(Object::Null) => Vec::new(),
        Some(Object::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    };
    let parms: Vec<Option<&Dictionary>> = match dict.get(b"DecodeParms") {
        Some(Object::Array(items)) => items.iter().map(Object::as_dict).collect(),
        Some(Object::Dictionary(d)) => vec![Some(d)],
        _ => Vec::new(),
    };
    let mut data = raw.to_vec();
    for (i, filter) in filters.iter().enumerate() {
        let name = match filter {
            Object::Name(n) => &n.0[..],
            _ => {
                return Err(PdfError::Malformed(format!(
                    "{}: /Filter is not a name",
                    what()
                )))
            }
        };
        if name != b"FlateDecode" {
            return Err(PdfError::Unsupported(format!(
                "{} uses the /{} filter; only /FlateDecode is supported there",
                what(),
                String::from_utf8_lossy(name)
            )));
        }
        data = inflate(&data, what)?;
        if let Some(Some(p)) = parms.get(i) {
            data = unpredict(data, p, what)?;
        }
    }
    Ok(data)
}

/// Inflates `raw`. A stream cut short (no final block or no Adler-32, as
/// some writers leave a sync flush) yields what decoded before the end,
/// as pdf.js, poppler and qpdf read it; data that is not zlib at all is
/// refused.
fn inflate(raw: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>, PdfError> {
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_DECODED));
    let mut decoder = flate2::read::ZlibDecoder::new(raw).take(MAX_DECODED as u64 + 1);
    let mut chunk = [0u8; 16 << 10];
    loop {
        match decoder.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(_) if !out.is_empty() => break,
            Err(e) => {
                return Err(PdfError::Malformed(format!(
                    "{}: cannot decompress (FlateDecode): {e}",
                    what()
                )))
            }
        }
    }
    if out.len() > MAX_DECODED {
        return Err(PdfError::Malformed(format!(
            "{}: decompresses to more than {} MB",
            what(),
            MAX_DECODED >> 20
        )));
    }
    Ok(out)
}

/// Reverses a /Predictor (§7.4.4.4, Table 8): 1 none, 2 TIFF, >= 10 PNG.
fn unpredict(
    data: Vec<u8>,
    parms: &Dictionary,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>, PdfError> {
    let int = |key: &[u8], default: i64| parms.integer(key).unwrap_or(default);
    let predictor = int(b"Predictor", 1);
    if predictor == 1 {
        return Ok(data);
    }
    let (colors, bpc, columns) = (
        int(b"Colors", 1),
        int(b"BitsPerComponent", 8),
        int(b"Columns", 1),
    );
    let sane = (1..=32).contains(&colors)
        && [1, 2, 4, 8, 16].contains(&bpc)
        && (1..=1 << 24).contains(&columns);
    if !sane {
        return Err(PdfError::Malformed(format!(
            "{}: invalid /DecodeParms",
            what()
        )));
    }
    let bits_per_pixel = (colors * bpc) as usize;
    let row = (bits_per_pixel * columns as usize).div_ceil(8);
    let bpp = bits_per_pixel.div_ceil(8);
    match predictor {
        2 if bpc == 8 => Ok(tiff_unpredict(data, row, bpp)),
        10..=15 => png_unpredict(&data, row, bpp, what),
        _ => Err(PdfError::Unsupported(format!(
            "{} uses /Predictor {predictor} with {bpc} bits per component",
            what()
        ))),
    }
}

fn tiff_unpredict(mut data: Vec<u8>, row: usize, bpp: usize) -> Vec<u8> {
    for line in data.chunks_mut(row) {
        for i in bpp..line.len() {
            line[i] = line[i].wrapping_add(line[i - bpp]);
        }
    }
    data
}

/// PNG filters (RFC 2083 §6): each row starts with its filter type byte.
/// A trailing partial row is dropped.
fn png_unpredict(
    data: &[u8],
    row: usize,
    bpp: usize,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>, PdfError> {
    let rows = data.len() / (row + 1);
    let mut out = vec![0u8; rows * row];
    for r in 0..rows {
        let line = &data[r * (row + 1)..(r + 1) * (row + 1)];
        let (done, rest) = out.split_at_mut(r * row);
        let prior = if r == 0 {
            None
        } else {
            Some(&done[(r - 1) * row..])
        };
        let cur = &mut rest[..row];
        let up = |i: usize| prior.map_or(0, |p| p[i]);
        for i in 0..row {
            let left = if i >= bpp { cur[i - bpp] } else { 0 };
            let upper_left = if i >= bpp { up(i - bpp) } else { 0 };
            let x = line[1 + i];
            cur[i] = match line[0] {
                0 => x,
                1 => x.wrapping_add(left),
                2 => x.wrapping_add(up(i)),
                3 => x.wrapping_add(((u16::from(left) + u16::from(up(i))) / 2) as u8),
                4 => x.wrapping_add(paeth(left, up(i), upper_left)),
                _ => {
                    return Err(PdfError::Malformed(format!(
                        "{}: invalid PNG predictor type {} in row {r}",
                        what(),
                        line[0]
                    )))
                }
            };
        }
    }
    Ok(out)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pades::lexer::Lexer;
    use std::io::Write as _;

    fn dict(src: &str) -> Dictionary {
        match Lexer::new(src.as_bytes(), 0, true).object() {
            Ok(Object::Dictionary(d)) => d,
            other => panic!("not a dictionary: {other:?}"),
        }
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("in memory");
        enc.finish().expect("in memory")
    }

    #[test]
    fn a_sync_flushed_stream_without_final_block_decodes() {
        let data = b"1 0 2 17 << /Type /Catalog >> << /A 1 >>".repeat(20);
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&data).expect("in memory");
        enc.flush().expect("sync flush");
        // No final block, no Adler-32: what some Adobe writers leave.
        let cut = enc.get_ref().clone();
        let decoded = decode(&dict("<< /Filter /FlateDecode >>"), &cut, &|| "t".into());
        assert_eq!(decoded.expect("decodes"), data);
        let garbage = decode(&dict("<< /Filter /FlateDecode >>"), b"not zlib", &|| {
            "t".into()
        });
        assert!(matches!(garbage, Err(PdfError::Malformed(_))));
    }

    #[test]
    fn png_up_predictor_round_trip() {
        // Two rows of 3 columns, filter 2 (Up): second row stores differences.
        let encoded = [2, 1, 2, 3, 2, 1, 1, 1];
        let d = dict("<< /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 3 >> >>");
        let out = decode(&d, &deflate(&encoded), &|| "test".into()).expect("decodes");
        assert_eq!(out, [1, 2, 3, 2, 3, 4]);
    }

    #[test]
    fn png_sub_average_and_paeth() {
        let encoded = [1, 5, 1, 1, 3, 1, 1, 1, 4, 0, 0, 0];
        let d = dict("<< /Filter [/FlateDecode] /DecodeParms [<< /Predictor 15 /Columns 3 >>] >>");
        let out = decode(&d, &deflate(&encoded), &|| "test".into()).expect("decodes");
        // row 0: 5 6 7; row 1 (average): 1+5/2=3, 1+(3+6)/2=5, 1+(5+7)/2=7;
        // row 2 (paeth, zero differences): copies the best predictor.
        assert_eq!(out[..6], [5, 6, 7, 3, 5, 7]);
        assert_eq!(out[6..], [3, 5, 7]);
    }

    #[test]
    fn unknown_filter_is_unsupported_and_garbage_is_malformed() {
        let d = dict("<< /Filter /LZWDecode >>");
        assert!(matches!(
            decode(&d, b"x", &|| "t".into()),
            Err(PdfError::Unsupported(_))
        ));
        let d = dict("<< /Filter /FlateDecode >>");
        assert!(matches!(
            decode(&d, b"garbage", &|| "t".into()),
            Err(PdfError::Malformed(_))
        ));
    }

    #[test]
    fn deflate_bombs_are_cut_off() {
        let bomb = deflate(&vec![0u8; MAX_DECODED + 10]);
        let d = dict("<< /Filter /FlateDecode >>");
        assert!(matches!(
            decode(&d, &bomb, &|| "t".into()),
            Err(PdfError::Malformed(_))
        ));
    }
}
