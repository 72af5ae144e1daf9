//! Identity validation and signatures: each bad input is rejected with its own error.

use std::collections::BTreeMap;

use medfabric_ca::Validity;
use medfabric_msp::{MspError, NodeRole, SignatureError, SigningIdentity};
use medfabric_proto::Message;
use medfabric_proto::msp::SerializedIdentity;
use p256::elliptic_curve::scalar::IsHigh;
use time::OffsetDateTime;

use medfabric_testkit::{TestOrg, manager};

fn high_s_twin(der: &[u8]) -> Vec<u8> {
    let sig = p256::ecdsa::Signature::from_der(der).expect("der");
    let (r, s) = sig.split_scalars();
    let flipped = -*s.as_ref();
    let twin = p256::ecdsa::Signature::from_scalars(r.to_bytes(), flipped.to_bytes()).expect("scalars");
    assert!(bool::from(twin.s().is_high()));
    twin.to_der().as_bytes().to_vec()
}

#[test]
fn a_valid_client_reads_back_role_and_attributes() {
    let org = TestOrg::new("HospitalMSP");
    let attrs = BTreeMap::from([
        ("hf.EnrollmentID".to_owned(), "alice".to_owned()),
        ("role".to_owned(), "patient".to_owned()),
    ]);
    let alice =
        org.issue_with("alice", "client", Some(attrs), Validity::days_from(OffsetDateTime::now_utc(), 30));
    let msps = manager(&[&org]);
    let identity = msps.deserialize(alice.serialized()).expect("valid");
    assert_eq!(identity.msp_id(), "HospitalMSP");
    assert_eq!(identity.role(), Some(NodeRole::Client));
    assert!(!identity.is_admin());
    assert_eq!(identity.attribute("role"), Some("patient"));
    assert_eq!(identity.enrollment_id(), "alice");
    let signature = alice.sign(b"payload");
    identity.verify(b"payload", &signature).expect("verifies");
    identity.check_validity_at(OffsetDateTime::now_utc().unix_timestamp()).expect("in validity period");

    let admin = org.issue("admin", "admin");
    let admin = msps.deserialize(admin.serialized()).expect("valid");
    assert_eq!(admin.role(), Some(NodeRole::Admin));
    assert!(admin.is_admin());
}

#[test]
fn high_s_signature_is_rejected() {
    let org = TestOrg::new("Org1MSP");
    let alice = org.issue("alice", "client");
    let identity = manager(&[&org]).deserialize(alice.serialized()).expect("valid");
    let signature = alice.sign(b"payload");
    identity.verify(b"payload", &signature).expect("low-S verifies");
    assert_eq!(identity.verify(b"payload", &high_s_twin(&signature)), Err(SignatureError::HighS));
}

#[test]
fn signature_by_another_key_is_rejected() {
    let org = TestOrg::new("Org1MSP");
    let alice = org.issue("alice", "client");
    let mallory = org.issue("mallory", "client");
    let identity = manager(&[&org]).deserialize(alice.serialized()).expect("valid");
    assert_eq!(identity.verify(b"payload", &mallory.sign(b"payload")), Err(SignatureError::Mismatch));
}

#[test]
fn expired_certificate_is_rejected() {
    let org = TestOrg::new("Org1MSP");
    let now = OffsetDateTime::now_utc();
    let old = org.issue_with(
        "old",
        "client",
        None,
        Validity { not_before: now - time::Duration::days(30), not_after: now - time::Duration::days(1) },
    );
    let msps = manager(&[&org]);
    let err = msps.deserialize_at(old.serialized(), now.unix_timestamp()).expect_err("expired");
    assert!(matches!(err, MspError::Expired { .. }), "{err:?}");
    let identity = msps.deserialize(old.serialized()).expect("chain is valid");
    identity.check_validity_at((now - time::Duration::days(10)).unix_timestamp()).expect("valid back then");
}

#[test]
fn revoked_certificate_is_rejected() {
    let mut org = TestOrg::new("Org1MSP");
    let alice = org.issue("alice", "client");
    let bob = org.issue("bob", "client");
    org.revoke(&alice);
    let msps = manager(&[&org]);
    let err = msps.deserialize(alice.serialized()).expect_err("revoked");
    assert!(matches!(err, MspError::Revoked { .. }), "{err:?}");
    msps.deserialize(bob.serialized()).expect("bob is not revoked");
}

#[test]
fn certificate_of_another_orgs_ca_is_rejected() {
    let org1 = TestOrg::new("Org1MSP");
    let org2 = TestOrg::new("Org2MSP");
    let intruder = org2.issue("intruder", "client");
    // Same certificate, but claiming membership of Org1.
    let forged =
        SerializedIdentity { mspid: "Org1MSP".into(), id_bytes: intruder.certificate_pem().to_vec().into() }
            .encode_to_vec();
    let err = manager(&[&org1, &org2]).deserialize(&forged).expect_err("foreign CA");
    assert_eq!(err, MspError::UntrustedChain { msp_id: "Org1MSP".into() });
}

#[test]
fn ca_certificate_cannot_sign() {
    let org = TestOrg::new("Org1MSP");
    let sid = SerializedIdentity {
        mspid: "Org1MSP".into(),
        id_bytes: org.ca.certificate_pem().as_bytes().to_vec().into(),
    }
    .encode_to_vec();
    assert_eq!(manager(&[&org]).deserialize(&sid).expect_err("CA cert"), MspError::CaCertificateAsSigner);
}

#[test]
fn malformed_pem_truncated_protobuf_and_unknown_msp_are_rejected() {
    let org = TestOrg::new("Org1MSP");
    let msps = manager(&[&org]);
    let alice = org.issue("alice", "client");

    let garbage = SerializedIdentity {
        mspid: "Org1MSP".into(),
        id_bytes: b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".to_vec().into(),
    };
    assert_eq!(msps.deserialize(&garbage.encode_to_vec()).expect_err("bad pem"), MspError::MalformedPem);
    let no_pem = SerializedIdentity { mspid: "Org1MSP".into(), id_bytes: b"hello".to_vec().into() };
    assert_eq!(msps.deserialize(&no_pem.encode_to_vec()).expect_err("no pem"), MspError::MalformedPem);

    let serialized = alice.serialized();
    let err = msps.deserialize(&serialized[..serialized.len() / 2]).expect_err("truncated");
    assert!(matches!(err, MspError::MalformedIdentity(_)), "{err:?}");

    let unknown =
        SerializedIdentity { mspid: "NoSuchMSP".into(), id_bytes: alice.certificate_pem().to_vec().into() };
    assert_eq!(
        msps.deserialize(&unknown.encode_to_vec()).expect_err("unknown"),
        MspError::UnknownMsp("NoSuchMSP".into())
    );
}

#[test]
fn identity_without_exactly_one_node_ou_is_rejected() {
    let org = TestOrg::new("Org1MSP");
    let nobody = org.issue("nobody", "department7");
    let err = manager(&[&org]).deserialize(nobody.serialized()).expect_err("no role");
    assert_eq!(err, MspError::NodeOuRole { found: 0 });
}

#[test]
fn verdicts_are_cached_by_serialized_bytes() {
    let org = TestOrg::new("Org1MSP");
    let alice = org.issue("alice", "client");
    let msps = manager(&[&org]);
    let first = msps.deserialize(alice.serialized()).expect("valid");
    let second = msps.deserialize(alice.serialized()).expect("valid");
    assert!(std::sync::Arc::ptr_eq(&first, &second), "second lookup is served from the cache");
    assert!(msps.deserialize(b"\xff\xff").is_err());
    assert!(msps.deserialize(b"\xff\xff").is_err(), "failures are cached too");
    assert_eq!(msps.cached_identities(), 2);
}

#[test]
fn cache_is_bounded() {
    let org = TestOrg::new("Org1MSP");
    let msps = medfabric_msp::MspManager::with_cache_capacity([org.msp()], 3);
    let ids: Vec<SigningIdentity> = (0..6).map(|i| org.issue(&format!("user{i}"), "client")).collect();
    for id in &ids {
        msps.deserialize(id.serialized()).expect("valid");
    }
    assert_eq!(msps.cached_identities(), 3);
}

#[test]
fn chains_through_an_intermediate_ca() {
    use medfabric_ca::{LeafRequest, Name, RevokedEntry};
    use medfabric_msp::{Msp, MspManager, node_ou_msp_config};
    let org = TestOrg::new("Org1MSP");
    let now = OffsetDateTime::now_utc();
    let intermediate = org
        .ca
        .new_intermediate(
            &Name::fabric_style("ica.org1", Some("org1"), &[]),
            Validity::days_from(now - time::Duration::hours(1), 365),
        )
        .expect("intermediate");
    let issue = |ca: &medfabric_ca::CertificateAuthority, cn: &str| {
        let issued = ca
            .issue(&LeafRequest::enrollment(
                cn,
                "client",
                Validity::days_from(now - time::Duration::hours(1), 30),
            ))
            .expect("issue");
        (
            SigningIdentity::new(
                "Org1MSP",
                issued.certificate_pem.as_bytes(),
                &issued.key.expect("key").to_pkcs8_pem(),
            )
            .expect("id"),
            issued.serial,
        )
    };
    let (carol, carol_serial) = issue(&intermediate, "carol");
    let (dave, _) = issue(&intermediate, "dave");
    let (direct, _) = issue(&org.ca, "direct");

    // NodeOUs certified by the intermediate, as Fabric CA deployments with an ICA do.
    let mut config = node_ou_msp_config("Org1MSP", org.ca.certificate_pem().as_bytes());
    config.intermediate_certs = vec![intermediate.certificate_pem().as_bytes().to_vec().into()];
    let node_ous = config.fabric_node_ous.as_mut().expect("node OUs");
    for ou in [&mut node_ous.client_ou_identifier, &mut node_ous.peer_ou_identifier] {
        ou.as_mut().expect("ou").certificate = intermediate.certificate_pem().as_bytes().to_vec().into();
    }
    let msps = MspManager::new([Msp::from_config(&config).expect("msp")]);
    assert_eq!(
        msps.deserialize(carol.serialized()).expect("carol via the intermediate").role(),
        Some(NodeRole::Client)
    );
    // Issued by the root directly, though the root issues an intermediate: Fabric accepts
    // identities only from leaf CAs of the certification tree.
    assert_eq!(
        msps.deserialize(direct.serialized()).expect_err("root is not a leaf CA"),
        MspError::IssuerNotLeafCa
    );

    // A CRL signed by the intermediate revokes carol, not dave.
    let crl = intermediate
        .revocation_list(
            &[RevokedEntry { serial: carol_serial, revoked_at: now }],
            now,
            now + time::Duration::days(1),
            1,
        )
        .expect("crl");
    config.revocation_list = vec![crl.into_bytes().into()];
    let msps = MspManager::new([Msp::from_config(&config).expect("msp")]);
    assert!(matches!(msps.deserialize(carol.serialized()), Err(MspError::Revoked { .. })));
    msps.deserialize(dave.serialized()).expect("dave is not revoked");

    // An intermediate that does not chain to a root makes the MSP config invalid.
    let stranger = TestOrg::new("Other");
    let mut bad = node_ou_msp_config("Org1MSP", stranger.ca.certificate_pem().as_bytes());
    bad.intermediate_certs = vec![intermediate.certificate_pem().as_bytes().to_vec().into()];
    assert!(matches!(Msp::from_config(&bad), Err(MspError::Config { .. })));
}
