//! A small client of the CA's REST API (what `medfabric ca enroll|register|revoke` uses):
//! HTTPS (or plain HTTP), enrollment with a fresh P-256 key, token-authenticated calls,
//! MSP folders.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use medfabric_ca::KeyPair;
use medfabric_msp::SigningIdentity;
use serde_json::{Value, json};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Where a CA listens, and the TLS CA to trust there (`None`: plain HTTP).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The name the CA's certificate must carry (default: the host of `address`). Naming
    /// the CA itself (`ca.<domain>`) keeps other servers of the same TLS CA — the org's
    /// peers — from answering for it.
    pub server_name: Option<String>,
}

impl Endpoint {
    pub fn plain(address: &str) -> Self {
        Self { address: address.to_owned(), tls_ca_pem: None, server_name: None }
    }

    /// HTTPS to `address`, trusting the TLS CA certificate(s) in `tls_ca_file`.
    pub fn https(address: &str, tls_ca_file: &Path) -> Result<Self> {
        let pem = std::fs::read(tls_ca_file).with_context(|| format!("reading {}", tls_ca_file.display()))?;
        Ok(Self { address: address.to_owned(), tls_ca_pem: Some(pem), server_name: None })
    }

    /// Checks the CA's certificate against `name` instead of the address's host.
    pub fn with_server_name(mut self, name: &str) -> Self {
        self.server_name = Some(name.to_owned());
        self
    }

    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls_ca_pem.is_some() { "https" } else { "http" }, self.address)
    }
}

/// Largest CA response read.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// One HTTP/1.1 exchange with the CA; (status, body).
pub fn exchange(
    endpoint: &Endpoint,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(u16, String)> {
    use std::net::ToSocketAddrs;
    let address = endpoint.address.as_str();
    let addr = address
        .to_socket_addrs()
        .with_context(|| format!("CA address {address}"))?
        .next()
        .ok_or_else(|| anyhow!("CA address {address} resolves to nothing"))?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .with_context(|| format!("connecting to the CA at {address}"))?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    tcp.set_write_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {uri} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(auth) = authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = Vec::new();
    match &endpoint.tls_ca_pem {
        None => {
            let mut stream = tcp;
            stream.write_all(head.as_bytes())?;
            stream.write_all(body)?;
            stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut raw)?;
        }
        Some(ca_pem) => {
            let name = endpoint.server_name.as_deref().unwrap_or(address);
            let connection = rustls::ClientConnection::new(client_config(ca_pem)?, server_name(name)?)?;
            let mut stream = rustls::StreamOwned::new(connection, tcp);
            stream.write_all(head.as_bytes()).with_context(|| format!("TLS to the CA at {address}"))?;
            stream.write_all(body)?;
            stream.flush()?;
            match stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut raw) {
                Ok(_) => {}
                // A server that closes without close_notify after a whole response.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                Err(e) => return Err(e).with_context(|| format!("reading from the CA at {address}")),
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("malformed HTTP response from {address}"))?;
    let status =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no HTTP status"))?;
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok()).flatten()
    });
    if let Some(length) = length
        && body.len() < length
    {
        bail!("the CA at {address} sent {} of {length} body bytes", body.len());
    }
    Ok((status, body.to_owned()))
}

/// The `result` of a Fabric CA envelope, or its error.
fn result(status: u16, body: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(body).with_context(|| format!("CA answered {status}: {body}"))?;
    if value["success"] == true {
        return Ok(value["result"].clone());
    }
    let error = &value["errors"][0];
    bail!("CA refused ({status}, code {}): {}", error["code"], error["message"].as_str().unwrap_or_default())
}

/// An enrolled identity: certificate, key and the CA chain (PEM).
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub certificate_pem: String,
    pub key_pem: String,
    pub ca_chain_pem: String,
}

/// Enrolls `id` with `secret` under a fresh P-256 key.
pub fn enroll(endpoint: &Endpoint, ca_name: &str, id: &str, secret: &str) -> Result<Enrollment> {
    let key = KeyPair::generate();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, id);
    let csr = params.serialize_request(&key)?.pem()?;
    let body = json!({"certificate_request": csr, "caname": ca_name}).to_string();
    let basic = format!("Basic {}", BASE64.encode(format!("{id}:{secret}").as_bytes()));
    let (status, text) = exchange(endpoint, "POST", "/api/v1/enroll", Some(&basic), body.as_bytes())?;
    let found = result(status, &text)?;
    let decode = |field: &Value| -> Result<String> {
        let bytes = BASE64
            .decode(field.as_str().unwrap_or_default())
            .ok()
            .ok_or_else(|| anyhow!("bad base64 from the CA"))?;
        Ok(String::from_utf8(bytes)?)
    };
    Ok(Enrollment {
        certificate_pem: decode(&found["Cert"])?,
        key_pem: key.to_pkcs8_pem(),
        ca_chain_pem: decode(&found["ServerInfo"]["CAChain"])?,
    })
}

/// A token-authenticated call as `signer` (whose certificate this CA issued).
pub fn call(
    endpoint: &Endpoint,
    signer: &SigningIdentity,
    certificate_pem: &str,
    method: &str,
    uri: &str,
    body: &Value,
) -> Result<Value> {
    let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let b64cert = BASE64.encode(certificate_pem.as_bytes());
    let payload = format!("{method}.{}.{}.{b64cert}", BASE64.encode(uri.as_bytes()), BASE64.encode(&bytes));
    let token = format!("{b64cert}.{}", BASE64.encode(signer.sign(payload.as_bytes())));
    let (status, text) = exchange(endpoint, method, uri, Some(&token), &bytes)?;
    result(status, &text)
}

/// Writes a Fabric MSP folder (`signcerts`, `keystore`, `cacerts`, and the NodeOU
/// `config.yaml` copied from `org_msp` when given).
pub fn write_msp(dir: &Path, enrollment: &Enrollment, org_msp: Option<&Path>) -> Result<()> {
    for sub in ["signcerts", "keystore", "cacerts"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::write(dir.join("signcerts/cert.pem"), &enrollment.certificate_pem)?;
    // The private key: owner-only (a registrar's key is the power to register anyone).
    medfabric_config::secret::write(&dir.join("keystore/priv_sk"), enrollment.key_pem.as_bytes())?;
    std::fs::write(dir.join("cacerts/ca.pem"), &enrollment.ca_chain_pem)?;
    if let Some(org) = org_msp {
        let config = org.join("config.yaml");
        if config.exists() {
            let text = std::fs::read_to_string(&config)?;
            // The org MSP names its CA file; here it is cacerts/ca.pem.
            let rewritten: String = text
                .lines()
                .map(|l| match l.split_once("Certificate: ") {
                    Some((indent, _)) => format!("{indent}Certificate: cacerts/ca.pem"),
                    None => l.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(dir.join("config.yaml"), rewritten + "\n")?;
        }
    }
    Ok(())
}

/// The client side of TLS to a CA: trusts the CA certificates in `ca_pem` only.
fn client_config(ca_pem: &[u8]) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.context("a TLS CA certificate")?).context("a TLS CA certificate")?;
    }
    if roots.is_empty() {
        return Err(anyhow!("no TLS CA certificate to trust"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// The name a client checks the server's certificate against: a host name, or the host of
/// a `host:port` address.
fn server_name(address: &str) -> Result<ServerName<'static>> {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => address,
    };
    ServerName::try_from(host.to_owned()).map_err(|e| anyhow!("server name {host:?}: {e}"))
}
