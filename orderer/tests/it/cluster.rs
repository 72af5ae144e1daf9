//! Three consenters: identical chains, follower forwarding, leader loss.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use medfabric_proto::common::{Block, Envelope, Status};
use medfabric_types::block;
use medfabric_types::deliver::Seek;

use crate::support::{
    Cluster, OrdererProcess, broadcast, deliver, status, transaction, tx_id, tx_ids, wait_for_leader,
};

/// Every block of an orderer, waiting until it has at least `height` of them.
async fn chain(process: &OrdererProcess, cluster: &Cluster, height: u64) -> Vec<Block> {
    let (blocks, end) =
        deliver(&process.broadcast, &cluster.client, Seek::Oldest, Seek::Number(height - 1), true).await;
    assert_eq!(end, Status::Success);
    blocks
}

/// Same numbers, previous hashes, data hashes and envelopes at every height; an
/// unbroken hash chain.
fn assert_same_chain(chains: &[Vec<Block>]) {
    let reference = &chains[0];
    for (i, b) in reference.iter().enumerate() {
        assert_eq!(block::header(b).number, i as u64, "block numbers neither repeat nor skip");
        if i > 0 {
            let previous = block::header_hash(block::header(&reference[i - 1]));
            assert_eq!(block::header(b).previous_hash.as_ref(), previous.as_slice(), "hash chain at {i}");
        }
    }
    for other in &chains[1..] {
        assert_eq!(other.len(), reference.len());
        for (a, b) in reference.iter().zip(other) {
            assert_eq!(block::header(a), block::header(b), "identical headers");
            assert_eq!(block::envelopes(a), block::envelopes(b), "identical data");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_consenters_hold_identical_chains() {
    let cluster = Cluster::new(3, 10, 100);
    let nodes = cluster.start_all();
    for node in &nodes {
        wait_for_leader(node).await;
    }
    // Each client talks to a different consenter: followers forward to the leader.
    let mut sent = Vec::new();
    let mut streams = Vec::new();
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let envelopes: Vec<Envelope> = (0..20)
            .map(|i| transaction(&cluster.client, &cluster.peer, &format!("n{n}k{i}"), (n * 100 + i) as u64))
            .collect();
        sent.extend(envelopes.iter().map(tx_id));
        streams.push(envelopes.iter().map(tx_id).collect::<Vec<_>>());
        tasks.push(broadcast(node, envelopes));
    }
    for answers in futures_join(tasks).await {
        assert!(answers.iter().all(|a| status(a) == Status::Success), "{answers:?}");
    }
    let height = {
        let (blocks, _) =
            deliver(&nodes[0].broadcast, &cluster.client, Seek::Oldest, Seek::Newest, false).await;
        blocks.len() as u64
    };
    let mut chains = Vec::new();
    for node in &nodes {
        chains.push(chain(node, &cluster, height).await);
    }
    assert_same_chain(&chains);
    let mut ordered = tx_ids(&chains[0]);
    // Each stream's envelopes keep their order, whichever consenter the stream entered.
    for stream in &streams {
        let positions: Vec<usize> =
            stream.iter().filter_map(|id| ordered.iter().position(|o| o == id)).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "a stream's envelopes were reordered: {positions:?}"
        );
    }
    ordered.sort();
    sent.sort();
    assert_eq!(ordered, sent, "every acknowledged envelope exactly once");
}

async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in futures {
        out.push(f.await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_survives_the_loss_of_the_leader() {
    let cluster = Cluster::new(3, 10, 100);
    let mut nodes = cluster.start_all();
    for node in &nodes {
        wait_for_leader(node).await;
    }
    let leader_id = leader_of(&nodes[0]).expect("leader");
    let leader = nodes.iter().position(|n| n.consenter_id == leader_id).expect("leader process");
    let survivor = (leader + 1) % 3;

    // Clients keep broadcasting (retrying what is not acknowledged) while the leader dies.
    let mut acknowledged: BTreeMap<String, u64> = BTreeMap::new();
    let mut killed_at = None;
    let mut resumed_after = None;
    let started = Instant::now();
    let mut seq = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        seq += 1;
        let envelope = transaction(&cluster.client, &cluster.peer, &format!("k{seq}"), seq);
        let id = tx_id(&envelope);
        let target = if killed_at.is_some() { survivor } else { (seq % 3) as usize };
        let answers = broadcast(&nodes[target], vec![envelope.clone()]).await;
        if status(&answers[0]) == Status::Success {
            acknowledged.insert(id, seq);
            if let (Some(at), None) = (killed_at, resumed_after) {
                resumed_after = Some(Instant::now().duration_since(at));
            }
        } else {
            // Retry the same envelope until it is acknowledged (as a client would).
            let mut retried = false;
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let answers = broadcast(&nodes[survivor], vec![envelope.clone()]).await;
                if status(&answers[0]) == Status::Success {
                    acknowledged.insert(id.clone(), seq);
                    retried = true;
                    break;
                }
            }
            assert!(retried, "envelope {seq} never acknowledged");
            if let (Some(at), None) = (killed_at, resumed_after) {
                resumed_after = Some(Instant::now().duration_since(at));
            }
        }
        if seq == 20 {
            nodes[leader].kill();
            killed_at = Some(Instant::now());
        }
        if seq >= 40 {
            break;
        }
    }
    let resumed = resumed_after.expect("ordering resumed after the leader was killed");
    eprintln!("ordering resumed {:.2} s after the leader was killed", resumed.as_secs_f64());

    // The killed consenter restarts and catches up to the same chain.
    nodes[leader] = cluster.start(leader);
    let height = {
        let (blocks, _) =
            deliver(&nodes[survivor].broadcast, &cluster.client, Seek::Oldest, Seek::Newest, false).await;
        blocks.len() as u64
    };
    let mut chains = Vec::new();
    for node in &nodes {
        chains.push(chain(node, &cluster, height).await);
    }
    assert_same_chain(&chains);
    let ordered = tx_ids(&chains[0]);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &ordered {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for id in acknowledged.keys() {
        assert_eq!(counts.get(id.as_str()), Some(&1), "acknowledged envelope {id} is in exactly one block");
    }
    assert!(counts.values().all(|n| *n == 1), "no envelope is ordered twice");
}

fn leader_of(node: &OrdererProcess) -> Option<u64> {
    let (_, body) = node.health();
    serde_json::from_str::<serde_json::Value>(&body).ok()?["details"]["leader"].as_u64()
}
