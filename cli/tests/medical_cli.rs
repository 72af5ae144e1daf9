//! The medical CLI as a person uses it, on the dev network (`network-config/dev.yaml`):
//! register a patient, add an encrypted record, consent, access, decrypt, audit; then
//! `bench medical`, whose accesses the regulator's trail must count.

use std::path::Path;

mod common;

/// Runs `medfabric ARGS --data DATA`; (success, stdout, stderr).
fn medfabric(data: &Path, args: &[&str]) -> (bool, String, String) {
    let data = data.to_str().expect("path");
    common::medfabric(&[args, &["--data", data]].concat())
}

fn ok(data: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = medfabric(data, args);
    assert!(success, "medfabric {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn refused(data: &Path, args: &[&str]) -> String {
    let (success, stdout, stderr) = medfabric(data, args);
    assert!(!success, "medfabric {args:?} should fail:\n{stdout}");
    stderr
}

#[test]
fn a_record_from_registration_to_the_audit_report() {
    let network = common::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../network-config/dev.yaml"));
    let data = network.data.as_path();
    let registered = ok(data, &["patient", "register", "--as", "alice"]);
    assert!(
        registered.contains("patient HospitalMSP/alice registered, custodian HospitalMSP"),
        "{registered}"
    );
    let created = ok(
        data,
        &[
            "record",
            "create",
            "--id",
            "cli-1",
            "--patient",
            "HospitalMSP/alice",
            "--class",
            "lab",
            "--text",
            "Ferritin 12 ng/mL",
            "--as",
            "drhouse",
        ],
    );
    assert!(created.contains("record cli-1 v1 of HospitalMSP/alice"), "{created}");
    let shown = ok(data, &["record", "show", "cli-1", "--as", "tech1", "--json"]);
    assert!(!shown.contains("Ferritin"), "metadata only: {shown}");
    assert_eq!(
        ok(data, &["record", "read", "cli-1", "--as", "alice"]),
        "Ferritin 12 ng/mL",
        "the patient decrypts"
    );
    let denied = refused(data, &["record", "read", "cli-1", "--as", "tech1"]);
    assert!(denied.contains("holds no committed access grant"), "no access yet: {denied}");
    let denied = refused(data, &["access", "request", "cli-1", "--purpose", "TREAT", "--as", "tech1"]);
    assert!(denied.contains("no consent of patient HospitalMSP/alice permits LabMSP/tech1"), "{denied}");
    let granted = ok(
        data,
        &[
            "consent",
            "grant",
            "--patient",
            "HospitalMSP/alice",
            "--id",
            "lab-treat",
            "--template",
            "opt-in",
            "--grantee",
            "org:LabMSP",
            "--as",
            "alice",
        ],
    );
    assert!(granted.contains("consent lab-treat@1 of HospitalMSP/alice: active permit"), "{granted}");
    let access = ok(data, &["access", "request", "cli-1", "--purpose", "TREAT", "--as", "tech1"]);
    assert!(access.contains("authorised by lab-treat@1"), "{access}");
    assert_eq!(
        ok(data, &["record", "read", "cli-1", "--as", "tech1"]),
        "Ferritin 12 ng/mL",
        "tech1 decrypts"
    );
    let report = ok(data, &["audit", "disclosures", "HospitalMSP/alice", "--as", "auditor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert_eq!(report["count"], 1);
    assert_eq!(report["items"][0]["actor"], "LabMSP/tech1");
    assert_eq!(report["items"][0]["consent"], "lab-treat@1");
    let fhir = ok(data, &["audit", "disclosures", "HospitalMSP/alice", "--as", "auditor", "--fhir"]);
    assert!(fhir.contains("\"resourceType\": \"AuditEvent\""), "{fhir}");
    let denied = refused(data, &["audit", "disclosures", "HospitalMSP/alice", "--as", "tech1"]);
    assert!(denied.contains("disclosures requires role regulator"), "{denied}");

    // The medical bench sets up its own record and consent, runs audited accesses and
    // counts them in the regulator's trail.
    let bench = ok(data, &["bench", "medical", "access", "-n", "24", "-c", "6", "--json"]);
    let bench: serde_json::Value = serde_json::from_str(&bench).expect("json");
    assert_eq!(bench["actor"], "LabMSP/tech1", "{bench}");
    assert_eq!(bench["load"]["valid"], 24, "{bench}");
    assert_eq!(bench["load"]["failed"], 0, "{bench}");
    assert_eq!(bench["check"]["found"], 24, "{bench}");
    assert_eq!(bench["check"]["ok"], true, "{bench}");
    let report = ok(data, &["audit", "disclosures", "HospitalMSP/alice", "--as", "auditor", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    assert_eq!(report["count"], 25, "the bench's accesses are disclosures of alice's records too");
    let no_payer = refused(data, &["bench", "medical", "deposit", "-n", "1"]);
    assert!(no_payer.contains("the network has no user with role payer"), "{no_payer}");
    drop(network);
}
