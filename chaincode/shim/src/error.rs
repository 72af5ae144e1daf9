use thiserror::Error;

pub type ShimResult<T> = Result<T, ShimError>;

/// Why a stub call failed. Chaincode usually turns it into an error response.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ShimError {
    /// The call's arguments are not acceptable (empty key, bad composite key, ...).
    #[error("{0}")]
    Invalid(String),
    /// The call is not available in this release.
    #[error("{0} is not supported yet: private data collections are not available in this release")]
    NotSupported(&'static str),
    /// The ledger could not answer.
    #[error("ledger error: {0}")]
    Ledger(String),
    /// The creator could not be read as an X.509 identity.
    #[error("client identity: {0}")]
    Identity(String),
}
