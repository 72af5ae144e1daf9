//! The medical chaincode's contract with its clients, in one place for both sides: the
//! chaincode (`medfabric-medical`) and the SDK (`medfabric_sdk::medical`) use these types
//! and names, so the wire format cannot drift between them.
//!
//! - [`io`]: function inputs and outputs; [`model`]: what is stored and answered.
//! - [`vocab`]: the public vocabularies (data classes, resource types, labels).
//! - [`names`]: transient keys, associated-data prefixes, key holders, decorations.
//! - [`sealed`]: answers sealed to a caller's one-time response key.
//! - [`keywrap`]: record encryption (AES-256-GCM payloads, keyed commitments, HPKE wraps).

pub mod io;
pub mod keywrap;
pub mod model;
pub mod names;
pub mod sealed;
pub mod vocab;
