//! What the medical chaincode stores, and under which keys.
//!
//! Public state holds no PHI: patients are pseudonymous ids, records are metadata plus a
//! keyed commitment of the ciphertext, consents are rules. Ciphertext and wrapped data
//! keys live in the custodian organization's implicit private data collection.

use bytes::Bytes;
use medfabric_shim::{ChaincodeStub, ContractError};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use medfabric_medical_api::model::*;
pub use medfabric_medical_api::vocab::*;

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
    hex::decode(text).or_else(|_| fail(format!("{what} is not hex")))
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

// ---- access ----------------------------------------------------------------------------

/// Largest single deposit (minor units): keeps sums of balances far from overflow.
pub const MAX_DEPOSIT: u64 = 1_000_000_000_000;

/// How long a break-glass justification may wait for review.
pub const BREAK_GLASS_REVIEW_SECONDS: u64 = 72 * 3600;

// ---- payments --------------------------------------------------------------------------
