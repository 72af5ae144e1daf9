//! Read-write set rules shared by simulation and validation: how a range query's reads
//! are recorded (raw up to 50 results, a Merkle summary above), as Fabric does.

use std::collections::BTreeMap;

use medfabric_proto::kvrwset::{
    KvRead, QueryReads, QueryReadsMerkleSummary, RangeQueryInfo, range_query_info,
};
use prost::Message;
use sha2::{Digest, Sha256};

/// Fabric's `maxDegreeQueryReadsHashing`.
pub const MAX_DEGREE_QUERY_READS_HASHING: u32 = 50;

/// How a range query's results are recorded in a rw-set.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeReads {
    Raw(Vec<KvRead>),
    Merkle(QueryReadsMerkleSummary),
}

impl RangeReads {
    pub fn into_reads_info(self) -> range_query_info::ReadsInfo {
        match self {
            RangeReads::Raw(kv_reads) => range_query_info::ReadsInfo::RawReads(QueryReads { kv_reads }),
            RangeReads::Merkle(summary) => range_query_info::ReadsInfo::ReadsMerkleHashes(summary),
        }
    }
}

/// Summarizes the results of a range query, in iteration order. Up to `max_degree`
/// results are kept raw. Beyond that, every `max_degree + 1` results are hashed (SHA-256
/// of a marshaled `QueryReads`) into a leaf, and every `max_degree + 1` hashes of a level
/// into one hash of the next level, until at most `max_degree` hashes remain at the top.
pub fn summarize_range(results: impl IntoIterator<Item = KvRead>, max_degree: u32) -> RangeReads {
    let max_degree = max_degree.max(1) as usize;
    let mut pending: Vec<KvRead> = Vec::new();
    let mut tree: BTreeMap<u32, Vec<[u8; 32]>> = BTreeMap::new();
    let mut max_level = 1u32;
    let hash_pending =
        |pending: &mut Vec<KvRead>, tree: &mut BTreeMap<u32, Vec<[u8; 32]>>, max_level: &mut u32| {
            let leaf: [u8; 32] =
                Sha256::digest(QueryReads { kv_reads: std::mem::take(pending) }.encode_to_vec()).into();
            tree.entry(1).or_default().push(leaf);
            let mut level = 1;
            while tree.get(&level).is_some_and(|hashes| hashes.len() > max_degree) {
                let hashes = tree.remove(&level).unwrap_or_default();
                tree.entry(level + 1).or_default().push(combined_hash(&hashes));
                *max_level = (*max_level).max(level + 1);
                level += 1;
            }
        };
    for read in results {
        pending.push(read);
        if pending.len() > max_degree {
            hash_pending(&mut pending, &mut tree, &mut max_level);
        }
    }
    if tree.is_empty() {
        return RangeReads::Raw(pending);
    }
    if !pending.is_empty() {
        hash_pending(&mut pending, &mut tree, &mut max_level);
    }
    // Fabric's merkleTree.done(): carry what is left at lower levels up to the top (a
    // lone hash moves up unchanged, several are combined), then fold the top level once
    // more if it holds more than `max_degree` hashes.
    let min_level = tree.keys().next().copied().unwrap_or(max_level);
    for level in min_level..max_level {
        let Some(hashes) = tree.remove(&level).filter(|h| !h.is_empty()) else { continue };
        let carried = if hashes.len() == 1 { hashes[0] } else { combined_hash(&hashes) };
        tree.entry(level + 1).or_default().push(carried);
    }
    if tree.get(&max_level).is_some_and(|top| top.len() > max_degree) {
        let top = tree.remove(&max_level).unwrap_or_default();
        max_level += 1;
        tree.insert(max_level, vec![combined_hash(&top)]);
    }
    RangeReads::Merkle(QueryReadsMerkleSummary {
        max_degree: max_degree as u32,
        max_level,
        max_level_hashes: tree
            .remove(&max_level)
            .unwrap_or_default()
            .iter()
            .map(|h| h.to_vec().into())
            .collect(),
    })
}

fn combined_hash(hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for h in hashes {
        hasher.update(h);
    }
    hasher.finalize().into()
}

/// Does re-running a recorded range query give what the endorser saw? `current` are the
/// keys (with versions) now in the range, in key order, already bounded as the query
/// was: `[start, end)` when the iterator was exhausted, `[start, end]` otherwise.
pub fn range_query_matches(info: &RangeQueryInfo, current: Vec<KvRead>) -> bool {
    match &info.reads_info {
        Some(range_query_info::ReadsInfo::RawReads(raw)) => raw.kv_reads == current,
        Some(range_query_info::ReadsInfo::ReadsMerkleHashes(summary)) => {
            summarize_range(current, summary.max_degree) == RangeReads::Merkle(summary.clone())
        }
        None => current.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medfabric_proto::kvrwset::Version;

    fn reads(n: usize) -> Vec<KvRead> {
        (0..n)
            .map(|i| KvRead {
                key: format!("k{i:04}"),
                version: Some(Version { block_num: 1, tx_num: i as u64 }),
            })
            .collect()
    }

    fn leaf(reads: &[KvRead]) -> [u8; 32] {
        Sha256::digest(QueryReads { kv_reads: reads.to_vec() }.encode_to_vec()).into()
    }

    /// Fabric's `merkleTree.done()`: a lone lower-level hash moves up unchanged, and a top
    /// level holding more than `max_degree` hashes is folded once more.
    #[test]
    fn leftover_hashes_are_carried_and_the_top_level_folded_as_in_fabric() {
        let all = reads(5);
        let (l1, l2, l3) = (leaf(&all[0..2]), leaf(&all[2..4]), leaf(&all[4..5]));
        let a = combined_hash(&[l1, l2]);
        let top = combined_hash(&[a, l3]);
        let expected = QueryReadsMerkleSummary {
            max_degree: 1,
            max_level: 3,
            max_level_hashes: vec![top.to_vec().into()],
        };
        assert_eq!(summarize_range(all, 1), RangeReads::Merkle(expected));

        let all = reads(10);
        let (l1, l2, l3, l4) = (leaf(&all[0..3]), leaf(&all[3..6]), leaf(&all[6..9]), leaf(&all[9..10]));
        let a = combined_hash(&[l1, l2, l3]);
        let expected = QueryReadsMerkleSummary {
            max_degree: 2,
            max_level: 2,
            max_level_hashes: vec![a.to_vec().into(), l4.to_vec().into()],
        };
        assert_eq!(summarize_range(all, 2), RangeReads::Merkle(expected));
    }

    #[test]
    fn up_to_max_degree_results_stay_raw() {
        assert_eq!(summarize_range(reads(50), 50), RangeReads::Raw(reads(50)));
        assert_eq!(summarize_range(Vec::new(), 50), RangeReads::Raw(Vec::new()));
    }

    #[test]
    fn larger_results_become_a_merkle_summary() {
        let RangeReads::Merkle(summary) = summarize_range(reads(60), 50) else { panic!("raw") };
        assert_eq!((summary.max_degree, summary.max_level, summary.max_level_hashes.len()), (50, 1, 2));
        let first: [u8; 32] = Sha256::digest(QueryReads { kv_reads: reads(51) }.encode_to_vec()).into();
        assert_eq!(summary.max_level_hashes[0].as_ref(), first.as_slice());
        // 3 * 51 * 51 results make 153 leaves, folded into 3 hashes of the second level.
        let RangeReads::Merkle(deep) = summarize_range(reads(3 * 51 * 51), 50) else { panic!("raw") };
        assert_eq!((deep.max_level, deep.max_level_hashes.len()), (2, 3));
        // A remainder below the top level is carried up into one more top-level hash.
        let RangeReads::Merkle(carried) = summarize_range(reads(51 * 51 + 60), 50) else { panic!("raw") };
        assert_eq!((carried.max_level, carried.max_level_hashes.len()), (2, 2));
        let mut changed = reads(60);
        changed[31].version = Some(Version { block_num: 9, tx_num: 0 });
        assert_ne!(summarize_range(changed, 50), summarize_range(reads(60), 50));
    }
}
