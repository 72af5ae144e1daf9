//! TLS and mutual TLS on gRPC links (rustls through tonic, with `ring` as the crypto
//! provider). Node config files carry a `tls` section; without one a link is plaintext.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The `tls` section of a node config. Paths are relative to the config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This node's TLS certificate (server and client authentication) and key.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The TLS CA of this node's organization.
    pub ca_file: PathBuf,
    /// Every TLS CA this node trusts: for the servers it connects to and for the clients
    /// that connect to it (normally the TLS CAs of all organizations of the network).
    #[serde(default)]
    pub root_ca_files: Vec<PathBuf>,
    /// Clients must present a certificate from a trusted TLS CA (mutual TLS).
    #[serde(default)]
    pub client_auth_required: bool,
}

impl TlsConfig {
    /// The paths in the section, for making them relative to the config file.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.cert_file, &mut self.key_file, &mut self.ca_file];
        paths.extend(self.root_ca_files.iter_mut());
        paths
    }

    /// The trusted CA certificates, concatenated PEM (own CA first).
    pub fn roots_pem(&self) -> Result<Vec<u8>> {
        let mut pem = Vec::new();
        for path in std::iter::once(&self.ca_file).chain(&self.root_ca_files) {
            let bytes = std::fs::read(path).with_context(|| format!("reading TLS CA {}", path.display()))?;
            pem.extend_from_slice(&bytes);
            pem.push(b'\n');
        }
        Ok(pem)
    }

    fn identity(&self) -> Result<Identity> {
        let cert = std::fs::read(&self.cert_file)
            .with_context(|| format!("reading TLS certificate {}", self.cert_file.display()))?;
        let key = std::fs::read(&self.key_file)
            .with_context(|| format!("reading TLS key {}", self.key_file.display()))?;
        Ok(Identity::from_pem(cert, key))
    }

    /// The server side: this node's certificate; client certificates from the trusted
    /// CAs are verified when presented, and required with `client_auth_required`.
    pub fn server(&self) -> Result<ServerTlsConfig> {
        Ok(ServerTlsConfig::new()
            .identity(self.identity()?)
            .client_ca_root(Certificate::from_pem(self.roots_pem()?))
            .client_auth_optional(!self.client_auth_required)
            .timeout(Duration::from_secs(10)))
    }

    /// The client side of a node-to-node link: the trusted CAs, and this node's
    /// certificate as the client identity (mutual TLS).
    pub fn client(&self) -> Result<ClientTls> {
        let cert = std::fs::read(&self.cert_file)
            .with_context(|| format!("reading TLS certificate {}", self.cert_file.display()))?;
        let key = std::fs::read(&self.key_file)
            .with_context(|| format!("reading TLS key {}", self.key_file.display()))?;
        Ok(ClientTls { roots_pem: self.roots_pem()?, identity: Some((cert, key)) })
    }
}

/// How a client reaches TLS servers: trusted CAs (PEM) and an optional client
/// certificate and key (PEM) for mutual TLS.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub roots_pem: Vec<u8>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Trusts the CAs in these PEM files, with an optional client certificate and key.
    pub fn from_files(
        ca_files: &[PathBuf],
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<Self> {
        let mut roots_pem = Vec::new();
        for path in ca_files {
            roots_pem.extend(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
            roots_pem.push(b'\n');
        }
        let identity = match client {
            Some((cert, key)) => Some((
                std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
                std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
            )),
            None => None,
        };
        Ok(Self { roots_pem, identity })
    }
}

/// How long a client waits for a connection to be set up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An endpoint for `address` (`host:port`): `https` with `tls`, else `http`. The
/// connection is made lazily, on first use.
pub fn endpoint(address: &str, tls: Option<&ClientTls>) -> Result<Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{address}"))
        .with_context(|| format!("bad address {address:?}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(60))
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.roots_pem));
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(config).context("TLS client configuration")?;
    }
    Ok(endpoint)
}

/// A channel to `address` that connects on first use (and reconnects after failures).
pub fn lazy_channel(address: &str, tls: Option<&ClientTls>) -> Result<tonic::transport::Channel> {
    Ok(endpoint(address, tls)?.connect_lazy())
}
