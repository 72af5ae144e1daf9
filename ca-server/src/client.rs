//! A small client of the CA's REST API (what `medfabric ca enroll|register|revoke` uses):
//! enrollment with a fresh P-256 key, token-authenticated calls, MSP folders.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use medfabric_ca::KeyPair;
use medfabric_msp::SigningIdentity;
use serde_json::{Value, json};

use crate::base64;

/// One HTTP/1.1 exchange with the CA at `address`; (status, body).
fn exchange(
    address: &str,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(address)
        .with_context(|| format!("connecting to the CA at {address}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {uri} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(auth) = authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("malformed HTTP response from {address}"))?;
    let status =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("no HTTP status"))?;
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
pub fn enroll(address: &str, ca_name: &str, id: &str, secret: &str) -> Result<Enrollment> {
    let key = KeyPair::generate();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, id);
    let csr = params.serialize_request(&key)?.pem()?;
    let body = json!({"certificate_request": csr, "caname": ca_name}).to_string();
    let basic = format!("Basic {}", base64::encode(format!("{id}:{secret}").as_bytes()));
    let (status, text) = exchange(address, "POST", "/api/v1/enroll", Some(&basic), body.as_bytes())?;
    let found = result(status, &text)?;
    let decode = |field: &Value| -> Result<String> {
        let bytes = base64::decode(field.as_str().unwrap_or_default())
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
    address: &str,
    signer: &SigningIdentity,
    certificate_pem: &str,
    method: &str,
    uri: &str,
    body: &Value,
) -> Result<Value> {
    let bytes = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let b64cert = base64::encode(certificate_pem.as_bytes());
    let payload = format!("{method}.{}.{}.{b64cert}", base64::encode(uri.as_bytes()), base64::encode(&bytes));
    let token = format!("{b64cert}.{}", base64::encode(&signer.sign(payload.as_bytes())));
    let (status, text) = exchange(address, method, uri, Some(&token), &bytes)?;
    result(status, &text)
}

/// Writes a Fabric MSP folder (`signcerts`, `keystore`, `cacerts`, and the NodeOU
/// `config.yaml` copied from `org_msp` when given).
pub fn write_msp(dir: &Path, enrollment: &Enrollment, org_msp: Option<&Path>) -> Result<()> {
    for sub in ["signcerts", "keystore", "cacerts"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::write(dir.join("signcerts/cert.pem"), &enrollment.certificate_pem)?;
    std::fs::write(dir.join("keystore/priv_sk"), &enrollment.key_pem)?;
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
