//! A consortium of identities over an in-memory ledger ([`MockStub`]): each call runs
//! as one of them, with its certificate's role attribute.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_ca::Validity;
use medfabric_proto::msp::SerializedIdentity;
use medfabric_shim::{MockOutcome, MockStub};
use medfabric_testkit::TestOrg;
use prost::Message;
use serde_json::{Value, json};

pub const CC: &str = "medical";

/// The hospital (custodian), lab, research site, insurer and regulator, one CA each.
pub struct World {
    pub stub: MockStub,
    orgs: BTreeMap<String, TestOrg>,
    identities: BTreeMap<String, Bytes>,
    keys: BTreeMap<String, medfabric_msp::Signer>,
    /// Each identity's private scalar (to unwrap keys released to it).
    secrets: BTreeMap<String, Vec<u8>>,
    /// Each organization's record key (the stub plays the Hospital's peer by default).
    pub record_keys: BTreeMap<String, medfabric_ca::KeyPair>,
    /// The data key of each record version created here.
    pub data_keys: BTreeMap<(String, u32), medfabric_medical::keywrap::DataKey>,
    pub time: i64,
}

/// A record version's transient payload.
pub struct Payload {
    pub ciphertext: Vec<u8>,
    /// JSON holder → hex wrap.
    pub wrapped: String,
    pub commitment: String,
}

/// The consortium's role grants, as the endorsing peer decorates every proposal.
pub const GRANTS: &str = r#"{"patient":["HospitalMSP"],"provider":["HospitalMSP","LabMSP"],"researcher":["ResearchMSP"],"payer":["InsurerMSP"],"regulator":["RegulatorMSP"]}"#;

/// Actors of the world.
pub const GREY: &str = "HospitalMSP/drgrey";
pub const ALICE: &str = "HospitalMSP/patient1";
pub const SCI: &str = "ResearchMSP/scientist1";
pub const SCI2: &str = "ResearchMSP/scientist2";
pub const TECH: &str = "LabMSP/tech1";
pub const PAYER: &str = "InsurerMSP/claims1";
pub const REG: &str = "RegulatorMSP/inspector1";

pub const PATIENT: &str = "HospitalMSP/patient1";
pub const PUBLIC_KEY: &str = "04aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

impl World {
    pub fn new() -> Self {
        let orgs = ["HospitalMSP", "LabMSP", "ResearchMSP", "InsurerMSP", "RegulatorMSP"]
            .into_iter()
            .map(|msp| (msp.to_owned(), TestOrg::new(msp)))
            .collect();
        let record_keys: BTreeMap<String, medfabric_ca::KeyPair> = ["HospitalMSP", "LabMSP"]
            .into_iter()
            .map(|msp| (msp.to_owned(), medfabric_ca::KeyPair::generate()))
            .collect();
        let mut world = Self {
            stub: MockStub::new("medchannel").with_chaincode(CC, medfabric_medical::chaincode()),
            orgs,
            identities: BTreeMap::new(),
            keys: BTreeMap::new(),
            secrets: BTreeMap::new(),
            record_keys,
            data_keys: BTreeMap::new(),
            time: 1_800_000_000,
        };
        for (msp, name, role) in [
            ("HospitalMSP", "drgrey", "provider"),
            ("HospitalMSP", "nurse1", "provider"),
            ("HospitalMSP", "patient1", "patient"),
            ("HospitalMSP", "patient2", "patient"),
            ("LabMSP", "tech1", "provider"),
            ("ResearchMSP", "scientist1", "researcher"),
            ("ResearchMSP", "scientist2", "researcher"),
            ("InsurerMSP", "claims1", "payer"),
            ("RegulatorMSP", "inspector1", "regulator"),
        ] {
            world.add(msp, name, Some(role));
        }
        world.add("HospitalMSP", "norole", None);
        for msp in ["HospitalMSP", "InsurerMSP"] {
            world.add_as(msp, "Admin", "admin", None);
        }
        world.stub.set_decoration("medfabric.roles", Bytes::from(GRANTS.to_string()));
        let published: BTreeMap<&String, String> =
            world.record_keys.iter().map(|(msp, key)| (msp, hex(key.public_key_sec1()))).collect();
        world.stub.set_decoration("medfabric.recordkeys", Bytes::from(json!(published).to_string()));
        world.on_peer_of(Some("HospitalMSP"));
        world
    }

    /// Later calls run on a peer of `msp` (holding its record key), or on a peer that holds
    /// none.
    pub fn on_peer_of(&mut self, msp: Option<&str>) {
        match msp {
            Some(msp) => {
                let key = &self.record_keys[msp];
                let held = json!({"msp_id": msp, "private_key": hex(&key.secret().to_bytes())});
                self.stub.set_decoration("medfabric.orgkey", Bytes::from(held.to_string()));
            }
            None => self.stub.remove_decoration("medfabric.orgkey"),
        }
    }

    /// The private scalar of `who`'s certificate key.
    pub fn secret(&self, who: &str) -> &[u8] {
        self.secrets.get(who).unwrap_or_else(|| panic!("no identity {who}"))
    }

    /// Encrypts `plaintext` as `record_id` version `version` of [`PATIENT`], its key
    /// wrapped for the patient and the Hospital's record key, as the SDK does.
    pub fn payload(&mut self, record_id: &str, version: u32, plaintext: &[u8]) -> Payload {
        use medfabric_medical::keywrap;
        let key = keywrap::DataKey::generate().expect("data key");
        let ciphertext =
            keywrap::seal(&key, plaintext, &keywrap::associated_data(record_id, version, PATIENT))
                .expect("seal");
        let patient_key = decode_hex(&self.public_key(PATIENT));
        let org_key = self.record_keys["HospitalMSP"].public_key_sec1().to_vec();
        let wrapped = json!({
            "patient": hex(&keywrap::wrap(&key, &patient_key, record_id, version).expect("wrap")),
            "org:HospitalMSP": hex(&keywrap::wrap(&key, &org_key, record_id, version).expect("wrap")),
        })
        .to_string();
        let commitment = keywrap::commitment(&key, &ciphertext);
        self.data_keys.insert((record_id.to_owned(), version), key);
        Payload { ciphertext, wrapped, commitment }
    }

    /// Opens a `read_record` answer's ciphertext with the key wrapped in it, as `who`.
    pub fn decrypt(&self, who: &str, answer: &Value) -> Result<Vec<u8>, String> {
        use medfabric_medical::keywrap;
        let field =
            |name: &str| decode_hex(answer[name].as_str().unwrap_or_else(|| panic!("no {name}: {answer}")));
        let record_id = answer["record_id"].as_str().expect("record id");
        let version = u32::try_from(answer["version"].as_u64().expect("version")).expect("u32");
        let key =
            keywrap::unwrap(&field("wrapped_key"), self.secret(who), record_id, version).map_err(|e| e.0)?;
        let aad =
            keywrap::associated_data(record_id, version, answer["patient_id"].as_str().expect("patient"));
        keywrap::open(&key, &field("ciphertext"), &aad).map_err(|e| e.0)
    }

    /// Issues `name@msp` with `role` (or none).
    pub fn add(&mut self, msp: &str, name: &str, role: Option<&str>) {
        self.add_as(msp, name, "client", role);
    }

    /// Issues `name@msp` with NodeOU `ou` (`client`, `admin`) and `role` (or none).
    pub fn add_as(&mut self, msp: &str, name: &str, ou: &str, role: Option<&str>) {
        let now = time::OffsetDateTime::now_utc();
        let mut attributes = BTreeMap::from([("hf.EnrollmentID".to_owned(), name.to_owned())]);
        if let Some(role) = role {
            attributes.insert("role".into(), role.into());
        }
        let issued = self.orgs[msp].issue_leaf(
            name,
            ou,
            Some(attributes),
            Validity::days_from(now - time::Duration::hours(1), 1),
        );
        let signer = medfabric_msp::Signer::from_pem(&issued.key_pem()).expect("key");
        let secret = issued.key.as_ref().expect("issuer generated a key").secret().to_bytes().to_vec();
        self.secrets.insert(format!("{msp}/{name}"), secret);
        self.keys.insert(format!("{msp}/{name}"), signer);
        let creator = SerializedIdentity { mspid: msp.into(), id_bytes: issued.certificate_pem.into() };
        self.identities.insert(format!("{msp}/{name}"), creator.encode_to_vec().into());
    }

    /// The P-256 key of `who`'s certificate (hex SEC1).
    pub fn public_key(&self, who: &str) -> String {
        hex(self.keys.get(who).unwrap_or_else(|| panic!("no identity {who}")).public_key())
    }

    /// `who`'s signature (hex DER) over `message`, with their certificate's key.
    pub fn sign(&self, who: &str, message: &str) -> String {
        hex(&self.keys.get(who).unwrap_or_else(|| panic!("no identity {who}")).sign(message.as_bytes()))
    }

    /// The registration of `patient_id` (an identity of this world) by the patient.
    pub fn registration(&self, patient_id: &str) -> Value {
        json!({"patient_id": patient_id, "custodian": "HospitalMSP", "public_key": self.public_key(patient_id)})
    }

    /// Advances the transaction clock.
    pub fn advance(&mut self, seconds: i64) {
        self.time += seconds;
    }

    fn prepare(&mut self, who: &str, transient: &[(&str, &[u8])]) {
        let creator = self.identities.get(who).unwrap_or_else(|| panic!("no identity {who}")).clone();
        self.stub.set_creator(creator);
        self.stub.set_transient(
            transient.iter().map(|(k, v)| ((*k).to_owned(), Bytes::copy_from_slice(v))).collect(),
        );
        self.time += 1;
        // The mock advances its clock by one second per transaction itself.
        self.stub.set_timestamp(prost_types_timestamp(self.time - 1));
    }

    /// Submits `function(arg)` as `who` (committed when it succeeds).
    pub fn invoke(&mut self, who: &str, function: &str, arg: &Value) -> MockOutcome {
        self.invoke_with(who, function, arg, &[])
    }

    pub fn invoke_with(
        &mut self,
        who: &str,
        function: &str,
        arg: &Value,
        transient: &[(&str, &[u8])],
    ) -> MockOutcome {
        self.prepare(who, transient);
        let args = args_of(function, arg);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.stub.invoke(CC, &refs)
    }

    /// Evaluates (commits nothing).
    pub fn query(&mut self, who: &str, function: &str, arg: &Value) -> MockOutcome {
        self.query_with(who, function, arg, &[])
    }

    pub fn query_with(
        &mut self,
        who: &str,
        function: &str,
        arg: &Value,
        transient: &[(&str, &[u8])],
    ) -> MockOutcome {
        self.prepare(who, transient);
        let args = args_of(function, arg);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.stub.query(CC, &refs)
    }

    /// `read_record` as `who`, its answer sealed to [`RESPONSE_KEY`] (open it with
    /// [`unseal`]).
    pub fn read(&mut self, who: &str, record_id: &str) -> MockOutcome {
        self.query_with(who, "read_record", &json!(record_id), &[("response_key", &RESPONSE_KEY)])
    }

    /// Submits and expects success; the JSON result.
    pub fn ok(&mut self, who: &str, function: &str, arg: &Value) -> Value {
        let outcome = self.invoke(who, function, arg);
        assert_eq!(outcome.response.status, 200, "{function} as {who}: {}", outcome.response.message);
        parse(&outcome)
    }

    /// Submits and expects failure with no writes; the message.
    pub fn denied(&mut self, who: &str, function: &str, arg: &Value) -> String {
        let before = self.snapshot();
        let outcome = self.invoke(who, function, arg);
        assert!(
            outcome.response.status >= 400,
            "{function} as {who} should fail: {:?}",
            outcome.payload_str()
        );
        assert!(!outcome.committed);
        assert_eq!(self.snapshot(), before, "{function} as {who} failed but changed state");
        outcome.response.message
    }

    /// Every public key and value of the chaincode.
    pub fn snapshot(&self) -> Vec<(String, Bytes)> {
        self.stub.entries(CC).into_iter().map(|kv| (kv.key, kv.value)).collect()
    }

    /// A record created by drgrey for patient1, really encrypted: its plaintext is
    /// [`plaintext_of`]`(record_id)`.
    pub fn create_record(&mut self, record_id: &str, data_class: &str, labels: &[&str]) -> Value {
        self.create_labelled(record_id, data_class, labels, &[])
    }

    /// [`World::create_record`] with sensitive labels, sent in the transient map as the SDK
    /// does (salted).
    pub fn create_labelled(
        &mut self,
        record_id: &str,
        data_class: &str,
        labels: &[&str],
        sensitive: &[&str],
    ) -> Value {
        let payload = self.payload(record_id, 1, plaintext_of(record_id).as_bytes());
        let sensitive = json!({"labels": sensitive, "salt": "5a".repeat(32)}).to_string();
        let outcome = self.invoke_with(
            "HospitalMSP/drgrey",
            "create_record",
            &json!({
                "record_id": record_id,
                "patient_id": PATIENT,
                "resource_type": "Observation",
                "data_class": data_class,
                "security_labels": labels,
                "commitment": payload.commitment,
            }),
            &[
                ("ciphertext", &payload.ciphertext),
                ("wrapped_keys", payload.wrapped.as_bytes()),
                ("sensitive_labels", sensitive.as_bytes()),
            ],
        );
        assert_eq!(outcome.response.status, 200, "create_record: {}", outcome.response.message);
        parse(&outcome)
    }

    pub fn register_patient(&mut self, patient_id: &str) {
        let registration = self.registration(patient_id);
        self.ok(patient_id, "register_patient", &registration);
    }
}

/// The plaintext of a record [`World::create_record`] made.
pub fn plaintext_of(record_id: &str) -> String {
    format!("PLAINTEXT-OF-{record_id}: HbA1c 6.1 %")
}

/// The salt that comes with free text in the transient map (hex of 32 bytes).
pub const SALT: &[u8] = b"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";

/// The one-time key the tests' reads are sealed to.
pub const RESPONSE_KEY: [u8; 32] = [0x5e; 32];

impl World {
    /// A regulator query as `who` with [`RESPONSE_KEY`]: the opened answer, free text
    /// included (an answer without the key carries none).
    pub fn audit(&mut self, who: &str, function: &str, arg: &Value) -> Value {
        let outcome = self.query_with(who, function, arg, &[("response_key", &RESPONSE_KEY)]);
        assert_eq!(outcome.response.status, 200, "{function}: {}", outcome.response.message);
        open_sealed(&parse(&outcome), &format!("medfabric-audit-v1\0{function}"))
    }
}

/// Opens `{nonce, sealed}` (hex) with [`RESPONSE_KEY`] and associated data `aad`.
pub fn open_sealed(sealed: &Value, aad: &str) -> Value {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let bytes =
        |field: &str| decode_hex(sealed[field].as_str().unwrap_or_else(|| panic!("no {field}: {sealed}")));
    let nonce: [u8; 12] = bytes("nonce").try_into().expect("12-byte nonce");
    let plaintext = aes_gcm::Aes256Gcm::new_from_slice(&RESPONSE_KEY)
        .expect("key")
        .decrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: &bytes("sealed"), aad: aad.as_bytes() })
        .expect("the answer opens with the response key");
    serde_json::from_slice(&plaintext).expect("json answer")
}

/// Opens a successful `read_record` answer sealed to [`RESPONSE_KEY`].
pub fn unseal(outcome: &MockOutcome) -> Value {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    assert_eq!(outcome.response.status, 200, "read_record: {}", outcome.response.message);
    let sealed = parse(outcome);
    let bytes =
        |field: &str| decode_hex(sealed[field].as_str().unwrap_or_else(|| panic!("no {field}: {sealed}")));
    let nonce: [u8; 12] = bytes("nonce").try_into().expect("12-byte nonce");
    let aad = format!("medfabric-read-v1\0{}", sealed["record_id"].as_str().expect("record id"));
    let plaintext = aes_gcm::Aes256Gcm::new_from_slice(&RESPONSE_KEY)
        .expect("key")
        .decrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: &bytes("sealed"), aad: aad.as_bytes() })
        .expect("the answer opens with the response key");
    serde_json::from_slice(&plaintext).expect("json answer")
}

pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

pub fn decode_hex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex")
}

/// The error message of a failed call (panics on success).
pub fn parse_message(outcome: &MockOutcome) -> String {
    assert!(outcome.response.status >= 400, "expected a refusal: {}", outcome.payload_str());
    outcome.response.message.clone()
}

pub fn parse(outcome: &MockOutcome) -> Value {
    if outcome.response.payload.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(&outcome.response.payload).unwrap_or_else(|_| Value::String(outcome.payload_str()))
}

fn args_of(function: &str, arg: &Value) -> Vec<String> {
    let mut args = vec![function.to_owned()];
    match arg {
        Value::Null => {}
        Value::Array(items) => args.extend(items.iter().map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })),
        Value::String(s) => args.push(s.clone()),
        other => args.push(other.to_string()),
    }
    args
}

fn prost_types_timestamp(seconds: i64) -> medfabric_proto::Timestamp {
    medfabric_proto::Timestamp { seconds, nanos: 0 }
}
