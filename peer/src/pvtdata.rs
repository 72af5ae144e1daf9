//! Private data on the peer (`docs/fabric-wire.md`, "Private data"): the transient store, the
//! private state, the private data store with its purge and expiry indexes, and the list
//! of data this peer should hold but does not (for reconciliation).
//!
//! Every peer keeps the hashed state of every collection (in public state, namespace
//! `<ns>$$h<coll>`); only peers of member organizations keep the values, here:
//!
//! | family | key (after `channel \0`) | value |
//! |---|---|---|
//! | `pvt` | `s` ns `\0` coll `\0` key | private state: version, value ([`crate::ledger::encode_value`]) |
//! | `pvt` | `d` block tx ns `\0` coll | the committed private write set (`KVRWSet` bytes) |
//! | `pvt` | `k` ns `\0` coll `\0` key-hash block tx | plaintext key of a stored version (for purge) |
//! | `pvt` | `e` expiry-block block tx ns `\0` coll | key hashes written, when the collection has a block-to-live |
//! | `pvt` | `m` block tx ns `\0` coll | hash of private data this peer is missing |
//! | `pvt` | `p` ns `\0` coll `\0` key-hash | version of the key's last purge |
//! | `transient` | `t` tx-id `\0` hash | endorsement height, `TxPvtReadWriteSet` bytes |
//! | `transient` | `h` height tx-id `\0` hash | — (retention index) |
//!
//! Block numbers and tx positions are u64 big-endian, so prefixes iterate in order.
//! Changes made by a block are planned here ([`plan_commit`]) and written by
//! [`ChannelLedger::commit`] in the block's one synced batch.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use medfabric_proto::kvrwset::{HashedRwSet, KvrwSet};
use medfabric_proto::rwset::TxPvtReadWriteSet;
use medfabric_shim::VersionedValue;
use medfabric_shim::tx::hash;
use medfabric_types::lifecycle::{Collection, hashed_namespace};
use prost::Message;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use crate::ledger::{
    CF_PVT, CF_TRANSIENT, ChannelLedger, LedgerError, LedgerResult, RawOp, Snapshot, cf, decode_value,
    encode_value, u64_at,
};

const STATE: &[u8] = b"s";
const DATA: &[u8] = b"d";
const KEYS: &[u8] = b"k";
const EXPIRY: &[u8] = b"e";
const MISSING: &[u8] = b"m";
const PURGED: &[u8] = b"p";
const TRANSIENT_DATA: &[u8] = b"t";
const TRANSIENT_HEIGHT: &[u8] = b"h";

/// Which transaction's data, in which collection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PvtKey {
    pub block: u64,
    pub tx: u64,
    pub namespace: String,
    pub collection: String,
}

/// Private data this peer is eligible for but lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub key: PvtKey,
    pub tx_id: String,
    /// SHA-256 of the collection's private write set (`pvt_rwset_hash`).
    pub hash: Bytes,
}

fn names(namespace: &str, collection: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(namespace.len() + collection.len() + 1);
    out.extend_from_slice(namespace.as_bytes());
    out.push(0);
    out.extend_from_slice(collection.as_bytes());
    out
}

fn state_key(l: &ChannelLedger, namespace: &str, collection: &str, key: &str) -> Vec<u8> {
    l.key(&[STATE, &names(namespace, collection), b"\0", key.as_bytes()])
}

fn located(l: &ChannelLedger, tag: &[u8], key: &PvtKey) -> Vec<u8> {
    l.key(&[tag, &key.block.to_be_bytes(), &key.tx.to_be_bytes(), &names(&key.namespace, &key.collection)])
}

fn keys_prefix(l: &ChannelLedger, namespace: &str, collection: &str, key_hash: &[u8]) -> Vec<u8> {
    l.key(&[KEYS, &names(namespace, collection), b"\0", key_hash])
}

fn purged_key(l: &ChannelLedger, namespace: &str, collection: &str, key_hash: &[u8]) -> Vec<u8> {
    l.key(&[PURGED, &names(namespace, collection), b"\0", key_hash])
}

fn expiry_key(l: &ChannelLedger, expiry: u64, key: &PvtKey) -> Vec<u8> {
    let mut out = l.key(&[EXPIRY, &expiry.to_be_bytes()]);
    out.extend_from_slice(&located(l, b"", key)[l.prefix().len()..]);
    out
}

fn corrupt(what: &str) -> LedgerError {
    LedgerError::Corrupt(format!("private data store: {what}"))
}

/// Parses `block tx ns \0 coll`.
fn parse_located(rest: &[u8]) -> LedgerResult<PvtKey> {
    let block = u64_at(rest, 0)?;
    let tx = u64_at(rest, 8)?;
    let tail = rest.get(16..).ok_or_else(|| corrupt("short key"))?;
    let split = tail.iter().position(|b| *b == 0).ok_or_else(|| corrupt("key without collection"))?;
    Ok(PvtKey {
        block,
        tx,
        namespace: String::from_utf8_lossy(&tail[..split]).into_owned(),
        collection: String::from_utf8_lossy(&tail[split + 1..]).into_owned(),
    })
}

fn put(family: &'static str, key: Vec<u8>, value: Vec<u8>) -> RawOp {
    RawOp { family, key, value: Some(value) }
}

fn delete(family: &'static str, key: Vec<u8>) -> RawOp {
    RawOp { family, key, value: None }
}

/// Entries of `family` under `prefix` (as seen by `snapshot`), with the key's rest.
fn scan_prefix(
    snapshot: &Snapshot<'_>,
    family: &str,
    prefix: &[u8],
) -> LedgerResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let handle = cf(&snapshot.ledger.db, family);
    let mut out = Vec::new();
    for item in snapshot.snapshot.iterator_cf(handle, IteratorMode::From(prefix, Direction::Forward)) {
        let (key, value) = item?;
        let Some(rest) = key.strip_prefix(prefix) else { break };
        out.push((rest.to_vec(), value.to_vec()));
    }
    Ok(out)
}

// ---- reads -----------------------------------------------------------------------------

/// The private value of a key held by this peer.
pub fn private_value(
    snapshot: &Snapshot<'_>,
    namespace: &str,
    collection: &str,
    key: &str,
) -> LedgerResult<Option<VersionedValue>> {
    let l = snapshot.ledger;
    snapshot
        .snapshot
        .get_cf(cf(&l.db, CF_PVT), state_key(l, namespace, collection, key))?
        .map(|b| decode_value(&b))
        .transpose()
}

/// Private keys held here in `[start, end)`, at most `limit`.
pub fn private_range(
    snapshot: &Snapshot<'_>,
    namespace: &str,
    collection: &str,
    start: &str,
    end: &str,
    limit: usize,
) -> LedgerResult<Vec<(String, VersionedValue)>> {
    let l = snapshot.ledger;
    let prefix = state_key(l, namespace, collection, "");
    let from = state_key(l, namespace, collection, start);
    let mut out = Vec::new();
    for item in
        snapshot.snapshot.iterator_cf(cf(&l.db, CF_PVT), IteratorMode::From(&from, Direction::Forward))
    {
        if out.len() >= limit {
            break;
        }
        let (raw, value) = item?;
        let Some(key) = raw.strip_prefix(prefix.as_slice()) else { break };
        let key = String::from_utf8(key.to_vec()).map_err(|_| corrupt("private key"))?;
        if !end.is_empty() && key.as_str() >= end {
            break;
        }
        out.push((key, decode_value(&value)?));
    }
    Ok(out)
}

/// The committed private write set of one transaction's collection, if held here.
pub fn stored(ledger: &ChannelLedger, key: &PvtKey) -> LedgerResult<Option<Bytes>> {
    Ok(ledger.db.get_cf(cf(&ledger.db, CF_PVT), located(ledger, DATA, key))?.map(Bytes::from))
}

/// Every collection's private write set held here for block `number`, in order.
pub fn block_private_data(ledger: &ChannelLedger, number: u64) -> LedgerResult<Vec<(PvtKey, Bytes)>> {
    let snapshot = ledger.snapshot();
    let prefix = ledger.key(&[DATA, &number.to_be_bytes()]);
    let mut out = Vec::new();
    for (rest, value) in scan_prefix(&snapshot, CF_PVT, &prefix)? {
        let mut located = number.to_be_bytes().to_vec();
        located.extend_from_slice(&rest);
        out.push((parse_located(&located)?, Bytes::from(value)));
    }
    Ok(out)
}

/// Up to `limit` entries of private data this peer lacks, in order from just after
/// `after` (wrapping around, so entries no peer can serve do not starve the others).
/// Entries whose every key was purged since are dropped: no peer holds them any more.
/// The tx id is filled by the caller from the block.
pub fn missing(ledger: &ChannelLedger, after: Option<&PvtKey>, limit: usize) -> LedgerResult<Vec<Missing>> {
    let snapshot = ledger.snapshot();
    let prefix = ledger.key(&[MISSING]);
    let family = cf(&ledger.db, CF_PVT);
    let mut all = Vec::new();
    let mut obsolete = WriteBatch::default();
    for (rest, value) in scan_prefix(&snapshot, CF_PVT, &prefix)? {
        let key = parse_located(&rest)?;
        let (digest, key_hashes) = value.split_at(value.len().min(32));
        let purged_since = |key_hash: &[u8]| -> LedgerResult<bool> {
            let marker = snapshot
                .snapshot
                .get_cf(family, purged_key(ledger, &key.namespace, &key.collection, key_hash))?;
            Ok(match marker {
                Some(m) => (u64_at(&m, 0)?, u64_at(&m, 8)?) > (key.block, key.tx),
                None => false,
            })
        };
        let mut all_purged = !key_hashes.is_empty();
        for key_hash in key_hashes.chunks(32) {
            all_purged &= purged_since(key_hash)?;
        }
        if all_purged {
            obsolete.delete_cf(family, located(ledger, MISSING, &key));
            continue;
        }
        all.push(Missing { key, tx_id: String::new(), hash: Bytes::copy_from_slice(digest) });
    }
    if !obsolete.is_empty() {
        ledger.db.write(obsolete)?;
    }
    let start = after.map_or(0, |a| all.iter().position(|m| m.key > *a).unwrap_or(0));
    let count = all.len().min(limit);
    Ok(all.into_iter().cycle().skip(start).take(count).collect())
}

// ---- transient store -------------------------------------------------------------------

/// Keeps a transaction's private write sets (collections this peer is eligible for)
/// until the transaction commits or `retention` blocks pass.
pub fn transient_put(
    ledger: &ChannelLedger,
    tx_id: &str,
    height: u64,
    rwset: &TxPvtReadWriteSet,
) -> LedgerResult<()> {
    if tx_id.is_empty() || tx_id.contains('\0') {
        return Err(LedgerError::Rejected(format!("bad tx id {tx_id:?}")));
    }
    let bytes = rwset.encode_to_vec();
    let digest = hash(&bytes);
    let family = cf(&ledger.db, CF_TRANSIENT);
    let mut value = height.to_be_bytes().to_vec();
    value.extend_from_slice(&bytes);
    let mut batch = WriteBatch::default();
    batch.put_cf(family, ledger.key(&[TRANSIENT_DATA, tx_id.as_bytes(), b"\0", &digest]), value);
    batch.put_cf(
        family,
        ledger.key(&[TRANSIENT_HEIGHT, &height.to_be_bytes(), tx_id.as_bytes(), b"\0", &digest]),
        [],
    );
    let mut options = WriteOptions::default();
    options.set_sync(true);
    ledger.db.write_opt(batch, &options)?;
    Ok(())
}

/// Every private write set held in the transient store for `tx_id`.
pub fn transient_get(ledger: &ChannelLedger, tx_id: &str) -> LedgerResult<Vec<TxPvtReadWriteSet>> {
    let snapshot = ledger.snapshot();
    let prefix = ledger.key(&[TRANSIENT_DATA, tx_id.as_bytes(), b"\0"]);
    let mut out = Vec::new();
    for (_, value) in scan_prefix(&snapshot, CF_TRANSIENT, &prefix)? {
        let bytes = value.get(8..).ok_or_else(|| corrupt("transient entry"))?;
        out.push(TxPvtReadWriteSet::decode(bytes).map_err(|e| corrupt(&format!("transient entry: {e}")))?);
    }
    Ok(out)
}

/// A collection's private write set of `tx_id` from the transient store, if one hashes
/// to `digest`.
pub fn transient_collection(
    ledger: &ChannelLedger,
    tx_id: &str,
    namespace: &str,
    collection: &str,
    digest: &[u8],
) -> LedgerResult<Option<Bytes>> {
    for rwset in transient_get(ledger, tx_id)? {
        let found = rwset
            .ns_pvt_rwset
            .iter()
            .filter(|ns| ns.namespace == namespace)
            .flat_map(|ns| &ns.collection_pvt_rwset)
            .find(|c| c.collection_name == collection && hash(&c.rwset) == digest);
        if let Some(found) = found {
            return Ok(Some(found.rwset.clone()));
        }
    }
    Ok(None)
}

/// Deletes of the transient entries of `tx_ids` and of entries endorsed before
/// `oldest_kept`.
fn transient_cleanup(
    snapshot: &Snapshot<'_>,
    tx_ids: &BTreeSet<&str>,
    oldest_kept: u64,
) -> LedgerResult<Vec<RawOp>> {
    let l = snapshot.ledger;
    let mut ops = Vec::new();
    let drop_entry = |tx_id: &[u8], digest: &[u8], height: u64, ops: &mut Vec<RawOp>| {
        ops.push(delete(CF_TRANSIENT, l.key(&[TRANSIENT_DATA, tx_id, b"\0", digest])));
        ops.push(delete(
            CF_TRANSIENT,
            l.key(&[TRANSIENT_HEIGHT, &height.to_be_bytes(), tx_id, b"\0", digest]),
        ));
    };
    for tx_id in tx_ids {
        let prefix = l.key(&[TRANSIENT_DATA, tx_id.as_bytes(), b"\0"]);
        for (digest, value) in scan_prefix(snapshot, CF_TRANSIENT, &prefix)? {
            drop_entry(tx_id.as_bytes(), &digest, u64_at(&value, 0)?, &mut ops);
        }
    }
    let prefix = l.key(&[TRANSIENT_HEIGHT]);
    let handle = cf(&l.db, CF_TRANSIENT);
    for item in snapshot.snapshot.iterator_cf(handle, IteratorMode::From(&prefix, Direction::Forward)) {
        let (key, _) = item?;
        let Some(rest) = key.strip_prefix(prefix.as_slice()) else { break };
        let height = u64_at(rest, 0)?;
        if height >= oldest_kept {
            break;
        }
        let entry = &rest[8..];
        let split = entry.len().checked_sub(33).ok_or_else(|| corrupt("transient index"))?;
        drop_entry(&entry[..split], &entry[split + 1..], height, &mut ops);
    }
    Ok(ops)
}

// ---- commit ----------------------------------------------------------------------------

/// Does a private write set say what the block's hashed writes say (every key and value
/// hash, deletes alike)? Endorsers produce both; a set that disagrees is never stored.
pub fn matches_hashes(kv: &KvrwSet, hashed: &HashedRwSet) -> bool {
    let mut expected: Vec<(&[u8], bool, &[u8])> = hashed
        .hashed_writes
        .iter()
        .filter(|w| !w.is_purge)
        .map(|w| {
            (w.key_hash.as_ref(), w.is_delete, if w.is_delete { &[][..] } else { w.value_hash.as_ref() })
        })
        .collect();
    let hashes: Vec<([u8; 32], bool, [u8; 32])> = kv
        .writes
        .iter()
        .map(|w| {
            let delete = w.is_delete || w.value.is_empty();
            (hash(w.key.as_bytes()), delete, hash(&w.value))
        })
        .collect();
    let mut actual: Vec<(&[u8], bool, &[u8])> =
        hashes.iter().map(|(k, d, v)| (&k[..], *d, if *d { &[][..] } else { &v[..] })).collect();
    expected.sort();
    actual.sort();
    expected == actual
}

/// A valid transaction's collection sets, as committed.
#[derive(Debug, Clone)]
pub struct CollectionWrite {
    pub namespace: String,
    pub collection: String,
    pub hashed: HashedRwSet,
    /// `pvt_rwset_hash`: empty when the transaction wrote no private values.
    pub pvt_hash: Bytes,
}

/// A valid transaction of the block that touched private data.
#[derive(Debug, Clone)]
pub struct PrivateTx {
    pub index: u64,
    pub tx_id: String,
    pub collections: Vec<CollectionWrite>,
}

/// Collection definitions and this peer's membership, as of the block being committed.
pub trait CollectionView {
    fn collection(&self, namespace: &str, collection: &str) -> Option<Collection>;
    /// Is this peer's organization a member of the collection?
    fn eligible(&self, collection: &Collection) -> bool;
}

/// What committing a block does to private data.
#[derive(Debug, Default)]
pub struct PrivateOutcome {
    pub ops: Vec<RawOp>,
    /// Hashed state entries whose block-to-live ended: `(hashed namespace, hex key hash)`.
    pub expired_hashes: Vec<(String, String)>,
    pub stored: usize,
    pub missing: usize,
    pub purged: usize,
    pub expired: usize,
}

impl PrivateOutcome {
    /// Did the block remove private values (the files should be compacted)?
    pub fn removed_data(&self) -> bool {
        self.purged > 0 || self.expired > 0
    }
}

/// One stored version of a private key: its `k` index entry, where it was written, and
/// the plaintext key.
struct StoredVersion {
    index: Vec<u8>,
    block: u64,
    tx: u64,
    key: String,
}

/// In-block view of the private store: changes so far over the snapshot.
struct Plan<'a, 's> {
    snapshot: &'a Snapshot<'s>,
    state: BTreeMap<(String, String, String), Option<VersionedValue>>,
    data: BTreeMap<PvtKey, Option<KvrwSet>>,
    keys: BTreeMap<Vec<u8>, Option<String>>,
    ops: Vec<RawOp>,
}

impl Plan<'_, '_> {
    fn l(&self) -> &ChannelLedger {
        self.snapshot.ledger
    }

    fn data_entry(&mut self, key: &PvtKey) -> LedgerResult<&mut Option<KvrwSet>> {
        if !self.data.contains_key(key) {
            let l = self.l();
            let stored = self.snapshot.snapshot.get_cf(cf(&l.db, CF_PVT), located(l, DATA, key))?;
            let decoded = stored
                .map(|b| KvrwSet::decode(b.as_slice()).map_err(|e| corrupt(&format!("data entry: {e}"))))
                .transpose()?;
            self.data.insert(key.clone(), decoded);
        }
        Ok(self.data.get_mut(key).expect("inserted above"))
    }

    /// Stored versions of a key: `(keys index entry, block, tx, plaintext key)`.
    fn versions(
        &self,
        namespace: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> LedgerResult<Vec<StoredVersion>> {
        let prefix = keys_prefix(self.l(), namespace, collection, key_hash);
        let mut found: BTreeMap<Vec<u8>, Option<String>> = scan_prefix(self.snapshot, CF_PVT, &prefix)?
            .into_iter()
            .map(|(rest, key)| {
                let mut full = prefix.clone();
                full.extend_from_slice(&rest);
                (full, Some(String::from_utf8_lossy(&key).into_owned()))
            })
            .collect();
        for (index, key) in self.keys.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
            found.insert(index.clone(), key.clone());
        }
        let mut out = Vec::new();
        for (index, key) in found {
            let Some(key) = key else { continue };
            let rest = &index[prefix.len()..];
            out.push(StoredVersion { block: u64_at(rest, 0)?, tx: u64_at(rest, 8)?, index, key });
        }
        Ok(out)
    }

    /// Removes every stored version of a key (Fabric 2.5's `PurgePrivateData`).
    fn purge(
        &mut self,
        namespace: &str,
        collection: &str,
        key_hash: &[u8],
        version: (u64, u64),
    ) -> LedgerResult<()> {
        let mut marker = version.0.to_be_bytes().to_vec();
        marker.extend_from_slice(&version.1.to_be_bytes());
        self.ops.push(put(CF_PVT, purged_key(self.l(), namespace, collection, key_hash), marker));
        for StoredVersion { index, block, tx, key } in self.versions(namespace, collection, key_hash)? {
            self.keys.insert(index, None);
            self.state.insert((namespace.to_owned(), collection.to_owned(), key.clone()), None);
            let entry =
                PvtKey { block, tx, namespace: namespace.to_owned(), collection: collection.to_owned() };
            if let Some(kv) = self.data_entry(&entry)? {
                kv.writes.retain(|w| w.key != key);
            }
        }
        Ok(())
    }

    /// Moves the value held for a key (if any) to the version `at`: a key-level policy
    /// update changed the key's version without changing its value.
    fn touch(&mut self, at: &PvtKey, key_hash: &[u8]) -> LedgerResult<()> {
        let Some(stored) = self.versions(&at.namespace, &at.collection, key_hash)?.into_iter().next() else {
            return Ok(());
        };
        let id = (at.namespace.clone(), at.collection.clone(), stored.key.clone());
        let held = match self.state.get(&id) {
            Some(pending) => pending.clone(),
            None => private_value(self.snapshot, &at.namespace, &at.collection, &stored.key)?,
        };
        let Some(mut value) = held else { return Ok(()) };
        value.version = (at.block, at.tx);
        self.state.insert(id, Some(value));
        let mut index = keys_prefix(self.l(), &at.namespace, &at.collection, key_hash);
        index.extend_from_slice(&at.block.to_be_bytes());
        index.extend_from_slice(&at.tx.to_be_bytes());
        self.keys.insert(index, Some(stored.key));
        Ok(())
    }

    /// Stores a transaction's private write set for one collection.
    fn store(&mut self, at: &PvtKey, kv: KvrwSet) {
        for write in &kv.writes {
            let key_hash = hash(write.key.as_bytes());
            let mut index = keys_prefix(self.l(), &at.namespace, &at.collection, &key_hash);
            index.extend_from_slice(&at.block.to_be_bytes());
            index.extend_from_slice(&at.tx.to_be_bytes());
            self.keys.insert(index, Some(write.key.clone()));
            let value = (!write.is_delete && !write.value.is_empty()).then(|| VersionedValue {
                value: write.value.clone(),
                version: (at.block, at.tx),
                metadata: BTreeMap::new(),
            });
            self.state.insert((at.namespace.clone(), at.collection.clone(), write.key.clone()), value);
        }
        self.data.insert(at.clone(), Some(kv));
    }

    /// Ends the block-to-live of data written `btl + 1` blocks ago: values, indexes and
    /// the hashed state entries still at that version.
    fn expire(
        &mut self,
        number: u64,
        public: &BTreeMap<(String, String), Option<VersionedValue>>,
        outcome: &mut PrivateOutcome,
    ) -> LedgerResult<()> {
        let l = self.l();
        let prefix = l.key(&[EXPIRY]);
        let mut due = Vec::new();
        for item in self
            .snapshot
            .snapshot
            .iterator_cf(cf(&l.db, CF_PVT), IteratorMode::From(&prefix, Direction::Forward))
        {
            let (key, hashes) = item?;
            let Some(rest) = key.strip_prefix(prefix.as_slice()) else { break };
            if u64_at(rest, 0)? > number {
                break;
            }
            due.push((key.to_vec(), parse_located(&rest[8..])?, hashes.to_vec()));
        }
        for (index, at, hashes) in due {
            self.ops.push(delete(CF_PVT, index));
            self.ops.push(delete(CF_PVT, located(self.l(), MISSING, &at)));
            self.data.insert(at.clone(), None);
            let hashed_ns = hashed_namespace(&at.namespace, &at.collection);
            for key_hash in hashes.chunks(32) {
                let hex_key = hex::encode(key_hash);
                let current = self.snapshot.get_value(&hashed_ns, &hex_key)?;
                if !public.contains_key(&(hashed_ns.clone(), hex_key.clone()))
                    && current.is_some_and(|v| v.version == (at.block, at.tx))
                {
                    outcome.expired_hashes.push((hashed_ns.clone(), hex_key));
                }
                let mut index = keys_prefix(self.l(), &at.namespace, &at.collection, key_hash);
                index.extend_from_slice(&at.block.to_be_bytes());
                index.extend_from_slice(&at.tx.to_be_bytes());
                let plain = self.snapshot.snapshot.get_cf(cf(&self.l().db, CF_PVT), &index)?;
                self.keys.insert(index, None);
                if let Some(plain) = plain {
                    let key = String::from_utf8_lossy(&plain).into_owned();
                    let held = private_value(self.snapshot, &at.namespace, &at.collection, &key)?;
                    if held.is_some_and(|v| v.version == (at.block, at.tx)) {
                        self.state.insert((at.namespace.clone(), at.collection.clone(), key), None);
                    }
                }
            }
            outcome.expired += 1;
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<RawOp> {
        let l = self.snapshot.ledger;
        for ((namespace, collection, key), value) in std::mem::take(&mut self.state) {
            let id = state_key(l, &namespace, &collection, &key);
            self.ops.push(match value {
                Some(value) => put(CF_PVT, id, encode_value(&value)),
                None => delete(CF_PVT, id),
            });
        }
        for (at, kv) in std::mem::take(&mut self.data) {
            let id = located(l, DATA, &at);
            self.ops.push(match kv {
                Some(kv) if !kv.writes.is_empty() => put(CF_PVT, id, kv.encode_to_vec()),
                _ => delete(CF_PVT, id),
            });
        }
        for (index, key) in std::mem::take(&mut self.keys) {
            self.ops.push(match key {
                Some(key) => put(CF_PVT, index, key.into_bytes()),
                None => delete(CF_PVT, index),
            });
        }
        self.ops
    }
}

/// Plans the private-data side of committing block `number`: expiry of data whose
/// block-to-live ends here, purges, the private values of the block's valid
/// transactions for collections this peer is eligible for (from `supplied`, else the
/// transient store; what neither has is recorded as missing), expiry entries, and the
/// cleanup of the transient store (the block's tx ids, and entries older than
/// `retention` blocks).
#[allow(clippy::too_many_arguments)]
pub fn plan_commit(
    snapshot: &Snapshot<'_>,
    number: u64,
    txs: &[PrivateTx],
    block_tx_ids: &BTreeSet<&str>,
    collections: &dyn CollectionView,
    supplied: &BTreeMap<PvtKey, Bytes>,
    public: &BTreeMap<(String, String), Option<VersionedValue>>,
    retention: u64,
) -> LedgerResult<PrivateOutcome> {
    let mut outcome = PrivateOutcome::default();
    let mut plan = Plan {
        snapshot,
        state: BTreeMap::new(),
        data: BTreeMap::new(),
        keys: BTreeMap::new(),
        ops: Vec::new(),
    };
    plan.expire(number, public, &mut outcome)?;
    let mut purged = Vec::new();
    for tx in txs {
        for write in &tx.collections {
            let Some(collection) = collections.collection(&write.namespace, &write.collection) else {
                continue;
            };
            let at = PvtKey {
                block: number,
                tx: tx.index,
                namespace: write.namespace.clone(),
                collection: write.collection.clone(),
            };
            for purge in write.hashed.hashed_writes.iter().filter(|w| w.is_purge) {
                plan.purge(&write.namespace, &write.collection, &purge.key_hash, (number, tx.index))?;
                purged.push((write.namespace.clone(), write.collection.clone(), purge.key_hash.to_vec()));
                outcome.purged += 1;
            }
            // Every key the transaction updated (values, deletes, key-level policies)
            // expires with the collection's block-to-live, as in Fabric.
            let updated: BTreeSet<&[u8]> = write
                .hashed
                .hashed_writes
                .iter()
                .filter(|w| !w.is_purge)
                .map(|w| w.key_hash.as_ref())
                .chain(write.hashed.metadata_writes.iter().map(|m| m.key_hash.as_ref()))
                .collect();
            if collection.block_to_live > 0 && !updated.is_empty() {
                let expiry = number.saturating_add(collection.block_to_live).saturating_add(1);
                plan.ops.push(put(
                    CF_PVT,
                    expiry_key(plan.l(), expiry, &at),
                    updated.into_iter().flatten().copied().collect(),
                ));
            }
            if !collections.eligible(&collection) {
                continue;
            }
            // A key-level policy change gives the key a new version: the value held here
            // moves to it, so reads keep matching the hashed state.
            let written: BTreeSet<&[u8]> =
                write.hashed.hashed_writes.iter().map(|w| w.key_hash.as_ref()).collect();
            for metadata in
                write.hashed.metadata_writes.iter().filter(|m| !written.contains(m.key_hash.as_ref()))
            {
                plan.touch(&at, &metadata.key_hash)?;
            }
            if write.pvt_hash.is_empty() {
                continue;
            }
            let bytes = match supplied.get(&at) {
                Some(bytes) if hash(bytes) == write.pvt_hash.as_ref() => Some(bytes.clone()),
                _ => transient_collection(
                    plan.l(),
                    &tx.tx_id,
                    &write.namespace,
                    &write.collection,
                    &write.pvt_hash,
                )?,
            };
            match bytes.map(|b| KvrwSet::decode(b.as_ref())) {
                Some(Ok(kv)) if matches_hashes(&kv, &write.hashed) => {
                    plan.store(&at, kv);
                    outcome.stored += 1;
                }
                Some(_) => {
                    tracing::warn!(
                        block = number,
                        tx = tx.index,
                        collection = %write.collection,
                        "private data does not match the transaction's hashes; not stored"
                    );
                }
                _ => {
                    let mut value = write.pvt_hash.to_vec();
                    for w in write.hashed.hashed_writes.iter().filter(|w| !w.is_purge) {
                        value.extend_from_slice(&w.key_hash);
                    }
                    plan.ops.push(put(CF_PVT, located(plan.l(), MISSING, &at), value));
                    outcome.missing += 1;
                }
            }
        }
    }
    let oldest_kept = number.saturating_sub(retention);
    let cleanup = transient_cleanup(snapshot, block_tx_ids, oldest_kept)?;
    let mut ops = plan.finish();
    ops.extend(cleanup);
    if !purged.is_empty() {
        ops.extend(transient_holding(snapshot, &purged)?);
    }
    outcome.ops = ops;
    Ok(outcome)
}

/// The hashed write set a committed transaction carries for a collection.
fn committed_hashes(ledger: &ChannelLedger, at: &PvtKey) -> LedgerResult<Option<HashedRwSet>> {
    let Some(block) = ledger.block(at.block)? else { return Ok(None) };
    let Some(envelope) =
        usize::try_from(at.tx).ok().and_then(|i| medfabric_types::block::envelopes(&block).get(i))
    else {
        return Ok(None);
    };
    let Ok(tx) = medfabric_types::Transaction::parse(envelope) else { return Ok(None) };
    let Some(Ok(rwset)) = tx.endorser().map(|e| e.rwset()) else { return Ok(None) };
    let set = rwset
        .ns_rwset
        .iter()
        .filter(|ns| ns.namespace == at.namespace)
        .flat_map(|ns| &ns.collection_hashed_rwset)
        .find(|c| c.collection_name == at.collection);
    Ok(set.and_then(|c| HashedRwSet::decode(c.hashed_rwset.as_ref()).ok()))
}

/// Deletes of transient entries holding any of `purged` `(namespace, collection, key
/// hash)`: a purged value may not wait in a transient store either.
fn transient_holding(
    snapshot: &Snapshot<'_>,
    purged: &[(String, String, Vec<u8>)],
) -> LedgerResult<Vec<RawOp>> {
    let l = snapshot.ledger;
    let prefix = l.key(&[TRANSIENT_DATA]);
    let mut ops = Vec::new();
    for (rest, value) in scan_prefix(snapshot, CF_TRANSIENT, &prefix)? {
        let Some(bytes) = value.get(8..) else { continue };
        let Ok(rwset) = TxPvtReadWriteSet::decode(bytes) else { continue };
        let holds = rwset.ns_pvt_rwset.iter().any(|ns| {
            ns.collection_pvt_rwset.iter().any(|c| {
                KvrwSet::decode(c.rwset.as_ref()).is_ok_and(|kv| {
                    kv.writes.iter().any(|w| {
                        let key_hash = hash(w.key.as_bytes());
                        purged.iter().any(|(n, col, k)| {
                            *n == ns.namespace && *col == c.collection_name && k[..] == key_hash
                        })
                    })
                })
            })
        });
        if holds {
            let split = rest.len().saturating_sub(33);
            let (tx_id, digest) = (&rest[..split], &rest[split + 1..]);
            let height = u64_at(&value, 0)?;
            ops.push(delete(CF_TRANSIENT, l.key(&[TRANSIENT_DATA, &rest])));
            ops.push(delete(
                CF_TRANSIENT,
                l.key(&[TRANSIENT_HEIGHT, &height.to_be_bytes(), tx_id, b"\0", digest]),
            ));
        }
    }
    Ok(ops)
}

/// Stores private data fetched after its block was committed (reconciliation): only
/// for entries still missing and matching their hash, without keys purged since, and
/// into private state only where the hashed state still names that version. Returns
/// how many entries were stored.
pub fn store_reconciled(ledger: &ChannelLedger, fetched: &[(Missing, Bytes)]) -> LedgerResult<usize> {
    let snapshot = ledger.snapshot();
    let family = cf(&ledger.db, CF_PVT);
    let mut batch = WriteBatch::default();
    let mut stored = 0;
    for (missing, bytes) in fetched {
        let at = &missing.key;
        let recorded = snapshot.snapshot.get_cf(family, located(ledger, MISSING, at))?;
        let recorded_hash = recorded.as_deref().map(|r| &r[..r.len().min(32)]);
        if recorded_hash != Some(missing.hash.as_ref()) || hash(bytes) != missing.hash.as_ref() {
            continue;
        }
        let Ok(mut kv) = KvrwSet::decode(bytes.as_ref()) else { continue };
        if !committed_hashes(ledger, at)?.is_some_and(|hashed| matches_hashes(&kv, &hashed)) {
            tracing::warn!(
                block = at.block,
                tx = at.tx,
                "fetched private data does not match the block's hashes"
            );
            continue;
        }
        let hashed_ns = hashed_namespace(&at.namespace, &at.collection);
        let mut kept = Vec::new();
        for write in kv.writes.drain(..) {
            let key_hash = hash(write.key.as_bytes());
            let purged = snapshot
                .snapshot
                .get_cf(family, purged_key(ledger, &at.namespace, &at.collection, &key_hash))?;
            if let Some(purged) = purged
                && (u64_at(&purged, 0)?, u64_at(&purged, 8)?) >= (at.block, at.tx)
            {
                continue;
            }
            let mut index = keys_prefix(ledger, &at.namespace, &at.collection, &key_hash);
            index.extend_from_slice(&at.block.to_be_bytes());
            index.extend_from_slice(&at.tx.to_be_bytes());
            batch.put_cf(family, index, write.key.as_bytes());
            let current = snapshot.get_value(&hashed_ns, &hex::encode(key_hash))?;
            let value_hash = hash(&write.value);
            let id = state_key(ledger, &at.namespace, &at.collection, &write.key);
            match current {
                Some(v) if v.version == (at.block, at.tx) && v.value.as_ref() == value_hash => {
                    let value = VersionedValue {
                        value: write.value.clone(),
                        version: v.version,
                        metadata: BTreeMap::new(),
                    };
                    batch.put_cf(family, id, encode_value(&value));
                }
                None if write.is_delete => batch.delete_cf(family, id),
                _ => {}
            }
            kept.push(write);
        }
        kv.writes = kept;
        if !kv.writes.is_empty() {
            batch.put_cf(family, located(ledger, DATA, at), kv.encode_to_vec());
        }
        batch.delete_cf(family, located(ledger, MISSING, at));
        stored += 1;
    }
    let mut options = WriteOptions::default();
    options.set_sync(true);
    ledger.db.write_opt(batch, &options)?;
    Ok(stored)
}

/// Rewrites the files of the private families so that removed values (purged, expired,
/// or transient data of committed transactions) are gone from disk too, not only
/// unreachable: flushes every family (so the write-ahead log holding them is retired)
/// and compacts `pvt` and `transient` fully.
pub fn compact(ledger: &ChannelLedger) -> LedgerResult<()> {
    let db = &ledger.db;
    let families: Vec<_> = crate::ledger::column_families().iter().map(|name| cf(db, name)).collect();
    db.flush_cfs_opt(&families, &rocksdb::FlushOptions::default())?;
    for name in [CF_PVT, CF_TRANSIENT] {
        let mut options = rocksdb::CompactOptions::default();
        options.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        db.compact_range_cf_opt(cf(db, name), None::<&[u8]>, None::<&[u8]>, &options);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use medfabric_proto::kvrwset::{KvWrite, KvWriteHash};

    use super::*;

    fn write(key: &str, value: &str) -> KvWrite {
        KvWrite {
            key: key.into(),
            is_delete: value.is_empty(),
            value: Bytes::copy_from_slice(value.as_bytes()),
        }
    }

    fn hashed(key: &str, value: &str, is_purge: bool) -> KvWriteHash {
        KvWriteHash {
            key_hash: hash(key.as_bytes()).to_vec().into(),
            is_delete: value.is_empty(),
            value_hash: if value.is_empty() { Bytes::new() } else { hash(value.as_bytes()).to_vec().into() },
            is_purge,
        }
    }

    #[test]
    fn private_writes_must_match_the_hashed_writes() {
        let hashes = HashedRwSet {
            hashed_writes: vec![hashed("a", "1", false), hashed("b", "", false), hashed("c", "", true)],
            ..Default::default()
        };
        let kv = |writes: Vec<KvWrite>| KvrwSet { writes, ..Default::default() };
        assert!(matches_hashes(&kv(vec![write("a", "1"), write("b", "")]), &hashes));
        assert!(!matches_hashes(&kv(vec![write("a", "2"), write("b", "")]), &hashes), "another value");
        assert!(!matches_hashes(&kv(vec![write("a", "1"), write("x", "")]), &hashes), "another key");
        assert!(!matches_hashes(&kv(vec![write("a", "1")]), &hashes), "a write left out");
        assert!(
            !matches_hashes(&kv(vec![write("a", "1"), write("b", "9")]), &hashes),
            "a delete turned into a put"
        );
    }
}
