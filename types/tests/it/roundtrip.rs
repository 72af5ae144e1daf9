//! Our own builders end to end: a client proposal, two endorsements, the assembled
//! envelope, an orderer-signed block — and the verifier accepting it, or catching what
//! a dishonest node could do.

use bytes::Bytes;
use medfabric_msp::{SigningIdentity, node_ou_msp_config, parse_policy};
use medfabric_proto::Message;
use medfabric_proto::common::{Block, Envelope};
use medfabric_proto::etcdraft;
use medfabric_proto::kvrwset::{KvWrite, KvrwSet};
use medfabric_proto::medfabric::config::ChaincodeDefinition;
use medfabric_proto::orderer::BatchSize;
use medfabric_proto::protos::{
    ApplicationPolicy, ChaincodeId, Response, TxValidationCode, application_policy,
};
use medfabric_proto::rwset::{NsReadWriteSet, TxReadWriteSet};
use medfabric_types::endorsement::{SimulationResult, assemble_transaction, endorse, sign_envelope};
use medfabric_types::verify::LedgerVerifier;
use medfabric_types::{
    ChannelResources, ChannelSpec, OrgSpec, ProposalBuilder, SignedProposal, Transaction, block,
};

use medfabric_testkit::TestOrg as Org;

struct Network {
    genesis: Block,
    client: SigningIdentity,
    peer1: SigningIdentity,
    peer2: SigningIdentity,
    orderer: SigningIdentity,
}

fn network() -> Network {
    let (org1, org2, ord) = (Org::new("Org1MSP"), Org::new("Org2MSP"), Org::new("OrdererMSP"));
    let policy = ApplicationPolicy {
        r#type: Some(application_policy::Type::SignaturePolicy(
            parse_policy("AND('Org1MSP.peer', 'Org2MSP.peer')").expect("policy"),
        )),
    };
    let spec = ChannelSpec {
        channel_id: "records".into(),
        orderer_orgs: vec![OrgSpec::orderer(
            "Orderer",
            node_ou_msp_config("OrdererMSP", ord.ca.certificate_pem().as_bytes()),
        )],
        application_orgs: vec![
            OrgSpec::application("Org1", node_ou_msp_config("Org1MSP", org1.ca.certificate_pem().as_bytes())),
            OrgSpec::application("Org2", node_ou_msp_config("Org2MSP", org2.ca.certificate_pem().as_bytes())),
        ],
        orderer_addresses: vec!["127.0.0.1:7050".into()],
        consenters: vec![etcdraft::Consenter { host: "127.0.0.1".into(), port: 7052, ..Default::default() }],
        raft_options: etcdraft::Options::default(),
        batch_size: BatchSize {
            max_message_count: 10,
            absolute_max_bytes: 1 << 20,
            preferred_max_bytes: 1 << 19,
        },
        batch_timeout_ms: 200,
        chaincodes: vec![ChaincodeDefinition {
            name: "kv".into(),
            version: "1.0".into(),
            sequence: 1,
            endorsement_policy: Some(policy),
            ..Default::default()
        }],
        roles: Default::default(),
        record_keys: Default::default(),
    };
    let genesis =
        spec.genesis_block(medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 }).expect("genesis");
    Network {
        genesis,
        client: org1.issue("alice", "client"),
        peer1: org1.issue("peer0", "peer"),
        peer2: org2.issue("peer0", "peer"),
        orderer: ord.issue("orderer0", "orderer"),
    }
}

fn write_rwset(key: &str, value: &[u8]) -> Bytes {
    let kv = KvrwSet {
        writes: vec![KvWrite { key: key.into(), is_delete: false, value: Bytes::copy_from_slice(value) }],
        ..Default::default()
    };
    TxReadWriteSet {
        data_model: 0,
        ns_rwset: vec![NsReadWriteSet {
            namespace: "kv".into(),
            rwset: kv.encode_to_vec().into(),
            collection_hashed_rwset: Vec::new(),
        }],
    }
    .encode_to_vec()
    .into()
}

/// Client proposes, the given peers endorse, the client signs: a submit-ready envelope.
fn transaction(net: &Network, endorsers: &[&SigningIdentity]) -> Envelope {
    let signed = ProposalBuilder::new("records", "kv")
        .arg("put")
        .arg("k1")
        .arg("v1")
        .transient("secret", "never on the ledger")
        .sign(&net.client, medfabric_proto::Timestamp { seconds: 1_800_000_100, nanos: 0 });
    let proposal = SignedProposal::parse(&signed).expect("well-formed");
    let result = SimulationResult {
        response: Response { status: 200, message: String::new(), payload: Bytes::from_static(b"ok") },
        results: write_rwset("k1", b"v1"),
        events: Bytes::new(),
        chaincode_id: ChaincodeId { name: "kv".into(), version: "1.0".into(), ..Default::default() },
    };
    let responses: Vec<_> = endorsers.iter().map(|e| endorse(&proposal, result.clone(), e)).collect();
    let mut envelope = assemble_transaction(&proposal, &responses).expect("identical responses");
    sign_envelope(&mut envelope, &net.client);
    envelope
}

fn block_of(net: &Network, number: u64, previous: &Block, envelopes: Vec<Envelope>, codes: &[u8]) -> Block {
    let previous_hash = block::header_hash(block::header(previous));
    let mut b = block::new_block(
        number,
        &previous_hash,
        envelopes.iter().map(|e| e.encode_to_vec().into()).collect(),
    );
    block::set_transactions_filter(&mut b, codes);
    block::sign_block(&mut b, &net.orderer, 0, Bytes::new());
    b
}

fn verify(net: &Network, blocks: &[&Block]) -> (medfabric_types::verify::LedgerSummary, Vec<Option<bool>>) {
    let mut verifier = LedgerVerifier::new(&net.genesis).expect("verifier");
    let mut policy = Vec::new();
    for b in blocks {
        let report = verifier.verify(&b.encode_to_vec()).expect("decodes");
        policy.extend(report.txs.iter().map(|t| t.endorsement_policy_ok));
    }
    (verifier.finish(), policy)
}

#[test]
fn proposal_endorsement_envelope_and_block_verify() {
    let net = network();
    let envelope = transaction(&net, &[&net.peer1, &net.peer2]);
    let tx = Transaction::parse(&envelope.encode_to_vec()).expect("parses");
    assert!(tx.tx_id_matches());
    assert_eq!(tx.proposal_hash_matches(), Some(true));
    let endorser_tx = tx.endorser().expect("endorser tx");
    assert_eq!(endorser_tx.endorsements.len(), 2);
    assert!(
        !envelope.encode_to_vec().windows(19).any(|w| w == b"never on the ledger"),
        "transient data stays off the ledger"
    );
    let resources = ChannelResources::from_config_block(&net.genesis).expect("resources");
    resources
        .msps
        .deserialize(tx.creator())
        .expect("creator")
        .verify(&tx.payload, &tx.signature)
        .expect("client signature");

    let b1 = block_of(&net, 1, &net.genesis, vec![envelope], &[TxValidationCode::Valid as u8]);
    let (summary, policy) = verify(&net, &[&net.genesis, &b1]);
    assert!(summary.ok, "{:?}", summary.first_problem);
    assert_eq!(policy, vec![None, Some(true)]);
    assert_eq!(summary.validation_codes.get("VALID"), Some(&1));
}

#[test]
fn a_single_endorsement_marked_valid_is_caught_under_and() {
    let net = network();
    let envelope = transaction(&net, &[&net.peer1]);
    let b1 = block_of(&net, 1, &net.genesis, vec![envelope.clone()], &[TxValidationCode::Valid as u8]);
    let (summary, policy) = verify(&net, &[&net.genesis, &b1]);
    assert!(!summary.ok);
    assert_eq!(policy, vec![None, Some(false)]);
    assert_eq!(summary.first_problem.as_ref().and_then(|p| p.block), Some(1));
    // Marked as the failure it is, the ledger is consistent.
    let b1 =
        block_of(&net, 1, &net.genesis, vec![envelope], &[TxValidationCode::EndorsementPolicyFailure as u8]);
    let (summary, _) = verify(&net, &[&net.genesis, &b1]);
    assert!(summary.ok, "{:?}", summary.first_problem);
}

#[test]
fn a_block_signed_by_a_non_orderer_is_caught() {
    let net = network();
    let envelope = transaction(&net, &[&net.peer1, &net.peer2]);
    let previous_hash = block::header_hash(block::header(&net.genesis));
    let mut b1 = block::new_block(1, &previous_hash, vec![envelope.encode_to_vec().into()]);
    block::sign_block(&mut b1, &net.peer1, 0, Bytes::new());
    let (summary, _) = verify(&net, &[&net.genesis, &b1]);
    assert!(!summary.signatures_ok, "a peer's signature does not satisfy BlockValidation");
    assert_eq!(summary.first_problem.as_ref().and_then(|p| p.block), Some(1));
}

#[test]
fn endorsements_that_disagree_are_not_assembled() {
    let net = network();
    let signed = ProposalBuilder::new("records", "kv")
        .arg("put")
        .sign(&net.client, medfabric_proto::Timestamp::default());
    let proposal = SignedProposal::parse(&signed).expect("parse");
    let result = |value: &[u8]| SimulationResult {
        response: Response { status: 200, ..Default::default() },
        results: write_rwset("k", value),
        events: Bytes::new(),
        chaincode_id: ChaincodeId { name: "kv".into(), ..Default::default() },
    };
    let a = endorse(&proposal, result(b"a"), &net.peer1);
    let b = endorse(&proposal, result(b"b"), &net.peer2);
    assert!(assemble_transaction(&proposal, &[a, b]).is_err());
}

#[test]
fn malformed_proposals_are_rejected_on_receipt() {
    let net = network();
    let signed = ProposalBuilder::new("records", "kv")
        .arg("get")
        .sign(&net.client, medfabric_proto::Timestamp::default());
    SignedProposal::parse(&signed).expect("the good one parses");

    let mut truncated = signed.clone();
    truncated.proposal_bytes = truncated.proposal_bytes.slice(..truncated.proposal_bytes.len() - 7);
    assert!(SignedProposal::parse(&truncated).is_err());

    let mut unsigned = signed.clone();
    unsigned.signature = Bytes::new();
    let err = SignedProposal::parse(&unsigned).expect_err("no signature").to_string();
    assert!(err.contains("signature"), "{err}");

    // Re-sign a proposal whose tx id does not follow the rule.
    use medfabric_proto::common::{ChannelHeader, Header};
    use medfabric_proto::protos::Proposal;
    let mut proposal = Proposal::decode(signed.proposal_bytes.as_ref()).expect("proposal");
    let mut header = Header::decode(proposal.header.as_ref()).expect("header");
    let mut channel_header = ChannelHeader::decode(header.channel_header.as_ref()).expect("channel header");
    channel_header.tx_id = "00".repeat(32);
    header.channel_header = channel_header.encode_to_vec().into();
    proposal.header = header.encode_to_vec().into();
    let bytes = proposal.encode_to_vec();
    let forged = medfabric_proto::protos::SignedProposal {
        signature: net.client.sign(&bytes).into(),
        proposal_bytes: bytes.into(),
    };
    let err = SignedProposal::parse(&forged).expect_err("bad tx id").to_string();
    assert!(err.contains("txid"), "{err}");
}

#[test]
fn malformed_envelopes_get_fabrics_validation_codes() {
    let net = network();
    let envelope = transaction(&net, &[&net.peer1, &net.peer2]).encode_to_vec();
    let code = |bytes: &[u8]| Transaction::parse(bytes).expect_err("malformed").code;
    assert_eq!(code(&envelope[..envelope.len() / 2]), TxValidationCode::InvalidOtherReason);
    assert_eq!(code(&Envelope::default().encode_to_vec()), TxValidationCode::NilEnvelope);
    let bad_payload = Envelope { payload: Bytes::from_static(b"\x0a\xff\xff"), signature: Bytes::new() };
    assert_eq!(code(&bad_payload.encode_to_vec()), TxValidationCode::BadPayload);
    let no_header = Envelope { payload: Bytes::new(), signature: Bytes::from_static(b"sig") };
    assert_eq!(code(&no_header.encode_to_vec()), TxValidationCode::BadCommonHeader);
}

/// Fabric accepts an identity once one of its signatures verifies: a bad signature
/// before a good one from the same endorser does not shut that endorser out.
#[test]
fn a_bad_signature_before_a_good_one_from_the_same_endorser_still_counts() {
    use medfabric_proto::common::Payload;
    use medfabric_proto::protos::{ChaincodeActionPayload, Transaction as TxMessage};
    let net = network();
    let mut envelope = transaction(&net, &[&net.peer1, &net.peer2]);
    let mut payload = Payload::decode(envelope.payload.as_ref()).expect("payload");
    let mut tx = TxMessage::decode(payload.data.as_ref()).expect("tx");
    let mut action = ChaincodeActionPayload::decode(tx.actions[0].payload.as_ref()).expect("action");
    let endorsed = action.action.as_mut().expect("endorsed");
    let mut forged = endorsed.endorsements[0].clone();
    let mut sig = forged.signature.to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    forged.signature = sig.into();
    endorsed.endorsements.insert(0, forged);
    tx.actions[0].payload = action.encode_to_vec().into();
    payload.data = tx.encode_to_vec().into();
    envelope.payload = payload.encode_to_vec().into();
    sign_envelope(&mut envelope, &net.client);

    let b1 = block_of(&net, 1, &net.genesis, vec![envelope], &[TxValidationCode::Valid as u8]);
    let (summary, policy) = verify(&net, &[&net.genesis, &b1]);
    assert!(summary.ok, "{:?}", summary.first_problem);
    assert_eq!(policy, vec![None, Some(true)]);
}
