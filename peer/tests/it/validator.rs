//! The sans-IO validator on an in-memory state: no RocksDB involved.

use std::collections::HashSet;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_peer::simulator::{Installed, context_of, simulate};
use medfabric_peer::testnet::TestNetwork;
use medfabric_peer::validator::{ChannelContext, TxIndex, ValidatedBlock, validate_block};
use medfabric_proto::common::{Block, Envelope, Payload};
use medfabric_proto::kvrwset::{KvWrite, KvrwSet};
use medfabric_proto::protos::{ProposalResponse, TxValidationCode as Code};
use medfabric_proto::queryresult::KeyModification;
use medfabric_proto::rwset::{NsReadWriteSet, TxReadWriteSet};
use medfabric_shim::{MemoryState, ShimResult, StateView, VersionedValue};
use medfabric_types::endorsement::{SimulationResult, endorse};
use medfabric_types::lifecycle::ChaincodeRegistry;
use medfabric_types::{ChannelResources, SignedProposal};
use prost::Message;

/// Committed state held in memory, with the tx ids of committed blocks.
#[derive(Default)]
struct MemState {
    state: MemoryState,
    txs: HashSet<String>,
}

impl StateView for MemState {
    fn get(&self, namespace: &str, key: &str) -> ShimResult<Option<VersionedValue>> {
        self.state.get(namespace, key)
    }

    fn range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        self.state.range(namespace, start, end, limit)
    }

    fn history(&self, namespace: &str, key: &str) -> ShimResult<Vec<KeyModification>> {
        self.state.history(namespace, key)
    }

    /// Hashed private state lives in public state, as on a peer.
    fn private_hash(
        &self,
        namespace: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> ShimResult<Option<VersionedValue>> {
        let hashed = medfabric_types::lifecycle::hashed_namespace(namespace, collection);
        self.state.get(&hashed, &hex::encode(key_hash))
    }

    /// The validator never reads private values.
    fn private_get(&self, _: &str, _: &str, _: &str) -> ShimResult<Option<VersionedValue>> {
        Ok(None)
    }

    fn private_range(
        &self,
        _: &str,
        _: &str,
        _: &str,
        _: &str,
        _: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        Ok(Vec::new())
    }
}

impl TxIndex for MemState {
    fn contains_tx(&self, tx_id: &str) -> ShimResult<bool> {
        Ok(self.txs.contains(tx_id))
    }
}

impl MemState {
    fn commit(&mut self, validated: &ValidatedBlock) {
        for ((namespace, key), value) in &validated.update.state {
            self.state.set(namespace, key, value.clone());
        }
        self.txs.extend(validated.txs.iter().map(|t| t.tx_id.clone()));
    }
}

struct Fixture {
    net: TestNetwork,
    context: ChannelContext,
    state: MemState,
    tip: Block,
    seq: u64,
}

impl Fixture {
    fn new() -> Self {
        let net = TestNetwork::new();
        let resources = ChannelResources::from_config_block(&net.genesis).expect("resources");
        let registry = ChaincodeRegistry::from_config(&resources.config).expect("registry");
        let tip = net.genesis.clone();
        Self {
            net,
            context: ChannelContext::new(std::sync::Arc::new(resources), registry),
            state: MemState::default(),
            tip,
            seq: 0,
        }
    }

    /// Endorses `args` on `chaincode` against the current state by `endorsers`.
    fn endorse(&mut self, chaincode: &str, args: &[&str], endorsers: &[&SigningIdentity]) -> Envelope {
        self.seq += 1;
        let signed = self.net.proposal(&self.net.client1, chaincode, args, self.seq);
        self.endorse_signed(&signed, endorsers)
    }

    fn endorse_signed(
        &self,
        signed: &medfabric_proto::protos::SignedProposal,
        endorsers: &[&SigningIdentity],
    ) -> Envelope {
        let chaincode = SignedProposal::parse(signed).expect("proposal").chaincode_id.name;
        let chaincode = chaincode.as_str();
        let proposal = SignedProposal::parse(signed).expect("proposal");
        let chaincodes = TestNetwork::chaincodes();
        let installed = Installed { chaincodes: &chaincodes, registry: &self.context.registry };
        let simulated =
            simulate(chaincode, &context_of(&proposal, None), &self.state, &installed).expect("simulates");
        assert_eq!(simulated.response.status, 200, "{}", simulated.response.message);
        let result = SimulationResult {
            response: simulated.response,
            results: simulated.results,
            events: simulated.events,
            chaincode_id: simulated.chaincode_id,
        };
        let responses: Vec<ProposalResponse> =
            endorsers.iter().map(|e| endorse(&proposal, result.clone(), e)).collect();
        self.net.envelope(&self.net.client1, signed, &responses)
    }

    /// Validates a block of `envelopes` and commits its update; returns the codes.
    fn block(&mut self, envelopes: &[Envelope]) -> Vec<Code> {
        let block = self.net.block(&self.tip, envelopes);
        let validated = validate_block(&block, &self.context, &self.state).expect("validates");
        self.state.commit(&validated);
        self.tip = block;
        validated.txs.iter().map(|t| t.code).collect()
    }

    fn value(&self, ns: &str, key: &str) -> Option<Bytes> {
        self.state.state.value(ns, key).map(|v| v.value.clone())
    }
}

#[test]
fn valid_writes_commit_and_policy_failures_do_not() {
    let mut f = Fixture::new();
    let (p1, p2) = (f.net.peer1.clone(), f.net.peer2.clone());
    let or = f.endorse("kv", &["put", "a", "1"], &[&p1]);
    let and_one = f.endorse("kvand", &["put", "b", "2"], &[&p1]);
    let and_both = f.endorse("kvand", &["put", "c", "3"], &[&p1, &p2]);
    let codes = f.block(&[or, and_one, and_both]);
    assert_eq!(codes, [Code::Valid, Code::EndorsementPolicyFailure, Code::Valid]);
    assert_eq!(f.value("kv", "a").as_deref(), Some(&b"1"[..]));
    assert_eq!(f.value("kvand", "b"), None, "an invalid transaction changes nothing");
    assert_eq!(f.value("kvand", "c").as_deref(), Some(&b"3"[..]));
}

#[test]
fn stale_reads_conflict_with_committed_state_and_within_a_block() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let first = f.endorse("kv", &["inc", "n"], &[&p1]);
    assert_eq!(f.block(&[first]), [Code::Valid]);
    // Three increments endorsed on the same state.
    let a = f.endorse("kv", &["inc", "n"], &[&p1]);
    let b = f.endorse("kv", &["inc", "n"], &[&p1]);
    let c = f.endorse("kv", &["inc", "n"], &[&p1]);
    assert_eq!(f.block(&[a, b]), [Code::Valid, Code::MvccReadConflict], "within the block");
    assert_eq!(f.block(&[c]), [Code::MvccReadConflict], "against committed state");
    assert_eq!(f.value("kv", "n").as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_key_inserted_into_a_read_range_is_a_phantom() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let seed = f.endorse("kv", &["put", "r:1", "x"], &[&p1]);
    assert_eq!(f.block(&[seed]), [Code::Valid]);
    let ranged = f.endorse("kv", &["rangeput", "r:", "r:~", "out", "y"], &[&p1]);
    let insert = f.endorse("kv", &["put", "r:2", "z"], &[&p1]);
    assert_eq!(f.block(&[insert, ranged]), [Code::Valid, Code::PhantomReadConflict]);
    assert_eq!(f.value("kv", "out"), None);
}

#[test]
fn duplicate_tx_ids_in_the_ledger_and_in_the_block_are_refused() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let tx = f.endorse("kv", &["put", "d", "1"], &[&p1]);
    assert_eq!(f.block(&[tx.clone(), tx.clone()]), [Code::Valid, Code::DuplicateTxid]);
    assert_eq!(f.block(&[tx]), [Code::DuplicateTxid]);
}

#[test]
fn tampered_envelopes_get_fabrics_codes() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();

    let mut bad_signature = f.endorse("kv", &["put", "s", "1"], &[&p1]);
    let mut signature = bad_signature.signature.to_vec();
    let last = signature.len() - 1;
    signature[last] ^= 1;
    bad_signature.signature = signature.into();

    // Swap the invocation for another one and re-sign: the endorsed proposal hash no
    // longer matches.
    let honest = f.endorse("kv", &["put", "h", "1"], &[&p1]);
    let other = f.endorse("kv", &["put", "h", "2"], &[&p1]);
    let swapped = swap_proposal_payload(&honest, &other, &f.net.client1);

    assert_eq!(
        f.block(&[bad_signature, swapped]),
        [Code::BadCreatorSignature, Code::InvalidEndorserTransaction]
    );
    assert_eq!(f.value("kv", "s"), None);
    assert_eq!(f.value("kv", "h"), None);
}

/// An envelope for `chaincode` (version `version`) whose endorsed rw-set is `rwset`,
/// whatever a chaincode would have produced: what a dishonest client could assemble.
fn handmade(
    f: &mut Fixture,
    chaincode: &str,
    version: &str,
    rwset: TxReadWriteSet,
    endorser: &SigningIdentity,
) -> Envelope {
    f.seq += 1;
    let signed = f.net.proposal(&f.net.client1, chaincode, &["put", "g", "1"], f.seq);
    let proposal = SignedProposal::parse(&signed).expect("proposal");
    let result = SimulationResult {
        response: medfabric_shim::success(Bytes::new()),
        results: rwset.encode_to_vec().into(),
        events: Bytes::new(),
        chaincode_id: medfabric_proto::protos::ChaincodeId {
            name: chaincode.into(),
            version: version.into(),
            path: String::new(),
        },
    };
    f.net.envelope(&f.net.client1, &signed, &[endorse(&proposal, result, endorser)])
}

fn write_set(namespace: &str, key: &str) -> TxReadWriteSet {
    let kv = KvrwSet {
        writes: vec![KvWrite { key: key.into(), is_delete: false, value: Bytes::from_static(b"1") }],
        ..Default::default()
    };
    TxReadWriteSet {
        data_model: 0,
        ns_rwset: vec![NsReadWriteSet {
            namespace: namespace.into(),
            rwset: kv.encode_to_vec().into(),
            collection_hashed_rwset: Vec::new(),
        }],
    }
}

#[test]
fn writes_to_an_undefined_chaincode_are_invalid() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let envelope = handmade(&mut f, "kv", "1.0", write_set("ghost", "g"), &p1);
    assert_eq!(f.block(&[envelope]), [Code::InvalidChaincode]);
    assert_eq!(f.value("ghost", "g"), None);
}

#[test]
fn a_transaction_endorsed_for_another_chaincode_version_is_invalid() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let envelope = handmade(&mut f, "kv", "0.9", write_set("kv", "g"), &p1);
    assert_eq!(f.block(&[envelope]), [Code::InvalidChaincode]);
    assert_eq!(f.value("kv", "g"), None);
}

/// Hashed writes into a `_lifecycle` collection that is no org's implicit collection
/// satisfy no policy: nobody may write there.
#[test]
fn lifecycle_writes_outside_implicit_collections_fail_their_policy() {
    use medfabric_proto::kvrwset::{HashedRwSet, KvWriteHash};
    use medfabric_proto::rwset::CollectionHashedReadWriteSet;
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let hashed = HashedRwSet {
        hashed_writes: vec![KvWriteHash {
            key_hash: Bytes::from_static(&[1; 32]),
            value_hash: Bytes::from_static(&[2; 32]),
            ..Default::default()
        }],
        ..Default::default()
    };
    let rwset = TxReadWriteSet {
        data_model: 0,
        ns_rwset: vec![NsReadWriteSet {
            namespace: "_lifecycle".into(),
            rwset: KvrwSet::default().encode_to_vec().into(),
            collection_hashed_rwset: vec![CollectionHashedReadWriteSet {
                collection_name: "x".into(),
                hashed_rwset: hashed.encode_to_vec().into(),
                pvt_rwset_hash: Bytes::new(),
            }],
        }],
    };
    let envelope = handmade(&mut f, "_lifecycle", "syscc", rwset, &p1);
    assert_eq!(f.block(&[envelope]), [Code::EndorsementPolicyFailure]);
    assert!(f.state.state.is_empty());
}

/// As in Fabric, a key written earlier in the block may not be read, even when the
/// earlier write was a delete of a key that did not exist.
#[test]
fn a_key_changed_earlier_in_the_block_cannot_be_read() {
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let delete = f.endorse("kv", &["del", "z"], &[&p1]);
    let create = f.endorse("kv", &["create", "z", "v"], &[&p1]);
    assert_eq!(f.block(&[delete, create]), [Code::Valid, Code::MvccReadConflict]);
    assert_eq!(f.value("kv", "z"), None);
}

/// Only transactions still valid claim a tx id within a block: a resubmission with
/// enough endorsements after an under-endorsed copy is valid (Fabric's
/// `markTXIdDuplicates` over valid transactions).
#[test]
fn an_invalid_copy_does_not_claim_its_tx_id() {
    let mut f = Fixture::new();
    let (p1, p2) = (f.net.peer1.clone(), f.net.peer2.clone());
    f.seq += 1;
    let signed = f.net.proposal(&f.net.client1, "kvand", &["put", "dup", "1"], f.seq);
    let under = f.endorse_signed(&signed, &[&p1]);
    let enough = f.endorse_signed(&signed, &[&p1, &p2]);
    assert_eq!(
        f.block(&[under, enough.clone(), enough]),
        [Code::EndorsementPolicyFailure, Code::Valid, Code::DuplicateTxid]
    );
    assert_eq!(f.value("kvand", "dup").as_deref(), Some(&b"1"[..]));
}

/// `target` with the chaincode proposal payload of `donor`, re-signed by `client`.
fn swap_proposal_payload(target: &Envelope, donor: &Envelope, client: &SigningIdentity) -> Envelope {
    use medfabric_proto::protos::{ChaincodeActionPayload, Transaction as TxMessage};
    let payload_of = |e: &Envelope| Payload::decode(e.payload.as_ref()).expect("payload");
    let action_of = |p: &Payload| {
        let tx = TxMessage::decode(p.data.as_ref()).expect("tx");
        ChaincodeActionPayload::decode(tx.actions[0].payload.as_ref()).expect("action payload")
    };
    let mut payload = payload_of(target);
    let mut tx = TxMessage::decode(payload.data.as_ref()).expect("tx");
    let mut action = action_of(&payload);
    action.chaincode_proposal_payload = action_of(&payload_of(donor)).chaincode_proposal_payload;
    tx.actions[0].payload = action.encode_to_vec().into();
    payload.data = tx.encode_to_vec().into();
    let mut envelope = Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() };
    medfabric_types::endorsement::sign_envelope(&mut envelope, client);
    envelope
}

/// A config block carries a new config only with the update that authorises it: one an
/// update signed by Org1's admins produces (its anchor peers) is taken; one its orderer
/// made up, or one the update did not produce, stops the block and the peer stays on the
/// config it has.
#[test]
fn a_config_takes_effect_only_as_its_signed_update_produces_it() {
    use medfabric_peer::validator::BlockError;
    use medfabric_proto::common::{ConfigEnvelope, ConfigUpdateEnvelope};
    use medfabric_proto::protos::{AnchorPeer, AnchorPeers};
    use medfabric_types::configtx::{compute_update, config_envelope, propose, sign_update, update_envelope};
    let f = Fixture::new();
    let timestamp = medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 };
    let original = f.context.resources.raw.channel_group.clone().expect("group");
    let mut updated = original.clone();
    let org1 = updated.groups.get_mut("Application").and_then(|a| a.groups.get_mut("Org1")).expect("Org1");
    org1.values.get_mut("AnchorPeers").expect("anchors").value =
        AnchorPeers { anchor_peers: vec![AnchorPeer { host: "peer0.org1".into(), port: 7051 }] }
            .encode_to_vec()
            .into();
    let update = compute_update("testchannel", &original, &updated).expect("update").encode_to_vec();
    let admin = f.net.org1.identity("admin1", "admin");
    let signed =
        ConfigUpdateEnvelope { signatures: vec![sign_update(&update, &admin)], config_update: update.into() };
    let submitted = update_envelope("testchannel", &signed, &admin, timestamp);
    let config = propose(&f.context.resources, &submitted).expect("Org1's admin may change Org1's anchors");
    let refused = |config: &ConfigEnvelope| {
        let tx = config_envelope("testchannel", config, &f.net.orderer, timestamp);
        match validate_block(&f.net.block(&f.tip, &[tx]), &f.context, &f.state) {
            Err(BlockError::Rejected { why, .. }) => why,
            other => panic!("expected a refused block, got {:?}", other.map(|v| v.txs.len())),
        }
    };

    let tx = config_envelope("testchannel", &config, &f.net.orderer, timestamp);
    let validated = validate_block(&f.net.block(&f.tip, &[tx]), &f.context, &f.state).expect("validates");
    let next = validated.new_config.expect("a new config");
    let anchors =
        &next.config.application_orgs.iter().find(|o| o.msp_id == "Org1MSP").expect("org1").anchor_peers;
    assert_eq!(anchors, &["peer0.org1:7051".to_owned()]);

    // The orderer's own config, no update behind it.
    let made_up = ConfigEnvelope { last_update: None, ..config.clone() };
    assert!(refused(&made_up).contains("config envelope has no last update"));
    // The update, but a config with more in it than the update produces.
    let mut padded = config.clone();
    let group = padded.config.as_mut().and_then(|c| c.channel_group.as_mut()).expect("group");
    group.groups.get_mut("Application").expect("app").groups.remove("Org2");
    assert!(
        refused(&padded).contains("ConfigEnvelope LastUpdate did not produce the supplied config result")
    );
}

/// Revocation for validation: once Org1's admin puts a CRL listing client1 in Org1's MSP
/// (a config update), client1's transactions are BAD_CREATOR_SIGNATURE on every peer
/// applying that config, whoever endorsed them; before it, they are valid.
#[test]
fn a_crl_in_the_channel_config_invalidates_the_revoked_creator() {
    use medfabric_proto::common::ConfigUpdateEnvelope;
    use medfabric_types::configtx::{compute_update, config_envelope, propose, sign_update, update_envelope};
    let mut f = Fixture::new();
    let p1 = f.net.peer1.clone();
    let before = f.endorse("kv", &["put", "k1", "v1"], &[&p1]);
    assert_eq!(f.block(&[before]), [Code::Valid]);

    let cert = medfabric_msp::Certificate::from_pem(f.net.client1.certificate_pem()).expect("cert");
    let now = time::OffsetDateTime::now_utc();
    let crl = f
        .net
        .org1
        .ca
        .revocation_list(
            &[medfabric_ca::RevokedEntry { serial: cert.serial().to_vec(), revoked_at: now }],
            now,
            now + time::Duration::days(7),
            1,
        )
        .expect("crl");
    let original = f.context.resources.raw.channel_group.clone().expect("group");
    let mut updated = original.clone();
    let msp = updated
        .groups
        .get_mut("Application")
        .and_then(|a| a.groups.get_mut("Org1"))
        .and_then(|o| o.values.get_mut("MSP"))
        .expect("Org1 MSP");
    let mut config = f
        .context
        .resources
        .config
        .application_orgs
        .iter()
        .find(|o| o.msp_id == "Org1MSP")
        .expect("org1")
        .msp
        .clone();
    config.revocation_list.push(crl.into_bytes().into());
    msp.value = medfabric_proto::msp::MspConfig { r#type: 0, config: config.encode_to_vec().into() }
        .encode_to_vec()
        .into();
    let update = compute_update("testchannel", &original, &updated).expect("update").encode_to_vec();
    let admin = f.net.org1.identity("admin1", "admin");
    let signed =
        ConfigUpdateEnvelope { signatures: vec![sign_update(&update, &admin)], config_update: update.into() };
    let timestamp = medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 };
    let proposed = propose(&f.context.resources, &update_envelope("testchannel", &signed, &admin, timestamp))
        .expect("Org1's admin");
    let tx = config_envelope("testchannel", &proposed, &f.net.orderer, timestamp);
    let block = f.net.block(&f.tip, &[tx]);
    let mut validated = validate_block(&block, &f.context, &f.state).expect("validates");
    let next = *validated.new_config.take().expect("new config");
    f.state.commit(&validated);
    f.tip = block;
    let registry = ChaincodeRegistry::from_config(&next.config).expect("registry");
    f.context = ChannelContext::new(std::sync::Arc::new(next), registry);

    // Endorsed before the config took effect, ordered after it.
    let after = f.endorse("kv", &["put", "k2", "v2"], &[&p1]);
    assert_eq!(f.block(&[after]), [Code::BadCreatorSignature]);
    assert_eq!(f.value("kv", "k2"), None);
}
