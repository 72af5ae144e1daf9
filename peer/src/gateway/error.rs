//! Why a gateway call failed, and the one place each reason becomes the gRPC status (code,
//! message and `gateway.ErrorDetail`s) a Fabric 2.5 gateway answers with
//! (`docs/fabric-gateway.md`).

use medfabric_proto::gateway::ErrorDetail;
use medfabric_proto::gateway_status::status_with_details;

/// How one endorser failed to give a usable endorsement.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The endorser refused the proposal (a gRPC error from `ProcessProposal`).
    Refused(String),
    /// The endorser could not be reached.
    Unreachable(String),
    /// The chaincode answered with an error status.
    Chaincode(i32, String),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Refused(m) | Failure::Unreachable(m) => m.clone(),
            Failure::Chaincode(status, m) => format!("chaincode response {status}, {m}"),
        }
    }
}

/// A gateway call's failure.
#[derive(Debug, Clone)]
pub enum GatewayError {
    /// The request is malformed or incomplete.
    BadRequest(String),
    /// Evaluate on a channel this peer has not joined.
    UnknownChannel(String),
    /// No known peer can evaluate the chaincode on the channel.
    NoEvaluators { chaincode: String, channel: String },
    /// The endorser asked to evaluate failed.
    Evaluate(Failure, ErrorDetail),
    /// No set of known peers can satisfy the endorsement policy.
    NoPlan(String),
    /// One or more of the endorsers asked failed.
    Endorse(Vec<ErrorDetail>),
    /// The endorsements cannot be assembled into one transaction.
    Assemble(String),
    /// Submit on a channel this peer has not joined.
    NoOrderers(String),
    /// No orderer endpoints are configured.
    NoOrdererEndpoints,
    /// An orderer refused the transaction for good.
    OrdererRefused { status: String, info: String },
    /// No orderer took the transaction before the broadcast timeout.
    OrderersUnavailable(Vec<ErrorDetail>),
    /// The requester may not read the channel (or the channel is unknown).
    Denied(String),
    /// The ledger could not be read.
    Ledger(String),
    /// The peer is shutting down.
    Stopping,
    /// The transaction did not commit within the CommitStatus bound.
    NotCommitted { tx_id: String, waited_ms: u128 },
    /// The block stream ended (a ChaincodeEvents stream).
    StreamEnded(String),
    /// The gateway's concurrency limit is reached.
    Busy(usize),
}

impl From<GatewayError> for tonic::Status {
    fn from(e: GatewayError) -> Self {
        use tonic::Status;
        match e {
            GatewayError::BadRequest(m) => Status::invalid_argument(m),
            GatewayError::UnknownChannel(c) => Status::unavailable(format!(
                "failed to get config for channel [{c}]: could not get last config for channel {c}"
            )),
            GatewayError::NoEvaluators { chaincode, channel } => Status::failed_precondition(format!(
                "no peers available to evaluate chaincode {chaincode} in channel {channel}"
            )),
            GatewayError::Evaluate(failure, detail) => {
                let (code, message) = match &failure {
                    // A chaincode error has no endorsement but is still the answer.
                    Failure::Chaincode(..) => (
                        tonic::Code::Unknown,
                        format!("evaluate call to endorser returned error: {}", failure.message()),
                    ),
                    Failure::Refused(m) => (
                        tonic::Code::FailedPrecondition,
                        format!("evaluate call to endorser returned error: {m}"),
                    ),
                    Failure::Unreachable(m) => {
                        (tonic::Code::Unavailable, format!("failed to evaluate transaction: {m}"))
                    }
                };
                status_with_details(code, message, &[detail])
            }
            GatewayError::NoPlan(why) => Status::failed_precondition(format!(
                "no combination of peers can be derived which satisfy the endorsement policy: {why}"
            )),
            GatewayError::Endorse(details) => status_with_details(
                tonic::Code::Aborted,
                "failed to endorse transaction, see attached details for more info".into(),
                &details,
            ),
            GatewayError::Assemble(why) => Status::aborted(format!("failed to assemble transaction: {why}")),
            GatewayError::NoOrderers(c) => {
                Status::failed_precondition(format!("no orderers available for channel {c}"))
            }
            GatewayError::NoOrdererEndpoints => Status::unavailable("no orderer endpoints configured"),
            GatewayError::OrdererRefused { status, info } => Status::aborted(format!(
                "received unsuccessful response from orderer: status={status}, info={info}"
            )),
            GatewayError::OrderersUnavailable(details) => status_with_details(
                tonic::Code::Unavailable,
                "no orderers could successfully process transaction".into(),
                &details,
            ),
            GatewayError::Denied(m) => Status::permission_denied(m),
            GatewayError::Ledger(m) => Status::unavailable(format!("ledger: {m}")),
            GatewayError::Stopping => Status::unavailable("the peer is stopping"),
            GatewayError::NotCommitted { tx_id, waited_ms } => Status::deadline_exceeded(format!(
                "transaction {tx_id} was not committed within {waited_ms} ms"
            )),
            GatewayError::StreamEnded(info) => Status::unavailable(info),
            GatewayError::Busy(limit) => Status::resource_exhausted(format!(
                "gateway concurrency limit ({limit}) reached; retry later"
            )),
        }
    }
}

/// The Denied message for a channel this peer does not know (Fabric's wording).
pub(crate) fn no_policy_manager(channel: &str) -> GatewayError {
    GatewayError::Denied(format!("Failed to get policy manager for channel [{channel}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail() -> ErrorDetail {
        ErrorDetail { address: "peer0:7051".into(), msp_id: "Org1MSP".into(), message: "m".into() }
    }

    #[test]
    fn each_failure_has_the_code_fabric_answers_with() {
        let cases = [
            (GatewayError::BadRequest("x".into()), tonic::Code::InvalidArgument),
            (GatewayError::UnknownChannel("c".into()), tonic::Code::Unavailable),
            (
                GatewayError::NoEvaluators { chaincode: "cc".into(), channel: "c".into() },
                tonic::Code::FailedPrecondition,
            ),
            (GatewayError::Evaluate(Failure::Chaincode(500, "no".into()), detail()), tonic::Code::Unknown),
            (
                GatewayError::Evaluate(Failure::Refused("no".into()), detail()),
                tonic::Code::FailedPrecondition,
            ),
            (GatewayError::Evaluate(Failure::Unreachable("no".into()), detail()), tonic::Code::Unavailable),
            (GatewayError::NoPlan("why".into()), tonic::Code::FailedPrecondition),
            (GatewayError::Endorse(vec![detail()]), tonic::Code::Aborted),
            (GatewayError::Assemble("why".into()), tonic::Code::Aborted),
            (GatewayError::NoOrderers("c".into()), tonic::Code::FailedPrecondition),
            (GatewayError::NoOrdererEndpoints, tonic::Code::Unavailable),
            (
                GatewayError::OrdererRefused { status: "BAD_REQUEST".into(), info: "i".into() },
                tonic::Code::Aborted,
            ),
            (GatewayError::OrderersUnavailable(vec![detail()]), tonic::Code::Unavailable),
            (no_policy_manager("c"), tonic::Code::PermissionDenied),
            (GatewayError::Ledger("io".into()), tonic::Code::Unavailable),
            (GatewayError::Stopping, tonic::Code::Unavailable),
            (GatewayError::NotCommitted { tx_id: "t".into(), waited_ms: 5 }, tonic::Code::DeadlineExceeded),
            (GatewayError::StreamEnded("gone".into()), tonic::Code::Unavailable),
            (GatewayError::Busy(3), tonic::Code::ResourceExhausted),
        ];
        for (error, code) in cases {
            let status = tonic::Status::from(error.clone());
            assert_eq!(status.code(), code, "{error:?}");
            assert!(!status.message().is_empty(), "{error:?}");
        }
        let evaluate =
            tonic::Status::from(GatewayError::Evaluate(Failure::Chaincode(404, "gone".into()), detail()));
        assert_eq!(
            evaluate.message(),
            "evaluate call to endorser returned error: chaincode response 404, gone"
        );
        let details = medfabric_proto::gateway_status::error_details(&evaluate);
        assert_eq!(details, vec![detail()]);
    }
}
