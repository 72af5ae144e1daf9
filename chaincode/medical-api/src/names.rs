//! Names both sides agree on: transient-map keys, associated-data prefixes of sealed
//! answers, key-holder names, and the decorations the peer adds for the chaincode.

/// Transient-map entries of `create_record` and `append_version`.
pub const TRANSIENT_CIPHERTEXT: &str = "ciphertext";

/// JSON object: reader (actor id, `org:MSPID` or `patient`) → wrapped key (hex).
pub const TRANSIENT_WRAPPED_KEYS: &str = "wrapped_keys";

/// Transient entry of `create_record`: JSON `{"labels": [sensitive labels], "salt": hex of
/// 32 random bytes}`. Sensitive labels identify a condition: they never enter arguments,
/// public state or blocks, only the custodian's audit collection.
pub const TRANSIENT_SENSITIVE_LABELS: &str = "sensitive_labels";

/// Transient key of `read_record`: the 32-byte AES-256 key its answer is sealed to.
pub const TRANSIENT_RESPONSE_KEY: &str = "response_key";

/// Associated-data prefix of a sealed `read_record` answer (then the record id).
pub const READ_AAD: &str = "medfabric-read-v1";

/// The two holders of a stored wrap: the patient, and the custodian's record key.
pub const PATIENT_HOLDER: &str = "patient";

/// The peer's decoration with every organization's record public key (JSON MSP → hex).
pub const RECORD_KEYS_DECORATION: &str = "medfabric.recordkeys";

/// The peer's decoration with its own organization's record key (JSON `msp_id`,
/// `private_key` hex); only the organization's peers have it.
pub const ORG_KEY_DECORATION: &str = "medfabric.orgkey";

/// The name of the custodian's record-key wrap.
pub fn org_holder(custodian: &str) -> String {
    format!("org:{custodian}")
}

/// Transient entry of `erase_record`: why (free text), kept in the custodian's audit
/// collection.
pub const TRANSIENT_REASON: &str = "reason";

/// Transient key of a break-glass justification (free text, kept off the chain).
pub const TRANSIENT_JUSTIFICATION: &str = "justification";

/// Transient key of a break-glass review note.
pub const TRANSIENT_NOTE: &str = "note";

/// Transient entry that comes with any free text: 32 random bytes (hex) from the writer.
pub const TRANSIENT_SALT: &str = "salt";

/// The bytes a patient signs for a consent document.
pub fn consent_statement(document: &str) -> String {
    format!("medfabric-consent-v1\0{document}")
}

/// Associated-data prefix of a sealed regulator answer (then the function name).
pub const AUDIT_AAD: &str = "medfabric-audit-v1";

/// The decoration holding the consortium's role grants (JSON: role → MSP ids).
pub const ROLES_DECORATION: &str = "medfabric.roles";
