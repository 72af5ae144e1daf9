//! The one HTTP client of medfabric's tools: a CA's REST API (HTTPS trusting the
//! organization's TLS CA) and nodes' operations endpoints (`/healthz`, `/metrics`). It is
//! `ureq` over rustls (ring), blocking, so that synchronous commands and status checks
//! need no runtime.
//!
//! The server's certificate is checked against a name of our choosing (`ca.<domain>`)
//! while the connection goes to a configured address (often loopback): the request URL
//! names the server, and a resolver that knows only the configured address answers for
//! it. No proxy from the environment is used and redirects are not followed: a CA call
//! carries credentials that must reach this server and no other.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// How long a connection may take to open.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one whole exchange (connect, send, receive) may take, unless the endpoint
/// says otherwise.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body read.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Largest response head read.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 64 << 10;

/// Where a server listens, and the TLS CA to trust there (`None`: plain HTTP).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The name the server's certificate must carry (default: the host of `address`).
    /// Naming the CA itself (`ca.<domain>`) keeps other servers of the same TLS CA — the
    /// org's peers — from answering for it.
    pub server_name: Option<String>,
    /// How long one exchange may take (connecting: [`CONNECT_TIMEOUT`] at most).
    pub timeout: Duration,
}

impl Endpoint {
    pub fn plain(address: &str) -> Self {
        Self { address: address.to_owned(), tls_ca_pem: None, server_name: None, timeout: EXCHANGE_TIMEOUT }
    }

    /// HTTPS to `address`, trusting the TLS CA certificate(s) in `tls_ca_file`.
    pub fn https(address: &str, tls_ca_file: &Path) -> Result<Self> {
        let pem = std::fs::read(tls_ca_file).with_context(|| format!("reading {}", tls_ca_file.display()))?;
        Ok(Self { tls_ca_pem: Some(pem), ..Self::plain(address) })
    }

    /// Checks the server's certificate against `name` instead of the address's host.
    pub fn with_server_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_owned());
        self
    }

    /// Gives up on an exchange after `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme(), self.address)
    }

    fn scheme(&self) -> &'static str {
        if self.tls_ca_pem.is_some() { "https" } else { "http" }
    }
}

/// A response: its status and body (UTF-8, lossily).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// One request to `endpoint`: `method path` with `headers` and `body` (none when empty).
/// Any HTTP status is an answer; failing to connect, to verify the server or to read a
/// whole response is an error.
pub fn exchange(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    let address = endpoint.address.as_str();
    let agent = agent(endpoint)?;
    let url = url(endpoint, path)?;
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = if body.is_empty() {
        agent.run(request.body(()).context("building the request")?)
    } else {
        agent.run(request.body(body.to_vec()).context("building the request")?)
    };
    let mut answer = answer.map_err(|e| anyhow!("{} {path} at {address}: {e}", endpoint.scheme()))?;
    let status = answer.status().as_u16();
    let body = answer
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE_BYTES)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(|e| anyhow!("reading the answer of {address}: {e}"))?;
    Ok(Response { status, body })
}

/// `GET path`.
pub fn get(endpoint: &Endpoint, path: &str) -> Result<Response> {
    exchange(endpoint, "GET", path, &[], b"")
}

/// An agent that reaches `endpoint.address` only, trusting its TLS CA only.
fn agent(endpoint: &Endpoint) -> Result<ureq::Agent> {
    let address = resolve(&endpoint.address)?;
    let mut config = Config::builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .max_response_header_size(MAX_RESPONSE_HEAD_BYTES)
        .max_idle_connections(0)
        .user_agent("medfabric")
        .timeout_connect(Some(CONNECT_TIMEOUT.min(endpoint.timeout)))
        .timeout_global(Some(endpoint.timeout));
    if let Some(pem) = &endpoint.tls_ca_pem {
        config = config.https_only(true).tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::Specific(Arc::new(trusted(pem)?)))
                .build(),
        );
    }
    Ok(ureq::Agent::with_parts(config.build(), DefaultConnector::new(), Fixed(address)))
}

/// The TLS CA certificates in `pem` (at least one).
fn trusted(pem: &[u8]) -> Result<Vec<Certificate<'static>>> {
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let ureq::tls::PemItem::Certificate(cert) = item.context("a TLS CA certificate")? {
            roots.push(cert);
        }
    }
    if roots.is_empty() {
        bail!("no TLS CA certificate to trust");
    }
    Ok(roots)
}

/// The URL of `path` at `endpoint`: its host is the name the certificate must carry.
fn url(endpoint: &Endpoint, path: &str) -> Result<Uri> {
    let (host, port) = split_address(&endpoint.address)?;
    let host = endpoint.server_name.as_deref().unwrap_or(host);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    format!("{}://{host}:{port}{path}", endpoint.scheme())
        .parse()
        .with_context(|| format!("a URL for {path} at {}", endpoint.address))
}

/// `host:port` (or `[v6]:port`) → (host, port).
fn split_address(address: &str) -> Result<(&str, u16)> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| anyhow!("address {address} has no port"))?;
    let port = port.parse().with_context(|| format!("the port of {address}"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

fn resolve(address: &str) -> Result<SocketAddr> {
    address
        .to_socket_addrs()
        .with_context(|| format!("address {address}"))?
        .next()
        .ok_or_else(|| anyhow!("address {address} resolves to nothing"))
}

/// A resolver that answers every name with one address: the request's URL names the
/// server for TLS, the configured address says where it is.
#[derive(Debug)]
struct Fixed(SocketAddr);

impl Resolver for Fixed {
    fn resolve(
        &self,
        _uri: &Uri,
        _config: &Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addresses = self.empty();
        addresses.push(self.0);
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests;
