//! The endorser: `protos.Endorser/ProcessProposal`.
//!
//! Checks run in Fabric's order (`docs/fabric-wire.md`, "Endorser check order"): the proposal's structure
//! (header type, epoch, nonce, creator), the channel, the creator's validity in the
//! channel's MSPs and its signature, the tx-id rule, a duplicate tx id, the Writers ACL,
//! the chaincode definition; then the chaincode is simulated on a state snapshot. A
//! chaincode status of 400 or more gets no endorsement. Errors answer as Fabric's peer
//! does: malformed or unauthorised proposals as a gRPC error, the rest as a
//! `ProposalResponse` with status 500.

use std::collections::BTreeMap;
use std::sync::Arc;

use medfabric_msp::SigningIdentity;
use medfabric_node::deliver::now_unix;
use medfabric_proto::protos::{self, ProposalResponse, Response};
use medfabric_shim::{Chaincode, ERROR, ERROR_THRESHOLD};
use medfabric_types::SignedProposal;
use medfabric_types::endorsement::{SimulationResult, endorse};
use medfabric_types::lifecycle::LIFECYCLE_NAMESPACE;

use medfabric_proto::rwset::TxPvtReadWriteSet;

use crate::channel::Channel;
use crate::pvtnet::{PrivatePeers, eligible_part};
use crate::simulator::{ChannelCollections, Installed, context_of, decorate, interest, simulate};

/// Policy a proposal's creator must satisfy (Fabric's `peer/Propose` ACL).
pub const WRITERS_POLICY: &str = "/Channel/Application/Writers";

/// Why a proposal got no endorsement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed or unauthorised: Fabric answers with a gRPC error.
    Error(String),
    /// Fabric answers with a `ProposalResponse` carrying status 500 and this message.
    Response(String),
}

/// The endorsing part of a peer: its channels, installed chaincodes and identity.
pub struct Endorser {
    channels: BTreeMap<String, Arc<Channel>>,
    chaincodes: BTreeMap<String, Arc<dyn Chaincode>>,
    signer: Arc<SigningIdentity>,
    /// Other peers, to push private data to (unset: none are known).
    private_peers: std::sync::OnceLock<Arc<PrivatePeers>>,
    /// How far a proposal's timestamp may be from this peer's clock (unset: any). The
    /// timestamp is the transaction time chaincode sees, so time-based rules (consent
    /// periods, deadlines) hold to within this window.
    max_clock_skew: std::sync::OnceLock<std::time::Duration>,
    /// This peer's organization record key (unset: the peer holds none).
    record_key: std::sync::OnceLock<crate::simulator::RecordKey>,
}

/// A simulated transaction's private write sets, to keep and disseminate.
#[derive(Debug)]
pub struct PrivateResult {
    pub channel: Arc<Channel>,
    pub tx_id: String,
    pub rwset: TxPvtReadWriteSet,
}

impl std::fmt::Debug for Endorser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endorser")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .field("chaincodes", &self.chaincodes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Endorser {
    pub fn new(
        channels: BTreeMap<String, Arc<Channel>>,
        chaincodes: BTreeMap<String, Arc<dyn Chaincode>>,
        signer: Arc<SigningIdentity>,
    ) -> Self {
        Self {
            channels,
            chaincodes,
            signer,
            private_peers: std::sync::OnceLock::new(),
            max_clock_skew: std::sync::OnceLock::new(),
            record_key: std::sync::OnceLock::new(),
        }
    }

    /// The organization record key this peer holds (set once, at start).
    pub fn set_record_key(&self, key: crate::simulator::RecordKey) {
        let _ = self.record_key.set(key);
    }

    pub fn has_record_key(&self) -> bool {
        self.record_key.get().is_some()
    }

    /// Refuses proposals whose timestamp is further than `skew` from this peer's clock.
    pub fn set_max_clock_skew(&self, skew: std::time::Duration) {
        let _ = self.max_clock_skew.set(skew);
    }

    /// The peers private data is pushed to (set once, when the peer starts serving).
    pub fn set_private_peers(&self, peers: Arc<PrivatePeers>) {
        let _ = self.private_peers.set(peers);
    }

    /// Processes a proposal completely: simulation and, for private writes, keeping
    /// them in the transient store and pushing them to member peers. A failed push
    /// (fewer peers than a collection requires) is a status-500 response, as in Fabric.
    pub async fn endorse(
        self: &Arc<Self>,
        signed: protos::SignedProposal,
    ) -> Result<ProposalResponse, Rejection> {
        let endorser = self.clone();
        let now = now_unix();
        let (response, private) =
            tokio::task::spawn_blocking(move || endorser.simulate_proposal(&signed, now))
                .await
                .map_err(|e| Rejection::Error(format!("endorser task failed: {e}")))??;
        let Some(private) = private else { return Ok(response) };
        let membership = private.channel.membership();
        self.keep_private(&private)?;
        if let Some(peers) = self.private_peers.get() {
            peers
                .disseminate(private.channel.channel_id(), &private.tx_id, &private.rwset, &membership)
                .await
                .map_err(|e| {
                    Rejection::Response(format!(
                        "error in simulation: failed to distribute private data: {e}"
                    ))
                })?;
        } else if private_needs_peers(&private, &membership) {
            return Err(Rejection::Response(
                "error in simulation: failed to distribute private data: no other peers are known".into(),
            ));
        }
        Ok(response)
    }

    /// Keeps the collections this peer may hold in its transient store.
    fn keep_private(&self, private: &PrivateResult) -> Result<(), Rejection> {
        let membership = private.channel.membership();
        if let Some(part) = eligible_part(&private.rwset, &membership) {
            let height = private.channel.height().map_err(|e| Rejection::Response(format!("ledger: {e}")))?;
            crate::pvtdata::transient_put(private.channel.ledger(), &private.tx_id, height, &part)
                .map_err(|e| Rejection::Response(format!("transient store: {e}")))?;
        }
        Ok(())
    }

    pub fn channel(&self, channel_id: &str) -> Option<&Arc<Channel>> {
        self.channels.get(channel_id)
    }

    pub fn channels(&self) -> &BTreeMap<String, Arc<Channel>> {
        &self.channels
    }

    /// This peer's serialized signing identity.
    pub fn identity(&self) -> &bytes::Bytes {
        self.signer.serialized()
    }

    /// Processes one signed proposal without pushing private data to other peers
    /// (private writes are kept in this peer's transient store only).
    pub fn process(&self, signed: &protos::SignedProposal) -> Result<ProposalResponse, Rejection> {
        self.process_at(signed, now_unix())
    }

    /// [`Endorser::process`] with the clock reading `now` (unix seconds).
    pub fn process_at(
        &self,
        signed: &protos::SignedProposal,
        now: i64,
    ) -> Result<ProposalResponse, Rejection> {
        let (response, private) = self.simulate_proposal(signed, now)?;
        if let Some(private) = private {
            self.keep_private(&private)?;
        }
        Ok(response)
    }

    /// Checks and simulates one signed proposal; returns the response and, when the
    /// transaction wrote private data, its private write sets.
    pub fn simulate_proposal(
        &self,
        signed: &protos::SignedProposal,
        now: i64,
    ) -> Result<(ProposalResponse, Option<PrivateResult>), Rejection> {
        let invalid =
            |e: medfabric_types::ConvertError| Rejection::Error(format!("error validating proposal: {e}"));
        let proposal = SignedProposal::parse_structure(signed).map_err(invalid)?;
        let channel_id = proposal.channel_id();
        let Some(channel) = self.channels.get(channel_id) else {
            return Err(Rejection::Response(format!("channel '{channel_id}' not found")));
        };
        let (context, snapshot) = channel.view();
        // What this peer admits: the channel's MSPs with its local CRLs.
        let resources = &context.admission;
        let creator = match resources.msps.deserialize(proposal.creator()) {
            Ok(identity) => identity,
            Err(_) => {
                return Err(Rejection::Error(format!(
                    "error validating proposal: access denied: channel [{channel_id}] creator org unknown, creator is malformed"
                )));
            }
        };
        if creator.check_validity_at(now).is_err() {
            return Err(Rejection::Error("proposal client identity expired".into()));
        }
        if creator.verify(&signed.proposal_bytes, &signed.signature).is_err() {
            return Err(Rejection::Error(format!(
                "error validating proposal: access denied: channel [{channel_id}] creator org [{}]",
                creator.msp_id()
            )));
        }
        proposal.check_tx_id().map_err(invalid)?;
        if let Some(skew) = self.max_clock_skew.get() {
            let stamped = proposal.channel_header.timestamp.map(|t| t.seconds);
            let allowed = i64::try_from(skew.as_secs()).unwrap_or(i64::MAX);
            if stamped.is_none_or(|t| (t - now).abs() > allowed) {
                return Err(Rejection::Error(format!(
                    "error validating proposal: the proposal's timestamp {stamped:?} is more than {allowed} s from the peer's clock ({now})"
                )));
            }
        }
        let known = channel
            .ledger()
            .transaction(proposal.tx_id())
            .map_err(|e| Rejection::Response(format!("ledger: {e}")))?;
        if known.is_some() {
            return Err(Rejection::Error(format!(
                "duplicate transaction found [{}]. Creator [{}]",
                proposal.tx_id(),
                hex::encode(proposal.creator())
            )));
        }
        let name = proposal.chaincode_id.name.clone();
        if name == LIFECYCLE_NAMESPACE {
            return Err(Rejection::Response(format!(
                "chaincode {name} is not served by this peer: chaincode definitions come from the channel configuration"
            )));
        }
        let writer =
            resources.policies.evaluate(WRITERS_POLICY, std::slice::from_ref(&creator)).unwrap_or(false);
        if !writer {
            return Err(Rejection::Error(format!(
                "Failed evaluating policy on signed data during check policy on channel [{channel_id}] with policy [{WRITERS_POLICY}]: [implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Writers' sub-policies to be satisfied]"
            )));
        }
        if context.registry.get(&name).is_none() {
            return Err(Rejection::Response(format!(
                "make sure the chaincode {name} has been successfully defined on channel {channel_id} and try again: chaincode {name} not found"
            )));
        }
        let installed = Installed { chaincodes: &self.chaincodes, registry: &context.registry };
        let mut tx_context = context_of(&proposal, Some(signed.clone()));
        decorate(&mut tx_context, &resources.config, &name, self.record_key.get());
        tx_context.collections =
            Some(Arc::new(ChannelCollections { context: context.clone(), creator: creator.clone() }));
        let simulated = simulate(&name, &tx_context, &snapshot, &installed)
            .map_err(|e| Rejection::Response(format!("error in simulation: {e}")))?;
        if simulated.response.status >= ERROR_THRESHOLD {
            // No endorsement. Fabric returns the rw-set only for errors from 500 on.
            let payload = if simulated.response.status >= ERROR {
                medfabric_types::endorsement::response_payload(&proposal, &simulated_result(&simulated))
            } else {
                Default::default()
            };
            let response = ProposalResponse {
                version: 0,
                timestamp: None,
                response: Some(simulated.response),
                payload,
                endorsement: None,
                interest: None,
            };
            return Ok((response, None));
        }
        let chaincode_interest = interest(&simulated.record, &snapshot, &context);
        let mut response = endorse(&proposal, simulated_result(&simulated), &self.signer);
        response.interest = Some(chaincode_interest);
        let private = simulated.private.map(|rwset| PrivateResult {
            channel: channel.clone(),
            tx_id: proposal.tx_id().to_owned(),
            rwset,
        });
        Ok((response, private))
    }
}

/// Does a collection of the write set require pushes to other peers?
fn private_needs_peers(private: &PrivateResult, membership: &crate::channel::Membership) -> bool {
    use crate::pvtdata::CollectionView;
    private.rwset.ns_pvt_rwset.iter().any(|ns| {
        ns.collection_pvt_rwset.iter().any(|c| {
            membership
                .collection(&ns.namespace, &c.collection_name)
                .is_some_and(|c| c.required_peer_count > 0)
        })
    })
}

fn simulated_result(simulated: &crate::simulator::Simulated) -> SimulationResult {
    SimulationResult {
        response: simulated.response.clone(),
        results: simulated.results.clone(),
        events: simulated.events.clone(),
        chaincode_id: simulated.chaincode_id.clone(),
    }
}

/// Proposals processed at once by default (Fabric's
/// `peer.limits.concurrency.endorserService`).
pub const DEFAULT_CONCURRENCY: usize = 2500;

/// The gRPC service over [`Endorser`], with a bound on proposals in progress.
#[derive(Debug, Clone)]
pub struct EndorserService {
    endorser: Arc<Endorser>,
    permits: Arc<tokio::sync::Semaphore>,
    metrics: Option<Arc<crate::metrics::PeerMetrics>>,
}

impl EndorserService {
    pub fn new(endorser: Arc<Endorser>) -> Self {
        Self::with_concurrency(endorser, DEFAULT_CONCURRENCY)
    }

    pub fn with_concurrency(endorser: Arc<Endorser>, limit: usize) -> Self {
        Self { endorser, permits: Arc::new(tokio::sync::Semaphore::new(limit.max(1))), metrics: None }
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::PeerMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

#[tonic::async_trait]
impl protos::endorser_server::Endorser for EndorserService {
    async fn process_proposal(
        &self,
        request: tonic::Request<protos::SignedProposal>,
    ) -> Result<tonic::Response<ProposalResponse>, tonic::Status> {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Err(tonic::Status::resource_exhausted("too many proposals in progress; retry later"));
        };
        let signed = request.into_inner();
        let started = std::time::Instant::now();
        let outcome = self.endorser.endorse(signed).await;
        drop(permit);
        if let Some(metrics) = &self.metrics {
            metrics.proposal(started.elapsed(), matches!(&outcome, Ok(r) if r.endorsement.is_some()));
        }
        match outcome {
            Ok(response) => Ok(tonic::Response::new(response)),
            Err(Rejection::Error(message)) => Err(tonic::Status::unknown(message)),
            Err(Rejection::Response(message)) => Ok(tonic::Response::new(ProposalResponse {
                version: 0,
                timestamp: None,
                response: Some(Response { status: ERROR, message, payload: Default::default() }),
                payload: Default::default(),
                endorsement: None,
                interest: None,
            })),
        }
    }
}
