//! `medfabric-ca --config CA.yaml [--listen ADDR]`: one certificate authority, on HTTPS
//! (or plain HTTP when the config says `plain_http: true`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use medfabric_ca_server::{CaConfig, CaService, http, tls};

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
    let config = CaConfig::load(&args.config)?;
    let tls = match (&config.tls, config.plain_http) {
        (Some(tls), _) => Some(tls::server_config(&tls.cert_file, &tls.key_file)?),
        (None, true) => None,
        (None, false) => bail!(
            "{}: the CA serves HTTPS; give tls.cert_file and tls.key_file, or plain_http: true",
            args.config.display()
        ),
    };
    let address = args.listen.unwrap_or_else(|| config.listen_address.clone());
    let name = config.name.clone();
    let service = Arc::new(CaService::open(config)?);
    let listener =
        tokio::net::TcpListener::bind(&address).await.with_context(|| format!("binding {address}"))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "{}",
        serde_json::json!({"event": "ready", "ca": name, "address": local.to_string(), "scheme": scheme})
    );
    let limit = service.config.max_request_body_bytes;
    let app = http::router(service).layer(axum::extract::DefaultBodyLimit::max(limit));
    match tls {
        Some(config) => serve(tls::TlsListener::new(listener, config)?, app).await,
        None => serve(listener, app).await,
    }
}

async fn serve<L>(listener: L, app: axum::Router) -> Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        })
        .await?;
    Ok(())
}
