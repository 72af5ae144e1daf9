//! Private data collections on a whole network of processes: three organizations
//! (Hospital, Lab, Insurer), one peer each, one orderer, TLS on. The collections
//! `ab` and `short` (block-to-live 2) have members Hospital and Lab only.
//!
//! - A private write is readable on both members' peers; the Insurer's peer, the
//!   orderer and every block hold no byte of it (a scan of all their files), yet the
//!   Insurer validates the transaction through hashes and agrees on the state hash.
//! - A concurrent update makes a private read-modify-write MVCC_READ_CONFLICT.
//! - Block-to-live: the value is gone (readable nowhere, in no file) after 2 blocks.
//! - Purge: every version of a key leaves every member peer's files; the blocks keep
//!   the hashed evidence (`is_purge`, and the value hash of the earlier write).
//! - A member peer that was down during a private write gets the data after restart.
//! - Peer-to-peer messages are bound to the sender's TLS certificate: a replay over a
//!   connection with another certificate is refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use medfabric_network::up::{self, NetworkStatus};
use medfabric_proto::kvrwset::HashedRwSet;
use medfabric_sdk::{Contract, Proposal};
use prost::Message;
use sha2::{Digest, Sha256};

mod common;

const TOPOLOGY: &str = r#"
channel: pvtchannel
orderer:
  name: OrdererOrg
  msp_id: OrdererMSP
  domain: orderer.pvt.local
  batch: { max_message_count: 100, absolute_max_bytes: 10485760, preferred_max_bytes: 2097152, batch_timeout_ms: 100 }
  consenters:
    - { name: orderer0, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }
organizations:
  - name: Hospital
    msp_id: HospitalMSP
    domain: hospital.pvt.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users: [ { name: user, type: client } ]
  - name: Insurer
    msp_id: InsurerMSP
    domain: insurer.pvt.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users: [ { name: user, type: client } ]
  - name: Lab
    msp_id: LabMSP
    domain: lab.pvt.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users: [ { name: user, type: client } ]
chaincodes:
  - name: kv
    version: "1.0"
    sequence: 1
    endorsement_policy: "OR('HospitalMSP.peer', 'LabMSP.peer', 'InsurerMSP.peer')"
    collections:
      - { name: ab, policy: "OR('HospitalMSP.member', 'LabMSP.member')", required_peer_count: 0, maximum_peer_count: 2, member_only_read: true, member_only_write: true }
      - { name: ab2, policy: "OR('HospitalMSP.member', 'LabMSP.member')", required_peer_count: 1, maximum_peer_count: 2, member_only_read: true, member_only_write: true, endorsement_policy: "OutOf(2, 'HospitalMSP.peer', 'LabMSP.peer', 'InsurerMSP.peer')" }
      - { name: short, policy: "OR('HospitalMSP.member', 'LabMSP.member')", required_peer_count: 0, maximum_peer_count: 2, block_to_live: 2, member_only_read: true, member_only_write: true }
"#;

fn contract(status: &NetworkStatus, org: &str) -> Contract {
    let user = status.users.iter().find(|u| u.org == org && u.name == "user").expect("user");
    let peer = status.peer_of(org).expect("peer");
    medfabric_network::connect::gateway(user, peer).expect("gateway").network(&status.channel).contract("kv")
}

/// A value no other test or file will contain by chance.
fn secret(label: &str) -> String {
    let nonce: u64 =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as u64;
    format!("PHI-{label}-{nonce:016x}-{}", std::process::id())
}

/// A proposal of `function(args)` carrying `value` in the transient map, signed by the
/// contract's gateway identity, optionally for exactly `orgs`.
fn private_proposal(
    contract: &Contract,
    function: &str,
    args: &[&str],
    value: &str,
    orgs: &[&str],
) -> Proposal {
    contract
        .proposal_builder(function, args)
        .transient("value", value.as_bytes().to_vec())
        .endorsing_organizations(orgs)
        .signed(contract.network().gateway().signer())
}

/// Submits `function(args)` with `value` in the transient map; returns the block.
async fn put_private(contract: &Contract, function: &str, args: &[&str], value: &str) -> u64 {
    let proposal = private_proposal(contract, function, args, value, &[]);
    let status = proposal
        .endorse()
        .await
        .expect("endorse")
        .submit()
        .await
        .expect("submit")
        .status()
        .await
        .expect("status");
    assert!(status.is_valid(), "{function} {args:?}: code {}", status.code);
    status.block_number
}

async fn submit(contract: &Contract, function: &str, args: &[&str]) -> u64 {
    let proposal = contract.proposal(function, args);
    let status = proposal
        .endorse()
        .await
        .expect("endorse")
        .submit()
        .await
        .expect("submit")
        .status()
        .await
        .expect("status");
    assert!(status.is_valid(), "{function} {args:?}: code {}", status.code);
    status.block_number
}

async fn read(contract: &Contract, function: &str, args: &[&str]) -> Result<String, String> {
    contract
        .evaluate(function, args)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| e.to_string())
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Waits until no file under any of `dirs` holds `needle` (compaction runs after the
/// commit).
async fn wait_until_gone(dirs: &[&Path], needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<String> = dirs.iter().flat_map(|d| files_containing(d, needle.as_bytes())).collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{needle} still on disk after 20 s: {left:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The MSP and TLS folders of `org`'s peer.
fn node_material(status: &NetworkStatus, org: &str) -> (PathBuf, PathBuf) {
    let peer = status.peer_of(org).expect("peer");
    let domain = peer.name.split_once('.').expect("a domain in the node name").1;
    let dir =
        status.data_dir.join("organizations/peerOrganizations").join(domain).join("peers").join(&peer.name);
    (dir.join("msp"), dir.join("tls"))
}

/// Pushes a private write set of collection `ab`, signed with the identity in
/// `sender_msp` and bound to the certificate in `sender_tls`, to the Lab's peer over a
/// connection presenting `connection_cert`.
async fn push_to_lab(
    status: &NetworkStatus,
    sender_msp: &Path,
    sender_tls: &Path,
    connection_cert: (&Path, &Path),
) -> Result<(), tonic::Status> {
    use medfabric_proto::medfabric::pvt::{
        PushPayload, SignedMessage, private_data_client::PrivateDataClient,
    };
    use medfabric_proto::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet, TxPvtReadWriteSet};
    let signer = medfabric_sdk::Gateway::identity(sender_msp, "HospitalMSP").expect("peer identity");
    let bound_cert = std::fs::read(sender_tls.join("server.crt")).expect("TLS certificate");
    let der = medfabric_msp::pem_to_der_all(&bound_cert).expect("pem").remove(0).1;
    let writes = medfabric_proto::kvrwset::KvrwSet {
        writes: vec![medfabric_proto::kvrwset::KvWrite {
            key: "bound".into(),
            is_delete: false,
            value: "v".into(),
        }],
        ..Default::default()
    };
    let rwset = TxPvtReadWriteSet {
        ns_pvt_rwset: vec![NsPvtReadWriteSet {
            namespace: "kv".into(),
            collection_pvt_rwset: vec![CollectionPvtReadWriteSet {
                collection_name: "ab".into(),
                rwset: writes.encode_to_vec().into(),
            }],
        }],
        data_model: 0,
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
    let payload = PushPayload {
        channel_id: status.channel.clone(),
        tx_id: format!("bound-{}", now.as_nanos()),
        pvt_rwset: rwset.encode_to_vec().into(),
        timestamp: Some(prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: 0 }),
        tls_cert_hash: Sha256::digest(&der).to_vec().into(),
    }
    .encode_to_vec();
    let message = SignedMessage {
        signature: signer.sign(&payload).into(),
        identity: signer.serialized().clone(),
        payload: payload.into(),
    };
    let lab = status.peer_of("LabMSP").expect("lab peer");
    let tls = medfabric_config::tls::ClientTls::from_files(
        std::slice::from_ref(lab.tls_ca_file.as_ref().expect("tls")),
        Some(connection_cert),
    )
    .expect("tls");
    let channel = medfabric_config::tls::lazy_channel(&lab.address, Some(&tls)).expect("channel");
    PrivateDataClient::new(channel).push(message).await.map(|_| ())
}

fn peer_dir(status: &NetworkStatus, org: &str) -> std::path::PathBuf {
    status.peer_of(org).expect("peer").data_dir.clone()
}

/// The hashed write sets of collection `collection` in block `number` of a peer.
fn hashed_writes(
    status: &NetworkStatus,
    number: u64,
    collection: &str,
) -> Vec<medfabric_proto::kvrwset::KvWriteHash> {
    let store = common::open_live_ledger(&peer_dir(status, "HospitalMSP").join("ledger"));
    let block = store.channel(&status.channel).expect("channel").block(number).expect("read").expect("block");
    let mut out = Vec::new();
    for envelope in medfabric_types::block::envelopes(&block) {
        let tx = medfabric_types::Transaction::parse(envelope).expect("tx");
        let rwset = tx.endorser().expect("endorser tx").rwset().expect("rwset");
        for ns in rwset.ns_rwset {
            for set in ns.collection_hashed_rwset.iter().filter(|c| c.collection_name == collection) {
                out.extend(HashedRwSet::decode(set.hashed_rwset.as_ref()).expect("hashed").hashed_writes);
            }
        }
    }
    out
}

/// The lab peer's value of private key `key` of `ab`, once it has it.
async fn lab_value(status: &NetworkStatus, key: &str, within: Duration) -> String {
    let lab = contract(status, "LabMSP");
    let deadline = Instant::now() + within;
    loop {
        match read(&lab, "getpvt", &["ab", key]).await {
            Ok(value) => return value,
            Err(e) => assert!(Instant::now() < deadline, "the lab peer never got {key}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The MSP ids of the endorsers of the (one) transaction in block `number`, sorted.
fn endorsing_orgs(status: &NetworkStatus, number: u64) -> Vec<String> {
    let store = common::open_live_ledger(&peer_dir(status, "HospitalMSP").join("ledger"));
    let block = store.channel(&status.channel).expect("channel").block(number).expect("read").expect("block");
    let envelopes = medfabric_types::block::envelopes(&block);
    assert_eq!(envelopes.len(), 1, "block {number} holds one transaction");
    let tx = medfabric_types::Transaction::parse(&envelopes[0]).expect("tx");
    let mut orgs: Vec<String> = tx
        .endorser()
        .expect("endorser tx")
        .endorsements
        .iter()
        .map(|e| {
            medfabric_proto::msp::SerializedIdentity::decode(e.endorser.as_ref()).expect("identity").mspid
        })
        .collect();
    orgs.sort();
    orgs
}

async fn state_hashes_agree(status: &NetworkStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states: Vec<_> = status
            .peers()
            .map(|p| {
                medfabric_cli::ledger::state(&p.data_dir.join("ledger"), &status.channel).expect("state")
            })
            .map(|s| (s.height, s.state_hash))
            .collect();
        if states.iter().all(|s| *s == states[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "peers disagree: {states:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_data_stays_with_members() {
    let (network, _topology) = common::start_yaml(TOPOLOGY);
    let data = network.data.clone();
    let status = up::status(&data).expect("status");
    let hospital = contract(&status, "HospitalMSP");
    let lab = contract(&status, "LabMSP");
    let insurer = contract(&status, "InsurerMSP");
    let (hospital_dir, lab_dir, insurer_dir) =
        (peer_dir(&status, "HospitalMSP"), peer_dir(&status, "LabMSP"), peer_dir(&status, "InsurerMSP"));
    let orderer_dir = status.orderers().next().expect("orderer").data_dir.clone();

    // ---- members read it; the non-member and the blocks hold only hashes ---------------
    let phi = secret("record");
    let block = put_private(&hospital, "putpvt", &["ab", "k1"], &phi).await;
    assert_eq!(read(&hospital, "getpvt", &["ab", "k1"]).await, Ok(phi.clone()));
    assert_eq!(read(&lab, "getpvt", &["ab", "k1"]).await, Ok(phi.clone()), "the other member's peer has it");
    let denied = read(&insurer, "getpvt", &["ab", "k1"]).await.expect_err("a non-member may not read");
    assert!(denied.contains("does not have read access permission"), "{denied}");
    // The non-member peer knows the hash (it validated the transaction through it).
    let value_hash = hex::encode(Sha256::digest(phi.as_bytes()));
    assert_eq!(read(&insurer, "hashpvt", &["ab", "k1"]).await, Ok(value_hash.clone()));
    let written = hashed_writes(&status, block, "ab");
    assert_eq!(hex::encode(&written[0].value_hash), value_hash, "the block carries the value hash");
    state_hashes_agree(&status).await;
    assert!(
        !files_containing(&hospital_dir, phi.as_bytes()).is_empty(),
        "control: the member's files hold it"
    );
    assert!(!files_containing(&lab_dir, phi.as_bytes()).is_empty(), "control: the member's files hold it");
    assert_eq!(files_containing(&insurer_dir, phi.as_bytes()), Vec::<String>::new(), "non-member peer");
    assert_eq!(
        files_containing(&orderer_dir, phi.as_bytes()),
        Vec::<String>::new(),
        "orderer and its blocks"
    );
    // A non-member client may not write a member-only collection either.
    let refused = private_proposal(&insurer, "putpvt", &["ab", "k2"], "x", &[])
        .endorse()
        .await
        .expect_err("write refused");
    assert!(refused.to_string().contains("does not have write access permission"), "{refused}");

    // ---- peer-to-peer messages are bound to the sender's TLS certificate ----------------
    // A push signed by the Hospital peer and bound to its TLS certificate is accepted
    // over a connection presenting that certificate, and refused over one presenting
    // another (a replay by whoever else holds the message).
    let (hospital_msp, hospital_tls) = node_material(&status, "HospitalMSP");
    let user = status.users.iter().find(|u| u.org == "InsurerMSP").expect("insurer user");
    let replayed =
        push_to_lab(&status, &hospital_msp, &hospital_tls, (&user.tls_cert_file, &user.tls_key_file))
            .await
            .expect_err("replayed over another TLS certificate");
    assert_eq!(replayed.code(), tonic::Code::PermissionDenied, "{replayed:?}");
    assert!(replayed.message().contains("bound to another TLS certificate"), "{}", replayed.message());
    let own = (hospital_tls.join("server.crt"), hospital_tls.join("server.key"));
    push_to_lab(&status, &hospital_msp, &hospital_tls, (&own.0, &own.1))
        .await
        .expect("the sender's own connection");

    // ---- the collection's own policy: planned with members only, enforced at commit ----
    // Two endorsements are needed; with transient data the gateway asks the other member
    // (Lab), never the Insurer, although the Insurer's peer would satisfy the policy too
    // (and comes first in the gateway's list: the topology names it before the Lab).
    let two = secret("two-orgs");
    let block = put_private(&hospital, "putpvt", &["ab2", "k"], &two).await;
    assert_eq!(read(&lab, "getpvt", &["ab2", "k"]).await, Ok(two.clone()));
    assert_eq!(
        endorsing_orgs(&status, block),
        ["HospitalMSP", "LabMSP"],
        "no non-member got the transient data"
    );
    assert_eq!(
        files_containing(&insurer_dir, two.as_bytes()),
        Vec::<String>::new(),
        "transient data stayed with members"
    );
    let alone = private_proposal(&hospital, "putpvt", &["ab2", "k"], "one endorsement", &["HospitalMSP"])
        .endorse()
        .await
        .expect("endorse on the Hospital peer only");
    let verdict = alone.submit().await.expect("submit").status().await.expect("status");
    assert_eq!(verdict.code, 10, "ENDORSEMENT_POLICY_FAILURE: the collection policy needs two organizations");
    assert_eq!(
        read(&hospital, "getpvt", &["ab2", "k"]).await,
        Ok(two.clone()),
        "the invalid write changed nothing"
    );

    // ---- MVCC on hashed reads: a concurrent update invalidates a read-modify-write -----
    submit(&hospital, "incpvt", &["ab", "counter"]).await;
    let first = hospital.proposal("incpvt", &["ab", "counter"]).endorse().await.expect("endorse first");
    let second = lab.proposal("incpvt", &["ab", "counter"]).endorse().await.expect("endorse second");
    let first = first.submit().await.expect("submit").status().await.expect("status");
    let second = second.submit().await.expect("submit").status().await.expect("status");
    let mut codes = vec![first.code, second.code];
    codes.sort();
    assert_eq!(codes, vec![0, 11], "one VALID, one MVCC_READ_CONFLICT");
    assert_eq!(read(&lab, "getpvt", &["ab", "counter"]).await, Ok("2".into()));

    // ---- block-to-live: gone two blocks after the block that wrote it ------------------
    let short = secret("short-lived");
    let written_at = put_private(&hospital, "putpvt", &["short", "kb"], &short).await;
    assert_eq!(read(&lab, "getpvt", &["short", "kb"]).await, Ok(short.clone()));
    let mut height = written_at;
    while height < written_at + 3 {
        height = submit(&hospital, "put", &["tick", &height.to_string()]).await;
        if height < written_at + 3 {
            assert_eq!(
                read(&hospital, "getpvt", &["short", "kb"]).await,
                Ok(short.clone()),
                "alive at {height}"
            );
        }
    }
    for reader in [&hospital, &lab] {
        let gone = read(reader, "getpvt", &["short", "kb"]).await.expect_err("expired");
        assert!(gone.contains("not found: kb"), "{gone}");
    }
    let gone = read(&insurer, "hashpvt", &["short", "kb"]).await.expect_err("its hash expired too");
    assert!(gone.contains("not found: kb"), "{gone}");
    wait_until_gone(&[&hospital_dir, &lab_dir], &short).await;
    state_hashes_agree(&status).await;

    // ---- purge: every version leaves every member peer; blocks keep the evidence -------
    let (v1, v2) = (secret("v1"), secret("v2"));
    let first_write = put_private(&hospital, "putpvt", &["ab", "kp"], &v1).await;
    put_private(&lab, "putpvt", &["ab", "kp"], &v2).await;
    assert_eq!(read(&hospital, "getpvt", &["ab", "kp"]).await, Ok(v2.clone()));
    let purged_at = submit(&lab, "purgepvt", &["ab", "kp"]).await;
    for reader in [&hospital, &lab] {
        let gone = read(reader, "getpvt", &["ab", "kp"]).await.expect_err("purged");
        assert!(gone.contains("not found: kp"), "{gone}");
    }
    wait_until_gone(&[&hospital_dir, &lab_dir], &v1).await;
    wait_until_gone(&[&hospital_dir, &lab_dir], &v2).await;
    let key_hash = Sha256::digest(b"kp").to_vec();
    let purge = hashed_writes(&status, purged_at, "ab");
    assert!(
        purge.iter().any(|w| w.key_hash.as_ref() == key_hash && w.is_purge),
        "the block records the purge"
    );
    let earlier = hashed_writes(&status, first_write, "ab");
    assert!(
        earlier.iter().any(|w| w.key_hash.as_ref() == key_hash
            && w.value_hash.as_ref() == Sha256::digest(v1.as_bytes()).as_slice()),
        "the earlier block still proves the value existed"
    );
    state_hashes_agree(&status).await;

    // ---- a member peer down during the write gets the data after its restart: pulled
    // at commit from the writer, or, with the writer down then, by reconciliation -----
    let lab_node = status.peer_of("LabMSP").expect("lab peer").clone();
    let hospital_node = status.peer_of("HospitalMSP").expect("hospital peer").clone();
    let kill = |node: &up::NodeStatus| {
        assert!(
            up::stop_node(&data, &node.name, &node.config_file, true).expect("kill"),
            "{} was running",
            node.name
        );
    };
    kill(&lab_node);
    // A collection that must reach one other peer cannot be written while none is up.
    let refused = private_proposal(&hospital, "putpvt", &["ab2", "k"], "unreachable", &[])
        .endorse()
        .await
        .expect_err("required_peer_count 1 with the lab peer down");
    assert!(refused.to_string().contains("failed to distribute private data"), "{refused}");
    let late = secret("late");
    put_private(&hospital, "putpvt", &["ab", "kr"], &late).await;
    assert!(files_containing(&lab_dir, late.as_bytes()).is_empty(), "the lab peer was down");
    let bin_dir = common::bin_dir();
    up::start_node(&data, &lab_node.name, &bin_dir).expect("restart the lab peer");
    assert_eq!(
        lab_value(&status, "kr", Duration::from_secs(60)).await,
        late,
        "pulled from the hospital peer at commit"
    );

    kill(&lab_node);
    let later = secret("later");
    put_private(&hospital, "putpvt", &["ab", "kr2"], &later).await;
    kill(&hospital_node);
    up::start_node(&data, &lab_node.name, &bin_dir).expect("restart the lab peer");
    // The lab peer commits the block without the data (no member peer is up)...
    let lab = contract(&status, "LabMSP");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match read(&lab, "getpvt", &["ab", "kr2"]).await {
            Err(e) if e.contains("private data matching public hash version is not available") => break,
            other => assert!(Instant::now() < deadline, "lab peer never committed the block: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // ...and reconciles it once the hospital peer is back.
    up::start_node(&data, &hospital_node.name, &bin_dir).expect("restart the hospital peer");
    assert_eq!(lab_value(&status, "kr2", Duration::from_secs(60)).await, later, "reconciled");
    state_hashes_agree(&status).await;
    drop(network);
}
