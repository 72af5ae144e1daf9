//! The Rust client SDK against a dev network started by `network up`: offline signing
//! (proposal and transaction digests signed outside the SDK), chaincode events resumed
//! after a checkpointed transaction, filtered blocks, and the operations endpoints.

use std::path::PathBuf;
use std::time::Duration;

use medfabric_network::up;
use medfabric_sdk::{ClientError, Start};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::DecodePrivateKey;
use tokio_stream::StreamExt;

mod common;

/// A DER, low-S ECDSA signature over a SHA-256 digest, made without the SDK.
fn sign_digest(key_pem: &str, digest: &[u8; 32]) -> Vec<u8> {
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(key_pem).expect("key");
    let signature: p256::ecdsa::Signature = key.sign_prehash(digest).expect("sign");
    signature.normalize_s().to_der().as_bytes().to_vec()
}

/// A signed seek envelope (blocks from 0) whose channel header claims `tls_cert_hash`.
fn seek_bound_to(
    channel: &str,
    signer: &medfabric_msp::SigningIdentity,
    tls_cert_hash: &[u8],
) -> medfabric_proto::common::Envelope {
    use medfabric_proto::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
    use medfabric_proto::orderer::{SeekInfo, SeekPosition, SeekSpecified, seek_position};
    use prost::Message;
    let at = |number| SeekPosition { r#type: Some(seek_position::Type::Specified(SeekSpecified { number })) };
    let seek = SeekInfo { start: Some(at(0)), stop: Some(at(0)), ..Default::default() };
    let header = ChannelHeader {
        r#type: HeaderType::DeliverSeekInfo as i32,
        channel_id: channel.to_owned(),
        timestamp: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        tls_cert_hash: tls_cert_hash.to_vec().into(),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: header.encode_to_vec().into(),
            signature_header: SignatureHeader {
                creator: signer.serialized().clone(),
                nonce: Default::default(),
            }
            .encode_to_vec()
            .into(),
        }),
        data: seek.encode_to_vec().into(),
    }
    .encode_to_vec();
    let signature = signer.sign(&payload);
    Envelope { payload: payload.into(), signature: signature.into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_signing_events_and_operations() {
    let topology = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../network-config/dev.yaml");
    let network = common::start(&topology);
    let status = up::status(&network.data).expect("status");
    let (user, peer) = medfabric_network::connect::pick(&status, "alice", None).expect("alice");
    let gateway = medfabric_network::connect::gateway(user, peer).expect("gateway");
    let kv = gateway.network(&status.channel).contract("kv");
    let key_pem = std::fs::read_to_string(&user.key_file).expect("key file");

    // Offline signing: the SDK never signs; the digests are signed with the raw key.
    let creator = gateway.signer().serialized().clone();
    let unsigned = kv.proposal_builder("put", &["offline", "signed"]).unsigned(creator);
    let signature = sign_digest(&key_pem, &unsigned.digest());
    let proposal = unsigned.with_signature(signature);
    let transaction = proposal.endorse_unsigned().await.expect("endorse");
    assert!(transaction.envelope().signature.is_empty(), "the gateway returns the envelope unsigned");
    let signature = sign_digest(&key_pem, &transaction.digest());
    let committed =
        transaction.with_signature(signature).submit().await.expect("submit").status().await.expect("status");
    assert!(committed.is_valid(), "{committed:?}");
    assert_eq!(kv.evaluate("get", &["offline"]).await.expect("get").as_ref(), b"signed");

    // A wrong offline signature is refused by the endorser, as Fabric's gateway reports it.
    let creator = gateway.signer().serialized().clone();
    let forged = kv.proposal_builder("put", &["offline", "forged"]).unsigned(creator);
    let wrong = sign_digest(&key_pem, &[7u8; 32]);
    match forged.with_signature(wrong).endorse_unsigned().await {
        Err(ClientError::Gateway { code, details, .. }) => {
            assert_eq!(code, tonic::Code::Aborted);
            assert_eq!(details.len(), 1);
            assert!(details[0].message.contains("access denied"), "{details:?}");
        }
        other => panic!("expected an endorsement failure, got {other:?}"),
    }

    // Chaincode events resumed after a checkpointed transaction skip it and those before.
    let first = kv.proposal("event", &["first", "1"]);
    let first_id = first.tx_id().to_owned();
    let first_status = first
        .endorse()
        .await
        .expect("endorse")
        .submit()
        .await
        .expect("submit")
        .status()
        .await
        .expect("status");
    let second = kv.proposal("event", &["second", "2"]);
    let second_id = second.tx_id().to_owned();
    second.endorse().await.expect("endorse").submit().await.expect("submit").status().await.expect("status");
    let network_handle = gateway.network(&status.channel);
    let mut events = network_handle
        .chaincode_events(
            "kv",
            Start::AfterTransaction { block: first_status.block_number, tx_id: first_id.clone() },
        )
        .await
        .expect("events");
    let batch = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("in time")
        .expect("item")
        .expect("ok");
    assert_eq!(batch.events[0].tx_id, second_id);
    assert_eq!(batch.events[0].event_name, "second");

    // Filtered blocks carry the tx id and its validation code.
    let mut filtered = network_handle
        .filtered_block_events(Start::Block(first_status.block_number))
        .await
        .expect("filtered");
    let block = tokio::time::timeout(Duration::from_secs(30), filtered.next())
        .await
        .expect("in time")
        .expect("item")
        .expect("ok");
    let tx = block.filtered_transactions.iter().find(|t| t.txid == first_id).expect("tx in block");
    assert_eq!(tx.tx_validation_code, 0);

    // A Deliver request bound to another TLS certificate than the connection's is refused.
    let bound = seek_bound_to(&status.channel, gateway.signer(), &[1u8; 32]);
    let tls = medfabric_config::tls::ClientTls::from_files(
        std::slice::from_ref(peer.tls_ca_file.as_ref().expect("tls")),
        Some((user.tls_cert_file.as_path(), user.tls_key_file.as_path())),
    )
    .expect("tls");
    let channel = medfabric_config::tls::lazy_channel(&peer.address, Some(&tls)).expect("channel");
    let mut deliver = medfabric_proto::protos::deliver_client::DeliverClient::new(channel);
    let mut answers = deliver.deliver(tokio_stream::iter(vec![bound])).await.expect("deliver").into_inner();
    let first = answers.message().await.expect("answer").expect("a message");
    assert_eq!(
        first.r#type,
        Some(medfabric_proto::protos::deliver_response::Type::Status(
            medfabric_proto::common::Status::Forbidden as i32
        ))
    );

    // Deliver is for readers of the channel: the orderer organization's admin is not one.
    let outsider = status.users.iter().find(|u| u.org == "OrdererMSP").expect("orderer admin");
    let outsider =
        medfabric_network::connect::gateway(outsider, peer).expect("gateway").network(&status.channel);
    let mut refused = outsider.block_events(Start::Block(0)).await.expect("stream");
    match tokio::time::timeout(Duration::from_secs(30), refused.next()).await.expect("in time") {
        Some(Err(ClientError::Other(why))) => assert!(why.contains("403"), "{why}"),
        other => panic!("expected FORBIDDEN, got {other:?}"),
    }

    // Operations: health and Prometheus metrics on every peer and orderer (the CAs
    // answer their REST API instead).
    for node in status.nodes.iter().filter(|n| n.role != "ca") {
        let ops = node.operations.as_deref().expect("operations address");
        let (code, body) = up::http_get(ops, "/healthz").expect("healthz");
        assert_eq!(code, 200, "{}: {body}", node.name);
        let (code, metrics) = up::http_get(ops, "/metrics").expect("metrics");
        assert_eq!(code, 200);
        let expected =
            if node.role == "peer" { "ledger_transaction_count" } else { "consensus_etcdraft_is_leader" };
        assert!(metrics.contains(expected), "{}: no {expected} in\n{metrics}", node.name);
    }
    let hospital = status.peer_of("HospitalMSP").expect("peer");
    let (_, metrics) =
        up::http_get(hospital.operations.as_deref().expect("ops"), "/metrics").expect("metrics");
    assert!(metrics.contains("ledger_transaction_count{validation_code=\"VALID\"}"), "{metrics}");
    assert!(
        metrics.contains("gateway_requests_completed{code=\"Aborted\",method=\"Endorse\"} 1"),
        "{metrics}"
    );
}
