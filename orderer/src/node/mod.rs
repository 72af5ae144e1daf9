//! An ordering node: admission checks, the leader's block cutter, forwarding from
//! followers, and the Broadcast, Deliver, Cluster and operations services.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Block, Envelope, HeaderType, Status};
use medfabric_proto::medfabric::orderer::cluster_client::ClusterClient;
use medfabric_proto::medfabric::orderer::cluster_server::{Cluster, ClusterServer};
use medfabric_proto::medfabric::orderer::{RaftMessage, SubmitRequest, SubmitResponse};
use medfabric_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use medfabric_proto::orderer::{BroadcastResponse, DeliverResponse, deliver_response};
use medfabric_types::Transaction;
use medfabric_types::block::decode_block;
use medfabric_types::config::ChannelResources;
use medfabric_types::configtx;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::{Stream, StreamExt};

use crate::cutter::{BatchLimits, BlockCutter, Pending};
use crate::raft::{self, BlockMachine, OrderError, OrdererStore, Raft};

pub use medfabric_node::deliver::Refusal;

pub use medfabric_config::OrdererConfig;

type Reply = oneshot::Sender<Result<(), Refusal>>;

/// An envelope Broadcast accepted: what the leader orders (for a config update, the
/// `CONFIG` envelope made of it), and whether it is a config.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub is_config: bool,
    pub ordered: Bytes,
}

struct Submission {
    envelope: Bytes,
    is_config: bool,
    reply: Reply,
}

/// A running ordering node.
pub struct Orderer {
    id: u64,
    channel_id: String,
    store: OrdererStore,
    raft: Raft,
    resources: Arc<RwLock<Arc<ChannelResources>>>,
    /// Signs the blocks and the CONFIG envelopes this node makes of config updates.
    signer: Arc<SigningIdentity>,
    sequencer: mpsc::Sender<Submission>,
    /// The client side of cluster links (mutual TLS), when the node has TLS material.
    cluster_tls: Option<medfabric_config::tls::ClientTls>,
    pub metrics: OrdererMetrics,
    /// One connection per leader address for forwarded envelopes.
    forwarders: std::sync::Mutex<BTreeMap<String, ClusterClient<tonic::transport::Channel>>>,
}

impl std::fmt::Debug for Orderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orderer").field("id", &self.id).field("channel_id", &self.channel_id).finish()
    }
}

fn limits_of(resources: &ChannelResources) -> BatchLimits {
    let batch = &resources.config.batch;
    BatchLimits {
        max_message_count: batch.max_message_count,
        preferred_max_bytes: batch.preferred_max_bytes,
        absolute_max_bytes: batch.absolute_max_bytes,
        batch_timeout_ms: batch.timeout_ms,
    }
}

/// Bound on envelopes waiting for the leader's cutter.
const SEQUENCER_QUEUE: usize = 10_000;
/// How long a batch (or a forwarded envelope) may wait for Raft before the client is
/// told to resubmit; resubmitting is safe, an ordered tx id is not ordered again.
const ORDER_TIMEOUT: Duration = Duration::from_secs(30);

impl Orderer {
    /// Opens the store and starts Raft and the sequencer. The cluster's members are the
    /// channel config's consenters (ids from 1, in config order) unless the node config
    /// overrides their addresses.
    pub async fn start(config: &OrdererConfig) -> Result<Arc<Self>> {
        let genesis_bytes = std::fs::read(&config.genesis_block)
            .with_context(|| format!("reading {}", config.genesis_block.display()))?;
        let genesis = decode_block(&genesis_bytes)?;
        std::fs::create_dir_all(&config.data_dir)?;
        let store = OrdererStore::open(&config.data_dir.join("raft"), &genesis)?;
        let tip = store.tip()?.context("chain tip")?;
        let config_block = store.block(tip.last_config)?.context("last config block")?;
        let resources = Arc::new(ChannelResources::from_config_block(&config_block)?);
        let channel_id = resources.config.channel_id.clone();
        let mut members: BTreeMap<u64, String> = resources
            .config
            .consenters
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u64 + 1, format!("{}:{}", c.host, c.port)))
            .collect();
        members.extend(config.cluster_peers.clone());
        if !members.contains_key(&config.consenter_id) {
            bail!("consenter {} is not among the channel's consenters {:?}", config.consenter_id, members);
        }
        let signer = Arc::new(
            SigningIdentity::from_msp_dir(&config.msp_dir, &config.msp_id)
                .with_context(|| format!("loading {}", config.msp_dir.display()))?,
        );
        let shared = Arc::new(RwLock::new(resources.clone()));
        let on_config = {
            let shared = shared.clone();
            Arc::new(move |block: &Block| match ChannelResources::from_config_block(block) {
                Ok(next) => *shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next),
                Err(e) => tracing::error!("config block does not load: {e}"),
            })
        };
        let machine = BlockMachine::new(store.clone(), signer.clone(), on_config);
        let cluster_tls = config.tls.as_ref().map(|t| t.client()).transpose()?;
        let transport: Arc<dyn raft::Transport> = Arc::new(raft::GrpcTransport::new(cluster_tls.clone()));
        let raft = raft::start(config.consenter_id, members, store.clone(), machine, transport).await?;
        let (sequencer, queue) = mpsc::channel(SEQUENCER_QUEUE);
        let orderer = Arc::new(Self {
            id: config.consenter_id,
            channel_id,
            store,
            raft,
            resources: shared,
            signer,
            sequencer,
            cluster_tls,
            metrics: OrdererMetrics::new(),
            forwarders: Default::default(),
        });
        tokio::spawn(run_sequencer(orderer.clone(), queue, limits_of(&resources)));
        Ok(orderer)
    }

    pub fn store(&self) -> &OrdererStore {
        &self.store
    }

    pub fn resources(&self) -> Arc<ChannelResources> {
        self.resources.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Leader id, term, and whether this node leads.
    pub fn raft_status(&self) -> (Option<u64>, u64, bool) {
        raft::status(&self.raft)
    }

    pub async fn shutdown(&self) {
        raft::stop(&self.raft).await;
    }

    /// Broadcast's admission checks: size, structure, channel, creator validity and
    /// signature, and the channel's Writers. A `CONFIG_UPDATE` is then validated as
    /// Fabric's configtx does and becomes the `CONFIG` envelope to order, signed by this
    /// node; a `CONFIG` envelope is never taken from a client.
    pub fn admit(&self, envelope: &Envelope) -> Result<Admitted, Refusal> {
        let resources = self.resources();
        let size = envelope.encoded_len();
        let max = resources.config.batch.absolute_max_bytes as usize;
        if size > max {
            return Err(Refusal::new(
                Status::BadRequest,
                format!("message payload is {size} bytes and exceeds maximum allowed {max} bytes"),
            ));
        }
        let tx = Transaction::from_envelope(envelope.clone())
            .map_err(|e| Refusal::new(Status::BadRequest, format!("bad envelope: {}", e.error)))?;
        if tx.channel_id() != self.channel_id {
            return Err(Refusal::new(Status::NotFound, format!("channel {} not found", tx.channel_id())));
        }
        let now = medfabric_node::deliver::now_unix();
        match HeaderType::try_from(tx.header_type()) {
            // The tx id must follow from nonce and creator: nobody can claim (and so
            // pre-empt) another client's tx id.
            Ok(HeaderType::EndorserTransaction) if !tx.tx_id_matches() => {
                Err(Refusal::new(Status::BadRequest, "tx id is not hex(SHA-256(nonce || creator))"))
            }
            Ok(HeaderType::EndorserTransaction) => {
                authorize(&resources, &tx, "/Channel/Writers", now)?;
                Ok(Admitted { is_config: false, ordered: envelope.encode_to_vec().into() })
            }
            Ok(HeaderType::ConfigUpdate) => {
                authorize(&resources, &tx, "/Channel/Writers", now).map_err(|refusal| {
                    let info = format!(
                        "config update for existing channel did not pass initial checks: {}",
                        refusal.info
                    );
                    Refusal::new(refusal.status, info)
                })?;
                let config = configtx::propose(&resources, envelope).map_err(|e| {
                    let info = format!(
                        "error applying config update to existing channel '{}': {e}",
                        self.channel_id
                    );
                    Refusal::new(Status::BadRequest, info)
                })?;
                let timestamp = prost_types::Timestamp { seconds: now, nanos: 0 };
                let ordered = configtx::config_envelope(&self.channel_id, &config, &self.signer, timestamp);
                // The CONFIG holds the whole new config and the update: it must fit too.
                let size = ordered.encoded_len();
                if size > max {
                    return Err(Refusal::new(
                        Status::BadRequest,
                        format!(
                            "config update for existing channel did not pass final checks: message payload is {size} bytes and exceeds maximum allowed {max} bytes"
                        ),
                    ));
                }
                Ok(Admitted { is_config: true, ordered: ordered.encode_to_vec().into() })
            }
            Ok(HeaderType::Config) => {
                Err(Refusal::new(Status::BadRequest, "message is of type that cannot be processed directly"))
            }
            _ => Err(Refusal::new(
                Status::BadRequest,
                format!("header type {} not accepted", tx.header_type()),
            )),
        }
    }

    /// A CONFIG admitted against a config that a later block replaced is made again from
    /// its update against the config now in force (as Fabric's leader re-processes it), or
    /// refused with the reason that update no longer holds.
    fn current_config(&self, envelope: Bytes) -> Result<Bytes, Refusal> {
        let resources = self.resources();
        let Ok(tx) = Transaction::parse(&envelope) else { return Ok(envelope) };
        let medfabric_types::TransactionBody::Config(config) = &tx.body else { return Ok(envelope) };
        let sequence = config.config.as_ref().map_or(0, |c| c.sequence);
        if sequence == resources.config.sequence + 1 {
            return Ok(envelope);
        }
        let refuse = |e: configtx::UpdateError| {
            let info = format!("error applying config update to existing channel '{}': {e}", self.channel_id);
            Refusal::new(Status::BadRequest, info)
        };
        let last_update =
            config.last_update.as_ref().ok_or_else(|| refuse(configtx::UpdateError("no update".into())))?;
        let remade = configtx::propose(&resources, last_update).map_err(refuse)?;
        let timestamp = prost_types::Timestamp { seconds: medfabric_node::deliver::now_unix(), nanos: 0 };
        let signed = configtx::config_envelope(&self.channel_id, &remade, &self.signer, timestamp);
        let (size, max) = (signed.encoded_len(), resources.config.batch.absolute_max_bytes as usize);
        if size > max {
            let info = format!(
                "config update for existing channel did not pass final checks: message payload is {size} bytes and exceeds maximum allowed {max} bytes"
            );
            return Err(Refusal::new(Status::BadRequest, info));
        }
        Ok(signed.encode_to_vec().into())
    }

    /// Orders an admitted envelope: on the leader through its cutter, on a follower
    /// through `forwarder`, the stream's ordered link to the leader. The envelope is
    /// queued before this returns, so one stream's envelopes keep their order; the
    /// future resolves once it is in a committed block.
    pub fn submit(
        self: &Arc<Self>,
        envelope: Bytes,
        admitted: Admitted,
        forwarder: &mut Option<Forwarder>,
    ) -> Answer<Result<(), Refusal>> {
        match raft::leader(&self.raft) {
            Some((leader, _)) if leader == self.id => {
                let (reply, answer) = oneshot::channel();
                let Admitted { is_config, ordered } = admitted;
                if self.sequencer.try_send(Submission { envelope: ordered, is_config, reply }).is_err() {
                    return Box::pin(async {
                        Err(Refusal::new(Status::ServiceUnavailable, "the ordering queue is full"))
                    });
                }
                Box::pin(async move {
                    answer
                        .await
                        .unwrap_or_else(|_| Err(Refusal::new(Status::ServiceUnavailable, "ordering stopped")))
                })
            }
            Some((_, address)) => {
                if forwarder.as_ref().is_none_or(|f| f.address != address || f.requests.is_closed()) {
                    match self.forwarder(&address) {
                        Ok(client) => *forwarder = Some(Forwarder::open(client, address)),
                        Err(refusal) => return Box::pin(async move { Err(refusal) }),
                    }
                }
                match forwarder.as_ref() {
                    Some(link) => link.send(SubmitRequest { channel_id: self.channel_id.clone(), envelope }),
                    None => Box::pin(async {
                        Err(Refusal::new(Status::ServiceUnavailable, "no link to the leader"))
                    }),
                }
            }
            None => Box::pin(async { Err(Refusal::new(Status::ServiceUnavailable, "no Raft leader")) }),
        }
    }

    fn forwarder(&self, address: &str) -> Result<ClusterClient<tonic::transport::Channel>, Refusal> {
        let mut forwarders = self.forwarders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = forwarders.get(address) {
            return Ok(client.clone());
        }
        let endpoint = medfabric_config::tls::endpoint(address, self.cluster_tls.as_ref())
            .map_err(|e| Refusal::new(Status::ServiceUnavailable, e.to_string()))?
            .connect_timeout(Duration::from_secs(2));
        let client = ClusterClient::new(endpoint.connect_lazy())
            .max_decoding_message_size(raft::MAX_CLUSTER_MESSAGE)
            .max_encoding_message_size(raft::MAX_CLUSTER_MESSAGE);
        forwarders.insert(address.to_owned(), client.clone());
        Ok(client)
    }

    fn is_leader(&self) -> bool {
        raft::leader(&self.raft).is_some_and(|(leader, _)| leader == self.id)
    }
}

/// The envelope's creator satisfies `policy` (see [`medfabric_node::deliver::authorize`]).
fn authorize(resources: &ChannelResources, tx: &Transaction, policy: &str, now: i64) -> Result<(), Refusal> {
    medfabric_node::deliver::authorize(resources, tx.creator(), &tx.payload, &tx.signature, policy, now)
        .map(|_| ())
}

/// A Broadcast stream's ordered link to the leader: envelopes go out on one
/// `SubmitStream` in order and verdicts come back in order.
pub struct Forwarder {
    address: String,
    requests: mpsc::Sender<(SubmitRequest, oneshot::Sender<Result<(), Refusal>>)>,
}

impl Forwarder {
    fn open(mut client: ClusterClient<tonic::transport::Channel>, address: String) -> Self {
        let (requests, mut queue) =
            mpsc::channel::<(SubmitRequest, oneshot::Sender<Result<(), Refusal>>)>(BROADCAST_WINDOW);
        let (outgoing_tx, outgoing_rx) = mpsc::channel::<SubmitRequest>(BROADCAST_WINDOW);
        let (waiters_tx, mut waiters_rx) =
            mpsc::channel::<oneshot::Sender<Result<(), Refusal>>>(BROADCAST_WINDOW);
        let leader = address.clone();
        tokio::spawn(async move {
            // Requests and their waiters enter the two queues in the same order.
            let feeder = tokio::spawn(async move {
                while let Some((request, waiter)) = queue.recv().await {
                    if waiters_tx.send(waiter).await.is_err() || outgoing_tx.send(request).await.is_err() {
                        break;
                    }
                }
            });
            let unavailable = |why: String| Err(Refusal::new(Status::ServiceUnavailable, why));
            match client.submit_stream(ReceiverStream::new(outgoing_rx)).await {
                Ok(answers) => {
                    let mut answers = answers.into_inner();
                    while let Some(waiter) = waiters_rx.recv().await {
                        let verdict = match tokio::time::timeout(ORDER_TIMEOUT, answers.message()).await {
                            Ok(Ok(Some(answer))) => match Status::try_from(answer.status) {
                                Ok(Status::Success) => Ok(()),
                                Ok(status) => Err(Refusal::new(status, answer.info)),
                                Err(_) => unavailable(answer.info),
                            },
                            Ok(Ok(None)) => unavailable(format!("leader at {leader} closed the stream")),
                            Ok(Err(e)) => unavailable(format!("leader at {leader}: {}", e.message())),
                            Err(_) => unavailable("not ordered in time; resubmit".into()),
                        };
                        let failed = verdict.is_err();
                        let _ = waiter.send(verdict);
                        if failed {
                            break;
                        }
                    }
                }
                Err(e) => {
                    while let Some(waiter) = waiters_rx.recv().await {
                        let _ = waiter
                            .send(unavailable(format!("leader at {leader} unreachable: {}", e.message())));
                    }
                }
            }
            // Whatever is still queued is answered: the link is gone.
            waiters_rx.close();
            while let Some(waiter) = waiters_rx.recv().await {
                let _ = waiter.send(unavailable("the link to the leader broke; resubmit".into()));
            }
            feeder.abort();
        });
        Self { address, requests }
    }

    fn send(&self, request: SubmitRequest) -> Answer<Result<(), Refusal>> {
        let (waiter, verdict) = oneshot::channel();
        if self.requests.try_send((request, waiter)).is_err() {
            return Box::pin(async {
                Err(Refusal::new(Status::ServiceUnavailable, "forwarding queue full; resubmit"))
            });
        }
        Box::pin(async move {
            verdict.await.unwrap_or_else(|_| {
                Err(Refusal::new(Status::ServiceUnavailable, "the link to the leader broke"))
            })
        })
    }
}

/// The leader's cutter: batches submissions and orders each batch through Raft.
async fn run_sequencer(orderer: Arc<Orderer>, mut queue: mpsc::Receiver<Submission>, limits: BatchLimits) {
    let start = Instant::now();
    let now_ms = move || start.elapsed().as_millis() as u64;
    let mut cutter: BlockCutter<Reply> = BlockCutter::new(limits);
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    // One batch at a time keeps blocks in the order they were cut.
    let (batches, mut to_order) = mpsc::channel::<Vec<Pending<Reply>>>(64);
    let raft_orderer = orderer.clone();
    tokio::spawn(async move {
        while let Some(batch) = to_order.recv().await {
            let envelopes: Vec<Bytes> = batch.iter().map(|p| p.envelope.clone()).collect();
            let outcome = match tokio::time::timeout(
                ORDER_TIMEOUT,
                raft::order(&raft_orderer.raft, &envelopes),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(OrderError::Failed("not ordered in time (no quorum?); resubmit".into())),
            };
            for pending in batch {
                let answer = match &outcome {
                    Ok(_) => Ok(()),
                    Err(OrderError::Refused(why)) => Err(Refusal::new(Status::BadRequest, why.clone())),
                    Err(OrderError::NotLeader(_)) => {
                        Err(Refusal::new(Status::ServiceUnavailable, "leadership changed; resubmit"))
                    }
                    Err(OrderError::Failed(why)) => {
                        Err(Refusal::new(Status::ServiceUnavailable, why.clone()))
                    }
                };
                let _ = pending.ticket.send(answer);
            }
        }
    });
    loop {
        tokio::select! {
            submission = queue.recv() => {
                let Some(Submission { mut envelope, is_config, reply }) = submission else { return };
                if is_config {
                    match orderer.current_config(envelope) {
                        Ok(current) => envelope = current,
                        Err(refusal) => {
                            let _ = reply.send(Err(refusal));
                            continue;
                        }
                    }
                }
                cutter.set_limits(limits_of(&orderer.resources()));
                for batch in cutter.ordered(Pending { envelope, ticket: reply }, is_config, now_ms()) {
                    if batches.send(batch).await.is_err() {
                        return;
                    }
                }
            }
            _ = ticker.tick() => {
                if !orderer.is_leader() {
                    for pending in cutter.drain() {
                        let _ = pending.ticket.send(Err(Refusal::new(Status::ServiceUnavailable, "no longer the leader; resubmit")));
                    }
                    continue;
                }
                if let Some(batch) = cutter.tick(now_ms())
                    && batches.send(batch).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

// ---- services ----------------------------------------------------------------------------
// Broadcast, Deliver and Cluster, the metrics and `serve` are in `service`.

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// Envelopes in flight per Broadcast stream.
const BROADCAST_WINDOW: usize = 1024;

type Answer<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Runs `start` on each incoming item in stream order (admission and queueing happen
/// there), and sends the answers back in the same order as each resolves.
fn in_order<In, T>(
    mut incoming: tonic::Streaming<In>,
    mut start: impl FnMut(In) -> Answer<T> + Send + 'static,
) -> ReceiverStream<Result<T, tonic::Status>>
where
    In: Send + 'static,
    T: Send + 'static,
{
    let (pending_tx, mut pending_rx) = mpsc::channel::<Answer<T>>(BROADCAST_WINDOW);
    let (out_tx, out_rx) = mpsc::channel(BROADCAST_WINDOW);
    tokio::spawn(async move {
        while let Some(Ok(item)) = incoming.next().await {
            // Each answer starts working at once; only its delivery waits its turn.
            let (done_tx, done_rx) = oneshot::channel();
            let answer = start(item);
            tokio::spawn(async move {
                let _ = done_tx.send(answer.await);
            });
            let waiting: Answer<T> =
                Box::pin(async move { done_rx.await.expect("answer task ends with a value") });
            if pending_tx.send(waiting).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(answer) = pending_rx.recv().await {
            if out_tx.send(Ok(answer.await)).await.is_err() {
                break;
            }
        }
    });
    ReceiverStream::new(out_rx)
}

mod service;
pub use service::{BroadcastService, ClusterService, OrdererMetrics, serve};
