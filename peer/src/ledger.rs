//! The peer's ledger on RocksDB: one database per peer, column families per store
//! (`docs/design.md`, "Ledger storage"), every key prefixed with its channel.
//!
//! | column family | key (after `channel \0`) | value |
//! |---|---|---|
//! | `blocks` | block number (u64 BE) | the block as committed (with TRANSACTIONS_FILTER) |
//! | `block_hash` | header hash | block number |
//! | `txid` | tx id | block number, position (u32 BE), validation code |
//! | `state` | namespace `\0` key | version, key metadata, value ([`encode_value`]) |
//! | `history` | namespace `\0` len(key) key block tx | — (values are read back from the block) |
//! | `meta` | `height`, `last_hash`, `last_config` | savepoint of the last committed block |
//! | `pvt` | private state, private data store and its indexes ([`crate::pvtdata`]) | |
//! | `transient` | private write sets between endorsement and commit ([`crate::pvtdata`]) | |
//!
//! A block is committed with one synced `WriteBatch` holding all of the above, so a
//! crash leaves the ledger at the previous block or the new one, never in between.
//! Readers use RocksDB snapshots, which likewise see whole blocks only.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_proto::common::Block;
use medfabric_proto::queryresult::KeyModification;
use medfabric_shim::{ShimError, ShimResult, StateView, VersionedValue};
use medfabric_types::block::{self, decode_block};
use prost::Message;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions,
};
use sha2::{Digest, Sha256};

const CF_BLOCKS: &str = "blocks";
const CF_BLOCK_HASH: &str = "block_hash";
const CF_TXID: &str = "txid";
const CF_STATE: &str = "state";
const CF_HISTORY: &str = "history";
const CF_META: &str = "meta";
pub(crate) const CF_PVT: &str = "pvt";
pub(crate) const CF_TRANSIENT: &str = "transient";
const COLUMN_FAMILIES: [&str; 8] =
    [CF_BLOCKS, CF_BLOCK_HASH, CF_TXID, CF_STATE, CF_HISTORY, CF_META, CF_PVT, CF_TRANSIENT];

const META_HEIGHT: &[u8] = b"height";
const META_LAST_HASH: &[u8] = b"last_hash";
const META_LAST_CONFIG: &[u8] = b"last_config";

/// Every column family of a peer's database.
pub(crate) fn column_families() -> &'static [&'static str] {
    &COLUMN_FAMILIES
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Rejected(String),
}

pub type LedgerResult<T> = Result<T, LedgerError>;

/// The RocksDB database of one peer.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.db.path()).finish()
    }
}

impl Store {
    pub fn open(path: &Path) -> LedgerResult<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let families = COLUMN_FAMILIES.iter().map(|name| {
            let mut cf = Options::default();
            // Private data is stored uncompressed, so a byte scan of the files proves
            // where it is and is not.
            let private = [CF_PVT, CF_TRANSIENT].contains(name);
            cf.set_compression_type(if private {
                rocksdb::DBCompressionType::None
            } else {
                rocksdb::DBCompressionType::Lz4
            });
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = DB::open_cf_descriptors(&options, path, families)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Opens an existing ledger for reading only; a running peer may hold it (exports,
    /// audits, comparisons of peers).
    pub fn open_read_only(path: &Path) -> LedgerResult<Self> {
        let options = Options::default();
        let db = DB::open_cf_for_read_only(&options, path, COLUMN_FAMILIES, false)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The ledger of one channel in this database.
    pub fn channel(&self, channel_id: &str) -> LedgerResult<ChannelLedger> {
        if channel_id.is_empty() || channel_id.contains('\0') {
            return Err(LedgerError::Rejected(format!("bad channel name {channel_id:?}")));
        }
        let mut prefix = channel_id.as_bytes().to_vec();
        prefix.push(0);
        let ledger = ChannelLedger { db: self.db.clone(), channel_id: channel_id.to_owned(), prefix };
        Ok(ledger)
    }
}

/// What one block changes in the ledger; committed atomically by
/// [`ChannelLedger::commit`].
#[derive(Debug, Default)]
pub struct BlockUpdate {
    /// The final state of every key the block's valid transactions changed: `None`
    /// deletes. Keys are `(namespace, key)`.
    pub state: BTreeMap<(String, String), Option<VersionedValue>>,
    /// Keys written by valid transactions: `(namespace, key, tx position)`.
    pub history: Vec<(String, String, u64)>,
    /// Private data changes: raw writes to the `pvt` and `transient` families
    /// (`crate::pvtdata` owns their layout).
    pub private: Vec<RawOp>,
}

/// A put (`Some`) or delete (`None`) in one column family, keys already prefixed.
#[derive(Debug, Clone)]
pub struct RawOp {
    pub family: &'static str,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Where the ledger stands: the next block number and the last header hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Savepoint {
    pub height: u64,
    pub last_hash: [u8; 32],
    pub last_config: u64,
}

/// One channel's ledger.
#[derive(Clone)]
pub struct ChannelLedger {
    pub(crate) db: Arc<DB>,
    channel_id: String,
    prefix: Vec<u8>,
}

impl std::fmt::Debug for ChannelLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelLedger").field("channel_id", &self.channel_id).finish()
    }
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> &'a ColumnFamily {
    // Every family is created at open; a missing one is a programming error.
    db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} exists"))
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> LedgerResult<u64> {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| LedgerError::Corrupt("truncated number".into()))
}

/// `version ‖ metadata ‖ value`: block u64, tx u64, entry count u32, then per entry
/// name length u32, name, value length u32, value; the rest is the value.
pub fn encode_value(value: &VersionedValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + value.value.len());
    out.extend_from_slice(&value.version.0.to_be_bytes());
    out.extend_from_slice(&value.version.1.to_be_bytes());
    out.extend_from_slice(&len32(value.metadata.len()));
    for (name, entry) in &value.metadata {
        out.extend_from_slice(&len32(name.len()));
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&len32(entry.len()));
        out.extend_from_slice(entry);
    }
    out.extend_from_slice(&value.value);
    out
}

/// A length as u32 big-endian; values and names are bounded far below 4 GiB by the
/// message size limits.
fn len32(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes()
}

pub fn decode_value(bytes: &[u8]) -> LedgerResult<VersionedValue> {
    let corrupt = || LedgerError::Corrupt("state value".into());
    let u32_at = |at: usize| -> LedgerResult<usize> {
        let raw: [u8; 4] = bytes.get(at..at + 4).and_then(|b| b.try_into().ok()).ok_or_else(corrupt)?;
        Ok(u32::from_be_bytes(raw) as usize)
    };
    let version = (u64_at(bytes, 0)?, u64_at(bytes, 8)?);
    let count = u32_at(16)?;
    let mut at = 20;
    let mut metadata = BTreeMap::new();
    for _ in 0..count {
        let name_len = u32_at(at)?;
        at += 4;
        let name = bytes.get(at..at + name_len).ok_or_else(corrupt)?;
        at += name_len;
        let len = u32_at(at)?;
        at += 4;
        let entry = bytes.get(at..at + len).ok_or_else(corrupt)?;
        at += len;
        metadata.insert(String::from_utf8_lossy(name).into_owned(), Bytes::copy_from_slice(entry));
    }
    let value = bytes.get(at..).ok_or_else(corrupt)?;
    Ok(VersionedValue { value: Bytes::copy_from_slice(value), version, metadata })
}

impl ChannelLedger {
    pub fn channel_id(&self) -> &str {
        &self.channel_id
    }

    pub(crate) fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut key = self.prefix.clone();
        for part in parts {
            key.extend_from_slice(part);
        }
        key
    }

    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    pub(crate) fn state_key(&self, namespace: &str, key: &str) -> Vec<u8> {
        self.key(&[namespace.as_bytes(), b"\0", key.as_bytes()])
    }

    fn history_prefix(&self, namespace: &str, key: &str) -> Vec<u8> {
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes();
        self.key(&[namespace.as_bytes(), b"\0", &len, key.as_bytes()])
    }

    /// The last committed block, or `None` for a ledger without blocks.
    pub fn savepoint(&self) -> LedgerResult<Option<Savepoint>> {
        let meta = cf(&self.db, CF_META);
        let Some(height) = self.db.get_cf(meta, self.key(&[META_HEIGHT]))? else { return Ok(None) };
        let last_hash = self
            .db
            .get_cf(meta, self.key(&[META_LAST_HASH]))?
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .ok_or_else(|| LedgerError::Corrupt("savepoint without last hash".into()))?;
        let last_config = self
            .db
            .get_cf(meta, self.key(&[META_LAST_CONFIG]))?
            .map(|b| u64_at(&b, 0))
            .transpose()?
            .unwrap_or(0);
        Ok(Some(Savepoint { height: u64_at(&height, 0)?, last_hash, last_config }))
    }

    /// Number of committed blocks.
    pub fn height(&self) -> LedgerResult<u64> {
        Ok(self.savepoint()?.map_or(0, |s| s.height))
    }

    /// Commits `block` (already validated, its TRANSACTIONS_FILTER set) and `update`
    /// in one synced write. The block must be the next one.
    pub fn commit(&self, block: &Block, update: &BlockUpdate, is_config: bool) -> LedgerResult<Savepoint> {
        let header = block::header(block);
        let savepoint = self.savepoint()?;
        let expected = savepoint.map_or(0, |s| s.height);
        if header.number != expected {
            return Err(LedgerError::Rejected(format!(
                "block {} is not the next block (height {expected})",
                header.number
            )));
        }
        if let Some(s) = savepoint
            && header.previous_hash.as_ref() != s.last_hash
        {
            return Err(LedgerError::Rejected(format!(
                "block {}: unexpected previous block hash",
                header.number
            )));
        }
        let number = header.number;
        let hash = block::header_hash(header);
        let number_bytes = number.to_be_bytes();
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_BLOCKS), self.key(&[&number_bytes]), block.encode_to_vec());
        batch.put_cf(cf(&self.db, CF_BLOCK_HASH), self.key(&[&hash]), number_bytes);
        let filter = block::transactions_filter(block);
        let txid_cf = cf(&self.db, CF_TXID);
        let mut seen = std::collections::HashSet::new();
        for (index, envelope) in block::envelopes(block).iter().enumerate() {
            let Some(tx_id) = envelope_tx_id(envelope) else { continue };
            // The first occurrence of a tx id keeps the index entry.
            if !seen.insert(tx_id.clone())
                || self.db.get_cf(txid_cf, self.key(&[tx_id.as_bytes()]))?.is_some()
            {
                continue;
            }
            let mut location = number_bytes.to_vec();
            location.extend_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
            location.push(filter.get(index).copied().unwrap_or(0));
            batch.put_cf(txid_cf, self.key(&[tx_id.as_bytes()]), location);
        }
        let state_cf = cf(&self.db, CF_STATE);
        for ((namespace, key), value) in &update.state {
            let id = self.state_key(namespace, key);
            match value {
                Some(value) => batch.put_cf(state_cf, id, encode_value(value)),
                None => batch.delete_cf(state_cf, id),
            }
        }
        let history_cf = cf(&self.db, CF_HISTORY);
        for (namespace, key, tx) in &update.history {
            let mut id = self.history_prefix(namespace, key);
            id.extend_from_slice(&number_bytes);
            id.extend_from_slice(&tx.to_be_bytes());
            batch.put_cf(history_cf, id, []);
        }
        for op in &update.private {
            let family = cf(&self.db, op.family);
            match &op.value {
                Some(value) => batch.put_cf(family, &op.key, value),
                None => batch.delete_cf(family, &op.key),
            }
        }
        let last_config = if is_config { number } else { savepoint.map_or(0, |s| s.last_config) };
        let meta = cf(&self.db, CF_META);
        batch.put_cf(meta, self.key(&[META_HEIGHT]), (number + 1).to_be_bytes());
        batch.put_cf(meta, self.key(&[META_LAST_HASH]), hash);
        batch.put_cf(meta, self.key(&[META_LAST_CONFIG]), last_config.to_be_bytes());
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options)?;
        Ok(Savepoint { height: number + 1, last_hash: hash, last_config })
    }

    pub fn block(&self, number: u64) -> LedgerResult<Option<Block>> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, CF_BLOCKS), self.key(&[&number.to_be_bytes()]))? else {
            return Ok(None);
        };
        decode_block(&bytes).map(Some).map_err(|e| LedgerError::Corrupt(format!("block {number}: {e}")))
    }

    pub fn block_number_by_hash(&self, hash: &[u8]) -> LedgerResult<Option<u64>> {
        self.db.get_cf(cf(&self.db, CF_BLOCK_HASH), self.key(&[hash]))?.map(|b| u64_at(&b, 0)).transpose()
    }

    /// Where a tx id was committed: block number, position, validation code.
    pub fn transaction(&self, tx_id: &str) -> LedgerResult<Option<(u64, u32, u8)>> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, CF_TXID), self.key(&[tx_id.as_bytes()]))? else {
            return Ok(None);
        };
        let corrupt = || LedgerError::Corrupt("tx index entry".into());
        let position =
            u32::from_be_bytes(bytes.get(8..12).ok_or_else(corrupt)?.try_into().map_err(|_| corrupt())?);
        Ok(Some((u64_at(&bytes, 0)?, position, *bytes.get(12).ok_or_else(corrupt)?)))
    }

    /// A consistent view of committed state (whole blocks only).
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot { ledger: self, snapshot: self.db.snapshot() }
    }

    /// SHA-256 over every state entry of the channel (key, version, metadata, value), in
    /// key order: equal on peers that committed the same blocks.
    pub fn state_hash(&self) -> LedgerResult<[u8; 32]> {
        let mut hasher = Sha256::new();
        let iter =
            self.db.iterator_cf(cf(&self.db, CF_STATE), IteratorMode::From(&self.prefix, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(&self.prefix) {
                break;
            }
            for part in [&key[self.prefix.len()..], &value[..]] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
        }
        Ok(hasher.finalize().into())
    }

    /// The committed keys and values of one namespace, in key order.
    pub fn state_entries_of(&self, namespace: &str) -> LedgerResult<Vec<(String, VersionedValue)>> {
        self.snapshot().scan(namespace, "", usize::MAX, |_| true)
    }

    /// Every `(namespace, key)` of state with its value, in order (for tools and tests).
    pub fn state_entries(&self) -> LedgerResult<Vec<(String, String, VersionedValue)>> {
        let mut out = Vec::new();
        let iter =
            self.db.iterator_cf(cf(&self.db, CF_STATE), IteratorMode::From(&self.prefix, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            let Some(rest) = key.strip_prefix(self.prefix.as_slice()) else { break };
            let split =
                rest.iter().position(|b| *b == 0).ok_or_else(|| LedgerError::Corrupt("state key".into()))?;
            let namespace = String::from_utf8_lossy(&rest[..split]).into_owned();
            let key = String::from_utf8_lossy(&rest[split + 1..]).into_owned();
            out.push((namespace, key, decode_value(&value)?));
        }
        Ok(out)
    }
}

fn envelope_tx_id(envelope: &[u8]) -> Option<String> {
    let tx = medfabric_types::Transaction::parse(envelope).ok()?;
    (!tx.tx_id().is_empty()).then(|| tx.tx_id().to_owned())
}

/// Committed state at one moment: reads never see half a block.
pub struct Snapshot<'a> {
    pub(crate) ledger: &'a ChannelLedger,
    pub(crate) snapshot: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl std::fmt::Debug for Snapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("channel_id", &self.ledger.channel_id).finish()
    }
}

fn ledger_error(e: impl std::fmt::Display) -> ShimError {
    ShimError::Ledger(e.to_string())
}

impl Snapshot<'_> {
    pub fn height(&self) -> LedgerResult<u64> {
        let meta = cf(&self.ledger.db, CF_META);
        self.snapshot.get_cf(meta, self.ledger.key(&[META_HEIGHT]))?.map_or(Ok(0), |b| u64_at(&b, 0))
    }

    pub fn get_value(&self, namespace: &str, key: &str) -> LedgerResult<Option<VersionedValue>> {
        let state = cf(&self.ledger.db, CF_STATE);
        self.snapshot
            .get_cf(state, self.ledger.state_key(namespace, key))?
            .map(|b| decode_value(&b))
            .transpose()
    }

    /// Live keys of a namespace from `start` while `keep(key)` holds, at most `limit`.
    pub fn scan(
        &self,
        namespace: &str,
        start: &str,
        limit: usize,
        keep: impl Fn(&str) -> bool,
    ) -> LedgerResult<Vec<(String, VersionedValue)>> {
        let state = cf(&self.ledger.db, CF_STATE);
        let ns_prefix = self.ledger.state_key(namespace, "");
        let from = self.ledger.state_key(namespace, start);
        let mut out = Vec::new();
        for item in self.snapshot.iterator_cf(state, IteratorMode::From(&from, Direction::Forward)) {
            if out.len() >= limit {
                break;
            }
            let (raw_key, value) = item?;
            let Some(key) = raw_key.strip_prefix(ns_prefix.as_slice()) else { break };
            let key =
                String::from_utf8(key.to_vec()).map_err(|_| LedgerError::Corrupt("state key".into()))?;
            if !keep(&key) {
                break;
            }
            out.push((key, decode_value(&value)?));
        }
        Ok(out)
    }

    pub fn contains_tx(&self, tx_id: &str) -> LedgerResult<bool> {
        Ok(self
            .snapshot
            .get_cf(cf(&self.ledger.db, CF_TXID), self.ledger.key(&[tx_id.as_bytes()]))?
            .is_some())
    }

    fn block(&self, number: u64) -> LedgerResult<Option<Block>> {
        let blocks = cf(&self.ledger.db, CF_BLOCKS);
        let Some(bytes) = self.snapshot.get_cf(blocks, self.ledger.key(&[&number.to_be_bytes()]))? else {
            return Ok(None);
        };
        decode_block(&bytes).map(Some).map_err(|e| LedgerError::Corrupt(format!("block {number}: {e}")))
    }

    /// The committed modifications of a key, newest first, read back from the blocks.
    pub fn key_history(&self, namespace: &str, key: &str) -> LedgerResult<Vec<KeyModification>> {
        let history = cf(&self.ledger.db, CF_HISTORY);
        let prefix = self.ledger.history_prefix(namespace, key);
        let mut positions = Vec::new();
        for item in self.snapshot.iterator_cf(history, IteratorMode::From(&prefix, Direction::Forward)) {
            let (raw, _) = item?;
            let Some(rest) = raw.strip_prefix(prefix.as_slice()) else { break };
            if rest.len() != 16 {
                break;
            }
            positions.push((u64_at(rest, 0)?, u64_at(rest, 8)?));
        }
        let mut out = Vec::with_capacity(positions.len());
        for (number, tx) in positions.into_iter().rev() {
            let block = self
                .block(number)?
                .ok_or_else(|| LedgerError::Corrupt(format!("history names missing block {number}")))?;
            let envelope = usize::try_from(tx)
                .ok()
                .and_then(|i| block::envelopes(&block).get(i))
                .ok_or_else(|| LedgerError::Corrupt(format!("history names missing tx {number}:{tx}")))?;
            out.push(modification_in(envelope, namespace, key)?);
        }
        Ok(out)
    }
}

fn modification_in(envelope: &[u8], namespace: &str, key: &str) -> LedgerResult<KeyModification> {
    let corrupt = |why: String| LedgerError::Corrupt(format!("history transaction: {why}"));
    let tx = medfabric_types::Transaction::parse(envelope).map_err(|e| corrupt(e.to_string()))?;
    let rwset = tx
        .endorser()
        .ok_or_else(|| corrupt("not an endorser transaction".into()))?
        .rwset()
        .map_err(|e| corrupt(e.to_string()))?;
    for ns in rwset.ns_rwset.iter().filter(|ns| ns.namespace == namespace) {
        let kv = medfabric_proto::kvrwset::KvrwSet::decode(ns.rwset.as_ref())
            .map_err(|e| corrupt(e.to_string()))?;
        if let Some(write) = kv.writes.iter().find(|w| w.key == key) {
            return Ok(KeyModification {
                tx_id: tx.tx_id().to_owned(),
                value: if write.is_delete { Bytes::new() } else { write.value.clone() },
                timestamp: tx.channel_header.timestamp,
                is_delete: write.is_delete || write.value.is_empty(),
            });
        }
    }
    Err(corrupt(format!("no write of {namespace}/{key:?}")))
}

impl StateView for Snapshot<'_> {
    fn get(&self, namespace: &str, key: &str) -> ShimResult<Option<VersionedValue>> {
        self.get_value(namespace, key).map_err(ledger_error)
    }

    fn range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        self.scan(namespace, start, limit, |key| end.is_empty() || key < end).map_err(ledger_error)
    }

    fn history(&self, namespace: &str, key: &str) -> ShimResult<Vec<KeyModification>> {
        self.key_history(namespace, key).map_err(ledger_error)
    }

    fn private_hash(
        &self,
        namespace: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> ShimResult<Option<VersionedValue>> {
        let hashed = medfabric_types::lifecycle::hashed_namespace(namespace, collection);
        self.get_value(&hashed, &hex::encode(key_hash)).map_err(ledger_error)
    }

    fn private_get(
        &self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> ShimResult<Option<VersionedValue>> {
        crate::pvtdata::private_value(self, namespace, collection, key).map_err(ledger_error)
    }

    fn private_range(
        &self,
        namespace: &str,
        collection: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        crate::pvtdata::private_range(self, namespace, collection, start, end, limit).map_err(ledger_error)
    }
}
