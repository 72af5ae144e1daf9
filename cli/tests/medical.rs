//! The medical chaincode on networks of processes (TLS on):
//!
//! - the demo story on the consortium network (`network-config/consortium.yaml`), then:
//!   revocation racing access (never a disclosure after the revocation), audit queries
//!   refused to non-regulators, the ciphertext refused to a reader without a grant, and a
//!   scan of every peer's public state and blocks for the payload and the wrapped keys;
//! - 200 concurrent fee payments into one hospital account: no MVCC conflicts, the
//!   right total.

use std::path::{Path, PathBuf};

use medfabric_bench::medical_demo::{BREAK_GLASS_JUSTIFICATION, Cast, actor, tell};
use medfabric_network::up::{self, NetworkStatus};
use medfabric_sdk::medical::Medical;
use serde_json::{Value, json};

mod common;

/// The privacy review of the demo's break-glass access: free text, kept off the chain.
const REVIEW_NOTE: &str = "reviewed: emergency confirmed by the attending lab physician";
/// Why a record is erased: free text, kept off the chain.
const ERASURE_REASON: &str = "patient withdrew after the mis-filed psychiatric note was found";

fn consortium() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../network-config/consortium.yaml")
}

/// Endorses `function(args)` without submitting it.
async fn endorsed(who: &Medical, function: &str, args: &[String]) -> medfabric_sdk::Transaction {
    let proposal =
        who.contract().proposal_builder(function, args).signed(who.contract().network().gateway().signer());
    proposal.endorse().await.unwrap_or_else(|e| panic!("endorsing {function}: {e}"))
}

/// Where a transaction was committed: (block, position in block), and its code.
fn position(status: &NetworkStatus, tx_id: &str) -> (u64, u32, u8) {
    let peer = status.peer_of("HospitalMSP").expect("hospital peer");
    let store = common::open_live_ledger(&peer.data_dir.join("ledger"));
    store.channel(&status.channel).expect("channel").transaction(tx_id).expect("read").expect("committed")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every peer's public state and blocks, and (for non-custodians) every file.
fn scan_for(status: &NetworkStatus, needles: &[(&str, Vec<u8>)]) {
    for peer in status.peers() {
        let store = common::open_live_ledger(&peer.data_dir.join("ledger"));
        let ledger = store.channel(&status.channel).expect("channel");
        for (ns, key, value) in ledger.state_entries().expect("state") {
            for (what, needle) in needles {
                assert!(
                    !contains(&value.value, needle),
                    "{what} in public state {ns}/{key:?} on {}",
                    peer.name
                );
            }
        }
        for number in 0..ledger.height().expect("height") {
            let block = prost::Message::encode_to_vec(&ledger.block(number).expect("read").expect("block"));
            for (what, needle) in needles {
                assert!(!contains(&block, needle), "{what} in block {number} on {}", peer.name);
            }
        }
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_medical_story_and_its_guarantees() {
    let network = common::start(&consortium());
    let status = up::status(&network.data).expect("status");
    let cast = Cast::new(status.clone()).expect("cast");
    let story = tell(&cast).await.expect("the demo story");

    // The regulator's report lists the paid research access and the break-glass one.
    let items = story.disclosures["items"].as_array().expect("items");
    let ids: Vec<&str> = items.iter().filter_map(|i| i["event_id"].as_str()).collect();
    assert!(
        ids.contains(&story.paid_access.as_str()) && ids.contains(&story.break_glass_access.as_str()),
        "{ids:?}"
    );
    let bg = items.iter().find(|i| i["event_id"] == story.break_glass_access.as_str()).expect("break-glass");
    assert_eq!((bg["break_glass"].as_bool(), bg["consent"].is_null()), (Some(true), true));
    // The regulator reads the justification from the audit collection its peer holds.
    assert_eq!(bg["justification"], BREAK_GLASS_JUSTIFICATION, "{bg}");
    // The regulator reviews it; the note too stays in the audit collection.
    cast.regulator.review_break_glass(&story.break_glass_access, REVIEW_NOTE).await.expect("review");
    let listed = cast.regulator.audit("break_glass", json!({})).await.expect("break-glass list");
    let reviewed = listed["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["event_id"] == story.break_glass_access.as_str()))
        .expect("listed");
    assert_eq!(reviewed["reviewed"]["note"], REVIEW_NOTE, "{reviewed}");

    // ---- non-regulators may not run audit queries ---------------------------------------
    for who in [&cast.doctor, &cast.researcher, &cast.insurer, &cast.patient] {
        let refused =
            who.query("disclosures", &json!({"subject": story.patient_id})).await.expect_err("refused");
        assert!(refused.to_string().contains("disclosures requires role regulator"), "{refused}");
    }

    // ---- a reader without a (current) grant cannot obtain the ciphertext ---------------
    let refused = cast.insurer.read_record(&story.record_id, "HospitalMSP").await.expect_err("no grant");
    assert!(refused.to_string().contains("holds no committed access grant"), "{refused}");
    let refused = cast.researcher.read_record(&story.record_id, "HospitalMSP").await.expect_err("revoked");
    assert!(refused.to_string().contains("no longer in force"), "{refused}");

    // ---- revocation racing access: never a disclosure after the revocation -------------
    let patient_id = story.patient_id.clone();
    for round in 0..4 {
        let consent_id = format!("race-{round}");
        cast.patient
            .call(
                "grant_consent",
                &json!({"patient_id": patient_id, "consent_id": consent_id, "template": "research-opt-in",
                        "grantee": {"kind": "actor", "value": cast.researcher.actor()}}),
            )
            .await
            .expect("grant");
        let access_args = [json!({"record_id": story.record_id, "purpose": "HRESCH"}).to_string()];
        // The grant committed on the patient's peer; the researcher's peer may commit that
        // block a moment later, so its endorsement waits for it (up to 5 s).
        let mut tries = 0;
        let access = loop {
            let proposal = cast
                .researcher
                .contract()
                .proposal_builder("request_access", &access_args)
                .signed(cast.researcher.contract().network().gateway().signer());
            match proposal.endorse().await {
                Ok(access) => break access,
                Err(e) if tries < 50 && e.to_string().contains("no consent of patient") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("endorsing request_access: {e}"),
            }
        };
        let revoke =
            endorsed(&cast.patient, "revoke_consent", &[patient_id.clone(), consent_id.clone()]).await;
        let (access_id, revoke_id) = (access.tx_id().to_owned(), revoke.tx_id().to_owned());
        // Alternate which is sent first; both race through the same orderer.
        let (a, r) = if round % 2 == 0 {
            tokio::join!(async { access.submit().await.expect("submit").status().await }, async {
                revoke.submit().await.expect("submit").status().await
            })
        } else {
            let (r, a) =
                tokio::join!(async { revoke.submit().await.expect("submit").status().await }, async {
                    access.submit().await.expect("submit").status().await
                });
            (a, r)
        };
        let (a, r) = (a.expect("access status"), r.expect("revoke status"));
        assert!(r.is_valid(), "round {round}: the revocation commits");
        let (access_at, revoke_at) = (position(&status, &access_id), position(&status, &revoke_id));
        if a.is_valid() {
            assert!(
                (access_at.0, access_at.1) < (revoke_at.0, revoke_at.1),
                "round {round}: a disclosure committed after the revocation"
            );
        } else {
            assert!([11, 12].contains(&a.code), "round {round}: access invalid with code {}", a.code);
        }
    }

    // ---- no payload and no wrapped key in any public state or block ---------------------
    let held = cast.patient.fetch_record(&story.record_id, "HospitalMSP").await.expect("read");
    // A read submitted instead of evaluated reaches a block (valid or not), sealed to a
    // key that was only ever in the transient map: the scan below covers that block.
    let response_key = [0x42u8; 32];
    let submitted_read = cast
        .patient
        .contract()
        .proposal_builder("read_record", std::slice::from_ref(&story.record_id))
        .transient("response_key", response_key.to_vec())
        .endorsing_organizations(&["HospitalMSP"])
        .signed(cast.patient.contract().network().gateway().signer())
        .endorse()
        .await
        .expect("endorsed read");
    let sealed_answer: serde_json::Value = serde_json::from_slice(&submitted_read.result).expect("json");
    let committed =
        submitted_read.submit().await.expect("submitted").status().await.expect("the read reached a block");
    let opened = medfabric_sdk::medical::open_read(&response_key, &sealed_answer).expect("opens");
    assert_eq!(opened.wrapped_key, held.wrapped_key, "the submitted read carried the patient's key");
    let hospital_peer = status.peer_of("HospitalMSP").expect("hospital peer");
    let read_block = prost::Message::encode_to_vec(
        &common::open_live_ledger(&hospital_peer.data_dir.join("ledger"))
            .channel(&status.channel)
            .expect("channel")
            .block(committed.block_number)
            .expect("read")
            .expect("block"),
    );
    assert!(
        contains(&read_block, sealed_answer["sealed"].as_str().expect("sealed").as_bytes()),
        "control: the sealed answer is in block {}",
        committed.block_number
    );
    let ciphertext_hex = held.ciphertext.clone();
    let wrapped_hex = held.wrapped_key.clone();
    let ciphertext = hex::decode(&ciphertext_hex).expect("hex");
    let wrapped = hex::decode(&wrapped_hex).expect("hex");
    // A record with a sensitive label (endorsed by the custodian and the regulator, who hold
    // the audit collection), then erased with a reason: neither the label nor the reason
    // may reach a block or public state.
    let labelled = medfabric_sdk::medical::NewRecord {
        record_id: format!("{}-psy", story.record_id),
        patient_id: story.patient_id.clone(),
        resource_type: "Observation".into(),
        data_class: "lab".into(),
        security_labels: vec!["N".into(), "PSY".into()],
        plaintext: b"sensitive lab value".to_vec(),
    };
    let meta =
        cast.doctor.create_record(&labelled, "HospitalMSP", "RegulatorMSP").await.expect("labelled record");
    assert_eq!(meta["security_labels"], json!(["N"]), "public labels: {meta}");
    cast.doctor
        .erase_record(&labelled.record_id, ERASURE_REASON, "HospitalMSP", "RegulatorMSP")
        .await
        .expect("erased");
    let erasures = cast.regulator.audit("erasures", json!({})).await.expect("erasures");
    let erased = erasures["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["record_id"] == labelled.record_id.as_str()))
        .expect("listed");
    assert_eq!(erased["reason"], ERASURE_REASON, "the regulator reads the reason, sealed: {erased}");
    let needles = [
        ("the sensitive label (JSON string)", b"\"PSY\"".to_vec()),
        ("the erasure reason", ERASURE_REASON.as_bytes().to_vec()),
        ("the record plaintext", story.plaintext.clone()),
        ("a distinctive part of the plaintext", b"HbA1c".to_vec()),
        ("the ciphertext", ciphertext.clone()),
        ("the ciphertext (hex)", ciphertext_hex.as_bytes().to_vec()),
        ("the patient's wrapped key", wrapped.clone()),
        ("the patient's wrapped key (hex)", wrapped_hex.as_bytes().to_vec()),
        ("the break-glass justification", BREAK_GLASS_JUSTIFICATION.as_bytes().to_vec()),
        ("the break-glass review note", REVIEW_NOTE.as_bytes().to_vec()),
    ];
    scan_for(&status, &needles);
    // What DeliverWithPrivateData serves any client of the custodian: every private write
    // set the Hospital's peer holds. No stored value opens the record for anyone but the
    // patient — the grantees read through releases, which are never stored.
    let store = common::open_live_ledger(&hospital_peer.data_dir.join("ledger"));
    let hospital_ledger = store.channel(&status.channel).expect("channel");
    let user_keys: Vec<_> = status
        .users
        .iter()
        .map(|u| (u.name.clone(), medfabric_sdk::records::private_key_of(&u.msp_dir).expect("user key")))
        .collect();
    let (mut opened, mut tried) = (Vec::new(), 0);
    for number in 0..hospital_ledger.height().expect("height") {
        for (_, bytes) in medfabric_peer::pvtdata::block_private_data(&hospital_ledger, number).expect("pvt")
        {
            let set: medfabric_proto::kvrwset::KvrwSet =
                prost::Message::decode(bytes.as_ref()).expect("KVRWSet");
            for write in set.writes {
                let Some(wrap) = std::str::from_utf8(&write.value).ok().and_then(|t| hex::decode(t).ok())
                else {
                    continue;
                };
                tried += 1;
                for (name, key) in &user_keys {
                    if medfabric_sdk::records::unwrap(&wrap, key, &story.record_id, 1).is_ok() {
                        opened.push((write.key.clone(), name.clone()));
                    }
                }
            }
        }
    }
    let openers: Vec<&str> = opened.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(
        openers,
        ["patient1"],
        "only the patient's own wrap opens, among {tried} stored values: {opened:?}"
    );
    // The free text is held by the custodian's and the regulator's peers alone.
    for node in status.nodes.iter().filter(|n| n.org != "HospitalMSP" && n.org != "RegulatorMSP") {
        let mut files = Vec::new();
        files_under(&node.data_dir, &mut files);
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for needle in [BREAK_GLASS_JUSTIFICATION, REVIEW_NOTE, ERASURE_REASON] {
                assert!(!contains(&bytes, needle.as_bytes()), "{needle:?} in {}", file.display());
            }
        }
    }
    // Peers of other organizations and the orderers never stored the ciphertext at all.
    for node in status.nodes.iter().filter(|n| n.org != "HospitalMSP") {
        let mut files = Vec::new();
        files_under(&node.data_dir, &mut files);
        for file in files {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!contains(&bytes, &ciphertext), "ciphertext in {}", file.display());
            assert!(!contains(&bytes, ciphertext_hex.as_bytes()), "ciphertext (hex) in {}", file.display());
        }
    }
    drop(network);
}

/// A hospital and 200 payers (one organization with 200 users), one orderer.
fn payers_topology(payers: usize) -> String {
    let users: Vec<String> = (0..payers)
        .map(|i| format!("      - {{ name: payer{i:03}, type: client, attrs: {{ role: researcher }} }}"))
        .collect();
    format!(
        r#"
channel: paychannel
orderer:
  name: OrdererOrg
  msp_id: OrdererMSP
  domain: orderer.pay.local
  batch: {{ max_message_count: 500, absolute_max_bytes: 10485760, preferred_max_bytes: 4194304, batch_timeout_ms: 200 }}
  consenters:
    - {{ name: orderer0, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }}
organizations:
  - name: Hospital
    msp_id: HospitalMSP
    domain: hospital.pay.local
    ca: {{ host: 127.0.0.1, port: 1 }}
    peers: [ {{ name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 }} ]
    users: [ {{ name: cashier, type: client, attrs: {{ role: payer }} }} ]
  - name: Research
    msp_id: ResearchMSP
    domain: research.pay.local
    ca: {{ host: 127.0.0.1, port: 1 }}
    peers: [ {{ name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 }} ]
    users:
{}
roles: {{ payer: [HospitalMSP], researcher: [ResearchMSP], provider: [HospitalMSP] }}
chaincodes:
  - {{ name: medical, version: "1.0", sequence: 1, endorsement_policy: "OR('HospitalMSP.peer', 'ResearchMSP.peer')" }}
"#,
        users.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_payments_into_one_account_do_not_conflict() {
    const PAYERS: usize = 200;
    let (network, _topology) = common::start_yaml(&payers_topology(PAYERS));
    let status = up::status(&network.data).expect("status");
    let payers: Vec<Medical> =
        (0..PAYERS).map(|i| actor(&status, &format!("payer{i:03}")).expect("payer")).collect();
    // The payment processor funds every payer's account at once (blind credits: no
    // conflicts either).
    let cashier = actor(&status, "cashier").expect("cashier");
    let deposits = payers.iter().map(|p| {
        let cashier = &cashier;
        async move { cashier.call("deposit", &json!([p.actor(), 1000])).await }
    });
    for outcome in futures::future::join_all(deposits).await {
        outcome.expect("deposit committed VALID");
    }
    // 200 payments of different amounts into the hospital's account, all at once.
    let payments = payers.iter().enumerate().map(|(i, p)| async move {
        let args = ["org:HospitalMSP".to_owned(), (i + 1).to_string()];
        let tx = endorsed(p, "transfer", &args).await;
        tx.submit().await.expect("submit").status().await.expect("status")
    });
    let statuses = futures::future::join_all(payments).await;
    let codes: Vec<i32> = statuses.iter().map(|s| s.code).filter(|c| *c != 0).collect();
    assert!(codes.is_empty(), "payments not VALID: {codes:?}");
    let blocks: std::collections::BTreeSet<u64> = statuses.iter().map(|s| s.block_number).collect();
    // The cashier reads on the Hospital peer, which may commit the last block a moment
    // after the Research peer that answered the payers.
    let expected = (1..=PAYERS as u64).sum::<u64>();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let balance: Value = cashier.query("balance", &json!("org:HospitalMSP")).await.expect("balance");
        if balance["balance"].as_u64() == Some(expected) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "balance {balance}, expected {expected} (blocks {blocks:?})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(network);
}
