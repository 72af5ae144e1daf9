//! TLS on a server's port: the accept loop every server process uses (handshakes off the
//! loop, bounded per address and in all), and for the peers' and orderers' client-facing
//! gRPC ports the client certificates they accept following the channel: the node's own
//! organization's TLS CA and the TLS root CAs every organization of the current channel
//! config names in its MSP, as Fabric's peers and orderers update their trust when the
//! config changes. An organization added by a config update can then reach running nodes
//! over mutual TLS without their restart, and one removed can no longer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use medfabric_types::ChannelResources;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

/// Handshakes in progress at once; connections beyond it are closed at once.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;
/// Handshakes in progress from one IP address (loopback counts as one): half the pool,
/// so no single host can take it all, while an application server connecting as many
/// users at once (hundreds of gateways) still gets through.
pub const MAX_HANDSHAKES_PER_ADDRESS: usize = 512;
/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Finished handshakes waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect()
}

/// The client certificates a node accepts: issued by a TLS CA of its node config or of an
/// organization of the current channel config.
#[derive(Debug)]
pub struct ChannelTrust {
    static_roots: Vec<CertificateDer<'static>>,
    required: bool,
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

impl ChannelTrust {
    /// Trusts the CA certificates in `static_roots_pem` (the node's own organization's
    /// TLS CA) and, after [`update`](Self::update), the channel's; with `required`,
    /// clients must present a certificate.
    pub fn new(static_roots_pem: &[u8], required: bool) -> Result<Arc<Self>> {
        let static_roots = certificates(static_roots_pem);
        let verifier = verifier(&static_roots, required)?;
        Ok(Arc::new(Self { static_roots, required, current: RwLock::new(verifier) }))
    }

    /// From now on also trusts the TLS CAs the organizations of `resources` name.
    pub fn update(&self, resources: &ChannelResources) -> Result<()> {
        let config = &resources.config;
        let mut roots = self.static_roots.clone();
        for org in config.orderer_orgs.iter().chain(&config.application_orgs) {
            // Roots only: an intermediate is checked as part of the chain a client
            // presents, never trusted as an anchor on its own.
            for pem in &org.msp.tls_root_certs {
                roots.extend(certificates(pem));
            }
        }
        let verifier = verifier(&roots, self.required)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = verifier;
        Ok(())
    }

    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn verifier(roots: &[CertificateDer<'static>], required: bool) -> Result<Arc<dyn ClientCertVerifier>> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        // A root that is not a usable trust anchor is skipped, not fatal: one
        // organization's bad certificate must not close the port to all others.
        let _ = store.add(root.clone());
    }
    if store.is_empty() {
        return Err(anyhow!("no TLS CA certificate to trust"));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider());
    let builder = if required { builder } else { builder.allow_unauthenticated() };
    builder.build().context("the TLS client verifier")
}

impl ClientCertVerifier for ChannelTrust {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the set changes with the channel, and clients send their one cert.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.get().verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// The server side of a gRPC port: this node's certificate chain and key (PEM), HTTP/2,
/// client certificates as `trust` accepts them.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    trust: Arc<ChannelTrust>,
) -> Result<Arc<rustls::ServerConfig>> {
    let certs = certificates(cert_pem);
    if certs.is_empty() {
        return Err(anyhow!("no TLS certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("the TLS key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(trust)
        .with_single_cert(certs, key)
        .context("the TLS certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS streams of `listener` whose handshakes finished, for tonic's
/// `serve_with_incoming` (which then sees each client's certificates).
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> impl tokio_stream::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
    use tokio_stream::StreamExt;
    ReceiverStream::new(accept(listener, config)).map(|(stream, _)| Ok(stream))
}

/// Accepts TLS on `listener`: handshakes run off the accept loop, each with a deadline
/// ([`HANDSHAKE_TIMEOUT`]), at most [`MAX_PENDING_HANDSHAKES`] at once and
/// [`MAX_HANDSHAKES_PER_ADDRESS`] per address; beyond them a connection is closed at once,
/// so slow or silent clients never hold the accept loop or lock others out. The loop ends
/// when the receiver is dropped.
pub fn accept(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)> {
    let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = sender.closed() => return,
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "too many TLS handshakes in progress; connection dropped");
                continue;
            };
            let Some(slot) = AddressSlot::take(&per_address, peer.ip()) else {
                tracing::debug!(%peer, "too many TLS handshakes from this address; connection dropped");
                continue;
            };
            let _ = tcp.set_nodelay(true);
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
    accepted
}

/// One of an address's [`MAX_HANDSHAKES_PER_ADDRESS`] handshake slots, freed on drop.
struct AddressSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    address: IpAddr,
}

impl AddressSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr) -> Option<Self> {
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
