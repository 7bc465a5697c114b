//! Generates the quorum's gRPC service (client and server) from a Rust description: the messages
//! are serde types carried by a JSON codec, so no `.proto` file and no `protoc` are needed.

use tonic_build::manual::{Builder, Method, Service};

fn method(name: &str, route: &str, message: &str) -> Method {
    Method::builder()
        .name(name)
        .route_name(route)
        .input_type(format!("crate::quorum::proto::{message}Request"))
        .output_type(format!("crate::quorum::proto::{message}Reply"))
        .codec_path("crate::quorum::codec::JsonCodec")
        .build()
}

fn main() {
    let service = Service::builder()
        .name("Quorum")
        .package("strait.quorum")
        .method(method("append_entries", "AppendEntries", "AppendEntries"))
        .method(method("vote", "Vote", "Vote"))
        .method(method(
            "install_snapshot",
            "InstallSnapshot",
            "InstallSnapshot",
        ))
        .method(method("controller", "Controller", "Controller"))
        .method(method("fetch_metadata", "FetchMetadata", "FetchMetadata"))
        .build();
    Builder::new().compile(&[service]);
    println!("cargo:rerun-if-changed=build.rs");
}
