//! The one adapter between medfabric and openraft: type configuration, RocksDB log
//! storage, the state machine that turns ordered batches into blocks, and the gRPC
//! network. Nothing outside this module names an openraft type.
//!
//! Entries carry batches of envelopes. Applying an entry builds the next block
//! deterministically (number, previous hash, data hash) on every consenter; each
//! consenter signs its own copy's metadata and stores it with the applied log id in one
//! synced RocksDB batch. Every log append and vote is synced before it is acknowledged.

// openraft's traits return `StorageError`, a large type; our helpers return it too.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use openraft::error::RaftError;
use openraft::{BasicNode, StorageError};
use serde::{Deserialize, Serialize};

/// A batch of envelopes to order, as one Raft entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Envelopes, hex-encoded (compact enough in JSON, and exact).
    pub envelopes: Vec<String>,
}

/// What applying an entry produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderResponse {
    pub block: Option<u64>,
    /// Why a CONFIG envelope was not ordered (stale sequence, or it does not load).
    #[serde(default)]
    pub refused: Option<String>,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = OrderRequest,
        R = OrderResponse,
        NodeId = u64,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
type SError = StorageError<u64>;

mod machine;
mod network;
mod store;

pub use machine::*;
pub use network::*;
pub use store::*;

/// Raft timing for consenters on a LAN (or loopback).
pub fn config() -> anyhow::Result<Arc<openraft::Config>> {
    let config = openraft::Config {
        cluster_name: "medfabric".into(),
        // openraft 0.9 gives an append-entries message `heartbeat_interval` to complete.
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        install_snapshot_timeout: 5000,
        max_payload_entries: 16,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        ..Default::default()
    };
    Ok(Arc::new(config.validate()?))
}

/// Starts this consenter's Raft instance; the first consenter of a fresh cluster
/// initializes it with every member.
pub async fn start(
    id: u64,
    members: BTreeMap<u64, String>,
    store: OrdererStore,
    machine: BlockMachine,
    transport: Arc<dyn Transport>,
) -> anyhow::Result<Raft> {
    let fresh = store.is_fresh()?;
    let raft = Raft::new(id, config()?, Network { id, transport }, store, machine).await?;
    if fresh && id == members.keys().next().copied().unwrap_or(id) {
        let nodes: BTreeMap<u64, BasicNode> =
            members.into_iter().map(|(id, addr)| (id, BasicNode { addr })).collect();
        match raft.initialize(nodes).await {
            Ok(()) => {}
            Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(raft)
}

/// The current leader and its cluster address, as this node knows them.
pub fn leader(raft: &Raft) -> Option<(u64, String)> {
    let metrics = raft.metrics().borrow().clone();
    let leader = metrics.current_leader?;
    let node = metrics.membership_config.membership().get_node(&leader)?.addr.clone();
    Some((leader, node))
}

/// Stops this consenter's Raft instance (its storage stays as it is).
pub async fn stop(raft: &Raft) {
    let _ = raft.shutdown().await;
}

/// Raft leader id and term, for metrics and health.
pub fn status(raft: &Raft) -> (Option<u64>, u64, bool) {
    let metrics = raft.metrics().borrow().clone();
    (metrics.current_leader, metrics.current_term, metrics.state == openraft::ServerState::Leader)
}

/// Orders one batch: returns once it is committed and applied (block numbers of the
/// batch, if any), or why not (`Err(Some(leader))` when another node leads).
pub async fn order(raft: &Raft, envelopes: &[Bytes]) -> Result<Option<u64>, OrderError> {
    let request = OrderRequest { envelopes: envelopes.iter().map(hex::encode).collect() };
    match raft.client_write(request).await {
        Ok(response) => match response.data.refused {
            Some(why) => Err(OrderError::Refused(why)),
            None => Ok(response.data.block),
        },
        Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
            Err(OrderError::NotLeader(f.leader_id))
        }
        Err(e) => Err(OrderError::Failed(e.to_string())),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    NotLeader(Option<u64>),
    /// The batch was ordered but its config was not applied.
    Refused(String),
    Failed(String),
}
