//! A peer's node config (`kind: peer`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Limits;
use crate::tls::TlsConfig;

/// Blocks the transient store keeps private data of uncommitted transactions (Fabric's
/// `transientstoreMaxBlockRetention`).
pub const DEFAULT_TRANSIENT_RETENTION: u64 = 1000;

/// The node config file of a peer. Relative paths are relative to the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub node_id: String,
    pub msp_id: String,
    pub msp_dir: PathBuf,
    pub listen_address: String,
    /// The address other nodes and clients use (default: the listen address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations_address: Option<String>,
    pub data_dir: PathBuf,
    pub channel: String,
    pub genesis_block: PathBuf,
    /// The ordering service's client addresses (Broadcast and Deliver).
    #[serde(default)]
    pub orderer_endpoints: Vec<String>,
    /// The network's other peers, for the gateway's endorsement plans.
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
    #[serde(default)]
    pub gateway: GatewaySection,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// Chaincode definition name → built-in implementation (default: each built-in under
    /// its own name).
    #[serde(default)]
    pub chaincodes: BTreeMap<String, String>,
    #[serde(default)]
    pub private_data: PrivateDataSection,
    /// How far a proposal's timestamp may be from the peer's clock (the transaction time
    /// chaincode sees).
    #[serde(default = "default_clock_skew_ms")]
    pub max_clock_skew_ms: u64,
    /// The organization's record key (PKCS#8 PEM, P-256): the private half of this org's
    /// entry in the channel config's record keys. Record data keys are wrapped to it, and
    /// only chaincode on this org's peers can release them (to grantees, under a grant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_key_file: Option<PathBuf>,
}

/// Five minutes.
pub const DEFAULT_CLOCK_SKEW_MS: u64 = 300_000;

fn default_clock_skew_ms() -> u64 {
    DEFAULT_CLOCK_SKEW_MS
}

/// The `private_data` section of a peer config (Fabric's `peer.gossip.pvtData` and
/// `ledger.pvtdataStore` settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivateDataSection {
    /// Blocks the transient store keeps private data whose transaction has not
    /// committed (Fabric's `transientstoreMaxBlockRetention`).
    pub transient_retention_blocks: u64,
    /// How long to wait for a push to one peer.
    pub push_timeout_ms: u64,
    /// How long a commit waits for missing private data from other peers (Fabric's
    /// `pullRetryThreshold`) before committing without it.
    pub pull_timeout_ms: u64,
    /// How often missing private data is fetched again (`reconcileSleepInterval`).
    pub reconcile_interval_ms: u64,
    /// Entries fetched per reconciliation pass (`reconcileBatchSize`).
    pub reconcile_batch_size: usize,
}

impl Default for PrivateDataSection {
    fn default() -> Self {
        Self {
            transient_retention_blocks: DEFAULT_TRANSIENT_RETENTION,
            push_timeout_ms: 3_000,
            pull_timeout_ms: 5_000,
            reconcile_interval_ms: 60_000,
            reconcile_batch_size: 10,
        }
    }
}

/// Another peer of the network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub msp_id: String,
    pub address: String,
    /// Its signing certificate (PEM).
    pub cert_file: PathBuf,
}

/// The `gateway` section of a peer config (Fabric's `peer.gateway`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewaySection {
    /// Requests served at once (RESOURCE_EXHAUSTED beyond).
    pub concurrency_limit: usize,
    pub endorsement_timeout_ms: u64,
    pub broadcast_timeout_ms: u64,
    /// How long CommitStatus waits for a transaction before DEADLINE_EXCEEDED.
    pub commit_status_timeout_ms: u64,
}

impl Default for GatewaySection {
    /// Fabric's defaults.
    fn default() -> Self {
        Self {
            concurrency_limit: 500,
            endorsement_timeout_ms: 30_000,
            broadcast_timeout_ms: 30_000,
            commit_status_timeout_ms: 300_000,
        }
    }
}
