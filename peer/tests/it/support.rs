use std::path::PathBuf;

use medfabric_proto::common::Block;
use medfabric_types::block::decode_block;

/// `shared/testdata/fabric-2.5`: blocks from a real Fabric 2.5.16 network. The tests
/// fail (they do not skip) when it is missing.
pub fn fabric_testdata() -> PathBuf {
    let dir = std::env::var_os("MEDFABRIC_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/testdata/fabric-2.5"));
    assert!(dir.join("blocks").is_dir(), "Fabric test vectors not found at {}", dir.display());
    dir
}

pub fn fabric_block(number: u64) -> Block {
    let path = fabric_testdata().join("blocks").join(format!("{number:06}.block"));
    decode_block(&std::fs::read(&path).expect("block file")).expect("block decodes")
}

/// The package directory, read when the test runs (a shared target directory may hold
/// a binary built from another checkout).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("current directory"))
}
