//! The topology file (`network-config/*.yaml`): organizations, nodes, users, chaincodes,
//! role grants, batching; loaded and checked before anything is generated.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use medfabric_msp::parse_policy;
use medfabric_proto::protos::{ApplicationPolicy, application_policy};
use serde::{Deserialize, Serialize};

/// The topology's role grants, checked: every MSP id names an application organization.
pub(crate) fn role_grants(topology: &Topology) -> Result<BTreeMap<String, Vec<String>>> {
    for (role, msp_ids) in &topology.roles {
        if role.is_empty() || msp_ids.is_empty() {
            bail!("roles: {role:?} needs a role name and at least one organization");
        }
        for msp_id in msp_ids {
            if !topology.organizations.iter().any(|o| &o.msp_id == msp_id) {
                bail!("roles: {role} is granted to {msp_id}, which is not an organization of this topology");
            }
        }
    }
    Ok(topology.roles.clone())
}

/// A network topology file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub channel: String,
    pub orderer: OrdererOrg,
    pub organizations: Vec<PeerOrg>,
    #[serde(default)]
    pub chaincodes: Vec<ChaincodeEntry>,
    /// The consortium's role grants: role → MSP ids of the organizations whose
    /// identities may act in it (e.g. `payer: [InsurerMSP]`). Written into the channel
    /// config (`MedfabricRoles`, mod_policy Admins); a `role` attribute in a certificate
    /// counts only for a granted organization.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdererOrg {
    pub name: String,
    pub msp_id: String,
    pub domain: String,
    pub batch: Batch,
    pub consenters: Vec<Orderer>,
    #[serde(default)]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub max_message_count: u32,
    pub absolute_max_bytes: u32,
    pub preferred_max_bytes: u32,
    pub batch_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Orderer {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub cluster_port: u16,
    pub operations_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerOrg {
    pub name: String,
    pub msp_id: String,
    pub domain: String,
    pub ca: Endpoint,
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub operations_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// `client` or `admin` (the NodeOU written into the certificate).
    #[serde(rename = "type", default = "client")]
    pub user_type: String,
    /// Fabric CA attributes, e.g. `role: patient`.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

fn client() -> String {
    "client".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChaincodeEntry {
    pub name: String,
    pub version: String,
    pub sequence: i64,
    /// Policy language (`AND('A.peer','B.peer')`) or a channel policy path
    /// (`/Channel/Application/Endorsement`).
    pub endorsement_policy: String,
    #[serde(default)]
    pub init_required: bool,
    /// The built-in chaincode the peers run for this definition (default: its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// Private data collections (each organization also has its implicit collection
    /// `_implicit_org_<MSPID>` without configuration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionEntry>,
}

/// A private data collection of a chaincode (Fabric's collection config JSON, in YAML).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionEntry {
    pub name: String,
    /// Member organizations, in the policy language: `OR('A.member', 'B.member')`.
    pub policy: String,
    #[serde(default)]
    pub required_peer_count: i32,
    #[serde(default = "one")]
    pub maximum_peer_count: i32,
    /// Blocks the data lives after the block that wrote it; 0: forever.
    #[serde(default)]
    pub block_to_live: u64,
    #[serde(default)]
    pub member_only_read: bool,
    #[serde(default)]
    pub member_only_write: bool,
    /// Overrides the chaincode's policy for writes to the collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_policy: Option<String>,
}

fn one() -> i32 {
    1
}

pub(crate) fn collection_package(
    collections: &[CollectionEntry],
) -> Result<Option<medfabric_proto::protos::CollectionConfigPackage>> {
    use medfabric_proto::protos::{
        CollectionConfig, CollectionConfigPackage, CollectionPolicyConfig, StaticCollectionConfig,
        collection_config, collection_policy_config,
    };
    if collections.is_empty() {
        return Ok(None);
    }
    let config = collections
        .iter()
        .map(|c| {
            let members = medfabric_msp::parse_policy(&c.policy)
                .with_context(|| format!("collection {}: member policy", c.name))?;
            let endorsement_policy = c
                .endorsement_policy
                .as_deref()
                .map(application_policy)
                .transpose()
                .with_context(|| format!("collection {}: endorsement policy", c.name))?;
            let config = StaticCollectionConfig {
                name: c.name.clone(),
                member_orgs_policy: Some(CollectionPolicyConfig {
                    payload: Some(collection_policy_config::Payload::SignaturePolicy(members)),
                }),
                required_peer_count: c.required_peer_count,
                maximum_peer_count: c.maximum_peer_count,
                block_to_live: c.block_to_live,
                member_only_read: c.member_only_read,
                member_only_write: c.member_only_write,
                endorsement_policy,
            };
            medfabric_types::lifecycle::Collection::from_static(&config)
                .map_err(|e| anyhow::anyhow!("collection {}: {e}", c.name))?;
            Ok(CollectionConfig { payload: Some(collection_config::Payload::StaticCollectionConfig(config)) })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(CollectionConfigPackage { config }))
}

impl Topology {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let topology: Topology =
            serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        topology.check()?;
        Ok(topology)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.channel.is_empty()
            || !self
                .channel
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            bail!("channel name {:?} must be lowercase letters, digits, '-' or '.'", self.channel);
        }
        if self.organizations.is_empty() {
            bail!("a network needs at least one peer organization");
        }
        if self.orderer.consenters.is_empty() {
            bail!("a network needs at least one orderer");
        }
        if self.orderer.consenters.len() == 2 {
            bail!("a Raft ordering service needs 1 or at least 3 consenters (2 cannot survive a failure)");
        }
        let mut msp_ids: Vec<&str> = self.organizations.iter().map(|o| o.msp_id.as_str()).collect();
        msp_ids.push(&self.orderer.msp_id);
        let mut unique = msp_ids.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != msp_ids.len() {
            bail!("MSP ids must be unique: {msp_ids:?}");
        }
        let mut names: Vec<&str> = self.organizations.iter().map(|o| o.name.as_str()).collect();
        names.push(&self.orderer.name);
        let mut domains: Vec<&str> = self.organizations.iter().map(|o| o.domain.as_str()).collect();
        domains.push(&self.orderer.domain);
        for (what, list) in [("organization names", names), ("domains", domains)] {
            let mut sorted = list.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != list.len() {
                bail!("{what} must be unique: {list:?}");
            }
        }
        for org in &self.organizations {
            if org.peers.is_empty() {
                bail!("organization {} has no peer", org.name);
            }
        }
        for user in self.organizations.iter().flat_map(|o| &o.users).chain(&self.orderer.users) {
            if user.user_type != "client" && user.user_type != "admin" {
                bail!("user {} has type {:?}; expected client or admin", user.name, user.user_type);
            }
        }
        for cc in &self.chaincodes {
            application_policy(&cc.endorsement_policy).with_context(|| format!("chaincode {}", cc.name))?;
            collection_package(&cc.collections).with_context(|| format!("chaincode {}", cc.name))?;
        }
        let b = &self.orderer.batch;
        if b.max_message_count == 0
            || b.preferred_max_bytes == 0
            || b.preferred_max_bytes > b.absolute_max_bytes
        {
            bail!("batch: need max_message_count > 0 and 0 < preferred_max_bytes <= absolute_max_bytes");
        }
        Ok(())
    }
}

pub(crate) fn application_policy(text: &str) -> Result<ApplicationPolicy> {
    let policy = if text.starts_with('/') {
        application_policy::Type::ChannelConfigPolicyReference(text.to_owned())
    } else {
        application_policy::Type::SignaturePolicy(parse_policy(text)?)
    };
    Ok(ApplicationPolicy { r#type: Some(policy) })
}
