//! `medfabric-orderer`: runs an ordering node from its node config file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use medfabric_orderer::node::{Orderer, OrdererConfig, serve};

/// A medfabric ordering node: Broadcast and Deliver over a Raft cluster.
#[derive(Debug, Parser)]
#[command(name = "medfabric-orderer", version)]
struct Args {
    /// Node config file written by `medfabric network generate` (nodes/<orderer>.yaml).
    #[arg(long)]
    config: PathBuf,
    /// Client (Broadcast/Deliver) address instead of the configured one.
    #[arg(long)]
    listen: Option<String>,
    /// Operations HTTP address (`/healthz`) instead of the configured one.
    #[arg(long)]
    operations_listen: Option<String>,
    /// Keep the Raft log and blocks here instead of the configured data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = OrdererConfig::load(&args.config)?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let listener =
        tokio::net::TcpListener::bind(args.listen.as_deref().unwrap_or(&config.listen_address)).await?;
    // The cluster address is the one the other consenters know: it is not overridden.
    let cluster = tokio::net::TcpListener::bind(&config.cluster_listen_address).await?;
    let operations_address = args.operations_listen.or(config.operations_address.clone());
    let operations = match &operations_address {
        Some(address) => Some(tokio::net::TcpListener::bind(address).await?),
        None => None,
    };
    let orderer = Orderer::start(&config).await?;
    println!(
        "{}",
        serde_json::json!({
            "event": "ready",
            "node_id": config.node_id,
            "consenter_id": config.consenter_id,
            "broadcast": listener.local_addr()?.to_string(),
            "cluster": cluster.local_addr()?.to_string(),
            "operations": operations.as_ref().and_then(|o| o.local_addr().ok()).map(|a| a.to_string()),
            "height": orderer.store().height(),
        })
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    serve(orderer, listener, cluster, operations, &config, shutdown).await
}
