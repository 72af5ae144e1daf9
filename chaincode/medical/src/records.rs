//! Patients and records. The client encrypts each record version (AES-256-GCM, fresh
//! key; record id, version and patient as associated data), wraps the key with HPKE
//! ([`crate::keywrap`]) for exactly two holders — the patient's registered key and the
//! custodian organization's record key, held only by the custodian's peers — and sends
//! ciphertext and wrapped keys in the transient map: they go to the custodian's private
//! collection. Public state gets metadata and the keyed commitment only.
//!
//! Keys are released only by `read_record`, an evaluate on a custodian peer: under a live
//! committed grant, the peer's chaincode unwraps the record-key copy and wraps the data
//! key to the key of the caller's certificate, in an answer sealed to the caller's
//! one-time response key. No grantee's wrap is ever stored, so nothing in blocks,
//! collections or `DeliverWithPrivateData` opens a record without a grant; purging the two
//! stored wraps and the ciphertext crypto-shreds every copy. Revocation is forward-only: a
//! key released before it stays with the grantee who fetched it.

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_shim::ChaincodeStub;
use serde::Deserialize;

use crate::identity::{Caller, Role, caller};
use crate::model::*;

pub use medfabric_medical_api::io::{
    Ciphertext, EraseInput, PatientInput, RecordInput, RecordKeyInfo, SealedRead, SensitiveLabels,
    VersionInput,
};
pub use medfabric_medical_api::names::{
    ORG_KEY_DECORATION, PATIENT_HOLDER, READ_AAD, RECORD_KEYS_DECORATION, TRANSIENT_CIPHERTEXT,
    TRANSIENT_REASON, TRANSIENT_RESPONSE_KEY, TRANSIENT_SENSITIVE_LABELS, TRANSIENT_WRAPPED_KEYS, org_holder,
};

/// The record public key of `org` (hex), as the channel config publishes it.
fn published_record_key(stub: &dyn ChaincodeStub, org: &str) -> Outcome<String> {
    let keys: BTreeMap<String, String> = match stub.decorations().get(RECORD_KEYS_DECORATION) {
        Some(json) => serde_json::from_slice(json)
            .or_else(|e| fail(format!("the peer's {RECORD_KEYS_DECORATION} decoration: {e}")))?,
        None => BTreeMap::new(),
    };
    keys.get(org).cloned().ok_or_else(|| {
        medfabric_shim::ContractError::new(format!("the channel config publishes no record key of {org}"))
    })
}

/// The private record key of `org`, if this peer is one of `org`'s (and holds it).
fn held_record_key(stub: &dyn ChaincodeStub, org: &str) -> Outcome<Option<Vec<u8>>> {
    #[derive(Deserialize)]
    struct OrgKey {
        msp_id: String,
        private_key: String,
    }
    let Some(json) = stub.decorations().get(ORG_KEY_DECORATION) else { return Ok(None) };
    let held: OrgKey = serde_json::from_slice(json)
        .or_else(|e| fail(format!("the peer's {ORG_KEY_DECORATION} decoration: {e}")))?;
    if held.msp_id != org {
        return Ok(None);
    }
    let private_key = from_hex("the record key", &held.private_key)?;
    // The key must be the one the consortium published for the org.
    let public =
        crate::keywrap::public_key_of(&private_key).map_err(|e| medfabric_shim::ContractError::new(e.0))?;
    if hex(&public) != published_record_key(stub, org)? {
        return fail(format!("this peer's record key is not the one the channel config publishes for {org}"));
    }
    Ok(Some(private_key))
}

/// An organization's record public key: what a writer wraps the data key to.
pub fn record_key(stub: &mut dyn ChaincodeStub, (org,): (String,)) -> Outcome<RecordKeyInfo> {
    caller(stub)?;
    Ok(RecordKeyInfo { public_key: published_record_key(stub, &org)?, msp_id: org })
}

/// The uncompressed SEC1 key of the caller's certificate, hex.
pub fn caller_key(stub: &dyn ChaincodeStub) -> Outcome<String> {
    Ok(hex(stub.client_identity()?.certificate().public_key()))
}

/// Is the caller the patient? Their role and id; [`caller`] already refused anyone
/// under a registered patient's id without the registered key.
pub fn is_patient(who: &Caller, patient: &Patient) -> bool {
    who.role == Role::Patient && who.actor() == patient.patient_id
}

/// Is the caller the patient of this record (see [`is_patient`])?
pub fn is_record_patient(who: &Caller, meta: &RecordMeta) -> bool {
    who.role == Role::Patient && who.actor() == meta.patient_id
}

/// Registers a patient: the patient themselves, enrolled at the custodian's CA, with
/// the key of their own certificate (which the peer validated against the custodian's
/// MSP). So the key is one the patient holds, the custodian is the patient's own
/// organization, and no provider can register a key of its choosing for a patient.
pub fn register_patient(stub: &mut dyn ChaincodeStub, (input,): (PatientInput,)) -> Outcome<Patient> {
    let who = caller(stub)?;
    who.require("register_patient", &[Role::Patient])?;
    who.require_org("register_patient", &input.custodian)?;
    check_id("patient id", &input.patient_id)?;
    let public_key = input.public_key.to_ascii_lowercase();
    if who.actor() != input.patient_id || caller_key(stub)? != public_key {
        return fail(format!(
            "access denied: a patient registers only themselves ({}), with the key of their own certificate",
            who.actor()
        ));
    }
    let id = key(stub, PATIENT, &[&input.patient_id])?;
    if stub.get_state(&id)?.is_some() {
        return fail(format!("patient {} is already registered", input.patient_id));
    }
    let patient = Patient {
        patient_id: input.patient_id,
        custodian: input.custodian,
        public_key,
        registered_by: who.actor(),
        registered_at: now(stub),
    };
    put_json(stub, &id, &patient)?;
    custodian_only(stub, &patient.custodian, &id)?;
    seal(stub, Seal::Patient, &patient.custodian, &[&patient.patient_id], patient_seal(&patient))?;
    Ok(patient)
}

/// What a registration's seal holds: id, custodian and key.
fn patient_seal(patient: &Patient) -> Bytes {
    Bytes::from(format!("{}\0{}\0{}", patient.patient_id, patient.custodian, patient.public_key))
}

/// A patient's registration, if the custodian sealed it: its id names the custodian
/// (`<custodian>/<id>`), and the seal is in that custodian's collection, so a
/// registration other organizations wrote together does not count.
pub fn registered_patient(stub: &mut dyn ChaincodeStub, patient_id: &str) -> Outcome<Option<Patient>> {
    let id = key(stub, PATIENT, &[patient_id])?;
    let Some(patient) = get_json::<Patient>(stub, &id)? else { return Ok(None) };
    let ok = patient.patient_id == patient_id
        && patient_id.starts_with(&format!("{}/", patient.custodian))
        && sealed_by_custodian(
            stub,
            Seal::Patient,
            &patient.custodian,
            &[patient_id],
            &patient_seal(&patient),
        )?;
    Ok(ok.then_some(patient))
}

pub fn patient(stub: &mut dyn ChaincodeStub, patient_id: &str) -> Outcome<Patient> {
    registered_patient(stub, patient_id)?
        .ok_or_else(|| medfabric_shim::ContractError::new(format!("patient {patient_id} is not registered")))
}

pub fn get_patient(stub: &mut dyn ChaincodeStub, (patient_id,): (String,)) -> Outcome<Patient> {
    caller(stub)?;
    patient(stub, &patient_id)
}

pub fn record(stub: &mut dyn ChaincodeStub, record_id: &str) -> Outcome<RecordMeta> {
    let id = key(stub, RECORD, &[record_id])?;
    get_json(stub, &id)?
        .ok_or_else(|| medfabric_shim::ContractError::new(format!("record {record_id} not found")))
}

/// Only the fixed, public vocabularies: a free-typed class or type could name a condition.
fn check_kind(resource_type: &str, data_class: &str) -> Outcome<()> {
    if !RESOURCE_TYPES.contains(&resource_type) {
        return fail(format!(
            "resource type {resource_type:?} is not one of {}: it is public, so it may not name a condition",
            RESOURCE_TYPES.join(", ")
        ));
    }
    if !DATA_CLASSES.contains(&data_class) {
        return fail(format!(
            "data class {data_class:?} is not one of {}: it is public, so a condition goes in a sensitive label",
            DATA_CLASSES.join(", ")
        ));
    }
    Ok(())
}

fn check_labels(labels: &[String]) -> Outcome<()> {
    if let Some(bad) = labels.iter().find(|l| SENSITIVE.contains(&l.as_str())) {
        return fail(format!(
            "security label {bad:?} identifies a condition: send it in the transient map under \
             {TRANSIENT_SENSITIVE_LABELS:?}, not in the public metadata"
        ));
    }
    if let Some(bad) = labels.iter().find(|l| !CONFIDENTIALITY.contains(&l.as_str())) {
        return fail(format!("unknown security label {bad:?}"));
    }
    Ok(())
}

/// Stores the record's sensitive labels (from the transient map) in the custodian's audit
/// collection.
fn store_sensitive_labels(stub: &mut dyn ChaincodeStub, meta: &RecordMeta) -> Outcome<()> {
    let Some(json) = stub.transient().get(TRANSIENT_SENSITIVE_LABELS).cloned() else {
        return fail(format!(
            "the transient map must carry {TRANSIENT_SENSITIVE_LABELS:?} (the record's sensitive labels, possibly none, and a salt)"
        ));
    };
    let mut entry: SensitiveLabels =
        serde_json::from_slice(&json).or_else(|e| fail(format!("{TRANSIENT_SENSITIVE_LABELS}: {e}")))?;
    check_hex32(&format!("the salt of {TRANSIENT_SENSITIVE_LABELS}"), &entry.salt)?;
    if let Some(bad) = entry.labels.iter().find(|l| !SENSITIVE.contains(&l.as_str())) {
        return fail(format!("{TRANSIENT_SENSITIVE_LABELS}: {bad:?} is not a sensitive label"));
    }
    entry.labels.sort();
    entry.labels.dedup();
    let id = key(stub, SENSITIVE_LABELS, &[&meta.record_id])?;
    let value = Bytes::from(serde_json::to_vec(&entry).or_else(|e| fail(format!("encoding labels: {e}")))?);
    // The audit collection's copy is the regulators'; the implicit collection's (the
    // custodian's peers only, readable for any caller there) is what a release checks.
    stub.put_private_data(&audit_collection(&meta.custodian), &id, value.clone())?;
    Ok(stub.put_private_data(&custodian_collection(&meta.custodian), &id, value)?)
}

/// The record with its sensitive labels, read on a peer of the custodian: what consent is
/// checked against when a key is released.
fn with_sensitive_labels(stub: &mut dyn ChaincodeStub, meta: &RecordMeta) -> Outcome<RecordMeta> {
    let id = key(stub, SENSITIVE_LABELS, &[&meta.record_id])?;
    let Some(bytes) = stub.get_private_data(&custodian_collection(&meta.custodian), &id)? else {
        return fail(format!(
            "this peer does not hold the sensitive labels of {}: no key is released without checking them",
            meta.record_id
        ));
    };
    let entry: SensitiveLabels = serde_json::from_slice(&bytes)
        .or_else(|e| fail(format!("the sensitive labels of {} are corrupt: {e}", meta.record_id)))?;
    let mut full = meta.clone();
    full.security_labels.extend(entry.labels);
    Ok(full)
}

/// Ciphertext and wrapped keys from the transient map, into the custodian's collection;
/// returns the readers.
fn store_payload(stub: &mut dyn ChaincodeStub, meta: &RecordMeta) -> Outcome<Vec<String>> {
    let transient = stub.transient().clone();
    let Some(ciphertext) = transient.get(TRANSIENT_CIPHERTEXT).filter(|c| !c.is_empty()) else {
        return fail(format!("the transient map must carry {TRANSIENT_CIPHERTEXT:?}"));
    };
    let wrapped: BTreeMap<String, String> = match transient.get(TRANSIENT_WRAPPED_KEYS) {
        Some(json) => serde_json::from_slice(json)
            .map_err(|e| medfabric_shim::ContractError::new(format!("{TRANSIENT_WRAPPED_KEYS}: {e}")))?,
        None => BTreeMap::new(),
    };
    // Exactly the patient's and the custodian's record-key wraps: a key for anyone else
    // comes into being only through a grant.
    let org = org_holder(&meta.custodian);
    let holders: Vec<&str> = wrapped.keys().map(String::as_str).collect();
    if holders != [org.as_str(), PATIENT_HOLDER] {
        return fail(format!(
            "{TRANSIENT_WRAPPED_KEYS} must hold exactly the wraps for {PATIENT_HOLDER:?} and {org:?} (got {holders:?}): \
             other readers get the key through a grant"
        ));
    }
    for (holder, wrapped_key) in &wrapped {
        if from_hex(&format!("wrapped key for {holder:?}"), wrapped_key)?.is_empty() {
            return fail(format!("wrapped key for {holder:?} is empty"));
        }
    }
    // On the custodian's peer (whose endorsement the private write needs), the record
    // key opens its wrap and the data key the ciphertext: a record is always releasable.
    if let Some(private_key) = held_record_key(stub, &meta.custodian)? {
        let opened = from_hex("wrapped key", &wrapped[&org])
            .ok()
            .and_then(|w| crate::keywrap::unwrap(&w, &private_key, &meta.record_id, meta.version).ok())
            .filter(|data_key| crate::keywrap::commitment(data_key, ciphertext) == meta.commitment)
            .filter(|data_key| {
                let aad = crate::keywrap::associated_data(&meta.record_id, meta.version, &meta.patient_id);
                crate::keywrap::open(data_key, ciphertext, &aad).is_ok()
            });
        if opened.is_none() {
            return fail(format!(
                "the {org} wrap does not open the ciphertext of {} version {} under its commitment",
                meta.record_id, meta.version
            ));
        }
    }
    let collection = custodian_collection(&meta.custodian);
    let version = padded(u64::from(meta.version));
    let ct = key(stub, CIPHERTEXT, &[&meta.record_id, &version])?;
    stub.put_private_data(&collection, &ct, ciphertext.clone())?;
    for (holder, wrapped_key) in &wrapped {
        let wk = key(stub, WRAPPED_KEY, &[&meta.record_id, &version, holder])?;
        stub.put_private_data(&collection, &wk, Bytes::from(wrapped_key.clone()))?;
    }
    Ok(wrapped.into_keys().collect())
}

fn put_version(stub: &mut dyn ChaincodeStub, meta: &RecordMeta, readers: Vec<String>) -> Outcome<()> {
    let version = RecordVersion {
        record_id: meta.record_id.clone(),
        version: meta.version,
        commitment: meta.commitment.clone(),
        author: meta.author.clone(),
        time: meta.updated_at,
        tx_id: stub.tx_id().to_owned(),
        readers,
    };
    let id = key(stub, RECORD_VERSION, &[&meta.record_id, &padded(u64::from(meta.version))])?;
    put_json(stub, &id, &version)?;
    custodian_only(stub, &meta.custodian, &id)
}

/// Creates a record (version 1); by a provider of the patient's custodian organization.
pub fn create_record(stub: &mut dyn ChaincodeStub, (input,): (RecordInput,)) -> Outcome<RecordMeta> {
    let who = caller(stub)?;
    who.require("create_record", &[Role::Provider])?;
    check_id("record id", &input.record_id)?;
    check_id("resource type", &input.resource_type)?;
    check_id("data class", &input.data_class)?;
    check_kind(&input.resource_type, &input.data_class)?;
    check_labels(&input.security_labels)?;
    check_hex32("commitment", &input.commitment)?;
    let patient = patient(stub, &input.patient_id)?;
    who.require_org("create_record", &patient.custodian)?;
    let id = key(stub, RECORD, &[&input.record_id])?;
    if stub.get_state(&id)?.is_some() {
        return fail(format!("record {} already exists", input.record_id));
    }
    let time = now(stub);
    let meta = RecordMeta {
        record_id: input.record_id,
        patient_id: patient.patient_id,
        custodian: patient.custodian,
        resource_type: input.resource_type,
        data_class: input.data_class,
        security_labels: input.security_labels,
        author: who.actor(),
        version: 1,
        created_at: time,
        updated_at: time,
        commitment: input.commitment.to_ascii_lowercase(),
        erased: false,
    };
    let readers = store_payload(stub, &meta)?;
    store_sensitive_labels(stub, &meta)?;
    put_json(stub, &id, &meta)?;
    custodian_only(stub, &meta.custodian, &id)?;
    put_version(stub, &meta, readers)?;
    Ok(meta)
}

/// Appends a version (new ciphertext, new key); by a provider of the custodian.
pub fn append_version(stub: &mut dyn ChaincodeStub, (input,): (VersionInput,)) -> Outcome<RecordMeta> {
    let who = caller(stub)?;
    who.require("append_version", &[Role::Provider])?;
    check_hex32("commitment", &input.commitment)?;
    let mut meta = record(stub, &input.record_id)?;
    who.require_org("append_version", &meta.custodian)?;
    if meta.erased {
        return fail(format!("record {} was erased", meta.record_id));
    }
    meta.version += 1;
    meta.commitment = input.commitment.to_ascii_lowercase();
    meta.author = who.actor();
    meta.updated_at = now(stub);
    let readers = store_payload(stub, &meta)?;
    let id = key(stub, RECORD, &[&meta.record_id])?;
    put_json(stub, &id, &meta)?;
    custodian_only(stub, &meta.custodian, &id)?;
    put_version(stub, &meta, readers)?;
    Ok(meta)
}

/// A record's metadata (no PHI): anyone with a role.
pub fn get_record(stub: &mut dyn ChaincodeStub, (record_id,): (String,)) -> Outcome<RecordMeta> {
    caller(stub)?;
    record(stub, &record_id)
}

/// How long a break-glass grant lets its holder fetch the record.
pub const BREAK_GLASS_GRANT_SECONDS: u64 = 24 * 3600;

/// A grant serves only while what authorised it holds: its consent still active (same
/// version, in its period) and no consent of the patient denying the access now — or a
/// break-glass grant within 24 hours.
fn grant_in_force(
    stub: &mut dyn ChaincodeStub,
    who: &crate::identity::Caller,
    grant: &Grant,
    meta: &RecordMeta,
) -> Outcome<()> {
    let time = now(stub);
    if grant.authorization == "break-glass" {
        if time > grant.time + BREAK_GLASS_GRANT_SECONDS {
            return fail(format!("access denied: the break-glass grant for {} has expired", meta.record_id));
        }
        return Ok(());
    }
    let (consent_id, version) = grant.authorization.rsplit_once('@').unwrap_or((&grant.authorization, ""));
    let consent =
        crate::access::sealed_consent(stub, &meta.custodian, &meta.patient_id, consent_id).ok().flatten();
    let in_force = consent.as_ref().is_some_and(|c| {
        c.status == crate::consent::Status::Active
            && c.version.to_string() == version
            && c.terms.rule.period.is_none_or(|p| p.contains(time))
    });
    let Some(consent) = consent.filter(|_| in_force) else {
        return fail(format!(
            "access denied: consent {} that authorised {}'s access to {} is no longer in force",
            grant.authorization, grant.actor, meta.record_id
        ));
    };
    // The consent that authorised the grant must permit it against the whole record (its
    // sensitive labels too, known only here), and no consent — one filed since, an
    // opt-out, a deny naming a label — may deny it. One message for every refusal, so the
    // answer does not tell which label is there.
    let request = crate::consent::Request {
        caller: who,
        action: "access",
        purpose: &grant.purpose,
        record: meta,
        time,
    };
    let consents = crate::access::applicable(stub, who, &meta.patient_id)?;
    let own =
        matches!(crate::consent::evaluate([&consent], &request), crate::consent::Verdict::Permit { .. });
    let denied =
        matches!(crate::consent::evaluate(&consents, &request), crate::consent::Verdict::Deny { .. });
    if !own || denied {
        return fail(format!(
            "access denied: the consents of patient {} do not permit releasing {} to {}",
            meta.patient_id, meta.record_id, grant.actor
        ));
    }
    Ok(())
}

fn seal_answer(key: &[u8], answer: &Ciphertext) -> Outcome<SealedRead> {
    let plaintext = serde_json::to_value(answer)
        .map_err(|e| medfabric_shim::ContractError::new(format!("encoding the answer: {e}")))?;
    let sealed = seal_json(key, &format!("{READ_AAD}\0{}", answer.record_id), &plaintext)?;
    let field = |name: &str| sealed[name].as_str().unwrap_or_default().to_owned();
    Ok(SealedRead {
        record_id: answer.record_id.clone(),
        version: answer.version,
        nonce: field("nonce"),
        sealed: field("sealed"),
    })
}

/// The caller's one-time `response_key` from the transient map, if it sent one.
pub fn response_key(stub: &dyn ChaincodeStub) -> Outcome<Option<Bytes>> {
    match stub.transient().get(TRANSIENT_RESPONSE_KEY) {
        None => Ok(None),
        Some(key) if key.len() == 32 => Ok(Some(key.clone())),
        Some(key) => fail(format!("{TRANSIENT_RESPONSE_KEY} must be 32 bytes, got {}", key.len())),
    }
}

/// `value` sealed to the caller's response `key` ([`medfabric_medical_api::sealed`]).
pub fn seal_json(key: &[u8], aad: &str, value: &serde_json::Value) -> Outcome<serde_json::Value> {
    medfabric_medical_api::sealed::seal(key, aad, value).map_err(medfabric_shim::ContractError::new)
}

/// Most grants of one reader for one record a read looks at.
pub const MAX_GRANTS_SCANNED: u32 = 1000;

/// Checks one grant, filed under `filed_as`: it is the grant of the access it names
/// (key = body), for this record and caller, sealed by the custodian, and agrees with
/// that access's sealed audit event (so no field was forged after the fact); settled;
/// still in force.
fn grant_serves(
    stub: &mut dyn ChaincodeStub,
    who: &Caller,
    filed_as: &str,
    grant: &Grant,
    meta: &RecordMeta,
) -> Outcome<()> {
    use crate::access::{event_seal, grant_seal};
    let not_custodians = || {
        fail(format!(
            "access denied: the grant of {} for record {} was not made by an audited access the custodian {} endorsed",
            grant.actor, meta.record_id, meta.custodian
        ))
    };
    let actor = who.actor();
    if filed_as != key(stub, GRANT, &[&meta.record_id, &actor, &grant.access_id])?
        || grant.record_id != meta.record_id
        || grant.actor != actor
    {
        return not_custodians();
    }
    let Ok(event) = crate::access::audit_event(stub, &grant.access_id) else { return not_custodians() };
    let authorization = event.consent.clone().unwrap_or_else(|| "break-glass".to_owned());
    let agrees = event.event_id == grant.access_id
        && event.actor == grant.actor
        && event.record_id == grant.record_id
        && event.purpose == grant.purpose
        && event.time == grant.time
        && authorization == grant.authorization;
    if !agrees
        || !sealed_by_custodian(stub, Seal::Event, &meta.custodian, &[&event.event_id], &event_seal(&event))?
        || !sealed_by_custodian(stub, Seal::Grant, &meta.custodian, &[&grant.access_id], &grant_seal(grant))?
    {
        return not_custodians();
    }
    if !grant.active {
        return fail(format!(
            "access denied: access {} awaits the settlement of its fee (pay settle)",
            grant.access_id
        ));
    }
    grant_in_force(stub, who, grant, meta)
}

/// The caller's grants for the record (one per access), newest access last; the first
/// that serves, else the reason the newest does not.
fn serving_grant(stub: &mut dyn ChaincodeStub, who: &Caller, meta: &RecordMeta) -> Outcome<Grant> {
    let actor = who.actor();
    let prefix = key(stub, GRANT, &[&meta.record_id, &actor])?;
    let end = format!("{prefix}{}", medfabric_shim::MAX_UNICODE_RUNE);
    let (entries, _) = stub.query_range_page(&prefix, &end, MAX_GRANTS_SCANNED, "")?;
    let mut grants = Vec::with_capacity(entries.len());
    for entry in entries {
        let grant: Grant = serde_json::from_slice(&entry.value)
            .or_else(|e| fail(format!("grant {:?} is corrupt: {e}", entry.key)))?;
        grants.push((entry.key, grant));
    }
    grants.sort_by_key(|(_, g)| g.time);
    let mut refusal = None;
    for (filed_as, grant) in grants.into_iter().rev() {
        match grant_serves(stub, who, &filed_as, &grant, meta) {
            Ok(()) => return Ok(grant),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    Err(refusal.unwrap_or_else(|| {
        medfabric_shim::ContractError::new(format!(
            "access denied: {actor} holds no committed access grant for record {}",
            meta.record_id
        ))
    }))
}

/// Reads the latest ciphertext with its data key wrapped for the caller — an evaluate on
/// a peer of the custodian organization. The patient gets the wrap to their registered
/// key; anyone else (the custodian's own staff included) needs a live committed grant,
/// and gets the data key wrapped to their certificate's key by this peer. The answer is
/// sealed to the caller's `response_key` ([`SealedRead`]).
pub fn read_record(stub: &mut dyn ChaincodeStub, (record_id,): (String,)) -> Outcome<SealedRead> {
    let Some(response_key) = stub.transient().get(TRANSIENT_RESPONSE_KEY).cloned() else {
        return fail(format!(
            "read_record needs a 32-byte {TRANSIENT_RESPONSE_KEY:?} in the transient map: its answer is sealed to it"
        ));
    };
    if response_key.len() != 32 {
        return fail(format!("{TRANSIENT_RESPONSE_KEY} must be 32 bytes, got {}", response_key.len()));
    }
    let answer = unsealed_read(stub, record_id)?;
    seal_answer(&response_key, &answer)
}

fn unsealed_read(stub: &mut dyn ChaincodeStub, record_id: String) -> Outcome<Ciphertext> {
    let who = caller(stub)?;
    let meta = record(stub, &record_id)?;
    if meta.erased {
        return fail(format!("record {record_id} was erased"));
    }
    let actor = who.actor();
    // Only the patient reads without a grant; everyone else — the custodian's own
    // providers included — reads through an audited access.
    let patient = is_record_patient(&who, &meta);
    if !patient {
        // Consent is checked here against the sensitive labels too: only the custodian's
        // (and the regulators') peers know them.
        let full = with_sensitive_labels(stub, &meta)?;
        serving_grant(stub, &who, &full)?;
    }
    let collection = custodian_collection(&meta.custodian);
    let version = padded(u64::from(meta.version));
    let ct = key(stub, CIPHERTEXT, &[&record_id, &version])?;
    let ciphertext = stub.get_private_data(&collection, &ct)?.ok_or_else(|| {
        medfabric_shim::ContractError::new(format!("ciphertext of {record_id} is not held on this peer"))
    })?;
    let holder = if patient { PATIENT_HOLDER.to_owned() } else { org_holder(&meta.custodian) };
    let wk = key(stub, WRAPPED_KEY, &[&record_id, &version, &holder])?;
    let stored = stub.get_private_data(&collection, &wk)?.ok_or_else(|| {
        medfabric_shim::ContractError::new(format!(
            "no key of record {record_id} version {} for {holder}",
            meta.version
        ))
    })?;
    let stored = String::from_utf8_lossy(&stored).into_owned();
    let (wrapped_key, key_holder) = if patient {
        (stored, holder)
    } else {
        // The release: this peer's record key opens the custodian's wrap; the data key is
        // wrapped to the caller's certificate key, for this answer only.
        let Some(private_key) = held_record_key(stub, &meta.custodian)? else {
            return fail(format!(
                "this peer does not hold {}'s record key: read {record_id} on a peer of {}",
                meta.custodian, meta.custodian
            ));
        };
        let release = |why: String| {
            medfabric_shim::ContractError::new(format!("releasing the key of {record_id}: {why}"))
        };
        let wrapped = from_hex("the stored wrap", &stored)?;
        let data_key = crate::keywrap::unwrap(&wrapped, &private_key, &record_id, meta.version)
            .map_err(|e| release(e.0))?;
        let reader_key = stub.client_identity()?.certificate().public_key().to_vec();
        let rewrapped = crate::keywrap::wrap(&data_key, &reader_key, &record_id, meta.version)
            .map_err(|e| release(e.0))?;
        (hex(&rewrapped), actor)
    };
    Ok(Ciphertext {
        record_id,
        patient_id: meta.patient_id,
        version: meta.version,
        commitment: meta.commitment,
        ciphertext: hex(&ciphertext),
        wrapped_key,
        key_holder,
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The audit-collection key of an erasure's reason.
pub fn erasure_reason_key(stub: &dyn ChaincodeStub, record_id: &str) -> Outcome<String> {
    key(stub, PHI_NOTE, &[&format!("erasure-{record_id}"), TRANSIENT_REASON])
}

/// Crypto-shreds a record: purges every version's ciphertext and wrapped keys from the
/// custodian's collection (from every member peer, all history) and leaves an erasure
/// event on chain; by the patient or a custodian provider.
pub fn erase_record(stub: &mut dyn ChaincodeStub, (input,): (EraseInput,)) -> Outcome<Erasure> {
    let who = caller(stub)?;
    let mut meta = record(stub, &input.record_id)?;
    let patient = is_record_patient(&who, &meta);
    let custodian = who.role == Role::Provider && who.msp_id == meta.custodian;
    if !(patient || custodian) {
        return fail(format!(
            "access denied: only the patient or a provider of {} erases records",
            meta.custodian
        ));
    }
    if meta.erased {
        return fail(format!("record {} was already erased", meta.record_id));
    }
    if !input.reason.is_empty() {
        return fail(format!(
            "a reason is free text and may not be an argument (arguments land in blocks): send it in the transient map under {TRANSIENT_REASON:?}"
        ));
    }
    let reason = crate::access::transient_text(stub, TRANSIENT_REASON)?;
    let collection = custodian_collection(&meta.custodian);
    for v in 1..=meta.version {
        let version = padded(u64::from(v));
        let ct = key(stub, CIPHERTEXT, &[&meta.record_id, &version])?;
        stub.purge_private_data(&collection, &ct)?;
        // The readers are public, so every endorser (member of the collection or not)
        // purges the same keys.
        let version_key = key(stub, RECORD_VERSION, &[&meta.record_id, &version])?;
        let readers = get_json::<RecordVersion>(stub, &version_key)?.map(|v| v.readers).unwrap_or_default();
        for reader in readers {
            let wk = key(stub, WRAPPED_KEY, &[&meta.record_id, &version, &reader])?;
            stub.purge_private_data(&collection, &wk)?;
        }
    }
    let labels = key(stub, SENSITIVE_LABELS, &[&meta.record_id])?;
    stub.purge_private_data(&audit_collection(&meta.custodian), &labels)?;
    stub.purge_private_data(&custodian_collection(&meta.custodian), &labels)?;
    meta.erased = true;
    meta.updated_at = now(stub);
    let id = key(stub, RECORD, &[&meta.record_id])?;
    put_json(stub, &id, &meta)?;
    custodian_only(stub, &meta.custodian, &id)?;
    let erasure = Erasure {
        record_id: meta.record_id.clone(),
        patient_id: meta.patient_id.clone(),
        requested_by: who.actor(),
        reason: None,
        time: meta.updated_at,
        tx_id: stub.tx_id().to_owned(),
        versions: meta.version,
    };
    let id = key(stub, ERASURE, &[&meta.record_id])?;
    put_json(stub, &id, &erasure)?;
    if let Some(text) = &reason {
        let note = erasure_reason_key(stub, &meta.record_id)?;
        let value = crate::access::salted_text(stub, text)?;
        stub.put_private_data(&audit_collection(&meta.custodian), &note, value)?;
    }
    // The answer lands in the block: the reason stays in the audit collection only.
    Ok(erasure)
}
