//! What the medical chaincode stores and answers with: patients, record metadata and
//! versions, grants, audit events, accounts, escrows, claims, erasures. Public state holds
//! no PHI: patients are pseudonymous ids, records are metadata plus a keyed commitment.

use serde::{Deserialize, Serialize};

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
