//! Generates the gRPC code of `proto/qsign/v1` and the descriptor set that
//! server reflection serves.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // ProstCodec, but a malformed message is INVALID_ARGUMENT (SPEC §7).
        .codec_path("crate::service::codec::Codec")
        .file_descriptor_set_path(out.join("qsign_descriptor.bin"))
        .compile_protos(
            &[
                "proto/qsign/v1/signing.proto",
                "proto/qsign/v1/administration.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
