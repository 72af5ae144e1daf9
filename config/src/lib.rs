//! The node configuration files `medfabric network generate` writes and the daemons read:
//! YAML, paths relative to the file, message-size limits, and [`tls`] (the `tls` section
//! and the client side of gRPC links, shared with the SDK).

pub mod tls;

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Limits a node enforces on its gRPC links.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub max_message_bytes: usize,
    /// HTTP/2 streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
}

impl Default for Limits {
    /// Fabric's 100 MiB messages and 2500 concurrent requests.
    fn default() -> Self {
        Self { max_message_bytes: 100 * 1024 * 1024, max_concurrent_streams: 2500 }
    }
}

/// Reads a node config and makes the paths `relative` picks relative to the file's
/// directory.
pub fn load<T: DeserializeOwned>(
    path: &Path,
    relative: impl FnOnce(&mut T) -> Vec<&mut PathBuf>,
) -> Result<T, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut config: T =
        serde_yaml::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for p in relative(&mut config) {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
    Ok(config)
}
