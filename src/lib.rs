//! qsign: a remote qualified signing service — ephemeral keys in a PKCS#11
//! token, short-lived qualified certificates, CAdES and PAdES (README: the
//! request flow). `SPEC §N` in comments cites `docs/SPEC.md`, the contract
//! kept in this repository.
#![deny(unsafe_code)]
pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod error;

pub use error::{Error, ErrorKind, Result};

#[doc(hidden)]
pub mod fuzz;

/// Code generated from `proto/qsign/v1/signing.proto` and `administration.proto`.
pub mod proto {
    #![allow(clippy::all)]
    tonic::include_proto!("qsign.v1");
    /// Descriptor set served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("qsign_descriptor");
}
pub mod audit;
pub mod hsm;
pub mod limits;
pub mod metrics;
pub mod pades;
pub mod pki;
pub mod registry;
pub mod service;
pub mod signed_data;
pub mod signer;
pub mod signing;
pub mod state;
pub mod store;
pub mod tsa;
