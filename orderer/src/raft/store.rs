//! The consenter's RocksDB: the Raft log and vote, and the chain (blocks, tip, tx ids)
//! the state machine writes, every write synced before it is acknowledged.

// openraft's traits return `StorageError`, a large type; our helpers return it too.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use medfabric_proto::common::Block;
use medfabric_types::block::{self, decode_block};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{BasicNode, Entry, LogId, RaftLogReader, StorageIOError, StoredMembership, Vote};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::*;

pub(super) const CF_LOG: &str = "raft_log";
pub(super) const CF_RAFT: &str = "raft_state";
pub(super) const CF_BLOCKS: &str = "blocks";
pub(super) const CF_CHAIN: &str = "chain";
pub(super) const CF_TXIDS: &str = "txids";
pub(super) const FAMILIES: [&str; 5] = [CF_LOG, CF_RAFT, CF_BLOCKS, CF_CHAIN, CF_TXIDS];

pub(super) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} exists"))
}

pub(super) fn synced() -> WriteOptions {
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
pub(super) struct AppliedState {
    pub(super) last_applied: Option<LogId<u64>>,
    pub(super) membership: StoredMembership<u64, BasicNode>,
}

/// The orderer's RocksDB: Raft log, vote, state machine and the block store.
#[derive(Clone)]
pub struct OrdererStore {
    pub(super) db: Arc<DB>,
    /// Serialises log writes (append, truncate, purge, vote).
    log_lock: Arc<tokio::sync::Mutex<()>>,
    pub(super) height: watch::Sender<u64>,
}

impl Debug for OrdererStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdererStore").field("path", &self.db.path()).finish()
    }
}

pub(super) fn io<E: std::error::Error + 'static>(e: &E) -> SError {
    StorageIOError::write(e).into()
}

pub(super) fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

pub(super) fn from_json<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> Result<T, SError> {
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
                let config_sequence = block::envelopes(genesis)
                    .first()
                    .and_then(|e| config_of(e))
                    .and_then(|(_, c)| c.config)
                    .map_or(0, |c| c.sequence);
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

    pub(super) fn applied(&self) -> Result<AppliedState, SError> {
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
