//! The transient store: private write sets held from endorsement until their transaction
//! commits or their retention passes.

use std::collections::BTreeSet;

use bytes::Bytes;
use medfabric_proto::rwset::TxPvtReadWriteSet;
use medfabric_shim::tx::hash;
use prost::Message;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::*;
use crate::ledger::{CF_TRANSIENT, ChannelLedger, LedgerError, LedgerResult, RawOp, Snapshot, cf, u64_at};

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
pub(super) fn transient_cleanup(
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
