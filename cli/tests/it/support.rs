use std::path::{Path, PathBuf};
use std::process::Output;

pub fn fabric_testdata() -> PathBuf {
    let dir = std::env::var_os("MEDFABRIC_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/testdata/fabric-2.5"));
    assert!(dir.join("blocks").is_dir(), "Fabric test vectors not found at {}", dir.display());
    dir
}

pub fn repo_root() -> PathBuf {
    manifest_dir().join("..")
}

/// Runs the `medfabric` binary.
pub fn medfabric(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_medfabric")).args(args).output().expect("runs medfabric")
}

/// `medfabric ledger verify DIR --config CONFIG`.
pub fn ledger_verify(dir: &Path, config: &Path) -> Output {
    medfabric(&["ledger", "verify", path(dir), "--config", path(config)])
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

/// The package directory, read when the test runs: a test binary built in another
/// checkout sharing the target directory must not point back at that checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("current directory"))
}
