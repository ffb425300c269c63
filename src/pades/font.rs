//! An embedded TrueType subset for the appearance text, so any name shows
//! (ISO 32000-1 §9.7: a Type0 font with /Encoding /Identity-H over a
//! CIDFontType2 whose CIDs are the subset's glyph ids, §9.7.4.2 and Table
//! 117; the glyphs in /FontFile2, §9.9; a /ToUnicode CMap, §9.10.3, so
//! the text can be copied and searched).
//!
//! The font is read at run time from `QSIGN_APPEARANCE_FONT`, by default
//! DejaVu Sans from Debian's `fonts-dejavu-core` (Latin, Latin Extended,
//! Greek, Cyrillic; Bitstream Vera licence, which allows embedding).
//! Without it the appearance falls back to Helvetica in WinAnsi.

use std::io::Write as _;
use std::sync::{Arc, OnceLock};

use super::object::{Dictionary, ObjRef, Object, PdfString};

/// Where Debian's fonts-dejavu-core puts DejaVu Sans.
const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Fonts larger than this are not read (a wrong path to something huge).
const MAX_FONT_BYTES: u64 = 32 << 20;

/// The font file, read once per process; None when missing or unusable.
fn font_file() -> Option<Arc<Vec<u8>>> {
    static FONT: OnceLock<Option<Arc<Vec<u8>>>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = std::env::var_os("QSIGN_APPEARANCE_FONT")
            .map_or_else(|| DEFAULT_FONT.into(), std::path::PathBuf::from);
        let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_FONT_BYTES);
        let data = small.then(|| std::fs::read(&path).ok()).flatten();
        match data.filter(|d| ttf_parser::Face::parse(d, 0).is_ok()) {
            Some(d) => Some(Arc::new(d)),
            None => {
                tracing::warn!(path = %path.display(), "no usable appearance font; visible signatures fall back to Helvetica (WinAnsi)");
                None
            }
        }
    })
    .clone()
}

/// The lines of text as glyph ids of the subset, with their widths.
pub(crate) struct Shaped {
    /// Per line: the 2-byte codes (new glyph ids) and the width in 1/1000 em.
    pub lines: Vec<(Vec<u8>, u32)>,
    /// The font objects, written by [`Shaped::objects`].
    subset: Vec<u8>,
    /// (new glyph id, char, width) of every glyph used.
    glyphs: Vec<(u16, char, u32)>,
    metrics: Metrics,
}

struct Metrics {
    ascent: i64,
    descent: i64,
    cap_height: i64,
    bbox: [i64; 4],
}

/// Shapes `lines` one glyph per char (no kerning or ligatures: names and
/// dates need none) with the configured font; None without a font.
pub(crate) fn shape(lines: &[String]) -> Option<Shaped> {
    let data = font_file()?;
    let face = ttf_parser::Face::parse(&data, 0).ok()?;
    let per_em = f64::from(face.units_per_em().max(1));
    let scale = |v: f64| (v * 1000.0 / per_em).round() as i64;
    let mut remapper = subsetter::GlyphRemapper::new();
    remapper.remap(0);
    let mut glyphs = Vec::new();
    let mut shaped = Vec::new();
    for line in lines {
        let (mut codes, mut width) = (Vec::new(), 0u32);
        for c in line.chars() {
            let old = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
            let new = remapper.remap(old.0);
            let advance = face.glyph_hor_advance(old).unwrap_or(0);
            let w = scale(f64::from(advance)).max(0) as u32;
            codes.extend_from_slice(&new.to_be_bytes());
            width += w;
            if !glyphs.iter().any(|(g, _, _)| *g == new) {
                glyphs.push((new, c, w));
            }
        }
        shaped.push((codes, width));
    }
    let subset = subsetter::subset(&data, 0, &remapper).ok()?;
    let b = face.global_bounding_box();
    let metrics = Metrics {
        ascent: scale(f64::from(face.ascender())),
        descent: scale(f64::from(face.descender())),
        cap_height: scale(f64::from(face.capital_height().unwrap_or(face.ascender()))),
        bbox: [b.x_min, b.y_min, b.x_max, b.y_max].map(|v| scale(f64::from(v))),
    };
    Some(Shaped {
        lines: shaped,
        subset,
        glyphs,
        metrics,
    })
}

impl Shaped {
    /// The Type0 font at `font` and its parts at `parts` (CIDFont,
    /// descriptor, font file, ToUnicode): dictionaries and streams.
    pub fn objects(
        &self,
        font: ObjRef,
        parts: [ObjRef; 4],
    ) -> Vec<(ObjRef, Object, Option<Vec<u8>>)> {
        let [cid, descriptor, file, to_unicode] = parts;
        let base = format!("{}+DejaVuSans", subset_tag(&self.subset));
        let mut type0 = Dictionary::new();
        type0.insert(b"Type", Object::name(b"Font"));
        type0.insert(b"Subtype", Object::name(b"Type0"));
        type0.insert(b"BaseFont", Object::name(base.as_bytes()));
        type0.insert(b"Encoding", Object::name(b"Identity-H"));
        type0.insert(
            b"DescendantFonts",
            Object::Array(vec![Object::Reference(cid)]),
        );
        type0.insert(b"ToUnicode", Object::Reference(to_unicode));

        let mut info = Dictionary::new();
        info.insert(b"Registry", Object::String(PdfString::literal("Adobe")));
        info.insert(b"Ordering", Object::String(PdfString::literal("Identity")));
        info.insert(b"Supplement", Object::Integer(0));
        let mut cid_font = Dictionary::new();
        cid_font.insert(b"Type", Object::name(b"Font"));
        cid_font.insert(b"Subtype", Object::name(b"CIDFontType2"));
        cid_font.insert(b"BaseFont", Object::name(base.as_bytes()));
        cid_font.insert(b"CIDSystemInfo", Object::Dictionary(info));
        cid_font.insert(b"FontDescriptor", Object::Reference(descriptor));
        cid_font.insert(b"CIDToGIDMap", Object::name(b"Identity"));
        cid_font.insert(b"W", self.widths());

        let m = &self.metrics;
        let mut desc = Dictionary::new();
        desc.insert(b"Type", Object::name(b"FontDescriptor"));
        desc.insert(b"FontName", Object::name(base.as_bytes()));
        // §9.8.2, Table 123: symbolic (bit 3), as for any CID font.
        desc.insert(b"Flags", Object::Integer(4));
        let bbox = m.bbox.iter().map(|&v| Object::Integer(v)).collect();
        desc.insert(b"FontBBox", Object::Array(bbox));
        desc.insert(b"ItalicAngle", Object::Integer(0));
        desc.insert(b"Ascent", Object::Integer(m.ascent));
        desc.insert(b"Descent", Object::Integer(m.descent));
        desc.insert(b"CapHeight", Object::Integer(m.cap_height));
        desc.insert(b"StemV", Object::Integer(80));
        desc.insert(b"FontFile2", Object::Reference(file));

        let (packed, filter) = deflate(&self.subset);
        let mut file_dict = Dictionary::new();
        file_dict.insert(b"Length1", Object::Integer(self.subset.len() as i64));
        if let Some(f) = filter {
            file_dict.insert(b"Filter", Object::name(f));
        }
        vec![
            (font, Object::Dictionary(type0), None),
            (cid, Object::Dictionary(cid_font), None),
            (descriptor, Object::Dictionary(desc), None),
            (file, Object::Dictionary(file_dict), Some(packed)),
            (
                to_unicode,
                Object::Dictionary(Dictionary::new()),
                Some(self.cmap()),
            ),
        ]
    }

    /// §9.7.4.3: `[gid [width]]` for every glyph used.
    fn widths(&self) -> Object {
        let mut sorted = self.glyphs.clone();
        sorted.sort_by_key(|g| g.0);
        let mut w = Vec::new();
        for (gid, _, width) in sorted {
            w.push(Object::Integer(i64::from(gid)));
            w.push(Object::Array(vec![Object::Integer(i64::from(width))]));
        }
        Object::Array(w)
    }

    /// A ToUnicode CMap (§9.10.3) from glyph ids to UTF-16BE.
    fn cmap(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(
            b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        for chunk in self.glyphs.chunks(100) {
            let _ = writeln!(out, "{} beginbfchar", chunk.len());
            for (gid, c, _) in chunk {
                let utf16: String = c
                    .encode_utf16(&mut [0; 2])
                    .iter()
                    .map(|u| format!("{u:04X}"))
                    .collect();
                let _ = writeln!(out, "<{gid:04X}> <{utf16}>");
            }
            out.extend_from_slice(b"endbfchar\n");
        }
        out.extend_from_slice(
            b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n",
        );
        out
    }
}

/// §9.6.4: a subset's name starts with six upper-case letters and `+`;
/// taken from the subset's bytes so that equal subsets share it.
fn subset_tag(subset: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(subset)
        .iter()
        .take(6)
        .map(|b| char::from(b'A' + b % 26))
        .collect()
}

/// FlateDecode-compressed `data` (§7.4.4), or `data` as it is.
fn deflate(data: &[u8]) -> (Vec<u8>, Option<&'static [u8]>) {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    match encoder.write_all(data).and_then(|()| encoder.finish()) {
        Ok(packed) => (packed, Some(b"FlateDecode")),
        Err(_) => (data.to_vec(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_latin_extended_and_greek_when_the_font_is_there() {
        let Some(shaped) = shape(&["Łukasz Żółć-Ørsted Ἀθηνᾶ".to_owned()]) else {
            eprintln!("note: no appearance font installed; skipping");
            return;
        };
        let (codes, width) = &shaped.lines[0];
        assert_eq!(codes.len(), 2 * "Łukasz Żółć-Ørsted Ἀθηνᾶ".chars().count());
        assert!(*width > 5000, "{width}");
        assert!(
            !codes.chunks(2).any(|c| c == [0, 0]),
            "every char has a glyph"
        );
        let cmap = String::from_utf8_lossy(&shaped.cmap()).into_owned();
        assert!(cmap.contains("<1F08>"), "Ἀ in the ToUnicode map: {cmap}");
        assert!(shaped.subset.len() < 60_000, "{}", shaped.subset.len());
    }
}
