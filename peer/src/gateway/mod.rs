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

mod broadcast;
mod error;
mod service;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use medfabric_config::tls::{ClientTls, lazy_channel};

use broadcast::Broadcaster;
pub use error::GatewayError;
use error::{Failure, no_policy_manager};
use medfabric_node::deliver::{Denial, Refusal, SeekRange, check_creator, now_unix, position, stream_blocks};
use medfabric_proto::gateway::{
    ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, CommitStatusResponse,
    EndorseRequest, EndorseResponse, ErrorDetail, EvaluateRequest, EvaluateResponse,
    SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
};
use medfabric_proto::msp::SerializedIdentity;
use medfabric_proto::protos::endorser_client::EndorserClient;
use medfabric_proto::protos::{self, ChaincodeInterest, ProposalResponse};
use medfabric_types::SignedProposal;
use medfabric_types::endorsement::assemble_transaction;
use prost::Message;
use service::EventsStream;
pub use service::GatewayService;
use tokio::sync::mpsc;
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

    async fn evaluate(&self, request: EvaluateRequest) -> Result<EvaluateResponse, GatewayError> {
        let signed = request.proposed_transaction.ok_or_else(|| {
            GatewayError::BadRequest("an evaluate request requires a proposed transaction".into())
        })?;
        let proposal = unpack(&signed)?;
        let channel_id = proposal.channel_id().to_owned();
        let Some(channel) = self.channel(&channel_id) else {
            return Err(GatewayError::UnknownChannel(channel_id));
        };
        let chaincode = proposal.chaincode_id.name.clone();
        let no_evaluators =
            || GatewayError::NoEvaluators { chaincode: chaincode.clone(), channel: channel_id.clone() };
        if channel.context().registry.get(&chaincode).is_none() {
            return Err(no_evaluators());
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
                return Err(no_evaluators());
            }
            targets
        };
        let answer = self.endorse_by_org(&targets, &signed).await;
        let detail = answer.detail();
        match answer.outcome {
            Ok(response) => Ok(EvaluateResponse { result: response.response }),
            Err(failure) => Err(GatewayError::Evaluate(failure, detail)),
        }
    }

    async fn endorse(&self, request: EndorseRequest) -> Result<EndorseResponse, GatewayError> {
        let signed = request.proposed_transaction.ok_or_else(|| {
            GatewayError::BadRequest("an endorse request requires a proposed transaction".into())
        })?;
        let proposal = unpack(&signed)?;
        let channel_id = proposal.channel_id().to_owned();
        let chaincode = proposal.chaincode_id.name.clone();
        let no_metadata = || {
            GatewayError::NoPlan(format!(
                "No metadata was found for chaincode {chaincode} in channel {channel_id}"
            ))
        };
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
                Err(_) => return Err(GatewayError::Endorse(vec![first.detail()])),
            };
            let has_transient = !proposal.transient_map.is_empty();
            let written = first.outcome.as_ref().map(written_collections).unwrap_or_default();
            let extra = self
                .plan(&channel.context(), &interest, has_transient, &written)
                .map_err(GatewayError::NoPlan)?;
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
                    return Err(GatewayError::NoPlan(format!(
                        "no peers of organization {org} are known to this gateway"
                    )));
                };
                calls.push(async { self.endorse_by_org(targets, &signed).await });
            }
            futures::future::join_all(calls).await
        };
        let failed: Vec<ErrorDetail> =
            answers.iter().filter(|a| a.outcome.is_err()).map(Answer::detail).collect();
        if !failed.is_empty() {
            return Err(GatewayError::Endorse(failed));
        }
        let responses: Vec<ProposalResponse> = answers.into_iter().filter_map(|a| a.outcome.ok()).collect();
        if responses.iter().any(|r| r.payload != responses[0].payload) {
            return Err(GatewayError::Assemble("ProposalResponsePayloads do not match".into()));
        }
        let envelope =
            assemble_transaction(&proposal, &responses).map_err(|e| GatewayError::Assemble(e.to_string()))?;
        Ok(EndorseResponse { prepared_transaction: Some(envelope) })
    }

    async fn submit(&self, request: SubmitRequest) -> Result<SubmitResponse, GatewayError> {
        let envelope = request
            .prepared_transaction
            .ok_or_else(|| GatewayError::BadRequest("a submit request requires a transaction".into()))?;
        if envelope.signature.is_empty() {
            return Err(GatewayError::BadRequest("prepared transaction must be signed".into()));
        }
        if self.channel(&request.channel_id).is_none() {
            return Err(GatewayError::NoOrderers(request.channel_id));
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
    ) -> Result<(), GatewayError> {
        let resources = channel.context().admission.clone();
        check_creator(&resources, identity, request, signature, READERS_POLICY, now_unix()).map_err(|denial| {
            let (Denial::Creator(why) | Denial::Policy(why)) = denial;
            GatewayError::Denied(format!(
                "Failed evaluating policy on signed data during check policy on channel [{}] with policy [{READERS_POLICY}]: [{why}]",
                channel.channel_id()
            ))
        })?;
        Ok(())
    }

    async fn commit_status(
        &self,
        signed: SignedCommitStatusRequest,
    ) -> Result<CommitStatusResponse, GatewayError> {
        let request = CommitStatusRequest::decode(signed.request.as_ref())
            .map_err(|e| GatewayError::BadRequest(format!("failed to unmarshal request: {e}")))?;
        let Some(channel) = self.channel(&request.channel_id) else {
            return Err(no_policy_manager(&request.channel_id));
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
                    .map_err(|e| GatewayError::Ledger(e.to_string()))?;
                if let Some((block_number, _, code)) = found {
                    return Ok(CommitStatusResponse { result: i32::from(code), block_number });
                }
                match commits.recv().await {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(GatewayError::Stopping);
                    }
                }
            }
        };
        tokio::time::timeout(bound, wait).await.unwrap_or_else(|_| {
            Err(GatewayError::NotCommitted {
                tx_id: request.transaction_id.clone(),
                waited_ms: bound.as_millis(),
            })
        })
    }

    /// Starts a ChaincodeEvents stream: checks, then the blocks from the start position
    /// (or after the given transaction) on, sending the events of valid transactions of
    /// the chaincode, grouped per block.
    fn chaincode_events(&self, signed: SignedChaincodeEventsRequest) -> Result<EventsStream, GatewayError> {
        let request = ChaincodeEventsRequest::decode(signed.request.as_ref())
            .map_err(|e| GatewayError::BadRequest(format!("failed to unmarshal request: {e}")))?;
        let Some(channel) = self.channel(&request.channel_id).cloned() else {
            return Err(no_policy_manager(&request.channel_id));
        };
        self.check_reader(&channel, &request.identity, &signed.request, &signed.signature)?;
        let height = channel.height().map_err(|e| GatewayError::Ledger(e.to_string()))?;
        let mut start = position(request.start_position.as_ref(), height).unwrap_or(height);
        // After a checkpointed transaction: from its block, skipping it and those before.
        let mut skip_through: Option<(u64, usize)> = None;
        if !request.after_transaction_id.is_empty()
            && let Some((block, index, _)) = channel
                .ledger()
                .transaction(&request.after_transaction_id)
                .map_err(|e| GatewayError::Ledger(e.to_string()))?
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
                let _ = out.send(Err(GatewayError::StreamEnded(info).into())).await;
            }
        });
        Ok(Box::pin(ReceiverStream::new(out_rx)))
    }
}

/// The proposal inside a request, checked for structure only (the endorser checks the rest).
fn unpack(signed: &protos::SignedProposal) -> Result<SignedProposal, GatewayError> {
    SignedProposal::parse_structure(signed)
        .map_err(|e| GatewayError::BadRequest(format!("failed to unpack transaction proposal: {e}")))
}
