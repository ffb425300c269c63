#![deny(unsafe_code)]
pub mod error;

pub use error::{Error, ErrorKind, Result};

/// Code generated from `proto/qsign/v1/signing.proto`.
pub mod proto {
    #![allow(clippy::all)]
    tonic::include_proto!("qsign.v1");
    /// Descriptor set served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("qsign_descriptor");
}
