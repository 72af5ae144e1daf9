//! Why a private-data push or pull was refused, and the one place each reason becomes a
//! gRPC status.

use super::PushQuota;

/// A refused `PrivateData` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PvtError {
    /// The message or its payload does not decode.
    BadRequest(String),
    /// This peer has not joined the channel.
    UnknownChannel(String),
    /// The sender is not a peer of the channel that signed this message recently over
    /// this connection, or may not hold the collections.
    Denied(String),
    /// A push for a transaction that is already committed.
    AlreadyCommitted(String),
    /// The sender's pushes not yet committed are at its quota.
    QuotaExceeded { pushes: usize, bytes: u64, quota: PushQuota },
    /// The ledger could not be read or written.
    Ledger(String),
}

impl PvtError {
    pub(crate) fn ledger(e: impl std::fmt::Display) -> Self {
        PvtError::Ledger(e.to_string())
    }
}

impl From<PvtError> for tonic::Status {
    fn from(e: PvtError) -> Self {
        use tonic::Status;
        match e {
            PvtError::BadRequest(m) => Status::invalid_argument(m),
            PvtError::UnknownChannel(c) => Status::not_found(format!("channel {c} not found")),
            PvtError::Denied(m) => Status::permission_denied(m),
            PvtError::AlreadyCommitted(tx) => {
                Status::failed_precondition(format!("transaction {tx} is already committed"))
            }
            PvtError::QuotaExceeded { pushes, bytes, quota } => Status::resource_exhausted(format!(
                "private data push quota of this sender exceeded: {pushes} pushes ({bytes} bytes) not yet committed, limit {} pushes / {} bytes",
                quota.entries, quota.bytes
            )),
            PvtError::Ledger(m) => Status::unavailable(format!("ledger: {m}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_code() {
        let quota = PushQuota { entries: 2, bytes: 10 };
        let cases = [
            (PvtError::BadRequest("x".into()), tonic::Code::InvalidArgument),
            (PvtError::UnknownChannel("c".into()), tonic::Code::NotFound),
            (PvtError::Denied("no".into()), tonic::Code::PermissionDenied),
            (PvtError::AlreadyCommitted("t".into()), tonic::Code::FailedPrecondition),
            (PvtError::QuotaExceeded { pushes: 2, bytes: 9, quota }, tonic::Code::ResourceExhausted),
            (PvtError::ledger("io"), tonic::Code::Unavailable),
        ];
        for (error, code) in cases {
            let status = tonic::Status::from(error.clone());
            assert_eq!(status.code(), code, "{error:?}");
            assert!(!status.message().is_empty());
        }
    }
}
