//! HTTPS for the CA, as Fabric CA serves it in production: a server certificate from the
//! organization's TLS CA (rustls with ring, the provider tonic uses), and the client side
//! that trusts one CA file and checks the CA's own name. Handshakes run off the accept
//! loop, each with a deadline, at most [`MAX_PENDING_HANDSHAKES`] at once and
//! [`MAX_HANDSHAKES_PER_ADDRESS`] per address; beyond them a connection is closed at once,
//! so slow or silent clients never hold the accept loop.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;

/// Handshakes in progress at once; connections beyond it are closed at once.
pub const MAX_PENDING_HANDSHAKES: usize = 256;
/// Handshakes in progress from one IP address (loopback counts as one).
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 64;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Finished handshakes waiting for the HTTP server to take them.
const ACCEPTED_QUEUE: usize = 64;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: `cert_file` (PEM, leaf first) and its PKCS#8 `key_file`.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("reading {}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{} holds no certificate", cert_file.display()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_file).with_context(|| format!("reading {}", key_file.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the CA's TLS certificate and key")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that hands out TLS streams whose handshake has finished (for `axum::serve`).
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Result<Self> {
        let local = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        let per_address: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if sender.is_closed() {
                    return;
                }
                // Over either bound the connection is dropped at once: accepting never
                // waits, so silent clients cannot queue everyone else out.
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "too many TLS handshakes in progress; connection dropped");
                    continue;
                };
                let Some(slot) = AddressSlot::take(&per_address, peer.ip()) else {
                    tracing::debug!(%peer, "too many TLS handshakes from this address; connection dropped");
                    continue;
                };
                let (acceptor, handoff) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let outcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                    drop((permit, slot));
                    match outcome {
                        Ok(Ok(stream)) => {
                            let _ = handoff.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { accepted, local })
    }
}

/// One of an address's [`MAX_HANDSHAKES_PER_ADDRESS`] handshake slots, freed on drop.
struct AddressSlot {
    counts: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl AddressSlot {
    fn take(counts: &Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>, address: IpAddr) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(address).or_default();
        if *count >= MAX_HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(Self { counts: counts.clone(), address })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended (the runtime is shutting down): never hand out more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
