//! Data keys are released only through a committed, consent-checked access (the trust
//! model, item 2): at write time a record's key is wrapped for the patient and the
//! custodian's record key only; a grantee's wrap exists only in a `read_record` answer, made
//! on the custodian's peer under a live grant, to the grantee's certificate key.

mod support;

use serde_json::{Value, json};
use support::{ALICE, GREY, PATIENT, SCI, SCI2, TECH, World};

const COLLECTION: &str = "_implicit_org_HospitalMSP";

fn record_input(record_id: &str, commitment: &str) -> Value {
    json!({"record_id": record_id, "patient_id": PATIENT, "resource_type": "Observation",
           "data_class": "lab", "security_labels": ["N"], "commitment": commitment})
}

/// Tries `create_record` with `wrapped` (JSON) in place of the SDK's two wraps; the message.
fn create_with(w: &mut World, record_id: &str, edit: impl FnOnce(&mut Value, &World)) -> (i32, String) {
    let payload = w.payload(record_id, 1, b"secret lab value");
    let mut wrapped: Value = serde_json::from_str(&payload.wrapped).expect("json");
    edit(&mut wrapped, w);
    let wrapped = wrapped.to_string();
    let before = w.snapshot();
    let labels = json!({"labels": [], "salt": "5a".repeat(32)}).to_string();
    let outcome = w.invoke_with(
        GREY,
        "create_record",
        &record_input(record_id, &payload.commitment),
        &[
            ("ciphertext", &payload.ciphertext),
            ("wrapped_keys", wrapped.as_bytes()),
            ("sensitive_labels", labels.as_bytes()),
        ],
    );
    if outcome.response.status != 200 {
        assert_eq!(w.snapshot(), before, "a refused create_record changed state");
        assert!(
            w.stub
                .private_value(
                    "medical",
                    COLLECTION,
                    &format!("\u{0}ct\u{0}{record_id}\u{0}00000000000000000001\u{0}")
                )
                .is_none()
        );
    }
    (outcome.response.status, outcome.response.message)
}

/// `create_record` with the SDK's payload and labels but its input changed by `edit`,
/// expected to be refused with no change of state; the message.
fn refused_create(w: &mut World, edit: impl FnOnce(&mut Value)) -> String {
    let payload = w.payload("r-refused", 1, b"x");
    let mut input = record_input("r-refused", &payload.commitment);
    edit(&mut input);
    let labels = json!({"labels": [], "salt": "5a".repeat(32)}).to_string();
    let before = w.snapshot();
    let refused = w.invoke_with(
        GREY,
        "create_record",
        &input,
        &[
            ("ciphertext", &payload.ciphertext),
            ("wrapped_keys", payload.wrapped.as_bytes()),
            ("sensitive_labels", labels.as_bytes()),
        ],
    );
    assert!(refused.response.status >= 400, "create_record should be refused: {}", refused.payload_str());
    assert_eq!(w.snapshot(), before, "a refused create_record changed state");
    refused.response.message
}

#[test]
fn a_data_key_is_wrapped_for_the_patient_and_the_custodians_record_key_only() {
    let mut w = World::new();
    w.register_patient(PATIENT);
    // A wrap for anyone else — the author, a colleague — is refused: keys for others come
    // only from a grant.
    let grey_key = support::decode_hex(&w.public_key(GREY));
    let (status, message) = create_with(&mut w, "r-extra", |wrapped, w| {
        let key = &w.data_keys[&("r-extra".to_owned(), 1)];
        let extra = medfabric_medical::keywrap::wrap(key, &grey_key, "r-extra", 1).expect("wrap");
        wrapped[GREY] = json!(support::hex(&extra));
    });
    assert_eq!(status, 500);
    assert!(
        message.contains("must hold exactly the wraps for \"patient\" and \"org:HospitalMSP\""),
        "{message}"
    );
    let (status, message) = create_with(&mut w, "r-no-org", |wrapped, _| {
        drop(wrapped.as_object_mut().expect("map").remove("org:HospitalMSP"))
    });
    assert_eq!(status, 500, "{message}");
    // A custodian wrap the custodian's record key cannot open (made to the Lab's key):
    // the Hospital's peer refuses to endorse a record it could never release.
    let lab_key = w.record_keys["LabMSP"].public_key_sec1().to_vec();
    let (status, message) = create_with(&mut w, "r-wrong-org", |wrapped, w| {
        let key = &w.data_keys[&("r-wrong-org".to_owned(), 1)];
        let wrong = medfabric_medical::keywrap::wrap(key, &lab_key, "r-wrong-org", 1).expect("wrap");
        wrapped["org:HospitalMSP"] = json!(support::hex(&wrong));
    });
    assert_eq!(status, 500);
    assert!(message.contains("does not open the ciphertext"), "{message}");
    // The two wraps of a good record: nothing else is stored.
    w.create_record("rec-1", "lab", &["N"]);
    let private = w.stub.state().private_entries("medical", COLLECTION);
    let record_entries: Vec<&String> =
        private.iter().map(|(k, _)| k).filter(|k| k.contains("rec-1") && !k.contains("seclabels")).collect();
    assert_eq!(record_entries.len(), 3, "ciphertext + two wraps: {record_entries:?}");
}

#[test]
fn nothing_stored_opens_for_anyone_but_the_patient() {
    // What DeliverWithPrivateData hands any client of the custodian, and what a member
    // peer's files hold: every private value of the collection, tried with every user key.
    let mut w = World::new();
    w.register_patient(PATIENT);
    w.create_record("rec-1", "lab", &["N"]);
    let private = w.stub.state().private_entries("medical", COLLECTION);
    let mut opened_by = Vec::new();
    for (key, value) in &private {
        let Some(bytes) =
            std::str::from_utf8(value).ok().filter(|t| t.chars().all(|c| c.is_ascii_hexdigit()))
        else {
            continue;
        };
        let bytes = support::decode_hex(bytes);
        for who in [ALICE, GREY, "HospitalMSP/nurse1", "HospitalMSP/Admin", TECH, SCI] {
            if medfabric_medical::keywrap::unwrap(&bytes, w.secret(who), "rec-1", 1).is_ok() {
                opened_by.push((key.clone(), who));
            }
        }
    }
    assert_eq!(opened_by.len(), 1, "only the patient's own wrap opens, for her: {opened_by:?}");
    assert_eq!(opened_by[0].1, ALICE);
}

fn research_access(w: &mut World) -> String {
    w.ok(
        ALICE,
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "c-research", "template": "research-opt-in",
                "grantee": {"kind": "actor", "value": SCI}, "classes": ["lab"]}),
    );
    let access = w.ok(SCI, "request_access", &json!({"record_id": "rec-1", "purpose": "HRESCH"}));
    access["access_id"].as_str().expect("access id").to_owned()
}

#[test]
fn a_live_grant_releases_the_key_to_the_grantee_on_the_custodians_peer_only() {
    let mut w = World::new();
    w.register_patient(PATIENT);
    w.create_record("rec-1", "lab", &["N"]);
    // The custodian's own provider has no grant: no key, like everyone else.
    let refused = w.read(GREY, "rec-1");
    assert!(
        refused.response.message.contains("holds no committed access grant"),
        "{}",
        refused.response.message
    );
    assert!(refused.response.payload.is_empty());
    research_access(&mut w);
    let answer = support::unseal(&w.read(SCI, "rec-1"));
    assert_eq!(answer["key_holder"], SCI);
    let plaintext = support::plaintext_of("rec-1");
    assert_eq!(w.decrypt(SCI, &answer).expect("released to the grantee"), plaintext.as_bytes());
    for other in [SCI2, GREY, ALICE] {
        assert!(w.decrypt(other, &answer).is_err(), "{other} cannot open the grantee's release");
    }
    // Nothing was stored by the release (an evaluate): the collection still holds two wraps.
    let wraps = w
        .stub
        .state()
        .private_entries("medical", COLLECTION)
        .into_iter()
        .filter(|(k, _)| k.starts_with("\u{0}wk\u{0}rec-1"))
        .count();
    assert_eq!(wraps, 2);
    // Another organization's peer (even one holding its own record key), a peer with no
    // key, and a peer whose key is not the published one release nothing.
    w.on_peer_of(Some("LabMSP"));
    let lab_peer = w.read(SCI, "rec-1");
    assert!(
        lab_peer.response.message.contains("does not hold HospitalMSP's record key"),
        "{}",
        lab_peer.response.message
    );
    w.on_peer_of(None);
    let no_key = w.read(SCI, "rec-1");
    assert!(
        no_key.response.message.contains("does not hold HospitalMSP's record key"),
        "{}",
        no_key.response.message
    );
    let impostor = medfabric_ca::KeyPair::generate();
    w.stub.set_decoration(
        "medfabric.orgkey",
        bytes::Bytes::from(
            json!({"msp_id": "HospitalMSP", "private_key": support::hex(&impostor.secret().to_bytes())})
                .to_string(),
        ),
    );
    let forged = w.read(SCI, "rec-1");
    assert!(
        forged.response.message.contains("not the one the channel config publishes"),
        "{}",
        forged.response.message
    );
    w.on_peer_of(Some("HospitalMSP"));
    // Revocation is forward-only: after it, the custodian's peer releases nothing more.
    w.ok(ALICE, "revoke_consent", &json!([PATIENT, "c-research"]));
    let revoked = w.read(SCI, "rec-1");
    assert!(revoked.response.message.contains("no longer in force"), "{}", revoked.response.message);
    assert!(revoked.response.payload.is_empty());
}

#[test]
fn the_record_key_is_the_published_one_and_erasure_destroys_every_copy() {
    let mut w = World::new();
    w.register_patient(PATIENT);
    let published = support::parse(&w.query(TECH, "record_key", &json!("HospitalMSP")));
    assert_eq!(published["public_key"], support::hex(w.record_keys["HospitalMSP"].public_key_sec1()));
    let unknown = w.query(TECH, "record_key", &json!("NoSuchMSP"));
    assert!(
        unknown.response.message.contains("publishes no record key of NoSuchMSP"),
        "{}",
        unknown.response.message
    );
    w.create_record("rec-1", "lab", &["N"]);
    research_access(&mut w);
    w.ok(ALICE, "erase_record", &json!({"record_id": "rec-1"}));
    let left: Vec<String> = w
        .stub
        .state()
        .private_entries("medical", COLLECTION)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.contains("rec-1"))
        .collect();
    assert!(left.is_empty(), "ciphertext and both wraps purged: {left:?}");
    let read = w.read(SCI, "rec-1");
    assert!(read.response.message.contains("was erased"), "{}", read.response.message);
}

#[test]
fn sensitive_labels_stay_with_the_custodian_and_gate_the_release() {
    let mut w = World::new();
    w.register_patient(PATIENT);
    // In the public metadata a sensitive label is refused: arguments land in blocks.
    let message = refused_create(&mut w, |input| input["security_labels"] = json!(["N", "HIV"]));
    assert!(message.contains("\"HIV\" identifies a condition"), "{message}");
    // Without the salted transient entry: refused too.
    let unlabelled = w.payload("r-no-labels", 1, b"x");
    let refused = w.invoke_with(
        GREY,
        "create_record",
        &record_input("r-no-labels", &unlabelled.commitment),
        &[("ciphertext", &unlabelled.ciphertext), ("wrapped_keys", unlabelled.wrapped.as_bytes())],
    );
    assert!(
        refused.response.message.contains("must carry \"sensitive_labels\""),
        "{}",
        refused.response.message
    );
    // Through the transient map: public state and the block's arguments name no label.
    let meta = w.create_labelled("rec-hiv", "lab", &["N"], &["HIV"]);
    assert_eq!(meta["security_labels"], json!(["N"]));
    for (key, value) in w.snapshot() {
        assert!(!String::from_utf8_lossy(&value).contains("HIV"), "public {key:?} names the label");
    }
    let held = w
        .stub
        .private_value("medical", "audit_HospitalMSP", "\u{0}seclabels\u{0}rec-hiv\u{0}")
        .expect("held");
    assert!(String::from_utf8_lossy(&held).contains("HIV"), "the audit collection holds the label");
    // A research consent that does not name HIV: the access is recorded, but the custodian's
    // peer, which knows the label, releases no key.
    w.ok(
        ALICE,
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "c-general", "template": "research-opt-in",
                "grantee": {"kind": "actor", "value": SCI}, "classes": ["lab"]}),
    );
    w.ok(SCI, "request_access", &json!({"record_id": "rec-hiv", "purpose": "HRESCH"}));
    let refused = w.read(SCI, "rec-hiv");
    assert!(
        refused
            .response
            .message
            .contains("the consents of patient HospitalMSP/patient1 do not permit releasing rec-hiv"),
        "{}",
        refused.response.message
    );
    assert!(refused.response.payload.is_empty());
    // A consent that names HIV: released.
    w.ok(
        ALICE,
        "grant_consent",
        &json!({"patient_id": PATIENT, "consent_id": "c-hiv", "terms": {
            "grantee": {"kind": "actor", "value": SCI}, "decision": "permit",
            "purposes": ["HRESCH"], "labels": ["HIV"]}}),
    );
    // Requested without naming it, the access is still under the general consent: no key.
    w.ok(SCI, "request_access", &json!({"record_id": "rec-hiv", "purpose": "HRESCH"}));
    assert_eq!(w.read(SCI, "rec-hiv").response.status, 500);
    // Under c-hiv, named: the record is taken to carry HIV here, checked at the release.
    let access = w.ok(
        SCI,
        "request_access",
        &json!({"record_id": "rec-hiv", "purpose": "HRESCH", "consent_id": "c-hiv"}),
    );
    assert_eq!(access["authorization"], "c-hiv@1");
    let answer = support::unseal(&w.read(SCI, "rec-hiv"));
    assert_eq!(w.decrypt(SCI, &answer).expect("released"), support::plaintext_of("rec-hiv").as_bytes());
    // Erasure purges the labels with the rest.
    w.ok(ALICE, "erase_record", &json!({"record_id": "rec-hiv"}));
    for collection in ["audit_HospitalMSP", COLLECTION] {
        let left = w.stub.private_value("medical", collection, "\u{0}seclabels\u{0}rec-hiv\u{0}");
        assert!(left.is_none(), "{collection}");
    }
}

#[test]
fn the_public_kind_of_a_record_names_no_condition() {
    let mut w = World::new();
    w.register_patient(PATIENT);
    for (field, value, expected) in [
        ("data_class", "mental-health", "data class \"mental-health\" is not one of"),
        ("data_class", "hiv-care", "data class \"hiv-care\" is not one of"),
        ("resource_type", "HIVViralLoad", "resource type \"HIVViralLoad\" is not one of"),
    ] {
        let message = refused_create(&mut w, |input| input[field] = json!(value));
        assert!(message.contains(expected), "{message}");
    }
}
