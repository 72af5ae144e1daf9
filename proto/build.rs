//! Generates the Rust types and gRPC stubs from our own `.proto` files with protox
//! (a pure-Rust protobuf compiler), so no `protoc` binary is needed.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    let mut files = Vec::new();
    collect_protos(root, &mut files)?;
    files.sort();
    let fds = protox::compile(&files, [root])?;
    tonic_prost_build::configure()
        // No `connect` constructors on clients: `protos.Chaincode` has an RPC named
        // `Connect`, which would clash. Clients are built with `new(channel)`.
        .build_transport(false)
        // Zero-copy decoding: byte fields borrow from the received buffer.
        .bytes(".")
        // Deterministic encoding: maps serialize in key order (config trees, transient maps).
        .btree_map(".")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            out.push(path);
        }
    }
    Ok(())
}
