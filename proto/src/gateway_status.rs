//! `gateway.ErrorDetail`s in a gRPC status: the gateway puts them in the
//! `grpc-status-details-bin` trailer as a `google.rpc.Status`, clients read them back.

use prost::Message;

use crate::gateway::ErrorDetail;

/// `google.rpc.Status`, carried in the `grpc-status-details-bin` trailer.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// A gRPC status with `gateway.ErrorDetail`s in its details.
pub fn status_with_details(code: tonic::Code, message: String, details: &[ErrorDetail]) -> tonic::Status {
    if details.is_empty() {
        return tonic::Status::new(code, message);
    }
    let rpc = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: details
            .iter()
            .map(|d| prost_types::Any {
                type_url: "type.googleapis.com/gateway.ErrorDetail".into(),
                value: d.encode_to_vec(),
            })
            .collect(),
    };
    tonic::Status::with_details(code, message, rpc.encode_to_vec().into())
}

/// The `gateway.ErrorDetail`s of a status (for clients and tests).
pub fn error_details(status: &tonic::Status) -> Vec<ErrorDetail> {
    RpcStatus::decode(status.details())
        .map(|rpc| {
            rpc.details.iter().filter_map(|any| ErrorDetail::decode(any.value.as_slice()).ok()).collect()
        })
        .unwrap_or_default()
}
