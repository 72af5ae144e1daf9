//! The gRPC `gateway.Gateway` service over a [`Gateway`]: its concurrency limit, its
//! metrics, and the one conversion of [`GatewayError`] into a gRPC status.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use medfabric_proto::gateway::{
    self, ChaincodeEventsResponse, CommitStatusResponse, EndorseRequest, EndorseResponse, EvaluateRequest,
    EvaluateResponse, SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
};
use tokio::sync::Semaphore;

use super::{Gateway, GatewayError};

pub(crate) type EventsStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<ChaincodeEventsResponse, tonic::Status>> + Send>>;

/// The gRPC service over a [`Gateway`], with its concurrency limit.
#[derive(Debug, Clone)]
pub struct GatewayService {
    gateway: Arc<Gateway>,
    permits: Arc<Semaphore>,
}

impl GatewayService {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let permits = Arc::new(Semaphore::new(gateway.options.concurrency_limit.max(1)));
        Self { gateway, permits }
    }

    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, tonic::Status> {
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| GatewayError::Busy(self.gateway.options.concurrency_limit).into())
    }

    async fn measured<T>(
        &self,
        method: &str,
        call: impl std::future::Future<Output = Result<T, GatewayError>>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let _permit = self.permit()?;
        let started = Instant::now();
        let result = call.await.map_err(tonic::Status::from);
        let code = result.as_ref().map_or_else(|s| s.code(), |_| tonic::Code::Ok);
        self.gateway.metrics.gateway(method, started.elapsed(), code);
        result.map(tonic::Response::new)
    }
}

#[tonic::async_trait]
impl gateway::gateway_server::Gateway for GatewayService {
    type ChaincodeEventsStream = EventsStream;

    async fn endorse(
        &self,
        request: tonic::Request<EndorseRequest>,
    ) -> Result<tonic::Response<EndorseResponse>, tonic::Status> {
        self.measured("Endorse", self.gateway.endorse(request.into_inner())).await
    }

    async fn submit(
        &self,
        request: tonic::Request<SubmitRequest>,
    ) -> Result<tonic::Response<SubmitResponse>, tonic::Status> {
        self.measured("Submit", self.gateway.submit(request.into_inner())).await
    }

    async fn commit_status(
        &self,
        request: tonic::Request<SignedCommitStatusRequest>,
    ) -> Result<tonic::Response<CommitStatusResponse>, tonic::Status> {
        self.measured("CommitStatus", self.gateway.commit_status(request.into_inner())).await
    }

    async fn evaluate(
        &self,
        request: tonic::Request<EvaluateRequest>,
    ) -> Result<tonic::Response<EvaluateResponse>, tonic::Status> {
        self.measured("Evaluate", self.gateway.evaluate(request.into_inner())).await
    }

    async fn chaincode_events(
        &self,
        request: tonic::Request<SignedChaincodeEventsRequest>,
    ) -> Result<tonic::Response<EventsStream>, tonic::Status> {
        let _permit = self.permit()?;
        self.gateway.chaincode_events(request.into_inner()).map(tonic::Response::new).map_err(Into::into)
    }
}
