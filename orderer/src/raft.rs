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
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Block, HeaderType};
use medfabric_proto::etcdraft::BlockMetadata;
use medfabric_proto::medfabric::orderer::RaftMessage;
use medfabric_proto::medfabric::orderer::cluster_client::ClusterClient;
use medfabric_types::Transaction;
use medfabric_types::block::{self, decode_block};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

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

const CF_LOG: &str = "raft_log";
const CF_RAFT: &str = "raft_state";
const CF_BLOCKS: &str = "blocks";
const CF_CHAIN: &str = "chain";
const CF_TXIDS: &str = "txids";
const FAMILIES: [&str; 5] = [CF_LOG, CF_RAFT, CF_BLOCKS, CF_CHAIN, CF_TXIDS];

fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} exists"))
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

/// Where the chain stands after the last applied entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    pub height: u64,
    pub last_hash: String,
    pub last_config: u64,
    /// Sequence of the config in force: a CONFIG envelope must carry the next one.
    #[serde(default)]
    pub config_sequence: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AppliedState {
    last_applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
}

/// The orderer's RocksDB: Raft log, vote, state machine and the block store.
#[derive(Clone)]
pub struct OrdererStore {
    db: Arc<DB>,
    /// Serialises log writes (append, truncate, purge, vote).
    log_lock: Arc<tokio::sync::Mutex<()>>,
    height: watch::Sender<u64>,
}

impl Debug for OrdererStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdererStore").field("path", &self.db.path()).finish()
    }
}

fn io<E: std::error::Error + 'static>(e: &E) -> SError {
    StorageIOError::write(e).into()
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn from_json<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, SError> {
    serde_json::from_slice(bytes).map_err(|e| StorageIOError::read(&e).into())
}

impl OrdererStore {
    /// Opens the store, writing `genesis` as block 0 the first time.
    pub fn open(path: &std::path::Path, genesis: &Block) -> anyhow::Result<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families = FAMILIES.iter().map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, families)?;
        let store = Self { db: Arc::new(db), log_lock: Arc::default(), height: watch::channel(0).0 };
        match store.tip()? {
            Some(tip) => store.height.send_replace(tip.height),
            None => {
                let config_sequence =
                    block::envelopes(genesis).first().and_then(|e| config_of(e)).map_or(0, |c| c.sequence);
                let tip = ChainTip {
                    height: 1,
                    last_hash: hex::encode(block::header_hash(block::header(genesis))),
                    last_config: 0,
                    config_sequence,
                };
                let mut batch = WriteBatch::default();
                batch.put_cf(cf(&store.db, CF_BLOCKS), 0u64.to_be_bytes(), genesis.encode_to_vec());
                batch.put_cf(cf(&store.db, CF_CHAIN), b"tip", json(&tip));
                store.db.write_opt(batch, &synced())?;
                store.height.send_replace(1)
            }
        };
        Ok(store)
    }

    pub fn tip(&self) -> anyhow::Result<Option<ChainTip>> {
        Ok(self.db.get_cf(cf(&self.db, CF_CHAIN), b"tip")?.map(|b| serde_json::from_slice(&b)).transpose()?)
    }

    /// Number of blocks stored.
    pub fn height(&self) -> u64 {
        *self.height.borrow()
    }

    /// Watches the height (for Deliver).
    pub fn watch_height(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    pub fn block(&self, number: u64) -> anyhow::Result<Option<Block>> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, CF_BLOCKS), number.to_be_bytes())? else {
            return Ok(None);
        };
        Ok(Some(decode_block(&bytes)?))
    }

    fn applied(&self) -> Result<AppliedState, SError> {
        match self.db.get_cf(cf(&self.db, CF_CHAIN), b"applied").map_err(|e| io(&e))? {
            Some(bytes) => from_json(&bytes),
            None => Ok(AppliedState::default()),
        }
    }

    fn raft_get<T: for<'a> Deserialize<'a>>(&self, key: &[u8]) -> Result<Option<T>, SError> {
        self.db.get_cf(cf(&self.db, CF_RAFT), key).map_err(|e| io(&e))?.map(|b| from_json(&b)).transpose()
    }

    /// Has this node never been part of a cluster (no vote, no log)?
    pub fn is_fresh(&self) -> anyhow::Result<bool> {
        let no_vote = self.db.get_cf(cf(&self.db, CF_RAFT), b"vote")?.is_none();
        let no_log = self.db.iterator_cf(cf(&self.db, CF_LOG), IteratorMode::Start).next().is_none();
        Ok(no_vote && no_log)
    }
}

// ---- log storage --------------------------------------------------------------------

impl RaftLogReader<TypeConfig> for OrdererStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SError> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let mut out = Vec::new();
        let log = cf(&self.db, CF_LOG);
        for item in self.db.iterator_cf(log, IteratorMode::From(&start.to_be_bytes(), Direction::Forward)) {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index =
                u64::from_be_bytes(key.as_ref().try_into().map_err(|e| StorageIOError::read_logs(&e))?);
            if !range.contains(&index) {
                break;
            }
            out.push(from_json(&value)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for OrdererStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SError> {
        let last_purged: Option<LogId<u64>> = self.raft_get(b"last_purged")?;
        let last = self
            .db
            .iterator_cf(cf(&self.db, CF_LOG), IteratorMode::End)
            .next()
            .transpose()
            .map_err(|e| StorageIOError::read_logs(&e))?
            .map(|(_, v)| from_json::<Entry<TypeConfig>>(&v))
            .transpose()?
            .map(|e| e.log_id);
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last.or(last_purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), SError> {
        let _guard = self.log_lock.lock().await;
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT), b"vote", json(vote), &synced())
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, SError> {
        self.raft_get(b"vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), SError> {
        self.db.put_cf(cf(&self.db, CF_RAFT), b"committed", json(&committed)).map_err(|e| io(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, SError> {
        Ok(self.raft_get::<Option<LogId<u64>>>(b"committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let _guard = self.log_lock.lock().await;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(cf(&self.db, CF_LOG), entry.log_id.index.to_be_bytes(), json(&entry));
        }
        let result = self.db.write_opt(batch, &synced());
        let outcome = result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(outcome);
        result.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), SError> {
        let _guard = self.log_lock.lock().await;
        let log = cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(log, log_id.index.to_be_bytes(), u64::MAX.to_be_bytes());
        batch.delete_cf(log, u64::MAX.to_be_bytes());
        self.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), SError> {
        let _guard = self.log_lock.lock().await;
        // Last-purged first, so the log state never has a hole.
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT), b"last_purged", json(&log_id), &synced())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG), 0u64.to_be_bytes(), (log_id.index + 1).to_be_bytes());
        self.db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

// ---- state machine: batches become blocks --------------------------------------------

/// The last snapshot built or installed: its meta and data.
type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

/// Applies ordered batches: builds, signs and stores the next blocks.
#[derive(Clone)]
pub struct BlockMachine {
    store: OrdererStore,
    signer: Arc<SigningIdentity>,
    /// Called with each new config block, after it is stored.
    on_config: Arc<dyn Fn(&Block) + Send + Sync>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl Debug for BlockMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockMachine").finish_non_exhaustive()
    }
}

impl BlockMachine {
    pub fn new(
        store: OrdererStore,
        signer: Arc<SigningIdentity>,
        on_config: Arc<dyn Fn(&Block) + Send + Sync>,
    ) -> Self {
        Self { store, signer, on_config, snapshot: Arc::default() }
    }
}

fn tx_id_of(envelope: &[u8]) -> Option<String> {
    let tx = Transaction::parse(envelope).ok()?;
    (tx.header_type() == HeaderType::EndorserTransaction as i32 && !tx.tx_id().is_empty())
        .then(|| tx.tx_id().to_owned())
}

/// The config a CONFIG envelope carries.
fn config_of(envelope: &[u8]) -> Option<medfabric_proto::common::Config> {
    let tx = Transaction::parse(envelope).ok()?;
    match tx.body {
        medfabric_types::TransactionBody::Config(config) => config.config,
        _ => None,
    }
}

impl RaftStateMachine<TypeConfig> for BlockMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), SError> {
        let applied = self.store.applied()?;
        Ok((applied.last_applied, applied.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<OrderResponse>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let db = self.store.db.clone();
        let mut applied = self.store.applied()?;
        let mut tip = self
            .store
            .tip()
            .map_err(|e| StorageIOError::read_state_machine(AnyError::error(e)))?
            .ok_or_else(|| {
            SError::from(StorageIOError::read_state_machine(AnyError::error("no chain tip")))
        })?;
        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        let mut configs = Vec::new();
        let mut seen_in_batch = std::collections::HashSet::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let mut response = OrderResponse::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m)
                }
                EntryPayload::Normal(request) => {
                    // An envelope whose tx id is already ordered is not ordered again:
                    // a client retrying after a lost answer cannot duplicate it.
                    let mut envelopes: Vec<Bytes> = Vec::new();
                    for text in &request.envelopes {
                        let Ok(envelope) = hex::decode(text) else { continue };
                        if let Some(tx_id) = tx_id_of(&envelope) {
                            let known =
                                db.get_cf(cf(&db, CF_TXIDS), tx_id.as_bytes()).map_err(|e| io(&e))?.is_some();
                            if known || !seen_in_batch.insert(tx_id.clone()) {
                                continue;
                            }
                            batch.put_cf(cf(&db, CF_TXIDS), tx_id.as_bytes(), tip.height.to_be_bytes());
                        }
                        envelopes.push(envelope.into());
                    }
                    // A config must be the next one and must load, checked here (in log
                    // order) because two envelopes may have passed admission with the
                    // same sequence.
                    let config = if envelopes.len() == 1 { config_of(&envelopes[0]) } else { None };
                    if let Some(config) = &config {
                        let channel = Transaction::parse(&envelopes[0])
                            .map(|t| t.channel_id().to_owned())
                            .unwrap_or_default();
                        if config.sequence != tip.config_sequence + 1 {
                            response.refused = Some(format!(
                                "config sequence {} does not follow {}",
                                config.sequence, tip.config_sequence
                            ));
                            envelopes.clear();
                        } else if let Err(e) =
                            medfabric_types::ChannelResources::from_config(&channel, config.clone())
                        {
                            response.refused = Some(format!("config does not load: {e}"));
                            envelopes.clear();
                        }
                    }
                    if !envelopes.is_empty() {
                        let previous = hex::decode(&tip.last_hash).unwrap_or_default();
                        let is_config = config.is_some();
                        if let Some(config) = &config {
                            tip.config_sequence = config.sequence;
                        }
                        let mut next = block::new_block(tip.height, &previous, envelopes);
                        if is_config {
                            tip.last_config = tip.height;
                        }
                        let consenter =
                            BlockMetadata { raft_index: entry.log_id.index, ..Default::default() };
                        block::sign_block(
                            &mut next,
                            &self.signer,
                            tip.last_config,
                            consenter.encode_to_vec().into(),
                        );
                        batch.put_cf(cf(&db, CF_BLOCKS), tip.height.to_be_bytes(), next.encode_to_vec());
                        response.block = Some(tip.height);
                        tip.height += 1;
                        tip.last_hash = hex::encode(block::header_hash(block::header(&next)));
                        if is_config {
                            configs.push(next);
                        }
                    }
                }
            }
            responses.push(response);
        }
        batch.put_cf(cf(&db, CF_CHAIN), b"tip", json(&tip));
        batch.put_cf(cf(&db, CF_CHAIN), b"applied", json(&applied));
        db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_state_machine(&e))?;
        self.store.height.send_replace(tip.height);
        for config in &configs {
            (self.on_config)(config);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        let data: ChainSnapshot = from_json(snapshot.get_ref())?;
        let db = self.store.db.clone();
        let mut batch = WriteBatch::default();
        for (number, hex_block) in data.blocks.iter().enumerate() {
            let bytes = hex::decode(hex_block)
                .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
            batch.put_cf(cf(&db, CF_BLOCKS), (number as u64).to_be_bytes(), bytes);
        }
        for tx_id in &data.tx_ids {
            batch.put_cf(cf(&db, CF_TXIDS), tx_id.as_bytes(), []);
        }
        let applied =
            AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        batch.put_cf(cf(&db, CF_CHAIN), b"tip", json(&data.tip));
        batch.put_cf(cf(&db, CF_CHAIN), b"applied", json(&applied));
        db.write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.store.height.send_replace(data.tip.height);
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        let current = self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(current.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// A snapshot holds the whole chain: a consenter that installs it has every block.
#[derive(Debug, Serialize, Deserialize)]
struct ChainSnapshot {
    tip: ChainTip,
    blocks: Vec<String>,
    tx_ids: Vec<String>,
}

impl RaftSnapshotBuilder<TypeConfig> for BlockMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let db = self.store.db.clone();
        let read = |e: &dyn std::fmt::Display| {
            SError::from(StorageIOError::read_state_machine(AnyError::error(e.to_string())))
        };
        // A consistent view: the tip, applied state and blocks of one snapshot.
        let view = db.snapshot();
        let tip: ChainTip = view
            .get_cf(cf(&db, CF_CHAIN), b"tip")
            .map_err(|e| read(&e))?
            .map(|b| from_json(&b))
            .transpose()?
            .ok_or_else(|| read(&"no chain tip"))?;
        let applied: AppliedState = view
            .get_cf(cf(&db, CF_CHAIN), b"applied")
            .map_err(|e| read(&e))?
            .map(|b| from_json(&b))
            .transpose()?
            .unwrap_or_default();
        let mut blocks = Vec::new();
        for number in 0..tip.height {
            let bytes = view
                .get_cf(cf(&db, CF_BLOCKS), number.to_be_bytes())
                .map_err(|e| read(&e))?
                .ok_or_else(|| read(&"missing block"))?;
            blocks.push(hex::encode(bytes));
        }
        let mut tx_ids = Vec::new();
        for item in view.iterator_cf(cf(&db, CF_TXIDS), IteratorMode::Start) {
            let (key, _) = item.map_err(|e| read(&e))?;
            tx_ids.push(String::from_utf8_lossy(&key).into_owned());
        }
        let data = json(&ChainSnapshot { tip: tip.clone(), blocks, tx_ids });
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id: format!("{}-{}", applied.last_applied.map_or(0, |l| l.index), tip.height),
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

// ---- network ----------------------------------------------------------------------------

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
    id: u64,
    transport: Arc<dyn Transport>,
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
