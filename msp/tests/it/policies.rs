//! Signature and implicit-meta policies evaluated over real identities.

use std::collections::BTreeMap;

use medfabric_msp::{PolicyTree, SignaturePolicy, SignedData, SigningIdentity, parse_policy};
use medfabric_proto::Message;
use medfabric_proto::common::{ConfigGroup, ConfigPolicy, ImplicitMetaPolicy, Policy};

use medfabric_testkit::{TestOrg, manager};

struct Signed {
    data: Vec<u8>,
    identity: Vec<u8>,
    signature: Vec<u8>,
}

fn sign(who: &SigningIdentity, data: &[u8]) -> Signed {
    Signed { data: data.to_vec(), identity: who.serialized().to_vec(), signature: who.sign(data) }
}

fn view(all: &[Signed]) -> Vec<SignedData<'_>> {
    all.iter().map(|s| SignedData { data: &s.data, identity: &s.identity, signature: &s.signature }).collect()
}

fn policy(text: &str) -> SignaturePolicy {
    SignaturePolicy::from_envelope(&parse_policy(text).expect("parses")).expect("compiles")
}

#[test]
fn and_or_outof_over_two_orgs() {
    let org1 = TestOrg::new("Org1MSP");
    let org2 = TestOrg::new("Org2MSP");
    let msps = manager(&[&org1, &org2]);
    let (p1, p2, c1) =
        (org1.issue("peer0", "peer"), org2.issue("peer0", "peer"), org1.issue("user", "client"));
    let both = [sign(&p1, b"x"), sign(&p2, b"x")];
    let and = policy("AND('Org1MSP.peer', 'Org2MSP.peer')");
    assert!(and.evaluate_signed(&view(&both), &msps));
    assert!(!and.evaluate_signed(&view(&both[..1]), &msps));
    assert!(policy("OR('Org1MSP.peer', 'Org2MSP.peer')").evaluate_signed(&view(&both[1..]), &msps));
    assert!(
        !policy("OR('Org1MSP.peer')").evaluate_signed(&view(&[sign(&c1, b"x")]), &msps),
        "a client is not a peer"
    );
    assert!(policy("OR('Org1MSP.member')").evaluate_signed(&view(&[sign(&c1, b"x")]), &msps));
    assert!(
        policy("OutOf(2, 'Org1MSP.member', 'Org2MSP.member', 'Org1MSP.client')")
            .evaluate_signed(&view(&both), &msps)
    );
    let nested = policy("OR(AND('Org1MSP.peer','Org2MSP.peer'), 'Org1MSP.admin')");
    assert!(nested.evaluate_signed(&view(&both), &msps));
    assert!(!nested.evaluate_signed(&view(&[sign(&c1, b"x")]), &msps));
}

#[test]
fn duplicates_and_bad_signatures_do_not_count() {
    let org1 = TestOrg::new("Org1MSP");
    let org2 = TestOrg::new("Org2MSP");
    let msps = manager(&[&org1, &org2]);
    let (a, b) = (org1.issue("peer0", "peer"), org1.issue("peer1", "peer"));
    let two_of_org1 = policy("OutOf(2, 'Org1MSP.peer', 'Org1MSP.peer')");
    assert!(two_of_org1.evaluate_signed(&view(&[sign(&a, b"x"), sign(&b, b"x")]), &msps));
    assert!(
        !two_of_org1.evaluate_signed(&view(&[sign(&a, b"x"), sign(&a, b"x")]), &msps),
        "same identity twice counts once"
    );
    let mut forged = sign(&b, b"x");
    forged.data = b"y".to_vec();
    assert!(
        !two_of_org1.evaluate_signed(&view(&[sign(&a, b"x"), forged]), &msps),
        "invalid signature is dropped"
    );
    let mut forged_a = sign(&a, b"x");
    forged_a.data = b"y".to_vec();
    // A bad signature does not mark its identity as seen: a later good one still counts.
    assert!(two_of_org1.evaluate_signed(&view(&[forged_a, sign(&a, b"x"), sign(&b, b"x")]), &msps));
}

/// Fabric's matching is greedy: the first leaf takes the first identity it accepts,
/// even when an optimal assignment exists. We must fail exactly where Fabric fails.
#[test]
fn greedy_matching_follows_fabric() {
    let org1 = TestOrg::new("Org1MSP");
    let msps = manager(&[&org1]);
    let (peer, client) = (org1.issue("peer0", "peer"), org1.issue("user", "client"));
    let signed = [sign(&peer, b"x"), sign(&client, b"x")];
    // 'member' consumes the peer; 'peer' then finds only the client.
    assert!(!policy("AND('Org1MSP.member', 'Org1MSP.peer')").evaluate_signed(&view(&signed), &msps));
    // In the other order both leaves are satisfied.
    assert!(policy("AND('Org1MSP.peer', 'Org1MSP.member')").evaluate_signed(&view(&signed), &msps));
}

#[test]
fn syntax_errors_name_the_problem() {
    for (text, needle) in [
        ("AND('Org1MSP.peer'", "')'"),
        ("XOR('A.peer')", "unknown operator"),
        ("OR('Org1MSP.king')", "unknown role"),
        ("OR('Org1MSP')", "MSPID.role"),
        ("'Org1MSP.peer'", "AND, OR or OutOf"),
        ("OutOf(x, 'A.peer')", "count"),
        ("OR('A.peer') trailing", "unexpected text"),
    ] {
        let err = parse_policy(text).expect_err(text).to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
    let envelope = parse_policy("outof(1, \"Org1MSP.admin\")").expect("case-insensitive, double quotes");
    assert_eq!(medfabric_msp::policy_to_string(&envelope), "OR('Org1MSP.admin')");
}

fn signature(text: &str) -> ConfigPolicy {
    ConfigPolicy {
        policy: Some(Policy { r#type: 1, value: parse_policy(text).expect("p").encode_to_vec().into() }),
        ..Default::default()
    }
}

fn meta(sub: &str, rule: i32) -> ConfigPolicy {
    ConfigPolicy {
        policy: Some(Policy {
            r#type: 3,
            value: ImplicitMetaPolicy { sub_policy: sub.into(), rule }.encode_to_vec().into(),
        }),
        ..Default::default()
    }
}

#[test]
fn implicit_meta_any_all_majority() {
    let orgs: Vec<TestOrg> = ["A", "B", "C"].iter().map(|n| TestOrg::new(&format!("{n}MSP"))).collect();
    let msps = manager(&orgs.iter().collect::<Vec<_>>());
    let mut app = ConfigGroup::default();
    for org in &orgs {
        let mut group = ConfigGroup::default();
        group.policies.insert("Admins".into(), signature(&format!("OR('{}.admin')", org.msp_id)));
        app.groups.insert(org.msp_id.clone(), group);
    }
    app.policies = BTreeMap::from([
        ("Any".into(), meta("Admins", 0)),
        ("All".into(), meta("Admins", 1)),
        ("Majority".into(), meta("Admins", 2)),
        ("Nothing".into(), meta("Missing", 1)),
    ]);
    let mut channel = ConfigGroup::default();
    channel.groups.insert("Application".into(), app);
    let mut empty = ConfigGroup::default();
    empty.policies.insert("Anything".into(), meta("Admins", 2));
    channel.groups.insert("Empty".into(), empty);
    let tree = PolicyTree::from_config_group("Channel", &channel).expect("tree");
    let admins: Vec<SigningIdentity> = orgs.iter().map(|o| o.issue("admin", "admin")).collect();
    let one = [sign(&admins[0], b"x")];
    let two = [sign(&admins[0], b"x"), sign(&admins[1], b"x")];
    let all: Vec<Signed> = admins.iter().map(|a| sign(a, b"x")).collect();
    let eval = |path: &str, s: &[Signed]| tree.evaluate_signed(path, &view(s), &msps).expect("known path");
    assert!(eval("/Channel/Application/Any", &one));
    assert!(!eval("/Channel/Application/Majority", &one));
    assert!(eval("/Channel/Application/Majority", &two));
    assert!(!eval("/Channel/Application/All", &two));
    assert!(eval("/Channel/Application/All", &all));
    assert!(
        !eval("/Channel/Application/Nothing", &all),
        "children lacking the sub-policy reject (Fabric's reject policy), they do not vanish"
    );
    assert!(
        eval("/Channel/Empty/Anything", &[]),
        "a group without children is satisfied vacuously, as in Fabric"
    );
    assert!(tree.evaluate_signed("/Channel/Nope", &view(&one), &msps).is_err());
}
