//! Fabric's MVCC and phantom-read check (validation stage 3), in one place for the peer's
//! validator and the offline verifier.
//!
//! A transaction's reads are checked against the committed state plus the writes of the
//! block's earlier valid transactions: a point read must see the version it recorded and a
//! key an earlier transaction of the block changed (written, deleted or re-versioned by a
//! metadata write) may not be read at all, whatever version the read claims; a range query
//! must return what the endorser saw (raw reads or Fabric's Merkle summary); a hashed read
//! of private data follows the point-read rule in the collection's hashed namespace
//! (`<ns>$$h<collection>`, key = hex of the key hash).

use medfabric_proto::kvrwset::{HashedRwSet, KvRead, KvrwSet, RangeQueryInfo, Version};

use crate::lifecycle::hashed_namespace;
use crate::rwset::range_query_matches;

/// Why the reads of a transaction no longer hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// A point read (public or hashed private) saw another version, or a key the block
    /// already changed.
    Mvcc(String),
    /// A range query would now return something else.
    Phantom(String),
}

/// The state a transaction's reads are checked against.
pub trait MvccState {
    type Error;
    /// The committed version of `key` (`None`: absent).
    fn committed_version(&self, namespace: &str, key: &str) -> Result<Option<Version>, Self::Error>;
    /// Committed keys in `[start, end)` (an empty `end` is unbounded), in key order.
    fn committed_range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Version)>, Self::Error>;
    /// What the block's earlier valid transactions made of `key`: `None` if they did not
    /// touch it, `Some(None)` if they deleted it.
    fn pending(&self, namespace: &str, key: &str) -> Option<Option<Version>>;
    /// The keys the block's earlier valid transactions touched in `[start, end)`, in key
    /// order, with their new versions (`None`: deleted).
    fn pending_range(&self, namespace: &str, start: &str, end: &str) -> Vec<(String, Option<Version>)>;
}

/// One namespace of a transaction's read-write set, decoded.
#[derive(Debug, Clone)]
pub struct NsReads<'a> {
    pub namespace: &'a str,
    pub kv: &'a KvrwSet,
    /// Collection name and its hashed read-write set.
    pub collections: Vec<(&'a str, &'a HashedRwSet)>,
}

/// The live keys a recorded range query covers now: `[start, end)` when its iterator was
/// exhausted, `[start, end]` (end = the last key read) when it stopped early; an empty end
/// key is unbounded.
pub fn range_now<S: MvccState>(
    state: &S,
    namespace: &str,
    info: &RangeQueryInfo,
) -> Result<Vec<KvRead>, S::Error> {
    let end = if info.itr_exhausted || info.end_key.is_empty() {
        info.end_key.clone()
    } else {
        format!("{}\0", info.end_key)
    };
    let mut current: std::collections::BTreeMap<String, Version> =
        state.committed_range(namespace, &info.start_key, &end)?.into_iter().collect();
    for (key, version) in state.pending_range(namespace, &info.start_key, &end) {
        match version {
            Some(v) => current.insert(key, v),
            None => current.remove(&key),
        };
    }
    Ok(current.into_iter().map(|(key, v)| KvRead { key, version: Some(v) }).collect())
}

fn point_read<S: MvccState>(
    state: &S,
    namespace: &str,
    key: &str,
    recorded: Option<&Version>,
) -> Result<Option<String>, S::Error> {
    if state.pending(namespace, key).is_some() {
        return Ok(Some("was changed earlier in this block".into()));
    }
    let current = state.committed_version(namespace, key)?;
    Ok((current.as_ref() != recorded)
        .then(|| format!("was read at {} but the ledger has {}", show(recorded), show(current.as_ref()))))
}

/// Fabric's check of one transaction's reads, per namespace: point reads, then range
/// queries, then hashed private reads. The first conflict found.
pub fn conflict<S: MvccState>(state: &S, sets: &[NsReads<'_>]) -> Result<Option<Conflict>, S::Error> {
    for set in sets {
        let ns = set.namespace;
        for read in &set.kv.reads {
            if let Some(why) = point_read(state, ns, &read.key, read.version.as_ref())? {
                return Ok(Some(Conflict::Mvcc(format!("{ns}/{:?} {why}", read.key))));
            }
        }
        for info in &set.kv.range_queries_info {
            if !range_query_matches(info, range_now(state, ns, info)?) {
                return Ok(Some(Conflict::Phantom(format!(
                    "range [{:?}, {:?}) of {ns} changed since endorsement",
                    info.start_key, info.end_key
                ))));
            }
        }
        for &(collection, hashed) in &set.collections {
            let hashed_ns = hashed_namespace(ns, collection);
            for read in &hashed.hashed_reads {
                let key = hex::encode(&read.key_hash);
                if let Some(why) = point_read(state, &hashed_ns, &key, read.version.as_ref())? {
                    return Ok(Some(Conflict::Mvcc(format!("a private key of {ns}/{collection} {why}"))));
                }
            }
        }
    }
    Ok(None)
}

fn show(version: Option<&Version>) -> String {
    version.map_or_else(|| "absent".to_owned(), |v| format!("({}, {})", v.block_num, v.tx_num))
}

/// Does this write delete its key? As in Fabric, a write with an empty value is a delete.
pub fn is_delete(write: &medfabric_proto::kvrwset::KvWrite) -> bool {
    write.is_delete || write.value.is_empty()
}

/// Does this hashed write remove its key? A delete, a purge, or an empty value hash.
pub fn is_hashed_delete(write: &medfabric_proto::kvrwset::KvWriteHash) -> bool {
    write.is_delete || write.is_purge || write.value_hash.is_empty()
}
