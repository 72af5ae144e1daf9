//! Consent management and access as an audited transaction.

use bytes::Bytes;
use medfabric_shim::{ChaincodeStub, ContractError};
use serde::{Deserialize, Serialize};

use crate::consent::{self, Consent, ConsentTerms, Fee, Grantee, PURPOSES, Request, Status, Verdict};
use crate::identity::{Caller, Role, caller};
use crate::model::*;
use crate::payments;
use crate::records::{is_patient, patient, record};

pub use medfabric_medical_api::io::{AccessInput, AccessResult};
pub use medfabric_medical_api::names::{
    TRANSIENT_JUSTIFICATION, TRANSIENT_NOTE, TRANSIENT_SALT, consent_statement,
};

// ---- consent ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentInput {
    pub patient_id: String,
    pub consent_id: String,
    /// Explicit terms, or…
    #[serde(default)]
    pub terms: Option<ConsentTerms>,
    /// …a named template (opt-in, opt-out, research-opt-in, emergency-only).
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub grantee: Option<Grantee>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub fee: Option<Fee>,
}

impl ConsentInput {
    fn terms(&self) -> Outcome<ConsentTerms> {
        let terms = match (&self.terms, &self.template) {
            (Some(terms), None) => terms.clone(),
            (None, Some(name)) => {
                consent::template(name, self.grantee.clone(), self.classes.clone(), self.fee)?
            }
            _ => return fail("give either terms or a template"),
        };
        terms.check()?;
        Ok(terms)
    }
}

/// A consent document the patient signed, relayed by a provider of the custodian
/// (a patient at the front desk signs on a tablet; the hospital's system submits).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedConsent {
    /// JSON text of a [`ConsentDocument`], exactly as signed.
    pub document: String,
    /// The patient's signature (hex DER, ECDSA P-256 over SHA-256) over
    /// [`consent_statement`] of `document`, with the key the patient registered.
    pub signature: String,
}

/// What a patient signs: an action on one consent, and the version it creates (1 for
/// a grant, the current version + 1 for an update or revocation), so a signed document
/// applies once and cannot be replayed later.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsentDocument {
    /// `grant`, `update` or `revoke`.
    pub action: String,
    pub version: u32,
    #[serde(flatten)]
    pub input: ConsentInput,
}

/// Only the patient manages their consents, as the holder of the key they registered
/// (an identity re-issued under their name by a CA holds another key). A provider
/// relays the patient's signed document through [`record_signed_consent`].
fn consent_manager(
    stub: &mut dyn ChaincodeStub,
    who: &Caller,
    patient_id: &str,
    function: &str,
) -> Outcome<()> {
    let patient = patient(stub, patient_id)?;
    if is_patient(who, &patient) {
        return Ok(());
    }
    if who.role == Role::Provider && who.msp_id == patient.custodian {
        return fail(format!(
            "access denied: {function} for patient {patient_id}: a provider records a patient's consent only with the patient's signature (record_signed_consent)"
        ));
    }
    fail(format!(
        "access denied: {function} for patient {patient_id} is reserved to the patient, with the key they registered"
    ))
}

fn consent_key(stub: &dyn ChaincodeStub, patient_id: &str, consent_id: &str) -> Outcome<String> {
    key(stub, CONSENT, &[patient_id, consent_id])
}

fn grantee_key(
    stub: &dyn ChaincodeStub,
    grantee: &Grantee,
    patient_id: &str,
    consent_id: &str,
) -> Outcome<String> {
    key(stub, CONSENT_BY_GRANTEE, &[&grantee.index(), patient_id, consent_id])
}

/// What a consent version's seal holds: the version as stored.
fn consent_seal(consent: &Consent) -> Outcome<Bytes> {
    serde_json::to_vec(consent).map(Bytes::from).or_else(|e| fail(format!("encoding a consent: {e}")))
}

/// The current version of a consent, if its custodian sealed it; `Ok(None)` when there
/// is none, an error when one is filed without the custodian's seal (written by other
/// organizations together).
pub fn sealed_consent(
    stub: &mut dyn ChaincodeStub,
    custodian: &str,
    patient_id: &str,
    consent_id: &str,
) -> Outcome<Option<Consent>> {
    let current = consent_key(stub, patient_id, consent_id)?;
    let Some(consent) = get_json::<Consent>(stub, &current)? else { return Ok(None) };
    let version = consent.version.to_string();
    let id = [patient_id, consent_id, version.as_str()];
    if consent.patient_id != patient_id
        || consent.consent_id != consent_id
        || !sealed_by_custodian(stub, Seal::Consent, custodian, &id, &consent_seal(&consent)?)?
    {
        return fail(format!(
            "consent {consent_id} of {patient_id} was not recorded with its custodian {custodian}'s endorsement"
        ));
    }
    Ok(Some(consent))
}

/// Writes a consent version: current value, history entry, grantee index; each only
/// the custodian may change from now on, and the version is sealed by the custodian.
fn store_consent(stub: &mut dyn ChaincodeStub, consent: &Consent, previous: Option<&Consent>) -> Outcome<()> {
    let custodian = patient(stub, &consent.patient_id)?.custodian;
    if let Some(previous) = previous
        && previous.terms.grantee != consent.terms.grantee
    {
        let old = grantee_key(stub, &previous.terms.grantee, &previous.patient_id, &previous.consent_id)?;
        stub.del_state(&old)?;
    }
    let index = grantee_key(stub, &consent.terms.grantee, &consent.patient_id, &consent.consent_id)?;
    stub.put_state(&index, Bytes::from_static(b"1"))?;
    let current = consent_key(stub, &consent.patient_id, &consent.consent_id)?;
    put_json(stub, &current, consent)?;
    let history = key(
        stub,
        CONSENT_VERSION,
        &[&consent.patient_id, &consent.consent_id, &padded(u64::from(consent.version))],
    )?;
    put_json(stub, &history, consent)?;
    for k in [&index, &current, &history] {
        custodian_only(stub, &custodian, k)?;
    }
    let version = consent.version.to_string();
    let id = [consent.patient_id.as_str(), consent.consent_id.as_str(), version.as_str()];
    seal(stub, Seal::Consent, &custodian, &id, consent_seal(consent)?)
}

pub fn grant_consent(stub: &mut dyn ChaincodeStub, (input,): (ConsentInput,)) -> Outcome<Consent> {
    let who = caller(stub)?;
    consent_manager(stub, &who, &input.patient_id, "grant_consent")?;
    grant(stub, &who, input, None)
}

fn grant(
    stub: &mut dyn ChaincodeStub,
    who: &Caller,
    input: ConsentInput,
    evidence: Option<SignedConsent>,
) -> Outcome<Consent> {
    check_id("consent id", &input.consent_id)?;
    if input.consent_id.contains('@') {
        return fail("a consent id may not contain '@'");
    }
    let terms = input.terms()?;
    let current = consent_key(stub, &input.patient_id, &input.consent_id)?;
    if stub.get_state(&current)?.is_some() {
        return fail(format!(
            "consent {} of {} exists; update it instead",
            input.consent_id, input.patient_id
        ));
    }
    let consent = Consent {
        consent_id: input.consent_id,
        patient_id: input.patient_id,
        version: 1,
        status: Status::Active,
        terms,
        recorded_by: who.actor(),
        evidence,
        time: now(stub),
        tx_id: stub.tx_id().to_owned(),
    };
    store_consent(stub, &consent, None)?;
    Ok(consent)
}

fn existing(stub: &mut dyn ChaincodeStub, patient_id: &str, consent_id: &str) -> Outcome<Consent> {
    let custodian = patient(stub, patient_id)?.custodian;
    sealed_consent(stub, &custodian, patient_id, consent_id)?
        .ok_or_else(|| ContractError::new(format!("consent {consent_id} of {patient_id} not found")))
}

/// A new version with new terms.
pub fn update_consent(stub: &mut dyn ChaincodeStub, (input,): (ConsentInput,)) -> Outcome<Consent> {
    let who = caller(stub)?;
    consent_manager(stub, &who, &input.patient_id, "update_consent")?;
    update(stub, &who, input, None, None)
}

fn update(
    stub: &mut dyn ChaincodeStub,
    who: &Caller,
    input: ConsentInput,
    evidence: Option<SignedConsent>,
    version: Option<u32>,
) -> Outcome<Consent> {
    let terms = input.terms()?;
    let previous = existing(stub, &input.patient_id, &input.consent_id)?;
    if previous.status == Status::Revoked {
        return fail(format!("consent {} was revoked; grant a new one", previous.consent_id));
    }
    check_version(&previous, version)?;
    let consent = Consent {
        version: previous.version + 1,
        terms,
        recorded_by: who.actor(),
        evidence,
        time: now(stub),
        tx_id: stub.tx_id().to_owned(),
        ..previous.clone()
    };
    store_consent(stub, &consent, Some(&previous))?;
    Ok(consent)
}

/// A signed document creates exactly the version it names.
fn check_version(previous: &Consent, version: Option<u32>) -> Outcome<()> {
    match version {
        Some(v) if v != previous.version + 1 => fail(format!(
            "the signed document is for version {v} of consent {}, which is at version {}: it was applied already or is out of date",
            previous.consent_id, previous.version
        )),
        _ => Ok(()),
    }
}

/// Revokes a consent (a new, final version). Accesses endorsed under it and committed
/// after the revocation are invalid; escrowed fees under it can be refunded.
pub fn revoke_consent(
    stub: &mut dyn ChaincodeStub,
    (patient_id, consent_id): (String, String),
) -> Outcome<Consent> {
    let who = caller(stub)?;
    consent_manager(stub, &who, &patient_id, "revoke_consent")?;
    revoke(stub, &who, &patient_id, &consent_id, None, None)
}

fn revoke(
    stub: &mut dyn ChaincodeStub,
    who: &Caller,
    patient_id: &str,
    consent_id: &str,
    evidence: Option<SignedConsent>,
    version: Option<u32>,
) -> Outcome<Consent> {
    let previous = existing(stub, patient_id, consent_id)?;
    if previous.status == Status::Revoked {
        return fail(format!("consent {consent_id} is already revoked"));
    }
    check_version(&previous, version)?;
    let consent = Consent {
        version: previous.version + 1,
        status: Status::Revoked,
        recorded_by: who.actor(),
        evidence,
        time: now(stub),
        tx_id: stub.tx_id().to_owned(),
        ..previous.clone()
    };
    store_consent(stub, &consent, Some(&previous))?;
    Ok(consent)
}

/// A provider of the custodian records a consent action the patient signed (grant,
/// update or revoke): the signature is verified against the patient's registered key,
/// and the document is stored with the consent version as evidence.
pub fn record_signed_consent(stub: &mut dyn ChaincodeStub, (signed,): (SignedConsent,)) -> Outcome<Consent> {
    let who = caller(stub)?;
    who.require("record_signed_consent", &[Role::Provider])?;
    let document: ConsentDocument = serde_json::from_str(&signed.document)
        .or_else(|e| fail(format!("the signed document is not a consent document: {e}")))?;
    let patient = patient(stub, &document.input.patient_id)?;
    who.require_org("record_signed_consent", &patient.custodian)?;
    check_patient_signature(&patient.public_key, &consent_statement(&signed.document), &signed.signature)?;
    let input = document.input;
    match document.action.as_str() {
        "grant" if document.version == 1 => grant(stub, &who, input, Some(signed)),
        "grant" => fail("a signed grant creates version 1"),
        "update" => update(stub, &who, input, Some(signed), Some(document.version)),
        "revoke" => {
            let (patient_id, consent_id) = (input.patient_id.clone(), input.consent_id.clone());
            revoke(stub, &who, &patient_id, &consent_id, Some(signed), Some(document.version))
        }
        other => fail(format!("unknown consent action {other:?} (grant, update, revoke)")),
    }
}

/// A consent's current version: the patient, its custodian's providers, regulators.
pub fn get_consent(
    stub: &mut dyn ChaincodeStub,
    (patient_id, consent_id): (String, String),
) -> Outcome<Consent> {
    let who = caller(stub)?;
    let registered = patient(stub, &patient_id)?;
    let custodian = who.role == Role::Provider && who.msp_id == registered.custodian;
    if who.role != Role::Regulator && !custodian && !is_patient(&who, &registered) {
        return fail(format!(
            "access denied: consents of {patient_id} are read by the patient, providers of {} and regulators",
            registered.custodian
        ));
    }
    existing(stub, &patient_id, &consent_id)
}

/// Consents that may apply to `who` for `patient_id`: the four grantee indexes (each a
/// range read, re-checked at commit) and the consents they name (point reads).
pub fn applicable(stub: &mut dyn ChaincodeStub, who: &Caller, patient_id: &str) -> Outcome<Vec<Consent>> {
    let custodian = patient(stub, patient_id)?.custodian;
    let mut found = Vec::new();
    for grantee in Grantee::candidates(who) {
        let index = grantee.index();
        for entry in stub.get_state_by_partial_composite_key(CONSENT_BY_GRANTEE, &[&index, patient_id])? {
            let (_, attributes) = stub.split_composite_key(&entry.key)?;
            let Some(consent_id) = attributes.get(2) else { continue };
            // Only consents the custodian sealed count; forged ones are ignored.
            if let Ok(Some(consent)) = sealed_consent(stub, &custodian, patient_id, consent_id) {
                found.push(consent);
            }
        }
    }
    Ok(found)
}

// ---- access ----------------------------------------------------------------------------

/// Free text from the transient map under `key` (trimmed; absent or blank: `None`).
pub fn transient_text(stub: &dyn ChaincodeStub, key: &str) -> Outcome<Option<String>> {
    let Some(bytes) = stub.transient().get(key) else { return Ok(None) };
    let text = std::str::from_utf8(bytes).or_else(|_| fail(format!("transient {key:?} is not UTF-8")))?;
    let text = text.trim();
    if text.len() > MAX_NOTE_BYTES {
        return fail(format!("transient {key:?} is longer than {MAX_NOTE_BYTES} bytes"));
    }
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// Longest justification or review note.
pub const MAX_NOTE_BYTES: usize = 4096;

fn note_key(stub: &dyn ChaincodeStub, event_id: &str, what: &str) -> Outcome<String> {
    key(stub, PHI_NOTE, &[event_id, what])
}

/// Keeps free text about an access in the custodian's audit collection (held by the
/// custodian's and the regulators' peers only; blocks carry its hash).
fn keep_note(
    stub: &mut dyn ChaincodeStub,
    custodian: &str,
    event_id: &str,
    what: &str,
    text: &str,
) -> Outcome<()> {
    let id = note_key(stub, event_id, what)?;
    let value = salted_text(stub, text)?;
    Ok(stub.put_private_data(&audit_collection(custodian), &id, value)?)
}

/// Free text as stored in a collection: `{"text", "salt"}`. The block carries the value's
/// hash, which without the writer's salt could confirm a guessed text.
pub fn salted_text(stub: &dyn ChaincodeStub, text: &str) -> Outcome<Bytes> {
    let salt = stub.transient().get(TRANSIENT_SALT).map(|s| String::from_utf8_lossy(s).into_owned());
    let Some(salt) = salt else {
        return fail(format!(
            "free text needs a {TRANSIENT_SALT:?} in the transient map (32 random bytes, hex): its hash lands in a block"
        ));
    };
    check_hex32(TRANSIENT_SALT, &salt)?;
    let value = serde_json::json!({"text": text, "salt": salt});
    Ok(Bytes::from(value.to_string()))
}

/// The text of a value [`salted_text`] stored.
pub fn unsalted_text(bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    value["text"].as_str().map(str::to_owned)
}

/// The event with its free text filled in where this peer holds the custodian's audit
/// collection (`None` elsewhere: the text never left the members' peers).
pub fn with_notes(stub: &mut dyn ChaincodeStub, custodian: &str, mut event: AuditEvent) -> AuditEvent {
    // Free text leaves only in an answer sealed to the caller's response key: should the
    // query be submitted, its block then holds ciphertext only.
    if !matches!(crate::records::response_key(stub), Ok(Some(_))) {
        return event;
    }
    let collection = audit_collection(custodian);
    let mut read = |what: &str| -> Option<String> {
        let id = note_key(stub, &event.event_id, what).ok()?;
        let bytes = stub.get_private_data(&collection, &id).ok().flatten()?;
        unsalted_text(&bytes)
    };
    if event.break_glass {
        event.justification = read("justification");
    }
    if let Some(review) = event.reviewed.as_mut() {
        review.note = read("review").unwrap_or_default();
    }
    event
}

/// Requests access to a record for a purpose. Consent is evaluated now, inside the
/// transaction (its keys join the read set). If permitted — or break-glass: purpose
/// ETREAT with a justification, by a provider — the transaction writes one audit event
/// (indexed by patient, actor, organization and record), grants the caller the record,
/// and escrows the consent's fee. Otherwise it fails and writes nothing.
pub fn request_access(stub: &mut dyn ChaincodeStub, (input,): (AccessInput,)) -> Outcome<AccessResult> {
    let who = caller(stub)?;
    who.require("request_access", &[Role::Provider, Role::Researcher, Role::Payer])?;
    if !PURPOSES.contains(&input.purpose.as_str()) {
        return fail(format!("unknown purpose of use {:?} (one of {})", input.purpose, PURPOSES.join(", ")));
    }
    let meta = record(stub, &input.record_id)?;
    if meta.erased {
        return fail(format!("record {} was erased", meta.record_id));
    }
    let time = now(stub);
    if input.justification.is_some() {
        return fail(format!(
            "a justification is free text about the patient and may not be an argument (arguments land in blocks): send it in the transient map under {TRANSIENT_JUSTIFICATION:?}"
        ));
    }
    let consents = applicable(stub, &who, &meta.patient_id)?;
    let verdict = consent_verdict(&consents, &who, &input, &meta, time)?;
    let justification = transient_text(stub, TRANSIENT_JUSTIFICATION)?;
    let break_glass_allowed =
        input.purpose == "ETREAT" && who.role == Role::Provider && justification.is_some();
    let (authorization, consent_ref, fee, break_glass) = match verdict {
        Verdict::Permit { consent, fee } => (consent.clone(), Some(consent), fee, false),
        _ if break_glass_allowed => ("break-glass".to_owned(), None, None, true),
        Verdict::Deny { consent } => {
            return fail(format!(
                "access denied: consent {consent} of patient {} denies {} access to {} for {}",
                meta.patient_id,
                who.actor(),
                meta.record_id,
                input.purpose
            ));
        }
        Verdict::NoConsent => {
            return fail(format!(
                "access denied: no consent of patient {} permits {} to access {} for {}",
                meta.patient_id,
                who.actor(),
                meta.record_id,
                input.purpose
            ));
        }
    };
    let access_id = stub.tx_id().to_owned();
    if let Some(fee) = fee.filter(|f| f.amount > 0) {
        payments::hold(stub, &who.actor(), &access_id, &meta, &authorization, fee, time)?;
    }
    let review_due = break_glass.then_some(time + BREAK_GLASS_REVIEW_SECONDS);
    let event = AuditEvent {
        event_id: access_id.clone(),
        tx_id: access_id.clone(),
        time,
        actor: who.actor(),
        org: who.msp_id.clone(),
        role: who.role.to_string(),
        record_id: meta.record_id.clone(),
        patient_id: meta.patient_id.clone(),
        resource_type: meta.resource_type.clone(),
        data_class: meta.data_class.clone(),
        purpose: input.purpose.clone(),
        consent: consent_ref,
        break_glass,
        justification: None,
        review_due,
        reviewed: None,
        custodian_sealed: None,
        fee: fee.map(|f| f.amount).filter(|a| *a > 0),
    };
    write_audit(stub, &meta.custodian, &event)?;
    if let Some(text) = justification.as_deref().filter(|_| break_glass) {
        keep_note(stub, &meta.custodian, &event.event_id, "justification", text)?;
    }
    let grant = Grant {
        record_id: meta.record_id.clone(),
        actor: who.actor(),
        access_id: access_id.clone(),
        purpose: input.purpose,
        authorization: authorization.clone(),
        time,
        // Paid access serves once the fee is settled (and is refundable until then).
        active: event.fee.is_none(),
    };
    // One grant per access: concurrent accesses never write the same key.
    let grant_key = key(stub, GRANT, &[&meta.record_id, &who.actor(), &access_id])?;
    put_json(stub, &grant_key, &grant)?;
    custodian_only(stub, &meta.custodian, &grant_key)?;
    seal(stub, Seal::Grant, &meta.custodian, &[&access_id], grant_seal(&grant))?;
    seal(stub, Seal::Event, &meta.custodian, &[&access_id], event_seal(&event))?;
    Ok(AccessResult {
        access_id,
        record_id: meta.record_id,
        authorization,
        break_glass,
        fee: event.fee,
        review_due,
    })
}

/// The consents' verdict on the caller's access to `meta` for the input's purpose. With
/// a named consent, that consent must be active and permit it on its own, assuming the
/// record carries every sensitive label the consent's rule names — and no other consent
/// may deny it.
fn consent_verdict(
    consents: &[Consent],
    who: &Caller,
    input: &AccessInput,
    meta: &RecordMeta,
    time: u64,
) -> Outcome<Verdict> {
    let Some(id) = &input.consent_id else {
        let request = Request { caller: who, action: "access", purpose: &input.purpose, record: meta, time };
        return Ok(consent::evaluate(consents, &request));
    };
    let Some(named) = consents.iter().find(|c| &c.consent_id == id) else {
        return fail(format!(
            "access denied: patient {} has no active consent {id} for {}",
            meta.patient_id,
            who.actor()
        ));
    };
    let mut assumed = meta.clone();
    assumed.security_labels.extend(
        named.terms.rule.labels.iter().filter(|l| crate::model::SENSITIVE.contains(&l.as_str())).cloned(),
    );
    let request = Request { caller: who, action: "access", purpose: &input.purpose, record: &assumed, time };
    Ok(match consent::evaluate(consents, &request) {
        deny @ Verdict::Deny { .. } => deny,
        _ => consent::evaluate([named], &request),
    })
}

/// What a grant's seal says: the access, its record and actor.
pub fn grant_seal(grant: &Grant) -> Bytes {
    Bytes::from(format!("{}\0{}\0{}", grant.access_id, grant.record_id, grant.actor))
}

/// What an event's seal says: every field fixed when the access was made (the review
/// is added later, and the free text lives in the audit collection).
pub fn event_seal(event: &AuditEvent) -> Bytes {
    let fixed = (
        &event.event_id,
        &event.record_id,
        &event.patient_id,
        &event.actor,
        &event.org,
        &event.purpose,
        &event.consent,
        event.break_glass,
        event.time,
        event.review_due,
        event.fee,
    );
    Bytes::from(serde_json::to_vec(&fixed).expect("plain values serialize"))
}

/// The event and its indexes: by patient, actor, organization and record (time-ordered),
/// and the break-glass list; each only the custodian may change from now on.
fn write_audit(stub: &mut dyn ChaincodeStub, custodian: &str, event: &AuditEvent) -> Outcome<()> {
    let id = key(stub, AUDIT, &[&event.event_id])?;
    put_json(stub, &id, event)?;
    custodian_only(stub, custodian, &id)?;
    let time = padded(event.time);
    let marker = Bytes::from(event.event_id.clone());
    for (index, subject) in [
        (AUDIT_BY_PATIENT, &event.patient_id),
        (AUDIT_BY_ACTOR, &event.actor),
        (AUDIT_BY_ORG, &event.org),
        (AUDIT_BY_RECORD, &event.record_id),
    ] {
        let k = key(stub, index, &[subject, &time, &event.event_id])?;
        stub.put_state(&k, marker.clone())?;
        custodian_only(stub, custodian, &k)?;
    }
    if event.break_glass {
        let k = key(stub, BREAK_GLASS, &[&time, &event.event_id])?;
        stub.put_state(&k, marker)?;
        custodian_only(stub, custodian, &k)?;
    }
    Ok(())
}

pub fn audit_event(stub: &mut dyn ChaincodeStub, event_id: &str) -> Outcome<AuditEvent> {
    let id = key(stub, AUDIT, &[event_id])?;
    get_json(stub, &id)?.ok_or_else(|| ContractError::new(format!("audit event {event_id} not found")))
}

/// Records the review of a break-glass access: by a provider of the record's custodian
/// (the privacy officer) or a regulator. The note travels in the transient map
/// ([`TRANSIENT_NOTE`]) and is kept in the audit collection; the event returned (and
/// so the block) carries neither the note nor the justification.
pub fn review_break_glass(stub: &mut dyn ChaincodeStub, (event_id,): (String,)) -> Outcome<AuditEvent> {
    let who = caller(stub)?;
    who.require("review_break_glass", &[Role::Provider, Role::Regulator])?;
    let mut event = audit_event(stub, &event_id)?;
    if !event.break_glass {
        return fail(format!("access {event_id} was not a break-glass access"));
    }
    if who.role == Role::Provider {
        let meta = record(stub, &event.record_id)?;
        who.require_org("review_break_glass", &meta.custodian)?;
    }
    if event.reviewed.is_some() {
        return fail(format!("break-glass access {event_id} was already reviewed"));
    }
    if event.actor == who.actor() {
        return fail(format!("access denied: {} may not review their own break-glass access", who.actor()));
    }
    let Some(note) = transient_text(stub, TRANSIENT_NOTE)? else {
        return fail(format!("a review needs a note, in the transient map under {TRANSIENT_NOTE:?}"));
    };
    let meta = record(stub, &event.record_id)?;
    event.reviewed = Some(Review { reviewer: who.actor(), time: now(stub), note: String::new() });
    let id = key(stub, AUDIT, &[&event_id])?;
    put_json(stub, &id, &event)?;
    keep_note(stub, &meta.custodian, &event_id, "review", &note)?;
    Ok(event)
}
