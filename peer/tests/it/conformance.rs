//! Fabric 2.5 conformance: the vectors' 64 blocks through our validator, committer and
//! simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_peer::Channel;
use medfabric_peer::ledger::Store;
use medfabric_peer::replay::replay;
use medfabric_peer::simulator::{Installed, simulate};
use medfabric_proto::kvrwset::KvrwSet;
use medfabric_proto::protos::TxValidationCode;
use medfabric_shim::{Chaincode, TxContext};
use medfabric_types::block;
use medfabric_types::{Transaction, TransactionBody};
use prost::Message;

use crate::support::{fabric_block, fabric_testdata};

#[test]
fn replaying_fabrics_chain_reproduces_every_validation_code_and_the_state() {
    let dir = fabric_testdata().join("blocks");
    let ledger = tempfile::tempdir().expect("tempdir");
    let (report, channel) = replay(&dir, &fabric_block(0), ledger.path()).expect("replay runs");
    assert_eq!(report.error, None);
    assert!(report.mismatches.is_empty(), "mismatches: {:#?}", report.mismatches);
    assert_eq!(report.height, 64);
    assert!(report.ok);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for b in &report.blocks {
        assert_eq!(b.codes, b.recorded, "block {}", b.number);
        for code in &b.codes {
            *counts.entry(code.clone()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = [
        ("VALID", 65), // plus the genesis config transaction
        ("ENDORSEMENT_POLICY_FAILURE", 8),
        ("MVCC_READ_CONFLICT", 6),
        ("PHANTOM_READ_CONFLICT", 4),
        ("DUPLICATE_TXID", 2),
        ("BAD_PROPOSAL_TXID", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(counts, expected);

    // The world state is exactly the writes of the transactions Fabric marked valid.
    let mut fabric_state: BTreeMap<(String, String), Bytes> = BTreeMap::new();
    for number in 1..64 {
        let b = fabric_block(number);
        let filter = block::transactions_filter(&b).to_vec();
        for (index, envelope) in block::envelopes(&b).iter().enumerate() {
            let tx = Transaction::parse(envelope).expect("parses");
            let (Some(etx), Some(0)) = (tx.endorser(), filter.get(index).copied()) else { continue };
            for ns in etx.rwset().expect("rwset").ns_rwset {
                let kv = KvrwSet::decode(ns.rwset.as_ref()).expect("kv");
                for w in kv.writes {
                    let id = (ns.namespace.clone(), w.key.clone());
                    if w.is_delete {
                        fabric_state.remove(&id);
                    } else {
                        fabric_state.insert(id, w.value);
                    }
                }
            }
        }
    }
    let ours: BTreeMap<(String, String), Bytes> = channel
        .ledger()
        .state_entries()
        .expect("state")
        .into_iter()
        .filter(|(ns, _, _)| !ns.contains("$$h"))
        .map(|(ns, key, v)| ((ns, key), v.value))
        .collect();
    assert_eq!(ours.len(), fabric_state.len());
    assert!(ours == fabric_state, "state differs from Fabric's valid writes");
    assert!(ours.contains_key(&("vecor".to_owned(), "ctr".to_owned())));

    // History keeps valid writes only, newest first.
    let history = channel.ledger().snapshot().key_history("vecor", "ctr").expect("history");
    let values: Vec<_> = history.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect();
    assert_eq!(values, ["3", "2", "1"]);
}

/// Our kv chaincode, endorsing each application transaction Fabric found valid on the
/// state it was validated against, produces byte-identical read-write sets, events and
/// responses: our simulator records what Fabric's does.
#[test]
fn our_kv_chaincode_reproduces_fabrics_read_write_sets() {
    let ledger = tempfile::tempdir().expect("tempdir");
    let store = Store::open(ledger.path()).expect("store");
    let channel = Channel::open(&store, &fabric_block(0)).expect("channel");
    let kv: Arc<dyn Chaincode> = Arc::new(medfabric_kv::chaincode());
    let chaincodes = BTreeMap::from([("vecor".to_owned(), kv.clone()), ("vecand".to_owned(), kv)]);
    let mut compared = 0;
    for number in 1..64 {
        let b = fabric_block(number);
        let filter = block::transactions_filter(&b).to_vec();
        let context = channel.context();
        let installed = Installed { chaincodes: &chaincodes, registry: &context.registry };
        let snapshot = channel.ledger().snapshot();
        for (index, envelope) in block::envelopes(&b).iter().enumerate() {
            let tx = Transaction::parse(envelope).expect("parses");
            let TransactionBody::Endorser(etx) = &tx.body else { continue };
            let name = etx.header_chaincode_id.name.as_str();
            if filter[index] != TxValidationCode::Valid as u8 || name == "_lifecycle" {
                continue;
            }
            let spec = etx.invocation().expect("invocation");
            let args = spec.chaincode_spec.and_then(|s| s.input).expect("input").args;
            let tx_context = TxContext {
                channel_id: tx.channel_id().to_owned(),
                tx_id: tx.tx_id().to_owned(),
                args: args.clone(),
                creator: tx.creator().clone(),
                timestamp: tx.channel_header.timestamp,
                ..Default::default()
            };
            let ours = simulate(name, &tx_context, &snapshot, &installed).expect("simulates");
            let call = format!(
                "block {number} tx {index}: {name} {:?}",
                args.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>()
            );
            assert_eq!(ours.response, etx.action.response.clone().expect("response"), "{call}: response");
            assert_eq!(ours.results, etx.action.results, "{call}: read-write set");
            assert_eq!(ours.events, etx.action.events, "{call}: event");
            assert_eq!(Some(&ours.chaincode_id), etx.action.chaincode_id.as_ref(), "{call}: chaincode id");
            compared += 1;
        }
        drop(snapshot);
        channel.commit(&b).expect("commits");
    }
    // 66 valid = 2 config + 9 lifecycle + 55 application transactions.
    assert_eq!(compared, 55, "every valid application transaction compared");
}
