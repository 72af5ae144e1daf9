use thiserror::Error;

pub type ShimResult<T> = Result<T, ShimError>;

/// Why a stub call failed. Chaincode usually turns it into an error response.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ShimError {
    /// The call's arguments are not acceptable (empty key, bad composite key, ...).
    #[error("{0}")]
    Invalid(String),
    /// The transaction's creator may not do this (member-only collections).
    #[error("{0}")]
    Denied(String),
    /// The ledger could not answer.
    #[error("ledger error: {0}")]
    Ledger(String),
    /// The creator could not be read as an X.509 identity.
    #[error("client identity: {0}")]
    Identity(String),
}
