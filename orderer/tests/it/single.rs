//! One consenter: ordering, Deliver, offline verification of our blocks, rejections.

use medfabric_proto::Message;
use medfabric_proto::common::{Envelope, Status};
use medfabric_types::block;
use medfabric_types::deliver::Seek;
use medfabric_types::verify::LedgerVerifier;

use crate::support::{
    Cluster, batch_timeout_update, broadcast, config_envelope, deliver, deliver_at, orderer_value_update,
    status, transaction, tx_id, tx_ids, wait_for_leader,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_consenter_orders_delivers_and_its_blocks_verify() {
    let cluster = Cluster::new(1, 10, 100);
    let orderer = cluster.start(0);
    wait_for_leader(&orderer).await;
    let envelopes: Vec<Envelope> =
        (0..35).map(|i| transaction(&cluster.client, &cluster.peer, &format!("k{i}"), i)).collect();
    let ids: Vec<String> = envelopes.iter().map(tx_id).collect();
    let answers = broadcast(&orderer, envelopes).await;
    assert!(answers.iter().all(|a| status(a) == Status::Success), "{answers:?}");

    let (blocks, end) = deliver(&orderer.broadcast, &cluster.client, Seek::Oldest, Seek::Newest, false).await;
    assert_eq!(end, Status::Success);
    assert!(blocks.len() >= 5, "35 envelopes in blocks of at most 10: {} blocks", blocks.len());
    let ordered = tx_ids(&blocks);
    assert_eq!(ordered, ids, "every acknowledged envelope once, in submission order");
    assert!(blocks[1..].iter().all(|b| block::envelopes(b).len() <= 10));

    // The chain passes the auditors' offline verification.
    let mut verifier = LedgerVerifier::new(&cluster.genesis).expect("verifier");
    for b in &blocks {
        verifier.verify_block(b);
    }
    let summary = verifier.finish();
    assert!(summary.ok, "{:?}", summary.first_problem);
    assert!(summary.signatures_ok && summary.chain_ok);

    // A seek past the end fails when not waiting, and waits when asked.
    let next = blocks.len() as u64;
    let (none, end) =
        deliver(&orderer.broadcast, &cluster.client, Seek::Number(next), Seek::Number(next), false).await;
    assert!(none.is_empty());
    assert_eq!(end, Status::NotFound);
    let waiter = {
        let client = cluster.client.clone();
        let address = orderer.broadcast.clone();
        tokio::spawn(
            async move { deliver(&address, &client, Seek::Number(next), Seek::Number(next), true).await },
        )
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let late = broadcast(&orderer, vec![transaction(&cluster.client, &cluster.peer, "late", 100)]).await;
    assert_eq!(status(&late[0]), Status::Success);
    let (waited, end) = waiter.await.expect("waiter");
    assert_eq!((waited.len(), end), (1, Status::Success));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_envelopes_get_fabrics_statuses_and_are_not_ordered() {
    let cluster = Cluster::new(1, 10, 100);
    let orderer = cluster.start(0);
    wait_for_leader(&orderer).await;
    let good = transaction(&cluster.client, &cluster.peer, "good", 1);

    let mut bad_signature = transaction(&cluster.client, &cluster.peer, "badsig", 2);
    let mut sig = bad_signature.signature.to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 1;
    bad_signature.signature = sig.into();
    // A member that is not a Writer: a peer identity signs as the client.
    let non_writer = transaction(&cluster.peer, &cluster.peer, "peer", 3);
    let stranger = transaction(&cluster.stranger, &cluster.peer, "stranger", 4);
    let oversize = transaction(&cluster.client, &cluster.peer, &"x".repeat(70 * 1024), 5);
    let malformed = Envelope {
        payload: bytes::Bytes::from_static(b"\xff\xff\xff"),
        signature: bytes::Bytes::from_static(b"s"),
    };
    let other_channel = {
        let signed = medfabric_types::ProposalBuilder::new("nochannel", "kv")
            .arg("put")
            .sign(&cluster.client, medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 });
        let proposal = medfabric_types::SignedProposal::parse(&signed).expect("proposal");
        let result = medfabric_types::endorsement::SimulationResult {
            response: medfabric_proto::protos::Response { status: 200, ..Default::default() },
            results: Default::default(),
            events: Default::default(),
            chaincode_id: medfabric_proto::protos::ChaincodeId { name: "kv".into(), ..Default::default() },
        };
        let mut e = medfabric_types::endorsement::assemble_transaction(
            &proposal,
            &[medfabric_types::endorsement::endorse(&proposal, result, &cluster.peer)],
        )
        .expect("assemble");
        medfabric_types::endorsement::sign_envelope(&mut e, &cluster.client);
        e
    };
    let answers = broadcast(
        &orderer,
        vec![bad_signature, non_writer, stranger, oversize, malformed, other_channel, good],
    )
    .await;
    let statuses: Vec<Status> = answers.iter().map(status).collect();
    assert_eq!(
        statuses,
        [
            Status::Forbidden,
            Status::Forbidden,
            Status::Forbidden,
            Status::BadRequest,
            Status::BadRequest,
            Status::NotFound,
            Status::Success
        ],
        "{answers:?}"
    );
    assert!(answers[3].info.contains("exceeds maximum allowed"), "{}", answers[3].info);

    let (blocks, _) = deliver(&orderer.broadcast, &cluster.client, Seek::Oldest, Seek::Newest, false).await;
    let ordered: usize = blocks[1..].iter().map(|b| block::envelopes(b).len()).sum();
    assert_eq!(ordered, 1, "only the good envelope was ordered");

    // Deliver to a creator outside the channel.
    let (refused, end) =
        deliver(&orderer.broadcast, &cluster.stranger, Seek::Oldest, Seek::Newest, false).await;
    assert!(refused.is_empty());
    assert_eq!(end, Status::Forbidden);

    // A seek request stamped an hour ago (a replay) is refused.
    let an_hour_ago =
        medfabric_proto::Timestamp::from(std::time::SystemTime::now() - std::time::Duration::from_secs(3600));
    let (refused, end) =
        deliver_at(&orderer.broadcast, &cluster.client, Seek::Oldest, Seek::Newest, false, an_hour_ago).await;
    assert!(refused.is_empty());
    assert_eq!(end, Status::BadRequest);
}

/// A config update, validated as Fabric's configtx does, becomes a CONFIG envelope cut
/// into a block of its own, the last config; a second update computed against the same
/// config is stale once the first is in, one whose signers the mod_policy does not
/// accept is refused, and a CONFIG envelope is never taken from a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_updates_get_blocks_of_their_own_once_per_sequence() {
    let cluster = Cluster::new(1, 10, 100);
    let orderer = cluster.start(0);
    wait_for_leader(&orderer).await;
    let admin = &cluster.orderer_admin;
    let before = transaction(&cluster.client, &cluster.peer, "before", 1);
    let update = batch_timeout_update(&cluster.genesis, "250ms", &[admin], &cluster.client);
    let stale = batch_timeout_update(&cluster.genesis, "300ms", &[admin], admin);
    let by_client = batch_timeout_update(&cluster.genesis, "1ms", &[&cluster.client], &cluster.client);
    let by_stranger = batch_timeout_update(&cluster.genesis, "1ms", &[admin], &cluster.stranger);
    let direct = config_envelope(&cluster.genesis, admin, 1);
    let answers = broadcast(&orderer, vec![before, update, stale, by_client, by_stranger, direct]).await;
    let statuses: Vec<Status> = answers.iter().map(status).collect();
    assert_eq!(
        statuses,
        [
            Status::Success,
            Status::Success,
            Status::BadRequest,
            Status::BadRequest,
            Status::Forbidden,
            Status::BadRequest
        ],
        "{answers:?}"
    );
    assert!(
        answers[2].info.contains(
            "attempt to set key [Value]  /Channel/Orderer/BatchTimeout to version 1, but key is at version 1"
        ),
        "{}",
        answers[2].info
    );
    assert!(
        answers[3].info.starts_with("error applying config update to existing channel 'ordering': error authorizing update: error validating DeltaSet: policy for [Value]  /Channel/Orderer/BatchTimeout not satisfied"),
        "{}",
        answers[3].info
    );
    assert!(
        answers[4].info.starts_with("config update for existing channel did not pass initial checks"),
        "{}",
        answers[4].info
    );
    assert_eq!(answers[5].info, "message is of type that cannot be processed directly");
    // An update to another element, computed against the genesis config too, arriving once
    // the first is in: the leader makes its CONFIG again against the config in force.
    let size = medfabric_proto::orderer::BatchSize {
        max_message_count: 7,
        absolute_max_bytes: 10 << 20,
        preferred_max_bytes: 2 << 20,
    };
    let independent =
        orderer_value_update(&cluster.genesis, "BatchSize", size.encode_to_vec(), &[admin], admin);
    let answers = broadcast(&orderer, vec![independent]).await;
    assert_eq!(status(&answers[0]), Status::Success, "{answers:?}");

    let (blocks, _) = deliver(&orderer.broadcast, &cluster.client, Seek::Oldest, Seek::Newest, false).await;
    let config_block = blocks.iter().position(|b| {
        block::envelopes(b).len() == 1
            && medfabric_types::Transaction::parse(&block::envelopes(b)[0])
                .is_ok_and(|t| t.header_type() == 1)
            && block::header(b).number > 0
    });
    let config_block = config_block.expect("a config block") as u64;
    assert_eq!(block::last_config_index(&blocks[config_block as usize]).expect("last config"), config_block);
    assert_eq!(blocks.len() as u64, config_block + 2, "the refused updates made no block");
    let applied =
        medfabric_types::ChannelResources::from_config_block(&blocks[config_block as usize]).expect("loads");
    assert_eq!((applied.config.sequence, applied.config.batch.timeout_ms), (1, 250));
    let last =
        medfabric_types::ChannelResources::from_config_block(blocks.last().expect("block")).expect("loads");
    assert_eq!(
        (last.config.sequence, last.config.batch.timeout_ms, last.config.batch.max_message_count),
        (2, 250, 7)
    );
    let mut verifier = LedgerVerifier::new(&cluster.genesis).expect("verifier");
    for b in &blocks {
        verifier.verify_block(b);
    }
    let summary = verifier.finish();
    assert!(summary.ok, "{:?}", summary.first_problem);
}
