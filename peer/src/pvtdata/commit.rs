//! What a block's commit changes in the private stores: private writes checked against
//! the block's hashes, purges, block-to-live expiry and what this peer is missing.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use medfabric_proto::kvrwset::{HashedRwSet, KvrwSet};
use medfabric_proto::rwset::TxPvtReadWriteSet;
use medfabric_shim::VersionedValue;
use medfabric_shim::tx::hash;
use medfabric_types::lifecycle::{Collection, hashed_namespace};
use prost::Message;
use rocksdb::{Direction, IteratorMode};

use super::*;
use crate::ledger::{
    CF_PVT, CF_TRANSIENT, ChannelLedger, LedgerResult, RawOp, Snapshot, cf, encode_value, u64_at,
};

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
pub(super) fn committed_hashes(ledger: &ChannelLedger, at: &PvtKey) -> LedgerResult<Option<HashedRwSet>> {
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
