//! The dependency rules of ARCHITECTURE.md ("Layers"), checked against the manifests.
//!
//! Each workspace crate may depend (as a normal dependency) only on the workspace crates
//! its row names; every crate has a row, so a new crate has to be placed. The crates an
//! application links (the SDK and everything under it) must not pull in the server
//! machinery: RocksDB, openraft, axum.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

/// Crate → the workspace crates it may depend on.
const LAYERS: &[(&str, &[&str])] = &[
    ("medfabric-proto", &[]),
    ("medfabric-config", &[]),
    ("medfabric-ca", &[]),
    ("medfabric-msp", &["medfabric-proto"]),
    ("medfabric-types", &["medfabric-proto", "medfabric-msp"]),
    ("medfabric-shim", &["medfabric-proto", "medfabric-msp"]),
    ("medfabric-kv", &["medfabric-shim", "medfabric-msp"]),
    ("medfabric-medical-api", &[]),
    ("medfabric-medical", &["medfabric-shim", "medfabric-medical-api"]),
    (
        "medfabric-sdk",
        &[
            "medfabric-proto",
            "medfabric-msp",
            "medfabric-types",
            "medfabric-config",
            "medfabric-ca",
            "medfabric-medical-api",
        ],
    ),
    ("medfabric-ca-server", &["medfabric-ca", "medfabric-msp", "medfabric-config", "medfabric-node"]),
    ("medfabric-node", &["medfabric-proto", "medfabric-msp", "medfabric-types"]),
    (
        "medfabric-orderer",
        &["medfabric-proto", "medfabric-msp", "medfabric-types", "medfabric-config", "medfabric-node"],
    ),
    (
        "medfabric-peer",
        &[
            "medfabric-proto",
            "medfabric-msp",
            "medfabric-types",
            "medfabric-config",
            "medfabric-node",
            "medfabric-ca",
            "medfabric-shim",
            "medfabric-kv",
            "medfabric-medical",
            "medfabric-medical-api",
        ],
    ),
    (
        "medfabric-network",
        &[
            "medfabric-proto",
            "medfabric-msp",
            "medfabric-types",
            "medfabric-config",
            "medfabric-ca",
            "medfabric-sdk",
        ],
    ),
    (
        "medfabric-bench",
        &[
            "medfabric-proto",
            "medfabric-msp",
            "medfabric-types",
            "medfabric-ca",
            "medfabric-sdk",
            "medfabric-network",
            "medfabric-peer",
            "medfabric-orderer",
        ],
    ),
    (
        "medfabric-cli",
        &[
            "medfabric-proto",
            "medfabric-config",
            "medfabric-msp",
            "medfabric-types",
            "medfabric-ca",
            "medfabric-sdk",
            "medfabric-network",
            "medfabric-bench",
            "medfabric-peer",
        ],
    ),
    ("medfabric-testkit", &["medfabric-ca", "medfabric-msp", "medfabric-proto"]),
];

/// Crates an application links when it depends on the SDK (or on a crate under it), and
/// the chaincodes (the shim and what they use).
const CLIENT_SIDE: &[&str] = &[
    "medfabric-shim",
    "medfabric-kv",
    "medfabric-medical",
    "medfabric-proto",
    "medfabric-config",
    "medfabric-ca",
    "medfabric-msp",
    "medfabric-types",
    "medfabric-medical-api",
    "medfabric-sdk",
];

/// What the client side never pulls in.
const SERVER_ONLY: &[&str] = &["rocksdb", "librocksdb-sys", "openraft", "axum", "axum-core"];

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// The workspace, from the manifest directory cargo gives the test when it runs it (not
/// the one it was compiled in: a test binary built in another checkout stays fresh).
fn workspace_root() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    PathBuf::from(manifest).join("..")
}

/// Workspace crate → its normal workspace dependencies, from `cargo metadata`.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline", "--locked"])
        .output()
        .expect("runs cargo metadata");
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let members: BTreeSet<String> =
        packages.iter().map(|p| p["name"].as_str().expect("name").to_owned()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().expect("dependency name").to_owned())
                .filter(|name| members.contains(name))
                .collect();
            (p["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn every_crate_depends_only_on_the_crates_its_layer_allows() {
    let actual = workspace_dependencies();
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        LAYERS.iter().map(|(name, deps)| (*name, deps.iter().copied().collect())).collect();
    let mut problems = Vec::new();
    for (name, deps) in &actual {
        let Some(allowed) = allowed.get(name.as_str()) else {
            problems.push(format!("{name} has no row in LAYERS (tidy.rs and ARCHITECTURE.md)"));
            continue;
        };
        for dep in deps {
            if !allowed.contains(dep.as_str()) {
                problems.push(format!("{name} depends on {dep}, which its layer does not allow"));
            }
        }
    }
    for name in allowed.keys() {
        if !actual.contains_key(*name) {
            problems.push(format!("LAYERS names {name}, which is not a workspace crate"));
        }
    }
    assert!(problems.is_empty(), "dependency rules broken:\n{}", problems.join("\n"));
}

/// The crates (by name) `cargo tree -p name` lists as normal dependencies. `-p` resolves
/// features for this crate alone, as an application depending on it would (tonic without
/// `router`, so without axum).
fn pulled_in(name: &str) -> BTreeSet<String> {
    let output = cargo()
        .args(["tree", "-p", name, "-e", "normal", "--prefix", "none", "-f", "{p}", "--offline", "--locked"])
        .output()
        .expect("runs cargo tree");
    assert!(output.status.success(), "cargo tree -p {name}: {}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8_lossy(&output.stdout);
    let pulled: BTreeSet<String> =
        tree.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect();
    assert!(pulled.contains(name), "cargo tree -p {name} does not list {name}:\n{tree}");
    pulled
}

#[test]
fn the_sdk_and_the_crates_under_it_pull_in_no_server_machinery() {
    for name in CLIENT_SIDE {
        let pulled = pulled_in(name);
        let forbidden: Vec<&&str> = SERVER_ONLY.iter().filter(|c| pulled.contains(**c)).collect();
        assert!(forbidden.is_empty(), "{name} pulls in {forbidden:?}");
    }
    // The check sees them where they are.
    let peer = pulled_in("medfabric-peer");
    for server_only in ["rocksdb", "librocksdb-sys", "axum"] {
        assert!(peer.contains(server_only), "cargo tree -p medfabric-peer lists no {server_only}");
    }
    assert!(
        pulled_in("medfabric-orderer").contains("openraft"),
        "cargo tree -p medfabric-orderer lists no openraft"
    );
}
