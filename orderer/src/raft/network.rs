//! The Raft network over gRPC: openraft's RPCs as `RaftMessage`s on the cluster service.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medfabric_proto::medfabric::orderer::RaftMessage;
use medfabric_proto::medfabric::orderer::cluster_client::ClusterClient;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::*;

/// Why a cluster message did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// The target cannot be reached (Raft backs off before retrying).
    Unreachable(String),
    /// The message was lost or failed (Raft retries).
    Failed(String),
}

/// Carries Raft messages between consenters: gRPC between processes ([`GrpcTransport`]),
/// or an in-memory network with faults in simulations.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        from: u64,
        target: u64,
        address: &str,
        message: RaftMessage,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RaftMessage, TransportError>> + Send>>;
}

/// Largest cluster message (entries and snapshot chunks).
pub const MAX_CLUSTER_MESSAGE: usize = 256 << 20;
/// Append-entries messages above this size are split (one entry always goes alone).
const APPEND_BUDGET: usize = 32 << 20;

/// Our `medfabric.orderer.Cluster` gRPC service as the transport (mutual TLS when the
/// node has TLS material).
#[derive(Debug, Default)]
pub struct GrpcTransport {
    tls: Option<medfabric_config::tls::ClientTls>,
    clients: Mutex<BTreeMap<String, ClusterClient<tonic::transport::Channel>>>,
}

impl GrpcTransport {
    pub fn new(tls: Option<medfabric_config::tls::ClientTls>) -> Self {
        Self { tls, clients: Mutex::default() }
    }

    fn client(&self, address: &str) -> Result<ClusterClient<tonic::transport::Channel>, TransportError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(address) {
            return Ok(client.clone());
        }
        let endpoint = medfabric_config::tls::endpoint(address, self.tls.as_ref())
            .map_err(|e| TransportError::Unreachable(e.to_string()))?
            .connect_timeout(Duration::from_secs(1));
        let client = ClusterClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(MAX_CLUSTER_MESSAGE)
            .max_encoding_message_size(MAX_CLUSTER_MESSAGE);
        clients.insert(address.to_owned(), client.clone());
        Ok(client)
    }
}

impl Transport for GrpcTransport {
    fn send(
        &self,
        _from: u64,
        _target: u64,
        address: &str,
        message: RaftMessage,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<RaftMessage, TransportError>> + Send>>
    {
        let client = self.client(address);
        Box::pin(async move {
            let mut client = client?;
            let mut request = tonic::Request::new(message);
            request.set_timeout(timeout);
            client.raft(request).await.map(tonic::Response::into_inner).map_err(|status| {
                match status.code() {
                    tonic::Code::Unavailable => TransportError::Unreachable(status.message().to_owned()),
                    _ => TransportError::Failed(status.message().to_owned()),
                }
            })
        })
    }
}

/// openraft's view of the transport, for one consenter.
#[derive(Clone)]
pub struct Network {
    pub(super) id: u64,
    pub(super) transport: Arc<dyn Transport>,
}

pub struct Connection {
    from: u64,
    target: u64,
    address: String,
    transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection { from: self.id, target, address: node.addr.clone(), transport: self.transport.clone() }
    }
}

#[derive(Debug)]
struct TransportFailure(String);

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransportFailure {}

impl Connection {
    async fn call<
        Req: Serialize,
        Resp: for<'a> Deserialize<'a>,
        E: std::error::Error + for<'a> Deserialize<'a>,
    >(
        &mut self,
        kind: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, RaftError<u64, E>>> {
        let message = RaftMessage { kind: kind.to_owned(), payload: json(request).into() };
        let reply = self
            .transport
            .send(self.from, self.target, &self.address, message, option.hard_ttl())
            .await
            .map_err(|e| match e {
                TransportError::Unreachable(why) => {
                    RPCError::Unreachable(Unreachable::new(&TransportFailure(why)))
                }
                TransportError::Failed(why) => RPCError::Network(NetworkError::new(&TransportFailure(why))),
            })?;
        let result: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&reply.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}
impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        // Ask openraft for fewer entries per message when a message would be too big.
        let entries = rpc.entries.len() as u64;
        if entries > 1 {
            let size: usize = rpc.entries.iter().map(|e| json(e).len()).sum();
            if size > APPEND_BUDGET {
                return Err(RPCError::PayloadTooLarge(openraft::error::PayloadTooLarge::new_entries_hint(
                    (entries / 2).max(1),
                )));
            }
        }
        self.call("append_entries", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>>
    {
        self.call("install_snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// Serves one Raft RPC received over the cluster service.
pub async fn handle_raft_message(raft: &Raft, message: RaftMessage) -> Result<RaftMessage, String> {
    let payload = match message.kind.as_str() {
        "append_entries" => {
            let request = serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
            json(&raft.append_entries(request).await)
        }
        "vote" => {
            let request = serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
            json(&raft.vote(request).await)
        }
        "install_snapshot" => {
            let request = serde_json::from_slice(&message.payload).map_err(|e| e.to_string())?;
            json(&raft.install_snapshot(request).await)
        }
        other => return Err(format!("unknown raft message {other:?}")),
    };
    Ok(RaftMessage { kind: message.kind, payload: payload.into() })
}
