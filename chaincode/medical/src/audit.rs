//! Regulator queries (role regulator only), each served from an index and paginated:
//! disclosures of a patient in a time range (HIPAA §164.528 accounting), accesses by an
//! actor, by an organization, to a record; break-glass events and overdue reviews;
//! consent history; payments linked to disclosures; a record's commitment at a time;
//! erasures. `format` is `json` or `fhir` (AuditEvent / Consent resources).

use medfabric_shim::{ChaincodeStub, ContractError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::access::{audit_event, event_seal, with_notes};
use crate::consent::{Consent, Decision, Grantee, Provision, Status};
use crate::identity::{Role, caller};
use crate::model::*;

pub use medfabric_medical_api::io::{CommitmentAt, MAX_PAGE, Page, Query};
pub use medfabric_medical_api::names::AUDIT_AAD;

/// What the chaincode makes of a [`Query`].
trait QueryRules {
    fn fhir(&self) -> Outcome<bool>;
    fn page_size(&self) -> u32;
}

impl QueryRules for Query {
    fn fhir(&self) -> Outcome<bool> {
        match self.format.as_deref() {
            None | Some("json") => Ok(false),
            Some("fhir") => Ok(true),
            Some(other) => fail(format!("unknown format {other:?} (json or fhir)")),
        }
    }

    fn page_size(&self) -> u32 {
        self.page_size.unwrap_or(100).clamp(1, MAX_PAGE)
    }
}

fn regulator(stub: &mut dyn ChaincodeStub, function: &str) -> Outcome<()> {
    caller(stub)?.require(function, &[Role::Regulator])
}

/// One page of the index `object/subject/time/…` over `[from, to]`, each entry mapped
/// by `item`.
fn page_of(
    stub: &mut dyn ChaincodeStub,
    object: &str,
    prefix: &[&str],
    query: &Query,
    mut item: impl FnMut(&mut dyn ChaincodeStub, &str, &[String]) -> Outcome<Value>,
) -> Outcome<Page> {
    let mut start_attrs: Vec<String> = prefix.iter().map(|s| (*s).to_owned()).collect();
    let mut end_attrs = start_attrs.clone();
    if let Some(from) = query.from {
        start_attrs.push(padded(from));
    }
    let start =
        stub.create_composite_key(object, &start_attrs.iter().map(String::as_str).collect::<Vec<_>>())?;
    let end = match query.to {
        Some(to) => {
            end_attrs.push(padded(to.saturating_add(1)));
            stub.create_composite_key(object, &end_attrs.iter().map(String::as_str).collect::<Vec<_>>())?
        }
        None => {
            let base =
                stub.create_composite_key(object, &end_attrs.iter().map(String::as_str).collect::<Vec<_>>())?;
            format!("{base}{}", medfabric_shim::MAX_UNICODE_RUNE)
        }
    };
    let (entries, metadata) = stub.query_range_page(&start, &end, query.page_size(), &query.bookmark)?;
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let (_, attributes) = stub.split_composite_key(&entry.key)?;
        let value = String::from_utf8_lossy(&entry.value).into_owned();
        items.push(item(stub, &value, &attributes)?);
    }
    Ok(Page { count: items.len(), items, bookmark: metadata.bookmark })
}

/// The page `query` makes, sealed to the caller's `response_key` when it sent one (the only
/// way free text — justifications, review notes, erasure reasons — is included), else as is.
fn answer(
    stub: &mut dyn ChaincodeStub,
    function: &str,
    query: impl FnOnce(&mut dyn ChaincodeStub) -> Outcome<Page>,
) -> Outcome<Value> {
    let key = crate::records::response_key(stub)?;
    let page = to_value(&query(stub)?)?;
    match key {
        Some(key) => crate::records::seal_json(&key, &format!("{AUDIT_AAD}\0{function}"), &page),
        None => Ok(page),
    }
}

/// An audit event with its free text, read from the custodian's audit collection
/// (held by the regulators' peers; a peer without it answers without the text).
/// `custodian_sealed` tells whether the custodian endorsed the event's transaction: an
/// event other organizations wrote together (a forged disclosure) shows `false`.
fn noted_event(stub: &mut dyn ChaincodeStub, event_id: &str) -> Outcome<AuditEvent> {
    let event = audit_event(stub, event_id)?;
    let custodian = crate::records::record(stub, &event.record_id)?.custodian;
    // The body must be the one filed under this id, and sealed as it stands.
    let custodian_sealed = event.event_id == event_id
        && sealed_by_custodian(stub, Seal::Event, &custodian, &[event_id], &event_seal(&event))?;
    let mut event = with_notes(stub, &custodian, event);
    event.custodian_sealed = Some(custodian_sealed);
    Ok(event)
}

fn event_item(stub: &mut dyn ChaincodeStub, event_id: &str, fhir: bool) -> Outcome<Value> {
    let event = noted_event(stub, event_id)?;
    Ok(if fhir { audit_event_fhir(&event) } else { to_value(&event)? })
}

fn to_value<T: Serialize>(value: &T) -> Outcome<Value> {
    serde_json::to_value(value).map_err(|e| ContractError::new(format!("encoding: {e}")))
}

/// HIPAA accounting of disclosures: every access to the patient's records in the time
/// range, with date, recipient, what, purpose and the authorizing consent version.
pub fn disclosures(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Value> {
    regulator(stub, "disclosures")?;
    answer(stub, "disclosures", |stub| {
        let fhir = query.fhir()?;
        page_of(stub, AUDIT_BY_PATIENT, &[&query.subject], &query, |s, id, _| event_item(s, id, fhir))
    })
}

pub fn accesses_by_actor(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Value> {
    regulator(stub, "accesses_by_actor")?;
    answer(stub, "accesses_by_actor", |stub| {
        let fhir = query.fhir()?;
        page_of(stub, AUDIT_BY_ACTOR, &[&query.subject], &query, |s, id, _| event_item(s, id, fhir))
    })
}

pub fn accesses_by_org(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Value> {
    regulator(stub, "accesses_by_org")?;
    answer(stub, "accesses_by_org", |stub| {
        let fhir = query.fhir()?;
        page_of(stub, AUDIT_BY_ORG, &[&query.subject], &query, |s, id, _| event_item(s, id, fhir))
    })
}

pub fn accesses_to_record(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Value> {
    regulator(stub, "accesses_to_record")?;
    answer(stub, "accesses_to_record", |stub| {
        let fhir = query.fhir()?;
        page_of(stub, AUDIT_BY_RECORD, &[&query.subject], &query, |s, id, _| event_item(s, id, fhir))
    })
}

/// Break-glass accesses in the time range, each with `overdue` = not reviewed by its
/// deadline (as of this query's transaction time).
pub fn break_glass(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Value> {
    regulator(stub, "break_glass")?;
    answer(stub, "break_glass", |stub| {
        let fhir = query.fhir()?;
        let time = now(stub);
        page_of(stub, BREAK_GLASS, &[], &query, |s, id, _| {
            let event = noted_event(s, id)?;
            let overdue = event.reviewed.is_none() && event.review_due.is_some_and(|due| time > due);
            if fhir {
                let mut value = audit_event_fhir(&event);
                if let Some(extensions) = value["extension"].as_array_mut() {
                    extensions.push(
                        json!({"url": "urn:medfabric:break-glass-review-overdue", "valueBoolean": overdue}),
                    );
                }
                return Ok(value);
            }
            let mut value = to_value(&event)?;
            value["overdue"] = json!(overdue);
            Ok(value)
        })
    })
}

/// Every version of every consent of the patient, oldest first per consent.
pub fn consent_history(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Page> {
    regulator(stub, "consent_history")?;
    let fhir = query.fhir()?;
    let unbounded = Query { from: None, to: None, ..query.clone() };
    page_of(stub, CONSENT_VERSION, &[&query.subject], &unbounded, |_, value, _| {
        let consent: Consent = serde_json::from_str(value)
            .map_err(|e| ContractError::new(format!("stored consent is corrupt: {e}")))?;
        Ok(if fhir { consent_fhir(&consent) } else { to_value(&consent)? })
    })
}

/// Fees held, settled or refunded for accesses to the patient's records.
pub fn payments_for_disclosures(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Page> {
    regulator(stub, "payments_for_disclosures")?;
    page_of(stub, ESCROW_BY_PATIENT, &[&query.subject], &query, |s, access_id, _| {
        let id = key(s, ESCROW, &[access_id])?;
        let escrow: Escrow =
            get_json(s, &id)?.ok_or_else(|| ContractError::new(format!("escrow {access_id} missing")))?;
        to_value(&escrow)
    })
}

/// The commitment in force for a record at a time: the last version written at or
/// before it.
pub fn commitment_at(
    stub: &mut dyn ChaincodeStub,
    (record_id, time): (String, u64),
) -> Outcome<CommitmentAt> {
    regulator(stub, "commitment_at")?;
    let mut found: Option<RecordVersion> = None;
    for entry in stub.get_state_by_partial_composite_key(RECORD_VERSION, &[&record_id])? {
        let version: RecordVersion = serde_json::from_slice(&entry.value)
            .map_err(|e| ContractError::new(format!("stored version is corrupt: {e}")))?;
        if version.time <= time {
            found = Some(version);
        }
    }
    let version =
        found.ok_or_else(|| ContractError::new(format!("record {record_id} had no version at {time}")))?;
    Ok(CommitmentAt { record_id, time, version })
}

/// Crypto-shred events.
pub fn erasures(stub: &mut dyn ChaincodeStub, (query,): (Query,)) -> Outcome<Value> {
    regulator(stub, "erasures")?;
    answer(stub, "erasures", |stub| {
        let unbounded = Query { from: None, to: None, ..query.clone() };
        page_of(stub, ERASURE, &[], &unbounded, |stub, value, _| {
            let mut erasure: crate::model::Erasure = serde_json::from_str(value)
                .map_err(|e| ContractError::new(format!("stored erasure is corrupt: {e}")))?;
            // The reason where this peer holds the custodian's audit collection, and only
            // for an answer sealed to the caller.
            let custodian = erasure.patient_id.split('/').next().unwrap_or_default().to_owned();
            let note = crate::records::erasure_reason_key(stub, &erasure.record_id)?;
            let sealed = matches!(crate::records::response_key(stub), Ok(Some(_)));
            erasure.reason = stub
                .get_private_data(&crate::model::audit_collection(&custodian), &note)
                .ok()
                .flatten()
                .filter(|_| sealed)
                .and_then(|b| crate::access::unsalted_text(&b));
            serde_json::to_value(&erasure)
                .map_err(|e| ContractError::new(format!("encoding an erasure: {e}")))
        })
    })
}

// ---- FHIR ------------------------------------------------------------------------------

/// RFC 3339 UTC time of unix seconds (the epoch for a time past year 9999).
pub fn rfc3339(seconds: u64) -> String {
    let t = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn coding(system: &str, code: &str) -> Value {
    json!({"system": system, "code": code})
}

/// A FHIR resource id (`[A-Za-z0-9.-]{1,64}`) for one of our ids: other characters
/// become `-`; a longer id is cut to 54 characters plus its length.
pub fn fhir_id(id: &str) -> String {
    let mapped: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
    if mapped.len() <= 64 { mapped } else { format!("{}-{}", &mapped[..54], mapped.len()) }
}

/// The code system of a security label: confidentiality codes, or sensitivity (ActCode).
fn label_coding(label: &str) -> Value {
    if CONFIDENTIALITY.contains(&label) || label == "V" {
        coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", label)
    } else {
        coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", label)
    }
}

/// Sets `name` only when `items` is not empty (FHIR JSON has no empty arrays).
fn set_list(target: &mut Value, name: &str, items: Vec<Value>) {
    if !items.is_empty() {
        target[name] = Value::Array(items);
    }
}

const PURPOSE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// An access event as a FHIR R4 AuditEvent (IHE BALP PrivacyDisclosure): the policy of
/// the agent is the authorizing consent version.
pub fn audit_event_fhir(event: &AuditEvent) -> Value {
    let mut agent = json!({
        "who": {"identifier": {"value": event.actor}},
        "requestor": true,
        "role": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/extra-security-role-type", "datacollector")], "text": event.role}],
        "purposeOfUse": [{"coding": [coding(PURPOSE_SYSTEM, &event.purpose)]}],
    });
    if let Some(consent) = &event.consent {
        let (id, version) = consent.rsplit_once('@').unwrap_or((consent, "1"));
        agent["policy"] = json!([format!("Consent/{}/_history/{version}", fhir_id(id))]);
    }
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": fhir_id(&event.event_id),
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"},
        "subtype": [{"system": "urn:iso:std:iso:21089", "code": "disclose"}],
        "action": "R",
        "recorded": rfc3339(event.time),
        "outcome": "0",
        "purposeOfEvent": [{"coding": [coding(PURPOSE_SYSTEM, &event.purpose)]}],
        "agent": [agent],
        "source": {"observer": {"display": "medfabric"}, "site": event.org},
        "entity": [
            {"what": {"reference": format!("Patient/{}", fhir_id(&event.patient_id)), "identifier": {"value": event.patient_id}}, "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1")},
            {"what": {"identifier": {"value": event.record_id}}, "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2"), "description": format!("{} ({})", event.resource_type, event.data_class)},
        ],
    });
    if event.break_glass {
        resource["extension"] = json!([{
            "url": "urn:medfabric:break-glass",
            "valueString": event.justification.clone().unwrap_or_default(),
        }]);
    }
    if event.custodian_sealed == Some(false) {
        let unsealed = json!({"url": "urn:medfabric:custodian-sealed", "valueBoolean": false});
        match resource["extension"].as_array_mut() {
            Some(extensions) => extensions.insert(0, unsealed),
            None => resource["extension"] = json!([unsealed]),
        }
    }
    resource
}

fn provision_fhir(
    decision: Decision,
    rule: &crate::consent::Rule,
    actors: &[Grantee],
    nested: &[Provision],
) -> Value {
    let mut provision =
        json!({"type": match decision { Decision::Permit => "permit", Decision::Deny => "deny" }});
    let recipient = coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "IRCP");
    set_list(
        &mut provision,
        "actor",
        actors
            .iter()
            .map(|g| json!({"role": {"coding": [recipient.clone()]}, "reference": {"identifier": {"value": g.index()}}}))
            .collect(),
    );
    set_list(
        &mut provision,
        "action",
        rule.actions
            .iter()
            .map(|a| json!({"coding": [coding("http://terminology.hl7.org/CodeSystem/consentaction", a)]}))
            .collect(),
    );
    set_list(&mut provision, "purpose", rule.purposes.iter().map(|p| coding(PURPOSE_SYSTEM, p)).collect());
    set_list(
        &mut provision,
        "class",
        rule.classes.iter().map(|c| coding("urn:medfabric:data-class", c)).collect(),
    );
    set_list(&mut provision, "securityLabel", rule.labels.iter().map(|l| label_coding(l)).collect());
    if let Some(period) = rule.period {
        let mut p = json!({});
        if let Some(start) = period.start {
            p["start"] = json!(rfc3339(start));
        }
        if let Some(end) = period.end {
            p["end"] = json!(rfc3339(end));
        }
        provision["period"] = p;
    }
    set_list(
        &mut provision,
        "provision",
        nested.iter().map(|n| provision_fhir(n.decision, &n.rule, &n.actors, &n.provisions)).collect(),
    );
    provision
}

/// A consent version as a FHIR R4 Consent resource.
pub fn consent_fhir(consent: &Consent) -> Value {
    let terms = &consent.terms;
    json!({
        "resourceType": "Consent",
        "id": fhir_id(&consent.consent_id),
        "identifier": [{"value": consent.consent_id}],
        "meta": {"versionId": consent.version.to_string()},
        "status": match consent.status { Status::Active => "active", Status::Revoked => "inactive" },
        "scope": {"coding": [coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")]},
        "category": [{"coding": [coding("http://loinc.org", "59284-0")]}],
        "patient": {"reference": format!("Patient/{}", fhir_id(&consent.patient_id)), "identifier": {"value": consent.patient_id}},
        "dateTime": rfc3339(consent.time),
        "performer": [{"identifier": {"value": consent.recorded_by}}],
        "policyRule": {"coding": [coding("urn:medfabric:consent-template", terms.template.as_deref().unwrap_or("custom"))]},
        "provision": provision_fhir(terms.decision, &terms.rule, std::slice::from_ref(&terms.grantee), &terms.provisions),
    })
}
