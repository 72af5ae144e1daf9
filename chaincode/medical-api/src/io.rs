//! Function inputs and outputs (JSON) that are not stored models.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::RecordVersion;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordKeyInfo {
    pub msp_id: String,
    /// Hex of the uncompressed P-256 public key data keys are wrapped to.
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatientInput {
    /// `<custodian MSP id>/<enrollment id>`: the registering patient's own actor id.
    pub patient_id: String,
    pub custodian: String,
    /// The patient's P-256 key (hex SEC1, uncompressed): that of their certificate.
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordInput {
    pub record_id: String,
    pub patient_id: String,
    pub resource_type: String,
    pub data_class: String,
    #[serde(default)]
    pub security_labels: Vec<String>,
    /// HMAC-SHA256 of the ciphertext under the record key (hex).
    pub commitment: String,
}

/// What the custodian's audit collection holds about a record's sensitive labels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SensitiveLabels {
    pub labels: Vec<String>,
    /// Hex of 32 random bytes from the writer.
    pub salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionInput {
    pub record_id: String,
    pub commitment: String,
}

/// What a reader needs to decrypt one version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ciphertext {
    pub record_id: String,
    pub patient_id: String,
    pub version: u32,
    pub commitment: String,
    /// Hex of nonce ‖ AES-256-GCM ciphertext.
    pub ciphertext: String,
    /// Hex of the HPKE-wrapped key for this reader.
    pub wrapped_key: String,
    /// Whose key it is wrapped to: `patient` (the registered key), or the caller's actor id
    /// (the key of the caller's certificate, wrapped by the custodian's peer for this read).
    pub key_holder: String,
}

/// A `read_record` answer: the [`Ciphertext`] as JSON, sealed with AES-256-GCM to the
/// reader's one-time `response_key` (from the transient map, which never lands in a
/// block). Read is an evaluate; should someone submit it instead, the block holds only
/// this, which nobody can open once the reader's key is gone, so crypto-shredding the
/// record still works.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealedRead {
    pub record_id: String,
    pub version: u32,
    /// Hex of the 12-byte nonce (random).
    pub nonce: String,
    /// Hex of the AES-256-GCM ciphertext and tag; associated data
    /// `medfabric-read-v1 \0 record_id`.
    pub sealed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EraseInput {
    pub record_id: String,
    /// Must be empty: the reason is free text, sent in the transient map under
    /// [`TRANSIENT_REASON`] (arguments land in blocks).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessInput {
    pub record_id: String,
    /// Purpose of use (TREAT, ETREAT, HPAYMT, HOPERAT, HRESCH, PUBHLTH…).
    pub purpose: String,
    /// Refused: arguments land in blocks. A break-glass justification travels in the
    /// transient map under [`TRANSIENT_JUSTIFICATION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// Request under this consent of the patient (else: the first that permits). A consent
    /// naming sensitive labels can authorise only this way: the labels are not public, so
    /// here the record is taken to carry those the consent names, and the custodian's peer
    /// checks them against the record's real ones before it releases a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_id: Option<String>,
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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Balance {
    pub owner: String,
    pub balance: u64,
}

/// A credit made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Deposited {
    pub account: String,
    pub amount: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimInput {
    pub claim_id: String,
    pub encounter_record: String,
    pub payer_org: String,
    pub amount: u64,
}

/// Most items per page.
pub const MAX_PAGE: u32 = 500;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<Value>,
    pub count: usize,
    /// Pass back for the next page; empty at the end.
    pub bookmark: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Query {
    /// Patient, actor (`MSPID/id`), organization or record, depending on the query.
    #[serde(default)]
    pub subject: String,
    /// Inclusive time range, unix seconds.
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub to: Option<u64>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub bookmark: String,
    /// `json` (default) or `fhir`.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommitmentAt {
    pub record_id: String,
    pub time: u64,
    pub version: RecordVersion,
}
