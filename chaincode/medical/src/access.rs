//! Consent management and access as an audited transaction.

use bytes::Bytes;
use medfabric_shim::{ChaincodeStub, ContractError};
use serde::{Deserialize, Serialize};

use crate::consent::{self, Consent, ConsentTerms, Fee, Grantee, PURPOSES, Request, Status, Verdict};
use crate::identity::{Caller, Role, caller};
use crate::model::*;
use crate::payments;
use crate::records::{patient, record};

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
    /// SHA-256 (hex) of the signed consent form, required when a provider records the
    /// consent on the patient's behalf.
    #[serde(default)]
    pub source_hash: Option<String>,
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

/// The patient, or a provider of the patient's custodian recording the patient's
/// signed consent (with the form's hash as evidence), may manage the patient's consents.
fn consent_manager(
    stub: &mut dyn ChaincodeStub,
    who: &Caller,
    patient_id: &str,
    function: &str,
    source_hash: Option<&str>,
) -> Outcome<()> {
    let patient = patient(stub, patient_id)?;
    let is_patient = who.role == Role::Patient && who.actor() == patient.patient_id;
    let is_custodian = who.role == Role::Provider && who.msp_id == patient.custodian;
    if is_patient {
        return Ok(());
    }
    if is_custodian {
        return match source_hash {
            Some(hash) => check_hex32("source_hash", hash),
            None => fail(format!(
                "{function} on the patient's behalf needs source_hash: the SHA-256 of the signed consent form"
            )),
        };
    }
    fail(format!(
        "access denied: {function} for patient {patient_id} is reserved to the patient or a provider of {}",
        patient.custodian
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

/// Writes a consent version: current value, history entry, grantee index.
fn store_consent(stub: &mut dyn ChaincodeStub, consent: &Consent, previous: Option<&Consent>) -> Outcome<()> {
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
    put_json(stub, &history, consent)
}

pub fn grant_consent(stub: &mut dyn ChaincodeStub, (input,): (ConsentInput,)) -> Outcome<Consent> {
    let who = caller(stub)?;
    consent_manager(stub, &who, &input.patient_id, "grant_consent", input.source_hash.as_deref())?;
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
        source_hash: input.source_hash.clone(),
        time: now(stub),
        tx_id: stub.tx_id().to_owned(),
    };
    store_consent(stub, &consent, None)?;
    Ok(consent)
}

fn existing(stub: &mut dyn ChaincodeStub, patient_id: &str, consent_id: &str) -> Outcome<Consent> {
    let current = consent_key(stub, patient_id, consent_id)?;
    get_json(stub, &current)?
        .ok_or_else(|| ContractError::new(format!("consent {consent_id} of {patient_id} not found")))
}

/// A new version with new terms.
pub fn update_consent(stub: &mut dyn ChaincodeStub, (input,): (ConsentInput,)) -> Outcome<Consent> {
    let who = caller(stub)?;
    consent_manager(stub, &who, &input.patient_id, "update_consent", input.source_hash.as_deref())?;
    let terms = input.terms()?;
    let previous = existing(stub, &input.patient_id, &input.consent_id)?;
    if previous.status == Status::Revoked {
        return fail(format!("consent {} was revoked; grant a new one", previous.consent_id));
    }
    let consent = Consent {
        version: previous.version + 1,
        terms,
        recorded_by: who.actor(),
        source_hash: input.source_hash.clone(),
        time: now(stub),
        tx_id: stub.tx_id().to_owned(),
        ..previous.clone()
    };
    store_consent(stub, &consent, Some(&previous))?;
    Ok(consent)
}

/// Revokes a consent (a new, final version). Accesses endorsed under it and committed
/// after the revocation are invalid; escrowed fees under it can be refunded.
pub fn revoke_consent(
    stub: &mut dyn ChaincodeStub,
    (patient_id, consent_id): (String, String),
) -> Outcome<Consent> {
    let who = caller(stub)?;
    // A revocation is the patient's right: a provider records it without a form hash.
    consent_manager(stub, &who, &patient_id, "revoke_consent", Some(&"0".repeat(64)))?;
    let previous = existing(stub, &patient_id, &consent_id)?;
    if previous.status == Status::Revoked {
        return fail(format!("consent {consent_id} is already revoked"));
    }
    let consent = Consent {
        version: previous.version + 1,
        status: Status::Revoked,
        recorded_by: who.actor(),
        time: now(stub),
        tx_id: stub.tx_id().to_owned(),
        ..previous.clone()
    };
    store_consent(stub, &consent, Some(&previous))?;
    Ok(consent)
}

/// A consent's current version: the patient, its custodian's providers, regulators.
pub fn get_consent(
    stub: &mut dyn ChaincodeStub,
    (patient_id, consent_id): (String, String),
) -> Outcome<Consent> {
    let who = caller(stub)?;
    if who.role != Role::Regulator {
        consent_manager(stub, &who, &patient_id, "get_consent", Some(&"0".repeat(64)))?;
    }
    existing(stub, &patient_id, &consent_id)
}

/// Consents that may apply to `who` for `patient_id`: the four grantee indexes (each a
/// range read, re-checked at commit) and the consents they name (point reads).
pub fn applicable(stub: &mut dyn ChaincodeStub, who: &Caller, patient_id: &str) -> Outcome<Vec<Consent>> {
    let mut found = Vec::new();
    for grantee in Grantee::candidates(who) {
        let index = grantee.index();
        for entry in stub.get_state_by_partial_composite_key(CONSENT_BY_GRANTEE, &[&index, patient_id])? {
            let (_, attributes) = stub.split_composite_key(&entry.key)?;
            let Some(consent_id) = attributes.get(2) else { continue };
            found.push(existing(stub, patient_id, consent_id)?);
        }
    }
    Ok(found)
}

// ---- access ----------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessInput {
    pub record_id: String,
    /// Purpose of use (TREAT, ETREAT, HPAYMT, HOPERAT, HRESCH, PUBHLTH…).
    pub purpose: String,
    /// Refused: arguments land in blocks. A break-glass justification travels in the
    /// transient map under [`TRANSIENT_JUSTIFICATION`].
    #[serde(default)]
    pub justification: Option<String>,
}

/// Transient key of a break-glass justification (free text, kept off the chain).
pub const TRANSIENT_JUSTIFICATION: &str = "justification";
/// Transient key of a break-glass review note.
pub const TRANSIENT_NOTE: &str = "note";

/// Free text from the transient map under `key` (trimmed; absent or blank: `None`).
fn transient_text(stub: &dyn ChaincodeStub, key: &str) -> Outcome<Option<String>> {
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
    Ok(stub.put_private_data(&audit_collection(custodian), &id, Bytes::from(text.to_owned()))?)
}

/// The event with its free text filled in where this peer holds the custodian's audit
/// collection (`None` elsewhere: the text never left the members' peers).
pub fn with_notes(stub: &mut dyn ChaincodeStub, custodian: &str, mut event: AuditEvent) -> AuditEvent {
    let collection = audit_collection(custodian);
    let mut read = |what: &str| -> Option<String> {
        let id = note_key(stub, &event.event_id, what).ok()?;
        let bytes = stub.get_private_data(&collection, &id).ok().flatten()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    if event.break_glass {
        event.justification = read("justification");
    }
    if let Some(review) = event.reviewed.as_mut() {
        review.note = read("review").unwrap_or_default();
    }
    event
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessResult {
    pub access_id: String,
    pub record_id: String,
    pub authorization: String,
    pub break_glass: bool,
    pub fee: Option<u64>,
    pub review_due: Option<u64>,
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
    let request = Request { caller: &who, action: "access", purpose: &input.purpose, record: &meta, time };
    let verdict = consent::evaluate(&consents, &request);
    let justification = transient_text(stub, TRANSIENT_JUSTIFICATION)?;
    let (authorization, consent_ref, fee, break_glass) = match verdict {
        Verdict::Permit { consent, fee } => (consent.clone(), Some(consent), fee, false),
        _ if input.purpose == "ETREAT" && who.role == Role::Provider && justification.is_some() => {
            ("break-glass".to_owned(), None, None, true)
        }
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
    let grant_key = key(stub, GRANT, &[&meta.record_id, &who.actor()])?;
    put_json(stub, &grant_key, &grant)?;
    custodian_only(stub, &meta.custodian, &grant_key)?;
    seal_access(stub, &meta.custodian, &grant)?;
    Ok(AccessResult {
        access_id,
        record_id: meta.record_id,
        authorization,
        break_glass,
        fee: event.fee,
        review_due,
    })
}

/// Gives `key` the key-level policy "a peer of `custodian`": from now on no transaction
/// changes or deletes it without the custodian's endorsement, whatever the chaincode's
/// policy lets other organizations do together.
pub fn custodian_only(stub: &mut dyn ChaincodeStub, custodian: &str, key: &str) -> Outcome<()> {
    let policy = medfabric_shim::statebased::peers_of_every(&[custodian])?;
    Ok(stub.set_state_validation_parameter(key, policy)?)
}

fn seal_key(stub: &dyn ChaincodeStub, access_id: &str) -> Outcome<String> {
    key(stub, ACCESS_SEAL, &[access_id])
}

fn seal_value(grant: &Grant) -> Bytes {
    Bytes::from(format!("{}\0{}\0{}", grant.access_id, grant.record_id, grant.actor))
}

/// Writes the custodian's seal of an access into its implicit collection. Writes to an
/// organization's implicit collection need that organization's endorsement
/// (`/Channel/Application/<Org>/Endorsement`), so a transaction not endorsed by the
/// custodian cannot create one: a grant or audit event that other organizations forge
/// together carries no seal.
fn seal_access(stub: &mut dyn ChaincodeStub, custodian: &str, grant: &Grant) -> Outcome<()> {
    let id = seal_key(stub, &grant.access_id)?;
    Ok(stub.put_private_data(&custodian_collection(custodian), &id, seal_value(grant))?)
}

/// Removes the seal of a withdrawn access (with the custodian's endorsement).
pub fn unseal_access(stub: &mut dyn ChaincodeStub, custodian: &str, access_id: &str) -> Outcome<()> {
    let id = seal_key(stub, access_id)?;
    Ok(stub.del_private_data(&custodian_collection(custodian), &id)?)
}

/// Did the custodian endorse the transaction that made this grant? Checked against the
/// seal's hash, which every peer holds.
pub fn sealed_by_custodian(stub: &mut dyn ChaincodeStub, custodian: &str, grant: &Grant) -> Outcome<bool> {
    let id = seal_key(stub, &grant.access_id)?;
    let held = stub.get_private_data_hash(&custodian_collection(custodian), &id)?;
    Ok(held.is_some_and(|h| h.as_ref() == medfabric_shim::tx::hash(&seal_value(grant)).as_slice()))
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
