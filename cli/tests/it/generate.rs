//! `medfabric network generate`: crypto material, MSPs, configs and a genesis block
//! that our own MSP, policy and ledger code accept.

use std::path::{Path, PathBuf};

use medfabric_config::NodeFile;
use medfabric_msp::{MspManager, NodeRole, SignedData, SigningIdentity};
use medfabric_proto::Message;
use medfabric_proto::msp::{FabricMspConfig, SerializedIdentity};
use medfabric_types::ChannelResources;
use medfabric_types::block::decode_block;
use medfabric_types::lifecycle::ChaincodeRegistry;

use crate::support::{json, ledger_verify, medfabric, path, repo_root};

fn generate(config: &str, out: &Path) -> serde_json::Value {
    let topology = repo_root().join("network-config").join(config);
    let output = medfabric(&["network", "generate", path(&topology), "--out", path(out)]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    json(&output)
}

fn resources(out: &Path, channel: &str) -> ChannelResources {
    let bytes =
        std::fs::read(out.join("channel-artifacts").join(format!("{channel}.block"))).expect("genesis");
    ChannelResources::from_config_block(&decode_block(&bytes).expect("block")).expect("config")
}

/// Every `<dir>/**/<leaf>/*.pem|crt` file under `root`.
fn files_in(root: &Path, leaf: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.parent().and_then(|d| d.file_name()).is_some_and(|n| n == leaf) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn serialize(msp_id: &str, pem: &[u8]) -> Vec<u8> {
    SerializedIdentity { mspid: msp_id.into(), id_bytes: pem.to_vec().into() }.encode_to_vec()
}

#[test]
fn dev_network_verifies_and_every_certificate_chains_to_its_org() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("net");
    let generated = generate("dev.yaml", &out);
    assert_eq!(generated["channel"], "medchannel");

    let artifacts = out.join("channel-artifacts");
    let verify = ledger_verify(&artifacts, &artifacts.join("medchannel.block"));
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert_eq!(json(&verify)["blocks"], 1);

    let res = resources(&out, "medchannel");
    let orgs = [
        ("peerOrganizations/hospital.medfabric.local", "HospitalMSP"),
        ("peerOrganizations/lab.medfabric.local", "LabMSP"),
        ("ordererOrganizations/orderer.medfabric.local", "OrdererMSP"),
    ];
    let mut checked = 0;
    for (dir, msp_id) in orgs {
        let org_dir = out.join("organizations").join(dir);
        for cert in files_in(&org_dir, "signcerts") {
            let pem = std::fs::read(&cert).expect("cert");
            let identity = res
                .msps
                .deserialize(&serialize(msp_id, &pem))
                .unwrap_or_else(|e| panic!("{}: {e}", cert.display()));
            let location = cert.to_string_lossy();
            let want = if location.contains("/peers/") {
                NodeRole::Peer
            } else if location.contains("/orderers/") {
                NodeRole::Orderer
            } else if location.contains("/Admin@") {
                NodeRole::Admin
            } else {
                NodeRole::Client
            };
            assert_eq!(identity.role(), Some(want), "{location}");
            checked += 1;
        }
        // TLS certificates chain to the org's TLS CA (and not to its signing CA).
        let tls_ca = std::fs::read(
            org_dir
                .join("msp/tlscacerts")
                .read_dir()
                .expect("tlscacerts")
                .next()
                .expect("file")
                .expect("entry")
                .path(),
        )
        .expect("tls ca");
        let tls_msps = MspManager::from_configs([&FabricMspConfig {
            name: "TLS".into(),
            root_certs: vec![tls_ca.into()],
            ..Default::default()
        }])
        .expect("tls msp");
        for cert in files_in(&org_dir, "tls")
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "crt") && !p.ends_with("ca.crt"))
        {
            let pem = std::fs::read(&cert).expect("cert");
            tls_msps
                .deserialize(&serialize("TLS", &pem))
                .unwrap_or_else(|e| panic!("{}: {e}", cert.display()));
            assert!(
                res.msps.deserialize(&serialize(msp_id, &pem)).is_err(),
                "TLS cert {} must not be a signing identity",
                cert.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "checked {checked} certificates");

    // Users: attributes and roles read back, and keys match certificates.
    let alice_dir = out.join(
        "organizations/peerOrganizations/hospital.medfabric.local/users/alice@hospital.medfabric.local/msp",
    );
    let alice = SigningIdentity::from_msp_dir(&alice_dir, "HospitalMSP").expect("alice loads");
    let identity = res.msps.deserialize(alice.serialized()).expect("alice valid");
    assert_eq!(identity.attribute("role"), Some("patient"));
    assert_eq!(identity.attribute("hf.EnrollmentID"), Some("alice"));
    assert_eq!(identity.attribute("hf.Type"), Some("client"));
    assert_eq!(identity.enrollment_id(), "alice");
    let auditor = SigningIdentity::from_msp_dir(
        &out.join(
            "organizations/peerOrganizations/lab.medfabric.local/users/auditor@lab.medfabric.local/msp",
        ),
        "LabMSP",
    )
    .expect("auditor");
    assert_eq!(
        res.msps.deserialize(auditor.serialized()).expect("valid").attribute("role"),
        Some("regulator")
    );
}

#[test]
fn dev_genesis_carries_policies_consenters_batching_and_chaincodes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("net");
    generate("dev.yaml", &out);
    let res = resources(&out, "medchannel");
    let config = &res.config;
    assert_eq!(config.channel_id, "medchannel");
    assert_eq!(config.consensus_type, "etcdraft");
    assert_eq!(config.consenters.len(), 1);
    assert_eq!((config.consenters[0].host.as_str(), config.consenters[0].port), ("127.0.0.1", 7052));
    assert_eq!(config.orderer_addresses, vec!["127.0.0.1:7050".to_owned()]);
    assert_eq!(
        (
            config.batch.max_message_count,
            config.batch.absolute_max_bytes,
            config.batch.preferred_max_bytes,
            config.batch.timeout_ms
        ),
        (500, 10_485_760, 2_097_152, 250)
    );
    let app: Vec<&str> = config.application_orgs.iter().map(|o| o.msp_id.as_str()).collect();
    assert_eq!(app, vec!["HospitalMSP", "LabMSP"]);
    assert_eq!(config.application_orgs[0].anchor_peers, vec!["127.0.0.1:7051".to_owned()]);
    for (path, describe) in [
        ("/Channel/Readers", "ANY Readers"),
        ("/Channel/Writers", "ANY Writers"),
        ("/Channel/Admins", "MAJORITY Admins"),
        ("/Channel/Orderer/BlockValidation", "ANY Writers"),
        ("/Channel/Application/Endorsement", "MAJORITY Endorsement"),
        ("/Channel/Application/LifecycleEndorsement", "MAJORITY Endorsement"),
        ("/Channel/Application/Hospital/Endorsement", "signature policy"),
        ("/Channel/Application/Lab/Writers", "signature policy"),
        ("/Channel/Orderer/OrdererOrg/Writers", "signature policy"),
    ] {
        assert_eq!(res.policies.describe(path).as_deref(), Some(describe), "{path}");
    }
    let registry = ChaincodeRegistry::from_config(config).expect("definitions");
    let medical = registry.get("medical").expect("medical chaincode");
    assert_eq!((medical.version.as_str(), medical.sequence), ("1.0", 1));
    assert_eq!(medical.policy.describe(), "AND('HospitalMSP.peer', 'LabMSP.peer')");
    assert!(registry.get("kv").is_some());

    // The policies behave: both peers satisfy MAJORITY Endorsement, one does not;
    // a client satisfies Writers, a peer does not.
    let org = |o: &str| out.join("organizations/peerOrganizations").join(o);
    let peer = |o: &str, id: &str| {
        let pem = std::fs::read(org(o).join(format!("peers/peer0.{o}/msp/signcerts/peer0.{o}-cert.pem")))
            .expect("peer cert");
        (serialize(id, &pem), pem)
    };
    let hospital_key = std::fs::read_to_string(
        org("hospital.medfabric.local").join("peers/peer0.hospital.medfabric.local/msp/keystore/priv_sk"),
    )
    .expect("key");
    let lab_key = std::fs::read_to_string(
        org("lab.medfabric.local").join("peers/peer0.lab.medfabric.local/msp/keystore/priv_sk"),
    )
    .expect("key");
    let (_, hospital_pem) = peer("hospital.medfabric.local", "HospitalMSP");
    let (_, lab_pem) = peer("lab.medfabric.local", "LabMSP");
    let hospital = SigningIdentity::new("HospitalMSP", &hospital_pem, &hospital_key).expect("hospital peer");
    let lab = SigningIdentity::new("LabMSP", &lab_pem, &lab_key).expect("lab peer");
    let alice = SigningIdentity::from_msp_dir(
        &org("hospital.medfabric.local").join("users/alice@hospital.medfabric.local/msp"),
        "HospitalMSP",
    )
    .expect("alice");
    let sigs: Vec<(Vec<u8>, Vec<u8>)> =
        [&hospital, &lab, &alice].iter().map(|s| (s.serialized().to_vec(), s.sign(b"data"))).collect();
    let signed = |who: &[usize]| -> Vec<SignedData<'_>> {
        who.iter()
            .map(|i| SignedData { data: b"data", identity: &sigs[*i].0, signature: &sigs[*i].1 })
            .collect()
    };
    let eval =
        |p: &str, who: &[usize]| res.policies.evaluate_signed(p, &signed(who), &res.msps).expect("policy");
    assert!(eval("/Channel/Application/Endorsement", &[0, 1]));
    assert!(!eval("/Channel/Application/Endorsement", &[0]));
    assert!(eval("/Channel/Application/Writers", &[2]));
    assert!(!eval("/Channel/Application/Writers", &[0]));
}

#[test]
fn generate_refuses_an_existing_directory_without_force() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("net");
    let first = generate("dev.yaml", &out);
    let topology = repo_root().join("network-config/dev.yaml");
    let again = medfabric(&["network", "generate", path(&topology), "--out", path(&out)]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let genesis = std::fs::read(out.join("channel-artifacts/medchannel.block")).expect("genesis");
    let forced = medfabric(&["network", "generate", path(&topology), "--out", path(&out), "--force"]);
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read(out.join("channel-artifacts/medchannel.block")).expect("genesis"),
        genesis,
        "regenerated"
    );
    assert_eq!(first["channel"], json(&forced)["channel"]);
}

#[test]
fn consortium_network_has_five_orgs_and_three_consenters() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("net");
    let generated = generate("consortium.yaml", &out);
    assert_eq!(generated["organizations"].as_array().map(Vec::len), Some(6));
    let res = resources(&out, "healthchannel");
    assert_eq!(res.config.application_orgs.len(), 5);
    assert_eq!(res.config.consenters.len(), 3);
    assert_eq!(generated["node_configs"].as_array().map(Vec::len), Some(3 + 5 + 5));
    let artifacts = out.join("channel-artifacts");
    let verify = ledger_verify(&artifacts, &artifacts.join("healthchannel.block"));
    assert!(verify.status.success());
    let registry = ChaincodeRegistry::from_config(&res.config).expect("definitions");
    assert_eq!(registry.get("kv").expect("kv").policy.describe(), "/Channel/Application/Endorsement");
    // Every node config generate writes is one the daemons read (unknown keys refused),
    // and names files that exist.
    let mut kinds = std::collections::BTreeMap::new();
    for file in generated["node_configs"].as_array().expect("node configs") {
        let file = PathBuf::from(file.as_str().expect("path"));
        let config =
            medfabric_config::load_any(&file).unwrap_or_else(|e| panic!("{e}")).expect("a node kind");
        let (kind, files) = match config {
            medfabric_config::NodeConfig::Peer(mut c) => {
                assert!(c.tls.is_some() && c.record_key_file.is_some(), "{}", file.display());
                ("peer", c.paths_mut().into_iter().map(|p| p.clone()).collect::<Vec<_>>())
            }
            medfabric_config::NodeConfig::Orderer(mut c) => {
                ("orderer", c.paths_mut().into_iter().map(|p| p.clone()).collect())
            }
            medfabric_config::NodeConfig::Ca(mut c) => {
                assert!(c.tls.is_some() && !c.seed_identities.is_empty(), "{}", file.display());
                ("ca", c.paths_mut().into_iter().map(|p| p.clone()).collect())
            }
        };
        *kinds.entry(kind).or_insert(0) += 1;
        // Data directories are made when a node starts.
        for path in files.iter().filter(|p| !p.starts_with(out.join("nodes/../data"))) {
            assert!(path.exists(), "{} names {}, which does not exist", file.display(), path.display());
        }
    }
    assert_eq!(kinds, [("ca", 5), ("orderer", 3), ("peer", 5)].into_iter().collect());
}

#[test]
fn a_bad_topology_is_refused_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    let topology = tmp.path().join("bad.yaml");
    let text = std::fs::read_to_string(repo_root().join("network-config/dev.yaml"))
        .expect("dev")
        .replace("AND('HospitalMSP.peer', 'LabMSP.peer')", "AND('HospitalMSP.king')");
    std::fs::write(&topology, text).expect("write");
    let out = medfabric(&["network", "generate", path(&topology), "--out", path(&tmp.path().join("net"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown role"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
