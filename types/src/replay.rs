//! The key versions of a channel's world state, replayed from its blocks, so that an
//! offline verifier can re-check MVCC and phantom-read verdicts (Fabric's stage 3) with
//! the peer's own check ([`crate::mvcc`]).

use std::collections::BTreeMap;
use std::convert::Infallible;

use medfabric_proto::kvrwset::{HashedRwSet, KvrwSet, Version};
use medfabric_proto::rwset::TxReadWriteSet;

use crate::error::{ConvertError, decode};
use crate::lifecycle::hashed_namespace;
pub use crate::mvcc::Conflict;
use crate::mvcc::{self, MvccState, NsReads};

/// Versions `(block, tx)` of every live key, public and hashed-private (in the
/// collection's hashed namespace, key = hex of the key hash, as the peer keeps them), and
/// the writes of the current block's valid transactions so far.
#[derive(Debug, Default)]
pub struct StateVersions {
    committed: BTreeMap<(String, String), Version>,
    /// Key → new version (`None`: deleted) by the current block's valid transactions.
    pending: BTreeMap<(String, String), Option<Version>>,
}

fn bounded<'a, V>(
    map: &'a BTreeMap<(String, String), V>,
    namespace: &'a str,
    start: &str,
    end: &'a str,
) -> impl Iterator<Item = (&'a String, &'a V)> + 'a {
    map.range((namespace.to_owned(), start.to_owned())..)
        .take_while(move |((ns, key), _)| ns == namespace && (end.is_empty() || key.as_str() < end))
        .map(|((_, key), v)| (key, v))
}

impl MvccState for StateVersions {
    type Error = Infallible;

    fn committed_version(&self, namespace: &str, key: &str) -> Result<Option<Version>, Infallible> {
        Ok(self.committed.get(&(namespace.to_owned(), key.to_owned())).copied())
    }

    fn committed_range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
    ) -> Result<Vec<(String, Version)>, Infallible> {
        Ok(bounded(&self.committed, namespace, start, end).map(|(k, v)| (k.clone(), *v)).collect())
    }

    fn pending(&self, namespace: &str, key: &str) -> Option<Option<Version>> {
        self.pending.get(&(namespace.to_owned(), key.to_owned())).copied()
    }

    fn pending_range(&self, namespace: &str, start: &str, end: &str) -> Vec<(String, Option<Version>)> {
        bounded(&self.pending, namespace, start, end).map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A namespace's name, its public read-write set and its collections' hashed ones.
pub(crate) type Decoded = (String, KvrwSet, Vec<(String, HashedRwSet)>);

/// [`decoded`] sets as the shared checks take them.
pub(crate) fn ns_reads(sets: &[Decoded]) -> Vec<NsReads<'_>> {
    sets.iter()
        .map(|(namespace, kv, collections)| NsReads {
            namespace,
            kv,
            collections: collections.iter().map(|(name, hashed)| (name.as_str(), hashed)).collect(),
        })
        .collect()
}

/// Every namespace of a read-write set, decoded.
pub(crate) fn decoded(rwset: &TxReadWriteSet) -> Result<Vec<Decoded>, ConvertError> {
    rwset
        .ns_rwset
        .iter()
        .map(|ns| {
            let kv: KvrwSet = decode("KVRWSet", &ns.rwset)?;
            let collections = ns
                .collection_hashed_rwset
                .iter()
                .map(|c| Ok((c.collection_name.clone(), decode("HashedRWSet", &c.hashed_rwset)?)))
                .collect::<Result<Vec<_>, ConvertError>>()?;
            Ok((ns.namespace.clone(), kv, collections))
        })
        .collect()
}

impl StateVersions {
    /// Fabric's MVCC check of one transaction against the state so far (committed
    /// blocks plus earlier valid transactions of the same block).
    pub fn check(&self, rwset: &TxReadWriteSet) -> Result<Option<Conflict>, ConvertError> {
        let sets = decoded(rwset)?;
        let reads = ns_reads(&sets);
        Ok(mvcc::conflict(self, &reads).unwrap_or_else(|never| match never {}))
    }

    /// The version `key` has now (the block's writes first).
    fn current(&self, namespace: &str, key: &str) -> Option<Version> {
        match self.pending(namespace, key) {
            Some(pending) => pending,
            None => self.committed.get(&(namespace.to_owned(), key.to_owned())).copied(),
        }
    }

    fn set(&mut self, namespace: &str, key: &str, version: Option<Version>) {
        self.pending.insert((namespace.to_owned(), key.to_owned()), version);
    }

    /// Applies the writes of a valid transaction at height `(block, tx)`; they count as
    /// the block's until [`StateVersions::end_block`].
    pub fn apply(&mut self, rwset: &TxReadWriteSet, block: u64, tx: u64) -> Result<(), ConvertError> {
        let version = Version { block_num: block, tx_num: tx };
        for (ns, kv, collections) in decoded(rwset)? {
            for write in &kv.writes {
                let deleted = mvcc::is_delete(write);
                self.set(&ns, &write.key, (!deleted).then_some(version));
            }
            // A metadata write re-versions an existing key and is ignored for an absent one.
            for write in &kv.metadata_writes {
                if self.current(&ns, &write.key).is_some() {
                    self.set(&ns, &write.key, Some(version));
                }
            }
            for (collection, hashed) in &collections {
                let hashed_ns = hashed_namespace(&ns, collection);
                for write in &hashed.hashed_writes {
                    let deleted = mvcc::is_hashed_delete(write);
                    self.set(&hashed_ns, &hex::encode(&write.key_hash), (!deleted).then_some(version));
                }
                for write in &hashed.metadata_writes {
                    let key = hex::encode(&write.key_hash);
                    if self.current(&hashed_ns, &key).is_some() {
                        self.set(&hashed_ns, &key, Some(version));
                    }
                }
            }
        }
        Ok(())
    }

    /// The block is over: its writes become committed state.
    pub fn end_block(&mut self) {
        for (id, version) in std::mem::take(&mut self.pending) {
            match version {
                Some(v) => self.committed.insert(id, v),
                None => self.committed.remove(&id),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use medfabric_proto::Message;
    use medfabric_proto::kvrwset::{KvRead, KvWrite, RangeQueryInfo, range_query_info};
    use medfabric_proto::rwset::NsReadWriteSet;

    use super::*;

    fn tx(reads: Vec<KvRead>, writes: Vec<KvWrite>, ranges: Vec<RangeQueryInfo>) -> TxReadWriteSet {
        let kv = KvrwSet { reads, writes, range_queries_info: ranges, ..Default::default() };
        TxReadWriteSet {
            ns_rwset: vec![NsReadWriteSet {
                namespace: "cc".into(),
                rwset: kv.encode_to_vec().into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn read(key: &str, version: Option<(u64, u64)>) -> KvRead {
        KvRead { key: key.into(), version: version.map(|(b, t)| Version { block_num: b, tx_num: t }) }
    }

    fn write(key: &str, value: &str) -> KvWrite {
        KvWrite { key: key.into(), value: value.as_bytes().to_vec().into(), is_delete: false }
    }

    fn delete(key: &str) -> KvWrite {
        KvWrite { key: key.into(), value: Default::default(), is_delete: true }
    }

    #[test]
    fn a_key_the_block_touched_may_not_be_read_even_if_it_was_absent_and_still_is() {
        let mut state = StateVersions::default();
        state.apply(&tx(vec![], vec![delete("gone")], vec![]), 1, 0).expect("applies");
        let conflict = state.check(&tx(vec![read("gone", None)], vec![], vec![])).expect("checks");
        assert!(
            matches!(&conflict, Some(Conflict::Mvcc(why)) if why.contains("changed earlier in this block")),
            "{conflict:?}"
        );
        state.end_block();
        assert_eq!(state.check(&tx(vec![read("gone", None)], vec![], vec![])).expect("checks"), None);
    }

    #[test]
    fn a_write_with_an_empty_value_deletes_as_in_fabric() {
        let mut state = StateVersions::default();
        state.apply(&tx(vec![], vec![write("k", "v")], vec![]), 1, 0).expect("applies");
        state.end_block();
        state.apply(&tx(vec![], vec![write("k", "")], vec![]), 2, 0).expect("applies");
        state.end_block();
        assert_eq!(state.check(&tx(vec![read("k", None)], vec![], vec![])).expect("checks"), None);
        assert!(state.check(&tx(vec![read("k", Some((1, 0)))], vec![], vec![])).expect("checks").is_some());
    }

    #[test]
    fn a_range_query_sees_committed_keys_and_the_blocks_writes() {
        let mut state = StateVersions::default();
        state.apply(&tx(vec![], vec![write("a", "1"), write("b", "1")], vec![]), 1, 0).expect("applies");
        state.end_block();
        let range = |reads: Vec<KvRead>| RangeQueryInfo {
            start_key: "a".into(),
            end_key: "c".into(),
            itr_exhausted: true,
            reads_info: Some(range_query_info::ReadsInfo::RawReads(medfabric_proto::kvrwset::QueryReads {
                kv_reads: reads,
            })),
        };
        let endorsed = range(vec![read("a", Some((1, 0))), read("b", Some((1, 0)))]);
        assert_eq!(state.check(&tx(vec![], vec![], vec![endorsed.clone()])).expect("checks"), None);
        // An earlier transaction of the block deletes `b`: a phantom.
        state.apply(&tx(vec![], vec![delete("b")], vec![]), 2, 0).expect("applies");
        assert!(matches!(
            state.check(&tx(vec![], vec![], vec![endorsed])).expect("checks"),
            Some(Conflict::Phantom(_))
        ));
        state.end_block();
        let now = range(vec![read("a", Some((1, 0)))]);
        assert_eq!(state.check(&tx(vec![], vec![], vec![now])).expect("checks"), None);
    }
}
