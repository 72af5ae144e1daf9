//! `gateway.Gateway` on the peer (Fabric 2.4+'s gateway, `docs/fabric-wire.md`, "Gateway"):
//! Evaluate, Endorse, Submit, CommitStatus and ChaincodeEvents, answering with the codes,
//! messages and `gateway.ErrorDetail`s a Fabric 2.5 gateway gives
//! (`docs/fabric-gateway.md`).
//!
//! Endorse gets the first endorsement from this peer (the gateway's own org), then reads
//! that endorsement's `ChaincodeInterest` — every namespace the transaction touched and
//! the key-level policies of the keys it writes — and asks, in parallel, the fewest other
//! organizations whose peers together satisfy every one of those policies. Submit sends
//! the client-signed envelope over a persistent Broadcast stream, failing over between
//! orderers.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use medfabric_config::tls::{ClientTls, lazy_channel};
use medfabric_node::deliver::{Denial, Refusal, SeekRange, check_creator, now_unix, position, stream_blocks};
use medfabric_proto::common::{Envelope, Status};
use medfabric_proto::gateway::{
    self, ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, CommitStatusResponse,
    EndorseRequest, EndorseResponse, ErrorDetail, EvaluateRequest, EvaluateResponse,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
};
use medfabric_proto::gateway_status::status_with_details;
use medfabric_proto::msp::SerializedIdentity;
use medfabric_proto::orderer::BroadcastResponse;
use medfabric_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medfabric_proto::protos::endorser_client::EndorserClient;
use medfabric_proto::protos::{self, ChaincodeInterest, ProposalResponse};
use medfabric_types::SignedProposal;
use medfabric_types::endorsement::assemble_transaction;
use prost::Message;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::channel::Channel;
use crate::deliver::{READERS_POLICY, valid_events};
use crate::endorser::{Endorser, Rejection};
use crate::metrics::PeerMetrics;
use crate::plan::{self, Candidate, PlanRequest};
use crate::validator::ChannelContext;

/// Another peer of the network the gateway may ask for endorsements.
#[derive(Debug, Clone)]
pub struct RemotePeer {
    pub msp_id: String,
    pub address: String,
    /// The peer's serialized signing identity (`SerializedIdentity` bytes), used to plan
    /// which organizations satisfy a policy.
    pub identity: Bytes,
}

impl RemotePeer {
    /// A peer whose signing certificate is the PEM file `cert_file`.
    pub fn from_cert_file(msp_id: &str, address: &str, cert_file: &std::path::Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(cert_file)
            .map_err(|e| anyhow::anyhow!("reading peer certificate {}: {e}", cert_file.display()))?;
        let identity = SerializedIdentity { mspid: msp_id.to_owned(), id_bytes: pem.into() }.encode_to_vec();
        Ok(Self { msp_id: msp_id.to_owned(), address: address.to_owned(), identity: identity.into() })
    }
}

/// Gateway settings (Fabric's `peer.gateway`).
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Requests in progress at once (Fabric's `peer.limits.concurrency.gatewayService`).
    pub concurrency_limit: usize,
    pub endorsement_timeout: Duration,
    pub broadcast_timeout: Duration,
    /// How long a CommitStatus call waits for its transaction to commit before it
    /// answers DEADLINE_EXCEEDED and gives its concurrency permit back (a client asking
    /// after a tx id that never commits cannot hold a permit for ever; one that goes
    /// away releases it at once).
    pub commit_status_timeout: Duration,
    pub max_message_bytes: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        // The node config's defaults.
        let section = medfabric_config::peer::GatewaySection::default();
        Self {
            concurrency_limit: section.concurrency_limit,
            endorsement_timeout: Duration::from_millis(section.endorsement_timeout_ms),
            broadcast_timeout: Duration::from_millis(section.broadcast_timeout_ms),
            commit_status_timeout: Duration::from_millis(section.commit_status_timeout_ms),
            max_message_bytes: medfabric_config::Limits::default().max_message_bytes,
        }
    }
}

/// Where an endorsement comes from: this peer, or another one over gRPC.
#[derive(Debug, Clone)]
enum Target {
    Local,
    Remote(usize),
}

/// One endorser's answer: a usable endorsement, or why not.
struct Answer {
    msp_id: String,
    address: String,
    outcome: Result<ProposalResponse, Failure>,
}

enum Failure {
    /// The endorser refused the proposal (a gRPC error from `ProcessProposal`).
    Refused(String),
    /// The endorser could not be reached.
    Unreachable(String),
    /// The chaincode answered with an error status.
    Chaincode(i32, String),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::Refused(m) | Failure::Unreachable(m) => m.clone(),
            Failure::Chaincode(status, m) => format!("chaincode response {status}, {m}"),
        }
    }
}

impl Answer {
    fn detail(&self) -> ErrorDetail {
        let message = match &self.outcome {
            Ok(_) => String::new(),
            Err(f) => f.message(),
        };
        ErrorDetail { address: self.address.clone(), msp_id: self.msp_id.clone(), message }
    }
}

/// The gateway over this peer's endorser and channels.
pub struct Gateway {
    endorser: Arc<Endorser>,
    msp_id: String,
    address: String,
    identity: Bytes,
    remotes: Vec<RemotePeer>,
    clients: Vec<EndorserClient<tonic::transport::Channel>>,
    orderers: Broadcaster,
    options: GatewayOptions,
    metrics: Arc<PeerMetrics>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("address", &self.address).field("remotes", &self.remotes).finish()
    }
}

fn endorse_failed(details: &[ErrorDetail]) -> tonic::Status {
    status_with_details(
        tonic::Code::Aborted,
        "failed to endorse transaction, see attached details for more info".into(),
        details,
    )
}

/// `(namespace, collection)` pairs an endorsed response's read-write set writes to.
fn written_collections(response: &ProposalResponse) -> Vec<(String, String)> {
    use medfabric_proto::kvrwset::HashedRwSet;
    use medfabric_proto::protos::{ChaincodeAction, ProposalResponsePayload};
    use medfabric_proto::rwset::TxReadWriteSet;
    let Ok(payload) = ProposalResponsePayload::decode(response.payload.as_ref()) else { return Vec::new() };
    let Ok(action) = ChaincodeAction::decode(payload.extension.as_ref()) else { return Vec::new() };
    let Ok(rwset) = TxReadWriteSet::decode(action.results.as_ref()) else { return Vec::new() };
    let mut written = Vec::new();
    for ns in &rwset.ns_rwset {
        for c in &ns.collection_hashed_rwset {
            let writes = HashedRwSet::decode(c.hashed_rwset.as_ref())
                .is_ok_and(|h| !h.hashed_writes.is_empty() || !h.metadata_writes.is_empty());
            if writes {
                written.push((ns.namespace.clone(), c.collection_name.clone()));
            }
        }
    }
    written
}

fn no_plan(why: String) -> tonic::Status {
    tonic::Status::failed_precondition(format!(
        "no combination of peers can be derived which satisfy the endorsement policy: {why}"
    ))
}

impl Gateway {
    #[expect(clippy::too_many_arguments, reason = "assembled once, by the peer node")]
    pub fn new(
        endorser: Arc<Endorser>,
        msp_id: &str,
        address: &str,
        remotes: Vec<RemotePeer>,
        orderer_endpoints: Vec<String>,
        tls: Option<ClientTls>,
        options: GatewayOptions,
        metrics: Arc<PeerMetrics>,
    ) -> anyhow::Result<Self> {
        let clients = remotes
            .iter()
            .map(|r| {
                Ok(EndorserClient::new(lazy_channel(&r.address, tls.as_ref())?)
                    .max_decoding_message_size(options.max_message_bytes)
                    .max_encoding_message_size(options.max_message_bytes))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let identity = endorser.identity().clone();
        Ok(Self {
            endorser,
            msp_id: msp_id.to_owned(),
            address: address.to_owned(),
            identity,
            remotes,
            clients,
            orderers: Broadcaster::new(orderer_endpoints, tls, options.max_message_bytes),
            options,
            metrics,
        })
    }

    fn channel(&self, channel_id: &str) -> Option<&Arc<Channel>> {
        self.endorser.channel(channel_id)
    }

    /// The peers of each organization, this peer first in its own.
    fn peers_by_org(&self) -> BTreeMap<&str, Vec<Target>> {
        let mut orgs: BTreeMap<&str, Vec<Target>> = BTreeMap::new();
        orgs.entry(self.msp_id.as_str()).or_default().push(Target::Local);
        for (i, remote) in self.remotes.iter().enumerate() {
            orgs.entry(remote.msp_id.as_str()).or_default().push(Target::Remote(i));
        }
        orgs
    }

    fn target_name(&self, target: &Target) -> (String, String) {
        match target {
            Target::Local => (self.msp_id.clone(), self.address.clone()),
            Target::Remote(i) => (self.remotes[*i].msp_id.clone(), self.remotes[*i].address.clone()),
        }
    }

    /// Sends the proposal to one peer.
    async fn endorse_on(&self, target: &Target, signed: &protos::SignedProposal) -> Answer {
        let (msp_id, address) = self.target_name(target);
        let outcome = match target {
            Target::Local => {
                let started = Instant::now();
                let result = self.endorser.endorse(signed.clone()).await;
                self.metrics.proposal(started.elapsed(), matches!(&result, Ok(r) if r.endorsement.is_some()));
                match result {
                    Ok(response) => Ok(response),
                    Err(Rejection::Error(message)) => Err(Failure::Refused(message)),
                    Err(Rejection::Response(message)) => Err(Failure::Chaincode(500, message)),
                }
            }
            Target::Remote(i) => {
                let mut client = self.clients[*i].clone();
                let mut request = tonic::Request::new(signed.clone());
                request.set_timeout(self.options.endorsement_timeout);
                match client.process_proposal(request).await {
                    Ok(response) => Ok(response.into_inner()),
                    Err(s)
                        if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) =>
                    {
                        Err(Failure::Unreachable(s.message().to_owned()))
                    }
                    Err(s) => Err(Failure::Refused(s.message().to_owned())),
                }
            }
        };
        // A chaincode error status (or a missing endorsement) is a failed endorsement.
        let outcome = outcome.and_then(|response| {
            let status = response.response.as_ref().map_or(500, |r| r.status);
            if status >= 400 || response.endorsement.is_none() {
                let message = response.response.as_ref().map(|r| r.message.clone()).unwrap_or_default();
                Err(Failure::Chaincode(status, message))
            } else {
                Ok(response)
            }
        });
        Answer { msp_id, address, outcome }
    }

    /// Endorsement by one peer of `msp_id`, trying its peers in turn while they are
    /// unreachable.
    async fn endorse_by_org(&self, targets: &[Target], signed: &protos::SignedProposal) -> Answer {
        let mut last = None;
        for target in targets {
            let answer = self.endorse_on(target, signed).await;
            match &answer.outcome {
                Err(Failure::Unreachable(_)) => last = Some(answer),
                _ => return answer,
            }
        }
        last.unwrap_or_else(|| Answer {
            msp_id: String::new(),
            address: String::new(),
            outcome: Err(Failure::Unreachable("no peers".into())),
        })
    }

    /// The endorsement plan ([`crate::plan::plan`]) over the other organizations' peers
    /// this gateway knows.
    fn plan(
        &self,
        context: &ChannelContext,
        interest: &ChaincodeInterest,
        has_transient: bool,
        written: &[(String, String)],
    ) -> Result<Vec<String>, String> {
        let candidates: Vec<Candidate<'_>> =
            self.remotes.iter().map(|r| Candidate { msp_id: &r.msp_id, identity: &r.identity }).collect();
        plan::plan(&PlanRequest {
            context,
            interest,
            has_transient,
            written,
            own_msp: &self.msp_id,
            own_identity: &self.identity,
            candidates: &candidates,
        })
    }

    async fn evaluate(&self, request: EvaluateRequest) -> Result<EvaluateResponse, tonic::Status> {
        let signed = request.proposed_transaction.ok_or_else(|| {
            tonic::Status::invalid_argument("an evaluate request requires a proposed transaction")
        })?;
        let proposal = SignedProposal::parse_structure(&signed).map_err(|e| {
            tonic::Status::invalid_argument(format!("failed to unpack transaction proposal: {e}"))
        })?;
        let channel_id = proposal.channel_id().to_owned();
        let Some(channel) = self.channel(&channel_id) else {
            return Err(tonic::Status::unavailable(format!(
                "failed to get config for channel [{channel_id}]: could not get last config for channel {channel_id}"
            )));
        };
        let chaincode = proposal.chaincode_id.name.clone();
        if channel.context().registry.get(&chaincode).is_none() {
            return Err(tonic::Status::failed_precondition(format!(
                "no peers available to evaluate chaincode {chaincode} in channel {channel_id}"
            )));
        }
        let orgs = self.peers_by_org();
        let targets: Vec<Target> = if request.target_organizations.is_empty() {
            // Our own org first; other orgs only if ours cannot be reached.
            orgs.get(self.msp_id.as_str()).into_iter().flatten().cloned().collect()
        } else {
            let mut targets = Vec::new();
            for org in &request.target_organizations {
                targets.extend(orgs.get(org.as_str()).into_iter().flatten().cloned());
            }
            if targets.is_empty() {
                return Err(tonic::Status::failed_precondition(format!(
                    "no peers available to evaluate chaincode {chaincode} in channel {channel_id}"
                )));
            }
            targets
        };
        let answer = self.endorse_by_org(&targets, &signed).await;
        let detail = answer.detail();
        match answer.outcome {
            Ok(response) => Ok(EvaluateResponse { result: response.response }),
            Err(Failure::Chaincode(status, message)) => {
                // A chaincode error has no endorsement but is still the answer.
                Err(status_with_details(
                    tonic::Code::Unknown,
                    format!(
                        "evaluate call to endorser returned error: chaincode response {status}, {message}"
                    ),
                    &[detail],
                ))
            }
            Err(Failure::Refused(message)) => Err(status_with_details(
                tonic::Code::FailedPrecondition,
                format!("evaluate call to endorser returned error: {message}"),
                &[detail],
            )),
            Err(Failure::Unreachable(message)) => Err(status_with_details(
                tonic::Code::Unavailable,
                format!("failed to evaluate transaction: {message}"),
                &[detail],
            )),
        }
    }

    async fn endorse(&self, request: EndorseRequest) -> Result<EndorseResponse, tonic::Status> {
        let signed = request.proposed_transaction.ok_or_else(|| {
            tonic::Status::invalid_argument("an endorse request requires a proposed transaction")
        })?;
        let proposal = SignedProposal::parse_structure(&signed).map_err(|e| {
            tonic::Status::invalid_argument(format!("failed to unpack transaction proposal: {e}"))
        })?;
        let channel_id = proposal.channel_id().to_owned();
        let chaincode = proposal.chaincode_id.name.clone();
        let no_metadata =
            || no_plan(format!("No metadata was found for chaincode {chaincode} in channel {channel_id}"));
        let Some(channel) = self.channel(&channel_id) else {
            return Err(no_metadata());
        };
        if channel.context().registry.get(&chaincode).is_none() {
            return Err(no_metadata());
        }
        let orgs = self.peers_by_org();
        let answers: Vec<Answer> = if request.endorsing_organizations.is_empty() {
            let first = self.endorse_on(&Target::Local, &signed).await;
            let interest = match &first.outcome {
                Ok(response) => response.interest.clone().unwrap_or_default(),
                Err(_) => return Err(endorse_failed(&[first.detail()])),
            };
            let has_transient = !proposal.transient_map.is_empty();
            let written = first.outcome.as_ref().map(written_collections).unwrap_or_default();
            let extra = self.plan(&channel.context(), &interest, has_transient, &written).map_err(no_plan)?;
            let calls = extra.iter().map(|org| {
                let targets = orgs.get(org.as_str()).cloned().unwrap_or_default();
                let signed = &signed;
                async move { self.endorse_by_org(&targets, signed).await }
            });
            let mut answers = vec![first];
            answers.extend(futures::future::join_all(calls).await);
            answers
        } else {
            let mut calls = Vec::new();
            for org in &request.endorsing_organizations {
                let Some(targets) = orgs.get(org.as_str()) else {
                    return Err(no_plan(format!("no peers of organization {org} are known to this gateway")));
                };
                calls.push(async { self.endorse_by_org(targets, &signed).await });
            }
            futures::future::join_all(calls).await
        };
        let failed: Vec<ErrorDetail> =
            answers.iter().filter(|a| a.outcome.is_err()).map(Answer::detail).collect();
        if !failed.is_empty() {
            return Err(endorse_failed(&failed));
        }
        let responses: Vec<ProposalResponse> = answers.into_iter().filter_map(|a| a.outcome.ok()).collect();
        if responses.iter().any(|r| r.payload != responses[0].payload) {
            return Err(tonic::Status::aborted(
                "failed to assemble transaction: ProposalResponsePayloads do not match",
            ));
        }
        let envelope = assemble_transaction(&proposal, &responses)
            .map_err(|e| tonic::Status::aborted(format!("failed to assemble transaction: {e}")))?;
        Ok(EndorseResponse { prepared_transaction: Some(envelope) })
    }

    async fn submit(&self, request: SubmitRequest) -> Result<SubmitResponse, tonic::Status> {
        let envelope = request
            .prepared_transaction
            .ok_or_else(|| tonic::Status::invalid_argument("a submit request requires a transaction"))?;
        if envelope.signature.is_empty() {
            return Err(tonic::Status::invalid_argument("prepared transaction must be signed"));
        }
        if self.channel(&request.channel_id).is_none() {
            return Err(tonic::Status::failed_precondition(format!(
                "no orderers available for channel {}",
                request.channel_id
            )));
        }
        self.orderers.broadcast(envelope, self.options.broadcast_timeout).await
    }

    /// Checks a signed request's identity: valid on the channel, signed the request, and
    /// a Reader of it.
    fn check_reader(
        &self,
        channel: &Channel,
        identity: &[u8],
        request: &[u8],
        signature: &[u8],
    ) -> Result<(), tonic::Status> {
        let resources = channel.context().admission.clone();
        check_creator(&resources, identity, request, signature, READERS_POLICY, now_unix()).map_err(|denial| {
            let (Denial::Creator(why) | Denial::Policy(why)) = denial;
            tonic::Status::permission_denied(format!(
                "Failed evaluating policy on signed data during check policy on channel [{}] with policy [{READERS_POLICY}]: [{why}]",
                channel.channel_id()
            ))
        })?;
        Ok(())
    }

    async fn commit_status(
        &self,
        signed: SignedCommitStatusRequest,
    ) -> Result<CommitStatusResponse, tonic::Status> {
        let request = CommitStatusRequest::decode(signed.request.as_ref())
            .map_err(|e| tonic::Status::invalid_argument(format!("failed to unmarshal request: {e}")))?;
        let Some(channel) = self.channel(&request.channel_id) else {
            return Err(tonic::Status::permission_denied(format!(
                "Failed to get policy manager for channel [{}]",
                request.channel_id
            )));
        };
        self.check_reader(channel, &request.identity, &signed.request, &signed.signature)?;
        // Subscribe before looking, so a commit between the two is not missed.
        let mut commits = channel.subscribe();
        let bound = self.options.commit_status_timeout;
        let wait = async {
            loop {
                let found = channel
                    .ledger()
                    .transaction(&request.transaction_id)
                    .map_err(|e| tonic::Status::unavailable(format!("ledger: {e}")))?;
                if let Some((block_number, _, code)) = found {
                    return Ok(CommitStatusResponse { result: i32::from(code), block_number });
                }
                match commits.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(tonic::Status::unavailable("the peer is stopping"));
                    }
                }
            }
        };
        tokio::time::timeout(bound, wait).await.unwrap_or_else(|_| {
            Err(tonic::Status::deadline_exceeded(format!(
                "transaction {} was not committed within {} ms",
                request.transaction_id,
                bound.as_millis()
            )))
        })
    }

    /// Starts a ChaincodeEvents stream: checks, then the blocks from the start position
    /// (or after the given transaction) on, sending the events of valid transactions of
    /// the chaincode, grouped per block.
    fn chaincode_events(&self, signed: SignedChaincodeEventsRequest) -> Result<EventsStream, tonic::Status> {
        let request = ChaincodeEventsRequest::decode(signed.request.as_ref())
            .map_err(|e| tonic::Status::invalid_argument(format!("failed to unmarshal request: {e}")))?;
        let Some(channel) = self.channel(&request.channel_id).cloned() else {
            return Err(tonic::Status::permission_denied(format!(
                "Failed to get policy manager for channel [{}]",
                request.channel_id
            )));
        };
        self.check_reader(&channel, &request.identity, &signed.request, &signed.signature)?;
        let height = channel.height().map_err(|e| tonic::Status::unavailable(format!("ledger: {e}")))?;
        let mut start = position(request.start_position.as_ref(), height).unwrap_or(height);
        // After a checkpointed transaction: from its block, skipping it and those before.
        let mut skip_through: Option<(u64, usize)> = None;
        if !request.after_transaction_id.is_empty()
            && let Some((block, index, _)) = channel
                .ledger()
                .transaction(&request.after_transaction_id)
                .map_err(|e| tonic::Status::unavailable(format!("ledger: {e}")))?
        {
            start = block;
            skip_through = Some((block, index as usize));
        }
        let (out, out_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let range = SeekRange { start, stop: u64::MAX, wait: true };
            let fetch = |number| channel.ledger().block(number).map_err(|e| e.to_string());
            let chaincode = request.chaincode_id;
            let outcome = stream_blocks(range, channel.watch_height(), fetch, &out, |block| {
                let number = medfabric_types::block::header(&block).number;
                let events: Vec<_> = valid_events(&block)
                    .into_iter()
                    .filter(|(index, _)| skip_through.is_none_or(|(b, i)| number != b || *index > i))
                    .map(|(_, event)| event)
                    .filter(|event| event.chaincode_id == chaincode)
                    .collect();
                (!events.is_empty()).then_some(ChaincodeEventsResponse { events, block_number: number })
            })
            .await;
            if let Err(Refusal { info, .. }) = outcome {
                let _ = out.send(Err(tonic::Status::unavailable(info))).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(out_rx)))
    }
}

type EventsStream =
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
        self.permits.clone().try_acquire_owned().map_err(|_| {
            tonic::Status::resource_exhausted(format!(
                "gateway concurrency limit ({}) reached; retry later",
                self.gateway.options.concurrency_limit
            ))
        })
    }

    async fn measured<T>(
        &self,
        method: &str,
        call: impl std::future::Future<Output = Result<T, tonic::Status>>,
    ) -> Result<tonic::Response<T>, tonic::Status> {
        let _permit = self.permit()?;
        let started = Instant::now();
        let result = call.await;
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
        self.gateway.chaincode_events(request.into_inner()).map(tonic::Response::new)
    }
}

// ---------------------------------------------------------------------------------------
// Broadcast to the ordering service over persistent streams.

type Reply = oneshot::Sender<Result<BroadcastResponse, String>>;

/// One persistent Broadcast stream: envelopes go out in order and answers come back in
/// the same order.
struct BroadcastLink {
    requests: mpsc::Sender<(Envelope, Reply)>,
}

/// Envelopes in flight on one stream.
const LINK_WINDOW: usize = 1024;

impl BroadcastLink {
    fn open(client: AtomicBroadcastClient<tonic::transport::Channel>) -> Self {
        let (requests, mut incoming) = mpsc::channel::<(Envelope, Reply)>(LINK_WINDOW);
        tokio::spawn(async move {
            let mut client = client;
            let (out, out_rx) = mpsc::channel::<Envelope>(LINK_WINDOW);
            let mut pending: VecDeque<Reply> = VecDeque::new();
            // The first envelope opens the stream (an idle gateway holds no stream).
            let Some((first, reply)) = incoming.recv().await else { return };
            pending.push_back(reply);
            let _ = out.send(first).await;
            let mut answers = match client.broadcast(ReceiverStream::new(out_rx)).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    for reply in pending {
                        let _ = reply.send(Err(status.message().to_owned()));
                    }
                    return;
                }
            };
            loop {
                tokio::select! {
                    next = incoming.recv() => {
                        let Some((envelope, reply)) = next else { break };
                        pending.push_back(reply);
                        if out.send(envelope).await.is_err() {
                            break;
                        }
                    }
                    answer = answers.message() => {
                        match answer {
                            Ok(Some(answer)) => {
                                if let Some(reply) = pending.pop_front() {
                                    let _ = reply.send(Ok(answer));
                                }
                            }
                            Ok(None) => break,
                            Err(status) => {
                                for reply in pending.drain(..) {
                                    let _ = reply.send(Err(status.message().to_owned()));
                                }
                                break;
                            }
                        }
                    }
                }
            }
            for reply in pending {
                let _ = reply.send(Err("the Broadcast stream ended".into()));
            }
        });
        Self { requests }
    }
}

/// The gateway's link to the ordering service: one persistent Broadcast stream per
/// orderer, used in turn from the last one that worked.
struct Broadcaster {
    endpoints: Vec<String>,
    tls: Option<ClientTls>,
    max_message_bytes: usize,
    links: Mutex<Vec<Option<BroadcastLink>>>,
    preferred: std::sync::atomic::AtomicUsize,
}

/// Pause between passes over the orderers while none can take the envelope (a leader
/// election, a restarting node).
const PASS_PAUSE: Duration = Duration::from_millis(250);

impl Broadcaster {
    fn new(endpoints: Vec<String>, tls: Option<ClientTls>, max_message_bytes: usize) -> Self {
        let links = Mutex::new(endpoints.iter().map(|_| None).collect());
        Self { endpoints, tls, max_message_bytes, links, preferred: Default::default() }
    }

    fn send(
        &self,
        index: usize,
        envelope: Envelope,
    ) -> Result<oneshot::Receiver<Result<BroadcastResponse, String>>, String> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let open = links[index].as_ref().is_some_and(|l| !l.requests.is_closed());
        if !open {
            let channel =
                lazy_channel(&self.endpoints[index], self.tls.as_ref()).map_err(|e| e.to_string())?;
            let client = AtomicBroadcastClient::new(channel)
                .max_decoding_message_size(self.max_message_bytes)
                .max_encoding_message_size(self.max_message_bytes);
            links[index] = Some(BroadcastLink::open(client));
        }
        let (reply, answer) = oneshot::channel();
        let link = links[index].as_ref().ok_or("no link")?;
        link.requests
            .try_send((envelope, reply))
            .map_err(|e| format!("the Broadcast stream is busy: {e}"))?;
        Ok(answer)
    }

    /// Sends the envelope to orderers in turn until one accepts it (SUCCESS) or refuses
    /// it for good; unreachable orderers and SERVICE_UNAVAILABLE answers move on to the
    /// next one, until `timeout`.
    async fn broadcast(
        &self,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<SubmitResponse, tonic::Status> {
        use std::sync::atomic::Ordering;
        if self.endpoints.is_empty() {
            return Err(tonic::Status::unavailable("no orderer endpoints configured"));
        }
        let deadline = Instant::now() + timeout;
        let mut failures: BTreeMap<String, String> = BTreeMap::new();
        let first = self.preferred.load(Ordering::Relaxed);
        for attempt in 0.. {
            let index = (first + attempt) % self.endpoints.len();
            if attempt > 0 && index == first {
                if Instant::now() + PASS_PAUSE >= deadline {
                    break;
                }
                tokio::time::sleep(PASS_PAUSE).await;
            }
            let address = &self.endpoints[index];
            let outcome = match self.send(index, envelope.clone()) {
                Ok(answer) => match tokio::time::timeout_at(deadline.into(), answer).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err("the Broadcast stream ended".into()),
                    Err(_) => Err("timed out waiting for the orderer".into()),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(answer) if answer.status == Status::Success as i32 => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(SubmitResponse {});
                }
                Ok(answer) if answer.status == Status::ServiceUnavailable as i32 => {
                    failures
                        .insert(address.clone(), format!("status=SERVICE_UNAVAILABLE, info={}", answer.info));
                }
                Ok(answer) => {
                    let status = Status::try_from(answer.status).map_or("UNKNOWN", |s| s.as_str_name());
                    return Err(tonic::Status::aborted(format!(
                        "received unsuccessful response from orderer: status={status}, info={}",
                        answer.info
                    )));
                }
                Err(why) => {
                    failures.insert(address.clone(), why);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let details: Vec<ErrorDetail> = failures
            .into_iter()
            .map(|(address, message)| ErrorDetail { address, msp_id: String::new(), message })
            .collect();
        Err(status_with_details(
            tonic::Code::Unavailable,
            "no orderers could successfully process transaction".into(),
            &details,
        ))
    }
}
