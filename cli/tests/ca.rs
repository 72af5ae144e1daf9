//! Each organization's CA on a `network up` network: register and enroll an identity
//! with an attribute through `medfabric ca`, use it on the gateway (the medical
//! chaincode reads its `role`), then revoke it and install the CRL: the peers refuse it.

use std::path::Path;
use std::time::{Duration, Instant};

use medfabric_config::tls::ClientTls;
use medfabric_network::up;
use medfabric_sdk::Gateway;
use serde_json::json;

mod common;

fn medfabric(data: &Path, args: &[&str]) -> (bool, String, String) {
    let data = data.to_str().expect("path");
    common::medfabric(&[args, &["--data", data]].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_from_the_ca_works_until_revoked() {
    let network = common::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../network-config/dev.yaml"));
    let data = network.data.clone();
    let run = |args: &[&str]| medfabric(&data, args);

    let (ok, out, err) = run(&[
        "ca",
        "register",
        "--org",
        "HospitalMSP",
        "--id",
        "nurse7",
        "--secret",
        "pw7",
        "--attr",
        "role=provider:ecert",
        "--max-enrollments",
        "2",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("nurse7 registered with ca.hospital.medfabric.local; secret: pw7"), "{out}");
    let (ok, _, err) = run(&[
        "ca",
        "enroll",
        "--org",
        "HospitalMSP",
        "--id",
        "nurse7",
        "--secret",
        "wrong",
        "--out",
        "/nonexistent",
    ]);
    assert!(!ok && err.contains("Authentication failure"), "wrong secret: {err}");
    let msp = data.join("nurse7-msp");
    let msp_text = msp.to_string_lossy().into_owned();
    let (ok, out, err) = run(&[
        "ca",
        "enroll",
        "--org",
        "HospitalMSP",
        "--id",
        "nurse7",
        "--secret",
        "pw7",
        "--out",
        &msp_text,
    ]);
    assert!(ok, "{out}{err}");
    // Private keys, the enrolled one and the CA bootstrap registrar's, are owner-only; so
    // is the CA's registry of secret hashes.
    {
        use std::os::unix::fs::PermissionsExt;
        let registrar_keys: Vec<std::path::PathBuf> = std::fs::read_dir(data.join("ca-admins"))
            .expect("ca-admins")
            .map(|e| e.expect("entry").path().join("msp/keystore/priv_sk"))
            .collect();
        let registries: Vec<std::path::PathBuf> = std::fs::read_dir(data.join("data"))
            .expect("data")
            .map(|e| e.expect("entry").path().join("registry.json"))
            .filter(|p| p.exists())
            .collect();
        assert!(!registrar_keys.is_empty() && !registries.is_empty(), "{registrar_keys:?} {registries:?}");
        for file in std::iter::once(msp.join("keystore/priv_sk")).chain(registrar_keys).chain(registries) {
            let mode = std::fs::metadata(&file).expect("secret file").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
        }
    }
    let pem = std::fs::read(msp.join("signcerts/cert.pem")).expect("cert");
    let cert = medfabric_msp::Certificate::from_pem(&pem).expect("certificate");
    assert_eq!(cert.attributes().get("role").map(String::as_str), Some("provider"));
    assert_eq!(cert.organizational_units(), &["client".to_owned(), "hospital".to_owned()][..]);

    // The new identity on the Hospital peer's gateway (server-only TLS).
    let status = up::status(&data).expect("status");
    let peer = status.peer_of("HospitalMSP").expect("peer");
    let tls = ClientTls::from_files(std::slice::from_ref(peer.tls_ca_file.as_ref().expect("tls ca")), None)
        .expect("tls");
    let signer = Gateway::identity(&msp, "HospitalMSP").expect("identity");
    let network_handle =
        Gateway::connect(&peer.address, Some(&tls), signer).expect("gateway").network(&status.channel);
    network_handle.contract("kv").submit("put", &["ca-key", "from-the-ca"]).await.expect("kv put as nurse7");
    // The medical chaincode reads the certificate's role (granted to HospitalMSP): a
    // provider may not register a patient (patients register themselves).
    let medical = network_handle.contract("medical");
    let patient_key = hex::encode(medfabric_sdk::records::public_key_of_pem(&pem).expect("key"));
    let input = json!({"patient_id": "HospitalMSP/patient-ca", "custodian": "HospitalMSP", "public_key": patient_key}).to_string();
    let refused = medical.submit("register_patient", &[input.as_str()]).await.expect_err("a provider");
    assert!(
        refused
            .to_string()
            .contains("register_patient requires role patient; HospitalMSP/nurse7 has role provider"),
        "{refused}"
    );

    // Revoke and install the CRL: within seconds the peers refuse the identity.
    let (ok, out, err) = run(&[
        "ca",
        "revoke",
        "--org",
        "HospitalMSP",
        "--id",
        "nurse7",
        "--reason",
        "keycompromise",
        "--install",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("1 certificate(s) revoked")
            && out.contains("CRL installed in 2 peer MSP(s)")
            && out.contains("validation of blocks is unchanged"),
        "the CLI says what the CRL governs: {out}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match network_handle.contract("kv").evaluate("get", &["ca-key"]).await {
            Err(e) if e.to_string().contains("access denied") || e.to_string().contains("creator") => break,
            other => assert!(Instant::now() < deadline, "the revoked identity is still accepted: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, _, err) = run(&[
        "ca",
        "enroll",
        "--org",
        "HospitalMSP",
        "--id",
        "nurse7",
        "--secret",
        "pw7",
        "--out",
        &msp_text,
    ]);
    assert!(!ok && err.contains("Authentication failure"), "a revoked identity cannot enroll: {err}");
    drop(network);
}

/// Registers and enrolls a Lab provider `id` with `secret`; its MSP folder.
fn provider(data: &Path, id: &str, secret: &str) -> std::path::PathBuf {
    let register = [
        "ca",
        "register",
        "--org",
        "LabMSP",
        "--id",
        id,
        "--secret",
        secret,
        "--attr",
        "role=provider:ecert",
    ];
    let (ok, out, err) = medfabric(data, &register);
    assert!(ok, "{out}{err}");
    let msp = data.join(format!("{id}-msp"));
    let out_dir = msp.to_str().expect("path");
    let (ok, out, err) = medfabric(
        data,
        &["ca", "enroll", "--org", "LabMSP", "--id", id, "--secret", secret, "--out", out_dir],
    );
    assert!(ok, "{out}{err}");
    msp
}

/// `ca revoke --update-channel`: the org's admin puts the new CRL in the channel config's
/// MSP, so the identity is refused everywhere (its peer's gateway, every peer's and the
/// orderer's admission, validation), not only by peers that installed the CRL; the config
/// block verifies offline as authorised by the org's admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_in_the_channel_config_holds_everywhere() {
    let network = common::start(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../network-config/dev.yaml"));
    let data = network.data.clone();
    let run = |args: &[&str]| medfabric(&data, args);
    let msp = provider(&data, "tech9", "pw9");
    let status = up::status(&data).expect("status");
    let peer = status.peer_of("HospitalMSP").expect("peer");
    let tls = ClientTls::from_files(std::slice::from_ref(peer.tls_ca_file.as_ref().expect("tls ca")), None)
        .expect("tls");
    let signer = Gateway::identity(&msp, "LabMSP").expect("identity");
    let network_handle =
        Gateway::connect(&peer.address, Some(&tls), signer).expect("gateway").network(&status.channel);
    network_handle.contract("kv").submit("put", &["tech9", "before"]).await.expect("kv put as tech9");

    // Revoked by the Lab's CA, and put in the channel config by the Lab's admin.
    let (ok, out, err) =
        run(&["ca", "revoke", "--org", "LabMSP", "--id", "tech9", "--update-channel", "--json"]);
    assert!(ok, "{out}{err}");
    let answer: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(answer["enforced_for"], json!(["admission", "validation"]));
    assert_eq!(answer["sequence"], 1, "{answer}");
    let config_block = answer["config_block"].as_u64().expect("block");
    let (ok, out, err) = run(&["channel", "config", "fetch", "--as", "Admin@OrdererMSP"]);
    assert!(ok, "{err}");
    let document: serde_json::Value = serde_json::from_str(&out).expect("json");
    let crls = &document["channel_group"]["groups"]["Application"]["groups"]["Lab"]["values"]["MSP"]["value"]
        ["config"]["revocation_list"];
    assert_eq!(crls.as_array().map(Vec::len), Some(1), "{crls}");

    // The identity is refused from that block on, on a peer that installed nothing.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match network_handle.contract("kv").submit("put", &["tech9", "after"]).await {
            Err(e) if e.to_string().contains("access denied: channel [medchannel] creator org unknown") => {
                break;
            }
            other => assert!(Instant::now() < deadline, "the revoked identity is still accepted: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The rest of the Lab is unaffected.
    let (ok, out, err) = run(&["invoke", "kv", "put", "lab", "still-here", "--as", "tech1"]);
    assert!(ok, "another Lab identity still transacts: {out}{err}");
    // A second revocation by the same CA replaces its CRL (which lists both) in the config.
    provider(&data, "tech10", "pw10");
    let (ok, out, err) =
        run(&["ca", "revoke", "--org", "LabMSP", "--id", "tech10", "--update-channel", "--json"]);
    assert!(ok, "{out}{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).expect("json")["sequence"], 2);
    let (ok, out, err) = run(&["channel", "config", "fetch", "--as", "Admin@OrdererMSP"]);
    assert!(ok, "{err}");
    let document: serde_json::Value = serde_json::from_str(&out).expect("json");
    let crls = &document["channel_group"]["groups"]["Application"]["groups"]["Lab"]["values"]["MSP"]["value"]
        ["config"]["revocation_list"];
    assert_eq!(crls.as_array().map(Vec::len), Some(1), "one CRL per CA: {crls}");
    match network_handle.contract("kv").submit("put", &["tech9", "again"]).await {
        Err(e) if e.to_string().contains("creator org unknown") => {}
        other => panic!("tech9 is still revoked under the newer CRL: {other:?}"),
    }
    let blocks = data.join("exported");
    medfabric_cli::ledger::export(&peer.data_dir.join("ledger"), &status.channel, &blocks).expect("export");
    let genesis = data.join(format!("channel-artifacts/{}.block", status.channel));
    let summary = medfabric_cli::ledger::verify(&blocks, &genesis).expect("verify");
    assert!(summary.ok && summary.blocks > config_block, "{:?}", summary.first_problem);
    drop(network);
}
