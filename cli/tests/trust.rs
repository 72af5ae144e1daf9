//! The trust model played as an attacker inside the consortium would, on a network of
//! processes (TLS on, five organizations): each attack is refused and changes nothing.
//!
//! - ResearchMSP's CA issued one of its users `role=payer`: its deposit is refused, also
//!   with a forged `medfabric.roles` decoration in the proposal granting it the role;
//! - LabMSP's CA issued itself a `role=regulator` user: the accounting of disclosures is
//!   refused to it;
//! - a provider spends its organization's account: refused (admins only);
//! - CommitStatus for a tx id that never commits: the gateway permit comes back when the
//!   client goes away and after the peer's bound.

use std::time::Duration;

use medfabric_bench::medical_demo::actor;
use medfabric_network::up::{self, NetworkStatus};
use medfabric_sdk::medical::Medical;
use serde_json::json;

mod common;

const TOPOLOGY: &str = r#"
channel: trustchannel
orderer:
  name: OrdererOrg
  msp_id: OrdererMSP
  domain: orderer.trust.local
  batch: { max_message_count: 100, absolute_max_bytes: 10485760, preferred_max_bytes: 2097152, batch_timeout_ms: 100 }
  consenters:
    - { name: orderer0, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }
organizations:
  - name: Hospital
    msp_id: HospitalMSP
    domain: hospital.trust.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: drgrey, type: client, attrs: { role: provider } }
      - { name: patient1, type: client, attrs: { role: patient } }
  - name: Lab
    msp_id: LabMSP
    domain: lab.trust.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: tech1, type: client, attrs: { role: provider } }
      # Issued by the Lab's own CA: the consortium made no Lab identity a regulator.
      - { name: labregulator, type: client, attrs: { role: regulator } }
  - name: Insurer
    msp_id: InsurerMSP
    domain: insurer.trust.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: claims1, type: client, attrs: { role: payer } }
  - name: Research
    msp_id: ResearchMSP
    domain: research.trust.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: scientist1, type: client, attrs: { role: researcher } }
      # Issued by the Research site's own CA: it is no payer of the consortium.
      - { name: researchpayer, type: client, attrs: { role: payer } }
  - name: Regulator
    msp_id: RegulatorMSP
    domain: regulator.trust.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: inspector1, type: client, attrs: { role: regulator } }
roles:
  patient: [HospitalMSP]
  provider: [HospitalMSP, LabMSP]
  researcher: [ResearchMSP]
  payer: [InsurerMSP]
  regulator: [RegulatorMSP]
chaincodes:
  - name: medical
    version: "1.0"
    sequence: 1
    endorsement_policy: "OutOf(2, 'HospitalMSP.peer', 'LabMSP.peer', 'InsurerMSP.peer', 'ResearchMSP.peer', 'RegulatorMSP.peer')"
    collections:
      - { name: audit_HospitalMSP, policy: "OR('HospitalMSP.member', 'RegulatorMSP.member')", required_peer_count: 0, maximum_peer_count: 2, member_only_read: true, member_only_write: false, endorsement_policy: "OR('HospitalMSP.peer')" }
"#;

/// Restarts `org`'s peer with its node config's `gateway` section changed.
fn restart_peer_with(
    network: &common::Network,
    status: &NetworkStatus,
    org: &str,
    change: impl FnOnce(&mut medfabric_config::peer::GatewaySection),
) {
    let peer = status.peer_of(org).expect("peer");
    let config = peer.config_file.clone();
    assert!(up::stop_node(&network.data, &peer.name, &config, false).expect("stop"), "stopped");
    let mut node = medfabric_config::PeerConfig::load(&config).expect("node config");
    change(&mut node.gateway);
    std::fs::write(&config, medfabric_config::to_yaml(&node).expect("yaml")).expect("node config");
    up::start_node(&network.data, &peer.name, &common::bin_dir()).expect("start");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while up::status(&network.data).expect("status").peer_of(org).expect("peer").health != "OK" {
        assert!(std::time::Instant::now() < deadline, "{} not healthy again", peer.name);
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn balance(who: &Medical, account: &str) -> u64 {
    who.balance(account).await.unwrap_or_else(|e| panic!("balance of {account}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn members_cannot_act_beyond_their_grants() {
    let (network, _topology) = common::start_yaml(TOPOLOGY);
    let status = up::status(&network.data).expect("status");
    let scientist = actor(&status, "scientist1").expect("scientist");
    let fake_payer = actor(&status, "researchpayer").expect("research payer");
    let fake_regulator = actor(&status, "labregulator").expect("lab regulator");
    let doctor = actor(&status, "drgrey").expect("doctor");
    let insurer = actor(&status, "claims1").expect("insurer");
    let regulator = actor(&status, "inspector1").expect("regulator");
    let researcher_account = scientist.actor().to_owned();

    // ---- minting: a self-issued payer role mints nothing --------------------------------
    let refused = fake_payer.deposit(&researcher_account, 1_000_000_000).await.expect_err("refused");
    assert!(refused.to_string().contains("has not granted role payer to ResearchMSP"), "{refused}");
    // …nor with the role grants forged in the proposal's decorations.
    let forged = serde_json::to_vec(&json!({"payer": ["ResearchMSP"]})).expect("json");
    let args = [researcher_account.clone(), "1000000000".to_owned()];
    let proposal = fake_payer
        .contract()
        .proposal_builder("deposit", &args)
        .decoration("medfabric.roles", forged)
        .signed(fake_payer.contract().network().gateway().signer());
    let refused = proposal.endorse().await.expect_err("a forged decoration is ignored");
    assert!(refused.to_string().contains("has not granted role payer to ResearchMSP"), "{refused}");
    assert_eq!(balance(&scientist, &researcher_account).await, 0, "no money was created");
    // The consortium's payer deposits (control).
    insurer.deposit(&researcher_account, 25).await.expect("a granted payer deposits");
    assert_eq!(balance(&scientist, &researcher_account).await, 25);

    // ---- the accounting of disclosures: regulators of the regulator org only -------------
    let patient = doctor.actor().replace("drgrey", "patient1");
    let refused =
        fake_regulator.audit("disclosures", json!({"subject": patient})).await.expect_err("refused");
    assert!(refused.to_string().contains("has not granted role regulator to LabMSP"), "{refused}");
    regulator.audit("disclosures", json!({"subject": patient})).await.expect("the regulator audits");

    // ---- consents are the patient's --------------------------------------------------
    let patient1 = actor(&status, "patient1").expect("patient");
    let key =
        medfabric_network::connect::public_key_of_user(status.user("patient1").expect("user")).expect("key");
    patient1.register_patient(&patient, "HospitalMSP", &key).await.expect("the patient registers herself");
    let optout = json!({"patient_id": patient, "consent_id": "no-research", "template": "opt-out"});
    patient1.grant_consent(&patient, "no-research", optout.clone()).await.expect("opt-out");
    let refused =
        doctor.revoke_consent(&patient, "no-research").await.expect_err("not the doctor's to revoke");
    assert!(refused.to_string().contains("only with the patient's signature"), "{refused}");
    // What the patient signs, the hospital records.
    let treat = json!({"patient_id": patient, "consent_id": "treat", "template": "opt-in", "grantee": {"kind": "org", "value": "HospitalMSP"}});
    let signed = patient1.sign_consent("grant", 1, &treat).expect("signed");
    let recorded = doctor.record_signed_consent(&signed).await.expect("recorded");
    assert_eq!(recorded["recorded_by"], doctor.actor());
    let replayed = doctor.record_signed_consent(&signed).await.expect_err("once only");
    assert!(replayed.to_string().contains("exists"), "{replayed}");

    // ---- an organization's account is its admins' to spend ------------------------------
    insurer.deposit("org:HospitalMSP", 100).await.expect("deposit into the hospital's account");
    let refused = doctor.call("org_transfer", &json!([doctor.actor(), 100])).await.expect_err("refused");
    assert!(refused.to_string().contains("org_transfer requires an admin of HospitalMSP"), "{refused}");
    let admin = actor(&status, "Admin@HospitalMSP").expect("hospital admin");
    admin.call("org_transfer", &json!([doctor.actor(), 60])).await.expect("the admin pays");
    assert_eq!(balance(&doctor, doctor.actor()).await, 60);
    assert_eq!(balance(&doctor, "org:HospitalMSP").await, 40);

    // ---- CommitStatus never holds a gateway permit for ever -----------------------------
    restart_peer_with(&network, &status, "InsurerMSP", |gateway| {
        gateway.concurrency_limit = 2;
        gateway.commit_status_timeout_ms = 4000;
    });
    let insurer = actor(&status, "claims1").expect("insurer again");
    let never = |n: u8| hex::encode([n; 32]);
    let network_handle = insurer.contract().network().clone();
    // Clients that go away release their permits at once.
    for n in 0..2 {
        let waited =
            tokio::time::timeout(Duration::from_millis(300), network_handle.commit_status(&never(n))).await;
        assert!(waited.is_err(), "nothing commits tx {n}: {waited:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    insurer.balance("org:InsurerMSP").await.expect("permits came back when the clients went away");
    // Clients that wait hold them, until the bound.
    let waits: Vec<_> = (2..4)
        .map(|n| {
            let handle = network_handle.clone();
            tokio::spawn(async move { handle.commit_status(&never(n)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = insurer.balance("org:InsurerMSP").await.expect_err("limit reached");
    assert!(refused.to_string().contains("gateway concurrency limit (2) reached"), "{refused}");
    for wait in waits {
        let answer = wait.await.expect("joined").expect_err("never committed");
        assert!(answer.to_string().contains("was not committed within 4000 ms"), "{answer}");
    }
    insurer.balance("org:InsurerMSP").await.expect("permits came back after the bound");
    drop(network);
}
