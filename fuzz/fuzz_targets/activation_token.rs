//! cargo-fuzz target: `qsign::fuzz::activation_token` (see its doc for what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qsign::fuzz::activation_token(data));
