//! The Rust client SDK: a gateway connection for an identity from an MSP folder, with
//! Fabric Gateway's flow — evaluate; endorse → sign → submit → commit status; chaincode
//! events; block events through the peer's Deliver service — and offline signing hooks
//! (sign a proposal's or a transaction's SHA-256 digest elsewhere, then attach it).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use medfabric_config::tls::{ClientTls, lazy_channel};
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Block, Envelope};
use medfabric_proto::gateway::gateway_client::GatewayClient;
use medfabric_proto::gateway::{
    ChaincodeEventsRequest, ChaincodeEventsResponse, CommitStatusRequest, EndorseRequest, ErrorDetail,
    EvaluateRequest, SignedChaincodeEventsRequest, SignedCommitStatusRequest, SubmitRequest,
};
use medfabric_proto::orderer::{SeekNextCommit, SeekPosition, SeekSpecified, seek_position};
use medfabric_proto::protos::deliver_client::DeliverClient;
use medfabric_proto::protos::{self, FilteredBlock, TxValidationCode, deliver_response};
use medfabric_types::deliver::{Seek, seek_envelope};
use medfabric_types::{ProposalBuilder, Transaction as ParsedTx, TransactionBody};
use prost::Message;
use sha2::{Digest, Sha256};
use tokio_stream::{Stream, StreamExt};

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The gateway answered with an error status; `details` name the failing peers.
    #[error("{code:?}: {message}{}", details_suffix(.details))]
    Gateway { code: tonic::Code, message: String, details: Vec<ErrorDetail> },
    /// The transaction was ordered but is invalid.
    #[error("transaction {tx_id} failed to commit with status code {code} ({})", code_name(*.code))]
    Commit { tx_id: String, code: i32, block_number: u64 },
    #[error("{0}")]
    Other(String),
}

fn details_suffix(details: &[ErrorDetail]) -> String {
    details.iter().map(|d| format!("\n  - {} ({}): {}", d.address, d.msp_id, d.message)).collect()
}

/// The name of a validation code (`MVCC_READ_CONFLICT`).
pub fn code_name(code: i32) -> &'static str {
    TxValidationCode::try_from(code).map_or("UNKNOWN", |c| c.as_str_name())
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let details = medfabric_proto::gateway_status::error_details(&status);
        ClientError::Gateway { code: status.code(), message: status.message().to_owned(), details }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// Deadlines of each call, as the Fabric Gateway client's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub evaluate: Duration,
    pub endorse: Duration,
    pub submit: Duration,
    pub commit_status: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            evaluate: Duration::from_secs(30),
            endorse: Duration::from_secs(30),
            submit: Duration::from_secs(30),
            commit_status: Duration::from_secs(60),
        }
    }
}

/// A connection to one peer's gateway, as one identity.
#[derive(Clone)]
pub struct Gateway {
    gateway: GatewayClient<tonic::transport::Channel>,
    deliver: DeliverClient<tonic::transport::Channel>,
    signer: Arc<SigningIdentity>,
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("msp_id", &self.signer.msp_id()).finish()
    }
}

/// Largest message a client accepts (blocks included).
const MAX_MESSAGE: usize = 100 << 20;

impl Gateway {
    /// Connects (lazily) to the peer at `address` as `signer`; TLS when `tls` is given.
    pub fn connect(
        address: &str,
        tls: Option<&ClientTls>,
        signer: Arc<SigningIdentity>,
    ) -> anyhow::Result<Self> {
        let channel = lazy_channel(address, tls)?;
        Ok(Self {
            gateway: GatewayClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            deliver: DeliverClient::new(channel).max_decoding_message_size(MAX_MESSAGE),
            signer,
            timeouts: Timeouts::default(),
        })
    }

    /// Loads the identity from an MSP folder (`signcerts/`, `keystore/`).
    pub fn identity(msp_dir: &Path, msp_id: &str) -> anyhow::Result<Arc<SigningIdentity>> {
        Ok(Arc::new(
            SigningIdentity::from_msp_dir(msp_dir, msp_id)
                .with_context(|| format!("loading identity from {}", msp_dir.display()))?,
        ))
    }

    pub fn signer(&self) -> &Arc<SigningIdentity> {
        &self.signer
    }

    pub fn network(&self, channel: &str) -> Network {
        Network { gateway: self.clone(), channel: channel.to_owned() }
    }
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn timestamp() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

/// A channel, seen through a gateway.
#[derive(Debug, Clone)]
pub struct Network {
    gateway: Gateway,
    channel: String,
}

/// Where an event stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// With the next block committed.
    NextCommit,
    /// At this block.
    Block(u64),
    /// After this transaction (a checkpoint): its block, from the transaction after it.
    AfterTransaction { block: u64, tx_id: String },
}

impl Network {
    pub fn name(&self) -> &str {
        &self.channel
    }

    /// The gateway this network is seen through (its identity signs proposals).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn contract(&self, chaincode: &str) -> Contract {
        Contract { network: self.clone(), chaincode: chaincode.to_owned() }
    }

    /// The status of a submitted transaction, waiting until it is committed.
    pub async fn commit_status(&self, tx_id: &str) -> ClientResult<CommitStatus> {
        let signer = &self.gateway.signer;
        let request = CommitStatusRequest {
            transaction_id: tx_id.to_owned(),
            channel_id: self.channel.clone(),
            identity: signer.serialized().clone(),
        }
        .encode_to_vec();
        let signature = signer.sign(&request);
        let signed = SignedCommitStatusRequest { request: request.into(), signature: signature.into() };
        let response = self
            .gateway
            .gateway
            .clone()
            .commit_status(with_timeout(signed, self.gateway.timeouts.commit_status))
            .await?
            .into_inner();
        Ok(CommitStatus {
            tx_id: tx_id.to_owned(),
            code: response.result,
            block_number: response.block_number,
        })
    }

    /// Chaincode events of valid transactions, a block's worth at a time.
    pub async fn chaincode_events(
        &self,
        chaincode: &str,
        start: Start,
    ) -> ClientResult<impl Stream<Item = ClientResult<ChaincodeEventsResponse>> + use<>> {
        let signer = &self.gateway.signer;
        let (position, after) = match start {
            Start::NextCommit => (seek_position::Type::NextCommit(SeekNextCommit {}), String::new()),
            Start::Block(number) => (seek_position::Type::Specified(SeekSpecified { number }), String::new()),
            Start::AfterTransaction { block, tx_id } => {
                (seek_position::Type::Specified(SeekSpecified { number: block }), tx_id)
            }
        };
        let request = ChaincodeEventsRequest {
            channel_id: self.channel.clone(),
            chaincode_id: chaincode.to_owned(),
            identity: signer.serialized().clone(),
            start_position: Some(SeekPosition { r#type: Some(position) }),
            after_transaction_id: after,
        }
        .encode_to_vec();
        let signature = signer.sign(&request);
        let signed = SignedChaincodeEventsRequest { request: request.into(), signature: signature.into() };
        let stream = self.gateway.gateway.clone().chaincode_events(signed).await?.into_inner();
        Ok(stream.map(|item| item.map_err(ClientError::from)))
    }

    /// Blocks committed on the peer from `start` on (with their validation codes).
    pub async fn block_events(
        &self,
        start: Start,
    ) -> ClientResult<impl Stream<Item = ClientResult<Block>> + use<>> {
        let stream = self.deliver(start, false).await?;
        Ok(stream.filter_map(|item| match item {
            Ok(protos::DeliverResponse { r#type: Some(deliver_response::Type::Block(block)) }) => {
                Some(Ok(block))
            }
            Ok(protos::DeliverResponse { r#type: Some(deliver_response::Type::Status(status)) }) => {
                Some(Err(ClientError::Other(format!("the peer ended the stream with status {status}"))))
            }
            Ok(_) => None,
            Err(status) => Some(Err(status.into())),
        }))
    }

    /// Filtered blocks (tx ids, validation codes, events without payload) from `start`.
    pub async fn filtered_block_events(
        &self,
        start: Start,
    ) -> ClientResult<impl Stream<Item = ClientResult<FilteredBlock>> + use<>> {
        let stream = self.deliver(start, true).await?;
        Ok(stream.filter_map(|item| match item {
            Ok(protos::DeliverResponse { r#type: Some(deliver_response::Type::FilteredBlock(block)) }) => {
                Some(Ok(block))
            }
            Ok(protos::DeliverResponse { r#type: Some(deliver_response::Type::Status(status)) }) => {
                Some(Err(ClientError::Other(format!("the peer ended the stream with status {status}"))))
            }
            Ok(_) => None,
            Err(status) => Some(Err(status.into())),
        }))
    }

    async fn deliver(
        &self,
        start: Start,
        filtered: bool,
    ) -> ClientResult<tonic::Streaming<protos::DeliverResponse>> {
        let start = match start {
            Start::NextCommit => Seek::NextCommit,
            Start::Block(number) | Start::AfterTransaction { block: number, .. } => Seek::Number(number),
        };
        let envelope = seek_envelope(
            &self.channel,
            &self.gateway.signer,
            start,
            Seek::Number(u64::MAX),
            true,
            timestamp(),
        );
        let request = tokio_stream::iter(vec![envelope]).chain(tokio_stream::pending());
        let mut deliver = self.gateway.deliver.clone();
        let stream =
            if filtered { deliver.deliver_filtered(request).await } else { deliver.deliver(request).await };
        Ok(stream?.into_inner())
    }
}

/// A chaincode on a channel.
#[derive(Debug, Clone)]
pub struct Contract {
    network: Network,
    chaincode: String,
}

/// The final status of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    pub tx_id: String,
    pub code: i32,
    pub block_number: u64,
}

impl CommitStatus {
    pub fn is_valid(&self) -> bool {
        self.code == TxValidationCode::Valid as i32
    }
}

impl Contract {
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// A proposal of `function(args)`, signed by the gateway's identity.
    pub fn proposal<A: AsRef<[u8]>>(&self, function: &str, args: &[A]) -> Proposal {
        self.proposal_builder(function, args).signed(&self.network.gateway.signer)
    }

    /// A proposal to be completed: transient data, endorsing organizations, offline
    /// signing.
    pub fn proposal_builder<A: AsRef<[u8]>>(&self, function: &str, args: &[A]) -> ProposalDraft {
        let mut builder =
            ProposalBuilder::new(&self.network.channel, &self.chaincode).arg(function.to_owned());
        for arg in args {
            builder = builder.arg(Bytes::copy_from_slice(arg.as_ref()));
        }
        ProposalDraft { network: self.network.clone(), builder, endorsing_orgs: Vec::new() }
    }

    /// Runs `function(args)` on a peer without ordering anything; the chaincode's answer.
    pub async fn evaluate<A: AsRef<[u8]>>(&self, function: &str, args: &[A]) -> ClientResult<Bytes> {
        self.proposal(function, args).evaluate().await
    }

    /// Endorses, signs, submits and waits for the commit; the chaincode's answer when
    /// the transaction is valid, [`ClientError::Commit`] when it is not.
    pub async fn submit<A: AsRef<[u8]>>(&self, function: &str, args: &[A]) -> ClientResult<Bytes> {
        let transaction = self.proposal(function, args).endorse().await?;
        let result = transaction.result.clone();
        let status = transaction.submit().await?.status().await?;
        if !status.is_valid() {
            return Err(ClientError::Commit {
                tx_id: status.tx_id,
                code: status.code,
                block_number: status.block_number,
            });
        }
        Ok(result)
    }
}

/// A proposal being put together.
#[derive(Debug, Clone)]
pub struct ProposalDraft {
    network: Network,
    builder: ProposalBuilder,
    endorsing_orgs: Vec<String>,
}

impl ProposalDraft {
    pub fn transient(mut self, key: &str, value: impl Into<Bytes>) -> Self {
        self.builder = self.builder.transient(key, value);
        self
    }

    /// A `ChaincodeInput` decoration (peers ignore those under their `medfabric.` prefix).
    pub fn decoration(mut self, key: &str, value: impl Into<Bytes>) -> Self {
        self.builder = self.builder.decoration(key, value);
        self
    }

    /// Endorse on exactly these organizations' peers (no endorsement plan).
    pub fn endorsing_organizations(mut self, orgs: &[&str]) -> Self {
        self.endorsing_orgs = orgs.iter().map(|o| (*o).to_owned()).collect();
        self
    }

    /// Signs with `signer` now.
    pub fn signed(self, signer: &SigningIdentity) -> Proposal {
        let signed = self.builder.sign(signer, timestamp());
        Proposal::new(self.network, signed, self.endorsing_orgs)
    }

    /// The unsigned proposal of `creator` (serialized identity), for offline signing:
    /// sign [`Proposal::digest`] elsewhere, then [`Proposal::with_signature`].
    pub fn unsigned(self, creator: Bytes) -> Proposal {
        let signed = self.builder.build(creator, timestamp());
        Proposal::new(self.network, signed, self.endorsing_orgs)
    }
}

/// A signed (or to-be-signed) proposal.
#[derive(Debug, Clone)]
pub struct Proposal {
    network: Network,
    signed: protos::SignedProposal,
    tx_id: String,
    endorsing_orgs: Vec<String>,
}

impl Proposal {
    fn new(network: Network, signed: protos::SignedProposal, endorsing_orgs: Vec<String>) -> Self {
        // The tx id is in the proposal bytes; an unsigned proposal (offline signing)
        // has one too, so parse with a stand-in signature.
        let mut probe = signed.clone();
        if probe.signature.is_empty() {
            probe.signature = Bytes::from_static(&[0]);
        }
        let tx_id = medfabric_types::SignedProposal::parse_structure(&probe)
            .map(|p| p.tx_id().to_owned())
            .unwrap_or_default();
        Self { network, signed, tx_id, endorsing_orgs }
    }

    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// SHA-256 of the proposal bytes: what an offline signer signs.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.signed.proposal_bytes).into()
    }

    /// Attaches a signature made elsewhere (DER ECDSA over [`Proposal::digest`]).
    pub fn with_signature(mut self, signature: Vec<u8>) -> Self {
        self.signed.signature = signature.into();
        self
    }

    pub fn signed_proposal(&self) -> &protos::SignedProposal {
        &self.signed
    }

    pub async fn evaluate(&self) -> ClientResult<Bytes> {
        let request = EvaluateRequest {
            transaction_id: self.tx_id.clone(),
            channel_id: self.network.channel.clone(),
            proposed_transaction: Some(self.signed.clone()),
            target_organizations: self.endorsing_orgs.clone(),
        };
        let timeout = self.network.gateway.timeouts.evaluate;
        let response = self.network.gateway.gateway.clone().evaluate(with_timeout(request, timeout)).await?;
        Ok(response.into_inner().result.map(|r| r.payload).unwrap_or_default())
    }

    /// Collects the endorsements; the prepared transaction, signed by the gateway's
    /// identity unless it is to be signed offline ([`Transaction::digest`]).
    pub async fn endorse(&self) -> ClientResult<Transaction> {
        let mut transaction = self.endorse_unsigned().await?;
        let signature = self.network.gateway.signer.sign(&transaction.envelope.payload);
        transaction.envelope.signature = signature.into();
        Ok(transaction)
    }

    /// Collects the endorsements, leaving the transaction unsigned.
    pub async fn endorse_unsigned(&self) -> ClientResult<Transaction> {
        let request = EndorseRequest {
            transaction_id: self.tx_id.clone(),
            channel_id: self.network.channel.clone(),
            proposed_transaction: Some(self.signed.clone()),
            endorsing_organizations: self.endorsing_orgs.clone(),
        };
        let timeout = self.network.gateway.timeouts.endorse;
        let envelope = self
            .network
            .gateway
            .gateway
            .clone()
            .endorse(with_timeout(request, timeout))
            .await?
            .into_inner()
            .prepared_transaction
            .ok_or_else(|| ClientError::Other("the gateway returned no transaction".into()))?;
        let result = transaction_result(&envelope).unwrap_or_default();
        Ok(Transaction { network: self.network.clone(), tx_id: self.tx_id.clone(), envelope, result })
    }
}

/// The chaincode's response payload inside a prepared transaction.
fn transaction_result(envelope: &Envelope) -> Option<Bytes> {
    let tx = ParsedTx::from_envelope(envelope.clone()).ok()?;
    match &tx.body {
        TransactionBody::Endorser(endorser) => endorser.action.response.as_ref().map(|r| r.payload.clone()),
        _ => None,
    }
}

/// An endorsed transaction, ready to submit.
#[derive(Debug, Clone)]
pub struct Transaction {
    network: Network,
    tx_id: String,
    envelope: Envelope,
    /// The chaincode's response payload.
    pub result: Bytes,
}

impl Transaction {
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// SHA-256 of the envelope payload: what an offline signer signs.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.envelope.payload).into()
    }

    pub fn with_signature(mut self, signature: Vec<u8>) -> Self {
        self.envelope.signature = signature.into();
        self
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// Sends the signed transaction to the ordering service through the gateway.
    pub async fn submit(&self) -> ClientResult<Submitted> {
        let request = SubmitRequest {
            transaction_id: self.tx_id.clone(),
            channel_id: self.network.channel.clone(),
            prepared_transaction: Some(self.envelope.clone()),
        };
        let timeout = self.network.gateway.timeouts.submit;
        self.network.gateway.gateway.clone().submit(with_timeout(request, timeout)).await?;
        Ok(Submitted { network: self.network.clone(), tx_id: self.tx_id.clone() })
    }
}

/// A transaction handed to the ordering service.
#[derive(Debug, Clone)]
pub struct Submitted {
    network: Network,
    tx_id: String,
}

impl Submitted {
    pub fn tx_id(&self) -> &str {
        &self.tx_id
    }

    /// Waits until it is committed; its validation code and block.
    pub async fn status(&self) -> ClientResult<CommitStatus> {
        self.network.commit_status(&self.tx_id).await
    }
}
