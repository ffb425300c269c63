//! A lazy reader over the original file: objects are fetched one at a time
//! through the cross-reference data, object streams are decoded only when a
//! needed object lives in one, and each decoded stream is kept for the
//! rest of the request.

use std::collections::{HashMap, HashSet};

use super::filter;
use super::lexer::Lexer;
use super::object::{Dictionary, ObjRef, Object};
use super::source::{parse_at, Source};
use super::update::{Layout, Trailer};
use super::xref::{self, Entry, Xref};
use super::PdfError;

/// Reference chains longer than this (object stream -> its /Length -> an
/// object in another object stream -> ...) are taken as loops.
const MAX_REF_DEPTH: u32 = 8;
/// Page trees deeper than this are taken as loops (§7.7.3.2 trees are
/// balanced; real files stay under ten levels).
const MAX_TREE_DEPTH: u32 = 64;
/// Page tree nodes visited to find one page.
const MAX_TREE_VISITS: usize = 1_000_000;

pub(crate) struct Document<S> {
    pub(super) src: S,
    pub(super) xref: Xref,
    /// None once the object map was rebuilt by scanning the file.
    pub(super) startxref: Option<u64>,
    /// Bytes before the `%PDF-` header, outside the file's frame.
    header: u64,
    /// Page objects found by the repair scan, in file order.
    pub(super) scanned_pages: Vec<u32>,
    pub(super) object_streams: HashMap<u32, ObjectStream>,
}

/// A decoded object stream (§7.5.7).
pub(super) struct ObjectStream {
    data: Vec<u8>,
    /// (object number, offset of the object from /First), in stream order.
    pub(super) members: Vec<(u32, usize)>,
    first: usize,
}

impl<S: Source> Document<S> {
    /// Reads the header, the tail and the cross-reference chain; refuses
    /// encrypted files before reading any object. Cross-reference data that cannot be read makes it rebuild the
    /// object map by scanning the file (`repair`).
    pub fn open(mut src: S) -> Result<Self, PdfError> {
        let header = check_header(&mut src)?;
        src.set_start(header);
        let loaded = xref::startxref(&mut src).and_then(|at| Ok((Xref::load(&mut src, at)?, at)));
        let mut doc = Self {
            src,
            xref: Xref::rebuilt(Default::default(), Dictionary::new()),
            startxref: None,
            header,
            scanned_pages: Vec::new(),
            object_streams: HashMap::new(),
        };
        match loaded {
            Ok((xref, at)) => {
                if xref.encrypted() {
                    return Err(PdfError::Encrypted);
                }
                (doc.xref, doc.startxref) = (xref, Some(at));
            }
            Err(PdfError::Malformed(why)) => {
                tracing::info!(%why, "cross-reference data unusable; rebuilding it by scanning");
                doc.repair()?;
            }
            Err(e) => return Err(e),
        }
        Ok(doc)
    }

    /// True when the object map was rebuilt by scanning the file.
    pub fn repaired(&self) -> bool {
        self.startxref.is_none()
    }

    pub fn len(&self) -> u64 {
        self.src.len()
    }

    /// The first object number from the trailer's /Size on that starts a
    /// run of `count` numbers no section uses: a /Size that is too small
    /// (seen in damaged files) must not make new objects shadow old ones.
    pub fn first_free_number(&mut self, count: u32) -> Result<u32, PdfError> {
        let mut candidate = self.xref.size();
        let mut run = 0;
        for _ in 0..1024 {
            let num = candidate.checked_add(run).ok_or_else(|| {
                PdfError::Malformed("the trailer's /Size leaves no object numbers".into())
            })?;
            match self.xref.lookup(&mut self.src, num)? {
                None | Some(Entry::Free) => run += 1,
                Some(_) => (candidate, run) = (num.saturating_add(1), 0),
            }
            if run == count {
                return Ok(candidate);
            }
        }
        Err(PdfError::Malformed(
            "the trailer's /Size is far below the object numbers in use".into(),
        ))
    }

    /// The trailer values and layout of an update appended to this file
    /// (ISO 32000-1 §7.5.6): /Root, /Info and /ID carried over, /Prev at
    /// the file's startxref, the same cross-reference kind.
    pub fn update_frame(
        &mut self,
        root: ObjRef,
        contents_capacity: usize,
        next_number: u32,
        id_seed: Vec<u8>,
    ) -> Result<(Trailer, Layout), PdfError> {
        let trailer = Trailer {
            root,
            info: self.xref.trailer_value(b"Info").cloned(),
            id: self.xref.trailer_value(b"ID").cloned(),
            prev: self.startxref,
        };
        let complete = self
            .xref
            .rebuilt_entries()
            .map(|entries| entries.iter().map(|(num, entry)| (*num, *entry)).collect());
        let layout = Layout {
            original_len: self.len(),
            header: self.header,
            complete,
            leading_eol: !self.ends_with_eol()?,
            kind: self.xref.kind(),
            contents_capacity,
            next_number,
            id_seed,
        };
        Ok((trailer, layout))
    }

    /// True when the file ends with an end-of-line marker.
    pub fn ends_with_eol(&mut self) -> Result<bool, PdfError> {
        let len = self.src.len();
        let last = self.src.read_at(len.saturating_sub(1), 1)?;
        Ok(matches!(last, [b'\n' | b'\r']))
    }

    /// The object `r` refers to; null when it is free or unknown (§7.3.10).
    pub fn object(&mut self, r: ObjRef) -> Result<Object, PdfError> {
        self.object_at_depth(r, 0)
    }

    /// `obj` itself, or the object it refers to.
    pub fn resolve(&mut self, obj: Object) -> Result<Object, PdfError> {
        match obj {
            Object::Reference(r) => self.object(r),
            other => Ok(other),
        }
    }

    /// The dictionary `r` refers to, or Malformed naming `what`.
    pub fn dictionary(&mut self, r: ObjRef, what: &str) -> Result<Dictionary, PdfError> {
        match self.object(r)? {
            Object::Dictionary(d) => Ok(d),
            _ => Err(PdfError::Malformed(format!(
                "{what} ({r}) is missing or not a dictionary"
            ))),
        }
    }

    fn object_at_depth(&mut self, r: ObjRef, depth: u32) -> Result<Object, PdfError> {
        if depth > MAX_REF_DEPTH {
            return Err(PdfError::Malformed(format!(
                "references nest too deeply around object {} (a loop?)",
                r.num
            )));
        }
        match self.xref.lookup(&mut self.src, r.num)? {
            None | Some(Entry::Free) => Ok(Object::Null),
            Some(Entry::InUse { offset, .. }) => Ok(self.indirect_at(offset, r.num)?.0),
            Some(Entry::Compressed { stream, index }) => {
                if !self.object_streams.contains_key(&stream) {
                    let loaded = self.load_object_stream(stream, depth + 1)?;
                    self.object_streams.insert(stream, loaded);
                }
                match self.object_streams.get(&stream) {
                    Some(os) => {
                        let (object, spent) = os.object(r.num, index, stream)?;
                        self.src.budget().charge(spent)?;
                        Ok(object)
                    }
                    None => Err(PdfError::Malformed(format!(
                        "object stream {stream} is missing"
                    ))),
                }
            }
        }
    }

    /// Parses `num gen obj` and its value at `offset`; for a stream, also
    /// returns where its data starts.
    fn indirect_at(&mut self, offset: u64, num: u32) -> Result<(Object, Option<u64>), PdfError> {
        let context = || format!("object {num} at offset {offset}");
        let (header, object, stream) = parse_at(&mut self.src, offset, &context, |lx| {
            let header = lx.indirect_header()?;
            let object = lx.object()?;
            let stream = match object {
                Object::Dictionary(_) => lx.stream_start()?,
                _ => None,
            };
            Ok((header, object, stream))
        })?;
        if header.num != num {
            return Err(PdfError::Malformed(format!(
                "the cross-reference data puts object {num} at offset {offset}, where object {} starts",
                header.num
            )));
        }
        Ok((object, stream))
    }

    pub(super) fn load_object_stream(
        &mut self,
        num: u32,
        depth: u32,
    ) -> Result<ObjectStream, PdfError> {
        let context = || format!("object stream {num}");
        let offset = match self.xref.lookup(&mut self.src, num)? {
            Some(Entry::InUse { offset, .. }) => offset,
            _ => {
                return Err(PdfError::Malformed(format!(
                    "{} is not an object in the file body",
                    context()
                )))
            }
        };
        let (Object::Dictionary(dict), Some(data_start)) = self.indirect_at(offset, num)? else {
            return Err(PdfError::Malformed(format!(
                "{} is not a stream",
                context()
            )));
        };
        let data = self.stream_data(&dict, data_start, depth, &context)?;
        self.src.budget().retain(data.len())?;
        ObjectStream::parse(&dict, data, &context)
    }

    /// The decoded data of a stream whose dictionary is `dict`.
    fn stream_data(
        &mut self,
        dict: &Dictionary,
        data_start: u64,
        depth: u32,
        context: &dyn Fn() -> String,
    ) -> Result<Vec<u8>, PdfError> {
        let length = match dict.get(b"Length") {
            Some(Object::Integer(l)) => *l,
            // §7.3.8.2: /Length may be an indirect object (written after the data).
            Some(Object::Reference(r)) => match self.object_at_depth(*r, depth + 1)? {
                Object::Integer(l) => l,
                _ => -1,
            },
            _ => -1,
        };
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l <= filter::MAX_DECODED)
            .ok_or_else(|| {
                PdfError::Malformed(format!("{}: /Length is missing or invalid", context()))
            })?;
        let raw = self.src.read_exact_at(data_start, length, &context())?;
        filter::decode(dict, raw, context)
    }

    /// The document catalog (§7.7.2) and its reference.
    pub fn catalog(&mut self) -> Result<(ObjRef, Dictionary), PdfError> {
        let Some(Object::Reference(root)) = self.xref.trailer_value(b"Root").cloned() else {
            return Err(PdfError::Malformed(
                "the trailer has no /Root reference to the document catalog".into(),
            ));
        };
        Ok((root, self.dictionary(root, "the document catalog")?))
    }

    /// Page `index` (0-based) of the page tree (§7.7.3); in a repaired
    /// file whose tree is broken, the page objects in file order.
    pub fn page(
        &mut self,
        catalog: &Dictionary,
        index: u32,
    ) -> Result<(ObjRef, Dictionary), PdfError> {
        match self.tree_page(catalog, index) {
            Err(PdfError::Malformed(why)) if self.repaired() => {
                tracing::info!(%why, "page tree unusable; taking the page objects in file order");
                self.scanned_page(index, why)
            }
            other => other,
        }
    }

    /// Page `index` (0-based) of the page tree (§7.7.3), found by /Count
    /// without visiting the subtrees before it.
    fn tree_page(
        &mut self,
        catalog: &Dictionary,
        index: u32,
    ) -> Result<(ObjRef, Dictionary), PdfError> {
        let Some(mut node) = catalog.reference(b"Pages") else {
            return Err(PdfError::Malformed(
                "the catalog has no /Pages reference".into(),
            ));
        };
        let mut node_dict = self.dictionary(node, "the page tree root")?;
        let total = node_dict.integer(b"Count").unwrap_or(0);
        if i64::from(index) >= total {
            return Err(PdfError::InvalidRequest(format!(
                "page {} does not exist: the document has {total} page(s)",
                u64::from(index) + 1
            )));
        }
        let mut remaining = i64::from(index);
        let mut seen = HashSet::new();
        let mut visits = 0usize;
        for _ in 0..MAX_TREE_DEPTH {
            if !seen.insert(node) {
                return Err(PdfError::Malformed(format!(
                    "the page tree loops back to {node}"
                )));
            }
            match self.tree_step(node, &node_dict, remaining, &mut visits)? {
                TreeStep::Page(page, dict) => return Ok((page, dict)),
                TreeStep::Node(kid, dict, left) => (node, node_dict, remaining) = (kid, dict, left),
                TreeStep::NotHere => break,
            }
        }
        Err(PdfError::Malformed(format!(
            "the page tree does not reach page {} (wrong /Count, a loop, or too deep)",
            u64::from(index) + 1
        )))
    }

    /// Among the kids of `node`, the page `remaining` pages in, or the
    /// subtree holding it (with the index inside that subtree).
    fn tree_step(
        &mut self,
        node: ObjRef,
        node_dict: &Dictionary,
        mut remaining: i64,
        visits: &mut usize,
    ) -> Result<TreeStep, PdfError> {
        let kids = node_dict.get(b"Kids").cloned().unwrap_or(Object::Null);
        let Object::Array(kids) = self.resolve(kids)? else {
            return Err(PdfError::Malformed(format!(
                "page tree node {node} has no /Kids array"
            )));
        };
        for kid in kids {
            *visits += 1;
            if *visits > MAX_TREE_VISITS {
                return Err(PdfError::Malformed("the page tree is too large".into()));
            }
            let Object::Reference(kid) = kid else {
                return Err(PdfError::Malformed(format!(
                    "page tree node {node} has a /Kids entry that is not a reference"
                )));
            };
            let dict = self.dictionary(kid, "a page or page tree node")?;
            if !is_pages_node(&dict) {
                if remaining == 0 {
                    return Ok(TreeStep::Page(kid, dict));
                }
                remaining -= 1;
                continue;
            }
            let count = dict.integer(b"Count").filter(|c| *c >= 0).ok_or_else(|| {
                PdfError::Malformed(format!("page tree node {kid} has no valid /Count"))
            })?;
            if remaining < count {
                return Ok(TreeStep::Node(kid, dict, remaining));
            }
            remaining -= count;
        }
        Ok(TreeStep::NotHere)
    }

    /// The page's /Rotate (§7.7.3.3, inheritable through /Parent), as 0,
    /// 90, 180 or 270.
    pub fn page_rotation(&mut self, page: &Dictionary) -> Result<i64, PdfError> {
        let mut node = page.clone();
        for _ in 0..MAX_TREE_DEPTH {
            if let Some(value) = node.get(b"Rotate").cloned() {
                let Object::Integer(r) = self.resolve(value)? else {
                    return Ok(0);
                };
                return Ok(r.rem_euclid(360) / 90 * 90);
            }
            let Some(parent) = node.reference(b"Parent") else {
                break;
            };
            match self.object(parent)? {
                Object::Dictionary(d) => node = d,
                _ => break,
            }
        }
        Ok(0)
    }

    /// The /P value of a certification signature's DocMDP transform
    /// (§12.8.2.2), when the catalog's /Perms names one. /P defaults to 2.
    pub fn docmdp_permission(&mut self, catalog: &Dictionary) -> Result<Option<i64>, PdfError> {
        let perms = match catalog.get(b"Perms").cloned() {
            Some(p) => self.resolve(p)?,
            None => return Ok(None),
        };
        let Some(Object::Reference(sig)) = perms.as_dict().and_then(|p| p.get(b"DocMDP")).cloned()
        else {
            return Ok(None);
        };
        let sig = self.dictionary(sig, "the certification signature (/Perms /DocMDP)")?;
        let references = match sig.get(b"Reference").cloned() {
            Some(r) => self.resolve(r)?,
            None => return Ok(None),
        };
        let Object::Array(references) = references else {
            return Ok(None);
        };
        for reference in references {
            let Object::Dictionary(sigref) = self.resolve(reference)? else {
                continue;
            };
            if sigref.name(b"TransformMethod") != Some(b"DocMDP") {
                continue;
            }
            let params = match sigref.get(b"TransformParams").cloned() {
                Some(p) => self.resolve(p)?,
                None => Object::Null,
            };
            let p = params.as_dict().and_then(|d| d.integer(b"P")).unwrap_or(2);
            return Ok(Some(p));
        }
        Ok(None)
    }
}

enum TreeStep {
    Page(ObjRef, Dictionary),
    /// Descend into this node; the page is this many pages into it.
    Node(ObjRef, Dictionary, i64),
    NotHere,
}

/// §7.7.3.2: intermediate nodes are /Type /Pages; some writers omit /Type,
/// so /Kids also marks one.
fn is_pages_node(dict: &Dictionary) -> bool {
    match dict.name(b"Type") {
        Some(t) => t == b"Pages",
        None => dict.get(b"Kids").is_some(),
    }
}

/// §7.5.2: the file starts with `%PDF-`; tolerate up to 1 KB before it, as
/// readers do, but refuse what is not a PDF at all. Returns where it is.
fn check_header<S: Source>(src: &mut S) -> Result<u64, PdfError> {
    let head = src.read_at(0, 1024)?;
    if let Some(at) = head.windows(5).position(|w| w == b"%PDF-") {
        Ok(at as u64)
    } else {
        Err(PdfError::Malformed(
            "not a PDF file: no %PDF- header in the first 1 KB".into(),
        ))
    }
}

impl ObjectStream {
    fn parse(
        dict: &Dictionary,
        data: Vec<u8>,
        context: &dyn Fn() -> String,
    ) -> Result<Self, PdfError> {
        let bad = |what: &str| PdfError::Malformed(format!("{}: {what}", context()));
        let n = dict.integer(b"N").and_then(|n| usize::try_from(n).ok());
        let first = dict.integer(b"First").and_then(|f| usize::try_from(f).ok());
        let (Some(n), Some(first)) = (n, first) else {
            return Err(bad("/N or /First is missing"));
        };
        if first > data.len() || n > first {
            return Err(bad("/N or /First does not fit the stream"));
        }
        let mut lexer = Lexer::new(&data[..first], 0, true);
        let mut members = Vec::with_capacity(n);
        for _ in 0..n {
            let (Ok(num), Ok(offset)) = (lexer.unsigned(), lexer.unsigned()) else {
                return Err(bad("the header is not N pairs of integers"));
            };
            match (u32::try_from(num), usize::try_from(offset)) {
                (Ok(num), Ok(offset)) => members.push((num, offset)),
                _ => return Err(bad("an object number or offset is out of range")),
            }
        }
        Ok(Self {
            data,
            members,
            first,
        })
    }

    /// Member `num`, expected at `index`; searched for when the
    /// cross-reference index is off.
    /// Also returns the work spent, for the budget.
    fn object(&self, num: u32, index: u32, stream: u32) -> Result<(Object, u64), PdfError> {
        let mut spent = 0;
        let by_index = self.members.get(index as usize).filter(|(n, _)| *n == num);
        let found = by_index.or_else(|| {
            spent += self.members.len() as u64;
            self.members.iter().find(|(n, _)| *n == num)
        });
        let Some(&(_, offset)) = found else {
            return Err(PdfError::Malformed(format!(
                "object {num} is not in object stream {stream}"
            )));
        };
        let start = self.first.saturating_add(offset).min(self.data.len());
        let mut lexer = Lexer::new(&self.data[start..], start as u64, true);
        let object = lexer.object().map_err(|e| {
            PdfError::Malformed(format!(
                "object {num} in object stream {stream}: {e} (of the decoded stream)"
            ))
        })?;
        Ok((object, spent + lexer.offset() - start as u64))
    }
}
