//! Membership service providers (MSPs): who may sign what on a channel.
//!
//! An [`Msp`] is one organization's trust anchor (root and intermediate CAs, CRLs,
//! NodeOU roles), loaded from Fabric's folder layout ([`MspFolder`]) or from a channel
//! config's `FabricMSPConfig`. An [`MspManager`] holds a channel's MSPs and turns
//! `SerializedIdentity` bytes into validated [`Identity`] values, caching each result so
//! that a certificate is parsed and chain-checked once per process.
//!
//! Signing and verification are ECDSA P-256 over SHA-256 with DER, low-S signatures
//! ([`Signer`], [`verify_signature`]); the arithmetic runs on `ring`.
//!
//! Policies: [`parse_policy`] reads Fabric's policy language into a
//! `SignaturePolicyEnvelope`; [`SignaturePolicy`] evaluates one exactly as Fabric does;
//! [`PolicyTree`] resolves `ImplicitMeta` policies over a channel config tree.

mod cert;
pub mod der;
mod error;
mod folder;
mod identity;
mod manager;
mod msp;
mod policy;
mod signature;

pub use cert::{ATTRIBUTE_OID, Certificate, pem_to_der_all};
pub use error::{MspError, PolicyError, SignatureError};
pub use folder::{MspFolder, NodeOuConfig, node_ou_msp_config};
pub use identity::{Identity, NodeRole};
pub use manager::MspManager;
pub use msp::{CrlEntry, Msp, crl_entries, crl_signed_by};
pub use policy::{
    PolicyTree, SignatureCheck, SignaturePolicy, SignedData, check_signature_set, counted_identities,
    parse_policy, policy_to_string, valid_identities,
};
pub use signature::{Signer, SigningIdentity, verify_document_signature, verify_signature};
