//! Networks for the client's integration tests: started with `network up` from a
//! topology (node binaries from this build), stopped when the guard drops.
// Each test crate includes this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use medfabric_network::up;

/// A running network; its processes stop however the test ends. `MEDFABRIC_KEEP_DATA`
/// keeps the directory (logs, ledgers) for a post-mortem.
pub struct Network {
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = up::down(&self.data);
    }
}

/// The directory of the node binaries built with this test.
pub fn bin_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_medfabric"));
    let dir = bin.parent().expect("bin dir").to_owned();
    for node in ["medfabric-peer", "medfabric-orderer", "medfabric-ca"] {
        assert!(
            dir.join(node).exists(),
            "{node} is not built beside {} (cargo build --workspace --bins)",
            bin.display()
        );
    }
    dir
}

/// Starts the network of `topology` in a fresh temporary directory.
pub fn start(topology: &Path) -> Network {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("net");
    up::up_with_binaries(topology, &data, &bin_dir()).expect("network up");
    eprintln!("network in {}", data.display());
    let dir = if std::env::var_os("MEDFABRIC_KEEP_DATA").is_some() {
        let _ = dir.keep();
        None
    } else {
        Some(dir)
    };
    Network { data, _dir: dir }
}

/// Starts a network from topology YAML text.
pub fn start_yaml(yaml: &str) -> (Network, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let topology = dir.path().join("topology.yaml");
    std::fs::write(&topology, yaml).expect("topology");
    (start(&topology), dir)
}

/// Opens a running peer's ledger read-only. The open lists the peer's write-ahead logs and
/// then reads their sizes, so a log the peer retires in between fails it: try again, up to
/// 50 times.
pub fn open_live_ledger(dir: &Path) -> medfabric_peer::Store {
    let mut attempts = 0;
    loop {
        match medfabric_peer::Store::open_read_only(dir) {
            Ok(store) => return store,
            Err(e) if attempts < 50 && e.to_string().contains("No such file or directory") => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("opening {}: {e}", dir.display()),
        }
    }
}

/// Runs the `medfabric` command built with this test; (success, stdout, stderr).
pub fn medfabric(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_medfabric"))
        .args(args)
        .output()
        .expect("run medfabric");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
