//! Shared helpers: external tools, a throw-away PKI, signing, checks.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::pades::{prepare, prepare_bytes, Appearance, PreparedUpdate, SignatureRequest};

/// `../shared`, next to the crate.
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn corpus_file(name: &str) -> Vec<u8> {
    let path = shared().join("corpus").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// True when every tool is installed. Otherwise: under `CI=true` the test
/// fails; elsewhere it prints a note and the caller skips.
pub fn tools(names: &[&str]) -> bool {
    let missing: Vec<&str> = names.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and required tools are missing: {missing:?}");
    }
    eprintln!("note: skipping, tools not installed: {missing:?}");
    false
}

/// The tools a signing round trip needs.
pub const SIGNING_TOOLS: &[&str] = &["openssl", "qpdf", "pdfsig", "certutil"];

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A root CA and a leaf (EC P-256), made with the openssl CLI once per
/// test process in a temporary directory, and kept as PEM bytes.
struct Pki {
    root: Vec<u8>,
    leaf: Vec<u8>,
    key: Vec<u8>,
}

/// The PKI files as written into one test's work directory.
pub struct PkiFiles {
    pub root: PathBuf,
    leaf: PathBuf,
    key: PathBuf,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(make_pki)
}

/// Writes the PKI into `work` (once) and returns the paths: the files go
/// away with the test's temporary directory.
pub fn pki_in(work: &Path) -> PkiFiles {
    let pki = pki();
    let files = PkiFiles {
        root: work.join("root.pem"),
        leaf: work.join("leaf.pem"),
        key: work.join("leaf.key"),
    };
    for (path, bytes) in [
        (&files.root, &pki.root),
        (&files.leaf, &pki.leaf),
        (&files.key, &pki.key),
    ] {
        if !path.exists() {
            std::fs::write(path, bytes).expect("write PKI file");
        }
    }
    files
}

fn make_pki() -> Pki {
    let tmp = tempfile::Builder::new()
        .prefix("qsign-pades-pki-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path();
    let p = |name: &str| dir.join(name);
    let conf = "[root]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
                subjectKeyIdentifier=hash\n[leaf]\nbasicConstraints=CA:FALSE\n\
                keyUsage=critical,digitalSignature,nonRepudiation\nsubjectKeyIdentifier=hash\n\
                authorityKeyIdentifier=keyid\n";
    std::fs::write(p("ext.cnf"), conf).expect("write config");
    let openssl = |args: &[&str]| {
        let out = run(Command::new("openssl").args(args).current_dir(dir));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "root.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        "root.key",
        "-out",
        "root.pem",
        "-days",
        "30",
        "-subj",
        "/CN=qsign pades test root",
        "-extensions",
        "root",
        "-config",
        "ext.cnf",
    ]);
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "leaf.key",
    ]);
    openssl(&[
        "req",
        "-new",
        "-key",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=qsign pades test signer",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "leaf",
    ]);
    let read = |name: &str| std::fs::read(p(name)).expect("read PKI file");
    Pki {
        root: read("root.pem"),
        leaf: read("leaf.pem"),
        key: read("leaf.key"),
    }
}

/// A detached CMS over `data` made by openssl.
pub fn openssl_cms(data: &[u8], work: &Path) -> Vec<u8> {
    let pki = pki_in(work);
    let input = work.join("covered.bin");
    std::fs::write(&input, data).expect("write covered bytes");
    let out = run(Command::new("openssl")
        .args([
            "cms",
            "-sign",
            "-binary",
            "-outform",
            "DER",
            "-nosmimecap",
            "-md",
            "sha256",
        ])
        .arg("-signer")
        .arg(&pki.leaf)
        .arg("-inkey")
        .arg(&pki.key)
        .arg("-certfile")
        .arg(&pki.root)
        .arg("-in")
        .arg(&input));
    assert!(
        out.status.success(),
        "openssl cms: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn request(appearance: Option<Appearance>) -> SignatureRequest {
    SignatureRequest {
        name: Some("Test Signer".into()),
        reason: Some("Approval (test) \\ ok".into()),
        location: Some("København".into()),
        contact_info: None,
        signing_time: UNIX_EPOCH + Duration::from_secs(1_795_867_200),
        appearance,
        contents_capacity: 8192,
        field_name: None,
    }
}

pub fn visible(page: u32) -> Appearance {
    Appearance {
        page,
        rect: [72.0, 72.0, 220.0, 48.0],
        lines: vec![
            "Digitally signed by Test Signer".into(),
            "2026-11-28 12:00:00 UTC".into(),
        ],
    }
}

/// The /ByteRange of the last signature in `pdf`, read back from the bytes.
pub fn last_byte_range(pdf: &[u8]) -> [u64; 4] {
    let key = b"/ByteRange [";
    let at = pdf
        .windows(key.len())
        .rposition(|w| w == key)
        .expect("a /ByteRange")
        + key.len();
    let end = at
        + pdf[at..]
            .iter()
            .position(|&b| b == b']')
            .expect("closing ]");
    let text = std::str::from_utf8(&pdf[at..end]).expect("ASCII");
    let nums: Vec<u64> = text
        .split_whitespace()
        .map(|n| n.parse().expect("number"))
        .collect();
    nums.try_into().expect("four numbers")
}

/// Prepares (through `prepare` on a reader, or `prepare_bytes`), signs with
/// openssl, embeds, and checks the bytes: the original is a prefix, the
/// byte range covers all but /Contents, and `digest()` equals SHA-256 over
/// the range read back from the output.
pub fn sign(original: &[u8], request: &SignatureRequest, via_reader: bool, work: &Path) -> Vec<u8> {
    let mut prepared: PreparedUpdate = if via_reader {
        prepare(&mut Cursor::new(original), request)
    } else {
        prepare_bytes(original, request)
    }
    .unwrap_or_else(|e| panic!("prepare: {e}"));
    let mut hasher = Sha256::new();
    hasher.update(original);
    let digest = prepared.digest(hasher);

    let [a, b, c, d] = prepared.byte_range();
    let total = original.len() + prepared.update().len();
    assert_eq!((a, c + d), (0, total as u64));
    let mut unsigned = original.to_vec();
    unsigned.extend_from_slice(prepared.update());
    let covered = [&unsigned[..b as usize], &unsigned[c as usize..]].concat();
    let cms = openssl_cms(&covered, work);
    prepared
        .embed(&cms)
        .unwrap_or_else(|e| panic!("embed: {e}"));

    let mut signed = original.to_vec();
    signed.extend_from_slice(prepared.update());
    assert!(
        signed.starts_with(original),
        "the original must stay a prefix"
    );
    let [_, b2, c2, d2] = last_byte_range(&signed);
    assert_eq!(
        [b2, c2, d2],
        [b, c, d],
        "/ByteRange in the file matches byte_range()"
    );
    assert_eq!(signed[b as usize], b'<');
    assert_eq!(signed[c as usize - 1], b'>');
    assert_eq!(
        c2 + d2,
        signed.len() as u64,
        "the range reaches the end of the file"
    );
    let recomputed: [u8; 32] =
        Sha256::digest([&signed[..b2 as usize], &signed[c2 as usize..]].concat()).into();
    assert_eq!(
        digest, recomputed,
        "digest() equals SHA-256 over the written byte range"
    );
    signed
}

/// `qpdf --check`: exit code and the warning lines.
pub fn qpdf_check(path: &Path) -> (i32, Vec<String>) {
    let out = run(Command::new("qpdf").arg("--check").arg(path));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let warnings = text.lines().filter(|l| l.contains("WARNING")).map(|l| {
        // Warnings name the file; compare them without it.
        l.replace(&path.display().to_string(), "FILE")
    });
    (out.status.code().unwrap_or(-1), warnings.collect())
}

/// Asserts `qpdf --check` passes on `signed`, or warns only as `original` does.
pub fn assert_qpdf_ok(signed: &Path, original: &Path) {
    let (rc, warnings) = qpdf_check(signed);
    if rc == 3 {
        let (orc, owarnings) = qpdf_check(original);
        assert_eq!(
            (orc, &owarnings),
            (3, &warnings),
            "qpdf warns about {} only",
            signed.display()
        );
    } else {
        assert_eq!(rc, 0, "qpdf --check {}: {warnings:?}", signed.display());
    }
}

/// The test root, written next to `signed`.
fn root_beside(signed: &Path) -> PathBuf {
    pki_in(signed.parent().expect("a file in a work directory")).root
}

/// Asserts every signature in `signed` is valid and trusted (pdfsig).
pub fn assert_pdfsig_ok(signed: &Path) -> String {
    let script = shared().join("validate/pdfsig_check.sh");
    let out = run(Command::new("bash")
        .arg(&script)
        .arg(signed)
        .arg(root_beside(signed)));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pdfsig_check {}:\n{text}\n{}",
        signed.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Fully qualified names of the form fields, per `qpdf --json`.
pub fn qpdf_field_names(path: &Path) -> Vec<String> {
    let out = run(Command::new("qpdf")
        .args(["--json", "--json-key=acroform"])
        .arg(path));
    assert!(
        out.status.success(),
        "qpdf --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qpdf JSON");
    let fields = json["acroform"]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    fields
        .iter()
        .filter_map(|f| f["fullname"].as_str().map(str::to_owned))
        .collect()
}

/// Renders one page at 50 dpi with pdftoppm; asserts success.
pub fn assert_renders(path: &Path, page: u32, work: &Path) {
    let page = page.to_string();
    let out = run(Command::new("pdftoppm")
        .args(["-r", "50", "-png", "-f", &page, "-l", &page])
        .arg(path)
        .arg(work.join("render")));
    assert!(
        out.status.success(),
        "pdftoppm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = std::fs::read_dir(work)
        .expect("work dir")
        .flatten()
        .any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("render") && name.ends_with(".png")
        });
    assert!(rendered, "pdftoppm wrote no PNG");
}

/// Signs, writes `name` into `work`, and runs qpdf and pdfsig on it.
pub fn sign_and_check(
    original: &[u8],
    request: &SignatureRequest,
    work: &Path,
    name: &str,
) -> PathBuf {
    let input = work.join(format!("{name}.in.pdf"));
    std::fs::write(&input, original).expect("write input");
    let signed = sign(original, request, true, work);
    let output = work.join(format!("{name}.signed.pdf"));
    std::fs::write(&output, &signed).expect("write output");
    keep(&[&input, &output, &pki_in(work).root]);
    assert_qpdf_ok(&output, &input);
    assert_pdfsig_ok(&output);
    output
}

/// With `QSIGN_TEST_KEEP=<dir>`, copies `files` there for a look by hand
/// (pyHanko, a PDF viewer).
fn keep(files: &[&Path]) {
    let Some(dir) = std::env::var_os("QSIGN_TEST_KEEP") else {
        return;
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).expect("create QSIGN_TEST_KEEP");
    for file in files {
        let name = file.file_name().expect("file name");
        std::fs::copy(file, dir.join(name)).expect("copy kept file");
    }
}

/// Runs pdfsig_check.sh; true when it passes.
pub fn pdfsig_passes(signed: &Path) -> bool {
    let script = shared().join("validate/pdfsig_check.sh");
    run(Command::new("bash")
        .arg(&script)
        .arg(signed)
        .arg(root_beside(signed)))
    .status
    .success()
}
