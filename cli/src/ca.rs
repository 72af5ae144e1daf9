//! `medfabric ca enroll|register|revoke`: the organizations' CAs of a network started
//! with `network up`, as a convenience over their Fabric CA REST API. The registrar is
//! each CA's bootstrap admin, enrolled on first use into `<data>/ca-admins/<ca>/msp`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use medfabric_config::{CaConfig, NodeConfig};
use medfabric_msp::SigningIdentity;
use medfabric_sdk::ca::{self as client, Enrollment};
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
    /// MSP `crls/` folder (peers apply it within seconds to what they admit);
    /// `--update-channel` puts it in the organization's MSP in the channel config, through
    /// an update signed by the org's admin (`--admin`), so every peer and orderer refuses
    /// the identity's transactions from that block on.
    Revoke {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        install: bool,
        #[arg(long)]
        update_channel: bool,
        /// Who signs and submits the channel update (default: `Admin@<org>`).
        #[arg(long)]
        admin: Option<String>,
    },
}

/// A CA's endpoint from its node config (HTTPS with its TLS CA, checking its own name).
fn endpoint(ca: &CaConfig) -> Result<client::Endpoint> {
    // HTTPS without a named TLS CA is refused (by `ca_endpoint`), never sent as plain HTTP.
    let tls_ca = ca.tls.as_ref().map(|t| t.ca_file.clone().unwrap_or_default());
    medfabric_network::up::ca_endpoint(&ca.listen_address, &ca.name, tls_ca.as_deref())
}

/// The node configs in a network directory that read (a broken peer file does not stop
/// a CA command; the daemons report their own config errors).
fn node_configs(data: &Path) -> Result<Vec<NodeConfig>> {
    let mut configs = Vec::new();
    for entry in
        std::fs::read_dir(data.join("nodes")).with_context(|| format!("{} has no nodes/", data.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml")
            && let Ok(Some(config)) = medfabric_config::load_any(&path)
        {
            configs.push(config);
        }
    }
    Ok(configs)
}

fn ca_of(data: &Path, org: &str) -> Result<CaConfig> {
    node_configs(data)?
        .into_iter()
        .find_map(|c| match c {
            NodeConfig::Ca(ca) if ca.msp_id == org => Some(ca),
            _ => None,
        })
        .with_context(|| format!("no CA for organization {org} in {}", data.display()))
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
fn registrar(data: &Path, ca: &CaConfig) -> Result<(SigningIdentity, String)> {
    let dir = data.join("ca-admins").join(&ca.name).join("msp");
    if !dir.join("signcerts/cert.pem").exists() {
        let enrollment = client::enroll(&endpoint(ca)?, &ca.name, &ca.bootstrap.id, &ca.bootstrap.secret)?;
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
            let enrollment: Enrollment = client::enroll(&endpoint(&ca)?, &ca.name, &id, &secret)?;
            client::write_msp(&out, &enrollment, Some(&org_msp(&data, &org)?))?;
            print(
                &args,
                &json!({"id": id, "msp_dir": out}),
                format!("{id} enrolled with {}: MSP folder {}", ca.name, out.display()),
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
                                  "caname": ca.name});
            if let Some(secret) = secret {
                body["secret"] = json!(secret);
            }
            let found = client::call(&endpoint(&ca)?, &signer, &cert, "POST", "/api/v1/register", &body)?;
            let secret = found["secret"].as_str().unwrap_or_default();
            print(
                &args,
                &json!({"id": id, "secret": secret}),
                format!("{id} registered with {}; secret: {secret}", ca.name),
            );
        }
        CaCommand::Revoke { org, id, reason, install, update_channel, admin } => {
            let ca = ca_of(&data, &org)?;
            let (signer, cert) = registrar(&data, &ca)?;
            let body = json!({"id": id, "reason": reason, "gencrl": true, "caname": ca.name});
            let found = client::call(&endpoint(&ca)?, &signer, &cert, "POST", "/api/v1/revoke", &body)?;
            let crl = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                found["CRL"].as_str().unwrap_or_default(),
            )
            .ok()
            .context("CRL")?;
            let mut installed = Vec::new();
            if install {
                for node in node_configs(&data)? {
                    let NodeConfig::Peer(peer) = node else { continue };
                    let crls = peer.msp_dir.join("crls");
                    std::fs::create_dir_all(&crls)?;
                    let file = crls.join(format!("{}.pem", ca.name));
                    std::fs::write(&file, &crl)?;
                    installed.push(file.display().to_string());
                }
            }
            let revoked = found["RevokedCerts"].as_array().map_or(0, Vec::len);
            let mut report = json!({
                "id": id,
                "revoked": found["RevokedCerts"],
                "installed": installed,
                "enforced_for": if installed.is_empty() { json!([]) } else { json!(["admission"]) },
                "validation_unchanged": true,
            });
            // A local CRL governs what those peers admit, never what they validate:
            // revocation for validation is a channel config update of the org's MSP.
            let scope = if update_channel {
                let who = crate::channel::Who {
                    data: data.clone(),
                    user: admin.unwrap_or_else(|| format!("Admin@{org}")),
                    orderer: None,
                };
                // Kept before the update: if the update fails, the CA has still revoked.
                let kept = data.join("crls").join(format!("{}.pem", ca.name));
                std::fs::create_dir_all(data.join("crls"))?;
                std::fs::write(&kept, &crl)?;
                let change = crate::channel::MspChange { crls: vec![crl.clone()], root_certs: Vec::new() };
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let committed =
                    runtime.block_on(crate::channel::update_msp(&who, &org, &change, &[])).with_context(|| {
                        format!(
                            "{id} is revoked by {}, but its CRL ({}) is not in the channel config; retry with `medfabric channel update-msp --org {org} --crl {}`",
                            ca.name,
                            kept.display(),
                            kept.display()
                        )
                    })?;
                let (block, sequence) = (&committed["config_block"], &committed["sequence"]);
                report["enforced_for"] = json!(["admission", "validation"]);
                report["validation_unchanged"] = json!(false);
                report["config_block"] = block.clone();
                report["sequence"] = sequence.clone();
                format!(
                    "the CRL is in the channel config from block {block} (sequence {sequence}): every peer and orderer refuses the identity's transactions from that block on"
                )
            } else if installed.is_empty() {
                "recorded by the CA only: no peer enforces it until its CRL is installed (--install)"
                    .to_owned()
            } else {
                format!(
                    "CRL installed in {} peer MSP(s): those peers refuse the identity's proposals, gateway calls and Deliver requests; validation of blocks is unchanged until the channel config's MSP carries the CRL",
                    installed.len()
                )
            };
            print(&args, &report, format!("{id}: {revoked} certificate(s) revoked by {}; {scope}", ca.name));
        }
    }
    Ok(())
}
