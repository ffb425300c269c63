//! Damaged input: truncations and byte mutations of every corpus file must
//! give Ok or Err from `prepare`, never a panic or a hang.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use super::corpus::signable;
use super::generated::many_pages;
use super::support::{corpus_file, request};
use crate::pades::{prepare, prepare_bytes, SignatureRequest};

/// Fixed-seed xorshift64 (Marsaglia): the same cases on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that steer a parser somewhere interesting when written over a
/// random spot: digits change offsets and counts, the rest are tokens.
const SPLICES: &[&[u8]] = &[
    b"9",
    b"0",
    b"99999999999",
    b"-1",
    b" R",
    b"<<",
    b">>",
    b"[",
    b"(",
    b"obj",
    b"stream",
    b"xref",
    b"%",
    b"\n",
    b"/Prev 0",
    b"/Kids [1 0 R]",
];

/// One to three damaged spots.
fn mutate(original: &[u8], rng: &mut XorShift) -> Vec<u8> {
    let mut pdf = original.to_vec();
    for _ in 0..=rng.below(3) {
        damage(&mut pdf, rng);
    }
    pdf
}

fn damage(pdf: &mut [u8], rng: &mut XorShift) {
    // Damage concentrates where the reader looks: half of the cases hit the
    // last 600 bytes (startxref, trailer, xref table).
    let pos = if rng.below(2) == 0 {
        pdf.len() - 1 - rng.below(600.min(pdf.len()))
    } else {
        rng.below(pdf.len())
    };
    match rng.below(3) {
        0 => pdf[pos] ^= 1 << rng.below(8),
        1 => pdf[pos] = rng.next() as u8,
        _ => {
            let splice = SPLICES[rng.below(SPLICES.len())];
            let end = (pos + splice.len()).min(pdf.len());
            pdf[pos..end].copy_from_slice(&splice[..end - pos]);
        }
    }
}

/// Every case for one file: truncations at spread offsets plus the whole
/// tail, then mutations.
fn cases(original: &[u8], rng: &mut XorShift, mutations: usize) -> Vec<Vec<u8>> {
    let len = original.len();
    let mut cuts: Vec<usize> = (0..64).map(|i| i * len / 64).collect();
    cuts.extend(len.saturating_sub(200)..len);
    let mut out: Vec<Vec<u8>> = cuts.into_iter().map(|c| original[..c].to_vec()).collect();
    out.extend((0..mutations).map(|_| mutate(original, rng)));
    out
}

/// Runs `prepare` on each case in a worker thread; the test thread waits
/// at most `LIMIT` for each answer, so a hang fails instead of stalling.
fn run_guarded(label: &str, cases: Vec<Vec<u8>>, request: SignatureRequest) {
    const LIMIT: Duration = Duration::from_secs(30);
    let total = cases.len();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        for (i, pdf) in cases.into_iter().enumerate() {
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let via_reader = i % 4 == 0;
                let result = if via_reader {
                    prepare(&mut Cursor::new(&pdf), &request)
                } else {
                    prepare_bytes(&pdf, &request)
                };
                if let Ok(mut prepared) = result {
                    let _ = prepared.digest(Default::default());
                    prepared
                        .embed(&[0x30, 0x03, 0x02, 0x01, 0x01])
                        .expect("a tiny CMS fits");
                    assert!(prepared.byte_range()[1] >= pdf.len() as u64);
                }
            }));
            if tx.send((i, outcome.is_ok())).is_err() {
                return;
            }
        }
    });
    let mut panics = Vec::new();
    for _ in 0..total {
        match rx.recv_timeout(LIMIT) {
            Ok((_, true)) => {}
            Ok((i, false)) => panics.push(i),
            Err(_) => panic!("{label}: a case took longer than {LIMIT:?} (hang?)"),
        }
    }
    worker.join().expect("worker thread ends");
    assert!(
        panics.is_empty(),
        "{label}: prepare panicked on cases {panics:?}"
    );
}

/// Mutations per file; `QSIGN_FUZZ_CASES` raises it for a longer hunt.
fn mutations(default: usize) -> usize {
    std::env::var("QSIGN_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

#[test]
fn damaged_corpus_files_never_panic_or_hang() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut count = 0;
    for name in signable() {
        let original = corpus_file(&name);
        let cases = cases(&original, &mut rng, mutations(400));
        count += cases.len();
        run_guarded(&name, cases, request(None));
    }
    assert!(count > 4000, "{count} cases");
}

#[test]
fn damaged_deep_page_tree_never_panics_or_hangs() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let original = many_pages(40, 3);
    let mut appearance = super::support::visible(37);
    appearance.lines.push("robustness".into());
    run_guarded(
        "pages40",
        cases(&original, &mut rng, 600),
        request(Some(appearance)),
    );
}
