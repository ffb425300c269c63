//! Shapes the corpus lacks, written by a small generator: deep page trees,
//! many form fields, a hybrid-reference file, CRLF line ends, junk after
//! %%EOF, a direct AcroForm, certified documents.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::Command;

use super::support::*;
use crate::pades::document::Document;
use crate::pades::object::{ObjRef, Object};
use crate::pades::source::Bytes;
use crate::pades::{prepare_bytes, PdfError};

/// A PDF writer for test shapes: objects in number order, a classic
/// cross-reference table.
pub struct Builder {
    objects: Vec<Vec<u8>>,
    eol: &'static str,
}

impl Builder {
    pub fn new(eol: &'static str) -> Self {
        Self {
            objects: Vec::new(),
            eol,
        }
    }

    /// A new object number whose body comes later.
    pub fn reserve(&mut self) -> u32 {
        self.objects.push(Vec::new());
        self.objects.len() as u32
    }

    pub fn set(&mut self, num: u32, body: impl Into<Vec<u8>>) {
        self.objects[num as usize - 1] = body.into();
    }

    pub fn add(&mut self, body: impl Into<Vec<u8>>) -> u32 {
        let num = self.reserve();
        self.set(num, body);
        num
    }

    pub fn stream(&mut self, data: &[u8]) -> u32 {
        let mut body =
            format!("<< /Length {} >>{}stream{}", data.len(), self.eol, self.eol).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(format!("{}endstream", self.eol).as_bytes());
        self.add(body)
    }

    pub fn finish(&self, root: u32) -> Vec<u8> {
        let eol = self.eol;
        let mut out = format!("%PDF-1.7{eol}%\u{e2}\u{e3}{eol}").into_bytes();
        let mut offsets = Vec::new();
        for (i, body) in self.objects.iter().enumerate() {
            offsets.push(out.len());
            write!(out, "{} 0 obj{eol}", i + 1).expect("vec");
            out.extend_from_slice(body);
            write!(out, "{eol}endobj{eol}").expect("vec");
        }
        let xref = out.len();
        let entry_eol = if eol == "\r\n" { "\r\n" } else { " \n" };
        write!(
            out,
            "xref{eol}0 {}{eol}0000000000 65535 f{entry_eol}",
            offsets.len() + 1
        )
        .expect("vec");
        for offset in offsets {
            write!(out, "{offset:010} 00000 n{entry_eol}").expect("vec");
        }
        write!(
            out,
            "trailer{eol}<< /Size {} /Root {root} 0 R /ID [<0123456789ABCDEF0123456789ABCDEF><0123456789ABCDEF0123456789ABCDEF>] >>{eol}startxref{eol}{xref}{eol}%%EOF{eol}",
            self.objects.len() + 1
        )
        .expect("vec");
        out
    }
}

/// A document of `pages` pages under a page tree of the given fan-out.
pub fn many_pages(pages: usize, fanout: usize) -> Vec<u8> {
    let mut b = Builder::new("\n");
    let catalog = b.reserve();
    let font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
    let mut level: Vec<(u32, usize)> = (0..pages).map(|_| (b.reserve(), 1)).collect();
    let leaves: Vec<u32> = level.iter().map(|(n, _)| *n).collect();
    let mut parent = HashMap::new();
    while level.len() > 1 {
        let mut next = Vec::new();
        for group in level.chunks(fanout) {
            let node = b.reserve();
            let kids: Vec<String> = group.iter().map(|(n, _)| format!("{n} 0 R")).collect();
            let count: usize = group.iter().map(|(_, c)| c).sum();
            group.iter().for_each(|(n, _)| {
                parent.insert(*n, node);
            });
            let up = "PARENT";
            b.set(
                node,
                format!(
                    "<< /Type /Pages /Kids [{}] /Count {count}{up} >>",
                    kids.join(" ")
                ),
            );
            next.push((node, count));
        }
        level = next;
    }
    let root = level[0].0;
    for (i, leaf) in leaves.iter().enumerate() {
        let content = b.stream(format!("BT /F1 24 Tf 72 700 Td (Page {}) Tj ET", i + 1).as_bytes());
        let body = format!(
            "<< /Type /Page /Parent {} 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R /Resources << /Font << /F1 {font} 0 R >> >> >>",
            parent.get(leaf).copied().unwrap_or(root)
        );
        b.set(*leaf, body);
    }
    // Fill in the /Parent of intermediate nodes now that all exist.
    for (child, node) in &parent {
        let body = String::from_utf8(b.objects[*child as usize - 1].clone()).expect("ASCII");
        b.set(
            *child,
            body.replace("PARENT", &format!(" /Parent {node} 0 R")),
        );
    }
    let root_body = String::from_utf8(b.objects[root as usize - 1].clone()).expect("ASCII");
    b.set(root, root_body.replace("PARENT", ""));
    b.set(catalog, format!("<< /Type /Catalog /Pages {root} 0 R >>"));
    b.finish(catalog)
}

/// One page with `fields` text fields; /Fields and /Annots are indirect arrays.
fn many_fields(fields: usize) -> Vec<u8> {
    let mut b = Builder::new("\n");
    let catalog = b.reserve();
    let pages = b.reserve();
    let page = b.reserve();
    let annots = b.reserve();
    let helv = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
    let refs: Vec<String> = (0..fields)
        .map(|i| {
            let (x, y) = (20 + (i % 10) * 58, 760 - (i / 10) * 24);
            let num = b.add(format!(
                "<< /FT /Tx /T (field{i}) /V (value {i}) /DA (/Helv 10 Tf 0 g) /Type /Annot /Subtype /Widget /F 4 /Rect [{x} {y} {} {}] /P {page} 0 R >>",
                x + 55,
                y + 20
            ));
            format!("{num} 0 R")
        })
        .collect();
    let list = refs.join(" ");
    b.set(annots, format!("[{list}]"));
    let field_array = b.add(format!("[{list}]"));
    let form = b.add(format!(
        "<< /Fields {field_array} 0 R /DA (/Helv 0 Tf 0 g) /DR << /Font << /Helv {helv} 0 R >> >> >>"
    ));
    b.set(
        page,
        format!(
            "<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] /Annots {annots} 0 R >>"
        ),
    );
    b.set(
        pages,
        format!("<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>"),
    );
    b.set(
        catalog,
        format!("<< /Type /Catalog /Pages {pages} 0 R /AcroForm {form} 0 R >>"),
    );
    b.finish(catalog)
}

/// A one-page document; `catalog_extra` goes into the catalog, `page_extra`
/// into the page; `extra_objects` are numbered from 4.
fn one_page(
    eol: &'static str,
    catalog_extra: &str,
    page_extra: &str,
    extra_objects: &[&str],
) -> Vec<u8> {
    let mut b = Builder::new(eol);
    let catalog = b.reserve();
    let pages = b.reserve();
    let page = b.reserve();
    for body in extra_objects {
        b.add(*body);
    }
    let content = b.stream(b"BT /F1 18 Tf 72 700 Td (Hello) Tj ET");
    b.set(page, format!("<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R {page_extra} >>"));
    b.set(
        pages,
        format!("<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>"),
    );
    b.set(
        catalog,
        format!("<< /Type /Catalog /Pages {pages} 0 R {catalog_extra} >>"),
    );
    b.finish(catalog)
}

/// Opens `signed` with our reader and checks that page `index` lists a
/// signature widget whose /P is that page.
fn assert_widget_on_page(signed: &[u8], index: u32) {
    let mut doc = Document::open(Bytes::new(signed)).expect("signed file opens");
    let (_, catalog) = doc.catalog().expect("catalog");
    let (page_ref, page) = doc.page(&catalog, index).expect("page");
    let annots = doc
        .resolve(page.get(b"Annots").cloned().expect("/Annots"))
        .expect("annots");
    let Object::Array(annots) = annots else {
        panic!("/Annots not an array")
    };
    let Some(Object::Reference(widget)) = annots.last() else {
        panic!("no widget")
    };
    let widget = doc.dictionary(*widget, "widget").expect("widget");
    assert_eq!(widget.name(b"FT"), Some(&b"Sig"[..]));
    assert_eq!(widget.reference(b"P"), Some(page_ref));
}

#[test]
fn page_300_of_a_deep_page_tree() {
    let pdf = many_pages(500, 4);
    // Sanity: our reader finds every 50th page by /Count.
    let mut doc = Document::open(Bytes::new(&pdf)).expect("opens");
    let (_, catalog) = doc.catalog().expect("catalog");
    for i in (0..500).step_by(50) {
        doc.page(&catalog, i).expect("page");
    }
    let req = request(Some(visible(300)));
    let err = prepare_bytes(&pdf, &request(Some(visible(501)))).expect_err("no page 501");
    assert!(matches!(err, PdfError::InvalidRequest(_)), "{err}");
    if !tools(&[SIGNING_TOOLS, &["pdftoppm"]].concat()) {
        let prepared = prepare_bytes(&pdf, &req).expect("prepares");
        let signed = [&pdf[..], prepared.update()].concat();
        assert_widget_on_page(&signed, 299);
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let path = sign_and_check(&pdf, &req, work.path(), "pages500");
    assert_widget_on_page(&std::fs::read(&path).expect("read"), 299);
    assert_renders(&path, 300, work.path());

    // The same document rewritten by qpdf: object streams, then linearized.
    for (flag, name) in [
        ("--object-streams=generate", "pages500-objstm"),
        ("--linearize", "pages500-lin"),
    ] {
        let qpdf_out = work.path().join(format!("{name}.in.pdf"));
        let status = Command::new("qpdf")
            .arg(flag)
            .arg(work.path().join("pages500.in.pdf"))
            .arg(&qpdf_out)
            .status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "qpdf {flag}");
        let variant = std::fs::read(&qpdf_out).expect("read qpdf output");
        let signed = sign_and_check(&variant, &req, work.path(), name);
        assert_widget_on_page(&std::fs::read(signed).expect("read"), 299);
    }
}

#[test]
fn many_form_fields_survive() {
    let pdf = many_fields(300);
    if !tools(SIGNING_TOOLS) {
        prepare_bytes(&pdf, &request(None)).expect("prepares");
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let input = work.path().join("fields.pdf");
    std::fs::write(&input, &pdf).expect("write");
    let before = qpdf_field_names(&input);
    assert_eq!(before.len(), 300);
    let signed = sign_and_check(&pdf, &request(Some(visible(1))), work.path(), "fields");
    let after = qpdf_field_names(&signed);
    assert_eq!(after.len(), 301);
    assert!(before.iter().all(|f| after.contains(f)));
    assert_widget_on_page(&std::fs::read(&signed).expect("read"), 0);
}

#[test]
fn direct_acroform_with_existing_signature_field_name() {
    let pdf = one_page(
        "\n",
        "/AcroForm << /Fields [4 0 R] /DA (/Helv 0 Tf 0 g) /NeedAppearances true >>",
        "/Annots [4 0 R]",
        &["<< /FT /Tx /T (Signature1) /V (taken) /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /P 3 0 R >>"],
    );
    let prepared = prepare_bytes(&pdf, &request(None)).expect("prepares");
    assert_eq!(prepared.field_name(), "Signature2");
    let mut req = request(None);
    req.field_name = Some("Signature1".into());
    assert!(matches!(
        prepare_bytes(&pdf, &req),
        Err(PdfError::InvalidRequest(_))
    ));
    req.field_name = Some("a.b".into());
    assert!(matches!(
        prepare_bytes(&pdf, &req),
        Err(PdfError::InvalidRequest(_))
    ));
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let signed = sign_and_check(&pdf, &request(None), work.path(), "direct-acroform");
    let names = qpdf_field_names(&signed);
    assert_eq!(names, ["Signature1", "Signature2"]);
    // The direct AcroForm keeps its other entries.
    let text = std::fs::read(&signed).expect("read");
    let update = &text[pdf.len()..];
    let needle = b"/NeedAppearances true";
    assert!(update.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn crlf_junk_after_eof_and_no_final_newline() {
    let crlf = one_page("\r\n", "", "", &[]);
    let mut junk = one_page("\n", "", "", &[]);
    junk.extend_from_slice(b"\0\0 trailing junk after %%EOF \x01\x02");
    let mut bare = one_page("\n", "", "", &[]);
    bare.pop();
    for (name, pdf) in [("crlf", &crlf), ("junk", &junk), ("bare", &bare)] {
        let prepared = prepare_bytes(pdf, &request(None)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let starts_with_eol = prepared.update()[0] == b'\n';
        assert_eq!(starts_with_eol, name != "crlf", "{name}");
    }
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    for (name, pdf) in [("crlf", crlf), ("junk", junk), ("bare", bare)] {
        sign_and_check(&pdf, &request(Some(visible(1))), work.path(), name);
    }
}

fn certified(p: u32) -> Vec<u8> {
    let sig = format!(
        "<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached /ByteRange [0 0 0 0] /Contents <00> \
         /Reference [<< /Type /SigRef /TransformMethod /DocMDP /TransformParams << /Type /TransformParams /P {p} /V /1.2 >> >>] >>"
    );
    one_page("\n", "/Perms << /DocMDP 4 0 R >>", "", &[&sig])
}

#[test]
fn docmdp_no_changes_is_refused_and_form_filling_is_not() {
    let err = prepare_bytes(&certified(1), &request(None)).expect_err("P 1");
    assert!(matches!(err, PdfError::CertifiedNoChanges), "{err}");
    assert_eq!(err.kind(), crate::ErrorKind::FailedPrecondition);
    prepare_bytes(&certified(2), &request(None)).expect("P 2 allows signing");
}

/// PNG "Up" predictor rows (§7.4.4.4), as writers of xref streams use.
fn png_up(rows: &[[u8; 4]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = [0u8; 4];
    for row in rows {
        out.push(2);
        out.extend(row.iter().zip(prev).map(|(a, b)| a.wrapping_sub(b)));
        prev = *row;
    }
    out
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("vec");
    enc.finish().expect("vec")
}

/// A hybrid-reference file (§7.5.8.4): catalog, pages and page live in an
/// object stream that only the /XRefStm stream lists; `free_in_table`
/// lists them as free in the classic table too.
fn hybrid(free_in_table: bool) -> Vec<u8> {
    let mut out = b"%PDF-1.5\n%\xe2\xe3\n".to_vec();
    let content_at = out.len();
    let content = b"BT /F1 18 Tf 72 700 Td (Hybrid) Tj ET";
    write!(out, "4 0 obj\n<< /Length {} >>\nstream\n", content.len()).expect("vec");
    out.extend_from_slice(content);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
    ];
    let mut header = String::new();
    let mut body = String::new();
    for (i, o) in objs.iter().enumerate() {
        header += &format!("{} {} ", i + 1, body.len());
        body += o;
        body += "\n";
    }
    let data = deflate(format!("{header}{body}").as_bytes());
    let objstm_at = out.len();
    write!(
        out,
        "5 0 obj\n<< /Type /ObjStm /N 3 /First {} /Filter /FlateDecode /Length {} >>\nstream\n",
        header.len(),
        data.len()
    )
    .expect("vec");
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let rows = png_up(&[[2, 0, 5, 0], [2, 0, 5, 1], [2, 0, 5, 2]]);
    let xs = deflate(&rows);
    let xrefstm_at = out.len();
    write!(out, "6 0 obj\n<< /Type /XRef /Size 7 /Index [1 3] /W [1 2 1] /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 4 >> /Length {} >>\nstream\n", xs.len()).expect("vec");
    out.extend_from_slice(&xs);
    out.extend_from_slice(b"\nendstream\nendobj\n");
    let xref_at = out.len();
    if free_in_table {
        out.extend_from_slice(b"xref\n0 7\n0000000000 65535 f \n0000000000 00000 f \n0000000000 00000 f \n0000000000 00000 f \n");
    } else {
        out.extend_from_slice(b"xref\n0 1\n0000000000 65535 f \n4 3\n");
    }
    for at in [content_at, objstm_at, xrefstm_at] {
        writeln!(out, "{at:010} 00000 n ").expect("vec");
    }
    write!(
        out,
        "trailer\n<< /Size 7 /Root 1 0 R /XRefStm {xrefstm_at} >>\nstartxref\n{xref_at}\n%%EOF\n"
    )
    .expect("vec");
    out
}

#[test]
fn hybrid_reference_files() {
    for free_in_table in [false, true] {
        let pdf = hybrid(free_in_table);
        let mut doc = Document::open(Bytes::new(&pdf)).expect("opens");
        let (root, catalog) = doc.catalog().expect("catalog in the object stream");
        assert_eq!(root, ObjRef::new(1, 0));
        doc.page(&catalog, 0).expect("page in the object stream");
        prepare_bytes(&pdf, &request(None)).expect("prepares");
    }
    if !tools(SIGNING_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    sign_and_check(
        &hybrid(false),
        &request(Some(visible(1))),
        work.path(),
        "hybrid",
    );
}

/// Prints how long `prepare_bytes` takes on a ~50 KB document. Run with
/// `cargo test --release --lib pades -- --ignored --nocapture`.
#[test]
#[ignore]
fn prepare_timing_50kb() {
    let pdf = many_pages(180, 10);
    let req = request(Some(visible(1)));
    let rounds = 20_000;
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(prepare_bytes(&pdf, &req).expect("prepares"));
    }
    let per = start.elapsed() / rounds;
    println!("prepare_bytes on {} bytes: {per:?} per call", pdf.len());
}

#[test]
fn a_too_small_size_does_not_make_new_objects_shadow_old_ones() {
    let pdf = one_page("\n", "", "", &[]);
    let text = String::from_utf8_lossy(&pdf).into_owned();
    let damaged = text.replacen("/Size 5", "/Size 2", 1).into_bytes();
    assert_ne!(damaged, pdf, "the fixture has /Size 5");
    let prepared = prepare_bytes(&damaged, &request(None)).expect("prepares");
    let update = String::from_utf8_lossy(prepared.update()).into_owned();
    assert!(update.starts_with("5 0 obj"), "{}", &update[..20]);
}

/// Counts the bytes a reader hands out.
struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: std::io::Seek> std::io::Seek for CountingReader<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// A document whose first page carries a content stream of `bulk` bytes,
/// then `pages - 1` small pages.
fn bulky(bulk: usize, pages: usize) -> Vec<u8> {
    let mut b = Builder::new("\n");
    let catalog = b.reserve();
    let tree = b.reserve();
    let mut kids = Vec::new();
    for i in 0..pages {
        let data = if i == 0 {
            let mut data = b"BT /F1 12 Tf 72 700 Td (bulk) Tj ET\n%".to_vec();
            data.resize(bulk, b'x');
            data
        } else {
            b"BT ET".to_vec()
        };
        let content = b.stream(&data);
        kids.push(b.add(format!(
            "<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R >>"
        )));
    }
    let kids: Vec<String> = kids.iter().map(|k| format!("{k} 0 R")).collect();
    b.set(
        tree,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            kids.join(" ")
        ),
    );
    b.set(catalog, format!("<< /Type /Catalog /Pages {tree} 0 R >>"));
    b.finish(catalog)
}

#[test]
fn prepare_reads_only_a_small_part_of_a_large_file() {
    let pdf = bulky(20 << 20, 3);
    let mut reader = CountingReader {
        inner: std::io::Cursor::new(&pdf),
        read: 0,
    };
    let prepared =
        crate::pades::prepare(&mut reader, &request(Some(visible(2)))).expect("prepares");
    assert!(
        reader.read < 128 << 10,
        "read {} of {} bytes",
        reader.read,
        pdf.len()
    );
    assert_eq!(prepared.original_len(), pdf.len() as u64);
}

/// Signs the file named by `QSIGN_BIG_PDF` through `prepare` on a `File`,
/// hashing it in 1 MB chunks as the CLI does; measure the process with
/// `/usr/bin/time -v`. Writes `<file>.signed.pdf`.
#[test]
#[ignore]
fn big_file_from_env() {
    use std::io::{Read as _, Write as _};
    let Some(path) = std::env::var_os("QSIGN_BIG_PDF") else {
        eprintln!("note: set QSIGN_BIG_PDF to a PDF path");
        return;
    };
    let mut file = std::fs::File::open(&path).expect("open");
    let mut prepared =
        crate::pades::prepare(&mut file, &request(Some(visible(1)))).expect("prepares");
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut file = std::fs::File::open(&path).expect("open");
    let mut chunk = vec![0u8; 1 << 20];
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(format!("{}.signed.pdf", path.to_string_lossy())).expect("create"),
    );
    loop {
        let n = file.read(&mut chunk).expect("read");
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &chunk[..n]);
        out.write_all(&chunk[..n]).expect("write");
    }
    let digest = prepared.digest(hasher);
    prepared.embed(&digest).expect("a stand-in CMS fits");
    out.write_all(prepared.update()).expect("write");
    println!(
        "signed {} bytes; byte range {:?}",
        prepared.original_len(),
        prepared.byte_range()
    );
}
