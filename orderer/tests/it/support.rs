//! Test clusters: crypto material, a genesis block, node configs and `medfabric-orderer`
//! processes on loopback; Broadcast and Deliver clients.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use medfabric_msp::{SigningIdentity, node_ou_msp_config};
use medfabric_proto::common::{Block, Envelope, Status};
use medfabric_proto::etcdraft;
use medfabric_proto::orderer::BatchSize;
use medfabric_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medfabric_proto::orderer::{BroadcastResponse, deliver_response};
use medfabric_proto::protos::{ChaincodeId, Response};
use medfabric_types::block;
use medfabric_types::deliver::{Seek, seek_envelope};
use medfabric_types::endorsement::{SimulationResult, assemble_transaction, endorse, sign_envelope};
use medfabric_types::{ChannelSpec, OrgSpec, ProposalBuilder, SignedProposal};
use prost::Message;

pub const CHANNEL: &str = "ordering";

/// An organization of the test channel (root CA and identities).
pub use medfabric_testkit::TestOrg as Org;

/// A channel with `n` consenters, an application org and its identities.
pub struct Cluster {
    /// Holds the configs, MSP folders and data directories while the cluster lives.
    _dir: tempfile::TempDir,
    pub genesis: Block,
    pub configs: Vec<PathBuf>,
    pub client: SigningIdentity,
    pub peer: SigningIdentity,
    pub stranger: SigningIdentity,
    pub orderer_admin: SigningIdentity,
}

/// Ports for consenters' cluster listeners: bound to `:0` by the OS, then released for
/// the node that will listen there (consenter addresses must be in the channel config).
/// `n` free loopback ports below the kernel's ephemeral range (32768 and up), picked at
/// random: a port from the ephemeral range, released until the orderer binds it, can be
/// taken in between as the source port of any outgoing connection of a concurrent test.
fn free_ports(n: usize) -> Vec<u16> {
    use std::hash::{BuildHasher, Hasher};
    const RANGE: std::ops::Range<u16> = 20_000..32_000;
    let random = std::collections::hash_map::RandomState::new();
    let mut ports = Vec::with_capacity(n);
    for attempt in 0u64.. {
        assert!(attempt < 10_000, "no free port in {RANGE:?}");
        let mut hasher = random.build_hasher();
        hasher.write_u64(attempt);
        let port = RANGE.start + (hasher.finish() % u64::from(RANGE.end - RANGE.start)) as u16;
        if !ports.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
            if ports.len() == n {
                break;
            }
        }
    }
    ports
}

impl Cluster {
    pub fn new(consenters: usize, max_message_count: u32, timeout_ms: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ord, org1, other) = (Org::new("OrdererMSP"), Org::new("Org1MSP"), Org::new("OtherMSP"));
        let ports = free_ports(consenters);
        let spec = ChannelSpec {
            channel_id: CHANNEL.into(),
            orderer_orgs: vec![OrgSpec::orderer(
                "Orderer",
                node_ou_msp_config("OrdererMSP", ord.ca.certificate_pem().as_bytes()),
            )],
            application_orgs: vec![OrgSpec::application(
                "Org1",
                node_ou_msp_config("Org1MSP", org1.ca.certificate_pem().as_bytes()),
            )],
            orderer_addresses: vec!["127.0.0.1:7050".into()],
            consenters: ports
                .iter()
                .map(|p| etcdraft::Consenter {
                    host: "127.0.0.1".into(),
                    port: u32::from(*p),
                    ..Default::default()
                })
                .collect(),
            raft_options: etcdraft::Options::default(),
            batch_size: BatchSize {
                max_message_count,
                absolute_max_bytes: 64 * 1024,
                preferred_max_bytes: 32 * 1024,
            },
            batch_timeout_ms: timeout_ms,
            chaincodes: Vec::new(),
            roles: Default::default(),
            record_keys: Default::default(),
        };
        let genesis = spec
            .genesis_block(medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 })
            .expect("genesis");
        let genesis_path = dir.path().join("genesis.block");
        std::fs::write(&genesis_path, genesis.encode_to_vec()).expect("genesis file");
        let configs = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let id = i + 1;
                let msp = dir.path().join(format!("orderer{id}/msp"));
                ord.write_msp_dir(&format!("orderer{id}"), "orderer", &msp);
                let config = dir.path().join(format!("orderer{id}.yaml"));
                std::fs::write(
                    &config,
                    format!(
                        "node_id: orderer{id}\nconsenter_id: {id}\nmsp_id: OrdererMSP\nmsp_dir: {}\nlisten_address: 127.0.0.1:0\ncluster_listen_address: 127.0.0.1:{port}\noperations_address: 127.0.0.1:0\ndata_dir: {}\ngenesis_block: {}\n",
                        msp.display(),
                        dir.path().join(format!("orderer{id}/data")).display(),
                        genesis_path.display()
                    ),
                )
                .expect("config");
                config
            })
            .collect();
        Self {
            genesis,
            configs,
            client: org1.issue("alice", "client"),
            peer: org1.issue("peer0", "peer"),
            stranger: other.issue("eve", "client"),
            orderer_admin: ord.issue("Admin", "admin"),
            _dir: dir,
        }
    }

    pub fn start(&self, index: usize) -> OrdererProcess {
        OrdererProcess::spawn(&self.configs[index])
    }

    pub fn start_all(&self) -> Vec<OrdererProcess> {
        (0..self.configs.len()).map(|i| self.start(i)).collect()
    }
}

/// A running `medfabric-orderer`; killed (SIGKILL) when dropped.
pub struct OrdererProcess {
    pub child: Child,
    pub broadcast: String,
    pub operations: String,
    pub consenter_id: u64,
}

impl OrdererProcess {
    pub fn spawn(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_medfabric-orderer"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("orderer starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("ready line");
        let ready: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("ready line: {line:?}"));
        Self {
            child,
            broadcast: ready["broadcast"].as_str().expect("broadcast").to_owned(),
            operations: ready["operations"].as_str().unwrap_or_default().to_owned(),
            consenter_id: ready["consenter_id"].as_u64().expect("id"),
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn client(&self) -> AtomicBroadcastClient<tonic::transport::Channel> {
        client_at(&self.broadcast).await
    }

    /// `/healthz` status code and body (0 and nothing when it does not answer).
    pub fn health(&self) -> (u16, String) {
        let operations = medfabric_sdk::http::Endpoint::plain(&self.operations);
        match medfabric_sdk::http::get(&operations, "/healthz") {
            Ok(answer) => (answer.status, answer.body),
            Err(_) => (0, String::new()),
        }
    }
}

impl Drop for OrdererProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn client_at(address: &str) -> AtomicBroadcastClient<tonic::transport::Channel> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).expect("endpoint");
    AtomicBroadcastClient::new(endpoint.connect().await.expect("connect"))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// An endorser transaction (`put key value`) signed by `client`, endorsed by `endorser`.
pub fn transaction(client: &SigningIdentity, endorser: &SigningIdentity, key: &str, seq: u64) -> Envelope {
    let signed = ProposalBuilder::new(CHANNEL, "kv")
        .arg("put")
        .arg(Bytes::copy_from_slice(key.as_bytes()))
        .arg("value")
        .sign(client, medfabric_proto::Timestamp { seconds: 1_800_000_000 + seq as i64, nanos: 0 });
    let proposal = SignedProposal::parse(&signed).expect("proposal");
    let result = SimulationResult {
        response: Response { status: 200, message: String::new(), payload: Bytes::new() },
        results: Bytes::new(),
        events: Bytes::new(),
        chaincode_id: ChaincodeId { name: "kv".into(), version: "1.0".into(), path: String::new() },
    };
    let mut envelope =
        assemble_transaction(&proposal, &[endorse(&proposal, result, endorser)]).expect("assemble");
    sign_envelope(&mut envelope, client);
    envelope
}

/// The tx ids of every envelope after the genesis block, in chain order.
pub fn tx_ids(blocks: &[Block]) -> Vec<String> {
    blocks[1..]
        .iter()
        .flat_map(|b| {
            block::envelopes(b)
                .iter()
                .map(|e| tx_id(&Envelope::decode(e.as_ref()).expect("envelope")))
                .collect::<Vec<_>>()
        })
        .collect()
}

pub fn tx_id(envelope: &Envelope) -> String {
    medfabric_types::Transaction::from_envelope(envelope.clone()).expect("parses").tx_id().to_owned()
}

/// Sends `envelopes` on one Broadcast stream and returns the answers, in order.
pub async fn broadcast(process: &OrdererProcess, envelopes: Vec<Envelope>) -> Vec<BroadcastResponse> {
    let n = envelopes.len();
    let mut client = process.client().await;
    let mut answers =
        client.broadcast(tokio_stream::iter(envelopes)).await.expect("broadcast stream").into_inner();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(30), answers.message()).await {
            Ok(Ok(Some(answer))) => out.push(answer),
            other => panic!("broadcast stream ended after {} of {n} answers: {other:?}", out.len()),
        }
    }
    out
}

/// Blocks `start..=stop` from Deliver, and the final status.
pub async fn deliver(
    address: &str,
    signer: &SigningIdentity,
    start: Seek,
    stop: Seek,
    wait: bool,
) -> (Vec<Block>, Status) {
    let now = medfabric_proto::Timestamp::from(std::time::SystemTime::now());
    deliver_at(address, signer, start, stop, wait, now).await
}

/// [`deliver`] with the request stamped `timestamp` (Deliver refuses one more than 15
/// minutes from its clock).
pub async fn deliver_at(
    address: &str,
    signer: &SigningIdentity,
    start: Seek,
    stop: Seek,
    wait: bool,
    timestamp: medfabric_proto::Timestamp,
) -> (Vec<Block>, Status) {
    let mut client = client_at(address).await;
    let seek = seek_envelope(CHANNEL, signer, start, stop, wait, timestamp);
    let mut stream = client.deliver(tokio_stream::iter(vec![seek])).await.expect("deliver").into_inner();
    let mut blocks = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("deliver answers in time")
            .expect("deliver stream")
            .expect("a status ends the reply");
        match message.r#type {
            Some(deliver_response::Type::Block(block)) => blocks.push(block),
            Some(deliver_response::Type::Status(status)) => {
                return (blocks, Status::try_from(status).unwrap_or(Status::Unknown));
            }
            None => panic!("empty deliver response"),
        }
    }
}

/// Waits until an orderer reports a leader.
pub async fn wait_for_leader(process: &OrdererProcess) {
    for _ in 0..200 {
        if process.health().0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no Raft leader on consenter {}", process.consenter_id);
}

pub fn status(answer: &BroadcastResponse) -> Status {
    Status::try_from(answer.status).unwrap_or(Status::Unknown)
}

/// A CONFIG envelope carrying the genesis config at `sequence`, signed by `signer`: what
/// no client may hand the orderer directly.
pub fn config_envelope(genesis: &Block, signer: &SigningIdentity, sequence: u64) -> Envelope {
    let mut config = genesis_config(genesis);
    config.sequence = sequence;
    let envelope = medfabric_proto::common::ConfigEnvelope { config: Some(config), last_update: None };
    medfabric_types::configtx::config_envelope(CHANNEL, &envelope, signer, timestamp())
}

fn genesis_config(genesis: &Block) -> medfabric_proto::common::Config {
    let tx = medfabric_types::Transaction::parse(&block::envelopes(genesis)[0]).expect("genesis tx");
    let medfabric_types::TransactionBody::Config(config) = tx.body else { panic!("genesis holds a config") };
    config.config.clone().expect("config")
}

fn timestamp() -> medfabric_proto::Timestamp {
    medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 }
}

/// A CONFIG_UPDATE setting the batch timeout to `timeout` (computed against the genesis
/// config), signed by `signers` and submitted by `submitter`.
pub fn batch_timeout_update(
    genesis: &Block,
    timeout: &str,
    signers: &[&SigningIdentity],
    submitter: &SigningIdentity,
) -> Envelope {
    let value = medfabric_proto::orderer::BatchTimeout { timeout: timeout.into() }.encode_to_vec();
    orderer_value_update(genesis, "BatchTimeout", value, signers, submitter)
}

/// A CONFIG_UPDATE setting the orderer group's value `key` (computed against the genesis
/// config), signed by `signers` and submitted by `submitter`.
pub fn orderer_value_update(
    genesis: &Block,
    key: &str,
    value: Vec<u8>,
    signers: &[&SigningIdentity],
    submitter: &SigningIdentity,
) -> Envelope {
    use medfabric_proto::common::ConfigUpdateEnvelope;
    use medfabric_types::configtx::{compute_update, sign_update, update_envelope};
    let original = genesis_config(genesis).channel_group.expect("channel group");
    let mut updated = original.clone();
    updated.groups.get_mut("Orderer").and_then(|o| o.values.get_mut(key)).expect("orderer value").value =
        value.into();
    let update = compute_update(CHANNEL, &original, &updated).expect("an update").encode_to_vec();
    let signatures = signers.iter().map(|s| sign_update(&update, s)).collect();
    let envelope = ConfigUpdateEnvelope { config_update: update.into(), signatures };
    update_envelope(CHANNEL, &envelope, submitter, timestamp())
}
