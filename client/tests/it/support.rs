use std::path::{Path, PathBuf};
use std::process::Output;

pub fn fabric_testdata() -> PathBuf {
    let dir = std::env::var_os("MEDFABRIC_TESTDATA").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/fabric-2.5")
    });
    assert!(dir.join("blocks").is_dir(), "Fabric test vectors not found at {}", dir.display());
    dir
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the `medfabric` binary.
pub fn medfabric(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_medfabric")).args(args).output().expect("runs medfabric")
}

pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
