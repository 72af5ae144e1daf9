//! Private data on two in-process peers of the synthetic network: Org1's peer is a
//! member of collections `both` and `org1` (block-to-live 1), Org2's of `both` only.
//! Blocks are built and committed directly, so each case controls exactly what each
//! peer holds.

use std::sync::Arc;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_peer::channel::Channel;
use medfabric_peer::endorser::Endorser;
use medfabric_peer::pvtdata::{self, Missing};
use medfabric_peer::pvtnet::PrivateDataService;
use medfabric_peer::testnet::TestNetwork;
use medfabric_proto::common::{Block, Envelope};
use medfabric_proto::medfabric::pvt::private_data_server::PrivateData;
use medfabric_proto::medfabric::pvt::{Digest, PullPayload, PushPayload, SignedMessage};
use medfabric_proto::rwset::TxPvtReadWriteSet;
use medfabric_shim::StateView;
use prost::Message;

struct Pair {
    net: TestNetwork,
    org1: (Arc<Channel>, Endorser),
    org2: (Arc<Channel>, Endorser),
    seq: u64,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pair {
    fn new() -> Self {
        let net = TestNetwork::new();
        let dirs = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let org1 = net.peer(dirs.0.path(), net.peer1.clone());
        let org2 = net.peer(dirs.1.path(), net.peer2.clone());
        Self { net, org1, org2, seq: 0, _dirs: dirs }
    }

    /// Endorses `args` on Org1's peer as Org1's client (private writes land in that
    /// peer's transient store only) and returns the envelope.
    fn tx(&mut self, args: &[&str], value: Option<&str>) -> Envelope {
        self.seq += 1;
        let transient: Vec<(&str, &[u8])> = value.map(|v| ("value", v.as_bytes())).into_iter().collect();
        let signed = self.net.proposal_with_transient(&self.net.client1, "kv", args, &transient, self.seq);
        let response = self.org1.1.process(&signed).expect("endorsed");
        assert_eq!(response.response.as_ref().map(|r| r.status), Some(200), "{response:?}");
        self.net.envelope(&self.net.client1, &signed, &[response])
    }

    fn tip(&self) -> Block {
        let ledger = self.org1.0.ledger();
        ledger.block(ledger.height().expect("height") - 1).expect("read").expect("tip")
    }

    /// Commits a block of `envelopes` on both peers; returns its number.
    fn commit(&self, envelopes: &[Envelope]) -> u64 {
        let block = self.net.block(&self.tip(), envelopes);
        for channel in [&self.org1.0, &self.org2.0] {
            let event = channel.commit(&block).expect("commit");
            assert!(event.txs.iter().all(|t| t.code as i32 == 0), "{:?}", event.txs);
        }
        medfabric_types::block::header(&block).number
    }

    fn private(channel: &Channel, collection: &str, key: &str) -> Option<Bytes> {
        channel.ledger().snapshot().private_get("kv", collection, key).expect("read").map(|v| v.value)
    }

    fn hash_of(channel: &Channel, collection: &str, key: &str) -> Option<Bytes> {
        let key_hash = medfabric_shim::tx::hash(key.as_bytes());
        channel.ledger().snapshot().private_hash("kv", collection, &key_hash).expect("read").map(|v| v.value)
    }
}

#[test]
fn members_hold_values_and_every_peer_holds_hashes() {
    let mut pair = Pair::new();
    let put = pair.tx(&["putpvt", "org1", "k"], Some("secret"));
    pair.commit(&[put]);
    let (org1, org2) = (&pair.org1.0, &pair.org2.0);
    assert_eq!(Pair::private(org1, "org1", "k"), Some(Bytes::from("secret")));
    assert_eq!(Pair::private(org2, "org1", "k"), None, "Org2 is not a member of org1");
    let value_hash = Bytes::copy_from_slice(&medfabric_shim::tx::hash(b"secret"));
    assert_eq!(
        Pair::hash_of(org2, "org1", "k"),
        Some(value_hash.clone()),
        "the non-member validated via hashes"
    );
    assert_eq!(org1.ledger().state_hash().expect("hash"), org2.ledger().state_hash().expect("hash"));
    // Org2 is eligible for nothing in that block; Org1's transient entry was consumed.
    assert!(pair.org2.0.private_needs(&pair.tip()).expect("needs").is_empty());
    let tx_id = medfabric_types::Transaction::parse(&medfabric_types::block::envelopes(&pair.tip())[0])
        .expect("tx")
        .tx_id()
        .to_owned();
    assert!(pvtdata::transient_get(org1.ledger(), &tx_id).expect("transient").is_empty());
}

#[test]
fn missing_data_is_reconciled_but_not_keys_purged_since() {
    let mut pair = Pair::new();
    // Org2's peer (a member of `both`) gets neither push nor pull: its data is missing.
    let first = pair.tx(&["putpvt", "both", "a"], Some("va"));
    let second = pair.tx(&["putpvt", "both", "b"], Some("vb"));
    let block = pair.commit(&[first, second]);
    let org2 = pair.org2.0.clone();
    let missing = pvtdata::missing(org2.ledger(), None, 10).expect("missing");
    assert_eq!(missing.len(), 2, "{missing:?}");
    let read = org2.ledger().snapshot().private_get("kv", "both", "a").expect("read");
    assert_eq!(read, None);
    // Later, `b` is purged; then the reconciler fetches both write sets from Org1.
    let purge = pair.tx(&["purgepvt", "both", "b"], None);
    pair.commit(&[purge]);
    let org1 = pair.org1.0.clone();
    let fetched: Vec<(Missing, Bytes)> = missing
        .clone()
        .into_iter()
        .map(|m| {
            let data = pvtdata::stored(org1.ledger(), &m.key).expect("read");
            (m, data.unwrap_or_default())
        })
        .collect();
    // Org1 no longer holds `b` (purged), so that entry no longer matches its hash.
    assert_eq!(org2.store_reconciled(&fetched).expect("stored"), 1);
    assert_eq!(Pair::private(&org2, "both", "a"), Some(Bytes::from("va")));
    assert_eq!(Pair::private(&org2, "both", "b"), None);
    // `b`'s entry is dropped: every key of it was purged since, so no peer can serve it
    // (and it must not block reconciliation of others).
    assert!(pvtdata::missing(org2.ledger(), None, 10).expect("missing").is_empty());
    // Replaying the original `b` data cannot resurrect a purged key either.
    let original = {
        let mut rwset = medfabric_proto::kvrwset::KvrwSet::default();
        rwset.writes.push(medfabric_proto::kvrwset::KvWrite {
            key: "b".into(),
            is_delete: false,
            value: "vb".into(),
        });
        Bytes::from(rwset.encode_to_vec())
    };
    let entry = missing.iter().find(|m| m.key.tx == 1).expect("b's entry").clone();
    assert_eq!(entry.key.block, block);
    assert_eq!(org2.store_reconciled(&[(entry, original)]).expect("stored"), 0);
    assert_eq!(Pair::private(&org2, "both", "b"), None, "a key purged later is not stored");
    for (_, data) in pvtdata::block_private_data(org2.ledger(), block).expect("data") {
        let kv = medfabric_proto::kvrwset::KvrwSet::decode(data.as_ref()).expect("kv");
        assert!(kv.writes.iter().all(|w| w.key != "b"), "{kv:?}");
    }
}

#[test]
fn purge_in_the_same_block_removes_the_earlier_write() {
    let mut pair = Pair::new();
    let old = pair.tx(&["putpvt", "both", "k"], Some("old"));
    let block = pair.commit(&[old]);
    let put = pair.tx(&["putpvt", "both", "k"], Some("new"));
    let purge = pair.tx(&["purgepvt", "both", "k"], None);
    let again = pair.tx(&["putpvt", "both", "j"], Some("kept"));
    let next = pair.commit(&[put, purge, again]);
    let org1 = &pair.org1.0;
    assert_eq!(Pair::private(org1, "both", "k"), None);
    assert_eq!(Pair::hash_of(org1, "both", "k"), None);
    assert_eq!(Pair::private(org1, "both", "j"), Some(Bytes::from("kept")));
    for number in [block, next] {
        for (_, data) in pvtdata::block_private_data(org1.ledger(), number).expect("data") {
            let kv = medfabric_proto::kvrwset::KvrwSet::decode(data.as_ref()).expect("kv");
            assert!(kv.writes.iter().all(|w| w.key != "k"), "block {number}: {kv:?}");
        }
    }
}

#[test]
fn a_private_key_level_policy_overrides_the_chaincode_policy() {
    let mut pair = Pair::new();
    let put = pair.tx(&["putpvt", "both", "k"], Some("v1"));
    let sbe = pair.tx(&["sbepvt", "both", "k", "Org1MSP,Org2MSP"], None);
    pair.commit(&[put]);
    pair.commit(&[sbe]);
    // The policy change gave the key a new version; the value still reads back.
    pair.seq += 1;
    let read = pair.net.proposal(&pair.net.client1, "kv", &["getpvt", "both", "k"], pair.seq);
    let answer = pair.org1.1.process(&read).expect("evaluated");
    let answer = answer.response.expect("response");
    assert_eq!((answer.status, answer.payload.as_ref()), (200, &b"v1"[..]), "{}", answer.message);
    // Endorsed by Org1 alone: the chaincode's OR policy would do, the key's AND does not.
    let alone = pair.tx(&["putpvt", "both", "k"], Some("v2"));
    let block = pair.net.block(&pair.tip(), &[alone]);
    for channel in [&pair.org1.0, &pair.org2.0] {
        let event = channel.commit(&block).expect("commit");
        assert_eq!(event.txs[0].code as i32, 10, "ENDORSEMENT_POLICY_FAILURE: {:?}", event.txs[0].reason);
    }
    assert_eq!(
        Pair::private(&pair.org1.0, "both", "k"),
        Some(Bytes::from("v1")),
        "the invalid write changed nothing"
    );
    // Endorsed by both organizations' peers: valid.
    pair.seq += 1;
    let transient: [(&str, &[u8]); 1] = [("value", b"v3")];
    let signed = pair.net.proposal_with_transient(
        &pair.net.client1,
        "kv",
        &["putpvt", "both", "k"],
        &transient,
        pair.seq,
    );
    let responses =
        [pair.org1.1.process(&signed).expect("org1"), pair.org2.1.process(&signed).expect("org2")];
    let both = pair.net.envelope(&pair.net.client1, &signed, &responses);
    pair.commit(&[both]);
    assert_eq!(Pair::private(&pair.org1.0, "both", "k"), Some(Bytes::from("v3")));
    assert_eq!(
        Pair::private(&pair.org2.0, "both", "k"),
        Some(Bytes::from("v3")),
        "org2 endorsed: its transient store had it"
    );
}

#[test]
fn block_to_live_expires_values_and_hashes() {
    let mut pair = Pair::new();
    let put = pair.tx(&["putpvt", "org1", "k"], Some("brief"));
    let written = pair.commit(&[put]);
    let tick = pair.tx(&["put", "t", "1"], None);
    pair.commit(&[tick]);
    assert_eq!(Pair::private(&pair.org1.0, "org1", "k"), Some(Bytes::from("brief")), "alive one block later");
    let tick = pair.tx(&["put", "t", "2"], None);
    assert_eq!(pair.commit(&[tick]), written + 2);
    for channel in [&pair.org1.0, &pair.org2.0] {
        assert_eq!(Pair::private(channel, "org1", "k"), None);
        assert_eq!(Pair::hash_of(channel, "org1", "k"), None, "the hash expires on every peer");
    }
    assert!(pvtdata::block_private_data(pair.org1.0.ledger(), written).expect("data").is_empty());
    assert_eq!(
        pair.org1.0.ledger().state_hash().expect("hash"),
        pair.org2.0.ledger().state_hash().expect("hash")
    );
}

#[test]
fn transient_data_is_dropped_after_the_retention() {
    let mut pair = Pair::new();
    pair.org1.0.set_transient_retention(2);
    // Endorsed, never ordered.
    let abandoned = pair.net.proposal_with_transient(
        &pair.net.client1,
        "kv",
        &["putpvt", "both", "x"],
        &[("value", b"lost")],
        99,
    );
    pair.org1.1.process(&abandoned).expect("endorsed");
    let tx_id = medfabric_types::SignedProposal::parse(&abandoned).expect("proposal").tx_id().to_owned();
    assert_eq!(pvtdata::transient_get(pair.org1.0.ledger(), &tx_id).expect("transient").len(), 1);
    // Endorsed at height 1; with a retention of 2 blocks it survives the commit of block 3
    // and is dropped with block 4 (Fabric: purge below block number - retention).
    for i in 1..=4u64 {
        let tick = pair.tx(&["put", "t", &i.to_string()], None);
        assert_eq!(pair.commit(&[tick]), i);
        let held = pvtdata::transient_get(pair.org1.0.ledger(), &tx_id).expect("transient").len();
        assert_eq!(held, usize::from(i < 4), "after block {i}");
    }
}

fn signed(signer: &SigningIdentity, payload: Vec<u8>) -> SignedMessage {
    let signature = signer.sign(&payload);
    SignedMessage {
        payload: payload.into(),
        identity: signer.serialized().clone(),
        signature: signature.into(),
    }
}

fn now() -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(std::time::SystemTime::now()))
}

#[tokio::test]
async fn peers_push_and_pull_only_what_members_may_hold() {
    let mut pair = Pair::new();
    let service2 = PrivateDataService::new(pair.org2.1.channels().clone());
    let rwset_for = |collection: &str| {
        let mut kv = medfabric_proto::kvrwset::KvrwSet::default();
        kv.writes.push(medfabric_proto::kvrwset::KvWrite {
            key: "k".into(),
            is_delete: false,
            value: "v".into(),
        });
        TxPvtReadWriteSet {
            data_model: 0,
            ns_pvt_rwset: vec![medfabric_proto::rwset::NsPvtReadWriteSet {
                namespace: "kv".into(),
                collection_pvt_rwset: vec![medfabric_proto::rwset::CollectionPvtReadWriteSet {
                    collection_name: collection.into(),
                    rwset: kv.encode_to_vec().into(),
                }],
            }],
        }
    };
    let push = |collection: &str, tx_id: &str| PushPayload {
        channel_id: medfabric_peer::testnet::CHANNEL.into(),
        tx_id: tx_id.into(),
        pvt_rwset: rwset_for(collection).encode_to_vec().into(),
        timestamp: now(),
        tls_cert_hash: Default::default(),
    };
    let org2_channel = pair.org2.0.clone();
    let held = |tx_id: &str| pvtdata::transient_get(org2_channel.ledger(), tx_id).expect("transient").len();
    // Org2's peer is not a member of `org1`: refused, nothing kept.
    let refused =
        service2.push(tonic::Request::new(signed(&pair.net.peer1, push("org1", "t1").encode_to_vec()))).await;
    assert_eq!(refused.expect_err("not a member").code(), tonic::Code::PermissionDenied);
    assert_eq!(held("t1"), 0);
    // Only peers push; a bad signature is refused.
    let client = service2
        .push(tonic::Request::new(signed(&pair.net.client1, push("both", "t2").encode_to_vec())))
        .await;
    assert_eq!(client.expect_err("a client").code(), tonic::Code::PermissionDenied);
    let mut forged = signed(&pair.net.peer1, push("both", "t3").encode_to_vec());
    forged.payload = push("both", "t4").encode_to_vec().into();
    let forged = service2.push(tonic::Request::new(forged)).await;
    assert_eq!(forged.expect_err("forged").code(), tonic::Code::PermissionDenied);
    let stale = PushPayload {
        timestamp: Some(prost_types::Timestamp { seconds: 1_000, nanos: 0 }),
        ..push("both", "t5")
    };
    let stale = service2.push(tonic::Request::new(signed(&pair.net.peer1, stale.encode_to_vec()))).await;
    assert_eq!(stale.expect_err("stale").code(), tonic::Code::PermissionDenied);
    assert_eq!((held("t2"), held("t3"), held("t4"), held("t5")), (0, 0, 0, 0));
    let malformed = service2.push(tonic::Request::new(signed(&pair.net.peer1, b"\xff\xff".to_vec()))).await;
    assert_eq!(malformed.expect_err("malformed").code(), tonic::Code::InvalidArgument);
    // Served over TLS, a message must come over a connection with the client certificate
    // it is bound to; here there is none.
    let unbound = PrivateDataService::new(pair.org2.1.channels().clone())
        .with_tls_binding(true)
        .push(tonic::Request::new(signed(&pair.net.peer1, push("both", "t7").encode_to_vec())))
        .await
        .expect_err("no client certificate");
    assert_eq!(unbound.code(), tonic::Code::PermissionDenied);
    assert!(unbound.message().contains("presented no client certificate"), "{}", unbound.message());
    assert_eq!(held("t7"), 0);
    // A member's push is kept.
    service2
        .push(tonic::Request::new(signed(&pair.net.peer1, push("both", "t6").encode_to_vec())))
        .await
        .expect("kept");
    assert_eq!(held("t6"), 1);

    // Pull from Org1's peer: Org2's peer gets `both` data, never `org1` data.
    let service1 = PrivateDataService::new(pair.org1.1.channels().clone());
    let first = pair.tx(&["putpvt", "both", "a"], Some("va"));
    let second = pair.tx(&["putpvt", "org1", "b"], Some("vb"));
    let block = pair.commit(&[first, second]);
    let stored = pvtdata::block_private_data(pair.org1.0.ledger(), block).expect("data");
    assert_eq!(stored.len(), 2);
    let digests: Vec<Digest> = stored
        .iter()
        .map(|(at, data)| Digest {
            tx_id: String::new(),
            namespace: at.namespace.clone(),
            collection: at.collection.clone(),
            block_num: at.block,
            tx_num: at.tx,
            pvt_rwset_hash: Bytes::copy_from_slice(&medfabric_shim::tx::hash(data)),
        })
        .collect();
    let request = PullPayload {
        channel_id: medfabric_peer::testnet::CHANNEL.into(),
        digests,
        timestamp: now(),
        tls_cert_hash: Default::default(),
    };
    let answer = service1
        .pull(tonic::Request::new(signed(&pair.net.peer2, request.encode_to_vec())))
        .await
        .expect("pull")
        .into_inner();
    let collections: Vec<String> =
        answer.elements.iter().filter_map(|e| e.digest.as_ref().map(|d| d.collection.clone())).collect();
    assert_eq!(collections, vec!["both".to_owned()]);
    // A late (or replayed) push for a committed transaction is refused.
    let committed = medfabric_types::Transaction::parse(&medfabric_types::block::envelopes(&pair.tip())[0])
        .expect("tx")
        .tx_id()
        .to_owned();
    let late = service2
        .push(tonic::Request::new(signed(&pair.net.peer1, push("both", &committed).encode_to_vec())))
        .await;
    assert_eq!(late.expect_err("committed").code(), tonic::Code::FailedPrecondition);
    assert_eq!(held(&committed), 0);
}

#[tokio::test]
async fn one_sender_cannot_fill_another_peers_transient_store() {
    use medfabric_peer::pvtnet::PushQuota;
    let mut pair = Pair::new();
    let quota = PushQuota { entries: 2, bytes: 1 << 20 };
    let service2 = PrivateDataService::new(pair.org2.1.channels().clone()).with_push_quota(quota);
    // A real transaction whose private data Org1's peer pushes to Org2's.
    let envelope = pair.tx(&["putpvt", "both", "q"], Some("vq"));
    let real = medfabric_types::Transaction::parse(&envelope.encode_to_vec()).expect("tx").tx_id().to_owned();
    let rwset = pvtdata::transient_get(pair.org1.0.ledger(), &real).expect("transient").remove(0);
    let push = |tx_id: &str, rwset: &TxPvtReadWriteSet| PushPayload {
        channel_id: medfabric_peer::testnet::CHANNEL.into(),
        tx_id: tx_id.into(),
        pvt_rwset: rwset.encode_to_vec().into(),
        timestamp: now(),
        tls_cert_hash: Default::default(),
    };
    let send = |tx_id: &str| {
        let message = signed(&pair.net.peer1, push(tx_id, &rwset).encode_to_vec());
        let service = service2.clone();
        async move { service.push(tonic::Request::new(message)).await }
    };
    send(&real).await.expect("first push");
    send("never-committed-1").await.expect("second push");
    let refused = send("never-committed-2").await.expect_err("over the quota");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{}", refused.message());
    assert!(refused.message().contains("limit 2 pushes"), "{}", refused.message());
    assert!(pvtdata::transient_get(pair.org2.0.ledger(), "never-committed-2").expect("read").is_empty());
    // Once the real transaction commits, its push no longer counts.
    pair.commit(&[envelope]);
    send("never-committed-2").await.expect("room again after the commit");
    // Bytes count too.
    let tiny = PrivateDataService::new(pair.org2.1.channels().clone())
        .with_push_quota(PushQuota { entries: 100, bytes: 8 });
    let message = signed(&pair.net.peer1, push("too-big", &rwset).encode_to_vec());
    let refused = tiny.push(tonic::Request::new(message)).await.expect_err("over the byte quota");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
}
