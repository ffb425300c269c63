//! The visible appearance of a signature widget: a form XObject (ISO
//! 32000-1 §8.10) used as the widget's normal appearance (/AP /N,
//! §12.5.5), drawing a light box and a few lines of Helvetica.
//!
//! The text is set in an embedded subset of a free font (`font`), so any
//! name shows; without that font, in Helvetica, one of the standard 14
//! fonts (§9.6.2.2), encoded in WinAnsiEncoding (Annex D; characters
//! outside it print as `?`). The page's /Rotate (§7.7.3.3) is undone by
//! the form's /Matrix, so the text reads upright on screen.

use std::io::Write as _;

use super::font::Shaped;
use super::object::{write_string, Dictionary, ObjRef, Object, PdfString};
use super::Appearance;

/// Text larger than this looks shouted in a signature box.
const MAX_FONT_SIZE: f32 = 12.0;
/// Inner margin between the box and the text, in points.
const PADDING: f32 = 3.0;
/// Baseline-to-baseline distance as a multiple of the font size.
const LEADING: f32 = 1.2;
/// Resource name of the font in the XObject's /Resources.
const FONT_NAME: &str = "Helv";

/// The font dictionary for the standard Helvetica (§9.6.2.2).
pub(crate) fn helvetica() -> Dictionary {
    let mut font = Dictionary::new();
    font.insert(b"Type", Object::name(b"Font"));
    font.insert(b"Subtype", Object::name(b"Type1"));
    font.insert(b"BaseFont", Object::name(b"Helvetica"));
    font.insert(b"Encoding", Object::name(b"WinAnsiEncoding"));
    font
}

/// The form XObject's dictionary (without /Length) and content stream:
/// text in `shaped` (glyph ids of the embedded subset) or, without it, in
/// Helvetica; turned by `rotate` degrees (the page's /Rotate).
pub(crate) fn form_xobject(
    appearance: &Appearance,
    font: ObjRef,
    shaped: Option<&Shaped>,
    rotate: i64,
) -> (Dictionary, Vec<u8>) {
    let [_, _, mut width, mut height] = appearance.rect;
    if rotate % 180 != 0 {
        (width, height) = (height, width);
    }
    let mut fonts = Dictionary::new();
    fonts.insert(FONT_NAME.as_bytes(), Object::Reference(font));
    let mut resources = Dictionary::new();
    resources.insert(b"Font", Object::Dictionary(fonts));
    resources.insert(
        b"ProcSet",
        Object::Array(vec![Object::name(b"PDF"), Object::name(b"Text")]),
    );
    let mut dict = Dictionary::new();
    dict.insert(b"Type", Object::name(b"XObject"));
    dict.insert(b"Subtype", Object::name(b"Form"));
    let bbox = [0.0, 0.0, width, height];
    dict.insert(
        b"BBox",
        Object::Array(bbox.iter().map(|&v| Object::Real(round(v))).collect()),
    );
    dict.insert(b"Resources", Object::Dictionary(resources));
    // §12.5.5: the bounding box is transformed by /Matrix and fitted to
    // /Rect; a counter-clockwise turn by /Rotate cancels the page's turn.
    if rotate != 0 {
        let (sin, cos) = match rotate {
            90 => (1, 0),
            180 => (0, -1),
            _ => (-1, 0),
        };
        let matrix = [cos, sin, -sin, cos, 0, 0];
        dict.insert(
            b"Matrix",
            Object::Array(matrix.map(Object::Integer).to_vec()),
        );
    }
    let lines: Vec<(Vec<u8>, u32)> = match shaped {
        Some(s) => s.lines.clone(),
        None => appearance
            .lines
            .iter()
            .map(|l| {
                let encoded = win_ansi(l);
                let width = text_width(&encoded);
                (encoded, width)
            })
            .collect(),
    };
    (dict, content(&lines, shaped.is_some(), width, height))
}

/// Rounds to 1/1000 point: enough for layout, short in the file.
pub(crate) fn round(v: f32) -> f64 {
    (f64::from(v) * 1000.0).round() / 1000.0
}

/// Encoded lines (with their widths in 1/1000 em) in a light box; `hex`
/// writes them as hex strings (2-byte glyph ids of the embedded font).
fn content(lines: &[(Vec<u8>, u32)], hex: bool, width: f32, height: f32) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        "q\n0.94 0.95 0.97 rg 0.55 0.6 0.7 RG 0.5 w\n0.25 0.25 {} {} re B\nQ\n",
        num(width - 0.5),
        num(height - 0.5)
    );
    if lines.is_empty() {
        return out;
    }
    let size = font_size(lines, width, height);
    let leading = size * LEADING;
    let block = leading * lines.len() as f32;
    // Centre the block vertically; the first baseline sits one ascent
    // (about 0.95 of the size with the leading's share) below its top.
    let top = (height + block) / 2.0;
    let _ = write!(
        out,
        "BT\n0.1 0.1 0.15 rg\n/{FONT_NAME} {} Tf\n{} TL\n{} {} Td\n",
        num(size),
        num(leading),
        num(PADDING),
        num(top - leading + 0.25 * size)
    );
    for (line, _) in lines {
        let string = PdfString {
            bytes: line.clone(),
            hex,
        };
        write_string(&mut out, &string);
        out.extend_from_slice(b" Tj T*\n");
    }
    out.extend_from_slice(b"ET\n");
    out
}

/// The largest size up to [`MAX_FONT_SIZE`] at which every line fits.
fn font_size(lines: &[(Vec<u8>, u32)], width: f32, height: f32) -> f32 {
    let by_height = (height - 2.0 * PADDING).max(1.0) / (lines.len() as f32 * LEADING);
    let widest = lines.iter().map(|l| l.1).max().unwrap_or(0);
    let by_width = if widest == 0 {
        MAX_FONT_SIZE
    } else {
        (width - 2.0 * PADDING).max(1.0) * 1000.0 / widest as f32
    };
    MAX_FONT_SIZE.min(by_height).min(by_width).max(0.5)
}

/// A number for the content stream: at most three decimals.
fn num(v: f32) -> String {
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Encodes `text` in WinAnsiEncoding (ISO 32000-1 Annex D.2).
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars().map(win_ansi_byte).collect()
}

fn win_ansi_byte(c: char) -> u8 {
    let code = c as u32;
    match c {
        ' '..='~' => code as u8,
        '\u{A0}'..='\u{FF}' => code as u8,
        '\t' => b' ',
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        _ => b'?',
    }
}

/// Width in 1/1000 em of WinAnsi-encoded text in Helvetica (Adobe's AFM
/// metrics for codes 32..126; other codes are close to 556).
fn text_width(text: &[u8]) -> u32 {
    const ASCII: [u16; 95] = [
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278,
        278, // ' '../
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584,
        556, // 0..?
        1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722,
        778, // @..O
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
        556, // P.._
        333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556,
        556, // `..o
        556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
    ];
    text.iter()
        .map(|&b| match b {
            32..=126 => u32::from(ASCII[usize::from(b - 32)]),
            _ => 556,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn appearance(lines: &[&str], w: f32, h: f32) -> Appearance {
        Appearance {
            page: 1,
            rect: [100.0, 100.0, w, h],
            lines: lines.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn text_fits_the_box() {
        let text = win_ansi("Digitally signed by Someone With A Long Name");
        let lines = [(text.clone(), text_width(&text))];
        let size = font_size(&lines, 120.0, 40.0);
        let width = text_width(&text) as f32 * size / 1000.0;
        assert!(
            width <= 120.0 - 2.0 * PADDING,
            "width {width} at size {size}"
        );
        assert!(size < MAX_FONT_SIZE);
    }

    #[test]
    fn content_escapes_text_and_encodes_win_ansi() {
        let (dict, content) = form_xobject(
            &appearance(&["A (b) \\ Søren €"], 200.0, 50.0),
            ObjRef::new(9, 0),
            None,
            0,
        );
        let text = String::from_utf8_lossy(&content);
        assert!(text.contains(r"(A \(b\) \\ S"), "{text}");
        assert!(content.windows(2).any(|w| w == [0xF8, b'r']), "ø as 0xF8");
        assert!(content.contains(&0x80), "€ as 0x80");
        assert_eq!(dict.name(b"Subtype"), Some(&b"Form"[..]));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(12.0), "12");
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(-0.0001), "0");
        assert_eq!(round(0.1), 0.1);
    }
}
