//! Every stub method, exercised through the in-memory [`MockStub`].

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_ca::Validity;
use medfabric_proto::msp::SerializedIdentity;
use medfabric_shim::{
    ChaincodeStub, ContractError, MockStub, Router, ShimError, create_composite_key, error, success,
};
use medfabric_testkit::TestOrg;
use prost::Message;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn text(v: Option<Bytes>) -> Option<String> {
    v.map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn ok(
    stub: &mut MockStub,
    ns: &str,
    body: impl Fn(&mut dyn ChaincodeStub) -> Result<Bytes, ShimError> + Send + Sync,
) -> String {
    let outcome = stub.transact(ns, move |s: &mut dyn ChaincodeStub| match body(s) {
        Ok(payload) => success(payload),
        Err(e) => error(e.to_string()),
    });
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    outcome.payload_str()
}

fn err(
    stub: &mut MockStub,
    ns: &str,
    body: impl Fn(&mut dyn ChaincodeStub) -> Result<Bytes, ShimError> + Send + Sync,
) -> String {
    let outcome = stub.transact(ns, move |s: &mut dyn ChaincodeStub| match body(s) {
        Ok(_) => success(Bytes::new()),
        Err(e) => error(e.to_string()),
    });
    assert_eq!(outcome.response.status, 500, "expected an error");
    assert!(!outcome.committed);
    outcome.response.message
}

#[test]
fn state_reads_writes_deletes_and_read_your_writes() {
    let mut stub = MockStub::new("ch");
    ok(&mut stub, "cc", |s| {
        s.put_state("a", b("1"))?;
        s.put_state("b", b("2"))?;
        assert_eq!(text(s.get_state("a")?), Some("1".into()), "a transaction reads its own writes");
        Ok(Bytes::new())
    });
    assert_eq!(stub.value("cc", "a"), Some(b("1")));
    let outcome = stub.transact("cc", |s: &mut dyn ChaincodeStub| {
        let values = s.get_multiple_states(&["a", "b", "missing"]).expect("reads");
        assert_eq!(values, vec![Some(b("1")), Some(b("2")), None]);
        s.del_state("a").expect("delete");
        s.put_state("b", Bytes::new()).expect("an empty value deletes");
        assert_eq!(s.get_state("a").expect("read"), None);
        success(Bytes::new())
    });
    // Reads carry the committed versions; "missing" was read as absent.
    let reads = &outcome.record.reads["cc"];
    assert_eq!(reads["a"], Some((1, 0)));
    assert_eq!(reads["missing"], None);
    assert_eq!(outcome.record.writes["cc"]["b"], None);
    assert_eq!((stub.value("cc", "a"), stub.value("cc", "b")), (None, None));
    assert_eq!(
        err(&mut stub, "cc", |s| s.put_state("", b("x")).map(|_| Bytes::new())),
        "key must not be an empty string"
    );
    assert_eq!(stub.value("other", "a"), None, "namespaces are separate");
}

#[test]
fn failed_transactions_commit_nothing() {
    let mut stub = MockStub::new("ch");
    let outcome = stub.transact("cc", |s: &mut dyn ChaincodeStub| {
        s.put_state("k", b("v")).expect("write");
        error("refused")
    });
    assert!(!outcome.committed);
    assert_eq!(stub.value("cc", "k"), None);
}

#[test]
fn range_queries_exclude_composite_keys_and_are_recorded() {
    let mut stub = MockStub::new("ch");
    ok(&mut stub, "cc", |s| {
        for k in ["a", "b", "c", "d"] {
            s.put_state(k, b(k))?;
        }
        let ck = s.create_composite_key("t", &["x"])?;
        s.put_state(&ck, b("composite"))?;
        Ok(Bytes::new())
    });
    let outcome = stub.transact("cc", |s: &mut dyn ChaincodeStub| {
        s.put_state("bb", b("new")).expect("write");
        s.del_state("c").expect("delete");
        let keys: Vec<String> =
            s.get_state_by_range("b", "d").expect("range").into_iter().map(|kv| kv.key).collect();
        assert_eq!(keys, ["b", "bb"], "own writes and deletes show");
        let all: Vec<String> =
            s.get_state_by_range("", "").expect("all").into_iter().map(|kv| kv.key).collect();
        assert_eq!(all, ["a", "b", "bb", "d"], "no composite keys");
        assert!(s.get_state_by_range("\u{0}t", "").is_err());
        success(Bytes::new())
    });
    let ranges = &outcome.record.ranges["cc"];
    assert_eq!(ranges[0].start, "b");
    assert_eq!(ranges[0].end, "d");
    assert!(ranges[0].exhausted);
    let recorded: Vec<&str> = ranges[0].reads.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(recorded, ["b", "c"], "the record keeps what commit re-checks: committed keys");
    assert_eq!(ranges[1].start, "\u{1}", "an empty start key becomes U+0001");
}

#[test]
fn paginated_queries_page_with_bookmarks_in_read_only_transactions() {
    let mut stub = MockStub::new("ch");
    ok(&mut stub, "cc", |s| {
        for i in 0..5 {
            s.put_state(&format!("p{i}"), b("v"))?;
        }
        Ok(Bytes::new())
    });
    let outcome = stub.query("nothing", &[]);
    assert_eq!(outcome.response.status, 500, "unknown chaincode");
    let pages = ok(&mut stub, "cc", |s| {
        let (first, meta) = s.get_state_by_range_with_pagination("p", "q", 2, "")?;
        assert_eq!(first.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["p0", "p1"]);
        assert_eq!((meta.fetched_records_count, meta.bookmark.as_str()), (2, "p2"));
        let (second, meta) = s.get_state_by_range_with_pagination("p", "q", 2, &meta.bookmark)?;
        assert_eq!(second.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["p2", "p3"]);
        let (last, meta) = s.get_state_by_range_with_pagination("p", "q", 2, &meta.bookmark)?;
        assert_eq!((last.len(), meta.bookmark.as_str()), (1, ""));
        let message = s.put_state("w", b("x")).expect_err("no writes after a paginated query").to_string();
        assert!(message.contains("Writes are not allowed"), "{message}");
        Ok(Bytes::from("paged"))
    });
    assert_eq!(pages, "paged");
    let message = err(&mut stub, "cc", |s| {
        s.put_state("w", b("x"))?;
        s.get_state_by_range_with_pagination("p", "q", 2, "").map(|_| Bytes::new())
    });
    assert!(message.contains("Paginated queries are supported only in a read-only transaction"), "{message}");
}

#[test]
fn composite_keys_and_partial_key_queries() {
    let mut stub = MockStub::new("ch");
    ok(&mut stub, "cc", |s| {
        for (color, id) in [("red", "1"), ("red", "2"), ("blue", "1")] {
            let key = s.create_composite_key("asset", &[color, id])?;
            s.put_state(&key, b(id))?;
        }
        Ok(Bytes::new())
    });
    ok(&mut stub, "cc", |s| {
        let red = s.get_state_by_partial_composite_key("asset", &["red"])?;
        assert_eq!(red.len(), 2);
        let (object_type, attributes) = s.split_composite_key(&red[1].key)?;
        assert_eq!((object_type.as_str(), attributes), ("asset", vec!["red".to_owned(), "2".to_owned()]));
        let (page, meta) = s.get_state_by_partial_composite_key_with_pagination("asset", &[], 2, "")?;
        assert_eq!((page.len(), meta.bookmark.is_empty()), (2, false));
        Ok(Bytes::new())
    });
    let refused = create_composite_key("a", &["x\u{0}"]).expect_err("U+0000").to_string();
    assert!(refused.contains("U+0000"), "{refused}");
}

#[test]
fn history_lists_committed_modifications_newest_first() {
    let mut stub = MockStub::new("ch");
    for v in ["1", "2"] {
        ok(&mut stub, "cc", move |s| s.put_state("h", b(v)).map(|_| Bytes::new()));
    }
    ok(&mut stub, "cc", |s| s.del_state("h").map(|_| Bytes::new()));
    ok(&mut stub, "cc", |s| {
        let history = s.get_history_for_key("h")?;
        let seen: Vec<(String, bool)> =
            history.iter().map(|m| (String::from_utf8_lossy(&m.value).into_owned(), m.is_delete)).collect();
        assert_eq!(seen, [("".to_owned(), true), ("2".to_owned(), false), ("1".to_owned(), false)]);
        assert!(history.iter().all(|m| m.timestamp.is_some() && !m.tx_id.is_empty()));
        Ok(Bytes::new())
    });
}

#[test]
fn events_key_policies_and_chaincode_calls() {
    let callee = Router::new("callee").route(
        "put",
        |s: &mut dyn ChaincodeStub, (k, v): (String, String)| -> Result<String, ContractError> {
            s.put_state(&k, b(&v))?;
            s.set_event("ignored", b("callee events do not reach the transaction"))?;
            Ok(format!("stored {k}"))
        },
    );
    let mut stub = MockStub::new("ch").with_chaincode("callee", callee);
    let outcome = stub.transact("caller", |s: &mut dyn ChaincodeStub| {
        s.put_state("k", b("v")).expect("write");
        s.set_event("first", b("1")).expect("event");
        s.set_event("second", b("2")).expect("event");
        assert!(s.set_event("", b("x")).is_err());
        s.set_state_validation_parameter("k", b("policy-bytes")).expect("policy");
        assert_eq!(s.get_state_validation_parameter("k").expect("pending"), Some(b("policy-bytes")));
        let response = s.invoke_chaincode("callee", &[b("put"), b("x"), b("y")], "").expect("call");
        assert_eq!(response.payload, b("stored x"));
        assert!(s.invoke_chaincode("callee", &[b("put")], "otherchannel").is_err());
        assert!(s.invoke_chaincode("nobody", &[b("put")], "").is_err());
        success(Bytes::new())
    });
    assert!(outcome.committed);
    assert_eq!(outcome.record.event, Some(("second".to_owned(), b("2"))), "the last event wins");
    assert_eq!(stub.value("callee", "x"), Some(b("y")), "the callee's write joined the transaction");
    assert_eq!(stub.validation_parameter("caller", "k"), Some(b("policy-bytes")));
    let outcome = stub.transact("caller", |s: &mut dyn ChaincodeStub| {
        success(s.get_state_validation_parameter("k").expect("read").unwrap_or_default())
    });
    assert_eq!(outcome.payload_str(), "policy-bytes");
    assert_eq!(outcome.record.reads["caller"]["k"], Some((1, 0)), "reading a policy is a read");
}

#[test]
fn private_data_reads_back_hashes_and_purges() {
    let mut stub = MockStub::new("ch");
    ok(&mut stub, "cc", |s| {
        s.put_private_data("coll", "k1", b("secret-1"))?;
        s.put_private_data("coll", "k2", b("secret-2"))?;
        // A transaction reads its own private writes.
        assert_eq!(text(s.get_private_data("coll", "k1")?), Some("secret-1".into()));
        Ok(Bytes::new())
    });
    assert_eq!(stub.private_value("cc", "coll", "k1"), Some(b("secret-1")));
    assert_eq!(stub.value("cc", "k1"), None, "private writes stay out of public state");
    let outcome = stub.transact("cc", |s: &mut dyn ChaincodeStub| {
        let value = s.get_private_data("coll", "k1").expect("read").unwrap_or_default();
        let hash = s.get_private_data_hash("coll", "k2").expect("hash").unwrap_or_default();
        let range = s.get_private_data_by_range("coll", "k", "l").expect("range");
        success(format!("{}|{}|{}", String::from_utf8_lossy(&value), hex(&hash), range.len()))
    });
    let expected = hex(&medfabric_shim::tx::hash(b"secret-2"));
    assert_eq!(outcome.payload_str(), format!("secret-1|{expected}|2"));
    let reads = &outcome.record.private["cc"]["coll"].reads;
    assert_eq!(reads["k1"], Some((1, 0)), "a private read records the hashed version");
    assert!(outcome.record.reads.is_empty(), "and no public read");
    ok(&mut stub, "cc", |s| {
        s.purge_private_data("coll", "k1")?;
        s.del_private_data("coll", "k2")?;
        assert_eq!(s.get_private_data("coll", "k1")?, None);
        Ok(Bytes::new())
    });
    assert_eq!(stub.private_value("cc", "coll", "k1"), None);
    assert_eq!(stub.private_value("cc", "coll", "k2"), None);
    let message = err(&mut stub, "cc", |s| s.put_private_data("", "k", b("v")).map(|_| Bytes::new()));
    assert!(message.contains("collection must not be an empty string"), "{message}");
}

#[derive(Debug)]
struct ReadOnlyColl;

impl medfabric_shim::CollectionRules for ReadOnlyColl {
    fn check(&self, _ns: &str, collection: &str, access: medfabric_shim::Access) -> Result<(), ShimError> {
        match (collection, access) {
            ("open", _) => Ok(()),
            ("closed", medfabric_shim::Access::Read) => Ok(()),
            ("closed", medfabric_shim::Access::Write) => Err(ShimError::Denied("no write access".into())),
            _ => Err(ShimError::Invalid(format!("collection {collection} not defined"))),
        }
    }
}

#[test]
fn collection_rules_deny_writes_and_unknown_collections() {
    let mut stub = MockStub::new("ch");
    stub.set_collection_rules(std::sync::Arc::new(ReadOnlyColl));
    let denied = stub.transact("cc", |s: &mut dyn ChaincodeStub| {
        s.put_private_data("open", "a", b("1")).expect("open collection");
        match s.put_private_data("closed", "k", b("v")) {
            Ok(()) => success(Bytes::new()),
            Err(e) => error(e.to_string()),
        }
    });
    assert_eq!(denied.response.message, "no write access");
    assert!(!denied.committed);
    assert_eq!(stub.private_value("cc", "open", "a"), None, "a denied transaction writes nothing");
    let message = err(&mut stub, "cc", |s| s.get_private_data("nope", "k").map(|_| Bytes::new()));
    assert!(message.contains("collection nope not defined"), "{message}");
    // Hashes are readable whatever the member-only rules say.
    ok(&mut stub, "cc", |s| s.get_private_data_hash("closed", "k").map(|_| Bytes::new()));
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[test]
fn proposal_context_and_client_identity() {
    let now = time::OffsetDateTime::now_utc();
    let attributes = BTreeMap::from([
        ("role".to_owned(), "provider".to_owned()),
        ("hf.EnrollmentID".to_owned(), "dr-who".to_owned()),
    ]);
    let issued = TestOrg::new("HospitalMSP").issue_leaf(
        "dr-who",
        "client",
        Some(attributes),
        Validity::days_from(now, 1),
    );
    let creator =
        SerializedIdentity { mspid: "HospitalMSP".into(), id_bytes: issued.certificate_pem.clone().into() };
    let router = Router::new("ctx").route("whoami", |s: &mut dyn ChaincodeStub, (suffix,): (String,)| {
        let id = s.client_identity()?;
        id.assert_attribute_value("role", "provider")?;
        assert!(id.assert_attribute_value("role", "patient").is_err());
        assert!(id.has_ou_value("client"));
        assert_eq!(id.role(), Some(medfabric_msp::NodeRole::Client));
        assert_eq!(s.function_and_parameters(), ("whoami".to_owned(), vec![suffix.clone()]));
        assert_eq!(s.string_args(), ["whoami", suffix.as_str()]);
        assert_eq!(s.args().len(), 2);
        assert_eq!(s.channel_id(), "ch");
        assert!(!s.tx_id().is_empty());
        assert!(s.tx_timestamp().is_some());
        assert!(s.signed_proposal().is_none(), "the mock has no signed proposal");
        assert_eq!(s.transient().get("secret"), Some(&b("s3cret")));
        let expected_id =
            format!("x509::{}::{}", id.certificate().subject_dn(), id.certificate().issuer_dn());
        assert!(expected_id.starts_with("x509::CN=dr-who,OU=client,"), "{expected_id}");
        assert!(!id.id().is_empty());
        Ok::<_, ContractError>(format!("{}@{}{suffix}", id.enrollment_id(), id.msp_id()))
    });
    let mut stub = MockStub::new("ch").with_chaincode("ctx", router);
    stub.set_creator(creator.encode_to_vec());
    stub.set_transient(BTreeMap::from([("secret".to_owned(), b("s3cret"))]));
    let outcome = stub.invoke("ctx", &["whoami", "!"]);
    assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
    assert_eq!(outcome.payload_str(), "dr-who@HospitalMSP!");
    let outcome = stub.invoke("ctx", &["nope"]);
    assert!(outcome.response.message.contains("unknown function"));
    let outcome = stub.invoke("ctx", &["whoami"]);
    assert!(outcome.response.message.contains("bad arguments"), "{}", outcome.response.message);
}

#[test]
fn a_panicking_chaincode_gets_an_error_response() {
    let mut stub = MockStub::new("ch");
    let outcome = stub.transact("cc", |s: &mut dyn ChaincodeStub| {
        s.put_state("k", b("v")).expect("write");
        panic!("boom")
    });
    assert_eq!(outcome.response.status, 500);
    assert!(outcome.response.message.contains("boom"));
    assert_eq!(stub.value("cc", "k"), None);
}
