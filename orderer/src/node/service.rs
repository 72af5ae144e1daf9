//! The node's gRPC services (Broadcast and Deliver for clients, Cluster for consenters),
//! its metrics, and `serve`, which runs them with the operations endpoint.

use super::*;

/// `orderer.AtomicBroadcast`.
#[derive(Debug, Clone)]
pub struct BroadcastService {
    orderer: Arc<Orderer>,
}

impl BroadcastService {
    pub fn new(orderer: Arc<Orderer>) -> Self {
        Self { orderer }
    }
}

fn broadcast_answer(outcome: Result<(), Refusal>) -> BroadcastResponse {
    match outcome {
        Ok(()) => BroadcastResponse { status: Status::Success as i32, info: String::new() },
        Err(refusal) => BroadcastResponse { status: refusal.status as i32, info: refusal.info },
    }
}

#[tonic::async_trait]
impl AtomicBroadcast for BroadcastService {
    type BroadcastStream = ResponseStream<BroadcastResponse>;
    type DeliverStream = ResponseStream<DeliverResponse>;

    async fn broadcast(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<Self::BroadcastStream>, tonic::Status> {
        let orderer = self.orderer.clone();
        // Envelopes this stream sends through a follower go to the leader over one
        // ordered stream, so the stream's order holds wherever it enters.
        let mut forwarder: Option<Forwarder> = None;
        let answers =
            in_order(request.into_inner(), move |envelope: Envelope| -> Answer<BroadcastResponse> {
                let outcome = match orderer.admit(&envelope) {
                    Ok(admitted) => orderer.submit(envelope.encode_to_vec().into(), admitted, &mut forwarder),
                    Err(refusal) => Box::pin(std::future::ready(Err(refusal))),
                };
                let metrics = orderer.metrics.clone();
                Box::pin(async move {
                    let answer = broadcast_answer(outcome.await);
                    let status = Status::try_from(answer.status).map_or("UNKNOWN", |s| s.as_str_name());
                    metrics.broadcast_processed.with_label_values(&[status]).inc();
                    answer
                })
            });
        Ok(tonic::Response::new(Box::pin(answers)))
    }

    async fn deliver(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<Self::DeliverStream>, tonic::Status> {
        let mut incoming = request.into_inner();
        let orderer = self.orderer.clone();
        let (out_tx, out_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(next) = incoming.next().await {
                let Ok(envelope) = next else { break };
                let status = match deliver_blocks(&orderer, &envelope, &out_tx).await {
                    Ok(()) => Status::Success,
                    Err(refusal) => {
                        tracing::debug!("deliver refused: {}", refusal.info);
                        refusal.status
                    }
                };
                let done = DeliverResponse { r#type: Some(deliver_response::Type::Status(status as i32)) };
                if out_tx.send(Ok(done)).await.is_err() {
                    break;
                }
            }
        });
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// Serves one seek request: checks it (channel Readers), then streams the blocks it
/// asks for.
async fn deliver_blocks(
    orderer: &Orderer,
    envelope: &Envelope,
    out: &mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
) -> Result<(), Refusal> {
    use medfabric_node::deliver::{check_seek_request, seek_range, stream_blocks};
    let request = check_seek_request(
        envelope,
        &orderer.resources(),
        "/Channel/Readers",
        medfabric_node::deliver::now_unix(),
    )?;
    let range = seek_range(&request.seek, orderer.store.height())?;
    orderer.metrics.deliver_streams_opened.inc();
    let sent = orderer.metrics.deliver_blocks_sent.clone();
    let fetch = |number| orderer.store.block(number).map_err(|e| e.to_string());
    stream_blocks(range, orderer.store.watch_height(), fetch, out, |block| {
        sent.inc();
        Some(DeliverResponse { r#type: Some(deliver_response::Type::Block(block)) })
    })
    .await
}

/// `medfabric.orderer.Cluster`: Raft messages and envelopes forwarded by followers.
#[derive(Debug, Clone)]
pub struct ClusterService {
    orderer: Arc<Orderer>,
}

impl ClusterService {
    /// The leader's verdict on one forwarded envelope (queued before this returns).
    fn accept(&self, request: SubmitRequest) -> Answer<SubmitResponse> {
        let refuse = |status: Status, info: String| -> Answer<SubmitResponse> {
            Box::pin(std::future::ready(SubmitResponse { status: status as i32, info }))
        };
        if request.channel_id != self.orderer.channel_id {
            return refuse(Status::NotFound, "unknown channel".into());
        }
        let envelope = match Envelope::decode(request.envelope.as_ref()) {
            Ok(envelope) => envelope,
            Err(e) => return refuse(Status::BadRequest, format!("envelope: {e}")),
        };
        // The leader checks forwarded envelopes again: it trusts no one's admission.
        let outcome = match self.orderer.admit(&envelope) {
            Ok(admitted) if self.orderer.is_leader() => {
                self.orderer.submit(request.envelope, admitted, &mut None)
            }
            Ok(_) => return refuse(Status::ServiceUnavailable, "not the leader".into()),
            Err(refusal) => return refuse(refusal.status, refusal.info),
        };
        Box::pin(async move {
            let answer = broadcast_answer(outcome.await);
            SubmitResponse { status: answer.status, info: answer.info }
        })
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    type SubmitStreamStream = ResponseStream<SubmitResponse>;

    async fn submit_stream(
        &self,
        request: tonic::Request<tonic::Streaming<SubmitRequest>>,
    ) -> Result<tonic::Response<Self::SubmitStreamStream>, tonic::Status> {
        let service = self.clone();
        let answers = in_order(request.into_inner(), move |request: SubmitRequest| service.accept(request));
        Ok(tonic::Response::new(Box::pin(answers)))
    }

    async fn raft(
        &self,
        request: tonic::Request<RaftMessage>,
    ) -> Result<tonic::Response<RaftMessage>, tonic::Status> {
        raft::handle_raft_message(&self.orderer.raft, request.into_inner())
            .await
            .map(tonic::Response::new)
            .map_err(tonic::Status::invalid_argument)
    }

    async fn submit(
        &self,
        request: tonic::Request<SubmitRequest>,
    ) -> Result<tonic::Response<SubmitResponse>, tonic::Status> {
        Ok(tonic::Response::new(self.accept(request.into_inner()).await))
    }
}

/// The orderer's Prometheus metrics (Fabric's names where Fabric has one).
#[derive(Debug, Clone)]
pub struct OrdererMetrics {
    pub registry: prometheus::Registry,
    pub broadcast_processed: prometheus::IntCounterVec,
    pub deliver_streams_opened: prometheus::IntCounter,
    pub deliver_blocks_sent: prometheus::IntCounter,
    pub is_leader: prometheus::IntGauge,
    pub term: prometheus::IntGauge,
    pub leader_id: prometheus::IntGauge,
    pub committed_block_number: prometheus::IntGauge,
    pub cluster_size: prometheus::IntGauge,
}

impl OrdererMetrics {
    pub(super) fn new() -> Self {
        use medfabric_node::ops::register;
        use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};
        let registry = prometheus::Registry::new();
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).map(|g| register(&registry, g)).expect("valid metric")
        };
        Self {
            broadcast_processed: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("broadcast_processed_count", "Envelopes answered by Broadcast, by status"),
                    &["status"],
                )
                .expect("valid metric"),
            ),
            deliver_streams_opened: register(
                &registry,
                IntCounter::new("deliver_streams_opened", "Deliver seek requests accepted")
                    .expect("valid metric"),
            ),
            deliver_blocks_sent: register(
                &registry,
                IntCounter::new("deliver_blocks_sent", "Blocks sent by Deliver").expect("valid metric"),
            ),
            is_leader: gauge("consensus_etcdraft_is_leader", "1 when this consenter leads the Raft cluster"),
            term: gauge("consensus_raft_term", "The current Raft term"),
            leader_id: gauge("consensus_raft_leader_id", "The Raft leader's consenter id (0: none)"),
            committed_block_number: gauge(
                "consensus_etcdraft_committed_block_number",
                "The number of the last block written",
            ),
            cluster_size: gauge("consensus_etcdraft_cluster_size", "Consenters in the Raft cluster"),
            registry,
        }
    }

    /// Refreshes the Raft and chain gauges.
    fn refresh(&self, orderer: &Orderer) {
        let (leader, term, leads) = orderer.raft_status();
        self.is_leader.set(i64::from(leads));
        self.term.set(i64::try_from(term).unwrap_or(i64::MAX));
        self.leader_id.set(leader.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)));
        self.committed_block_number.set(i64::try_from(orderer.store.height()).unwrap_or(i64::MAX) - 1);
        self.cluster_size.set(orderer.resources().config.consenters.len() as i64);
    }
}

/// Serves the client services on `listener`, the cluster service on `cluster`, and
/// operations HTTP (`/healthz`, `/metrics`) on `operations`, until `shutdown` resolves.
/// With `tls`, client links use TLS (client certificates optional unless required) and
/// cluster links mutual TLS.
pub async fn serve(
    orderer: Arc<Orderer>,
    listener: tokio::net::TcpListener,
    cluster: tokio::net::TcpListener,
    operations: Option<tokio::net::TcpListener>,
    config: &OrdererConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let limits = &config.limits;
    let stop = medfabric_node::ops::Stop::new(shutdown);
    let mut cluster_server = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        let mut cluster_tls = tls.clone();
        cluster_tls.client_auth_required = true;
        cluster_server =
            cluster_server.tls_config(cluster_tls.server()?).context("TLS cluster configuration")?;
    }
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .add_service(
            AtomicBroadcastServer::new(BroadcastService::new(orderer.clone()))
                .max_decoding_message_size(limits.max_message_bytes)
                .max_encoding_message_size(limits.max_message_bytes),
        );
    // Clients (peers, SDKs) are trusted by the TLS CAs of the channel config in force; the
    // cluster port keeps the consenters' own TLS CAs.
    type Serving = Pin<Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>>;
    let client: Serving = match &config.tls {
        Some(tls) => {
            let trust = medfabric_node::tls::ChannelTrust::new(
                &std::fs::read(&tls.ca_file).with_context(|| format!("reading {}", tls.ca_file.display()))?,
                tls.client_auth_required,
            )?;
            trust.update(&orderer.resources())?;
            let cert = std::fs::read(&tls.cert_file)
                .with_context(|| format!("reading {}", tls.cert_file.display()))?;
            let key = std::fs::read(&tls.key_file)
                .with_context(|| format!("reading {}", tls.key_file.display()))?;
            let server = medfabric_node::tls::server_config(&cert, &key, trust.clone())?;
            let watched = orderer.clone();
            let stopped = stop.stopped();
            tokio::spawn(async move {
                tokio::pin!(stopped);
                let mut sequence = watched.resources().config.sequence;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = &mut stopped => break,
                    }
                    let resources = watched.resources();
                    if resources.config.sequence != sequence {
                        sequence = resources.config.sequence;
                        if let Err(e) = trust.update(&resources) {
                            tracing::warn!("TLS client trust: {e}");
                        }
                    }
                }
            });
            Box::pin(router.serve_with_incoming_shutdown(
                medfabric_node::tls::incoming(listener, server),
                stop.stopped(),
            ))
        }
        None => {
            Box::pin(router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.stopped()))
        }
    };
    let cluster = cluster_server
        .add_service(
            ClusterServer::new(ClusterService { orderer: orderer.clone() })
                .max_decoding_message_size(raft::MAX_CLUSTER_MESSAGE)
                .max_encoding_message_size(raft::MAX_CLUSTER_MESSAGE),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(cluster), stop.stopped());
    let operations = async {
        let Some(listener) = operations else { return Ok(()) };
        let health = orderer.clone();
        let health: medfabric_node::ops::HealthFn = Arc::new(move || {
            let (leader, term, _) = health.raft_status();
            health.metrics.refresh(&health);
            let failed = match leader {
                Some(_) => Vec::new(),
                None => vec![medfabric_node::ops::FailedCheck {
                    component: "raft".into(),
                    reason: "no Raft leader".into(),
                }],
            };
            (failed, serde_json::json!({"leader": leader, "term": term, "height": health.store().height()}))
        });
        let refresher = orderer.clone();
        let stopped = stop.stopped();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            loop {
                refresher.metrics.refresh(&refresher);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = &mut stopped => break,
                }
            }
        });
        medfabric_node::ops::serve(listener, health, orderer.metrics.registry.clone(), stop.stopped()).await
    };
    let (client, cluster, operations) = tokio::join!(client, cluster, operations);
    client.context("gRPC server")?;
    cluster.context("cluster gRPC server")?;
    operations?;
    orderer.shutdown().await;
    Ok(())
}
