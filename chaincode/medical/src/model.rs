//! What the medical chaincode stores, and under which keys.
//!
//! Public state holds no PHI: patients are pseudonymous ids, records are metadata plus a
//! keyed commitment of the ciphertext, consents are rules. Ciphertext and wrapped data
//! keys live in the custodian organization's implicit private data collection.

use bytes::Bytes;
use medfabric_shim::{ChaincodeStub, ContractError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub type Outcome<T> = Result<T, ContractError>;

/// A chaincode error with `message`.
pub fn fail<T>(message: impl Into<String>) -> Outcome<T> {
    Err(ContractError::new(message))
}

// ---- keys ------------------------------------------------------------------------------

pub const PATIENT: &str = "patient";
pub const RECORD: &str = "record";
pub const RECORD_VERSION: &str = "recver";
pub const CONSENT: &str = "consent";
pub const CONSENT_VERSION: &str = "consentver";
pub const CONSENT_BY_GRANTEE: &str = "consentgrantee";
pub const GRANT: &str = "grant";
pub const AUDIT: &str = "audit";
pub const AUDIT_BY_PATIENT: &str = "auditpatient";
pub const AUDIT_BY_ACTOR: &str = "auditactor";
pub const AUDIT_BY_ORG: &str = "auditorg";
pub const AUDIT_BY_RECORD: &str = "auditrecord";
pub const BREAK_GLASS: &str = "breakglass";
pub const ACCOUNT: &str = "account";
pub const CREDIT: &str = "credit";
pub const ESCROW: &str = "escrow";
pub const ESCROW_BY_PATIENT: &str = "escrowpatient";
pub const CLAIM: &str = "claim";
pub const ERASURE: &str = "erasure";

/// Private keys (in the custodian's implicit collection).
pub const CIPHERTEXT: &str = "ct";
pub const WRAPPED_KEY: &str = "wk";
/// The custodian's seal of an access: written only by transactions its peers endorsed.
pub const ACCESS_SEAL: &str = "accessseal";
/// The custodian's seal of an audit event (never removed).
pub const AUDIT_SEAL: &str = "auditseal";
/// The custodian's seals of patient registrations and consent versions.
pub const PATIENT_SEAL: &str = "patientseal";
pub const CONSENT_SEAL: &str = "consentseal";

/// Free text people typed about an access (justification, review note), in the
/// custodian's audit collection, keyed `phinote/<event id>/<what>`.
pub const PHI_NOTE: &str = "phinote";

/// A record's sensitive security labels (HIV, PSY, …), in the custodian's audit collection
/// (for regulators) and its implicit collection (for releases), keyed `seclabels/<record id>`: written for every record (an empty list too, so that the
/// key's public hash tells nothing), with the writer's random salt in the value so that its
/// public hash cannot be matched against guessed label sets.
pub const SENSITIVE_LABELS: &str = "seclabels";

/// The collection holding a custodian's audit free text: members are the custodian
/// and the consortium's regulator organizations (defined with the chaincode, e.g.
/// `audit_HospitalMSP` with policy `OR('HospitalMSP.member', 'RegulatorMSP.member')`).
pub fn audit_collection(custodian: &str) -> String {
    format!("audit_{custodian}")
}

/// What the custodian seals in its implicit collection. Writes there need the
/// custodian's endorsement (`/Channel/Application/<Org>/Endorsement`), so state other
/// organizations write together (running modified chaincode) carries no seal, and
/// readers honour only sealed state. The seal holds the state's fixed fields; its hash,
/// which every peer holds, is what readers check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// A patient's registration (id, custodian, key).
    Patient,
    /// A consent version.
    Consent,
    /// A grant: `read_record` serves it only while sealed; withdrawn with a refund.
    Grant,
    /// An audit event: sealed for ever; regulators see which events are.
    Event,
}

fn seal_key(stub: &dyn ChaincodeStub, kind: Seal, id: &[&str]) -> Outcome<String> {
    let object = match kind {
        Seal::Patient => PATIENT_SEAL,
        Seal::Consent => CONSENT_SEAL,
        Seal::Grant => ACCESS_SEAL,
        Seal::Event => AUDIT_SEAL,
    };
    key(stub, object, id)
}

/// Writes the custodian's seal of `value` under `id`.
pub fn seal(
    stub: &mut dyn ChaincodeStub,
    kind: Seal,
    custodian: &str,
    id: &[&str],
    value: Bytes,
) -> Outcome<()> {
    let k = seal_key(stub, kind, id)?;
    Ok(stub.put_private_data(&custodian_collection(custodian), &k, value)?)
}

/// Removes a seal (with the custodian's endorsement).
pub fn unseal(stub: &mut dyn ChaincodeStub, kind: Seal, custodian: &str, id: &[&str]) -> Outcome<()> {
    let k = seal_key(stub, kind, id)?;
    Ok(stub.del_private_data(&custodian_collection(custodian), &k)?)
}

/// Did the custodian seal `value` under `id`?
pub fn sealed_by_custodian(
    stub: &mut dyn ChaincodeStub,
    kind: Seal,
    custodian: &str,
    id: &[&str],
    value: &[u8],
) -> Outcome<bool> {
    let k = seal_key(stub, kind, id)?;
    let held = stub.get_private_data_hash(&custodian_collection(custodian), &k)?;
    Ok(held.is_some_and(|h| h.as_ref() == medfabric_shim::tx::hash(value).as_slice()))
}

/// Gives `key` the key-level policy "a peer of `custodian`": from now on no transaction
/// changes or deletes it without the custodian's endorsement, whatever the chaincode's
/// policy lets other organizations do together.
pub fn custodian_only(stub: &mut dyn ChaincodeStub, custodian: &str, key: &str) -> Outcome<()> {
    let policy = medfabric_shim::statebased::peers_of_every(&[custodian])?;
    Ok(stub.set_state_validation_parameter(key, policy)?)
}

/// The implicit private data collection of an organization.
pub fn custodian_collection(msp_id: &str) -> String {
    format!("_implicit_org_{msp_id}")
}

/// A fixed-width decimal, so keys sort by number.
pub fn padded(n: u64) -> String {
    format!("{n:020}")
}

pub fn key(stub: &dyn ChaincodeStub, object: &str, attributes: &[&str]) -> Outcome<String> {
    Ok(stub.create_composite_key(object, attributes)?)
}

pub fn get_json<T: DeserializeOwned>(stub: &mut dyn ChaincodeStub, key: &str) -> Outcome<Option<T>> {
    match stub.get_state(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ContractError::new(format!("stored value of {key:?} is corrupt: {e}"))),
    }
}

pub fn put_json<T: Serialize>(stub: &mut dyn ChaincodeStub, key: &str, value: &T) -> Outcome<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| ContractError::new(format!("encoding: {e}")))?;
    Ok(stub.put_state(key, Bytes::from(bytes))?)
}

/// The transaction time (the client's timestamp, identical on every endorser), seconds.
pub fn now(stub: &dyn ChaincodeStub) -> u64 {
    stub.tx_timestamp().map_or(0, |t| u64::try_from(t.seconds).unwrap_or(0))
}

/// Checks an identifier: 1-128 characters of `[A-Za-z0-9._:/@-]`.
pub fn check_id(what: &str, id: &str) -> Outcome<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@-".contains(c));
    if ok {
        Ok(())
    } else {
        fail(format!("{what} {id:?} is not a valid identifier ([A-Za-z0-9._:/@-], 1-128)"))
    }
}

/// Bytes from hex text (either case).
pub fn from_hex(what: &str, text: &str) -> Outcome<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return fail(format!("{what} is not hex"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).or_else(|_| fail(format!("{what} is not hex"))))
        .collect()
}

/// Verifies a patient's signature (hex DER, ECDSA P-256 over SHA-256) over
/// `statement` with their registered key (hex SEC1).
pub fn check_patient_signature(public_key: &str, statement: &str, signature: &str) -> Outcome<()> {
    let key = from_hex("public key", public_key)?;
    let signature = from_hex("signature", signature)?;
    medfabric_shim::verify_document_signature(&key, statement.as_bytes(), &signature)
        .or_else(|e| fail(format!("access denied: the patient's signature does not verify ({e})")))
}

/// Checks a 32-byte value written as 64 hex digits.
pub fn check_hex32(what: &str, value: &str) -> Outcome<()> {
    if value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        fail(format!("{what} must be 32 bytes as 64 hex digits"))
    }
}

// ---- patients and records --------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Patient {
    pub patient_id: String,
    /// The organization holding the patient's records (its private collection).
    pub custodian: String,
    /// The patient's P-256 public key (SEC1, hex) for wrapping record keys.
    pub public_key: String,
    pub registered_by: String,
    pub registered_at: u64,
}

/// Data classes a record may have. They are public (consent matches on them when an access
/// is requested), so none names a condition: a condition is a sensitive label, which stays
/// with the custodian.
pub const DATA_CLASSES: [&str; 14] = [
    "lab",
    "imaging",
    "vitals",
    "medication",
    "immunization",
    "allergy",
    "procedure",
    "encounter",
    "note",
    "document",
    "problem",
    "genomic",
    "device",
    "administrative",
];

/// FHIR resource types a record may have (public too: kinds of record, not conditions).
pub const RESOURCE_TYPES: [&str; 20] = [
    "Observation",
    "DiagnosticReport",
    "Condition",
    "Procedure",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "Immunization",
    "AllergyIntolerance",
    "Encounter",
    "DocumentReference",
    "ImagingStudy",
    "Specimen",
    "CarePlan",
    "CareTeam",
    "FamilyMemberHistory",
    "QuestionnaireResponse",
    "Composition",
    "Device",
    "Claim",
];

/// Security labels a record may carry (HL7 v3 confidentiality and sensitivity codes).
pub const CONFIDENTIALITY: [&str; 5] = ["U", "L", "M", "N", "R"];
pub const SENSITIVE: [&str; 9] = ["V", "ETH", "HIV", "PSY", "SUD", "SDV", "SEX", "STD", "GDIS"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordMeta {
    pub record_id: String,
    pub patient_id: String,
    pub custodian: String,
    /// FHIR resource type (Observation, Condition, DiagnosticReport…).
    pub resource_type: String,
    /// Data class used by consent (one of [`DATA_CLASSES`]).
    pub data_class: String,
    pub security_labels: Vec<String>,
    pub author: String,
    pub version: u32,
    pub created_at: u64,
    pub updated_at: u64,
    /// Keyed commitment (HMAC-SHA256 under the record key) of the latest ciphertext.
    pub commitment: String,
    /// Crypto-shredded: ciphertext and wrapped keys purged.
    #[serde(default)]
    pub erased: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordVersion {
    pub record_id: String,
    pub version: u32,
    pub commitment: String,
    pub author: String,
    pub time: u64,
    pub tx_id: String,
    /// Who has a wrapped key of this version (actor ids, `org:MSPID`, `patient`): the
    /// private keys to shred on erasure, known to every endorser.
    #[serde(default)]
    pub readers: Vec<String>,
}

// ---- access ----------------------------------------------------------------------------

/// A committed permission to read a record's ciphertext and the caller's wrapped key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub record_id: String,
    pub actor: String,
    pub access_id: String,
    pub purpose: String,
    /// `consentId@version`, or `break-glass`.
    pub authorization: String,
    pub time: u64,
    /// A grant whose consent carries a fee serves once the fee is settled.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// Largest single deposit (minor units): keeps sums of balances far from overflow.
pub const MAX_DEPOSIT: u64 = 1_000_000_000_000;

/// An access event: FHIR AuditEvent / IHE BALP PrivacyDisclosure, kept on chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub event_id: String,
    pub tx_id: String,
    pub time: u64,
    pub actor: String,
    pub org: String,
    pub role: String,
    pub record_id: String,
    pub patient_id: String,
    pub resource_type: String,
    pub data_class: String,
    pub purpose: String,
    /// `consentId@version` (None for break-glass).
    pub consent: Option<String>,
    pub break_glass: bool,
    /// The break-glass justification: never in public state or blocks (it travels in
    /// the transient map and is kept in the custodian's audit collection,
    /// [`audit_collection`]); filled in only for readers holding that collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Break-glass: the justification must be reviewed by then.
    pub review_due: Option<u64>,
    pub reviewed: Option<Review>,
    /// Whether the custodian sealed this event (its peers endorsed the access): filled
    /// in by regulator queries, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custodian_sealed: Option<bool>,
    /// The escrowed fee for this access, if the consent carries one.
    pub fee: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Review {
    pub reviewer: String,
    pub time: u64,
    /// The reviewer's note: like the justification, kept only in the audit collection.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// How long a break-glass justification may wait for review.
pub const BREAK_GLASS_REVIEW_SECONDS: u64 = 72 * 3600;

// ---- payments --------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Account {
    pub owner: String,
    /// Balance in minor units, excluding credits not yet folded in.
    pub balance: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum EscrowState {
    Held,
    Settled,
    Refunded,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Escrow {
    pub access_id: String,
    pub payer: String,
    pub patient_id: String,
    pub custodian: String,
    pub amount: u64,
    /// Share of the amount paid to the custodian, in basis points.
    pub custodian_share_bps: u32,
    pub consent: String,
    pub state: EscrowState,
    pub created_at: u64,
    pub closed_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ClaimState {
    Submitted,
    Approved,
    Denied,
    Paid,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    pub claim_id: String,
    pub encounter_record: String,
    pub patient_id: String,
    pub provider: String,
    pub provider_org: String,
    pub payer_org: String,
    pub amount: u64,
    pub approved_amount: Option<u64>,
    pub state: ClaimState,
    pub submitted_at: u64,
    pub adjudicated_by: Option<String>,
    pub paid_at: Option<u64>,
}

/// The account of an organization (claims are paid to and from org accounts).
pub fn org_account(msp_id: &str) -> String {
    format!("org:{msp_id}")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Erasure {
    pub record_id: String,
    pub patient_id: String,
    pub requested_by: String,
    /// Free text: never stored here (it is in the custodian's audit collection); filled in
    /// for readers whose peer holds that collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub time: u64,
    pub tx_id: String,
    pub versions: u32,
}
