//! cargo-fuzz target: `qsign::fuzz::ocsp_request` (see its doc for what must hold).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| qsign::fuzz::ocsp_request(data));
