//! SIGTERM and SIGINT of `qsign serve` (SPEC §12).
