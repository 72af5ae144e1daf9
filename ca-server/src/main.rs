//! `medfabric-ca --config CA.yaml [--listen ADDR]`: one certificate authority.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use medfabric_ca_server::{CaConfig, CaService, http};

#[derive(Parser)]
#[command(name = "medfabric-ca", about = "A Fabric-CA-compatible certificate authority")]
struct Args {
    #[arg(long)]
    config: PathBuf,
    /// Overrides the config's listen address (e.g. 127.0.0.1:0).
    #[arg(long)]
    listen: Option<String>,
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
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let mut config: CaConfig =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", args.config.display()))?;
    let base = args.config.parent().map(PathBuf::from).unwrap_or_default();
    if config.registry_file.as_os_str().is_empty() {
        let data = config.data_dir.clone().unwrap_or_else(|| PathBuf::from("."));
        config.registry_file = data.join("registry.json");
    }
    for path in [&mut config.cert_file, &mut config.key_file, &mut config.registry_file] {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
    let address = args.listen.unwrap_or_else(|| config.listen_address.clone());
    let name = config.name.clone();
    let service = Arc::new(CaService::open(config)?);
    let listener =
        tokio::net::TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
    let local = listener.local_addr()?;
    println!("{}", serde_json::json!({"event": "ready", "ca": name, "address": local.to_string()}));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let limit = service.config.max_request_body_bytes;
    axum::serve(listener, http::router(service).layer(axum::extract::DefaultBodyLimit::max(limit)))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await?;
    Ok(())
}
