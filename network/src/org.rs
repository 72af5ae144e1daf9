//! One organization on its own: `medfabric org init` makes an organization's CAs, MSP,
//! node and user certificates and record key with nobody else's keys involved;
//! `org definition` is the public part the channel's members need to add it (its MSP —
//! CA certificates, NodeOUs, CRLs — anchor peers and record key); `network add-org`
//! (development) also puts the new organization's nodes into a local network directory,
//! where `network up` starts them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use medfabric_msp::MspFolder;
use medfabric_proto::Message;
use medfabric_proto::msp::MspConfig;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::generate::{write_node_configs_of, write_peer_org};
use crate::topology::{PeerOrg, Topology};

/// The organization file `org init` keeps beside the material it made.
const ORG_FILE: &str = "org.yaml";
/// The public half of the organization's record key (hex), beside it.
const RECORD_KEY_FILE: &str = "recordkey.pub";

/// What the channel's members need to add an organization: public material only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgDefinition {
    /// The name of its group in the channel config.
    pub name: String,
    pub msp_id: String,
    /// Its MSP value as the channel config document shows it (`type`, `config`).
    pub msp: serde_json::Value,
    /// `host:port` of its anchor peers.
    pub anchor_peers: Vec<String>,
    /// Its record key (uncompressed P-256, hex): record data keys are wrapped to it.
    pub record_key: String,
}

/// Reads an organization file (one entry of a topology's `organizations`).
pub fn load_org(path: &Path) -> Result<PeerOrg> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let org: PeerOrg = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    check_org(&org)?;
    Ok(org)
}

fn check_org(org: &PeerOrg) -> Result<()> {
    // Names become config keys and path components: letters, digits, '.' and '-', not
    // starting with '.'.
    let name_ok = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    let names = [&org.name, &org.msp_id, &org.domain]
        .into_iter()
        .chain(org.peers.iter().map(|p| &p.name))
        .chain(org.users.iter().map(|u| &u.name));
    for name in names {
        if !name_ok(name) {
            bail!(
                "{name:?} in organization {}: names are letters, digits, '.' or '-', not starting with '.'",
                org.name
            );
        }
    }
    if org.peers.is_empty() {
        bail!("organization {} needs at least one peer", org.name);
    }
    Ok(())
}

/// Makes the organization of `org_file` under `out` (its own private keys stay there)
/// and returns its definition.
pub fn init(org_file: &Path, out: &Path) -> Result<OrgDefinition> {
    init_org(&load_org(org_file)?, out)
}

fn init_org(org: &PeerOrg, out: &Path) -> Result<OrgDefinition> {
    let org_dir = out.join("organizations/peerOrganizations").join(&org.domain);
    if org_dir.exists() {
        bail!("{} already exists: an organization is made once", org_dir.display());
    }
    let (_, record_key) = write_peer_org(org, out, OffsetDateTime::now_utc())?;
    std::fs::write(org_dir.join(ORG_FILE), serde_yaml::to_string(org)?)?;
    std::fs::write(org_dir.join(RECORD_KEY_FILE), hex::encode(record_key))?;
    definition(&org_dir)
}

/// The definition of the organization made under `dir` (the directory `init` wrote:
/// `.../peerOrganizations/<domain>`, or the `--out` directory when it holds one org).
pub fn definition(dir: &Path) -> Result<OrgDefinition> {
    let dir = org_dir(dir)?;
    let org = load_org(&dir.join(ORG_FILE))?;
    let msp = MspFolder::load(&dir.join("msp"), &org.msp_id)?;
    let value = MspConfig { r#type: 0, config: msp.encode_to_vec().into() }.encode_to_vec();
    let record_key = std::fs::read_to_string(dir.join(RECORD_KEY_FILE))
        .with_context(|| format!("{} has no {RECORD_KEY_FILE}", dir.display()))?;
    Ok(OrgDefinition {
        name: org.name.clone(),
        msp_id: org.msp_id.clone(),
        msp: medfabric_types::configtx::value_to_document("MSP", &value),
        anchor_peers: org.peers.iter().take(1).map(|p| format!("{}:{}", p.host, p.port)).collect(),
        record_key: record_key.trim().to_owned(),
    })
}

/// `dir` itself when it holds an org file, else the one organization under it.
fn org_dir(dir: &Path) -> Result<PathBuf> {
    if dir.join(ORG_FILE).exists() {
        return Ok(dir.to_owned());
    }
    let orgs = dir.join("organizations/peerOrganizations");
    let found: Vec<PathBuf> = std::fs::read_dir(&orgs)
        .with_context(|| format!("{} holds no organization made by `org init`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(ORG_FILE).exists())
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{} holds no organization made by `org init`", dir.display()),
        _ => bail!("{} holds several organizations: name one of {found:?}", dir.display()),
    }
}

/// Development: makes the organization of `org_file` inside the local network at `data`
/// (on free loopback ports), adds it to the network's topology and writes its nodes'
/// configs; `network up` then starts them. Its nodes join the channel from the genesis
/// block once a config update has added the organization.
pub fn add_to_network(data: &Path, org_file: &Path) -> Result<(OrgDefinition, Vec<PathBuf>)> {
    let topology_file = data.join("network.yaml");
    let mut topology = Topology::load(&topology_file)?;
    let org = crate::up::org_with_free_ports(load_org(org_file)?)?;
    if topology.organizations.iter().any(|o| o.msp_id == org.msp_id || o.domain == org.domain) {
        bail!("the network already has an organization {} or domain {}", org.msp_id, org.domain);
    }
    topology.organizations.push(org.clone());
    // Every check before anything is written.
    topology.check()?;
    let definition = init_org(&org, data)?;
    let configs = write_node_configs_of(&topology, data, false, |o| o.msp_id == org.msp_id)?;
    std::fs::write(&topology_file, serde_yaml::to_string(&topology)?)?;
    Ok((definition, configs))
}
