//! `protos.Endorser/ProcessProposal` over gRPC on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_peer::Channel;
use medfabric_peer::endorser::EndorserService;
use medfabric_peer::testnet::TestNetwork;
use medfabric_proto::common::{ChannelHeader, Header};
use medfabric_proto::protos::endorser_client::EndorserClient;
use medfabric_proto::protos::endorser_server::EndorserServer;
use medfabric_proto::protos::{self, Proposal, ProposalResponse};
use medfabric_types::block;
use prost::Message;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;

struct TestPeer {
    channel: Arc<Channel>,
    client: EndorserClient<tonic::transport::Channel>,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start_peer(net: &TestNetwork, signer: Arc<SigningIdentity>) -> TestPeer {
    let dir = tempfile::tempdir().expect("tempdir");
    let (channel, endorser) = net.peer(dir.path(), signer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address: SocketAddr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let service = EndorserServer::new(EndorserService::new(Arc::new(endorser)));
    tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
        TcpListenerStream::new(listener),
        async {
            let _ = stopped.await;
        },
    ));
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).expect("endpoint");
    let client = EndorserClient::new(endpoint.connect().await.expect("connect"));
    TestPeer { channel, client, _stop: stop, _dir: dir }
}

async fn propose(
    peer: &mut TestPeer,
    signed: &protos::SignedProposal,
) -> Result<ProposalResponse, tonic::Status> {
    peer.client.process_proposal(signed.clone()).await.map(tonic::Response::into_inner)
}

fn assert_unchanged(peer: &TestPeer) {
    assert_eq!(peer.channel.height().expect("height"), 1, "no block was committed");
    let written: Vec<_> = peer.channel.ledger().state_entries().expect("state");
    assert!(written.is_empty(), "state changed: {written:?}");
}

#[tokio::test]
async fn two_peers_endorse_identically_and_the_transaction_commits() {
    let net = TestNetwork::new();
    let mut peer1 = start_peer(&net, net.peer1.clone()).await;
    let mut peer2 = start_peer(&net, net.peer2.clone()).await;
    let signed = net.proposal(&net.client1, "kvand", &["put", "k", "v"], 1);
    let r1 = propose(&mut peer1, &signed).await.expect("peer1 endorses");
    let r2 = propose(&mut peer2, &signed).await.expect("peer2 endorses");
    assert_eq!(r1.response.as_ref().map(|r| r.status), Some(200));
    assert!(!r1.payload.is_empty());
    assert_eq!(r1.payload, r2.payload, "ProposalResponsePayloads are byte-identical");
    let e1 = r1.endorsement.clone().expect("endorsement");
    assert_eq!(e1.endorser, net.peer1.serialized().clone());
    let signed_bytes = [r1.payload.as_ref(), e1.endorser.as_ref()].concat();
    let certificate = medfabric_msp::Certificate::from_pem(net.peer1.certificate_pem()).expect("certificate");
    medfabric_msp::verify_signature(certificate.public_key(), &signed_bytes, &e1.signature)
        .expect("endorsement signs payload || endorser");
    let interest = r1.interest.clone().expect("chaincode interest");
    assert_eq!(interest.chaincodes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["kvand"]);

    // Assembled, ordered and committed on both peers: same state.
    let envelope = net.envelope(&net.client1, &signed, &[r1, r2]);
    let block1 = net.block(&net.genesis, &[envelope]);
    for peer in [&peer1, &peer2] {
        let event = peer.channel.commit(&block1).expect("commits");
        assert_eq!(event.txs[0].code as i32, 0, "{:?}", event.txs[0].reason);
    }
    assert_eq!(
        peer1.channel.ledger().state_hash().expect("hash"),
        peer2.channel.ledger().state_hash().expect("hash")
    );
    let snapshot = peer1.channel.ledger().snapshot();
    assert_eq!(
        snapshot.get_value("kvand", "k").expect("read").map(|v| v.value),
        Some(Bytes::from_static(b"v"))
    );

    // The same proposal again is a replayed tx id.
    drop(snapshot);
    let replay = propose(&mut peer1, &signed).await.expect_err("replayed tx id");
    assert!(replay.message().starts_with("duplicate transaction found ["), "{}", replay.message());
}

#[tokio::test]
async fn bad_proposals_get_clear_errors_and_change_nothing() {
    let net = TestNetwork::new();
    let mut peer = start_peer(&net, net.peer1.clone()).await;

    // Malformed bytes.
    let garbage = protos::SignedProposal {
        proposal_bytes: Bytes::from_static(b"\x0a\xff\xff"),
        signature: Bytes::from_static(b"x"),
    };
    let err = propose(&mut peer, &garbage).await.expect_err("malformed");
    assert!(err.message().starts_with("error validating proposal:"), "{}", err.message());

    // A tx id that is not hex(SHA-256(nonce || creator)).
    let signed = net.proposal(&net.client1, "kv", &["put", "a", "1"], 1);
    let wrong_id = with_tx_id(&signed, &"0".repeat(64), &net.client1);
    let err = propose(&mut peer, &wrong_id).await.expect_err("wrong tx id");
    assert!(err.message().contains("incorrectly computed txid"), "{}", err.message());
    // The creator's signature is checked before the tx-id rule, as in Fabric.
    let wrong_id_and_signature = with_tx_id(&signed, &"0".repeat(64), &net.client2);
    let err = propose(&mut peer, &wrong_id_and_signature).await.expect_err("bad signature first");
    assert!(err.message().contains("access denied"), "{}", err.message());

    // A signature that does not verify.
    let mut bad_signature = net.proposal(&net.client1, "kv", &["put", "a", "1"], 2);
    let mut sig = bad_signature.signature.to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    bad_signature.signature = sig.into();
    let err = propose(&mut peer, &bad_signature).await.expect_err("bad signature");
    assert!(
        err.message().contains("access denied: channel [testchannel] creator org [Org1MSP]"),
        "{}",
        err.message()
    );

    // A creator outside the channel's MSPs.
    let stranger = medfabric_peer::testnet::TestOrg::new("Org1MSP").identity("mallory", "client");
    let err = propose(&mut peer, &net.proposal(&stranger, "kv", &["put", "a", "1"], 3))
        .await
        .expect_err("stranger");
    assert!(err.message().contains("creator org unknown, creator is malformed"), "{}", err.message());

    // A member that is not a Writer (a peer identity).
    let err = propose(&mut peer, &net.proposal(&net.peer2, "kv", &["put", "a", "1"], 4))
        .await
        .expect_err("not writer");
    assert!(err.message().contains("/Channel/Application/Writers"), "{}", err.message());

    // Unknown channel and chaincode: a response with status 500.
    let other_channel = medfabric_types::ProposalBuilder::new("nochannel", "kv")
        .arg("put")
        .sign(&net.client1, medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 });
    let response = propose(&mut peer, &other_channel).await.expect("answered");
    let r = response.response.expect("response");
    assert_eq!((r.status, r.message.as_str()), (500, "channel 'nochannel' not found"));
    assert!(response.endorsement.is_none());
    let response = propose(&mut peer, &net.proposal(&net.client1, "nosuchcc", &["put", "a", "1"], 5))
        .await
        .expect("answered");
    let r = response.response.expect("response");
    assert_eq!(r.status, 500);
    assert!(r.message.contains("chaincode nosuchcc not found"), "{}", r.message);
    assert!(response.endorsement.is_none());

    // A chaincode error: no endorsement.
    let response = propose(&mut peer, &net.proposal(&net.client1, "kv", &["get", "missing"], 6))
        .await
        .expect("answered");
    assert_eq!(response.response.as_ref().map(|r| r.status), Some(500));
    assert!(response.endorsement.is_none());

    assert_unchanged(&peer);
}

/// `signed` with its channel header's tx id replaced, re-signed by `creator`.
fn with_tx_id(
    signed: &protos::SignedProposal,
    tx_id: &str,
    creator: &SigningIdentity,
) -> protos::SignedProposal {
    let mut proposal = Proposal::decode(signed.proposal_bytes.as_ref()).expect("proposal");
    let mut header = Header::decode(proposal.header.as_ref()).expect("header");
    let mut channel_header = ChannelHeader::decode(header.channel_header.as_ref()).expect("channel header");
    channel_header.tx_id = tx_id.to_owned();
    header.channel_header = channel_header.encode_to_vec().into();
    proposal.header = header.encode_to_vec().into();
    let proposal_bytes: Bytes = proposal.encode_to_vec().into();
    let signature = creator.sign(&proposal_bytes).into();
    protos::SignedProposal { proposal_bytes, signature }
}

#[test]
fn blocks_with_bad_orderer_signatures_or_chaining_are_refused_whole() {
    let net = TestNetwork::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (channel, endorser) = net.peer(dir.path(), net.peer1.clone());
    let signed = net.proposal(&net.client1, "kv", &["put", "a", "1"], 1);
    let response = endorser.process(&signed).expect("endorsed");
    let envelope = net.envelope(&net.client1, &signed, &[response]);
    // Signed by a client, not an orderer.
    let mut forged = block::new_block(
        1,
        &block::header_hash(block::header(&net.genesis)),
        vec![envelope.encode_to_vec().into()],
    );
    block::sign_block(&mut forged, &net.client1, 0, Bytes::new());
    assert!(channel.commit(&forged).is_err(), "a block not signed by the orderer is refused");
    // Not chained to the genesis block.
    let orphan = net.block(&net.block(&net.genesis, &[]), std::slice::from_ref(&envelope));
    assert!(channel.commit(&orphan).is_err(), "a block that skips a number is refused");
    assert_eq!(channel.height().expect("height"), 1);
    let good = net.block(&net.genesis, &[envelope]);
    channel.commit(&good).expect("the orderer's block commits");
    assert_eq!(channel.height().expect("height"), 2);
}

#[test]
fn a_proposal_stamped_far_from_the_peers_clock_is_refused() {
    let net = TestNetwork::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_channel, endorser) = net.peer(dir.path(), net.peer1.clone());
    endorser.set_max_clock_skew(std::time::Duration::from_secs(300));
    // The synthetic network stamps proposals in 2027.
    let stale = net.proposal(&net.client1, "kv", &["put", "k", "v"], 1);
    match endorser.process(&stale) {
        Err(medfabric_peer::endorser::Rejection::Error(message)) => {
            assert!(message.contains("from the peer's clock"), "{message}")
        }
        other => panic!("a proposal stamped in 2027 was not refused: {other:?}"),
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let fresh = medfabric_types::ProposalBuilder::new(medfabric_peer::testnet::CHANNEL, "kv")
        .arg(Bytes::from_static(b"put"))
        .arg(Bytes::from_static(b"k"))
        .arg(Bytes::from_static(b"v"))
        .sign(
            &net.client1,
            medfabric_proto::Timestamp { seconds: i64::try_from(now).expect("time"), nanos: 0 },
        );
    let response = endorser.process(&fresh).expect("a current proposal is endorsed");
    assert_eq!(response.response.map(|r| r.status), Some(200));
}

#[test]
fn a_crl_from_the_local_msp_revokes_an_identity() {
    let net = TestNetwork::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let (channel, endorser) = net.peer(dir.path(), net.peer1.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let proposal = |seq: i64| {
        medfabric_types::ProposalBuilder::new(medfabric_peer::testnet::CHANNEL, "kv")
            .arg(Bytes::from_static(b"put"))
            .arg(Bytes::from_static(b"k"))
            .arg(Bytes::from_static(b"v"))
            .sign(
                &net.client1,
                medfabric_proto::Timestamp { seconds: i64::try_from(now).expect("time") + seq, nanos: 0 },
            )
    };
    assert!(endorser.process(&proposal(0)).is_ok(), "endorsed before the revocation");
    let creator = medfabric_proto::msp::SerializedIdentity::decode(net.client1.serialized().as_ref())
        .expect("identity");
    let cert = medfabric_msp::Certificate::from_pem(&creator.id_bytes).expect("certificate");
    let revoked = medfabric_ca::RevokedEntry {
        serial: cert.serial().to_vec(),
        revoked_at: time::OffsetDateTime::now_utc(),
    };
    let this_update = time::OffsetDateTime::now_utc();
    let crl = net
        .org1
        .ca
        .revocation_list(&[revoked], this_update, this_update + time::Duration::days(1), 1)
        .expect("crl");
    assert!(channel.set_local_crls(vec![crl.clone().into_bytes()]).expect("crls"), "changed");
    match endorser.process(&proposal(1)) {
        Err(medfabric_peer::endorser::Rejection::Error(message)) => {
            assert!(message.contains("access denied"), "{message}")
        }
        other => panic!("a revoked identity's proposal was endorsed: {other:?}"),
    }
    // Setting the same lists changes nothing; removing the CRL restores the identity.
    assert!(!channel.set_local_crls(vec![crl.into_bytes()]).expect("crls"), "same lists: no change");
    assert!(channel.set_local_crls(Vec::new()).expect("crls"));
    assert!(endorser.process(&proposal(2)).is_ok(), "endorsed once the CRL is gone");
}

#[test]
fn a_local_crl_never_changes_validation_codes() {
    // Two peers of the same org; only the first has a local CRL revoking client1.
    let net = TestNetwork::new();
    let (dir1, dir2) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (with_crl, endorser_with_crl) = net.peer(dir1.path(), net.peer1.clone());
    let (without_crl, endorser) = net.peer(dir2.path(), net.peer1.clone());
    let creator = medfabric_proto::msp::SerializedIdentity::decode(net.client1.serialized().as_ref())
        .expect("identity");
    let cert = medfabric_msp::Certificate::from_pem(&creator.id_bytes).expect("certificate");
    let now = time::OffsetDateTime::now_utc();
    let revoked = medfabric_ca::RevokedEntry { serial: cert.serial().to_vec(), revoked_at: now };
    let crl = net.org1.ca.revocation_list(&[revoked], now, now + time::Duration::days(1), 1).expect("crl");
    assert!(with_crl.set_local_crls(vec![crl.into_bytes()]).expect("crls"));

    // The peer with the CRL refuses to endorse for the revoked client (admission)…
    let signed = net.proposal(&net.client1, "kv", &["put", "k", "v"], 1);
    match endorser_with_crl.process(&signed) {
        Err(medfabric_peer::endorser::Rejection::Error(message)) => {
            assert!(message.contains("access denied"), "{message}")
        }
        other => panic!("a locally revoked identity's proposal was endorsed: {other:?}"),
    }
    // …but a transaction the other peer endorsed commits with the same code on both:
    // validation uses the channel config's MSPs only.
    let response = endorser.process(&signed).expect("endorsed without the CRL");
    let envelope = net.envelope(&net.client1, &signed, &[response]);
    let block1 = net.block(&net.genesis, &[envelope]);
    let codes: Vec<u8> = [&with_crl, &without_crl]
        .iter()
        .map(|channel| channel.commit(&block1).expect("commits").txs[0].code as u8)
        .collect();
    assert_eq!(codes, [0, 0], "identical validation codes");
    assert_eq!(
        with_crl.ledger().state_hash().expect("hash"),
        without_crl.ledger().state_hash().expect("hash"),
        "identical state"
    );
}
