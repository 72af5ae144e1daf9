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

use bytes::Bytes;
use medfabric_shim::VersionedValue;
use rocksdb::{Direction, IteratorMode, WriteBatch};

mod commit;
mod reconcile;
mod transient;

use crate::ledger::{
    CF_PVT, ChannelLedger, LedgerError, LedgerResult, RawOp, Snapshot, cf, decode_value, u64_at,
};
pub use commit::*;
pub use reconcile::*;
pub use transient::*;

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
