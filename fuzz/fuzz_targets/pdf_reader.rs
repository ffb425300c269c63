//! cargo-fuzz target: `qsign::fuzz::pdf_reader` (see its doc for what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qsign::fuzz::pdf_reader(data));
