//! `medfabric ca enroll|register|revoke`: the organizations' CAs of a network started
//! with `network up`, as a convenience over their Fabric CA REST API. The registrar is
//! each CA's bootstrap admin, enrolled on first use into `<data>/ca-admins/<ca>/msp`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medfabric_msp::SigningIdentity;
use medfabric_sdk::ca::{self as client, Enrollment};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Args, Debug, Clone)]
pub struct CaArgs {
    /// The network directory (from `network up`).
    #[arg(long, default_value = "medfabric-data", global = true)]
    pub data: PathBuf,
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Enroll an identity and write its MSP folder.
    Enroll {
        /// The organization (MSP id) whose CA to use.
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        secret: String,
        /// The MSP folder to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Register an identity (as the CA's bootstrap admin); prints its secret.
    Register {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
        #[arg(long)]
        secret: Option<String>,
        /// client, peer, admin, orderer.
        #[arg(long = "type", default_value = "client")]
        kind: String,
        /// Default: the CA's organization affiliation (the org's name in lower case).
        #[arg(long)]
        affiliation: Option<String>,
        /// `name=value`, or `name=value:ecert` to put it in enrollment certificates.
        #[arg(long = "attr")]
        attrs: Vec<String>,
        #[arg(long, default_value_t = 1)]
        max_enrollments: i32,
    },
    /// Revoke an identity's certificates; `--install` puts the new CRL into every peer's
    /// MSP `crls/` folder (peers apply it within seconds).
    Revoke {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        install: bool,
    },
}

#[derive(Debug, Deserialize)]
struct CaNode {
    ca_name: String,
    msp_id: String,
    listen_address: String,
    bootstrap_admin: BootstrapAdmin,
    #[serde(default)]
    affiliations: Vec<String>,
    #[serde(default)]
    tls: Option<CaNodeTls>,
    /// Where this node file is (TLS paths are relative to it).
    #[serde(skip)]
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
struct CaNodeTls {
    ca_file: PathBuf,
}

impl CaNode {
    fn endpoint(&self) -> Result<client::Endpoint> {
        let tls_ca = self.tls.as_ref().map(|t| self.dir.join(&t.ca_file));
        medfabric_network::up::ca_endpoint(&self.listen_address, &self.ca_name, tls_ca.as_deref())
    }
}

#[derive(Debug, Deserialize)]
struct BootstrapAdmin {
    id: String,
    secret: String,
}

#[derive(Debug, Deserialize)]
struct PeerNode {
    kind: String,
    #[serde(default)]
    msp_dir: PathBuf,
}

fn ca_of(data: &Path, org: &str) -> Result<CaNode> {
    for entry in
        std::fs::read_dir(data.join("nodes")).with_context(|| format!("{} has no nodes/", data.display()))?
    {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        if !text.starts_with("kind: ca") {
            continue;
        }
        let mut node: CaNode =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        node.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if node.msp_id == org {
            return Ok(node);
        }
    }
    bail!("no CA for organization {org} in {}", data.display())
}

fn org_msp(data: &Path, org: &str) -> Result<PathBuf> {
    let status = medfabric_network::up::status(data)?;
    let user = status.users.iter().find(|u| u.org == org).with_context(|| format!("no users of {org}"))?;
    // …/peerOrganizations/<domain>/users/<user>/msp → …/peerOrganizations/<domain>/msp
    let domain_dir =
        user.msp_dir.parent().and_then(Path::parent).and_then(Path::parent).context("MSP layout")?;
    Ok(domain_dir.join("msp"))
}

/// The CA's bootstrap admin, enrolled once into the network directory.
fn registrar(data: &Path, ca: &CaNode) -> Result<(SigningIdentity, String)> {
    let dir = data.join("ca-admins").join(&ca.ca_name).join("msp");
    if !dir.join("signcerts/cert.pem").exists() {
        let enrollment =
            client::enroll(&ca.endpoint()?, &ca.ca_name, &ca.bootstrap_admin.id, &ca.bootstrap_admin.secret)?;
        client::write_msp(&dir, &enrollment, None)?;
    }
    let cert = std::fs::read_to_string(dir.join("signcerts/cert.pem"))?;
    let key = std::fs::read_to_string(dir.join("keystore/priv_sk"))?;
    let signer =
        SigningIdentity::new(&ca.msp_id, cert.as_bytes(), &key).context("the registrar's identity")?;
    Ok((signer, cert))
}

fn print(args: &CaArgs, value: &Value, human: String) {
    if args.json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{human}");
    }
}

pub fn run(command: CaCommand, args: CaArgs) -> Result<()> {
    let data = args.data.clone();
    match command {
        CaCommand::Enroll { org, id, secret, out } => {
            let ca = ca_of(&data, &org)?;
            let enrollment: Enrollment = client::enroll(&ca.endpoint()?, &ca.ca_name, &id, &secret)?;
            client::write_msp(&out, &enrollment, Some(&org_msp(&data, &org)?))?;
            print(
                &args,
                &json!({"id": id, "msp_dir": out}),
                format!("{id} enrolled with {}: MSP folder {}", ca.ca_name, out.display()),
            );
        }
        CaCommand::Register { org, id, secret, kind, affiliation, attrs, max_enrollments } => {
            let ca = ca_of(&data, &org)?;
            let (signer, cert) = registrar(&data, &ca)?;
            let attrs: Vec<Value> = attrs
                .iter()
                .map(|a| {
                    let (pair, ecert) = a.strip_suffix(":ecert").map_or((a.as_str(), false), |p| (p, true));
                    let (name, value) = pair
                        .split_once('=')
                        .with_context(|| format!("--attr {a:?}: use name=value[:ecert]"))?;
                    Ok(json!({"name": name, "value": value, "ecert": ecert}))
                })
                .collect::<Result<_>>()?;
            let mut body = json!({"id": id, "type": kind, "max_enrollments": max_enrollments, "attrs": attrs,
                                  "affiliation": affiliation.or_else(|| ca.affiliations.first().cloned()).unwrap_or_default(),
                                  "caname": ca.ca_name});
            if let Some(secret) = secret {
                body["secret"] = json!(secret);
            }
            let found = client::call(&ca.endpoint()?, &signer, &cert, "POST", "/api/v1/register", &body)?;
            let secret = found["secret"].as_str().unwrap_or_default();
            print(
                &args,
                &json!({"id": id, "secret": secret}),
                format!("{id} registered with {}; secret: {secret}", ca.ca_name),
            );
        }
        CaCommand::Revoke { org, id, reason, install } => {
            let ca = ca_of(&data, &org)?;
            let (signer, cert) = registrar(&data, &ca)?;
            let body = json!({"id": id, "reason": reason, "gencrl": true, "caname": ca.ca_name});
            let found = client::call(&ca.endpoint()?, &signer, &cert, "POST", "/api/v1/revoke", &body)?;
            let crl = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                found["CRL"].as_str().unwrap_or_default(),
            )
            .ok()
            .context("CRL")?;
            let mut installed = Vec::new();
            if install {
                for entry in std::fs::read_dir(data.join("nodes"))? {
                    let path = entry?.path();
                    let Ok(node) = serde_yaml::from_str::<PeerNode>(&std::fs::read_to_string(&path)?) else {
                        continue;
                    };
                    if node.kind != "peer" {
                        continue;
                    }
                    let base = path.parent().unwrap_or(Path::new("."));
                    let crls = base.join(&node.msp_dir).join("crls");
                    std::fs::create_dir_all(&crls)?;
                    let file = crls.join(format!("{}.pem", ca.ca_name));
                    std::fs::write(&file, &crl)?;
                    installed.push(file.display().to_string());
                }
            }
            let revoked = found["RevokedCerts"].as_array().map_or(0, Vec::len);
            // A local CRL governs what those peers admit, never what they validate:
            // revocation for validation is a channel config update of the org's MSP.
            let scope = if installed.is_empty() {
                "recorded by the CA only: no peer enforces it until its CRL is installed (--install)"
                    .to_owned()
            } else {
                format!(
                    "CRL installed in {} peer MSP(s): those peers refuse the identity's proposals, gateway calls and Deliver requests; validation of blocks is unchanged until the channel config's MSP carries the CRL",
                    installed.len()
                )
            };
            print(
                &args,
                &json!({
                    "id": id,
                    "revoked": found["RevokedCerts"],
                    "installed": installed,
                    "enforced_for": if installed.is_empty() { json!([]) } else { json!(["admission"]) },
                    "validation_unchanged": true,
                }),
                format!("{id}: {revoked} certificate(s) revoked by {}; {scope}", ca.ca_name),
            );
        }
    }
    Ok(())
}
