//! MSP folders produced by Fabric's cryptogen load and validate.

use std::path::PathBuf;

use medfabric_msp::{Msp, MspFolder, MspManager, NodeRole, SigningIdentity};

fn identities() -> PathBuf {
    let dir = std::env::var_os("MEDFABRIC_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("../../shared/testdata/fabric-2.5"));
    let dir = dir.join("identities");
    assert!(dir.is_dir(), "Fabric identities not found at {}", dir.display());
    dir
}

#[test]
fn fabric_org_folders_validate_users_peers_and_admins() {
    let root = identities();
    let org1 = root.join("peerOrganizations/org1.example.com");
    let orderer = root.join("ordererOrganizations/example.com");
    let msps = MspManager::new([
        Msp::from_config(&MspFolder::load(&org1.join("msp"), "Org1MSP").expect("org1 folder")).expect("org1"),
        Msp::from_config(&MspFolder::load(&orderer.join("msp"), "OrdererMSP").expect("orderer folder"))
            .expect("orderer"),
    ]);
    let user = SigningIdentity::from_msp_dir(&org1.join("users/User1@org1.example.com/msp"), "Org1MSP")
        .expect("user1");
    let admin = SigningIdentity::from_msp_dir(&org1.join("users/Admin@org1.example.com/msp"), "Org1MSP")
        .expect("admin");
    let user_identity = msps.deserialize(user.serialized()).expect("user valid");
    assert_eq!(user_identity.role(), Some(NodeRole::Client));
    assert_eq!(user_identity.certificate().common_name(), "User1@org1.example.com");
    assert_eq!(msps.deserialize(admin.serialized()).expect("admin valid").role(), Some(NodeRole::Admin));
    let signature = user.sign(b"hello fabric");
    user_identity.verify(b"hello fabric", &signature).expect("our signature verifies with Fabric's cert");

    let peer_pem = std::fs::read(
        org1.join("peers/peer0.org1.example.com/msp/signcerts/peer0.org1.example.com-cert.pem"),
    )
    .expect("peer cert");
    let peer = msps.deserialize(&medfabric_msp_serialize("Org1MSP", &peer_pem)).expect("peer valid");
    assert_eq!(peer.role(), Some(NodeRole::Peer));
    let orderer_pem = std::fs::read(
        orderer.join("orderers/orderer0.example.com/msp/signcerts/orderer0.example.com-cert.pem"),
    )
    .expect("orderer cert");
    let orderer_id =
        msps.deserialize(&medfabric_msp_serialize("OrdererMSP", &orderer_pem)).expect("orderer valid");
    assert_eq!(orderer_id.role(), Some(NodeRole::Orderer));
    // Org1's peer claiming to be the orderer org's member is refused.
    assert!(msps.deserialize(&medfabric_msp_serialize("OrdererMSP", &peer_pem)).is_err());
}

fn medfabric_msp_serialize(msp_id: &str, pem: &[u8]) -> Vec<u8> {
    use medfabric_proto::Message;
    medfabric_proto::msp::SerializedIdentity { mspid: msp_id.into(), id_bytes: pem.to_vec().into() }
        .encode_to_vec()
}

/// The package directory, read when the test runs: a test binary built in another
/// checkout sharing the target directory must not point back at that checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("current directory"))
}

/// Names print as Go's `pkix.Name.String()` does (what Fabric's `cid.GetID` embeds).
#[test]
fn certificate_names_print_as_go_does() {
    let pem = std::fs::read(identities().join(
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp/signcerts/User1@org1.example.com-cert.pem",
    ))
    .expect("User1 certificate");
    let cert = medfabric_msp::Certificate::from_pem(&pem).expect("parses");
    assert_eq!(cert.subject_dn(), "CN=User1@org1.example.com,OU=client,L=San Francisco,ST=California,C=US");
    assert_eq!(
        cert.issuer_dn(),
        "CN=ca.org1.example.com,O=org1.example.com,L=San Francisco,ST=California,C=US"
    );
}
