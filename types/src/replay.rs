//! The key versions of a channel's world state, replayed from its blocks, so that an
//! offline verifier can re-check MVCC and phantom-read verdicts (Fabric's stage 3).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use medfabric_proto::kvrwset::{HashedRwSet, KvRead, KvrwSet, RangeQueryInfo, Version};
use medfabric_proto::rwset::TxReadWriteSet;

use crate::error::{ConvertError, decode};
use crate::rwset::range_query_matches;

/// Why the reads of a transaction no longer hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A point read (public or hashed private) saw another version.
    Mvcc(String),
    /// A range query would now return something else.
    Phantom(String),
}

/// Versions `(block, tx)` of every live key, public and hashed-private.
#[derive(Debug, Default)]
pub struct StateVersions {
    public: BTreeMap<(String, String), Version>,
    hashed: HashMap<(String, String, Bytes), Version>,
}

impl StateVersions {
    /// Fabric's MVCC check of one transaction against the state so far (committed
    /// blocks plus earlier valid transactions of the same block): per namespace, point
    /// reads, then range queries, then hashed private reads.
    pub fn check(&self, rwset: &TxReadWriteSet) -> Result<Option<Conflict>, ConvertError> {
        for ns in &rwset.ns_rwset {
            let kv: KvrwSet = decode("KVRWSet", &ns.rwset)?;
            for read in &kv.reads {
                let current = self.public.get(&(ns.namespace.clone(), read.key.clone()));
                if current != read.version.as_ref() {
                    return Ok(Some(Conflict::Mvcc(format!(
                        "read of {}/{:?} at {} but the ledger has {}",
                        ns.namespace,
                        read.key,
                        show(read.version.as_ref()),
                        show(current)
                    ))));
                }
            }
            for range in &kv.range_queries_info {
                if !range_query_matches(range, self.range(&ns.namespace, range)) {
                    return Ok(Some(Conflict::Phantom(format!(
                        "range [{:?}, {:?}) of {} changed since endorsement",
                        range.start_key, range.end_key, ns.namespace
                    ))));
                }
            }
            for collection in &ns.collection_hashed_rwset {
                let hashed: HashedRwSet = decode("HashedRWSet", &collection.hashed_rwset)?;
                for read in &hashed.hashed_reads {
                    let id =
                        (ns.namespace.clone(), collection.collection_name.clone(), read.key_hash.clone());
                    let current = self.hashed.get(&id);
                    if current != read.version.as_ref() {
                        return Ok(Some(Conflict::Mvcc(format!(
                            "read of a private key of {}/{} at {} but the ledger has {}",
                            ns.namespace,
                            collection.collection_name,
                            show(read.version.as_ref()),
                            show(current)
                        ))));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Applies the writes of a valid transaction at height `(block, tx)`.
    pub fn apply(&mut self, rwset: &TxReadWriteSet, block: u64, tx: u64) -> Result<(), ConvertError> {
        let version = Version { block_num: block, tx_num: tx };
        for ns in &rwset.ns_rwset {
            let kv: KvrwSet = decode("KVRWSet", &ns.rwset)?;
            for write in &kv.writes {
                let id = (ns.namespace.clone(), write.key.clone());
                if write.is_delete {
                    self.public.remove(&id);
                } else {
                    self.public.insert(id, version);
                }
            }
            // A metadata write re-versions an existing key and is ignored for an absent one.
            for write in &kv.metadata_writes {
                if let Some(v) = self.public.get_mut(&(ns.namespace.clone(), write.key.clone())) {
                    *v = version;
                }
            }
            for collection in &ns.collection_hashed_rwset {
                let hashed: HashedRwSet = decode("HashedRWSet", &collection.hashed_rwset)?;
                for write in &hashed.hashed_writes {
                    let id =
                        (ns.namespace.clone(), collection.collection_name.clone(), write.key_hash.clone());
                    if write.is_delete || write.is_purge {
                        self.hashed.remove(&id);
                    } else {
                        self.hashed.insert(id, version);
                    }
                }
                for write in &hashed.metadata_writes {
                    let id =
                        (ns.namespace.clone(), collection.collection_name.clone(), write.key_hash.clone());
                    if let Some(v) = self.hashed.get_mut(&id) {
                        *v = version;
                    }
                }
            }
        }
        Ok(())
    }

    /// The live keys a recorded range query covers now: `[start, end)` when its iterator
    /// was exhausted, `[start, end]` (end = last key read) when it was not; an empty end
    /// key is unbounded.
    fn range(&self, namespace: &str, info: &RangeQueryInfo) -> Vec<KvRead> {
        let from = (namespace.to_owned(), info.start_key.clone());
        self.public
            .range(from..)
            .take_while(|((ns, key), _)| {
                ns == namespace
                    && (info.end_key.is_empty()
                        || key.as_str() < info.end_key.as_str()
                        || (!info.itr_exhausted && key == &info.end_key))
            })
            .map(|((_, key), version)| KvRead { key: key.clone(), version: Some(*version) })
            .collect()
    }
}

fn show(version: Option<&Version>) -> String {
    version.map_or_else(|| "absent".to_owned(), |v| format!("({}, {})", v.block_num, v.tx_num))
}
