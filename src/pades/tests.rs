//! End-to-end tests of the PAdES update, checked with implementations
//! qsign did not write: `openssl cms` makes the CMS, `qpdf --check` and
//! poppler's `pdfsig` (through `../shared/validate/pdfsig_check.sh`) judge
//! the result, `pdftoppm` renders visible signatures.
//!
//! A missing tool skips a test with a note, except under `CI=true`, where
//! it fails the test.

mod adversarial;
mod corpus;
mod fields;
mod generated;
mod ltv;
mod producers;
mod realworld;
mod robustness;
mod support;
