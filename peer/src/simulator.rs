//! Transaction simulation: runs a chaincode against a snapshot of committed state and
//! turns what it read and wrote into Fabric's canonical `TxReadWriteSet`, so that every
//! endorser of the same proposal on the same state produces identical bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_proto::common::SignaturePolicyEnvelope;
use medfabric_proto::kvrwset::{
    KvMetadataEntry, KvMetadataWrite, KvRead, KvWrite, KvrwSet, RangeQueryInfo, Version as ProtoVersion,
};
use medfabric_proto::protos::{ChaincodeCall, ChaincodeEvent, ChaincodeId, ChaincodeInterest, Response};
use medfabric_proto::rwset::{NsReadWriteSet, TxReadWriteSet, tx_read_write_set};
use medfabric_shim::tx::{Resolver, execute};
use medfabric_shim::{Chaincode, StateView, TxContext, TxRecord, VALIDATION_PARAMETER, Version};
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

/// Builds the canonical read-write set: namespaces, keys and metadata entries sorted,
/// range queries in the order they ran, range reads summarised above 50 results.
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
            NsReadWriteSet {
                namespace: namespace.to_owned(),
                rwset: kv.encode_to_vec().into(),
                collection_hashed_rwset: Vec::new(),
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
        record,
    })
}

/// Fabric's `ChaincodeInterest`: the chaincodes a transaction touched and the key-level
/// policies of the keys it writes, so a gateway can pick every endorser it needs.
pub fn interest(record: &TxRecord, state: &dyn StateView) -> ChaincodeInterest {
    let mut chaincodes = Vec::new();
    for namespace in record.namespaces() {
        if namespace == LIFECYCLE_NAMESPACE {
            continue;
        }
        let written: Vec<&String> = record
            .writes
            .get(namespace)
            .into_iter()
            .flat_map(|w| w.keys())
            .chain(record.metadata_writes.get(namespace).into_iter().flat_map(|m| m.keys()))
            .collect();
        let mut key_policies = Vec::new();
        let mut needs_namespace_policy = written.is_empty();
        for key in written {
            let policy = state
                .get(namespace, key)
                .ok()
                .flatten()
                .and_then(|v| v.metadata.get(VALIDATION_PARAMETER).filter(|p| !p.is_empty()).cloned());
            match policy.and_then(|p| SignaturePolicyEnvelope::decode(p.as_ref()).ok()) {
                Some(policy) => key_policies.push(policy),
                None => needs_namespace_policy = true,
            }
        }
        chaincodes.push(ChaincodeCall {
            name: namespace.to_owned(),
            collection_names: Vec::new(),
            no_private_reads: true,
            no_public_writes: false,
            disregard_namespace_policy: !key_policies.is_empty() && !needs_namespace_policy,
            key_policies,
        });
    }
    ChaincodeInterest { chaincodes }
}
