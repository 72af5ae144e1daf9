//! The trust model on the in-memory ledger: what a member organization cannot do by
//! writing attributes into the certificates its own CA issues, or by colluding.

mod support;

use bytes::Bytes;
use serde_json::json;
use support::{GREY, PATIENT, PAYER, REG, SCI, TECH, World};

/// A world where ResearchMSP's CA issued a `role=payer` user and LabMSP's a
/// `role=regulator` and a second `role=provider` user.
fn world_with_self_issued_roles() -> World {
    let mut w = World::new();
    w.add("ResearchMSP", "fakepayer", Some("payer"));
    w.add("LabMSP", "fakeregulator", Some("regulator"));
    w.add("ResearchMSP", "fakeprovider", Some("provider"));
    w.register_patient(PATIENT);
    w.create_record("rec-1", "lab", &["N"]);
    w
}

#[test]
fn a_role_counts_only_for_organizations_the_consortium_granted_it() {
    let mut w = world_with_self_issued_roles();
    // Minting: only a granted payer's deposit creates money.
    let message = w.denied("ResearchMSP/fakepayer", "deposit", &json!([SCI, 1_000_000_000u64]));
    assert!(message.contains("has not granted role payer to ResearchMSP"), "{message}");
    w.ok(PAYER, "deposit", &json!([SCI, 10]));
    let balance = support::parse(&w.query(SCI, "balance", &json!(SCI)));
    assert_eq!(balance["balance"], 10, "only the Insurer's deposit counted");

    // The accounting of disclosures: regulators of the regulator org only.
    w.ok(
        "HospitalMSP/patient1",
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "treat", "template": "opt-in", "grantee": {"kind": "org", "value": "HospitalMSP"}}),
    );
    w.ok(GREY, "request_access", &json!({"record_id": "rec-1", "purpose": "TREAT"}));
    let message = w.denied("LabMSP/fakeregulator", "disclosures", &json!({"subject": PATIENT}));
    assert!(message.contains("has not granted role regulator to LabMSP"), "{message}");
    let message = w.denied("LabMSP/fakeregulator", "break_glass", &json!({}));
    assert!(message.contains("has not granted role regulator to LabMSP"), "{message}");
    let trail = support::parse(&w.query(REG, "disclosures", &json!({"subject": PATIENT})));
    assert_eq!(trail["items"].as_array().map(Vec::len), Some(1), "the real regulator sees it: {trail}");

    // A provider role from a research org opens nothing a provider could.
    let message = support::parse_message(&w.invoke_with(
        "ResearchMSP/fakeprovider",
        "request_access",
        &json!({"record_id": "rec-1", "purpose": "ETREAT"}),
        &[("justification", &b"emergency"[..]), ("salt", support::SALT)],
    ));
    assert!(message.contains("has not granted role provider to ResearchMSP"), "{message}");
}

#[test]
fn role_grantees_in_consents_count_only_granted_providers() {
    let mut w = world_with_self_issued_roles();
    // emergency-only: a permit for the role provider.
    w.ok(
        "HospitalMSP/patient1",
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "em-1", "template": "emergency-only"}),
    );
    let message = w.denied(
        "ResearchMSP/fakeprovider",
        "request_access",
        &json!({"record_id": "rec-1", "purpose": "ETREAT"}),
    );
    assert!(message.contains("has not granted role provider to ResearchMSP"), "{message}");
    w.ok("LabMSP/tech1", "request_access", &json!({"record_id": "rec-1", "purpose": "ETREAT"}));
}

#[test]
fn without_grants_in_the_channel_config_no_role_is_honoured() {
    let mut w = World::new();
    w.stub.set_decoration("medfabric.roles", Bytes::from_static(b"{}"));
    let message = w.denied(PAYER, "deposit", &json!([SCI, 10]));
    assert!(message.contains("has not granted role payer to InsurerMSP"), "{message}");
    w.stub.set_decoration("medfabric.roles", Bytes::from_static(b"not json"));
    let message = w.denied(PAYER, "deposit", &json!([SCI, 10]));
    assert!(message.contains("role grants are corrupt"), "{message}");
}

#[test]
fn an_organization_account_is_spent_only_by_its_admins() {
    let mut w = World::new();
    w.ok(PAYER, "deposit", &json!(["org:HospitalMSP", 500]));
    let message = w.denied(GREY, "org_transfer", &json!([GREY, 500]));
    assert!(message.contains("org_transfer requires an admin of HospitalMSP"), "{message}");
    w.ok("HospitalMSP/Admin", "org_transfer", &json!([GREY, 200]));
    let mine = support::parse(&w.query(GREY, "balance", &json!(GREY)));
    assert_eq!(mine["balance"], 200);
    let org = support::parse(&w.query(GREY, "balance", &json!("org:HospitalMSP")));
    assert_eq!(org["balance"], 300);
}

/// Would a commit of `key` meanwhile invalidate a transaction that recorded `record`
/// (Fabric's MVCC and phantom checks: a point read of it, or a range covering it)?
fn conflicts(record: &medfabric_shim::TxRecord, key: &str) -> bool {
    let point = record.reads.get(support::CC).is_some_and(|r| r.contains_key(key));
    let range = record.ranges.get(support::CC).is_some_and(|ranges| {
        ranges.iter().any(|r| r.start.as_str() <= key && (r.end.is_empty() || key < r.end.as_str()))
    });
    point || range
}

#[test]
fn credits_arriving_meanwhile_never_invalidate_a_covered_debit() {
    let mut w = World::new();
    w.ok(PAYER, "deposit", &json!([SCI, 100]));
    // The deposit settles (older than the peers' clock-skew bound by a margin).
    w.advance(medfabric_medical::payments::SETTLE_SECONDS as i64 + 60);
    // A debit covered by settled money is endorsed…
    let debit = w.query(SCI, "transfer", &json!(["org:HospitalMSP", 40]));
    assert_eq!(debit.response.status, 200, "{}", debit.response.message);
    // …while tiny credits into the same account commit.
    for _ in 0..3 {
        let before: std::collections::BTreeSet<String> = w.snapshot().into_iter().map(|(k, _)| k).collect();
        w.ok(PAYER, "deposit", &json!([SCI, 1]));
        let new_keys: Vec<String> =
            w.snapshot().into_iter().map(|(k, _)| k).filter(|k| !before.contains(k)).collect();
        assert_eq!(new_keys.len(), 1, "one credit entry: {new_keys:?}");
        assert!(
            !conflicts(&debit.record, &new_keys[0]),
            "the credit {:?} would invalidate the debit (phantom read)",
            new_keys[0]
        );
    }
    // A debit the settled money does not cover reads the recent credits too.
    let large = w.query(SCI, "transfer", &json!(["org:HospitalMSP", 102]));
    assert_eq!(large.response.status, 200, "{}", large.response.message);
    let before: std::collections::BTreeSet<String> = w.snapshot().into_iter().map(|(k, _)| k).collect();
    w.ok(PAYER, "deposit", &json!([SCI, 1]));
    let newest = w.snapshot().into_iter().map(|(k, _)| k).find(|k| !before.contains(k)).expect("credit");
    assert!(conflicts(&large.record, &newest), "an uncovered debit must see concurrent credits");
}

/// Patient1 consents to research by scientist1 and scientist2; scientist1 makes an
/// audited access (the custodian endorses it on a network) and reads.
fn world_with_research_access() -> (World, String) {
    let mut w = world_with_self_issued_roles();
    for (consent_id, grantee) in [("r1", SCI), ("r2", "ResearchMSP/scientist2")] {
        w.ok(
            "HospitalMSP/patient1",
            "grant_consent",
            &json!({
                "patient_id": PATIENT,
                "consent_id": consent_id,
                "template": "research-opt-in",
                "grantee": {"kind": "actor", "value": grantee},
                "classes": ["lab"],
            }),
        );
    }
    let access = w.ok(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    let access_id = access["access_id"].as_str().expect("access id").to_owned();
    support::unseal(&w.read(SCI, "rec-1"));
    (w, access_id)
}

/// What two colluding organizations' peers can commit by running modified chaincode
/// (the chaincode policy needs any two): public writes, never the custodian's seal.
fn forge(w: &mut World, writes: Vec<(String, serde_json::Value)>) {
    let outcome = w.stub.transact(support::CC, move |stub| {
        for (key, value) in &writes {
            // Strings raw (index entries hold an event id), anything else as JSON.
            let bytes = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            stub.put_state(key, Bytes::from(bytes)).expect("write");
        }
        medfabric_shim::success("")
    });
    assert!(outcome.committed);
}

fn composite(kind: &str, parts: &[&str]) -> String {
    medfabric_shim::create_composite_key(kind, parts).expect("key")
}

#[test]
fn a_grant_the_custodian_did_not_endorse_serves_nothing() {
    let (mut w, access_id) = world_with_research_access();
    let sci2 = "ResearchMSP/scientist2";
    let state: std::collections::BTreeMap<String, Bytes> = w.snapshot().into_iter().collect();
    let grant: serde_json::Value =
        serde_json::from_slice(&state[&composite("grant", &["rec-1", SCI, &access_id])]).expect("grant");
    let event: serde_json::Value =
        serde_json::from_slice(&state[&composite("audit", &[&access_id])]).expect("event");

    // A grant for scientist2 pointing at scientist1's real (sealed) access.
    let mut borrowed = grant.clone();
    borrowed["actor"] = json!(sci2);
    forge(&mut w, vec![(composite("grant", &["rec-1", sci2, &access_id]), borrowed)]);
    let message = support::parse_message(&w.read(sci2, "rec-1"));
    assert!(
        message.contains("was not made by an audited access the custodian HospitalMSP endorsed"),
        "{message}"
    );

    // A complete forgery: grant and audit event of a fresh access id, no seal.
    let forged_id = "f".repeat(64);
    let mut forged_grant = grant;
    forged_grant["actor"] = json!(sci2);
    forged_grant["access_id"] = json!(forged_id);
    let forged_time = event["time"].as_u64().expect("time");
    let mut forged_event = event;
    forged_event["event_id"] = json!(forged_id);
    forged_event["tx_id"] = json!(forged_id);
    forged_event["actor"] = json!(sci2);
    forge(
        &mut w,
        vec![
            (composite("grant", &["rec-1", sci2, &forged_id]), forged_grant),
            (
                composite("auditpatient", &[PATIENT, &format!("{:020}", forged_time), &forged_id]),
                json!(forged_id),
            ),
            (composite("audit", &[&forged_id]), forged_event),
        ],
    );
    let message = support::parse_message(&w.read(sci2, "rec-1"));
    assert!(
        message.contains("was not made by an audited access the custodian HospitalMSP endorsed"),
        "{message}"
    );
    // The regulator sees the forged disclosure for what it is.
    let trail = support::parse(&w.query(REG, "disclosures", &json!({"subject": PATIENT})));
    let sealed: Vec<(String, bool)> = trail["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| (e["event_id"].as_str().unwrap_or_default().to_owned(), e["custodian_sealed"] == true))
        .collect();
    assert!(sealed.contains(&(access_id.clone(), true)), "the real access is sealed: {sealed:?}");
    assert!(sealed.contains(&(forged_id.clone(), false)), "the forged one is not: {sealed:?}");

    // The real path for scientist2 works (control).
    w.ok(sci2, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    support::unseal(&w.read(sci2, "rec-1"));
}

#[test]
fn grants_and_audit_events_carry_the_custodians_key_level_policy() {
    let (w, access_id) = world_with_research_access();
    let policy = medfabric_shim::statebased::peers_of_every(&["HospitalMSP"]).expect("policy");
    let keys: Vec<String> = w
        .snapshot()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| {
            k == &composite("grant", &["rec-1", SCI, &access_id])
                || k == &composite("audit", &[&access_id])
                || (k.starts_with("\u{0}audit") && k.ends_with(&format!("{access_id}\u{0}")))
        })
        .collect();
    assert_eq!(keys.len(), 6, "grant, event and four indexes: {keys:?}");
    for key in keys {
        assert_eq!(w.stub.validation_parameter(support::CC, &key), Some(policy.clone()), "{key:?}");
    }
}

#[test]
fn a_self_issued_regulator_cannot_review_a_break_glass() {
    let mut w = world_with_self_issued_roles();
    let bg = support::parse(&w.invoke_with(
        "LabMSP/tech1",
        "request_access",
        &json!({"record_id": "rec-1", "purpose": "ETREAT"}),
        &[("justification", &b"unconscious"[..]), ("salt", support::SALT)],
    ));
    let event_id = bg["access_id"].as_str().expect("id").to_owned();
    let outcome = w.invoke_with(
        "LabMSP/fakeregulator",
        "review_break_glass",
        &json!([event_id]),
        &[("note", &b"fine"[..]), ("salt", support::SALT)],
    );
    let message = support::parse_message(&outcome);
    assert!(message.contains("has not granted role regulator to LabMSP"), "{message}");
    let outcome = w.invoke_with(
        REG,
        "review_break_glass",
        &json!([event_id]),
        &[("note", &b"reviewed"[..]), ("salt", support::SALT)],
    );
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
}

#[test]
fn a_patient_registers_only_themselves_with_their_certificates_key() {
    let mut w = World::new();
    // No provider registers a patient (and so a key of its choosing).
    let message = w.denied(GREY, "register_patient", &w.registration(PATIENT));
    assert!(message.contains("register_patient requires role patient"), "{message}");
    // A patient registers neither someone else nor another key.
    let mut other = w.registration("HospitalMSP/patient2");
    let message = w.denied(PATIENT, "register_patient", &other);
    assert!(message.contains("registers only themselves"), "{message}");
    other["patient_id"] = json!(PATIENT);
    let message = w.denied(PATIENT, "register_patient", &other);
    assert!(message.contains("with the key of their own certificate"), "{message}");
    // Nor with another organization as custodian.
    let mut elsewhere = w.registration(PATIENT);
    elsewhere["custodian"] = json!("LabMSP");
    let message = w.denied(PATIENT, "register_patient", &elsewhere);
    assert!(message.contains("reserved to LabMSP"), "{message}");
    w.ok(PATIENT, "register_patient", &w.registration(PATIENT));
    let message = w.denied(PATIENT, "register_patient", &w.registration(PATIENT));
    assert!(message.contains("already registered"), "{message}");
}

#[test]
fn consents_are_the_patients_own() {
    let mut w = world_with_self_issued_roles();
    let opt_out = json!({"patient_id": PATIENT, "consent_id": "no", "template": "opt-out"});
    w.ok("HospitalMSP/patient1", "grant_consent", &opt_out);
    // A provider can neither revoke the patient's opt-out nor file consents directly.
    let message = w.denied(GREY, "revoke_consent", &json!([PATIENT, "no"]));
    assert!(message.contains("only with the patient's signature"), "{message}");
    let message = w.denied(
        GREY,
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "yes", "template": "opt-in", "grantee": {"kind": "org", "value": "HospitalMSP"}}),
    );
    assert!(message.contains("only with the patient's signature"), "{message}");

    // A signed document the patient did not sign is refused…
    let revoke =
        json!({"action": "revoke", "version": 2, "patient_id": PATIENT, "consent_id": "no"}).to_string();
    let statement = medfabric_medical::access::consent_statement(&revoke);
    let forged = json!({"document": revoke, "signature": w.sign(GREY, &statement)});
    let message = w.denied(GREY, "record_signed_consent", &forged);
    assert!(message.contains("signature does not verify"), "{message}");
    // …the patient's is recorded, once.
    let signed = json!({"document": revoke, "signature": w.sign("HospitalMSP/patient1", &statement)});
    let revoked = w.ok(GREY, "record_signed_consent", &signed);
    assert_eq!((revoked["status"].as_str(), revoked["version"].as_u64()), (Some("revoked"), Some(2)));
    assert_eq!(revoked["evidence"]["document"], revoke.as_str(), "the signed document is kept as evidence");
    let message = w.denied(GREY, "record_signed_consent", &signed);
    assert!(message.contains("already revoked"), "replayed: {message}");

    // An identity re-issued under the patient's name (another key), in any role, has
    // none of the patient's powers: not over consents, reads, money or escrows.
    w.ok(PAYER, "deposit", &json!([PATIENT, 50]));
    for role in ["patient", "provider"] {
        w.add("HospitalMSP", "patient1", Some(role));
        for (function, arg) in [
            ("grant_consent", json!({"patient_id": PATIENT, "consent_id": "again", "template": "opt-out"})),
            ("transfer", json!([GREY, 50])),
            ("balance", json!(PATIENT)),
        ] {
            let message = w.denied(PATIENT, function, &arg);
            assert!(
                message.contains("does not hold the key the patient registered"),
                "{role} {function}: {message}"
            );
        }
        let message = support::parse_message(&w.read(PATIENT, "rec-1"));
        assert!(message.contains("does not hold the key the patient registered"), "{message}");
    }
}

#[test]
fn consents_and_registrations_other_orgs_write_together_do_not_count() {
    let mut w = world_with_self_issued_roles();
    // Two colluding organizations commit a consent naming their researcher, and a
    // registration of a patient the hospital never registered (no custodian seal).
    let consent = json!({
        "consent_id": "forged", "patient_id": PATIENT, "version": 1, "status": "active",
        "grantee": {"kind": "actor", "value": SCI}, "decision": "permit",
        "rule": {"purposes": ["HRESCH"]}, "provisions": [], "fee": null, "template": null,
        "recorded_by": SCI, "time": 1, "tx_id": "t",
    });
    let key_of_sci = w.public_key(SCI);
    forge(
        &mut w,
        vec![
            (composite("consent", &[PATIENT, "forged"]), consent),
            (composite("consentgrantee", &[&format!("actor:{SCI}"), PATIENT, "forged"]), json!("1")),
            (
                composite("patient", &["HospitalMSP/ghost"]),
                json!({"patient_id": "HospitalMSP/ghost", "custodian": "HospitalMSP", "public_key": key_of_sci, "registered_by": SCI, "registered_at": 1}),
            ),
        ],
    );
    // It reads as a consent, and is refused for want of the custodian's seal…
    let message = w.denied("HospitalMSP/patient1", "get_consent", &json!([PATIENT, "forged"]));
    assert!(message.contains("was not recorded with its custodian HospitalMSP's endorsement"), "{message}");
    // …so no access comes of it.
    let message = w.denied(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    assert!(message.contains("no consent of patient"), "the forged consent is ignored: {message}");
    let message = w.denied(SCI, "get_patient", &json!("HospitalMSP/ghost"));
    assert!(message.contains("is not registered"), "{message}");
    // A consent the patient granted is sealed and counts (control).
    w.ok(
        "HospitalMSP/patient1",
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "real", "template": "research-opt-in", "grantee": {"kind": "actor", "value": SCI}, "classes": ["lab"]}),
    );
    w.ok(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
}

#[test]
fn a_sealed_grant_copied_with_other_terms_serves_nothing() {
    let (mut w, access_id) = world_with_research_access();
    let state: std::collections::BTreeMap<String, Bytes> = w.snapshot().into_iter().collect();
    let grant: serde_json::Value =
        serde_json::from_slice(&state[&composite("grant", &["rec-1", SCI, &access_id])]).expect("grant");
    // The copy names the real sealed access but lasts for ever as "break-glass".
    let mut copy = grant.clone();
    copy["authorization"] = json!("break-glass");
    copy["time"] = json!(4_000_000_000u64);
    forge(&mut w, vec![(composite("grant", &["rec-1", SCI, &"e".repeat(64)]), copy)]);
    // The patient revokes the research consent: the real grant stops, and the copy
    // must not serve either.
    w.ok("HospitalMSP/patient1", "revoke_consent", &json!([PATIENT, "r1"]));
    let message = support::parse_message(&w.read(SCI, "rec-1"));
    assert!(!message.is_empty() && !message.contains("awaits"), "{message}");
    let outcome = w.read(SCI, "rec-1");
    assert!(outcome.response.status >= 400, "a copied grant serves: {}", outcome.payload_str());
}

#[test]
fn free_text_is_stored_salted_and_refused_without_a_salt() {
    // The block carries the hash of every private value: unsalted, a guessed justification
    // could be confirmed by hashing guesses.
    let mut w = World::new();
    w.register_patient(PATIENT);
    w.create_record("rec-1", "lab", &["N"]);
    let etreat = json!({"record_id": "rec-1", "purpose": "ETREAT"});
    let before = w.snapshot();
    let refused = w.invoke_with(TECH, "request_access", &etreat, &[("justification", &b"unconscious"[..])]);
    assert!(refused.response.message.contains("free text needs a \"salt\""), "{}", refused.response.message);
    assert_eq!(w.snapshot(), before);
    let outcome = w.invoke_with(
        TECH,
        "request_access",
        &etreat,
        &[("justification", &b"unconscious"[..]), ("salt", support::SALT)],
    );
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    let stored = w.stub.state().private_entries("medical", "audit_HospitalMSP");
    let note = stored.iter().find(|(k, _)| k.contains("justification")).expect("the justification is kept");
    let value: serde_json::Value = serde_json::from_slice(&note.1).expect("json");
    assert_eq!(value["text"], "unconscious");
    assert_eq!(value["salt"].as_str().map(str::as_bytes), Some(support::SALT));
}
