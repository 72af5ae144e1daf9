//! The CA server over HTTP on loopback: Fabric CA's envelope, enroll / register /
//! reenroll / revoke / gencrl, the token rule, and the refusals (each leaving the
//! registry unchanged).

use std::net::SocketAddr;
use std::sync::Arc;

use medfabric_ca::KeyPair;
use medfabric_ca_server::{CaService, base64, http};
use medfabric_msp::Certificate;
use p256::ecdsa::signature::Signer;
use serde_json::{Value, json};

struct Ca {
    address: SocketAddr,
    dir: tempfile::TempDir,
    registry_file: std::path::PathBuf,
}

async fn start() -> Ca {
    start_with(|_| {}).await
}

/// A CA over the test config as `adjust` changes it.
async fn start_with(adjust: impl FnOnce(&mut medfabric_ca_server::CaConfig)) -> Ca {
    let dir = tempfile::tempdir().expect("dir");
    crate::root_ca(dir.path());
    serve_in(dir, adjust).await
}

/// A CA server over `dir` (root CA and registry there), as a restart opens it.
async fn serve_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut medfabric_ca_server::CaConfig)) -> Ca {
    let registry_file = dir.path().join("registry.json");
    let mut config = crate::ca_config(dir.path());
    adjust(&mut config);
    let service = Arc::new(CaService::open(config).expect("open"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, http::router(service)).await });
    Ca { address, dir, registry_file }
}

/// One request through the SDK's HTTP client (blocking, so off the runtime that serves
/// the CA); (status, body).
async fn request(ca: &Ca, method: &str, uri: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
    let endpoint = medfabric_sdk::http::Endpoint::plain(&ca.address.to_string());
    let (method, uri, body) = (method.to_owned(), uri.to_owned(), body.to_vec());
    let headers: Vec<(String, String)> = headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
    let answer = tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        medfabric_sdk::http::exchange(&endpoint, &method, &uri, &headers, &body)
    })
    .await
    .expect("request thread")
    .expect("an HTTP answer");
    (answer.status, answer.body)
}

fn csr(key: &KeyPair, cn: &str) -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.serialize_request(key).expect("csr").pem().expect("pem")
}

fn basic(id: &str, secret: &str) -> (&'static str, String) {
    ("Authorization", format!("Basic {}", base64::encode(format!("{id}:{secret}").as_bytes())))
}

/// Fabric CA's token for `method uri body` by the holder of `cert_pem` / `key`.
pub(crate) fn token(
    cert_pem: &str,
    key: &KeyPair,
    method: &str,
    uri: &str,
    body: &[u8],
) -> (&'static str, String) {
    let b64cert = base64::encode(cert_pem.as_bytes());
    let payload = format!("{method}.{}.{}.{b64cert}", base64::encode(uri.as_bytes()), base64::encode(body));
    let signing = p256::ecdsa::SigningKey::from(key.secret());
    let signature: p256::ecdsa::Signature = signing.sign(payload.as_bytes());
    let signature = signature.normalize_s();
    ("Authorization", format!("{b64cert}.{}", base64::encode(signature.to_der().as_bytes())))
}

fn result(body: &str) -> Value {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(value["success"], true, "{body}");
    value["result"].clone()
}

fn error(body: &str) -> (u64, String) {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(value["success"], false, "{body}");
    (
        value["errors"][0]["code"].as_u64().expect("code"),
        value["errors"][0]["message"].as_str().expect("message").to_owned(),
    )
}

/// Enrolls `id` and returns (certificate PEM, key).
async fn enroll(ca: &Ca, id: &str, secret: &str, extra: Value) -> (String, KeyPair) {
    let key = KeyPair::generate();
    let mut body = json!({"certificate_request": csr(&key, id)});
    if let (Some(b), Value::Object(more)) = (body.as_object_mut(), extra) {
        b.extend(more);
    }
    let (status, text) =
        request(ca, "POST", "/api/v1/enroll", &[basic(id, secret)], body.to_string().as_bytes()).await;
    assert_eq!(status, 201, "{text}");
    let cert = String::from_utf8(base64::decode(result(&text)["Cert"].as_str().expect("Cert")).expect("b64"))
        .expect("pem");
    (cert, key)
}

async fn post(ca: &Ca, uri: &str, body: &Value, as_: (&str, &KeyPair)) -> (u16, String) {
    let bytes = body.to_string().into_bytes();
    let auth = token(as_.0, as_.1, "POST", uri, &bytes);
    let (status, text) = request(ca, "POST", uri, &[auth], &bytes).await;
    (status, text)
}

#[tokio::test]
async fn enroll_register_reenroll_revoke_and_crl() {
    let ca = start().await;
    // The envelope's exact bytes.
    let (status, body) = request(&ca, "GET", "/api/v1/cainfo", &[], b"").await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("{\"result\":{")
            && body.ends_with("}\n,\"errors\":[],\"messages\":[],\"success\":true}"),
        "{body}"
    );
    assert_eq!(result(&body)["CAName"], "ca-hospital");

    // The bootstrap admin: OU client, CN admin, no attribute extension.
    let (admin_pem, admin_key) = enroll(&ca, "admin", "adminpw", json!({})).await;
    let admin_cert = Certificate::from_pem(admin_pem.as_bytes()).expect("cert");
    assert_eq!(
        (admin_cert.common_name(), admin_cert.organizational_units()),
        ("admin", &["client".to_owned()][..])
    );
    assert!(admin_cert.attributes().is_empty());
    let admin = (admin_pem.as_str(), &admin_key);

    // Register a patient with an ecert attribute; enroll; the certificate carries it.
    let (status, text) = post(
        &ca,
        "/api/v1/register",
        &json!({"id": "alice", "type": "client", "affiliation": "hospital", "max_enrollments": 2,
        "attrs": [{"name": "role", "value": "patient", "ecert": true}, {"name": "ward", "value": "3"}]}),
        admin,
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let secret = result(&text)["secret"].as_str().expect("secret").to_owned();
    let (alice_pem, alice_key) = enroll(&ca, "alice", &secret, json!({})).await;
    let alice = Certificate::from_pem(alice_pem.as_bytes()).expect("cert");
    assert_eq!(alice.common_name(), "alice");
    assert_eq!(alice.organizational_units(), &["client".to_owned(), "hospital".to_owned()][..]);
    let attrs = alice.attributes();
    assert_eq!(attrs.get("role").map(String::as_str), Some("patient"));
    assert_eq!(attrs.get("hf.EnrollmentID").map(String::as_str), Some("alice"));
    assert_eq!(attrs.get("hf.Type").map(String::as_str), Some("client"));
    assert_eq!(attrs.get("hf.Affiliation").map(String::as_str), Some("hospital"));
    assert!(!attrs.contains_key("ward"), "not an ecert attribute");
    // attr_reqs: exactly the requested ones; a required missing one fails.
    let (with_ward, _) = enroll(&ca, "alice", &secret, json!({"attr_reqs": [{"name": "ward"}]})).await;
    let ward = Certificate::from_pem(with_ward.as_bytes()).expect("cert");
    assert_eq!(ward.attributes().keys().collect::<Vec<_>>(), ["ward"]);
    // Max enrollments (2) reached.
    let key = KeyPair::generate();
    let body = json!({"certificate_request": csr(&key, "alice")}).to_string();
    let (status, text) =
        request(&ca, "POST", "/api/v1/enroll", &[basic("alice", &secret)], body.as_bytes()).await;
    assert_eq!((status, error(&text)), (401, (20, "Authentication failure".into())));

    // Reenroll with a token.
    let key = KeyPair::generate();
    let body = json!({"certificate_request": csr(&key, "alice")});
    let (status, text) = post(&ca, "/api/v1/reenroll", &body, (&alice_pem, &alice_key)).await;
    assert_eq!(status, 201, "{text}");

    // Revoke bob; the CRL lists his certificate; his token no longer works.
    let (status, text) = post(&ca, "/api/v1/register", &json!({"id": "bob", "secret": "bobpw"}), admin).await;
    assert_eq!(status, 201, "{text}");
    let (bob_pem, bob_key) = enroll(&ca, "bob", "bobpw", json!({})).await;
    let bob_serial = Certificate::from_pem(bob_pem.as_bytes()).expect("cert").serial_hex();
    let (status, text) =
        post(&ca, "/api/v1/revoke", &json!({"id": "bob", "reason": "keycompromise", "gencrl": true}), admin)
            .await;
    assert_eq!(status, 200, "{text}");
    let revoked = result(&text);
    assert_eq!(revoked["RevokedCerts"][0]["Serial"], bob_serial.trim_start_matches('0'));
    let crl =
        String::from_utf8(base64::decode(revoked["CRL"].as_str().expect("CRL")).expect("b64")).expect("pem");
    assert!(crl.contains("BEGIN X509 CRL"), "{crl}");
    let (status, text) = post(&ca, "/api/v1/gencrl", &json!({}), admin).await;
    assert_eq!(status, 200, "{text}");
    let (_, block) = x509_pem(
        &String::from_utf8(base64::decode(result(&text)["CRL"].as_str().expect("CRL")).expect("b64"))
            .expect("pem"),
    );
    assert!(crl_lists(&block, &bob_serial), "the CRL lists bob's certificate");
    let (status, text) = post(
        &ca,
        "/api/v1/reenroll",
        &json!({"certificate_request": csr(&KeyPair::generate(), "bob")}),
        (&bob_pem, &bob_key),
    )
    .await;
    assert_eq!((status, error(&text).0), (401, 20), "a revoked certificate's token: {text}");
    let key = KeyPair::generate();
    let body = json!({"certificate_request": csr(&key, "bob")}).to_string();
    let (status, _) = request(&ca, "POST", "/api/v1/enroll", &[basic("bob", "bobpw")], body.as_bytes()).await;
    assert_eq!(status, 401, "a revoked identity cannot enroll");
    let (status, text) = post(
        &ca,
        "/api/v1/revoke",
        &json!({"serial": bob_serial, "aki": revoked["RevokedCerts"][0]["AKI"]}),
        admin,
    )
    .await;
    assert_eq!((status, error(&text).0), (404, 66), "{text}");

    // The registry is on disk with hashed secrets only.
    let stored = std::fs::read_to_string(&ca.registry_file).expect("registry");
    assert!(
        stored.contains("\"alice\"")
            && !stored.contains(&secret)
            && !stored.contains("bobpw")
            && !stored.contains("adminpw")
    );
    let _ = ca.dir.path();
}

fn x509_pem(pem: &str) -> (String, Vec<u8>) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    (block.label.clone(), block.contents.clone())
}

fn crl_lists(der: &[u8], serial_hex: &str) -> bool {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der).expect("crl");
    let wanted = serial_hex.trim_start_matches('0');
    crl.iter_revoked_certificates().any(|r| hex::encode(r.raw_serial()).trim_start_matches('0') == wanted)
}

#[tokio::test]
async fn refusals_are_clear_and_change_nothing() {
    let ca = start().await;
    let (admin_pem, admin_key) = enroll(&ca, "admin", "adminpw", json!({})).await;
    let admin = (admin_pem.as_str(), &admin_key);
    let (_, text) = post(&ca, "/api/v1/register", &json!({"id": "carol", "secret": "carolpw"}), admin).await;
    assert!(text.contains("carolpw"));
    let (carol_pem, carol_key) = enroll(&ca, "carol", "carolpw", json!({})).await;
    let before = std::fs::read(&ca.registry_file).expect("registry");

    // Wrong secret, unknown id, no header.
    let body = json!({"certificate_request": csr(&KeyPair::generate(), "admin")}).to_string();
    for auth in [vec![basic("admin", "wrong")], vec![basic("nobody", "x")]] {
        let (status, text) = request(&ca, "POST", "/api/v1/enroll", &auth, body.as_bytes()).await;
        assert_eq!((status, error(&text)), (401, (20, "Authentication failure".into())));
    }
    let (status, text) = request(&ca, "POST", "/api/v1/enroll", &[], body.as_bytes()).await;
    assert_eq!((status, error(&text)), (401, (2, "No authorization header".into())));
    // Register without registrar rights.
    let (status, text) =
        post(&ca, "/api/v1/register", &json!({"id": "dave"}), (&carol_pem, &carol_key)).await;
    assert_eq!((status, error(&text)), (403, (71, "Authorization failure".into())));
    // A token replayed on another URI, or with another body, or forged.
    let register = json!({"id": "eve"}).to_string();
    let signed_for_revoke = token(&admin_pem, &admin_key, "POST", "/api/v1/revoke", register.as_bytes());
    let (status, text) =
        request(&ca, "POST", "/api/v1/register", &[signed_for_revoke], register.as_bytes()).await;
    assert_eq!((status, error(&text).0), (401, 20), "another URI: {text}");
    let signed = token(&admin_pem, &admin_key, "POST", "/api/v1/register", register.as_bytes());
    let other = json!({"id": "mallory"}).to_string();
    let (status, text) =
        request(&ca, "POST", "/api/v1/register", std::slice::from_ref(&signed), other.as_bytes()).await;
    assert_eq!((status, error(&text).0), (401, 20), "another body: {text}");
    let forged = (
        "Authorization",
        format!("{}.{}", signed.1.split('.').next().expect("cert"), base64::encode(b"not a signature")),
    );
    let (status, text) = request(&ca, "POST", "/api/v1/register", &[forged], register.as_bytes()).await;
    assert_eq!((status, error(&text).0), (401, 20), "forged: {text}");
    let (status, text) =
        request(&ca, "POST", "/api/v1/register", &[("Authorization", "garbage".into())], register.as_bytes())
            .await;
    assert_eq!((status, error(&text).0), (401, 20), "malformed: {text}");
    // Malformed CSR.
    let bad = json!({"certificate_request": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}).to_string();
    let (status, text) =
        request(&ca, "POST", "/api/v1/enroll", &[basic("admin", "adminpw")], bad.as_bytes()).await;
    assert_eq!(status, 400, "{text}");
    assert!(error(&text).1.starts_with("Invalid certificate request"), "{text}");
    // Duplicate registration.
    let (status, text) = post(&ca, "/api/v1/register", &json!({"id": "carol"}), admin).await;
    assert_eq!((status, error(&text)), (409, (74, "Identity 'carol' is already registered".into())));
    // Unknown CA name, unknown route, wrong method.
    let (status, text) = request(&ca, "GET", "/api/v1/cainfo?ca=other", &[], b"").await;
    assert_eq!((status, error(&text)), (404, (19, "CA 'other' does not exist".into())));
    let (status, text) = request(&ca, "GET", "/api/v1/nosuch", &[], b"").await;
    assert_eq!((status, text.as_str()), (404, "404 page not found\n"));
    let (status, text) = request(&ca, "DELETE", "/api/v1/cainfo", &[], b"").await;
    assert_eq!((status, text.as_str()), (405, "{\"code\":1,\"message\":\"Method DELETE is not allowed\"}"));

    // Only the failed enrollments' side effects would show: there are none.
    let after = std::fs::read(&ca.registry_file).expect("registry");
    let (b, a): (Value, Value) =
        (serde_json::from_slice(&before).expect("json"), serde_json::from_slice(&after).expect("json"));
    assert_eq!(b["identities"], a["identities"], "refusals changed the registry");
}

async fn call(
    ca: &Ca,
    method: &str,
    uri: &str,
    body: Option<&Value>,
    as_: (&str, &KeyPair),
) -> (u16, String) {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let auth = token(as_.0, as_.1, method, uri, &bytes);
    let (status, text) = request(ca, method, uri, &[auth], &bytes).await;
    (status, text)
}

#[tokio::test]
async fn identities_and_affiliations_are_managed() {
    let ca = start().await;
    let (admin_pem, admin_key) = enroll(&ca, "admin", "adminpw", json!({})).await;
    let admin = (admin_pem.as_str(), &admin_key);
    let (status, text) = post(
        &ca,
        "/api/v1/register",
        &json!({"id": "carol", "secret": "carolpw", "affiliation": "hospital"}),
        admin,
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = call(&ca, "GET", "/api/v1/identities?ca=", None, admin).await;
    assert_eq!(status, 200, "{text}");
    let list = result(&text);
    assert_eq!(list["caname"], "ca-hospital");
    let ids: Vec<&str> =
        list["identities"].as_array().expect("list").iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, ["admin", "carol"]);
    let (status, text) = call(&ca, "GET", "/api/v1/identities/nobody", None, admin).await;
    assert_eq!((status, error(&text).0), (404, 63));
    // Modify: a new attribute and secret; the next enrollment carries the attribute.
    let change = json!({"attrs": [{"name": "role", "value": "nurse", "ecert": true}], "secret": "newpw", "max_enrollments": 3});
    let (status, text) = call(&ca, "PUT", "/api/v1/identities/carol", Some(&change), admin).await;
    assert_eq!(status, 200, "{text}");
    let (pem, _) = enroll(&ca, "carol", "newpw", json!({})).await;
    let cert = Certificate::from_pem(pem.as_bytes()).expect("cert");
    assert_eq!(cert.attributes().get("role").map(String::as_str), Some("nurse"));
    let (status, text) = call(&ca, "GET", "/api/v1/identities/carol", None, admin).await;
    assert_eq!((status, result(&text)["max_enrollments"].as_i64()), (200, Some(3)));
    // Removal is disabled by default.
    let (status, text) = call(&ca, "DELETE", "/api/v1/identities/carol", None, admin).await;
    assert_eq!((status, error(&text)), (403, (56, "Identity removal is disabled".into())));
    // Affiliations: the tree, add, remove; one in use is kept.
    let (status, text) = call(&ca, "GET", "/api/v1/affiliations", None, admin).await;
    assert_eq!(status, 200, "{text}");
    let tree = result(&text);
    assert_eq!(tree["affiliations"][0]["name"], "hospital");
    assert_eq!(tree["affiliations"][0]["affiliations"][0]["name"], "hospital.ward1");
    let (status, text) =
        call(&ca, "POST", "/api/v1/affiliations", Some(&json!({"name": "lab"})), admin).await;
    assert_eq!(status, 201, "{text}");
    let (status, text) = call(&ca, "DELETE", "/api/v1/affiliations/lab", None, admin).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = call(&ca, "DELETE", "/api/v1/affiliations/hospital", None, admin).await;
    assert_eq!(status, 400, "in use by carol: {text}");
    // Only affiliation managers manage affiliations.
    let (status, text) =
        call(&ca, "POST", "/api/v1/affiliations", Some(&json!({"name": "x"})), (&pem, &KeyPair::generate()))
            .await;
    assert_eq!((status, error(&text).0), (401, 20), "a token signed with another key: {text}");
}

/// Tries to enroll `id` with `secret`; (status, error code and message).
async fn try_enroll(ca: &Ca, id: &str, secret: &str) -> (u16, (u64, String)) {
    let body = json!({"certificate_request": csr(&KeyPair::generate(), id)}).to_string();
    let (status, text) = request(ca, "POST", "/api/v1/enroll", &[basic(id, secret)], body.as_bytes()).await;
    (status, if status == 201 { (0, String::new()) } else { error(&text) })
}

#[tokio::test]
async fn wrong_passwords_lock_an_identity_and_the_ca_limit_caps_enrollments() {
    let ca = start_with(|config| {
        config.password_attempts = 3;
        config.max_enrollments = 2;
    })
    .await;
    let (admin_pem, admin_key) = enroll(&ca, "admin", "adminpw", json!({})).await;
    let admin = (admin_pem.as_str(), &admin_key);

    // A registrar asks for no more than the CA allows.
    for (asked, message) in [
        (-1, "Registration for infinite enrollments is not allowed"),
        (3, "Requested enrollments (3) exceeds maximum allowable enrollments (2)"),
        (-2, "Max enrollment in registration request may not be less than -1, but was -2"),
    ] {
        let body = json!({"id": "greedy", "secret": "pw", "max_enrollments": asked});
        let (status, text) = post(&ca, "/api/v1/register", &body, admin).await;
        assert_eq!((status, error(&text)), (400, (82, message.to_owned())), "asked {asked}");
    }
    assert_eq!(try_enroll(&ca, "greedy", "pw").await.0, 401, "a refused registration registers nobody");
    let body = json!({"id": "carol", "secret": "carolpw", "max_enrollments": 0});
    let (status, text) = post(&ca, "/api/v1/register", &body, admin).await;
    assert_eq!(status, 201, "{text}");
    let (status, text) =
        call(&ca, "PUT", "/api/v1/identities/carol", Some(&json!({"max_enrollments": -1})), admin).await;
    assert_eq!((status, error(&text).0), (400, 82), "nor can a modification exceed it: {text}");

    // Wrong passwords below the limit, then the right one: the count starts again.
    let mismatch = (401, (20, "Authentication failure".to_owned()));
    for _ in 0..2 {
        assert_eq!(try_enroll(&ca, "carol", "guess").await, mismatch);
    }
    assert_eq!(try_enroll(&ca, "carol", "carolpw").await.0, 201);
    // Three wrong in a row lock the identity: the right password no longer works.
    for _ in 0..3 {
        assert_eq!(try_enroll(&ca, "carol", "guess").await, mismatch);
    }
    let locked =
        (401, (73, "Incorrect password entered 3 times, max incorrect password limit of 3 reached".into()));
    assert_eq!(try_enroll(&ca, "carol", "carolpw").await, locked);
    assert_eq!(try_enroll(&ca, "carol", "carolpw").await, locked, "the lock holds");
    // A registrar's new secret unlocks it.
    let (status, text) =
        call(&ca, "PUT", "/api/v1/identities/carol", Some(&json!({"secret": "newpw"})), admin).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(try_enroll(&ca, "carol", "newpw").await.0, 201);
    // Two enrollments: the CA's limit, which carol's registration took.
    assert_eq!(try_enroll(&ca, "carol", "newpw").await, mismatch);

    // The bootstrap admin, unlimited in its own record, is held to the CA's limit too.
    assert_eq!(try_enroll(&ca, "admin", "adminpw").await.0, 201);
    assert_eq!(try_enroll(&ca, "admin", "adminpw").await, mismatch);
}

#[tokio::test]
async fn a_ca_whose_limit_is_zero_enrolls_nobody() {
    let ca = start_with(|config| config.max_enrollments = 0).await;
    assert_eq!(try_enroll(&ca, "admin", "adminpw").await, (401, (20, "Authentication failure".into())));
}

#[tokio::test]
async fn lockouts_count_only_where_they_lock_and_a_restart_unlocks_the_bootstrap_admin() {
    // Without a limit nothing is counted: a wrong password writes nothing to the registry.
    let ca = start_with(|config| config.password_attempts = 0).await;
    let _ = enroll(&ca, "admin", "adminpw", json!({})).await;
    let before = std::fs::read(&ca.registry_file).expect("registry");
    for _ in 0..3 {
        assert_eq!(try_enroll(&ca, "admin", "guess").await.0, 401);
    }
    assert_eq!(std::fs::read(&ca.registry_file).expect("registry"), before);

    // Anyone who knows the bootstrap admin's id can lock it out (as in Fabric CA); the
    // operator's restart of the CA unlocks it.
    let ca = start_with(|config| config.password_attempts = 2).await;
    for _ in 0..2 {
        assert_eq!(try_enroll(&ca, "admin", "guess").await.0, 401);
    }
    assert_eq!(try_enroll(&ca, "admin", "adminpw").await.1.0, 73, "locked");
    let restarted = serve_in(ca.dir, |config| config.password_attempts = 2).await;
    assert_eq!(try_enroll(&restarted, "admin", "adminpw").await.0, 201, "unlocked by the restart");
}

#[test]
fn a_ca_limit_below_minus_one_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    crate::root_ca(dir.path());
    let mut config = crate::ca_config(dir.path());
    config.max_enrollments = -5;
    let why = CaService::open(config).expect_err("refused").to_string();
    assert!(why.contains("max_enrollments is -5"), "{why}");
}
