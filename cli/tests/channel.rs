//! Channel config updates through the CLI, on a network of processes (TLS on): fetch the
//! config as a document, edit it, compute the update, sign it where each admin's key is,
//! submit it to the orderer. Under-signed and stale updates are refused with Fabric's
//! status and change nothing; accepted ones reach every peer, which validates them again,
//! and `ledger verify` re-derives that each config block was authorised.

use std::path::Path;

use medfabric_network::up;

mod common;

const TOPOLOGY: &str = r#"
channel: wardchannel
orderer:
  name: OrdererOrg
  msp_id: OrdererMSP
  domain: orderer.ward.local
  batch: { max_message_count: 100, absolute_max_bytes: 10485760, preferred_max_bytes: 2097152, batch_timeout_ms: 100 }
  consenters:
    - { name: orderer0, host: 127.0.0.1, port: 1, cluster_port: 1, operations_port: 1 }
organizations:
  - name: Hospital
    msp_id: HospitalMSP
    domain: hospital.ward.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: drgrey, type: client, attrs: { role: provider } }
  - name: Lab
    msp_id: LabMSP
    domain: lab.ward.local
    ca: { host: 127.0.0.1, port: 1 }
    peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
    users:
      - { name: tech1, type: client, attrs: { role: provider } }
roles:
  provider: [HospitalMSP, LabMSP]
chaincodes:
  - name: kv
    version: "1.0"
    sequence: 1
    endorsement_policy: "OR('HospitalMSP.peer', 'LabMSP.peer')"
"#;

fn medfabric(args: &[&str]) -> (bool, String, String) {
    common::medfabric(args)
}

fn ok(args: &[&str]) -> String {
    let (success, stdout, stderr) = medfabric(args);
    assert!(success, "medfabric {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn refused(args: &[&str]) -> String {
    let (success, stdout, stderr) = medfabric(args);
    assert!(!success, "medfabric {args:?} should fail:\n{stdout}");
    stderr
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Each peer's ledger height, once all agree with the orderer's config (polling up to 30 s).
fn peer_heights(data: &Path, channel: &str, at_least: u64) -> Vec<u64> {
    let status = up::status(data).expect("status");
    for _ in 0..300 {
        let heights: Vec<u64> = status
            .peers()
            .map(|p| {
                medfabric_cli::ledger::state(&p.data_dir.join("ledger"), channel).map_or(0, |s| s.height)
            })
            .collect();
        if heights.iter().all(|h| *h >= at_least) {
            return heights;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("peers did not reach height {at_least}");
}

#[test]
fn a_config_update_is_fetched_edited_signed_and_submitted() {
    let (network, dir) = common::start_yaml(TOPOLOGY);
    let data = network.data.to_str().expect("path");
    let work = dir.path();
    let path = |name: &str| work.join(name).to_str().expect("path").to_owned();
    let (config, edited, update) = (path("config.yaml"), path("edited.yaml"), path("update.pb"));
    let orderer_admin = ["--data", data, "--as", "Admin@OrdererMSP"];

    // Fetch the config as YAML, edit the batch timeout, compute the update.
    ok(&[&["channel", "config", "fetch", "--out", &config][..], &orderer_admin].concat());
    let text = std::fs::read_to_string(&config).expect("config document");
    let mut document: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    assert_eq!(document["channel_id"].as_str(), Some("wardchannel"));
    assert_eq!(document["sequence"].as_u64(), Some(0));
    let timeout =
        &mut document["channel_group"]["groups"]["Orderer"]["values"]["BatchTimeout"]["value"]["timeout"];
    assert_eq!(timeout.as_str(), Some("100ms"));
    *timeout = "400ms".into();
    std::fs::write(&edited, serde_yaml::to_string(&document).expect("yaml")).expect("write");
    let computed =
        json(&ok(&["channel", "config", "update", "--from", &config, "--to", &edited, "--out", &update]));
    assert_eq!(
        computed["changes"],
        serde_json::json!({"[Value]  /Channel/Orderer/BatchTimeout": {"version": 1, "mod_policy": "Admins", "value": {"timeout": "400ms"}}})
    );
    assert_eq!(computed["signed_by"], serde_json::json!([]));

    // Unsigned, or signed by an application admin: refused, nothing ordered.
    let before = peer_heights(network.data.as_path(), "wardchannel", 1);
    let why = refused(&[&["channel", "config", "submit", &update][..], &orderer_admin].concat());
    assert!(
        why.contains("BAD_REQUEST")
            && why.contains("policy for [Value]  /Channel/Orderer/BatchTimeout not satisfied"),
        "{why}"
    );
    // Signing shows the changes and signs nothing without --yes.
    let why = refused(&["channel", "config", "sign", &update, "--data", data, "--as", "Admin@HospitalMSP"]);
    assert!(why.contains("nothing signed: review the changes above"), "{why}");
    let unsigned = json(&ok(&["channel", "config", "inspect", &update]));
    assert_eq!(unsigned["signed_by"], serde_json::json!([]));
    ok(&["channel", "config", "sign", &update, "--yes", "--data", data, "--as", "Admin@HospitalMSP"]);
    let why = refused(&[&["channel", "config", "submit", &update][..], &orderer_admin].concat());
    assert!(
        why.contains("0 sub-policies were satisfied, but this policy requires 1 of the 'Admins'"),
        "{why}"
    );
    // The orderer admin's signature, added with its MSP folder, as on its own host.
    let status = up::status(network.data.as_path()).expect("status");
    let admin = status.user("Admin@OrdererMSP").expect("orderer admin");
    let signed = ok(&[
        "channel",
        "config",
        "sign",
        &update,
        "--yes",
        "--msp",
        admin.msp_dir.to_str().expect("path"),
        "--msp-id",
        "OrdererMSP",
    ]);
    assert_eq!(
        json(&signed)["signed_by"],
        serde_json::json!(["HospitalMSP/Admin@hospital.ward.local", "OrdererMSP/Admin@orderer.ward.local"])
    );
    assert_eq!(peer_heights(network.data.as_path(), "wardchannel", 1), before, "refusals ordered nothing");

    // Signed as the orderer's admins require: in, as the next config.
    let submitted = json(&ok(&[&["channel", "config", "submit", &update][..], &orderer_admin].concat()));
    assert_eq!((submitted["status"].as_str(), submitted["sequence"].as_u64()), (Some("SUCCESS"), Some(1)));
    let config_block = submitted["config_block"].as_u64().expect("block");
    // The same update again is stale.
    let why = refused(&[&["channel", "config", "submit", &update][..], &orderer_admin].concat());
    assert!(why.contains("to version 1, but key is at version 1"), "{why}");
    // Every peer took the config block (its validator checked the update again).
    peer_heights(network.data.as_path(), "wardchannel", config_block + 1);
    let fetched = json(&ok(&[&["channel", "config", "fetch"][..], &orderer_admin].concat()));
    assert_eq!(
        fetched["channel_group"]["groups"]["Orderer"]["values"]["BatchTimeout"]["value"]["timeout"],
        "400ms"
    );

    // The short form.
    let batch = json(&ok(&[&["channel", "set-batch", "--max-messages", "7"][..], &orderer_admin].concat()));
    assert_eq!(batch["sequence"].as_u64(), Some(2));
    let why =
        refused(&["channel", "set-batch", "--max-messages", "0", "--data", data, "--as", "Admin@OrdererMSP"]);
    assert!(
        why.contains("Attempted to set the batch size max message count to an invalid value: 0"),
        "{why}"
    );

    // Transactions still commit under the new settings, and every block verifies offline,
    // config blocks' authorisation included.
    ok(&["invoke", "kv", "put", "after", "config", "--data", data, "--as", "drgrey"]);
    let blocks = work.join("blocks");
    let hospital = status.peer_of("HospitalMSP").expect("peer");
    let height = peer_heights(network.data.as_path(), "wardchannel", config_block + 3)[0];
    medfabric_cli::ledger::export(&hospital.data_dir.join("ledger"), "wardchannel", &blocks).expect("export");
    let genesis = network.data.join("channel-artifacts/wardchannel.block");
    let summary = medfabric_cli::ledger::verify(&blocks, &genesis).expect("verify");
    assert!(summary.ok, "{:?}", summary.first_problem);
    assert_eq!(summary.blocks, height);
}

const CLINIC: &str = r#"
name: Clinic
msp_id: ClinicMSP
domain: clinic.ward.local
ca: { host: 127.0.0.1, port: 1 }
peers: [ { name: peer0, host: 127.0.0.1, port: 1, operations_port: 1 } ]
users:
  - { name: frontdesk, type: client }
"#;

/// A kv `put` as `msp_dir`'s identity of `msp_id`, through the Hospital peer's gateway.
fn put_as(data: &Path, msp_dir: &Path, msp_id: &str, key: &str) -> Result<(), String> {
    use medfabric_config::tls::ClientTls;
    use medfabric_sdk::Gateway;
    let status = up::status(data).expect("status");
    let peer = status.peer_of("HospitalMSP").expect("peer");
    let tls = ClientTls::from_files(std::slice::from_ref(peer.tls_ca_file.as_ref().expect("tls ca")), None)
        .expect("tls");
    let signer = Gateway::identity(msp_dir, msp_id).expect("identity");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let network =
            Gateway::connect(&peer.address, Some(&tls), signer).expect("gateway").network(&status.channel);
        network.contract("kv").submit("put", &[key, "clinic"]).await.map(|_| ()).map_err(|e| e.to_string())
    })
}

/// Polls `put_as` until its outcome is `wanted` (up to 20 s); the last error, if any.
fn until(data: &Path, msp_dir: &Path, key: &str, wanted: bool) -> Option<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let outcome = put_as(data, msp_dir, "ClinicMSP", key);
        if outcome.is_ok() == wanted {
            return outcome.err();
        }
        assert!(std::time::Instant::now() < deadline, "still {outcome:?}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test]
fn an_organization_made_alone_joins_by_a_majority_of_admins_and_leaves_the_same_way() {
    let (network, dir) = common::start_yaml(TOPOLOGY);
    let data = network.data.to_str().expect("path");
    let clinic = dir.path().join("clinic.yaml");
    std::fs::write(&clinic, CLINIC).expect("clinic");

    // On its own host, an organization makes its material with nobody else's keys, once.
    let alone = dir.path().join("clinic-host");
    let alone_text = alone.to_str().expect("path");
    let made = json(&ok(&["org", "init", clinic.to_str().expect("path"), "--out", alone_text]));
    let printed = json(&ok(&["org", "definition", alone_text]));
    assert_eq!(made, printed);
    assert_eq!(printed["anchor_peers"], serde_json::json!(["127.0.0.1:1"]));
    let org_dir = alone.join("organizations/peerOrganizations/clinic.ward.local");
    assert!(
        org_dir.join("ca/priv_sk").exists()
            && org_dir.join("users/Admin@clinic.ward.local/msp/keystore/priv_sk").exists()
    );
    assert!(!alone.join("organizations/peerOrganizations/hospital.ward.local").exists());
    let why = refused(&["org", "init", clinic.to_str().expect("path"), "--out", alone_text]);
    assert!(why.contains("already exists"), "{why}");

    // The clinic makes its own material and definition (here, inside the dev network).
    let added = json(&ok(&["network", "add-org", clinic.to_str().expect("path"), "--data", data]));
    let definition = added["definition_file"].as_str().expect("definition file").to_owned();
    let shown = json(&std::fs::read_to_string(&definition).expect("definition"));
    assert_eq!(shown["msp_id"], "ClinicMSP");
    assert!(
        shown["msp"]["config"]["root_certs"][0].as_str().is_some_and(|p| p.contains("BEGIN CERTIFICATE"))
    );
    assert!(
        !std::fs::read_to_string(&definition).expect("text").contains("PRIVATE KEY"),
        "public parts only"
    );
    let frontdesk = up::status(network.data.as_path())
        .expect("status")
        .user("frontdesk@ClinicMSP")
        .expect("user")
        .msp_dir
        .clone();
    let why = put_as(network.data.as_path(), &frontdesk, "ClinicMSP", "k0").expect_err("not a member yet");
    assert!(why.contains("creator org unknown"), "{why}");

    // One application admin of two is not a majority.
    let why = refused(&["channel", "add-org", &definition, "--data", data, "--as", "Admin@HospitalMSP"]);
    assert!(
        why.contains(
            "1 sub-policies were satisfied, but this policy requires 2 of the 'Admins' sub-policies"
        ),
        "{why}"
    );
    let both = ["--data", data, "--as", "Admin@HospitalMSP", "--sign-as", "Admin@LabMSP"];
    let joined = json(&ok(&[&["channel", "add-org", &definition][..], &both].concat()));
    assert_eq!(joined["sequence"], 1);
    let fetched = json(&ok(&["channel", "config", "fetch", "--data", data, "--as", "Admin@LabMSP"]));
    let app = &fetched["channel_group"]["groups"]["Application"];
    assert_eq!(app["groups"]["Clinic"]["values"]["MSP"]["value"]["config"]["name"], "ClinicMSP");
    assert!(
        app["values"]["MedfabricRecordKeys"]["value"]["keys"]["ClinicMSP"].is_string(),
        "{}",
        app["values"]
    );
    // A second time: the name is taken.
    let why = refused(&[&["channel", "add-org", &definition][..], &both].concat());
    assert!(why.contains("already has an organization named Clinic"), "{why}");

    // The consortium grants it `provider` for the medical chaincode: an edit of the role
    // grants, signed by both admins as the Application group's Admins policy requires.
    let (before, granted) = (dir.path().join("roles-before.json"), dir.path().join("roles-after.json"));
    let (before, granted) = (before.to_str().expect("path"), granted.to_str().expect("path"));
    ok(&["channel", "config", "fetch", "--out", before, "--data", data, "--as", "Admin@HospitalMSP"]);
    let mut document = json(&std::fs::read_to_string(before).expect("document"));
    let providers = &mut document["channel_group"]["groups"]["Application"]["values"]["MedfabricRoles"]["value"]
        ["roles"]["provider"];
    assert_eq!(providers, &serde_json::json!(["HospitalMSP", "LabMSP"]));
    providers.as_array_mut().expect("list").push("ClinicMSP".into());
    std::fs::write(granted, document.to_string()).expect("write");
    let grant = dir.path().join("grant.pb");
    let grant = grant.to_str().expect("path");
    ok(&["channel", "config", "update", "--from", before, "--to", granted, "--out", grant]);
    for admin in ["Admin@HospitalMSP", "Admin@LabMSP"] {
        ok(&["channel", "config", "sign", grant, "--yes", "--data", data, "--as", admin]);
    }
    let submitted =
        json(&ok(&["channel", "config", "submit", grant, "--data", data, "--as", "Admin@LabMSP"]));
    assert_eq!(submitted["sequence"], 2);

    // Its users transact: endorsed by the Hospital, ordered, valid.
    assert_eq!(until(network.data.as_path(), &frontdesk, "k1", true), None);

    // Its own peer joins from the genesis block: the running orderer and peers accept its
    // TLS certificate (their trust follows the config), it catches up, validates to the
    // same state, and its gateway serves the clinic's users.
    up::up_with_binaries(Path::new("unused.yaml"), network.data.as_path(), &common::bin_dir())
        .expect("clinic up");
    let status = up::status(network.data.as_path()).expect("status");
    let (clinic_peer, hospital_peer) =
        (status.peer_of("ClinicMSP").expect("peer"), status.peer_of("HospitalMSP").expect("peer"));
    assert_eq!(clinic_peer.health, "OK");
    // Caught up (the clinic's gateway endorses on its own peer, which must know its org).
    let same_state = || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let read = |p: &up::NodeStatus| {
                medfabric_cli::ledger::state(&p.data_dir.join("ledger"), "wardchannel").expect("state")
            };
            let (clinic, hospital) = (read(clinic_peer), read(hospital_peer));
            if clinic.height == hospital.height || std::time::Instant::now() > deadline {
                assert_eq!(
                    (clinic.height, &clinic.state_hash),
                    (hospital.height, &hospital.state_hash),
                    "the same chain, the same state"
                );
                return clinic.height;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let joined_at = same_state();
    let invoked = json(&ok(&[
        "invoke",
        "kv",
        "put",
        "k3",
        "from-the-clinic",
        "--json",
        "--data",
        data,
        "--as",
        "frontdesk@ClinicMSP",
    ]));
    assert_eq!(invoked["code"], "VALID", "{invoked}");
    assert!(same_state() > joined_at, "the clinic's transaction is on both peers");
    // It took its organization's record key once the config it caught up to published it.
    let taken = (0..100).any(|_| {
        let log = std::fs::read_to_string(&clinic_peer.log_file).unwrap_or_default();
        log.contains("ClinicMSP's record key is in the channel config") || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    assert!(taken, "the clinic peer holds its record key");

    // Removed the same way: its identities stop at the next block.
    let left = json(&ok(&[&["channel", "remove-org", "Clinic"][..], &both].concat()));
    assert_eq!(left["sequence"], 3);
    let why = until(network.data.as_path(), &frontdesk, "k2", false).expect("refused");
    assert!(why.contains("creator org unknown"), "{why}");
    // Nor do its TLS certificates open a connection to the peers that remain.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let hospital = ["--peer", "peer0.hospital.ward.local", "--data", data, "--as", "frontdesk@ClinicMSP"];
    loop {
        let why = refused(&[&["query", "kv", "get", "k1"][..], &hospital].concat());
        if !why.contains("creator org unknown") {
            // The handshake fails: tonic reports it as a cancelled or unavailable call.
            let connection = ["transport", "tls", "connect", "Cancelled", "Unavailable"];
            assert!(connection.iter().any(|c| why.to_lowercase().contains(&c.to_lowercase())), "{why}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the removed org's TLS certificate is still accepted: {why}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let fetched = json(&ok(&["channel", "config", "fetch", "--data", data, "--as", "Admin@LabMSP"]));
    let app = &fetched["channel_group"]["groups"]["Application"];
    assert!(app["groups"]["Clinic"].is_null(), "the group is gone");
    assert!(
        app["values"]["MedfabricRecordKeys"]["value"]["keys"]["ClinicMSP"].is_null(),
        "and its record key"
    );
    assert_eq!(
        app["values"]["MedfabricRoles"]["value"]["roles"]["provider"],
        serde_json::json!(["HospitalMSP", "LabMSP"]),
        "and its roles"
    );

    // Every block, both config blocks included, verifies offline.
    let status = up::status(network.data.as_path()).expect("status");
    let hospital = status.peer_of("HospitalMSP").expect("peer");
    let blocks = dir.path().join("blocks");
    medfabric_cli::ledger::export(&hospital.data_dir.join("ledger"), "wardchannel", &blocks).expect("export");
    let summary =
        medfabric_cli::ledger::verify(&blocks, &network.data.join("channel-artifacts/wardchannel.block"))
            .expect("verify");
    assert!(summary.ok, "{:?}", summary.first_problem);
}
