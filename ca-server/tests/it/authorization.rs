//! Fabric CA's registrar rules (`medfabric_ca_server::authority`) as one table: who may
//! register, modify, revoke, remove and list whom, with which type, affiliation and
//! attributes. Every refused row also checks that the registry file did not change.

use medfabric_ca::{KeyPair, LeafRequest, Validity};
use medfabric_ca_server::api::ApiError;
use medfabric_ca_server::registry::IdentityRecord;
use medfabric_ca_server::{CaConfig, CaService, SeedIdentity};
use serde_json::{Value, json};

struct Fixture {
    service: CaService,
    registry_file: std::path::PathBuf,
    /// drgrey's generated certificate (CN `drgrey@hospital.example`) and key.
    grey: (String, KeyPair),
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("dir");
    let now = time::OffsetDateTime::now_utc();
    let root = crate::root_ca(dir.path());
    let registry_file = dir.path().join("registry.json");
    // drgrey's certificate, as `network generate` issues it from the same CA key.
    let grey = root
        .issue(&LeafRequest::enrollment("drgrey@hospital.example", "client", Validity::days_from(now, 30)))
        .expect("drgrey");
    std::fs::write(dir.path().join("drgrey-cert.pem"), &grey.certificate_pem).expect("drgrey cert");
    let config = CaConfig {
        affiliations: vec!["hospital".into(), "hospital.ward1".into(), "hospital2".into()],
        password_attempts: 10,
        allow_identity_removal: true,
        seed_identities: vec![
            SeedIdentity {
                id: "drgrey".into(),
                kind: "client".into(),
                affiliation: String::new(),
                attrs: [("role".to_owned(), "provider".to_owned())].into(),
                certificate_file: Some(dir.path().join("drgrey-cert.pem")),
            },
            SeedIdentity {
                id: "peer0.hospital.example".into(),
                kind: "peer".into(),
                affiliation: String::new(),
                attrs: Default::default(),
                certificate_file: None,
            },
        ],
        ..crate::ca_config(dir.path())
    };
    let service = CaService::open(config).expect("open");
    let grey = (grey.certificate_pem.clone(), grey.key.expect("generated key"));
    Fixture { service, registry_file, grey, _dir: dir }
}

fn attrs(pairs: &[(&str, &str)]) -> Value {
    Value::Array(pairs.iter().map(|(n, v)| json!({"name": n, "value": v})).collect())
}

impl Fixture {
    fn record(&self, id: &str) -> IdentityRecord {
        self.service.identity(id).unwrap_or_else(|| panic!("{id} is registered"))
    }

    /// Registers `id` as the bootstrap admin does.
    fn make(&self, id: &str, kind: &str, affiliation: &str, pairs: &[(&str, &str)]) {
        let body = json!({"id": id, "type": kind, "affiliation": affiliation, "attrs": attrs(pairs)});
        self.service
            .register(&self.record("admin"), body.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("admin registers {id}: {e:?}"));
    }

    fn enroll(&self, id: &str) -> Value {
        let key = KeyPair::generate();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, id);
        let csr = params.serialize_request(&key).expect("csr").pem().expect("pem");
        let body = json!({"certificate_request": csr});
        self.service.enroll(id, body.to_string().as_bytes()).expect("enroll")
    }

    /// The (serial, AKI) of `id`'s only certificate.
    fn certificate(&self, id: &str) -> (String, String) {
        let text = std::fs::read_to_string(&self.registry_file).expect("registry");
        let registry: Value = serde_json::from_str(&text).expect("registry JSON");
        let cert = registry["certificates"]
            .as_array()
            .expect("certificates")
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("a certificate of {id}"));
        (cert["serial"].as_str().expect("serial").into(), cert["aki"].as_str().expect("aki").into())
    }
}

/// The CA's identities for the table: the bootstrap admin, registrars of several reaches, and
/// the identities they act on.
fn population(f: &Fixture) {
    // The issue's registrar: clients only, attribute `role` only, no hf.Revoker.
    f.make(
        "reg-h",
        "client",
        "hospital",
        &[("hf.Registrar.Roles", "client"), ("hf.Registrar.Attributes", "role")],
    );
    f.make("reg-full", "client", "hospital", &[
        ("hf.Registrar.Roles", "client,peer"),
        ("hf.Registrar.DelegateRoles", "client,peer"),
        (
            "hf.Registrar.Attributes",
            "role,dept.*,hf.Revoker,hf.GenCRL,hf.Registrar.Roles,hf.Registrar.DelegateRoles,hf.Registrar.Attributes",
        ),
        ("hf.Revoker", "true"),
        // Held, but false: it may list hf.GenCRL and still not give it.
        ("hf.GenCRL", "false"),
    ]);
    f.make(
        "reg-ward",
        "client",
        "hospital.ward1",
        &[("hf.Registrar.Roles", "client"), ("hf.Registrar.Attributes", "*"), ("hf.Revoker", "1")],
    );
    // A second root registrar with every right but not the bootstrap admin.
    f.make(
        "reg-root",
        "client",
        ".",
        &[
            ("hf.Registrar.Roles", "*"),
            ("hf.Registrar.Attributes", "*"),
            ("hf.Revoker", "true"),
            ("hf.GenCRL", "true"),
        ],
    );
    // A registrar with every role, below a lesser one's reach by affiliation.
    f.make(
        "reg-star",
        "client",
        "hospital",
        &[("hf.Registrar.Roles", "*"), ("hf.Registrar.Attributes", "role")],
    );
    f.make("nurse", "client", "hospital", &[("role", "provider")]);
    f.make("nurse-revoker", "client", "hospital", &[("hf.Revoker", "true")]);
    f.make("ward-nurse", "client", "hospital.ward1", &[]);
    f.make("ward-peer", "peer", "hospital.ward1", &[]);
    f.make("h-peer", "peer", "hospital", &[]);
    f.make("root-client", "client", ".", &[]);
    f.make("h2-client", "client", "hospital2", &[]);
    for id in ["nurse", "root-client", "h2-client", "ward-peer"] {
        f.enroll(id);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Register,
    Modify,
    RevokeId,
    RevokeSerial,
    Remove,
    Get,
}

struct Row {
    caller: &'static str,
    op: Op,
    /// The identity acted on (for register: the new id).
    target: &'static str,
    body: Value,
    /// `None`: allowed; `Some((status, code))`: refused so.
    refusal: Option<(u16, u32)>,
    why: &'static str,
}

const DENIED: Option<(u16, u32)> = Some((403, 71));

fn row(
    caller: &'static str,
    op: Op,
    target: &'static str,
    body: Value,
    refusal: Option<(u16, u32)>,
    why: &'static str,
) -> Row {
    Row { caller, op, target, body, refusal, why }
}

fn reg(target: &str, kind: &str, affiliation: &str, pairs: &[(&str, &str)]) -> Value {
    json!({"id": target, "type": kind, "affiliation": affiliation, "attrs": attrs(pairs)})
}

fn table() -> Vec<Row> {
    use Op::*;
    vec![
        // Register: type.
        row(
            "reg-h",
            Register,
            "r1",
            reg("r1", "client", "hospital", &[("role", "provider")]),
            None,
            "a listed type and attribute",
        ),
        row(
            "reg-h",
            Register,
            "r2",
            reg("r2", "peer", "hospital", &[]),
            DENIED,
            "peer is not in Roles=client",
        ),
        row(
            "reg-h",
            Register,
            "r3",
            reg("r3", "CLIENT", "hospital", &[]),
            None,
            "types compare case-insensitively",
        ),
        row(
            "reg-h",
            Register,
            "r4",
            reg("r4", "admin", "hospital", &[]),
            DENIED,
            "admin is not in Roles=client",
        ),
        row("nurse", Register, "r5", reg("r5", "client", "hospital", &[]), DENIED, "not a registrar"),
        row(
            "reg-root",
            Register,
            "r6",
            reg("r6", "orderer", "hospital", &[]),
            None,
            "Roles=* covers every type",
        ),
        // Register: affiliation.
        row("reg-h", Register, "r7", reg("r7", "client", ".", &[]), DENIED, "the root is above the caller"),
        row("reg-h", Register, "r8", reg("r8", "client", "hospital.ward1", &[]), None, "below the caller's"),
        row("reg-ward", Register, "r9", reg("r9", "client", "hospital", &[]), DENIED, "above the caller's"),
        row(
            "reg-h",
            Register,
            "r10",
            reg("r10", "client", "hospital2", &[]),
            DENIED,
            "a prefix without a dot is another affiliation",
        ),
        row(
            "reg-root",
            Register,
            "r11",
            reg("r11", "client", "nosuch", &[]),
            DENIED,
            "an unknown affiliation",
        ),
        // Register: custom attributes.
        row(
            "reg-h",
            Register,
            "r12",
            reg("r12", "client", "hospital", &[("dept", "x")]),
            DENIED,
            "dept is not in Attributes=role",
        ),
        row(
            "reg-full",
            Register,
            "r13",
            reg("r13", "client", "hospital", &[("dept.unit", "x")]),
            None,
            "dept.* matches by prefix",
        ),
        row(
            "reg-full",
            Register,
            "r14",
            reg("r14", "client", "hospital", &[("deptx", "x")]),
            DENIED,
            "dept.* does not match deptx",
        ),
        // Register: boolean hf.* attributes need the caller to hold them as true.
        row(
            "reg-full",
            Register,
            "r15",
            reg("r15", "client", "hospital", &[("hf.Revoker", "true")]),
            None,
            "the caller holds hf.Revoker=true",
        ),
        row(
            "reg-full",
            Register,
            "r16",
            reg("r16", "client", "hospital", &[("hf.GenCRL", "true")]),
            DENIED,
            "the caller holds hf.GenCRL=false",
        ),
        row(
            "reg-full",
            Register,
            "r17",
            reg("r17", "client", "hospital", &[("hf.Revoker", "maybe")]),
            DENIED,
            "not a boolean",
        ),
        row(
            "reg-ward",
            Register,
            "r18",
            reg("r18", "client", "hospital.ward1", &[("hf.IntermediateCA", "true")]),
            DENIED,
            "Attributes=* does not give ownership",
        ),
        row(
            "admin",
            Register,
            "r19",
            reg("r19", "client", "hospital", &[("hf.IntermediateCA", "true"), ("hf.AffiliationMgr", "1")]),
            None,
            "the bootstrap admin holds them",
        ),
        // Register: list hf.* attributes are subsets of the caller's.
        row(
            "reg-full",
            Register,
            "r20",
            reg("r20", "client", "hospital", &[("hf.Registrar.Roles", "client")]),
            None,
            "a subset of client,peer",
        ),
        row(
            "reg-full",
            Register,
            "r21",
            reg("r21", "client", "hospital", &[("hf.Registrar.Roles", "client,orderer")]),
            DENIED,
            "orderer exceeds the caller's roles",
        ),
        row(
            "reg-h",
            Register,
            "r22",
            reg("r22", "client", "hospital", &[("hf.Registrar.Roles", "client")]),
            DENIED,
            "hf.Registrar.Roles is not in Attributes=role",
        ),
        row(
            "reg-full",
            Register,
            "r23",
            reg(
                "r23",
                "client",
                "hospital",
                &[("hf.Registrar.Roles", "client,peer"), ("hf.Registrar.DelegateRoles", "client")],
            ),
            None,
            "delegate roles within roles",
        ),
        row(
            "reg-full",
            Register,
            "r24",
            reg(
                "r24",
                "client",
                "hospital",
                &[("hf.Registrar.Roles", "client"), ("hf.Registrar.DelegateRoles", "peer")],
            ),
            DENIED,
            "delegate roles beyond the identity's roles",
        ),
        row(
            "reg-full",
            Register,
            "r25",
            reg("r25", "client", "hospital", &[("hf.Registrar.Attributes", "role")]),
            None,
            "an attribute the caller may register",
        ),
        row(
            "reg-full",
            Register,
            "r26",
            reg("r26", "client", "hospital", &[("hf.Registrar.Attributes", "role,salary")]),
            DENIED,
            "salary is not the caller's to give",
        ),
        row(
            "reg-full",
            Register,
            "r27",
            reg("r27", "client", "hospital", &[("hf.Registrar.Attributes", "hf.Revoker")]),
            DENIED,
            "an hf. name the new identity does not hold",
        ),
        row(
            "reg-full",
            Register,
            "r28",
            reg(
                "r28",
                "client",
                "hospital",
                &[("hf.Registrar.Attributes", "hf.Revoker"), ("hf.Revoker", "true")],
            ),
            None,
            "an hf. name the new identity gets",
        ),
        // Register: fixed and unknown hf.* attributes never.
        row(
            "admin",
            Register,
            "r29",
            reg("r29", "client", "hospital", &[("hf.EnrollmentID", "admin")]),
            DENIED,
            "hf.EnrollmentID is the CA's",
        ),
        row(
            "admin",
            Register,
            "r30",
            reg("r30", "client", "hospital", &[("hf.Type", "admin")]),
            DENIED,
            "hf.Type is the CA's",
        ),
        row(
            "admin",
            Register,
            "r31",
            reg("r31", "client", "hospital", &[("hf.Affiliation", "")]),
            DENIED,
            "hf.Affiliation is the CA's",
        ),
        row(
            "admin",
            Register,
            "r32",
            reg("r32", "client", "hospital", &[("hf.Superuser", "true")]),
            DENIED,
            "an unknown reserved name",
        ),
        // Register: identities that exist.
        row(
            "admin",
            Register,
            "drgrey",
            reg("drgrey", "client", "hospital", &[]),
            Some((409, 74)),
            "seeded by network generate",
        ),
        row(
            "admin",
            Register,
            "peer0.hospital.example",
            reg("peer0.hospital.example", "peer", ".", &[]),
            Some((409, 74)),
            "a seeded peer",
        ),
        row(
            "admin",
            Register,
            "nurse",
            reg("nurse", "client", "hospital", &[]),
            Some((409, 74)),
            "registered before",
        ),
        row(
            "admin",
            Register,
            "Nurse",
            reg("Nurse", "client", "hospital", &[]),
            Some((409, 74)),
            "the same id in other case",
        ),
        row(
            "admin",
            Register,
            "nurse x",
            reg("nurse x", "client", "hospital", &[]),
            Some((400, 0)),
            "a space in an id",
        ),
        row(
            "admin",
            Register,
            "\u{0430}lice",
            reg("\u{0430}lice", "client", "hospital", &[]),
            Some((400, 0)),
            "a look-alike letter",
        ),
        // Modify (the issue's attack first).
        row(
            "reg-h",
            Modify,
            "admin",
            json!({"attrs": attrs(&[("role", "payer")])}),
            DENIED,
            "the bootstrap admin is not the registrar's",
        ),
        row(
            "reg-root",
            Modify,
            "admin",
            json!({"secret": "mine"}),
            DENIED,
            "the bootstrap admin only by itself",
        ),
        row(
            "admin",
            Modify,
            "admin",
            json!({"attrs": attrs(&[("role", "regulator")])}),
            None,
            "the bootstrap admin modifies itself",
        ),
        row(
            "reg-h",
            Modify,
            "nurse",
            json!({"attrs": attrs(&[("role", "payer")])}),
            None,
            "an identity the registrar manages",
        ),
        row("reg-h", Modify, "nurse", json!({"type": "peer"}), DENIED, "to a type the registrar cannot give"),
        row(
            "reg-h",
            Modify,
            "h-peer",
            json!({"attrs": attrs(&[("role", "x")])}),
            DENIED,
            "a peer, not a client",
        ),
        row(
            "reg-h",
            Modify,
            "root-client",
            json!({"attrs": attrs(&[("role", "x")])}),
            DENIED,
            "an identity above the registrar",
        ),
        row("reg-h", Modify, "nurse", json!({"affiliation": "."}), DENIED, "move to the root"),
        row(
            "reg-h",
            Modify,
            "nurse",
            json!({"affiliation": "hospital.ward1"}),
            None,
            "move within the registrar's tree",
        ),
        row(
            "reg-h",
            Modify,
            "nurse",
            json!({"affiliation": "nosuch"}),
            Some((400, 0)),
            "an unknown affiliation",
        ),
        row(
            "reg-ward",
            Modify,
            "ward-nurse",
            json!({"attrs": attrs(&[("hf.Revoker", "true")])}),
            None,
            "a right the caller holds",
        ),
        row(
            "reg-full",
            Modify,
            "nurse",
            json!({"attrs": attrs(&[("hf.GenCRL", "true")])}),
            DENIED,
            "a right the caller lacks",
        ),
        row(
            "reg-full",
            Modify,
            "nurse",
            json!({"attrs": attrs(&[("hf.Registrar.Attributes", "hf.Revoker")])}),
            DENIED,
            "an hf. name the identity does not hold",
        ),
        row(
            "reg-full",
            Modify,
            "nurse-revoker",
            json!({"attrs": attrs(&[("hf.Registrar.Attributes", "hf.Revoker")])}),
            None,
            "an hf. name the identity holds",
        ),
        row(
            "reg-full",
            Modify,
            "nurse",
            json!({"attrs": attrs(&[("hf.Type", "admin")])}),
            DENIED,
            "hf.Type only through type",
        ),
        // Revoke.
        row("reg-h", RevokeId, "nurse", json!({}), DENIED, "no hf.Revoker"),
        row("reg-full", RevokeId, "root-client", json!({}), DENIED, "above the revoker"),
        row("reg-full", RevokeId, "admin", json!({}), DENIED, "the bootstrap admin"),
        row("reg-ward", RevokeId, "ward-peer", json!({}), DENIED, "a type the revoker cannot act on"),
        row("reg-full", RevokeSerial, "h2-client", json!({}), DENIED, "a certificate of another affiliation"),
        row(
            "reg-full",
            RevokeSerial,
            "nurse",
            json!({"id": "ward-nurse"}),
            Some((400, 0)),
            "the certificate is not the named identity's",
        ),
        row("reg-full", RevokeSerial, "nurse", json!({}), None, "a certificate of a managed identity"),
        row("reg-ward", RevokeId, "reg-ward", json!({}), None, "an identity may revoke itself"),
        // Taking over: a new secret or allowance only within the caller's grants, never for
        // an identity `network generate` issued.
        row(
            "reg-h",
            Modify,
            "reg-full",
            json!({"secret": "taken"}),
            DENIED,
            "re-keying an identity with more rights",
        ),
        row("reg-h", Modify, "reg-full", json!({"max_enrollments": -1}), DENIED, "re-opening its enrollment"),
        row(
            "reg-h",
            Modify,
            "nurse",
            json!({"secret": "n3w"}),
            None,
            "re-keying an identity within the caller's grants",
        ),
        row(
            "admin",
            Modify,
            "drgrey",
            json!({"secret": "mine"}),
            DENIED,
            "a seeded identity is not re-keyed",
        ),
        row("admin", Modify, "drgrey", json!({"max_enrollments": 5}), DENIED, "nor re-opened"),
        row(
            "admin",
            RevokeId,
            "drgrey",
            json!({}),
            None,
            "a seeded identity is revoked, with its certificate",
        ),
        row("reg-h", Remove, "reg-full", json!({}), DENIED, "removing an identity with more rights"),
        row(
            "reg-full",
            Modify,
            "reg-star",
            json!({"attrs": attrs(&[("hf.Registrar.Roles", "")])}),
            DENIED,
            "demoting a greater registrar (then re-keying it)",
        ),
        row("admin", Remove, "drgrey", json!({}), DENIED, "a seeded identity is not removed"),
        row("admin", Remove, "r19", json!({}), None, "the admin removes what it could give"),
        row(
            "admin",
            Register,
            "r19",
            reg("r19", "client", "hospital", &[]),
            Some((409, 74)),
            "a removed id never comes back",
        ),
        // Remove and get.
        row("reg-h", Remove, "root-client", json!({}), DENIED, "above the registrar"),
        row("reg-root", Remove, "admin", json!({}), DENIED, "the bootstrap admin"),
        row("reg-h", Remove, "reg-h", json!({}), Some((403, 56)), "oneself without force"),
        row("reg-h", Remove, "r1", json!({}), None, "an identity the registrar manages"),
        row("reg-h", Get, "admin", json!({}), DENIED, "the bootstrap admin"),
        row(
            "nurse",
            Get,
            "no-such-id",
            json!({}),
            DENIED,
            "a non-registrar learns not even that an id is unknown",
        ),
        row("reg-full", RevokeId, "reg-star", json!({}), DENIED, "revoking a greater registrar"),
        row("reg-h", Get, "h-peer", json!({}), DENIED, "a type the registrar cannot act on"),
        row("reg-h", Get, "r3", json!({}), None, "a managed identity"),
    ]
}

fn run(f: &Fixture, r: &Row) -> Result<Value, ApiError> {
    let caller = f.record(r.caller);
    let body = r.body.to_string();
    match r.op {
        Op::Register => f.service.register(&caller, body.as_bytes()),
        Op::Modify => f.service.modify_identity(&caller, r.target, body.as_bytes()),
        Op::RevokeId => f.service.revoke(&caller, json!({"id": r.target}).to_string().as_bytes()),
        Op::RevokeSerial => {
            let (serial, aki) = f.certificate(r.target);
            let mut request = json!({"serial": serial, "aki": aki});
            if let Some(id) = r.body.get("id") {
                request["id"] = id.clone();
            }
            f.service.revoke(&caller, request.to_string().as_bytes())
        }
        Op::Remove => f.service.remove_identity(&caller, r.target, false),
        Op::Get => f.service.identity_info(&caller, r.target),
    }
}

#[test]
fn registrar_rules_table() {
    let f = fixture();
    population(&f);
    let mut failures = Vec::new();
    for (n, r) in table().iter().enumerate() {
        let before = std::fs::read(&f.registry_file).expect("registry");
        let outcome = run(&f, r);
        let label = format!("row {n}: {} {:?} {} ({})", r.caller, r.op, r.target, r.why);
        match (outcome, r.refusal) {
            (Ok(_), None) => {}
            (Err(e), Some((status, code))) => {
                if (e.status, e.code) != (status, code) {
                    failures.push(format!(
                        "{label}: refused {}/{} ({}), expected {status}/{code}",
                        e.status, e.code, e.detail
                    ));
                }
                if std::fs::read(&f.registry_file).expect("registry") != before {
                    failures.push(format!("{label}: refused, but the registry changed"));
                }
            }
            (Ok(v), Some(_)) => failures.push(format!("{label}: allowed ({v}), expected a refusal")),
            (Err(e), None) => {
                failures.push(format!("{label}: refused {}/{}: {}", e.status, e.code, e.detail))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows wrong:\n{}",
        failures.len(),
        table().len(),
        failures.join("\n")
    );
}

#[test]
fn registration_defaults_and_what_is_stored() {
    let f = fixture();
    population(&f);
    let reg_h = f.record("reg-h");
    // No type, no affiliation: the registrar's own.
    f.service.register(&reg_h, json!({"id": "plain"}).to_string().as_bytes()).expect("register");
    let plain = f.record("plain");
    assert_eq!((plain.kind.as_str(), plain.affiliation.as_str()), ("client", "hospital"));
    assert_eq!(plain.attr("hf.Type"), Some("client"));
    assert_eq!(plain.attr("hf.Affiliation"), Some("hospital"));
    assert_eq!(plain.attr("hf.EnrollmentID"), Some("plain"));
    // A seeded identity cannot enroll through the CA.
    let header = format!("Basic {}", medfabric_ca_server::base64::encode(b"drgrey:anything"));
    assert!(f.service.authenticate_basic(Some(&header)).is_err(), "a seeded identity has no usable secret");
    assert_eq!(f.record("drgrey").attr("role"), Some("provider"));
    // The listing holds what the registrar manages only.
    let listed = f.service.identities(&reg_h).expect("list");
    let mut ids: Vec<&str> = listed["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    ids.sort();
    for id in &ids {
        let record = f.record(id);
        assert!(
            record.affiliation.starts_with("hospital") && record.affiliation != "hospital2",
            "{id} listed"
        );
        assert_eq!(record.kind, "client", "{id} listed");
    }
    assert!(ids.contains(&"nurse") && ids.contains(&"ward-nurse") && !ids.contains(&"admin"), "{ids:?}");
    // Types are stored in lower case (they become NodeOUs, matched exactly).
    f.service
        .register(&reg_h, json!({"id": "upper", "type": "CLIENT"}).to_string().as_bytes())
        .expect("register");
    assert_eq!(f.record("upper").kind, "client");
    // No affiliation level may be a NodeOU role name: its holders would be MSP admins.
    let admin_record = f.record("admin");
    for bad in ["hospital.admin", "hospital.Peer", "hospital..x"] {
        let refused = f.service.add_affiliation(&admin_record, json!({"name": bad}).to_string().as_bytes());
        assert_eq!(refused.map(|_| ()).expect_err(bad).status, 400, "{bad}");
    }
    // Removing an identity revokes its certificates (as Fabric CA does).
    let (serial, _) = f.certificate("h2-client");
    f.service.remove_identity(&admin_record, "h2-client", false).expect("remove");
    let registry: Value =
        serde_json::from_str(&std::fs::read_to_string(&f.registry_file).expect("registry")).expect("json");
    let cert =
        registry["certificates"].as_array().expect("certs").iter().find(|c| c["serial"] == serial.as_str());
    assert!(cert.is_some_and(|c| !c["revoked_at"].is_null()), "{cert:?}");
    // A request authenticated before a revocation issues nothing after it.
    let stale = f.record("nurse");
    f.service.revoke(&admin_record, json!({"id": "nurse"}).to_string().as_bytes()).expect("revoke nurse");
    let key = KeyPair::generate();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "nurse");
    let csr = params.serialize_request(&key).expect("csr").pem().expect("pem");
    let late = f.service.reenroll(&stale, json!({"certificate_request": csr}).to_string().as_bytes());
    assert_eq!(late.map(|_| ()).expect_err("refused").status, 401);
    // A generated certificate authenticates as the identity it was seeded for (not as
    // whatever is registered under its CN).
    let (cert, grey_key) = &f.grey;
    let uri = "/api/v1/identities/drgrey";
    let (_, header) = crate::api::token(cert, grey_key, "GET", uri, b"");
    let who = f.service.authenticate_token(Some(&header), "GET", uri, b"").expect("token");
    assert_eq!(who.id, "drgrey");
    // Revoking a seeded identity revokes the certificate `network generate` gave it.
    let (serial, _) = f.certificate("drgrey");
    let revoked =
        f.service.revoke(&admin_record, json!({"id": "drgrey", "gencrl": true}).to_string().as_bytes());
    let revoked = revoked.expect("revoke drgrey");
    assert_eq!(revoked["RevokedCerts"][0]["Serial"], serial.as_str(), "{revoked}");
    // The admin's modification by reg-h (the issue's attack) left it as it was.
    let admin = f.record("admin");
    assert_eq!(
        f.service
            .modify_identity(&reg_h, "admin", br#"{"secret":"x"}"#)
            .map(|_| ())
            .expect_err("refused")
            .code,
        71
    );
    assert_eq!(f.record("admin"), admin);
}
