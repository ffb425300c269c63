//! The fuzz targets of `fuzz/` (`qsign::fuzz`) as property loops over
//! mutated seeds, so that every `cargo test` (and CI) runs them briefly on
//! stable Rust: truncations and 1–3 damaged bytes of each seed of
//! `fuzz/seeds/`, `QSIGN_FUZZ_CASES` mutations per seed (default 300).
//! The PDF reader has its own loops (`src/pades/tests/robustness.rs`).
//! Findings of longer cargo-fuzz runs are kept in `fuzz/regressions/` and
//! replayed here.

use std::path::Path;

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
        (self.next() % n.max(1) as u64) as usize
    }
}

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn fuzz_dir(kind: &str, target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target)
}

/// Every truncation, then mutations: bit flips, random bytes, a byte
/// dropped or doubled (lengths inside DER and JSON go wrong that way).
fn cases(seed: &[u8], rng: &mut XorShift, mutations: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..seed.len()).map(|n| seed[..n].to_vec()).collect();
    for _ in 0..mutations {
        let mut case = seed.to_vec();
        for _ in 0..=rng.below(3) {
            if case.is_empty() {
                break;
            }
            let at = rng.below(case.len());
            match rng.below(4) {
                0 => case[at] ^= 1 << rng.below(8),
                1 => case[at] = rng.next() as u8,
                2 => drop(case.remove(at)),
                _ => case.insert(at, case[at]),
            }
        }
        out.push(case);
    }
    out
}

fn run(target: &str, check: fn(&[u8])) {
    let seeds = files(&fuzz_dir("seeds", target));
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{target}");
    let mutations = std::env::var("QSIGN_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut count = 0;
    for seed in &seeds {
        for case in cases(seed, &mut rng, mutations) {
            let outcome = std::panic::catch_unwind(|| check(&case));
            assert!(
                outcome.is_ok(),
                "{target} panicked on {}",
                hex::encode(&case)
            );
            count += 1;
        }
    }
    for finding in files(&fuzz_dir("regressions", target)) {
        check(&finding);
    }
    assert!(count >= seeds.len() * mutations);
}

#[test]
fn timestamp_request() {
    run("timestamp_request", qsign::fuzz::timestamp_request);
}

#[test]
fn ocsp_request() {
    run("ocsp_request", qsign::fuzz::ocsp_request);
}

#[test]
fn activation_token() {
    run("activation_token", qsign::fuzz::activation_token);
}

/// The fuzz entry point of the PDF reader on each corpus file as it is
/// (the mutations are `src/pades/tests/robustness.rs`'s).
#[test]
fn pdf_reader_on_the_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    for pdf in files(&corpus) {
        qsign::fuzz::pdf_reader(&pdf);
    }
    for finding in files(&fuzz_dir("regressions", "pdf_reader")) {
        qsign::fuzz::pdf_reader(&finding);
    }
}
