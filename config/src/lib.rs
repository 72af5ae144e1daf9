//! The node configuration files `medfabric network generate` writes and the daemons read,
//! as one set of types: [`peer::PeerConfig`], [`orderer::OrdererConfig`],
//! [`ca::CaConfig`], with [`Limits`] and [`tls`] (the `tls` section, and the client side
//! of gRPC links shared with the SDK). Files are YAML with a `kind` (`peer`, `orderer`,
//! `ca`) and paths relative to the file; a key no type knows is an error.

pub mod ca;
pub mod orderer;
pub mod peer;
pub mod secret;
pub mod tls;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use ca::CaConfig;
pub use orderer::OrdererConfig;
pub use peer::PeerConfig;

/// Limits a node enforces on its gRPC links.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_message_bytes: usize,
    /// HTTP/2 streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Accepted and ignored: networks generated before these types wrote it, and nothing
    /// ever read it. Never written.
    #[serde(default, skip_serializing, rename = "max_connections")]
    pub legacy_max_connections: Option<u32>,
}

impl Default for Limits {
    /// Fabric's 100 MiB messages and 2500 concurrent requests.
    fn default() -> Self {
        Self {
            max_message_bytes: 100 * 1024 * 1024,
            max_concurrent_streams: 2500,
            legacy_max_connections: None,
        }
    }
}

/// A kind of node config file.
pub trait NodeFile: Serialize + DeserializeOwned {
    /// The file's `kind`.
    const KIND: &'static str;
    /// The paths in the file, made relative to its directory on load.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf>;
    /// Fills in defaults that depend on the file's directory `base` (after `paths_mut`).
    fn resolve(&mut self, _base: &Path) {}
}

impl NodeFile for PeerConfig {
    const KIND: &'static str = "peer";
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.msp_dir, &mut self.data_dir, &mut self.genesis_block];
        paths.extend(self.peers.iter_mut().map(|p| &mut p.cert_file));
        paths.extend(self.record_key_file.as_mut());
        if let Some(tls) = &mut self.tls {
            paths.extend(tls.paths_mut());
        }
        paths
    }
}

impl NodeFile for OrdererConfig {
    const KIND: &'static str = "orderer";
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.msp_dir, &mut self.data_dir, &mut self.genesis_block];
        if let Some(tls) = &mut self.tls {
            paths.extend(tls.paths_mut());
        }
        paths
    }
}

impl NodeFile for CaConfig {
    const KIND: &'static str = "ca";
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.cert_file, &mut self.key_file];
        if !self.registry_file.as_os_str().is_empty() {
            paths.push(&mut self.registry_file);
        }
        paths.extend(self.data_dir.as_mut());
        paths.extend(self.seed_identities.iter_mut().filter_map(|s| s.certificate_file.as_mut()));
        if let Some(tls) = &mut self.tls {
            paths.push(&mut tls.cert_file);
            paths.push(&mut tls.key_file);
            paths.extend(tls.ca_file.as_mut());
        }
        paths
    }

    /// The registry defaults to `registry.json` in `data_dir`, else beside the file.
    fn resolve(&mut self, base: &Path) {
        if self.registry_file.as_os_str().is_empty() {
            self.registry_file = self.data_dir.as_deref().unwrap_or(base).join("registry.json");
        }
    }
}

impl PeerConfig {
    /// Reads a peer's node config ([`load`]).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load(path).map_err(anyhow::Error::msg)
    }
}

impl OrdererConfig {
    /// Reads an orderer's node config ([`load`]).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load(path).map_err(anyhow::Error::msg)
    }
}

impl CaConfig {
    /// Reads a CA server's config ([`load`]).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        load(path).map_err(anyhow::Error::msg)
    }
}

/// Any node config file.
#[derive(Debug, Clone)]
pub enum NodeConfig {
    Peer(PeerConfig),
    Orderer(OrdererConfig),
    Ca(CaConfig),
}

fn read(path: &Path) -> Result<serde_yaml::Mapping, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match serde_yaml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))? {
        serde_yaml::Value::Mapping(map) => Ok(map),
        _ => Err(format!("parsing {}: not a YAML mapping", path.display())),
    }
}

fn kind_of(path: &Path, map: &mut serde_yaml::Mapping) -> Result<Option<String>, String> {
    match map.remove("kind") {
        None => Ok(None),
        Some(serde_yaml::Value::String(kind)) => Ok(Some(kind)),
        Some(_) => Err(format!("parsing {}: kind is not a string", path.display())),
    }
}

fn typed<T: NodeFile>(path: &Path, map: serde_yaml::Mapping) -> Result<T, String> {
    let mut config: T = serde_yaml::from_value(serde_yaml::Value::Mapping(map))
        .map_err(|e| format!("parsing {} ({} config): {e}", path.display(), T::KIND))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in config.paths_mut() {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    config.resolve(base);
    Ok(config)
}

/// Reads a node config of kind `T` (a file without `kind` is taken as one) and makes its
/// paths relative to the file's directory.
pub fn load<T: NodeFile>(path: &Path) -> Result<T, String> {
    let mut map = read(path)?;
    match kind_of(path, &mut map)? {
        Some(kind) if kind != T::KIND => {
            Err(format!("{} is a {kind} config; expected kind {}", path.display(), T::KIND))
        }
        _ => typed(path, map),
    }
}

/// Reads a node config of any kind (the file must name it); `None` for a kind other
/// than peer, orderer or ca (a file for some other tool).
pub fn load_any(path: &Path) -> Result<Option<NodeConfig>, String> {
    let mut map = read(path)?;
    match kind_of(path, &mut map)?.as_deref() {
        Some(PeerConfig::KIND) => typed(path, map).map(|c| Some(NodeConfig::Peer(c))),
        Some(OrdererConfig::KIND) => typed(path, map).map(|c| Some(NodeConfig::Orderer(c))),
        Some(CaConfig::KIND) => typed(path, map).map(|c| Some(NodeConfig::Ca(c))),
        Some(_) => Ok(None),
        None => Err(format!("{}: no kind (peer, orderer or ca)", path.display())),
    }
}

/// The YAML of a node config file: `kind` first, then the config's fields.
pub fn to_yaml<T: NodeFile>(config: &T) -> Result<String, String> {
    let value = serde_yaml::to_value(config).map_err(|e| e.to_string())?;
    let serde_yaml::Value::Mapping(fields) = value else {
        return Err(format!("a {} config is not a mapping", T::KIND));
    };
    let mut map = serde_yaml::Mapping::new();
    map.insert("kind".into(), T::KIND.into());
    map.extend(fields);
    serde_yaml::to_string(&map).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    const ORDERER: &str = "node_id: o1\nconsenter_id: 1\nmsp_id: OrdererMSP\nmsp_dir: msp\n\
        listen_address: 127.0.0.1:7050\ncluster_listen_address: 127.0.0.1:7060\n\
        data_dir: data\ngenesis_block: genesis.block\n";

    #[test]
    fn a_written_config_reads_back_with_paths_relative_to_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = write(dir.path(), "o1.yaml", ORDERER);
        let config: OrdererConfig = load(&path).expect("loads");
        assert_eq!(config.msp_dir, dir.path().join("msp"));
        assert_eq!(config.limits.max_message_bytes, Limits::default().max_message_bytes);
        let mut relative: OrdererConfig = serde_yaml::from_str(ORDERER).expect("parses");
        relative.limits.max_concurrent_streams = 7;
        let yaml = to_yaml(&relative).expect("yaml");
        assert!(yaml.starts_with("kind: orderer\n"), "{yaml}");
        let path = write(dir.path(), "o2.yaml", &yaml);
        let Some(NodeConfig::Orderer(back)) = load_any(&path).expect("loads") else {
            panic!("not an orderer")
        };
        assert_eq!(back.limits.max_concurrent_streams, 7);
        assert_eq!(back.genesis_block, dir.path().join("genesis.block"));
    }

    #[test]
    fn unknown_keys_and_wrong_kinds_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let typo = write(dir.path(), "typo.yaml", &format!("{ORDERER}max_conections: 10\n"));
        let error = load::<OrdererConfig>(&typo).expect_err("unknown key");
        assert!(error.contains("unknown field `max_conections`"), "{error}");
        let nested = write(dir.path(), "nested.yaml", &format!("{ORDERER}limits:\n  max_streams: 10\n"));
        let error = load::<OrdererConfig>(&nested).expect_err("unknown nested key");
        assert!(error.contains("unknown field `max_streams`"), "{error}");
        let peer = write(dir.path(), "peer.yaml", &format!("kind: peer\n{ORDERER}"));
        let error = load::<OrdererConfig>(&peer).expect_err("wrong kind");
        assert!(error.contains("is a peer config; expected kind orderer"), "{error}");
        let error = load_any(&typo).expect_err("no kind");
        assert!(error.contains("no kind"), "{error}");
        let other = write(dir.path(), "other.yaml", "kind: gossip\nanything: 1\n");
        assert!(load_any(&other).expect("another tool's file").is_none());
    }

    #[test]
    fn files_generated_before_the_types_still_load() {
        let dir = tempfile::tempdir().expect("dir");
        let old = write(
            dir.path(),
            "o.yaml",
            &format!("kind: orderer\n{ORDERER}limits:\n  max_message_bytes: 5\n  max_connections: 1024\n"),
        );
        let config: OrdererConfig = load(&old).expect("loads");
        assert_eq!(config.limits.max_message_bytes, 5);
        assert!(!to_yaml(&config).expect("yaml").contains("max_connections"), "never written");
        let ca = write(
            dir.path(),
            "ca.yaml",
            "kind: ca\nca_name: ca.org\nmsp_id: OrgMSP\nlisten_address: 127.0.0.1:7054\nca_cert_file: ca.pem\n\
             ca_key_file: key.pem\nbootstrap_admin:\n  id: admin\n  secret: s\n",
        );
        let config: CaConfig = load(&ca).expect("loads");
        assert_eq!((config.name.as_str(), config.bootstrap.id.as_str()), ("ca.org", "admin"));
        assert_eq!(config.cert_file, dir.path().join("ca.pem"));
        // No registry_file and no data_dir: beside the file, wherever the CA is started.
        assert_eq!(config.registry_file, dir.path().join("registry.json"));
    }
}
