//! An orderer's node config (`kind: orderer`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Limits;
use crate::tls::TlsConfig;

/// The node config file of an orderer. Relative paths are relative to the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdererConfig {
    pub node_id: String,
    pub consenter_id: u64,
    pub msp_id: String,
    pub msp_dir: PathBuf,
    pub listen_address: String,
    pub cluster_listen_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_address: Option<String>,
    pub data_dir: PathBuf,
    pub genesis_block: PathBuf,
    #[serde(default)]
    pub limits: Limits,
    /// Consenter id → cluster address, overriding the channel config's consenters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster_peers: BTreeMap<u64, String>,
    /// TLS for the client links; the cluster links always require mutual TLS when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}
