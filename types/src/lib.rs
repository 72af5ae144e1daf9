//! Domain types shared by medfabric's nodes and clients.
//!
//! Fabric's wire messages (from `medfabric-proto`) become validated domain values here:
//! [`Transaction`] (a parsed envelope), [`SignedProposal`] building and checking,
//! endorsement assembly ([`endorsement`]), and the channel configuration
//! ([`ChannelConfig`], [`ChannelResources`]). The hashing rules that make blocks
//! interoperate with Fabric live in [`block`]: the ASN.1 header hash, the flat data hash
//! and the metadata slots. [`verify`] checks blocks and whole ledgers offline, for
//! auditors.

pub mod block;
pub mod config;
pub mod configtx;
pub mod deliver;
pub mod endorsement;
mod error;
pub mod lifecycle;
pub mod mvcc;
pub mod proposal;
pub mod replay;
pub mod rwset;
pub mod transaction;
pub mod txid;
pub mod verify;

pub use config::{ChannelConfig, ChannelResources, ChannelSpec, OrgSpec};
pub use error::ConvertError;
pub use proposal::{ProposalBuilder, SignedProposal};
pub use transaction::{Transaction, TransactionBody};
pub use txid::{compute_tx_id, new_nonce};

/// The validation code name Fabric uses (`VALID`, `MVCC_READ_CONFLICT`, ...).
pub fn validation_code_name(code: u8) -> String {
    medfabric_proto::protos::TxValidationCode::try_from(i32::from(code))
        .map(|c| c.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("UNKNOWN_CODE_{code}"))
}
