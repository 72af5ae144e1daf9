//! The peer process: node configuration (written by `medfabric network generate`), the
//! gRPC server, and the commit loop fed by a block source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use medfabric_config::tls::TlsConfig;
use medfabric_msp::SigningIdentity;
use medfabric_proto::gateway::gateway_server::GatewayServer;
use medfabric_proto::protos::deliver_server::DeliverServer;
use medfabric_proto::protos::endorser_server::EndorserServer;
use medfabric_shim::Chaincode;
use medfabric_types::block::decode_block;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::channel::Channel;
use crate::deliver::DeliverService;
use crate::endorser::{Endorser, EndorserService};
use crate::gateway::{Gateway, GatewayOptions, GatewayService, RemotePeer};
use crate::intake::OrdererSource;
use crate::ledger::Store;
use crate::metrics::PeerMetrics;
use crate::pvtdata::PvtKey;
use crate::pvtnet::{PeerInfo, PrivateDataService, PrivatePeers, reconcile};
use crate::source::BlockSource;
use medfabric_proto::medfabric::pvt::private_data_server::PrivateDataServer;

pub use medfabric_config::peer::{GatewaySection, PeerConfig, PeerEntry, PrivateDataSection};

/// The chaincodes compiled into the peer, by implementation name.
pub fn builtin_chaincodes() -> BTreeMap<String, Arc<dyn Chaincode>> {
    let mut builtins: BTreeMap<String, Arc<dyn Chaincode>> = BTreeMap::new();
    builtins.insert("kv".into(), Arc::new(medfabric_kv::chaincode()));
    builtins.insert("medical".into(), Arc::new(medfabric_medical::chaincode()));
    builtins
}

fn installed_chaincodes(config: &PeerConfig) -> Result<BTreeMap<String, Arc<dyn Chaincode>>> {
    let builtins = builtin_chaincodes();
    if config.chaincodes.is_empty() {
        return Ok(builtins);
    }
    let mut installed = BTreeMap::new();
    for (name, implementation) in &config.chaincodes {
        let Some(chaincode) = builtins.get(implementation) else {
            // As a Fabric peer without the package: proposals for it fail, nothing else.
            tracing::warn!("chaincode {name}: no built-in chaincode {implementation:?}; not installed");
            continue;
        };
        installed.insert(name.clone(), chaincode.clone());
    }
    Ok(installed)
}

/// Loads the org's record key and checks it is the one the channel config publishes for
/// this org; it goes to the chaincodes that run the medical implementation. A peer whose
/// organization the config it starts from does not publish yet (one joining from the
/// genesis block, added later) starts without it.
fn record_key(
    config: &PeerConfig,
    file: &Path,
    channel: &Channel,
) -> Result<Option<crate::simulator::RecordKey>> {
    let pem = std::fs::read_to_string(file)
        .with_context(|| format!("reading the record key {}", file.display()))?;
    let key = medfabric_ca::KeyPair::from_pem(&pem).with_context(|| format!("parsing {}", file.display()))?;
    let context = channel.context();
    let published = context.resources.config.record_keys.get(&config.msp_id);
    if published.is_none()
        && !context.resources.config.application_orgs.iter().any(|o| o.msp_id == config.msp_id)
    {
        return Ok(None);
    }
    if published.map(Vec::as_slice) != Some(key.public_key_sec1()) {
        bail!(
            "{} is not {}'s record key in the channel config of {}",
            file.display(),
            config.msp_id,
            config.channel
        );
    }
    let chaincodes = if config.chaincodes.is_empty() {
        ["medical".to_owned()].into()
    } else {
        config
            .chaincodes
            .iter()
            .filter(|(_, implementation)| *implementation == "medical")
            .map(|(n, _)| n.clone())
            .collect()
    };
    Ok(Some(crate::simulator::RecordKey::new(&config.msp_id, key.secret().to_bytes().to_vec(), chaincodes)))
}

/// A running peer's parts.
#[derive(Debug, Clone)]
pub struct Peer {
    pub channel: Arc<Channel>,
    pub endorser: Arc<Endorser>,
    pub signer: Arc<SigningIdentity>,
    pub metrics: Arc<PeerMetrics>,
    /// The other peers, for private data (none when the config names no peers).
    pub private_peers: Option<Arc<PrivatePeers>>,
    pub private_data: PrivateDataSection,
}

impl Peer {
    /// Opens the ledger (committing the genesis block the first time) and loads the
    /// identity and chaincodes.
    pub fn open(config: &PeerConfig) -> Result<Self> {
        let genesis_bytes = std::fs::read(&config.genesis_block)
            .with_context(|| format!("reading genesis block {}", config.genesis_block.display()))?;
        let genesis = decode_block(&genesis_bytes).context("decoding the genesis block")?;
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("ledger")).context("opening the ledger")?;
        let channel = Arc::new(Channel::open(&store, &genesis)?);
        if channel.channel_id() != config.channel {
            bail!(
                "the genesis block is for channel {}, the config names {}",
                channel.channel_id(),
                config.channel
            );
        }
        let signer = Arc::new(
            SigningIdentity::from_msp_dir(&config.msp_dir, &config.msp_id)
                .with_context(|| format!("loading the peer identity from {}", config.msp_dir.display()))?,
        );
        let channels = BTreeMap::from([(channel.channel_id().to_owned(), channel.clone())]);
        channel.set_member_identity(signer.serialized().clone());
        channel.set_local_crls(read_crls(&config.msp_dir)?)?;
        channel.set_transient_retention(config.private_data.transient_retention_blocks);
        let endorser = Arc::new(Endorser::new(channels, installed_chaincodes(config)?, signer.clone()));
        endorser.set_max_clock_skew(Duration::from_millis(config.max_clock_skew_ms));
        if let Some(file) = &config.record_key_file {
            match record_key(config, file, &channel)? {
                Some(key) => endorser.set_record_key(key),
                None => tracing::warn!(
                    "{} is not in the channel config this peer starts from: its record key is taken once a config block adds it",
                    config.msp_id
                ),
            }
        }
        let metrics = Arc::new(PeerMetrics::new());
        metrics.height.set(i64::try_from(channel.height()?).unwrap_or(i64::MAX));
        let others: Vec<PeerInfo> = config
            .peers
            .iter()
            .map(|p| {
                let remote = RemotePeer::from_cert_file(&p.msp_id, &p.address, &p.cert_file)?;
                Ok((remote.msp_id, remote.address, remote.identity))
            })
            .collect::<Result<Vec<PeerInfo>>>()?
            .into_iter()
            .filter(|(_, _, identity)| identity != signer.serialized())
            .collect();
        let private_peers = if others.is_empty() {
            None
        } else {
            let tls = config.tls.as_ref().map(TlsConfig::client).transpose()?;
            let timeout = Duration::from_millis(config.private_data.push_timeout_ms);
            let peers = Arc::new(PrivatePeers::new(
                &others,
                tls.as_ref(),
                signer.clone(),
                timeout,
                config.limits.max_message_bytes,
            )?);
            endorser.set_private_peers(peers.clone());
            Some(peers)
        };
        Ok(Self {
            channel,
            endorser,
            signer,
            metrics,
            private_peers,
            private_data: config.private_data.clone(),
        })
    }

    /// Serves Endorser, Gateway and Deliver on `listener` (TLS when configured) and
    /// operations HTTP on `operations`, until `shutdown` resolves. `address` is the
    /// address others reach this peer at (named in gateway error details).
    pub async fn serve(
        &self,
        config: &PeerConfig,
        listener: TcpListener,
        address: &str,
        operations: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let limits = &config.limits;
        let gateway = self.gateway(config, address)?;
        let endorser = EndorserServer::new(
            EndorserService::new(self.endorser.clone()).with_metrics(self.metrics.clone()),
        )
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
        let gateway = GatewayServer::new(GatewayService::new(gateway))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        let deliver =
            DeliverServer::new(DeliverService::new(self.endorser.channels().clone(), self.metrics.clone()))
                .max_decoding_message_size(limits.max_message_bytes)
                .max_encoding_message_size(limits.max_message_bytes);
        let private = PrivateDataServer::new(
            PrivateDataService::new(self.endorser.channels().clone()).with_tls_binding(config.tls.is_some()),
        )
        .max_decoding_message_size(limits.max_message_bytes)
        .max_encoding_message_size(limits.max_message_bytes);
        let stop = medfabric_node::ops::Stop::new(shutdown);
        let reconciler = {
            let stopped = stop.stopped();
            let peers = self.private_peers.clone();
            let channel = self.channel.clone();
            let interval = Duration::from_millis(self.private_data.reconcile_interval_ms.max(100));
            let batch = self.private_data.reconcile_batch_size.max(1);
            async move {
                let Some(peers) = peers else { return };
                tokio::select! {
                    _ = reconcile(channel, peers, interval, batch) => {}
                    _ = stopped => {}
                }
            }
        };
        let router = tonic::transport::Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .add_service(endorser)
            .add_service(gateway)
            .add_service(deliver)
            .add_service(private);
        // With TLS, the client certificates accepted follow the channel config's TLS CAs.
        let (grpc, trust_watch) = match &config.tls {
            Some(tls) => {
                let trust = medfabric_node::tls::ChannelTrust::new(
                    &std::fs::read(&tls.ca_file)
                        .with_context(|| format!("reading {}", tls.ca_file.display()))?,
                    tls.client_auth_required,
                )?;
                trust.update(&self.channel.context().resources)?;
                let cert = std::fs::read(&tls.cert_file)
                    .with_context(|| format!("reading {}", tls.cert_file.display()))?;
                let key = std::fs::read(&tls.key_file)
                    .with_context(|| format!("reading {}", tls.key_file.display()))?;
                let server = medfabric_node::tls::server_config(&cert, &key, trust.clone())?;
                let incoming = medfabric_node::tls::incoming(listener, server);
                let grpc: futures_grpc::Serving =
                    Box::pin(router.serve_with_incoming_shutdown(incoming, stop.stopped()));
                (grpc, Some(watch_trust(self.channel.clone(), trust)))
            }
            None => {
                let grpc: futures_grpc::Serving = Box::pin(
                    router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop.stopped()),
                );
                (grpc, None)
            }
        };
        let trust_watch = {
            let stopped = stop.stopped();
            async move {
                let Some(watch) = trust_watch else { return };
                tokio::select! {
                    () = watch => {}
                    () = stopped => {}
                }
            }
        };
        let operations = async {
            let Some(listener) = operations else { return Ok(()) };
            medfabric_node::ops::serve(listener, self.health(), self.metrics.registry.clone(), stop.stopped())
                .await
        };
        let crl_watch = {
            let stopped = stop.stopped();
            let watch = watch_crls(self.channel.clone(), config.msp_dir.clone());
            async move {
                tokio::select! {
                    () = watch => {}
                    () = stopped => {}
                }
            }
        };
        let record_key_watch = {
            let stopped = stop.stopped();
            let (channel, endorser, config) = (self.channel.clone(), self.endorser.clone(), config.clone());
            async move {
                let Some(file) = config.record_key_file.clone() else { return };
                if endorser.has_record_key() {
                    return;
                }
                tokio::select! {
                    () = watch_record_key(channel, endorser, config, file) => {}
                    () = stopped => {}
                }
            }
        };
        let (grpc, operations, (), (), (), ()) =
            tokio::join!(grpc, operations, reconciler, crl_watch, trust_watch, record_key_watch);
        grpc.context("gRPC server")?;
        operations
    }

    /// The gateway over this peer's endorser, the other peers of the config and the
    /// orderers.
    fn gateway(&self, config: &PeerConfig, address: &str) -> Result<Arc<Gateway>> {
        let client_tls = config.tls.as_ref().map(TlsConfig::client).transpose()?;
        let remotes = config
            .peers
            .iter()
            .filter(|p| p.address != address)
            .map(|p| RemotePeer::from_cert_file(&p.msp_id, &p.address, &p.cert_file))
            .collect::<Result<Vec<_>>>()?;
        let options = GatewayOptions {
            concurrency_limit: config.gateway.concurrency_limit,
            endorsement_timeout: Duration::from_millis(config.gateway.endorsement_timeout_ms),
            broadcast_timeout: Duration::from_millis(config.gateway.broadcast_timeout_ms),
            commit_status_timeout: Duration::from_millis(config.gateway.commit_status_timeout_ms),
            max_message_bytes: config.limits.max_message_bytes,
        };
        Ok(Arc::new(Gateway::new(
            self.endorser.clone(),
            &config.msp_id,
            address,
            remotes,
            config.orderer_endpoints.clone(),
            client_tls,
            options,
            self.metrics.clone(),
        )?))
    }

    /// The operations `/healthz` check: the ledger answers with its height.
    fn health(&self) -> medfabric_node::ops::HealthFn {
        let channel = self.channel.clone();
        Arc::new(move || match channel.height() {
            Ok(height) => {
                (Vec::new(), serde_json::json!({"channel": channel.channel_id(), "height": height}))
            }
            Err(e) => (
                vec![medfabric_node::ops::FailedCheck { component: "ledger".into(), reason: e.to_string() }],
                serde_json::Value::Null,
            ),
        })
    }

    /// Commits blocks from `source` until it ends. A block that cannot be committed
    /// stops the loop with an error: the ledger stays at the previous block.
    pub async fn commit_from(&self, mut source: impl BlockSource) -> Result<()> {
        loop {
            let next = self.channel.height()?;
            let Some(block) = source.next_block(next).await.map_err(anyhow::Error::msg)? else {
                return Ok(());
            };
            let supplied = self.pull_private(&block).await?;
            let channel = self.channel.clone();
            let event = tokio::task::spawn_blocking(move || channel.commit_with(&block, &supplied)).await??;
            self.metrics.committed(&event);
            let valid = event.txs.iter().filter(|t| t.code as i32 == 0).count();
            tracing::debug!(block = event.number, txs = event.txs.len(), valid, "committed block");
        }
    }

    /// Private data of `block` this peer should hold and its transient store lacks,
    /// fetched from other member peers within the pull timeout.
    async fn pull_private(
        &self,
        block: &medfabric_proto::common::Block,
    ) -> Result<BTreeMap<PvtKey, bytes::Bytes>> {
        let Some(peers) = &self.private_peers else { return Ok(BTreeMap::new()) };
        let needs = self.channel.private_needs(block)?;
        if needs.is_empty() {
            return Ok(BTreeMap::new());
        }
        let membership = self.channel.membership();
        let timeout = Duration::from_millis(self.private_data.pull_timeout_ms);
        let pulled = peers.pull(self.channel.channel_id(), &membership, &needs);
        Ok(tokio::time::timeout(timeout, pulled).await.unwrap_or_default())
    }

    /// The ordering service as this peer's block source.
    pub fn orderer_source(&self, config: &PeerConfig) -> Result<OrdererSource> {
        Ok(OrdererSource::new(
            &config.channel,
            config.orderer_endpoints.clone(),
            config.tls.as_ref().map(TlsConfig::client).transpose()?,
            self.signer.clone(),
            config.limits.max_message_bytes,
        ))
    }
}

/// The revocation lists in an MSP folder's `crls/` (PEM files), in name order.
pub fn read_crls(msp_dir: &Path) -> Result<Vec<Vec<u8>>> {
    let dir = msp_dir.join("crls");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    files.sort();
    files.iter().map(|f| std::fs::read(f).with_context(|| format!("reading {}", f.display()))).collect()
}

/// Binds the configured (or overriding) listen address.
pub async fn bind(address: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await.with_context(|| format!("binding {address}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The gRPC server's future, whichever listener it serves.
mod futures_grpc {
    pub type Serving =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>>;
}

/// Takes the org's record key once a config block publishes it (a peer that joined from
/// the genesis block before its org was added), checked as at start.
async fn watch_record_key(
    channel: Arc<Channel>,
    endorser: Arc<Endorser>,
    config: PeerConfig,
    file: std::path::PathBuf,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match record_key(&config, &file, &channel) {
            Ok(Some(key)) => {
                endorser.set_record_key(key);
                tracing::info!(
                    "{}'s record key is in the channel config: the medical chaincode has it",
                    config.msp_id
                );
                return;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("record key: {e}");
                return;
            }
        }
    }
}

/// Keeps the TLS client trust on the channel's config: checked every second, applied
/// when a config block changed it.
async fn watch_trust(channel: Arc<Channel>, trust: Arc<medfabric_node::tls::ChannelTrust>) {
    let mut sequence = channel.context().resources.config.sequence;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let resources = channel.context().resources.clone();
        if resources.config.sequence != sequence {
            sequence = resources.config.sequence;
            match trust.update(&resources) {
                Ok(()) => tracing::info!(sequence, "TLS client trust follows the new channel config"),
                Err(e) => tracing::warn!("TLS client trust: {e}"),
            }
        }
    }
}

/// Every 2 s, puts the revocation lists of `msp_dir` in force when they changed. Runs
/// until dropped.
async fn watch_crls(channel: Arc<Channel>, msp_dir: std::path::PathBuf) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        match read_crls(&msp_dir).map(|crls| channel.set_local_crls(crls)) {
            Ok(Ok(true)) => tracing::info!("revocation lists in {} now in force", msp_dir.display()),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!("revocation lists: {e}"),
            Err(e) => tracing::warn!("revocation lists: {e}"),
        }
    }
}
