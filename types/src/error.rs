use thiserror::Error;

/// Why a received protobuf message could not become a domain value.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConvertError {
    #[error("{0} is missing")]
    Missing(&'static str),
    #[error("{0} is invalid: {1}")]
    Invalid(&'static str, String),
    #[error("{0} does not decode: {1}")]
    Decode(&'static str, String),
}

impl ConvertError {
    pub(crate) fn decode(what: &'static str, e: prost::DecodeError) -> Self {
        ConvertError::Decode(what, e.to_string())
    }
}

/// Decodes `bytes` as message `M`, naming `what` in the error.
pub(crate) fn decode<M: prost::Message + Default>(
    what: &'static str,
    bytes: &[u8],
) -> Result<M, ConvertError> {
    M::decode(bytes).map_err(|e| ConvertError::decode(what, e))
}
