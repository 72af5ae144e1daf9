//! The peer process: node configuration (written by `medfabric network generate`), the
//! gRPC server, and the commit loop fed by a block source.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use medfabric_msp::SigningIdentity;
use medfabric_proto::protos::endorser_server::EndorserServer;
use medfabric_shim::Chaincode;
use medfabric_types::block::decode_block;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::channel::Channel;
use crate::endorser::{Endorser, EndorserService};
use crate::ledger::Store;
use crate::source::BlockSource;

/// The node config file of a peer. Relative paths are relative to the file.
#[derive(Debug, Clone, Deserialize)]
pub struct PeerConfig {
    pub node_id: String,
    pub msp_id: String,
    pub msp_dir: PathBuf,
    pub listen_address: String,
    pub data_dir: PathBuf,
    pub channel: String,
    pub genesis_block: PathBuf,
    #[serde(default)]
    pub limits: medfabric_types::node_config::Limits,
    /// Chaincode definition name → built-in implementation (default: each built-in under
    /// its own name).
    #[serde(default)]
    pub chaincodes: BTreeMap<String, String>,
}

impl PeerConfig {
    pub fn load(path: &Path) -> Result<Self> {
        medfabric_types::node_config::load(path, |c: &mut Self| {
            vec![&mut c.msp_dir, &mut c.data_dir, &mut c.genesis_block]
        })
        .map_err(anyhow::Error::msg)
    }
}

/// The chaincodes compiled into the peer, by implementation name.
pub fn builtin_chaincodes() -> BTreeMap<String, Arc<dyn Chaincode>> {
    let mut builtins: BTreeMap<String, Arc<dyn Chaincode>> = BTreeMap::new();
    builtins.insert("kv".into(), Arc::new(medfabric_kv::chaincode()));
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
            bail!("chaincode {name}: no built-in chaincode {implementation:?}");
        };
        installed.insert(name.clone(), chaincode.clone());
    }
    Ok(installed)
}

/// A running peer's parts.
#[derive(Debug, Clone)]
pub struct Peer {
    pub channel: Arc<Channel>,
    pub endorser: Arc<Endorser>,
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
        let signer = SigningIdentity::from_msp_dir(&config.msp_dir, &config.msp_id)
            .with_context(|| format!("loading the peer identity from {}", config.msp_dir.display()))?;
        let channels = BTreeMap::from([(channel.channel_id().to_owned(), channel.clone())]);
        let endorser = Arc::new(Endorser::new(channels, installed_chaincodes(config)?, Arc::new(signer)));
        Ok(Self { channel, endorser })
    }

    /// Serves the Endorser service on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        limits: &medfabric_types::node_config::Limits,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let service = EndorserServer::new(EndorserService::new(self.endorser.clone()))
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(limits.max_message_bytes);
        tonic::transport::Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .add_service(service)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
            .await
            .context("gRPC server")
    }

    /// Commits blocks from `source` until it ends. A block that cannot be committed
    /// stops the loop with an error: the ledger stays at the previous block.
    pub async fn commit_from(&self, mut source: impl BlockSource) -> Result<()> {
        loop {
            let next = self.channel.height()?;
            let Some(block) = source.next_block(next).await.map_err(anyhow::Error::msg)? else {
                return Ok(());
            };
            let channel = self.channel.clone();
            let event = tokio::task::spawn_blocking(move || channel.commit(&block)).await??;
            let valid = event.txs.iter().filter(|t| t.code as i32 == 0).count();
            tracing::info!(block = event.number, txs = event.txs.len(), valid, "committed block");
        }
    }
}

/// Binds the configured (or overriding) listen address.
pub async fn bind(address: &str) -> Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await.with_context(|| format!("binding {address}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
