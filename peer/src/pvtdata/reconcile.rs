//! Private data that arrives after its block (reconciliation), and compaction.

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_proto::kvrwset::KvrwSet;
use medfabric_shim::VersionedValue;
use medfabric_shim::tx::hash;
use medfabric_types::lifecycle::hashed_namespace;
use prost::Message;
use rocksdb::{WriteBatch, WriteOptions};

use super::*;
use crate::ledger::{CF_PVT, CF_TRANSIENT, ChannelLedger, LedgerResult, cf, encode_value, u64_at};

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
