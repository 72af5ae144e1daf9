//! `medfabric-peer`: runs a peer from its node config file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use medfabric_peer::node::{Peer, PeerConfig, bind};
use medfabric_peer::source::DirSource;

/// A medfabric peer: endorser, validator, committer and ledger for one channel.
#[derive(Debug, Parser)]
#[command(name = "medfabric-peer", version)]
struct Args {
    /// Node config file written by `medfabric network generate` (nodes/<peer>.yaml).
    #[arg(long)]
    config: PathBuf,
    /// Listen on this address instead of the configured one (`127.0.0.1:0`: any port).
    #[arg(long)]
    listen: Option<String>,
    /// Keep the ledger here instead of the configured data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Operations HTTP (`/healthz`, `/metrics`) on this address instead of the configured one.
    #[arg(long)]
    operations_listen: Option<String>,
    /// Commit blocks from files `NNNNNN.block` in this directory, waiting for new ones,
    /// instead of pulling them from the ordering service.
    #[arg(long)]
    blocks_from: Option<PathBuf>,
    /// With --blocks-from: commit the blocks that are there, then exit (an import).
    #[arg(long, requires = "blocks_from")]
    once: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = PeerConfig::load(&args.config)?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let peer = Peer::open(&config)?;
    if let (true, Some(dir)) = (args.once, &args.blocks_from) {
        peer.commit_from(DirSource::new(dir, false)).await?;
        println!("{}", serde_json::json!({"event": "imported", "height": peer.channel.height()?}));
        return Ok(());
    }
    let (listener, address) = bind(args.listen.as_deref().unwrap_or(&config.listen_address)).await?;
    let operations_address = args.operations_listen.or(config.operations_address.clone());
    let operations = match &operations_address {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
    // The address others know us by: the configured external one, else where we listen.
    let advertised = match (&config.external_address, &args.listen) {
        (Some(external), None) => external.clone(),
        _ => address.to_string(),
    };
    // One machine-readable line on stdout tells supervisors (and tests) where we are.
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "node_id": config.node_id,
            "address": address.to_string(),
            "operations": operations.as_ref().map(|(_, a)| a.to_string()),
            "tls": config.tls.is_some(),
            "channel": peer.channel.channel_id(),
            "height": peer.channel.height()?,
        })
    );
    // SIGINT or SIGTERM stop the server; committed blocks are already durable.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    let server = peer.serve(&config, listener, &advertised, operations.map(|(l, _)| l), shutdown);
    match args.blocks_from {
        Some(dir) => {
            let committer = peer.commit_from(DirSource::new(&dir, true));
            tokio::select! {
                served = server => served,
                committed = committer => committed,
            }
        }
        None => {
            let committer = peer.commit_from(peer.orderer_source(&config)?);
            tokio::select! {
                served = server => served,
                committed = committer => committed,
            }
        }
    }
}
