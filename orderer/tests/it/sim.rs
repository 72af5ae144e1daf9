//! Seeded simulation of a three-consenter cluster over an in-memory network that drops,
//! delays and partitions messages, with consenters crashing and restarting. Virtual
//! time (tokio's paused clock) makes a seed run in milliseconds.
//!
//! After every step: at each height every consenter that has a block holds the same
//! header and data as every other (and as any earlier observation), and each chain is
//! an unbroken hash chain. After healing: every consenter reaches the same height and
//! every acknowledged envelope is in exactly one block.
//!
//! `MEDFABRIC_SIM_SEEDS=N` runs N seeds (default 1000); `MEDFABRIC_SIM_SEED=S` replays
//! one. The fault schedule is a function of the seed; openraft's own election timers are
//! randomised, so a replay follows the same schedule, not necessarily the same
//! interleaving.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_orderer::raft::{self, BlockMachine, OrdererStore, Raft, Transport, TransportError};
use medfabric_proto::common::{Block, BlockHeader};
use medfabric_proto::medfabric::orderer::RaftMessage;
use medfabric_types::block;

use crate::support::{Cluster, Org};

const NODES: u64 = 3;
const STEPS: usize = 24;

/// splitmix64: the seed's stream of decisions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Default)]
struct Faults {
    /// Nodes cut off from the others (messages cross only within a side).
    isolated: BTreeSet<u64>,
    crashed: BTreeSet<u64>,
    drop_percent: u64,
    max_delay_ms: u64,
}

struct SimNet {
    rafts: Mutex<BTreeMap<u64, Raft>>,
    faults: Mutex<Faults>,
    rng: Mutex<Rng>,
}

impl Transport for SimNet {
    fn send(
        &self,
        from: u64,
        target: u64,
        _address: &str,
        message: RaftMessage,
        _timeout: Duration,
    ) -> Pin<Box<dyn std::future::Future<Output = Result<RaftMessage, TransportError>> + Send>> {
        let (blocked, dropped, delay) = {
            let faults = self.faults.lock().expect("faults");
            let mut rng = self.rng.lock().expect("rng");
            let blocked = faults.crashed.contains(&target)
                || faults.crashed.contains(&from)
                || faults.isolated.contains(&from) != faults.isolated.contains(&target);
            let dropped = rng.below(100) < faults.drop_percent;
            let delay = rng.below(faults.max_delay_ms + 1);
            (blocked, dropped, delay)
        };
        let target_raft = self.rafts.lock().expect("rafts").get(&target).cloned();
        Box::pin(async move {
            if blocked {
                return Err(TransportError::Unreachable(format!("{from} cannot reach {target}")));
            }
            tokio::time::sleep(Duration::from_millis(delay)).await;
            if dropped {
                return Err(TransportError::Failed("message dropped".into()));
            }
            let Some(raft) = target_raft else { return Err(TransportError::Unreachable("down".into())) };
            raft::handle_raft_message(&raft, message).await.map_err(TransportError::Failed)
        })
    }
}

struct Fixture {
    genesis: Block,
    signers: Vec<Arc<SigningIdentity>>,
}

fn fixture() -> Fixture {
    let cluster = Cluster::new(NODES as usize, 4, 50);
    let org = Org::new("OrdererMSP");
    // The genesis names the consenters; the simulation routes by id, not address.
    let signers = (1..=NODES).map(|i| Arc::new(org.issue(&format!("orderer{i}"), "orderer"))).collect();
    Fixture { genesis: cluster.genesis, signers }
}

struct Node {
    store: OrdererStore,
    machine: BlockMachine,
}

/// Headers observed at each height, across nodes and steps.
type Observed = BTreeMap<u64, (BlockHeader, Vec<Bytes>)>;

fn check_invariants(seed: u64, nodes: &BTreeMap<u64, Node>, observed: &mut Observed) {
    for (id, node) in nodes {
        let height = node.store.height();
        let mut previous: Option<[u8; 32]> = None;
        for number in 0..height {
            let b = node.store.block(number).expect("read").unwrap_or_else(|| {
                panic!("seed {seed}: node {id} misses block {number} below its height {height}")
            });
            let header = block::header(&b).clone();
            assert_eq!(header.number, number, "seed {seed}: node {id} block numbering");
            if let Some(hash) = previous {
                assert_eq!(
                    header.previous_hash.as_ref(),
                    hash.as_slice(),
                    "seed {seed}: node {id} hash chain at {number}"
                );
            }
            previous = Some(block::header_hash(&header));
            let data = block::envelopes(&b).to_vec();
            match observed.get(&number) {
                Some((h, d)) => {
                    assert_eq!(
                        (h, d),
                        (&header, &data),
                        "seed {seed}: node {id} disagrees at height {number}"
                    );
                }
                None => {
                    observed.insert(number, (header, data));
                }
            }
        }
    }
}

async fn start_node(id: u64, node: &Node, net: &Arc<SimNet>) -> Raft {
    let members: BTreeMap<u64, String> = (1..=NODES).map(|i| (i, format!("sim-{i}"))).collect();
    let transport: Arc<dyn Transport> = net.clone();
    raft::start(id, members, node.store.clone(), node.machine.clone(), transport).await.expect("raft starts")
}

/// Runs one seed; returns (acknowledged envelopes, final height, crashes).
async fn run_seed(seed: u64, fixture: &Fixture, scratch: &std::path::Path) -> (usize, u64, usize) {
    let dir = tempfile::tempdir_in(scratch).expect("tempdir");
    let net =
        Arc::new(SimNet { rafts: Mutex::default(), faults: Mutex::default(), rng: Mutex::new(Rng(seed)) });
    let mut nodes = BTreeMap::new();
    for id in 1..=NODES {
        let store = OrdererStore::open(&dir.path().join(format!("n{id}")), &fixture.genesis).expect("store");
        let machine = BlockMachine::new(
            store.clone(),
            fixture.signers[(id - 1) as usize].clone(),
            Arc::new(|_: &Block| {}),
        );
        nodes.insert(id, Node { store, machine });
    }
    for (id, node) in &nodes {
        let raft = start_node(*id, node, &net).await;
        net.rafts.lock().expect("rafts").insert(*id, raft);
    }
    let mut rng = Rng(seed ^ 0xA5A5_A5A5);
    let mut acknowledged: BTreeSet<Bytes> = BTreeSet::new();
    let mut observed = Observed::new();
    let mut serial = 0u64;
    let mut crashes = 0;
    for _step in 0..STEPS {
        match rng.below(10) {
            0..=4 => {
                // A client submits a batch to whichever node leads now.
                let leader = {
                    let rafts = net.rafts.lock().expect("rafts");
                    rafts.values().find_map(|r| match raft::status(r) {
                        (_, _, true) => Some(r.clone()),
                        _ => None,
                    })
                };
                if let Some(leader) = leader {
                    let batch: Vec<Bytes> = (0..1 + rng.below(3))
                        .map(|_| {
                            serial += 1;
                            Bytes::from(format!("seed {seed} envelope {serial}"))
                        })
                        .collect();
                    let outcome =
                        tokio::time::timeout(Duration::from_secs(3), raft::order(&leader, &batch)).await;
                    if let Ok(Ok(_)) = outcome {
                        acknowledged.extend(batch);
                    }
                }
            }
            5 => {
                let victim = 1 + rng.below(NODES);
                let mut faults = net.faults.lock().expect("faults");
                faults.isolated = BTreeSet::from([victim]);
            }
            6 => {
                let mut faults = net.faults.lock().expect("faults");
                faults.isolated.clear();
                faults.drop_percent = rng.below(30);
                faults.max_delay_ms = rng.below(300);
            }
            7 => {
                // Crash one node (at most one down at a time: a quorum stays possible).
                let down = net.faults.lock().expect("faults").crashed.len();
                if down == 0 {
                    let victim = 1 + rng.below(NODES);
                    net.faults.lock().expect("faults").crashed.insert(victim);
                    crashes += 1;
                    let raft = net.rafts.lock().expect("rafts").remove(&victim);
                    if let Some(raft) = raft {
                        raft::stop(&raft).await;
                    }
                }
            }
            _ => {
                // Restart crashed nodes from their storage.
                let crashed: Vec<u64> = net.faults.lock().expect("faults").crashed.iter().copied().collect();
                for id in crashed {
                    let raft = start_node(id, &nodes[&id], &net).await;
                    net.rafts.lock().expect("rafts").insert(id, raft);
                    net.faults.lock().expect("faults").crashed.remove(&id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100 + rng.below(900))).await;
        check_invariants(seed, &nodes, &mut observed);
    }

    // Heal: everyone up and connected, no loss; then every node converges.
    {
        let crashed: Vec<u64> = net.faults.lock().expect("faults").crashed.iter().copied().collect();
        for id in crashed {
            let raft = start_node(id, &nodes[&id], &net).await;
            net.rafts.lock().expect("rafts").insert(id, raft);
        }
        *net.faults.lock().expect("faults") = Faults::default();
    }
    // A final write through the healed cluster commits everything before it.
    let mut settled = false;
    for _ in 0..60 {
        let leader = {
            let rafts = net.rafts.lock().expect("rafts");
            rafts.values().find_map(|r| raft::status(r).2.then(|| r.clone()))
        };
        if let Some(leader) = leader {
            serial += 1;
            let last = Bytes::from(format!("seed {seed} final {serial}"));
            if let Ok(Ok(_)) = tokio::time::timeout(
                Duration::from_secs(3),
                raft::order(&leader, std::slice::from_ref(&last)),
            )
            .await
            {
                acknowledged.insert(last);
                settled = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(settled, "seed {seed}: the healed cluster does not order");
    let target = nodes.values().map(|n| n.store.height()).max().unwrap_or(0);
    for _ in 0..120 {
        if nodes.values().all(|n| n.store.height() == target) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    check_invariants(seed, &nodes, &mut observed);
    for (id, node) in &nodes {
        assert_eq!(node.store.height(), target, "seed {seed}: node {id} did not catch up");
    }
    let mut counts: BTreeMap<Bytes, usize> = BTreeMap::new();
    for (_, (_, data)) in observed.iter().skip(1) {
        for envelope in data {
            *counts.entry(envelope.clone()).or_default() += 1;
        }
    }
    for envelope in &acknowledged {
        assert_eq!(
            counts.get(envelope),
            Some(&1),
            "seed {seed}: acknowledged {envelope:?} not in exactly one block"
        );
    }
    assert!(counts.values().all(|n| *n == 1), "seed {seed}: an envelope was ordered twice");
    for raft in net.rafts.lock().expect("rafts").values() {
        let raft = raft.clone();
        tokio::spawn(async move { raft::stop(&raft).await });
    }
    (acknowledged.len(), target, crashes)
}

#[test]
fn seeded_cluster_simulation_keeps_one_chain() {
    let fixture = fixture();
    let seeds: Vec<u64> = match std::env::var("MEDFABRIC_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => {
            let n = std::env::var("MEDFABRIC_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000u64);
            (1..=n).collect()
        }
    };
    // RAM-backed scratch space when the machine has it: the simulation fsyncs a lot.
    let scratch = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let (mut acked, mut blocks, mut crashes) = (0, 0, 0);
    let count = seeds.len();
    for seed in seeds {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(run_seed(seed, &fixture, &scratch))
        }));
        match outcome {
            Ok((a, h, c)) => {
                acked += a;
                blocks += h;
                crashes += c;
            }
            Err(panic) => {
                eprintln!("simulation failed for seed {seed}; replay with MEDFABRIC_SIM_SEED={seed}");
                std::panic::resume_unwind(panic);
            }
        }
    }
    eprintln!("{count} seeds: {acked} acknowledged envelopes, {blocks} blocks, {crashes} consenter crashes");
    assert!(acked > count, "the simulation ordered almost nothing: {acked} envelopes over {count} seeds");
}
