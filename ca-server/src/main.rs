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
    for seed in &mut config.seed_identities {
        if let Some(path) = seed.certificate_file.as_mut().filter(|p| p.is_relative()) {
            *path = base.join(&*path);
        }
    }
    if let Some(tls) = &mut config.tls {
        for path in [&mut tls.cert_file, &mut tls.key_file] {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
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
