//! Compiles `proto/` into Rust with protox (pure Rust: no system `protoc` needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "proto/wsmschat/v1/events.proto",
        "proto/wsmschat/v1/chat.proto",
        "proto/wsmschat/v1/session.proto",
        "proto/wsmschat/v1/admin.proto",
        "proto/wsmschat/cluster/v1/envelope.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // The descriptor set feeds gRPC server reflection.
    std::fs::write(
        out.join("wsmschat_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Small codec buffers: tonic's default reserves 8 KiB per call for the whole life of a
        // stream, which dominates an idle browser stream's memory (see src/lib.rs `codec`).
        .codec_path("crate::codec::LeanCodec")
        .build_transport(std::env::var_os("CARGO_FEATURE_TRANSPORT").is_some())
        .compile_fds(fds.clone())?;
    if std::env::var_os("CARGO_FEATURE_JSON").is_some() {
        pbjson_build::Builder::new()
            .register_descriptors(&prost::Message::encode_to_vec(&fds))?
            .out_dir(&out)
            .build(&[".wsmschat.v1"])?;
    }
    Ok(())
}
