//! Transaction simulation: runs a chaincode against a snapshot of committed state and
//! turns what it read and wrote into Fabric's canonical `TxReadWriteSet`, so that every
//! endorser of the same proposal on the same state produces identical bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_msp::Identity;
use medfabric_proto::common::SignaturePolicyEnvelope;
use medfabric_proto::kvrwset::{HashedRwSet, KvMetadataWriteHash, KvReadHash, KvWriteHash};
use medfabric_proto::kvrwset::{
    KvMetadataEntry, KvMetadataWrite, KvRead, KvWrite, KvrwSet, RangeQueryInfo, Version as ProtoVersion,
};
use medfabric_proto::protos::{ChaincodeCall, ChaincodeEvent, ChaincodeId, ChaincodeInterest, Response};
use medfabric_proto::rwset::{
    CollectionHashedReadWriteSet, CollectionPvtReadWriteSet, NsPvtReadWriteSet, TxPvtReadWriteSet,
};
use medfabric_proto::rwset::{NsReadWriteSet, TxReadWriteSet, tx_read_write_set};
use medfabric_shim::tx::{Resolver, execute, hash};
use medfabric_shim::{
    Access, Chaincode, CollectionRules, PrivateRecord, PrivateWrite, ShimError, ShimResult, StateView,
    TxContext, TxRecord, VALIDATION_PARAMETER, Version,
};

use crate::validator::ChannelContext;
use medfabric_types::SignedProposal;
use medfabric_types::lifecycle::{ChaincodeRegistry, LIFECYCLE_NAMESPACE};
use medfabric_types::rwset::{MAX_DEGREE_QUERY_READS_HASHING, summarize_range};
use prost::Message;

/// The `_lifecycle` key every invocation of chaincode `name` reads, as in Fabric: a
/// transaction endorsed under one definition fails MVCC after an upgrade.
pub fn sequence_key(name: &str) -> String {
    format!("namespaces/fields/{name}/Sequence")
}

fn proto_version(v: Version) -> ProtoVersion {
    ProtoVersion { block_num: v.0, tx_num: v.1 }
}

/// A collection's hashed read-write set and its private write set (writes only, as in
/// Fabric; `None` when the transaction wrote no private values to it).
fn collection_sets(
    collection: &str,
    record: &PrivateRecord,
) -> (CollectionHashedReadWriteSet, Option<CollectionPvtReadWriteSet>) {
    let hashed_reads = record
        .reads
        .iter()
        .map(|(key, v)| KvReadHash {
            key_hash: hash(key.as_bytes()).to_vec().into(),
            version: v.map(proto_version),
        })
        .collect();
    let mut private_writes = Vec::new();
    let hashed_writes = record
        .writes
        .iter()
        .map(|(key, write)| {
            let key_hash = hash(key.as_bytes()).to_vec().into();
            match write {
                PrivateWrite::Put(value) => {
                    private_writes.push(KvWrite { key: key.clone(), is_delete: false, value: value.clone() });
                    KvWriteHash {
                        key_hash,
                        is_delete: false,
                        value_hash: hash(value).to_vec().into(),
                        is_purge: false,
                    }
                }
                PrivateWrite::Delete => {
                    private_writes.push(KvWrite { key: key.clone(), is_delete: true, value: Bytes::new() });
                    KvWriteHash { key_hash, is_delete: true, value_hash: Bytes::new(), is_purge: false }
                }
                PrivateWrite::Purge => {
                    KvWriteHash { key_hash, is_delete: true, value_hash: Bytes::new(), is_purge: true }
                }
            }
        })
        .collect();
    let metadata_writes = record
        .metadata_writes
        .iter()
        .map(|(key, entries)| KvMetadataWriteHash {
            key_hash: hash(key.as_bytes()).to_vec().into(),
            entries: entries
                .iter()
                .map(|(name, value)| KvMetadataEntry { name: name.clone(), value: value.clone() })
                .collect(),
        })
        .collect();
    let hashed = HashedRwSet { hashed_reads, hashed_writes, metadata_writes };
    let private = (!private_writes.is_empty())
        .then(|| KvrwSet { writes: private_writes, ..Default::default() }.encode_to_vec());
    let set = CollectionHashedReadWriteSet {
        collection_name: collection.to_owned(),
        hashed_rwset: hashed.encode_to_vec().into(),
        pvt_rwset_hash: private.as_ref().map(|p| hash(p).to_vec().into()).unwrap_or_default(),
    };
    let private = private.map(|rwset| CollectionPvtReadWriteSet {
        collection_name: collection.to_owned(),
        rwset: rwset.into(),
    });
    (set, private)
}

/// The private write sets of a transaction, by namespace and collection (`None` when it
/// wrote no private values).
pub fn private_rwset(record: &TxRecord) -> Option<TxPvtReadWriteSet> {
    let ns_pvt_rwset: Vec<NsPvtReadWriteSet> = record
        .private
        .iter()
        .filter_map(|(namespace, collections)| {
            let collection_pvt_rwset: Vec<CollectionPvtReadWriteSet> =
                collections.iter().filter_map(|(name, r)| collection_sets(name, r).1).collect();
            (!collection_pvt_rwset.is_empty())
                .then(|| NsPvtReadWriteSet { namespace: namespace.clone(), collection_pvt_rwset })
        })
        .collect();
    (!ns_pvt_rwset.is_empty())
        .then(|| TxPvtReadWriteSet { data_model: tx_read_write_set::DataModel::Kv as i32, ns_pvt_rwset })
}

/// Builds the canonical read-write set: namespaces, keys and metadata entries sorted,
/// range queries in the order they ran, range reads summarised above 50 results;
/// private data only as hashes (collections and keys sorted).
pub fn to_rwset(record: &TxRecord) -> TxReadWriteSet {
    let ns_rwset = record
        .namespaces()
        .into_iter()
        .map(|namespace| {
            let reads = record
                .reads
                .get(namespace)
                .map(|r| {
                    r.iter()
                        .map(|(key, v)| KvRead { key: key.clone(), version: v.map(proto_version) })
                        .collect()
                })
                .unwrap_or_default();
            let range_queries_info = record
                .ranges
                .get(namespace)
                .map(|ranges| {
                    ranges
                        .iter()
                        .map(|r| {
                            let reads: Vec<KvRead> = r
                                .reads
                                .iter()
                                .map(|(key, v)| KvRead { key: key.clone(), version: Some(proto_version(*v)) })
                                .collect();
                            RangeQueryInfo {
                                start_key: r.start.clone(),
                                end_key: r.end.clone(),
                                itr_exhausted: r.exhausted,
                                // Fabric leaves the reads unset for an empty result.
                                reads_info: (!reads.is_empty()).then(|| {
                                    summarize_range(reads, MAX_DEGREE_QUERY_READS_HASHING).into_reads_info()
                                }),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let writes = record
                .writes
                .get(namespace)
                .map(|w| {
                    w.iter()
                        .map(|(key, value)| KvWrite {
                            key: key.clone(),
                            is_delete: value.is_none(),
                            value: value.clone().unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let metadata_writes = record
                .metadata_writes
                .get(namespace)
                .map(|m| {
                    m.iter()
                        .map(|(key, entries)| KvMetadataWrite {
                            key: key.clone(),
                            entries: entries
                                .iter()
                                .map(|(name, value)| KvMetadataEntry {
                                    name: name.clone(),
                                    value: value.clone(),
                                })
                                .collect(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let kv = KvrwSet { reads, range_queries_info, writes, metadata_writes };
            let collection_hashed_rwset = record
                .private
                .get(namespace)
                .map(|c| {
                    c.iter()
                        .filter(|(_, r)| !r.is_empty())
                        .map(|(name, r)| collection_sets(name, r).0)
                        .collect()
                })
                .unwrap_or_default();
            NsReadWriteSet {
                namespace: namespace.to_owned(),
                rwset: kv.encode_to_vec().into(),
                collection_hashed_rwset,
            }
        })
        .collect();
    TxReadWriteSet { data_model: tx_read_write_set::DataModel::Kv as i32, ns_rwset }
}

/// What simulating a proposal produced.
#[derive(Debug, Clone)]
pub struct Simulated {
    pub response: Response,
    /// Marshaled canonical `TxReadWriteSet`.
    pub results: Bytes,
    /// Marshaled `ChaincodeEvent`, or empty when the chaincode set none.
    pub events: Bytes,
    pub chaincode_id: ChaincodeId,
    pub record: TxRecord,
    /// The private write sets, which travel peer to peer and never into a block.
    pub private: Option<TxPvtReadWriteSet>,
}

/// In-process chaincodes by name, checked against the channel's definitions.
pub struct Installed<'a> {
    pub chaincodes: &'a BTreeMap<String, Arc<dyn Chaincode>>,
    pub registry: &'a ChaincodeRegistry,
}

impl Resolver for Installed<'_> {
    fn resolve(&self, name: &str) -> Result<Arc<dyn Chaincode>, String> {
        if self.registry.get(name).is_none() {
            return Err(format!("chaincode {name} is not defined on this channel"));
        }
        self.chaincodes
            .get(name)
            .cloned()
            .ok_or_else(|| format!("chaincode {name} is not installed on this peer"))
    }
}

/// The chaincode context a proposal gives.
pub fn context_of(
    proposal: &SignedProposal,
    signed: Option<medfabric_proto::protos::SignedProposal>,
) -> TxContext {
    TxContext {
        channel_id: proposal.channel_id().to_owned(),
        tx_id: proposal.tx_id().to_owned(),
        args: proposal.input.args.clone(),
        creator: proposal.creator().clone(),
        transient: proposal.transient_map.clone(),
        timestamp: proposal.channel_header.timestamp,
        signed_proposal: signed,
        // A client's own decorations pass through (Fabric's default decorator), but
        // never under the peer's prefix: those only the peer sets (`decorate`).
        decorations: proposal
            .input
            .decorations
            .iter()
            .filter(|(k, _)| !k.starts_with(PEER_DECORATION_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        collections: None,
    }
}

/// Decoration keys only the endorsing peer sets.
pub const PEER_DECORATION_PREFIX: &str = "medfabric.";

/// The decorations the medical chaincode reads: the consortium's role grants, every
/// organization's record public key, and this peer's organization record key (given only
/// to the chaincodes the key is for). Their names are the medical API's.
pub use medfabric_medical_api::names::{ORG_KEY_DECORATION, RECORD_KEYS_DECORATION, ROLES_DECORATION};

/// An organization's record key as its peers hold it: the private half of the public key
/// in the channel config's `MedfabricRecordKeys`, and the chaincodes that may use it.
pub struct RecordKey {
    pub msp_id: String,
    private_key: Vec<u8>,
    pub chaincodes: std::collections::BTreeSet<String>,
}

impl RecordKey {
    pub fn new(msp_id: &str, private_key: Vec<u8>, chaincodes: std::collections::BTreeSet<String>) -> Self {
        Self { msp_id: msp_id.to_owned(), private_key, chaincodes }
    }

    fn decoration(&self) -> Bytes {
        let json = serde_json::json!({"msp_id": self.msp_id, "private_key": hex::encode(&self.private_key)});
        Bytes::from(json.to_string())
    }
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordKey({}, {:?})", self.msp_id, self.chaincodes)
    }
}

/// Adds the peer's decorations from the channel config: the consortium's role grants and
/// the organizations' record public keys, when the channel has them (every endorser of a
/// channel reads the same config, so they decorate alike); and, for the chaincodes it is
/// for, this peer's organization record key.
pub fn decorate(
    context: &mut TxContext,
    config: &medfabric_types::config::ChannelConfig,
    chaincode: &str,
    record_key: Option<&RecordKey>,
) {
    if !config.roles.is_empty() {
        let json = serde_json::to_vec(&config.roles).expect("a map of strings serializes");
        context.decorations.insert(ROLES_DECORATION.to_owned(), Bytes::from(json));
    }
    if !config.record_keys.is_empty() {
        let keys: BTreeMap<&String, String> =
            config.record_keys.iter().map(|(org, key)| (org, hex::encode(key))).collect();
        let json = serde_json::to_vec(&keys).expect("a map of strings serializes");
        context.decorations.insert(RECORD_KEYS_DECORATION.to_owned(), Bytes::from(json));
    }
    if let Some(key) = record_key.filter(|k| k.chaincodes.contains(chaincode)) {
        context.decorations.insert(ORG_KEY_DECORATION.to_owned(), key.decoration());
    }
}

/// The collection rules of the channel for one creator: collections come from the
/// chaincode definitions (and each organization's implicit collection); member-only
/// collections refuse creators of other organizations, as Fabric's endorser does.
#[derive(Debug)]
pub struct ChannelCollections {
    pub context: Arc<ChannelContext>,
    pub creator: Arc<Identity>,
}

impl CollectionRules for ChannelCollections {
    fn check(&self, namespace: &str, collection: &str, access: Access) -> ShimResult<()> {
        let definition = self.context.registry.get(namespace);
        let Some(found) = definition.and_then(|d| d.collection(collection, &self.context.resources)) else {
            return Err(ShimError::Invalid(format!(
                "collection {collection} not defined in the collection config for chaincode {namespace}"
            )));
        };
        let member_only = match access {
            Access::Read => found.member_only_read,
            Access::Write => found.member_only_write,
        };
        if member_only && !found.is_member(&self.creator) {
            let what = if access == Access::Read { "read" } else { "write" };
            return Err(ShimError::Denied(format!(
                "tx creator does not have {what} access permission on privatedata in chaincodeName:{namespace} collectionName: {collection}"
            )));
        }
        Ok(())
    }
}

/// Runs chaincode `name` for `context` on `state` and builds its read-write set.
pub fn simulate(
    name: &str,
    context: &TxContext,
    state: &dyn StateView,
    installed: &Installed<'_>,
) -> Result<Simulated, String> {
    let definition = installed.registry.get(name).ok_or_else(|| format!("chaincode {name} not found"))?;
    let chaincode = installed.resolve(name)?;
    let (response, mut record) = execute(chaincode.as_ref(), name, context, state, installed, false);
    // Every chaincode that ran read its definition's sequence, as on Fabric.
    for called in record.chaincodes.clone() {
        let key = sequence_key(&called);
        let version = state.get(LIFECYCLE_NAMESPACE, &key).map_err(|e| e.to_string())?.map(|v| v.version);
        record.reads.entry(LIFECYCLE_NAMESPACE.to_owned()).or_default().insert(key, version);
    }
    let events = match &record.event {
        Some((event_name, payload)) => ChaincodeEvent {
            chaincode_id: name.to_owned(),
            tx_id: context.tx_id.clone(),
            event_name: event_name.clone(),
            payload: payload.clone(),
        }
        .encode_to_vec()
        .into(),
        None => Bytes::new(),
    };
    Ok(Simulated {
        response,
        results: to_rwset(&record).encode_to_vec().into(),
        events,
        chaincode_id: ChaincodeId {
            path: String::new(),
            name: name.to_owned(),
            version: definition.version.clone(),
        },
        private: private_rwset(&record),
        record,
    })
}

/// Fabric's `ChaincodeInterest`: the chaincodes a transaction touched and the key-level
/// policies of the keys it writes, so a gateway can pick every endorser it needs.
pub fn interest(record: &TxRecord, state: &dyn StateView, context: &ChannelContext) -> ChaincodeInterest {
    let policy_of = |value: Option<medfabric_shim::VersionedValue>| {
        value
            .and_then(|v| v.metadata.get(VALIDATION_PARAMETER).filter(|p| !p.is_empty()).cloned())
            .and_then(|p| SignaturePolicyEnvelope::decode(p.as_ref()).ok())
    };
    let mut chaincodes = Vec::new();
    for namespace in record.namespaces() {
        if namespace == LIFECYCLE_NAMESPACE {
            continue;
        }
        let mut key_policies = Vec::new();
        let mut needs_namespace_policy = !record.has_writes_in(namespace);
        let public = record
            .writes
            .get(namespace)
            .into_iter()
            .flat_map(|w| w.keys())
            .chain(record.metadata_writes.get(namespace).into_iter().flat_map(|m| m.keys()));
        for key in public {
            match policy_of(state.get(namespace, key).ok().flatten()) {
                Some(policy) => key_policies.push(policy),
                None => needs_namespace_policy = true,
            }
        }
        let private = record.private.get(namespace);
        let definition = context.registry.get(namespace);
        // A private key without a key-level policy needs its collection's policy (which
        // the gateway finds by the collection's name) or, without one, the chaincode's.
        for (collection, written) in private.into_iter().flatten() {
            let has_policy = definition
                .and_then(|d| d.collection(collection, &context.resources))
                .is_some_and(|c| c.endorsement_policy.is_some());
            for key in written.writes.keys().chain(written.metadata_writes.keys()) {
                match policy_of(
                    state.private_hash(namespace, collection, &hash(key.as_bytes())).ok().flatten(),
                ) {
                    Some(policy) => key_policies.push(policy),
                    None => needs_namespace_policy |= !has_policy,
                }
            }
        }
        let collection_names: Vec<String> = private
            .map(|c| {
                c.iter().filter(|(_, r)| !r.is_empty() || r.read_values).map(|(n, _)| n.clone()).collect()
            })
            .unwrap_or_default();
        let no_private_reads = private.is_none_or(|c| c.values().all(|r| !r.read_values));
        chaincodes.push(ChaincodeCall {
            name: namespace.to_owned(),
            collection_names,
            no_private_reads,
            no_public_writes: false,
            disregard_namespace_policy: !needs_namespace_policy,
            key_policies,
        });
    }
    ChaincodeInterest { chaincodes }
}
