//! A small client of the CA's REST API (what `medfabric ca enroll|register|revoke` uses):
//! HTTPS (or plain HTTP), enrollment with a fresh P-256 key, token-authenticated calls,
//! MSP folders.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use medfabric_ca::KeyPair;
use medfabric_msp::SigningIdentity;
use serde_json::{Value, json};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

pub use crate::http::Endpoint;

/// One exchange with the CA (a JSON body, when there is one); (status, body).
pub fn exchange(
    endpoint: &Endpoint,
    method: &str,
    uri: &str,
    authorization: Option<&str>,
    body: &[u8],
) -> Result<(u16, String)> {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = authorization {
        headers.push(("Authorization", auth));
    }
    let answer = crate::http::exchange(endpoint, method, uri, &headers, body)
        .with_context(|| format!("the CA at {}", endpoint.address))?;
    Ok((answer.status, answer.body))
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
