//! A whole network as separate processes: 2 organizations × 1 peer and 3 Raft orderers,
//! started by `network up` with TLS. 1000 transactions go through the gateways while the
//! Raft leader and one peer are killed with SIGKILL and restarted. Afterwards every
//! transaction a client saw committed is still committed on both peers, the peers agree
//! on height and state hash, and the peer's block store passes `ledger verify`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use medfabric_network::up::{self, NetworkStatus};
use medfabric_sdk::{ClientError, Contract};
use tokio::sync::Mutex;

mod common;

const TOPOLOGY: &str = r#"
channel: crashchannel
orderer:
  name: OrdererOrg
  msp_id: OrdererMSP
  domain: orderer.crash.local
  batch: { max_message_count: 100, absolute_max_bytes: 10485760, preferred_max_bytes: 2097152, batch_timeout_ms: 100 }
  consenters:
    - { name: orderer0, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }
    - { name: orderer1, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }
    - { name: orderer2, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }
organizations:
  - name: Hospital
    msp_id: HospitalMSP
    domain: hospital.crash.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users: [ { name: writer, type: client } ]
  - name: Lab
    msp_id: LabMSP
    domain: lab.crash.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users: [ { name: writer, type: client } ]
chaincodes:
  - { name: kv, version: "1.0", sequence: 1, endorsement_policy: "OR('HospitalMSP.peer', 'LabMSP.peer')" }
"#;

const TRANSACTIONS: usize = 1000;
const WORKERS: usize = 24;
/// Kill an orderer and a peer once this many transactions are committed.
const KILL_AT: usize = 300;

fn contract(status: &NetworkStatus, org: &str) -> Contract {
    let user = status.users.iter().find(|u| u.org == org && u.name == "writer").expect("user");
    let peer = status.peer_of(org).expect("peer");
    medfabric_network::connect::gateway(user, peer).expect("gateway").network(&status.channel).contract("kv")
}

#[derive(Default)]
struct Record {
    /// Transactions a client saw committed VALID: tx id → key.
    committed: BTreeMap<String, String>,
    /// Transactions committed with another code (a blind write never should be).
    invalid: Vec<(String, i32)>,
    errors: usize,
}

async fn submit_until_committed(contract: &Contract, key: &str, record: &Mutex<Record>, deadline: Instant) {
    loop {
        let proposal = contract.proposal("put", &[key, "v"]);
        let tx_id = proposal.tx_id().to_owned();
        let outcome = async {
            let submitted = proposal.endorse().await?.submit().await?;
            submitted.status().await
        }
        .await;
        match outcome {
            Ok(status) if status.is_valid() => {
                record.lock().await.committed.insert(tx_id, key.to_owned());
                return;
            }
            Ok(status) => {
                record.lock().await.invalid.push((tx_id, status.code));
                return;
            }
            Err(ClientError::Gateway { .. } | ClientError::Other(_) | ClientError::Commit { .. }) => {
                record.lock().await.errors += 1;
                assert!(Instant::now() < deadline, "transaction for {key} not committed before the deadline");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn leader_orderer(status: &NetworkStatus) -> String {
    for node in status.orderers() {
        if let Some(ops) = &node.operations
            && let Ok((200, body)) = up::http_get(ops, "/healthz")
            && let Ok(health) = serde_json::from_str::<serde_json::Value>(&body)
            && let Some(leader) = health["details"]["leader"].as_u64()
        {
            // Consenter ids follow the topology order, from 1.
            return status.orderers().nth(leader as usize - 1).expect("leader node").name.clone();
        }
    }
    panic!("no orderer reports a Raft leader");
}

async fn wait_for_equal_heights(data: &Path, channel: &str, status: &NetworkStatus) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let heights: Vec<u64> = status
            .peers()
            .map(|p| {
                medfabric_cli::ledger::state(&p.data_dir.join("ledger"), channel).map_or(0, |s| s.height)
            })
            .collect();
        let orderer_height = status
            .orderers()
            .filter_map(|o| {
                let (_, body) = up::http_get(o.operations.as_deref()?, "/healthz").ok()?;
                serde_json::from_str::<serde_json::Value>(&body).ok()?["details"]["height"].as_u64()
            })
            .max()
            .unwrap_or(0);
        if heights.iter().all(|h| *h == orderer_height) {
            return heights;
        }
        assert!(
            Instant::now() < deadline,
            "peers at {heights:?}, orderers at {orderer_height} after 60 s ({})",
            data.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_and_recover_under_load() {
    let (network, _topology) = common::start_yaml(TOPOLOGY);
    let data = network.data.clone();
    let status = up::status(&data).expect("status");
    assert_eq!(status.orderers().count(), 3);
    assert_eq!(status.peers().count(), 2);
    assert!(
        status.nodes.iter().filter(|n| n.role != "ca").all(|n| n.tls_ca_file.is_some()),
        "TLS is on in generated networks"
    );
    let contracts = [contract(&status, "HospitalMSP"), contract(&status, "LabMSP")];
    let record = Arc::new(Mutex::new(Record::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let contract = contracts[worker % 2].clone();
        let (record, next, done) = (record.clone(), next.clone(), done.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TRANSACTIONS {
                    return;
                }
                submit_until_committed(&contract, &format!("k{i:04}"), &record, deadline).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    // Mid-run: SIGKILL the Raft leader and the Lab peer, then restart both.
    while done.load(Ordering::Relaxed) < KILL_AT {
        assert!(Instant::now() < deadline, "only {} committed", done.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leader = leader_orderer(&status);
    let lab_peer = status.peer_of("LabMSP").expect("lab peer").name.clone();
    for name in [&leader, &lab_peer] {
        let node = status.node(name).expect("node");
        assert!(
            up::stop_node(&data, &node.name, &node.config_file, true).expect("kill"),
            "{name} was running"
        );
    }
    let killed_at = done.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let restart = {
        let data = data.clone();
        let topology = data.join("network.yaml");
        let bin_dir = common::bin_dir();
        tokio::task::spawn_blocking(move || up::up_with_binaries(&topology, &data, &bin_dir))
    };
    restart.await.expect("join").expect("restart the killed nodes");

    while let Some(result) = workers.join_next().await {
        result.expect("worker");
    }
    let record = record.lock().await;
    assert!(record.invalid.is_empty(), "blind writes committed invalid: {:?}", record.invalid);
    assert_eq!(record.committed.len(), TRANSACTIONS, "every key was written by a committed transaction");
    assert!(killed_at < TRANSACTIONS, "the kill happened mid-run");

    // The peers catch up with the orderers and agree.
    let status = up::status(&data).expect("status");
    let heights = wait_for_equal_heights(&data, &status.channel, &status).await;
    let states: Vec<_> = status
        .peers()
        .map(|p| medfabric_cli::ledger::state(&p.data_dir.join("ledger"), &status.channel).expect("state"))
        .collect();
    assert_eq!(states[0], states[1], "peers disagree (heights {heights:?})");
    eprintln!(
        "killed {leader} and {lab_peer} after {killed_at} commits; {} client errors retried; peers at {heights:?}, state {}",
        record.errors, states[0].state_hash
    );

    // Every transaction a client saw committed is committed VALID on both peers.
    for peer in status.peers() {
        let store = common::open_live_ledger(&peer.data_dir.join("ledger"));
        let ledger = store.channel(&status.channel).expect("channel");
        for tx_id in record.committed.keys() {
            let (_, _, code) = ledger
                .transaction(tx_id)
                .expect("read")
                .unwrap_or_else(|| panic!("{}: committed transaction {tx_id} is missing", peer.name));
            assert_eq!(code, 0, "{}: {tx_id} is not VALID", peer.name);
        }
    }

    // The peer's block store verifies offline.
    let hospital = status.peer_of("HospitalMSP").expect("peer");
    let export = data.join("export");
    medfabric_cli::ledger::export(&hospital.data_dir.join("ledger"), &status.channel, &export)
        .expect("export");
    let genesis = data.join(format!("channel-artifacts/{}.block", status.channel));
    let summary = medfabric_cli::ledger::verify(&export, &genesis).expect("verify");
    assert!(summary.ok, "ledger verify: {summary:?}");
    drop(network);
}
