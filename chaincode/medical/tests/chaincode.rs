//! The medical chaincode on the in-memory ledger: role checks, records, consent
//! management, access with its audit trail, break-glass, regulator queries, fees and
//! claims, erasure.

mod support;

use serde_json::{Value, json};
use support::{ALICE, GREY, PATIENT, PAYER, REG, SCI, SCI2, TECH, World};

fn world_with_record() -> World {
    let mut w = World::new();
    w.register_patient(PATIENT);
    w.create_record("rec-1", "lab", &["N"]);
    w
}

fn research_consent(w: &mut World, consent_id: &str, grantee: &str, fee: u64) -> Value {
    w.ok(
        ALICE,
        "grant_consent",
        &json!({
            "patient_id": PATIENT,
            "consent_id": consent_id,
            "template": "research-opt-in",
            "grantee": {"kind": "actor", "value": grantee},
            "classes": ["lab"],
            "fee": {"amount": fee, "custodian_share_bps": 2000},
        }),
    )
}

fn access(w: &mut World, who: &str, purpose: &str) -> Value {
    w.ok(who, "request_access", &json!({"record_id": "rec-1", "purpose": purpose}))
}

/// Every audit index entry (`auditpatient`, `auditactor`, `auditorg`, `auditrecord`)
/// pointing at `event_id`.
fn index_entries(w: &World, event_id: &str) -> Vec<String> {
    w.snapshot()
        .into_iter()
        .filter(|(k, v)| {
            k.starts_with("\u{0}audit")
                && !k.starts_with("\u{0}audit\u{0}")
                && v.as_ref() == event_id.as_bytes()
        })
        .map(|(k, _)| k.split('\u{0}').nth(1).unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn roles_are_checked_and_a_denial_writes_nothing() {
    let mut w = World::new();
    let message = w.denied(
        SCI,
        "register_patient",
        &json!({"patient_id": "x", "custodian": "ResearchMSP", "public_key": support::PUBLIC_KEY}),
    );
    assert!(message.contains("register_patient requires role patient"), "{message}");
    let message = w.denied(
        ALICE,
        "register_patient",
        &json!({"patient_id": ALICE, "custodian": "LabMSP", "public_key": support::PUBLIC_KEY}),
    );
    assert!(message.contains("reserved to LabMSP"), "{message}");
    let message = w.denied("HospitalMSP/norole", "get_patient", &json!("x"));
    assert!(message.contains("has no role attribute"), "{message}");
    w.register_patient(PATIENT);
    let message = w.denied(REG, "request_access", &json!({"record_id": "r", "purpose": "TREAT"}));
    assert!(message.contains("request_access requires role provider or researcher or payer"), "{message}");
    for query in [
        "disclosures",
        "accesses_by_actor",
        "accesses_by_org",
        "accesses_to_record",
        "break_glass",
        "consent_history",
        "payments_for_disclosures",
        "erasures",
    ] {
        for who in [GREY, ALICE, SCI, PAYER, TECH] {
            let message = w.denied(who, query, &json!({"subject": PATIENT}));
            assert!(
                message.contains(&format!("{query} requires role regulator")),
                "{query} as {who}: {message}"
            );
        }
    }
    let message = w.denied(GREY, "commitment_at", &json!(["rec-1", 1]));
    assert!(message.contains("commitment_at requires role regulator"), "{message}");
    let message = w.denied(PAYER, "create_record", &json!({"record_id": "r", "patient_id": PATIENT, "resource_type": "Observation", "data_class": "lab", "commitment": "ab".repeat(32)}));
    assert!(message.contains("create_record requires role provider"), "{message}");
    let message = w.denied(
        SCI,
        "submit_claim",
        &json!({"claim_id": "c", "encounter_record": "r", "payer_org": "InsurerMSP", "amount": 1}),
    );
    assert!(message.contains("submit_claim requires role provider"), "{message}");
    let message = w.denied(GREY, "pay_claim", &json!("c"));
    assert!(message.contains("pay_claim requires role payer"), "{message}");
    let message = w.denied(ALICE, "org_transfer", &json!(["x", 1]));
    assert!(message.contains("org_transfer requires an admin of HospitalMSP"), "{message}");
    let message = w.denied(
        SCI,
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "c", "template": "opt-out"}),
    );
    assert!(message.contains("reserved to the patient"), "{message}");
}

#[test]
fn a_record_keeps_phi_out_of_public_state() {
    let mut w = World::new();
    w.register_patient(PATIENT);
    let meta = w.create_record("rec-1", "lab", &["N"]);
    assert_eq!(meta["version"], 1);
    assert_eq!(meta["author"], GREY);
    let collection = "_implicit_org_HospitalMSP";
    let wk_key = "\u{0}wk\u{0}rec-1\u{0}00000000000000000001\u{0}patient\u{0}";
    let patient_wrap = w.stub.private_value("medical", collection, wk_key).expect("the patient's wrap");
    let ct_key = "\u{0}ct\u{0}rec-1\u{0}00000000000000000001\u{0}";
    let ciphertext = w.stub.private_value("medical", collection, ct_key).expect("the ciphertext");
    assert!(!ciphertext.windows(12).any(|x| x == b"PLAINTEXT-OF"), "encrypted");
    for (key, value) in w.snapshot() {
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains("PLAINTEXT-OF"), "public {key:?} holds plaintext");
        assert!(!value.windows(16).any(|x| x == &ciphertext[..16]), "public {key:?} holds ciphertext");
        assert!(!text.contains(&String::from_utf8_lossy(&patient_wrap)[..32]), "public {key:?} holds a wrap");
    }
    // Lab providers may not add records to the hospital's patients; bad input is refused.
    let message = w.denied(
        TECH,
        "create_record",
        &json!({"record_id": "rec-2", "patient_id": PATIENT, "resource_type": "Observation", "data_class": "lab", "commitment": "ab".repeat(32)}),
    );
    assert!(message.contains("reserved to HospitalMSP"), "{message}");
    let message = w.denied(
        GREY,
        "create_record",
        &json!({"record_id": "rec-2", "patient_id": PATIENT, "resource_type": "Observation", "data_class": "lab", "commitment": "xyz"}),
    );
    assert!(message.contains("commitment must be 32 bytes"), "{message}");
    let message = w.denied(
        GREY,
        "create_record",
        &json!({"record_id": "rec-2", "patient_id": PATIENT, "resource_type": "Observation", "data_class": "lab", "commitment": "ab".repeat(32)}),
    );
    assert!(message.contains("transient map must carry \"ciphertext\""), "{message}");
    // The patient and the custodian read the ciphertext; a researcher without a grant may not.
    let mine = w.read(ALICE, "rec-1");
    let sealed = support::parse(&mine);
    assert!(!sealed.to_string().contains(&String::from_utf8_lossy(&patient_wrap)[..32]), "sealed: {sealed}");
    assert!(!sealed.to_string().contains(&hex(&ciphertext[..16])), "the answer is sealed: {sealed}");
    let mine = support::unseal(&mine);
    assert_eq!(mine["key_holder"], "patient");
    assert_eq!(mine["wrapped_key"].as_str(), Some(&*String::from_utf8_lossy(&patient_wrap)));
    assert_eq!(mine["ciphertext"], hex(&ciphertext));
    assert_eq!(
        w.decrypt(ALICE, &mine).expect("the patient decrypts"),
        support::plaintext_of("rec-1").as_bytes()
    );
    // No response key, or a short one: refused, nothing returned.
    let unkeyed = w.query(ALICE, "read_record", &json!("rec-1"));
    assert!(
        unkeyed.response.message.contains("needs a 32-byte \"response_key\""),
        "{}",
        unkeyed.response.message
    );
    assert!(unkeyed.response.payload.is_empty());
    let short = w.query_with(ALICE, "read_record", &json!("rec-1"), &[("response_key", &[1u8; 16])]);
    assert!(
        short.response.message.contains("response_key must be 32 bytes, got 16"),
        "{}",
        short.response.message
    );
    let outcome = w.read(SCI, "rec-1");
    assert!(
        outcome.response.message.contains("holds no committed access grant"),
        "{}",
        outcome.response.message
    );
}

#[test]
fn a_permitted_access_leaves_one_event_in_every_index() {
    let mut w = world_with_record();
    research_consent(&mut w, "c-research", SCI, 0);
    let before = w.snapshot().len();
    let result = access(&mut w, SCI, "HRESCH");
    assert_eq!(result["authorization"], "c-research@1");
    assert_eq!(result["break_glass"], false);
    let event_id = result["access_id"].as_str().expect("access id").to_owned();
    let mut indexes = index_entries(&w, &event_id);
    indexes.sort();
    assert_eq!(indexes, ["auditactor", "auditorg", "auditpatient", "auditrecord"]);
    // Event + 4 indexes + grant.
    assert_eq!(w.snapshot().len(), before + 6);
    // The grant lets the researcher read: the custodian's peer wraps the key to the
    // researcher's certificate key for this answer.
    let read = support::unseal(&w.read(SCI, "rec-1"));
    assert_eq!(read["key_holder"], SCI);
    assert_eq!(
        w.decrypt(SCI, &read).expect("the grantee decrypts"),
        support::plaintext_of("rec-1").as_bytes()
    );
    assert!(w.decrypt(SCI2, &read).is_err(), "the release is for the grantee's key only");
    // Denied requests leave no event.
    let message = w.denied(SCI2, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    assert!(
        message.contains("no consent of patient HospitalMSP/patient1 permits ResearchMSP/scientist2"),
        "{message}"
    );
    let message = w.denied(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "TREAT"}));
    assert!(message.contains("for TREAT"), "{message}");
}

#[test]
fn revoked_consent_denies_and_updates_are_versions() {
    let mut w = world_with_record();
    research_consent(&mut w, "c-research", SCI, 0);
    let updated = w.ok(
        ALICE,
        "update_consent",
        &json!({"patient_id": PATIENT, "consent_id": "c-research", "template": "research-opt-in",
                "grantee": {"kind": "actor", "value": SCI}, "classes": ["lab", "imaging"]}),
    );
    assert_eq!(updated["version"], 2);
    assert_eq!(access(&mut w, SCI, "HRESCH")["authorization"], "c-research@2");
    let revoked = w.ok(ALICE, "revoke_consent", &json!([PATIENT, "c-research"]));
    assert_eq!((revoked["version"].as_u64(), revoked["status"].as_str()), (Some(3), Some("revoked")));
    let message = w.denied(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    assert!(message.contains("no consent"), "{message}");
    let outcome = w.read(SCI, "rec-1");
    assert!(
        outcome.response.message.contains("no longer in force"),
        "a revoked consent's grant no longer serves: {}",
        outcome.response.message
    );
    let message = w.denied(
        ALICE,
        "update_consent",
        &json!({"patient_id": PATIENT, "consent_id": "c-research", "template": "opt-out"}),
    );
    assert!(message.contains("was revoked"), "{message}");
    // An opt-out denies everyone, and names itself.
    research_consent(&mut w, "c-research-2", SCI, 0);
    w.ok(
        ALICE,
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "a-optout", "template": "opt-out"}),
    );
    let message = w.denied(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    assert!(message.contains("consent a-optout@1 of patient"), "{message}");
    // The regulator sees every version, as JSON and as FHIR Consent resources.
    let history = w.query(REG, "consent_history", &json!({"subject": PATIENT}));
    let history = support::parse(&history);
    let versions: Vec<(String, u64)> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| {
            (
                c["consent_id"].as_str().unwrap_or_default().to_owned(),
                c["version"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            ("a-optout".into(), 1),
            ("c-research".into(), 1),
            ("c-research".into(), 2),
            ("c-research".into(), 3),
            ("c-research-2".into(), 1)
        ]
    );
    let fhir =
        support::parse(&w.query(REG, "consent_history", &json!({"subject": PATIENT, "format": "fhir"})));
    let last = &fhir["items"][3];
    assert_eq!((last["resourceType"].as_str(), last["status"].as_str()), (Some("Consent"), Some("inactive")));
    assert_eq!(fhir["items"][0]["provision"]["type"], "deny");
}

#[test]
fn break_glass_is_allowed_flagged_and_reported_when_overdue() {
    let mut w = world_with_record();
    w.ok(ALICE, "grant_consent", &json!({"patient_id": PATIENT, "consent_id": "out", "template": "opt-out"}));
    let message = w.denied(GREY, "request_access", &json!({"record_id": "rec-1", "purpose": "ETREAT"}));
    assert!(message.contains("denies"), "{message}");
    let etreat = json!({"record_id": "rec-1", "purpose": "ETREAT"});
    let outcome = w.invoke_with(
        SCI,
        "request_access",
        &etreat,
        &[("justification", &b"x"[..]), ("salt", support::SALT)],
    );
    assert!(
        outcome.response.message.contains("denies"),
        "break-glass is for providers: {}",
        outcome.response.message
    );
    // Free text is never an argument: arguments land in blocks.
    let message = w.denied(
        GREY,
        "request_access",
        &json!({"record_id": "rec-1", "purpose": "ETREAT", "justification": "unconscious"}),
    );
    assert!(message.contains("send it in the transient map"), "{message}");
    let outcome = w.invoke_with(
        GREY,
        "request_access",
        &etreat,
        &[("justification", &b"unconscious, allergy check"[..]), ("salt", support::SALT)],
    );
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    let result = support::parse(&outcome);
    assert_eq!(
        (result["authorization"].as_str(), result["break_glass"].as_bool()),
        (Some("break-glass"), Some(true))
    );
    let event_id = result["access_id"].as_str().expect("id").to_owned();
    let listed = support::parse(&w.query(REG, "break_glass", &json!({})));
    assert_eq!(listed["items"][0]["event_id"], event_id.as_str());
    assert_eq!(listed["items"][0]["overdue"], false);
    w.advance(73 * 3600);
    let listed = support::parse(&w.query(REG, "break_glass", &json!({})));
    assert_eq!(listed["items"][0]["overdue"], true, "unreviewed after 72 h");
    let outcome = w.invoke_with(
        GREY,
        "review_break_glass",
        &json!([event_id]),
        &[("note", &b"all fine"[..]), ("salt", support::SALT)],
    );
    assert!(
        outcome.response.message.contains("may not review their own break-glass access"),
        "{}",
        outcome.response.message
    );
    let message = w.denied("HospitalMSP/nurse1", "review_break_glass", &json!([event_id]));
    assert!(message.contains("a review needs a note"), "{message}");
    let outcome = w.invoke_with(
        "HospitalMSP/nurse1",
        "review_break_glass",
        &json!([event_id]),
        &[("note", &b"confirmed by attending physician"[..]), ("salt", support::SALT)],
    );
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    let reviewed = support::parse(&outcome);
    assert_eq!(reviewed["reviewed"]["reviewer"], "HospitalMSP/nurse1");
    assert!(!outcome.payload_str().contains("physician"), "the answer (in the block) carries no note");
    // Without a response key the answer carries no free text (a submitted query would put
    // it in a block); with one, the answer is sealed and holds it.
    let plain = w.query(REG, "break_glass", &json!({}));
    assert!(!plain.payload_str().contains("unconscious"), "{}", plain.payload_str());
    assert!(support::parse(&plain)["items"][0]["justification"].is_null());
    let sealed = w.query_with(REG, "break_glass", &json!({}), &[("response_key", &support::RESPONSE_KEY)]);
    assert!(!sealed.payload_str().contains("unconscious"), "sealed: {}", sealed.payload_str());
    let listed = w.audit(REG, "break_glass", &json!({}));
    assert_eq!(listed["items"][0]["overdue"], false, "reviewed");
    // The regulator reads the free text from the audit collection; public state has none.
    assert_eq!(listed["items"][0]["justification"], "unconscious, allergy check");
    assert_eq!(listed["items"][0]["reviewed"]["note"], "confirmed by attending physician");
    for (key, value) in w.snapshot() {
        let text = String::from_utf8_lossy(&value);
        assert!(!text.contains("allergy") && !text.contains("physician"), "free text in public {key:?}");
    }
    let listed = support::parse(&w.query(REG, "break_glass", &json!({"format": "fhir"})));
    let extensions = &listed["items"][0]["extension"];
    assert_eq!(extensions[0]["url"], "urn:medfabric:break-glass");
    assert_eq!(
        extensions[1],
        json!({"url": "urn:medfabric:break-glass-review-overdue", "valueBoolean": false})
    );
}

#[test]
fn the_regulator_gets_disclosures_by_patient_actor_org_and_record_paginated() {
    let mut w = world_with_record();
    research_consent(&mut w, "c1", SCI, 0);
    w.ok(ALICE, "grant_consent", &json!({"patient_id": PATIENT, "consent_id": "c2", "template": "opt-in", "grantee": {"kind": "org", "value": "LabMSP"}}));
    let start = w.time;
    for _ in 0..3 {
        access(&mut w, SCI, "HRESCH");
        access(&mut w, TECH, "TREAT");
    }
    let end = w.time;
    let page = support::parse(&w.query(
        REG,
        "disclosures",
        &json!({"subject": PATIENT, "from": start, "to": end, "page_size": 4}),
    ));
    assert_eq!(page["count"], 4);
    let bookmark = page["bookmark"].as_str().expect("bookmark").to_owned();
    assert!(!bookmark.is_empty());
    let rest = support::parse(&w.query(
        REG,
        "disclosures",
        &json!({"subject": PATIENT, "from": start, "to": end, "page_size": 4, "bookmark": bookmark}),
    ));
    assert_eq!(rest["count"], 2, "{rest:#}\nfirst page: {page:#}");
    assert_eq!(rest["bookmark"], "");
    let first = &page["items"][0];
    assert_eq!(
        (first["actor"].as_str(), first["purpose"].as_str(), first["consent"].as_str()),
        (Some(SCI), Some("HRESCH"), Some("c1@1"))
    );
    let none = support::parse(&w.query(REG, "disclosures", &json!({"subject": PATIENT, "to": start - 1})));
    assert_eq!(none["count"], 0, "nothing before the range");
    assert_eq!(support::parse(&w.query(REG, "accesses_by_actor", &json!({"subject": TECH})))["count"], 3);
    assert_eq!(
        support::parse(&w.query(REG, "accesses_by_org", &json!({"subject": "ResearchMSP"})))["count"],
        3
    );
    assert_eq!(support::parse(&w.query(REG, "accesses_to_record", &json!({"subject": "rec-1"})))["count"], 6);
    let fhir = support::parse(&w.query(
        REG,
        "accesses_to_record",
        &json!({"subject": "rec-1", "format": "fhir", "page_size": 1}),
    ));
    let event = &fhir["items"][0];
    assert_eq!(event["resourceType"], "AuditEvent");
    assert_eq!(event["agent"][0]["policy"][0], "Consent/c1/_history/1", "the authorizing consent version");
    assert_eq!(event["subtype"][0]["code"], "disclose");
    assert!(event["recorded"].as_str().expect("time").starts_with("2027-01-15T"), "{}", event["recorded"]);
    // The commitment in force at a time.
    let at = support::parse(&w.query(REG, "commitment_at", &json!(["rec-1", end])));
    let record = support::parse(&w.query(REG, "get_record", &json!("rec-1")));
    assert_eq!(at["version"]["commitment"], record["commitment"]);
    assert_eq!(at["version"]["commitment"].as_str().map(str::len), Some(64));
}

#[test]
fn fees_are_escrowed_settled_or_refunded_and_totals_are_conserved() {
    let mut w = world_with_record();
    research_consent(&mut w, "c-paid", SCI, 1000);
    let message = w.denied(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    assert!(message.contains("insufficient funds"), "{message}");
    let message = w.denied(SCI, "deposit", &json!([SCI, 1500]));
    assert!(message.contains("deposit requires role payer"), "only payers bring money in: {message}");
    w.ok(PAYER, "deposit", &json!([SCI, 1500]));
    let first = access(&mut w, SCI, "HRESCH");
    assert_eq!(first["fee"], 1000);
    let balance = |w: &mut World, who: &str, owner: &str| {
        support::parse(&w.query(who, "balance", &json!(owner)))["balance"].as_u64()
    };
    assert_eq!(balance(&mut w, SCI, SCI), Some(500));
    let access_id = first["access_id"].as_str().expect("id").to_owned();
    let outcome = w.read(SCI, "rec-1");
    assert!(
        outcome.response.message.contains("awaits the settlement of its fee"),
        "unpaid: {}",
        outcome.response.message
    );
    let settled = w.ok(GREY, "settle", &json!(access_id));
    let outcome = w.read(SCI, "rec-1");
    assert_eq!(outcome.response.status, 200, "paid: {}", outcome.response.message);
    assert_eq!(settled["state"], "Settled");
    assert_eq!(balance(&mut w, ALICE, ALICE), Some(800));
    assert_eq!(balance(&mut w, GREY, "org:HospitalMSP"), Some(200));
    let message = w.denied(SCI, "refund", &json!(access_id));
    assert!(message.contains("already Settled"), "{message}");
    // A second paid access, then the patient revokes before settlement: refund.
    w.ok(PAYER, "deposit", &json!([SCI, 500]));
    let second = access(&mut w, SCI, "HRESCH");
    let second_id = second["access_id"].as_str().expect("id").to_owned();
    w.ok(ALICE, "revoke_consent", &json!([PATIENT, "c-paid"]));
    let message = w.denied(GREY, "settle", &json!(second_id));
    assert!(message.contains("no longer in force"), "{message}");
    let refunded = w.ok(SCI, "refund", &json!(second_id));
    assert_eq!(refunded["state"], "Refunded");
    assert_eq!(balance(&mut w, SCI, SCI), Some(1000), "the second fee is back");
    let outcome = w.read(SCI, "rec-1");
    assert!(outcome.response.message.contains("no longer in force"), "{}", outcome.response.message);
    assert!(
        w.snapshot().iter().all(|(k, _)| !(k.starts_with("\u{0}grant\u{0}") && k.contains(&second_id))),
        "the refund withdrew the grant"
    );
    // Deposited 2000 in total: 500 + 800 + 200 + 500 held nowhere else.
    let total: u64 = [(SCI, SCI), (ALICE, ALICE), (GREY, "org:HospitalMSP")]
        .iter()
        .map(|(who, owner)| balance(&mut w, who, owner).unwrap_or(0))
        .sum();
    assert_eq!(total, 2000, "deposits of 1500 + 500 are all accounted for");
    let payments = support::parse(&w.query(REG, "payments_for_disclosures", &json!({"subject": PATIENT})));
    let states: Vec<&str> =
        payments["items"].as_array().expect("items").iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, ["Settled", "Refunded"]);
    let message = w.denied(SCI, "balance", &json!(ALICE));
    assert!(message.contains("may not read the balance"), "{message}");
}

#[test]
fn credits_to_one_account_never_read_it() {
    let mut w = world_with_record();
    w.ok(PAYER, "deposit", &json!([SCI, 100]));
    let outcome = w.invoke(SCI, "transfer", &json!(["org:HospitalMSP", 40]));
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    let record = &outcome.record;
    let reads_of_target: Vec<&String> = record
        .reads
        .get("medical")
        .map(|r| r.keys().filter(|k| k.contains("org:HospitalMSP")).collect())
        .unwrap_or_default();
    assert!(
        reads_of_target.iter().all(|k| k.contains(&outcome.tx_id)),
        "only its own new credit key: {reads_of_target:?}"
    );
    assert!(
        record.ranges.get("medical").is_none_or(|r| r.iter().all(|q| !q.start.contains("org:HospitalMSP")))
    );
    let message = w.denied(SCI, "transfer", &json!(["org:HospitalMSP", 100]));
    assert!(message.contains("insufficient funds: ResearchMSP/scientist1 has 60"), "{message}");
}

#[test]
fn claims_are_submitted_adjudicated_and_paid_by_the_right_parties() {
    let mut w = world_with_record();
    let claim =
        json!({"claim_id": "cl-1", "encounter_record": "rec-1", "payer_org": "InsurerMSP", "amount": 300});
    let message = w.denied(TECH, "submit_claim", &claim);
    assert!(message.contains("reserved to HospitalMSP"), "{message}");
    w.ok(GREY, "submit_claim", &claim);
    let message = w.denied(GREY, "adjudicate_claim", &json!(["cl-1", true, 250]));
    assert!(message.contains("requires role payer"), "{message}");
    w.ok(PAYER, "adjudicate_claim", &json!(["cl-1", true, 250]));
    let message = w.denied(PAYER, "pay_claim", &json!("cl-1"));
    assert!(message.contains("insufficient funds: org:InsurerMSP"), "{message}");
    w.ok(PAYER, "deposit", &json!(["org:InsurerMSP", 1000]));
    let paid = w.ok(PAYER, "pay_claim", &json!("cl-1"));
    assert_eq!(paid["state"], "Paid");
    let hospital = support::parse(&w.query(GREY, "balance", &json!("org:HospitalMSP")));
    assert_eq!(hospital["balance"], 250);
    let message = w.denied(PAYER, "pay_claim", &json!("cl-1"));
    assert!(message.contains("not approved"), "paid once: {message}");
}

#[test]
fn erasure_purges_the_payload_and_leaves_an_event() {
    let mut w = world_with_record();
    let payload = w.payload("rec-1", 2, b"version two");
    let outcome = w.invoke_with(
        GREY,
        "append_version",
        &json!({"record_id": "rec-1", "commitment": payload.commitment}),
        &[("ciphertext", &payload.ciphertext), ("wrapped_keys", payload.wrapped.as_bytes())],
    );
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    let message = w.denied(SCI, "erase_record", &json!({"record_id": "rec-1"}));
    assert!(message.contains("only the patient or a provider"), "{message}");
    // A reason typed as an argument would land in a block: refused.
    let message =
        w.denied(ALICE, "erase_record", &json!({"record_id": "rec-1", "reason": "GDPR Art. 17 request"}));
    assert!(message.contains("may not be an argument"), "{message}");
    let outcome = w.invoke_with(
        ALICE,
        "erase_record",
        &json!({"record_id": "rec-1"}),
        &[("reason", b"GDPR Art. 17 request"), ("salt", support::SALT)],
    );
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    assert!(
        !outcome.payload_str().contains("GDPR"),
        "the answer lands in the block: {}",
        outcome.payload_str()
    );
    let erased = support::parse(&outcome);
    assert_eq!(erased["versions"], 2);
    for (key, value) in w.snapshot() {
        assert!(!String::from_utf8_lossy(&value).contains("GDPR"), "public {key:?} holds the reason");
    }
    let collection = "_implicit_org_HospitalMSP";
    for version in ["00000000000000000001", "00000000000000000002"] {
        let ct = format!("\u{0}ct\u{0}rec-1\u{0}{version}\u{0}");
        assert_eq!(w.stub.private_value("medical", collection, &ct), None, "{version}");
        let wk = format!("\u{0}wk\u{0}rec-1\u{0}{version}\u{0}patient\u{0}");
        assert_eq!(w.stub.private_value("medical", collection, &wk), None, "{version}: wrapped key");
    }
    let outcome = w.read(ALICE, "rec-1");
    assert!(outcome.response.message.contains("was erased"), "{}", outcome.response.message);
    let message = w.denied(GREY, "request_access", &json!({"record_id": "rec-1", "purpose": "TREAT"}));
    assert!(message.contains("was erased"), "{message}");
    let events = w.audit(REG, "erasures", &json!({}));
    assert_eq!(events["items"][0]["reason"], "GDPR Art. 17 request");
    let plain = support::parse(&w.query(REG, "erasures", &json!({})));
    assert!(plain["items"][0]["reason"].is_null(), "no free text in an unsealed answer: {plain}");
    // The commitments stay: the record provably existed.
    let at = support::parse(&w.query(REG, "commitment_at", &json!(["rec-1", w.time])));
    assert_eq!(at["version"]["version"], 2);
}

fn hex(bytes: &[u8]) -> String {
    support::hex(bytes)
}
