//! What Fabric 2.5 produced must decode, hash and verify the same way in our code.

use medfabric_msp::{SignedData, parse_policy};
use medfabric_proto::Message;
use medfabric_proto::common::Block;
use medfabric_proto::lifecycle::{ChaincodeValidationInfo, StateData, state_data};
use medfabric_proto::protos::{ApplicationPolicy, application_policy};
use medfabric_types::block::{self, header_hash};
use medfabric_types::verify::{LedgerVerifier, inspect_block};
use medfabric_types::{ChannelResources, SignedProposal, Transaction, compute_tx_id};
use sha2::{Digest, Sha256};

use crate::support::{expected, fabric_blocks, fabric_testdata};

fn decoded() -> Vec<Block> {
    fabric_blocks().iter().map(|b| block::decode_block(b).expect("Fabric block decodes")).collect()
}

#[test]
fn every_block_decodes_and_reencodes_to_the_same_bytes() {
    let raw = fabric_blocks();
    assert_eq!(raw.len(), 64);
    for (n, bytes) in raw.iter().enumerate() {
        let block = block::decode_block(bytes).expect("decodes");
        assert_eq!(block::header(&block).number, n as u64);
        assert_eq!(&block.encode_to_vec(), bytes, "block {n} re-encodes differently");
    }
}

#[test]
fn header_and_data_hashes_match_fabric() {
    let blocks = decoded();
    let expected = expected();
    for (n, block) in blocks.iter().enumerate() {
        let header = block::header(block);
        let want = &expected["blocks"][n];
        assert_eq!(
            hex::encode(block::header_der(header)),
            want["header_der_hex"].as_str().expect("der"),
            "block {n}"
        );
        assert_eq!(
            hex::encode(header_hash(header)),
            want["header_hash"].as_str().expect("hash"),
            "block {n}"
        );
        assert_eq!(
            hex::encode(block::data_hash(block::envelopes(block))),
            want["data_hash"].as_str().expect("data"),
            "block {n}"
        );
        if let Some(next) = blocks.get(n + 1) {
            assert_eq!(
                header_hash(header).as_slice(),
                block::header(next).previous_hash.as_ref(),
                "block {} previous_hash",
                n + 1
            );
        }
    }
}

#[test]
fn every_signature_verifies_as_fabric_recorded() {
    let blocks = decoded();
    let expected = expected();
    let resources = ChannelResources::from_config_block(&blocks[0]).expect("config block loads");
    let (mut creators, mut endorsements, mut orderer) = (0, 0, 0);
    for (n, block) in blocks.iter().enumerate() {
        let (_, report) = inspect_block(&block.encode_to_vec(), Some(&resources)).expect("inspects");
        let want = &expected["blocks"][n];
        let signers = want["metadata"]["signatures"]["signers"].as_array().expect("signers");
        assert_eq!(report.signatures.len(), signers.len(), "block {n}");
        for (ours, theirs) in report.signatures.iter().zip(signers) {
            assert_eq!(ours.signature_ok, theirs["signature_valid"].as_bool(), "block {n} orderer signature");
            assert_eq!(ours.msp_id.as_deref(), theirs["msp_id"].as_str());
            orderer += 1;
        }
        assert_eq!(report.signatures_ok, Some(n > 0), "block {n}: BlockValidation");
        for (tx, want_tx) in report.txs.iter().zip(want["txs"].as_array().expect("txs")) {
            assert_eq!(tx.tx_id, want_tx["tx_id"].as_str().unwrap_or(""), "block {n}");
            assert_eq!(tx.validation_code.as_deref(), want_tx["validation_code"]["name"].as_str());
            if let Some(valid) = want_tx["envelope_signature_valid"].as_bool() {
                assert_eq!(tx.creator_signature_ok, Some(valid), "block {n} tx {} creator", tx.index);
                creators += 1;
            }
            if let Some(list) = want_tx["endorsements"].as_array() {
                assert_eq!(tx.endorsements.len(), list.len());
                for (ours, theirs) in tx.endorsements.iter().zip(list) {
                    assert_eq!(
                        ours.signature_ok,
                        theirs["signature_valid"].as_bool(),
                        "block {n} tx {} endorsement",
                        tx.index
                    );
                    assert_eq!(ours.msp_id.as_deref(), theirs["msp_id"].as_str());
                    endorsements += 1;
                }
            }
            if let Some(matches) = want_tx["tx_id_matches_nonce_creator"].as_bool() {
                assert_eq!(tx.tx_id_ok, Some(matches), "block {n} tx {}", tx.index);
            }
        }
    }
    assert!(creators >= 86 && endorsements >= 90 && orderer == 63, "{creators} {endorsements} {orderer}");
}

/// The policy language must produce the exact bytes Fabric committed in `_lifecycle`.
#[test]
fn policy_language_matches_the_bytes_fabric_committed() {
    let blocks = decoded();
    for (block_number, name, text) in [
        (3usize, "vecand", "AND('Org1MSP.peer', 'Org2MSP.peer')"),
        (6, "vecor", "OR('Org1MSP.peer', 'Org2MSP.peer')"),
    ] {
        let tx = Transaction::parse(&block::envelopes(&blocks[block_number])[0]).expect("tx");
        let rwset = tx.endorser().expect("endorser tx").rwset().expect("rwset");
        let ns = rwset.ns_rwset.iter().find(|ns| ns.namespace == "_lifecycle").expect("_lifecycle");
        let kv = medfabric_proto::kvrwset::KvrwSet::decode(ns.rwset.as_ref()).expect("kv");
        let key = format!("namespaces/fields/{name}/ValidationInfo");
        let write = kv.writes.iter().find(|w| w.key == key).expect("ValidationInfo write");
        let Some(state_data::Type::Bytes(info)) =
            StateData::decode(write.value.as_ref()).expect("state").r#type
        else {
            panic!("ValidationInfo is not bytes");
        };
        let info = ChaincodeValidationInfo::decode(info.as_ref()).expect("validation info");
        assert_eq!(info.validation_plugin, "vscc");
        let policy = ApplicationPolicy::decode(info.validation_parameter.as_ref()).expect("policy");
        let Some(application_policy::Type::SignaturePolicy(theirs)) = policy.r#type else {
            panic!("not a signature policy");
        };
        let ours = parse_policy(text).expect("parses");
        assert_eq!(ours.encode_to_vec(), theirs.encode_to_vec(), "{text}");
    }
}

/// Walking the whole chain: every transaction Fabric marked VALID satisfies its
/// policies, and every ENDORSEMENT_POLICY_FAILURE fails them — AND, OR, key-level
/// (SBE) and cross-chaincode cases included.
#[test]
fn endorsement_policies_evaluate_as_fabric_did() {
    let blocks = decoded();
    let mut verifier = LedgerVerifier::new(&blocks[0]).expect("verifier");
    let mut verdicts = Vec::new();
    for block in &blocks {
        let report = verifier.verify(&block.encode_to_vec()).expect("block report");
        for tx in report.txs {
            if let Some(ok) = tx.endorsement_policy_ok {
                verdicts.push((report.number, tx.index, tx.validation_code.clone().expect("code"), ok));
            }
        }
    }
    let summary = verifier.finish();
    assert!(summary.ok, "{:?}", summary.first_problem);
    let failures: Vec<(u64, usize)> = verdicts.iter().filter(|v| !v.3).map(|v| (v.0, v.1)).collect();
    assert_eq!(failures, vec![(26, 0), (40, 0), (41, 0), (46, 0), (54, 0), (57, 0), (59, 0), (62, 3)]);
    for (block, index, code, ok) in &verdicts {
        assert_eq!(*ok, code != "ENDORSEMENT_POLICY_FAILURE", "block {block} tx {index} ({code})");
    }
    assert_eq!(summary.validation_codes.get("VALID"), Some(&66));
    assert_eq!(summary.validation_codes.get("ENDORSEMENT_POLICY_FAILURE"), Some(&8));
    assert_eq!(summary.txs, 87);
}

#[test]
fn evaluate_and_submit_artifacts_of_the_gateway_client_verify() {
    let dir = fabric_testdata();
    let blocks = decoded();
    let resources = ChannelResources::from_config_block(&blocks[0]).expect("config");
    let prepared = medfabric_proto::gateway::ProposedTransaction::decode(
        std::fs::read(dir.join("client/evaluate.signed-proposal.bin")).expect("file").as_slice(),
    )
    .expect("ProposedTransaction");
    let signed = prepared.proposal.expect("signed proposal");
    let proposal = SignedProposal::parse(&signed).expect("well-formed proposal");
    assert_eq!(proposal.tx_id(), prepared.transaction_id);
    assert_eq!(proposal.tx_id(), compute_tx_id(&proposal.signature_header.nonce, proposal.creator()));
    assert_eq!(proposal.input.args[0].as_ref(), b"get");
    let creator = resources.msps.deserialize(proposal.creator()).expect("creator valid");
    assert_eq!(creator.msp_id(), "Org1MSP");
    creator.verify(&proposal.proposal_bytes, &proposal.signature).expect("proposal signature");
    assert_eq!(
        hex::encode(Sha256::digest(&proposal.proposal_bytes)),
        "569aaa7e1f7f3daa3b39c5154925eb1e777cfc1a3b7eabe1bf6c021da8c6870b"
    );

    let transaction = medfabric_proto::gateway::PreparedTransaction::decode(
        std::fs::read(dir.join("client/submit.signed-transaction.bin")).expect("file").as_slice(),
    )
    .expect("PreparedTransaction");
    let envelope = transaction.envelope.expect("envelope").encode_to_vec();
    assert_eq!(
        envelope,
        block::envelopes(&blocks[63])[0].as_ref(),
        "submitted envelope is the one in block 63"
    );
    let tx = Transaction::parse(&envelope).expect("tx");
    assert_eq!(tx.proposal_hash_matches(), Some(true));
    let submitter = resources.msps.deserialize(tx.creator()).expect("creator");
    submitter.verify(&tx.payload, &tx.signature).expect("envelope signature");

    // A policy evaluation over the recorded endorsements of block 8 (AND, both orgs).
    let tx = Transaction::parse(&block::envelopes(&blocks[8])[0]).expect("tx");
    let endorser_tx = tx.endorser().expect("endorser tx");
    let data: Vec<Vec<u8>> = endorser_tx
        .endorsements
        .iter()
        .map(|e| [endorser_tx.proposal_response_payload.as_ref(), e.endorser.as_ref()].concat())
        .collect();
    let signed: Vec<SignedData<'_>> = endorser_tx
        .endorsements
        .iter()
        .zip(&data)
        .map(|(e, d)| SignedData { data: d, identity: &e.endorser, signature: &e.signature })
        .collect();
    let and = medfabric_msp::SignaturePolicy::from_envelope(
        &parse_policy("AND('Org1MSP.peer','Org2MSP.peer')").expect("p"),
    )
    .expect("c");
    assert!(and.evaluate_signed(&signed, &resources.msps));
    assert!(!and.evaluate_signed(&signed[..1], &resources.msps), "one org cannot satisfy AND");
    let three = medfabric_msp::SignaturePolicy::from_envelope(
        &parse_policy("OutOf(3, 'Org1MSP.peer','Org2MSP.peer','Org1MSP.member')").expect("p"),
    )
    .expect("c");
    assert!(!three.evaluate_signed(&signed, &resources.msps), "two identities cannot fill three leaves");
}

/// Every nested message of the Fabric chain re-encodes to the bytes Fabric wrote. prost
/// drops fields it does not know, so a wrong field number or type would show up here.
#[test]
fn every_nested_message_reencodes_byte_for_byte() {
    use medfabric_proto::common::{
        ChannelHeader, ConfigEnvelope, Envelope, Header, Metadata, OrdererBlockMetadata, Payload,
        SignatureHeader,
    };
    use medfabric_proto::etcdraft::BlockMetadata as RaftMetadata;
    use medfabric_proto::kvrwset::{HashedRwSet, KvrwSet};
    use medfabric_proto::protos::{
        ChaincodeAction, ChaincodeActionPayload, ChaincodeEvent, ChaincodeHeaderExtension,
        ChaincodeInvocationSpec, ChaincodeProposalPayload, ProposalResponsePayload, Transaction as TxMessage,
    };
    use medfabric_proto::rwset::TxReadWriteSet;

    fn same<M: Message + Default>(what: &str, bytes: &[u8]) -> M {
        let message = M::decode(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(message.encode_to_vec(), bytes, "{what} re-encodes differently");
        message
    }
    let mut checked = 0usize;
    for block in decoded() {
        let n = block::header(&block).number;
        let signatures: Metadata = same("SIGNATURES", block::metadata_slot(&block, block::SIGNATURES));
        let orderer: OrdererBlockMetadata = same("OrdererBlockMetadata", &signatures.value);
        if !orderer.consenter_metadata.is_empty() {
            let consenter: Metadata = same("consenter Metadata", &orderer.consenter_metadata);
            let _: RaftMetadata = same("etcdraft.BlockMetadata", &consenter.value);
        }
        for signature in &signatures.signatures {
            let _: SignatureHeader = same("block SignatureHeader", &signature.signature_header);
        }
        for envelope in block::envelopes(&block) {
            let envelope: Envelope = same("Envelope", envelope);
            let payload: Payload = same("Payload", &envelope.payload);
            let header: &Header = payload.header.as_ref().expect("header");
            let channel_header: ChannelHeader = same("ChannelHeader", &header.channel_header);
            let _: SignatureHeader = same("SignatureHeader", &header.signature_header);
            if channel_header.r#type == 1 {
                // Config trees hold maps, which Go marshals in no fixed order: compare decoded values.
                let config = ConfigEnvelope::decode(payload.data.as_ref()).expect("ConfigEnvelope");
                assert_eq!(
                    ConfigEnvelope::decode(config.encode_to_vec().as_slice()).expect("again"),
                    config,
                    "block {n}"
                );
                checked += 1;
                continue;
            }
            let _: ChaincodeHeaderExtension = same("ChaincodeHeaderExtension", &channel_header.extension);
            let tx: TxMessage = same("Transaction", &payload.data);
            for action in &tx.actions {
                let _: SignatureHeader = same("action SignatureHeader", &action.header);
                let cap: ChaincodeActionPayload = same("ChaincodeActionPayload", &action.payload);
                let ccpp: ChaincodeProposalPayload =
                    same("ChaincodeProposalPayload", &cap.chaincode_proposal_payload);
                let _: ChaincodeInvocationSpec = same("ChaincodeInvocationSpec", &ccpp.input);
                let endorsed = cap.action.expect("endorsed action");
                let prp: ProposalResponsePayload =
                    same("ProposalResponsePayload", &endorsed.proposal_response_payload);
                let action: ChaincodeAction = same("ChaincodeAction", &prp.extension);
                if !action.events.is_empty() {
                    let _: ChaincodeEvent = same("ChaincodeEvent", &action.events);
                }
                let rwset: TxReadWriteSet = same("TxReadWriteSet", &action.results);
                for ns in &rwset.ns_rwset {
                    let _: KvrwSet = same("KVRWSet", &ns.rwset);
                    for collection in &ns.collection_hashed_rwset {
                        let _: HashedRwSet = same("HashedRWSet", &collection.hashed_rwset);
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 87);
}

/// Block 61 holds Fabric's config update (BatchSize, signed by the orderer org's admin):
/// our configtx authorises it against the genesis config and produces exactly the config
/// Fabric's orderer wrote; a config it does not produce, or an update without the
/// signature, is refused.
#[test]
fn fabrics_config_update_is_authorised_and_reproduced() {
    use medfabric_types::TransactionBody;
    use medfabric_types::configtx::{from_document, to_document, validate};
    let blocks = decoded();
    let genesis = ChannelResources::from_config_block(&blocks[0]).expect("genesis config");
    let tx = Transaction::parse(&block::envelopes(&blocks[61])[0]).expect("config tx");
    let TransactionBody::Config(envelope) = tx.body else { panic!("block 61 holds a config") };
    let next = validate(&genesis, &envelope).expect("Fabric's update is authorised");
    assert_eq!(next.config.sequence, 1);
    assert_eq!(next.config.batch.max_message_count, 50);

    let mut tampered = (*envelope).clone();
    let group = tampered.config.as_mut().and_then(|c| c.channel_group.as_mut()).expect("group");
    group
        .groups
        .get_mut("Orderer")
        .expect("orderer")
        .values
        .get_mut("BatchTimeout")
        .expect("timeout")
        .version = 1;
    assert_eq!(
        validate(&genesis, &tampered).expect_err("not what the update produces").0,
        "ConfigEnvelope LastUpdate did not produce the supplied config result"
    );
    let mut unsigned = (*envelope).clone();
    let last_update = unsigned.last_update.as_mut().expect("last update");
    let mut payload =
        medfabric_proto::common::Payload::decode(last_update.payload.as_ref()).expect("payload");
    let mut update = medfabric_proto::common::ConfigUpdateEnvelope::decode(payload.data.as_ref())
        .expect("update envelope");
    update.signatures.clear();
    payload.data = update.encode_to_vec().into();
    last_update.payload = payload.encode_to_vec().into();
    let why = validate(&genesis, &unsigned).expect_err("no signature").0;
    assert!(why.contains("policy for [Value]  /Channel/Orderer/BatchSize not satisfied"), "{why}");

    // Fabric's configs read as documents and convert back to the same bytes.
    for config in [genesis.raw.clone(), envelope.config.clone().expect("config")] {
        let back = from_document(&to_document(&config)).expect("converts back");
        assert_eq!(back.encode_to_vec(), config.encode_to_vec());
    }
}
