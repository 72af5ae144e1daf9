use std::path::PathBuf;

/// `shared/testdata/fabric-2.5`: blocks, identities and client artifacts produced by a
/// real Fabric 2.5.16 network. The tests fail (they do not skip) when it is missing.
pub fn fabric_testdata() -> PathBuf {
    let dir = std::env::var_os("MEDFABRIC_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/testdata/fabric-2.5"));
    assert!(dir.join("blocks").is_dir(), "Fabric test vectors not found at {}", dir.display());
    dir
}

pub fn fabric_blocks() -> Vec<Vec<u8>> {
    let dir = fabric_testdata().join("blocks");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("blocks dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "block"))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).expect("block file")).collect()
}

pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fabric_testdata().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// The package directory, read when the test runs: a test binary built in another
/// checkout sharing the target directory must not point back at that checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("current directory"))
}
