//! The channel configuration tree (`common.Config`): read into [`ChannelConfig`] and
//! [`ChannelResources`] (MSPs + policies), and written from a [`ChannelSpec`].

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_msp::{MspManager, PolicyTree, parse_policy};
use medfabric_proto::common::{
    self, BlockDataHashingStructure, Capabilities, Capability, ChannelHeader, Config, ConfigEnvelope,
    ConfigGroup, ConfigPolicy, ConfigValue, Envelope, HashingAlgorithm, HeaderType, ImplicitMetaPolicy,
    OrdererAddresses, Payload, Policy, SignatureHeader, implicit_meta_policy, policy,
};
use medfabric_proto::etcdraft;
use medfabric_proto::medfabric::config::{
    ChaincodeDefinition, ChaincodeDefinitions, MspIds, RecordKeys, RoleGrants,
};
use medfabric_proto::msp::{FabricMspConfig, MspConfig};
use medfabric_proto::orderer::{BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType};
use medfabric_proto::protos::{AnchorPeer, AnchorPeers};
use prost::Message;
use prost_types::Timestamp;
use serde::Serialize;

use crate::block;
use crate::error::{ConvertError, decode};
use crate::transaction::{Transaction, TransactionBody};
use crate::txid::{compute_tx_id, new_nonce};

/// Config value key of medfabric's chaincode definitions in `/Channel/Application`.
pub const CHAINCODES_KEY: &str = "MedfabricChaincodes";

/// Config value key of the consortium's role grants in `/Channel/Application`.
pub const ROLES_KEY: &str = "MedfabricRoles";
/// The application value with each organization's record key (`medfabric.config.RecordKeys`).
pub const RECORD_KEYS_KEY: &str = "MedfabricRecordKeys";

const CHANNEL: &str = "Channel";
const APPLICATION: &str = "Application";
const ORDERER: &str = "Orderer";
const ADMINS: &str = "Admins";

/// One organization as the channel config describes it.
#[derive(Debug, Clone, Serialize)]
pub struct OrgConfig {
    /// Name of the org's config group.
    pub name: String,
    pub msp_id: String,
    #[serde(skip)]
    pub msp: FabricMspConfig,
    pub anchor_peers: Vec<String>,
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsenterConfig {
    pub host: String,
    pub port: u32,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BatchConfig {
    pub max_message_count: u32,
    pub absolute_max_bytes: u32,
    pub preferred_max_bytes: u32,
    pub timeout_ms: u64,
}

/// The parts of a channel config nodes act on.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelConfig {
    pub channel_id: String,
    pub sequence: u64,
    pub orderer_orgs: Vec<OrgConfig>,
    pub application_orgs: Vec<OrgConfig>,
    pub orderer_addresses: Vec<String>,
    pub consensus_type: String,
    pub consenters: Vec<ConsenterConfig>,
    pub batch: BatchConfig,
    pub capabilities: BTreeMap<String, Vec<String>>,
    pub hashing_algorithm: String,
    /// Chaincode definitions carried in the config (medfabric channels only).
    #[serde(skip)]
    pub chaincodes: Vec<ChaincodeDefinition>,
    /// The consortium's role grants: role → MSP ids (empty: none configured).
    pub roles: BTreeMap<String, Vec<String>>,
    /// Each organization's record key (MSP id → uncompressed P-256 public key).
    pub record_keys: BTreeMap<String, Vec<u8>>,
}

/// A channel config with its MSPs and policies ready for validation.
#[derive(Debug)]
pub struct ChannelResources {
    pub config: ChannelConfig,
    pub msps: MspManager,
    pub policies: PolicyTree,
    pub raw: Config,
}

impl ChannelResources {
    pub fn from_config(channel_id: &str, raw: Config) -> Result<Self, ConvertError> {
        let config = ChannelConfig::from_config(channel_id, &raw)?;
        let msps = MspManager::from_configs(
            config.orderer_orgs.iter().chain(&config.application_orgs).map(|o| &o.msp),
        )
        .map_err(|e| ConvertError::Invalid("MSP", e.to_string()))?;
        let root = raw.channel_group.as_ref().ok_or(ConvertError::Missing("Config.channel_group"))?;
        let policies = PolicyTree::from_config_group(CHANNEL, root)
            .map_err(|e| ConvertError::Invalid("policy", e.to_string()))?;
        Ok(Self { config, msps, policies, raw })
    }

    /// The same resources with more certificate revocation lists (PEM), as a peer adds
    /// those in its local MSP's `crls/`: each org's MSP honours the ones its CAs signed.
    pub fn with_local_crls(&self, crls: &[Vec<u8>]) -> Result<Self, ConvertError> {
        // From the config itself: lists added before and since removed stop applying.
        let fresh = Self::from_config(&self.config.channel_id, self.raw.clone())?;
        if crls.is_empty() {
            return Ok(fresh);
        }
        let mut config = fresh.config;
        for org in config.orderer_orgs.iter_mut().chain(config.application_orgs.iter_mut()) {
            for crl in crls {
                if !org.msp.revocation_list.iter().any(|c| c.as_ref() == crl.as_slice()) {
                    org.msp.revocation_list.push(crl.clone().into());
                }
            }
        }
        let msps = MspManager::from_configs(
            config.orderer_orgs.iter().chain(&config.application_orgs).map(|o| &o.msp),
        )
        .map_err(|e| ConvertError::Invalid("MSP", e.to_string()))?;
        let root = self.raw.channel_group.as_ref().ok_or(ConvertError::Missing("Config.channel_group"))?;
        let policies = PolicyTree::from_config_group(CHANNEL, root)
            .map_err(|e| ConvertError::Invalid("policy", e.to_string()))?;
        Ok(Self { config, msps, policies, raw: self.raw.clone() })
    }

    /// Reads the config carried by a config block (its single CONFIG envelope).
    pub fn from_config_block(block: &common::Block) -> Result<Self, ConvertError> {
        let envelopes = block::envelopes(block);
        let [envelope] = envelopes else {
            return Err(ConvertError::Invalid(
                "config block",
                format!("holds {} envelopes, expected 1", envelopes.len()),
            ));
        };
        let tx =
            Transaction::parse(envelope).map_err(|e| ConvertError::Invalid("config block", e.to_string()))?;
        match tx.body {
            TransactionBody::Config(config_envelope) => {
                let config = config_envelope.config.ok_or(ConvertError::Missing("ConfigEnvelope.config"))?;
                Self::from_config(&tx.channel_header.channel_id, config)
            }
            _ => {
                Err(ConvertError::Invalid("config block", "its envelope is not a CONFIG transaction".into()))
            }
        }
    }
}

impl ChannelConfig {
    pub fn from_config(channel_id: &str, raw: &Config) -> Result<Self, ConvertError> {
        let root = raw.channel_group.as_ref().ok_or(ConvertError::Missing("Config.channel_group"))?;
        let empty = ConfigGroup::default();
        let orderer = root.groups.get(ORDERER).unwrap_or(&empty);
        let application = root.groups.get(APPLICATION).unwrap_or(&empty);
        let orgs = |group: &ConfigGroup| -> Result<Vec<OrgConfig>, ConvertError> {
            group.groups.iter().map(|(name, g)| org_config(name, g)).collect()
        };
        let hashing: HashingAlgorithm = value(root, "HashingAlgorithm")?.unwrap_or_default();
        let addresses: OrdererAddresses = value(root, "OrdererAddresses")?.unwrap_or_default();
        let consensus: ConsensusType = value(orderer, "ConsensusType")?.unwrap_or_default();
        let consenters = if consensus.r#type == "etcdraft" {
            let meta: etcdraft::ConfigMetadata = decode("etcdraft.ConfigMetadata", &consensus.metadata)?;
            meta.consenters.iter().map(|c| ConsenterConfig { host: c.host.clone(), port: c.port }).collect()
        } else {
            Vec::new()
        };
        let batch_size: BatchSize = value(orderer, "BatchSize")?.unwrap_or_default();
        let batch_timeout: BatchTimeout = value(orderer, "BatchTimeout")?.unwrap_or_default();
        let timeout_ms = if batch_timeout.timeout.is_empty() {
            0
        } else {
            parse_duration_ms(&batch_timeout.timeout)
                .ok_or_else(|| ConvertError::Invalid("BatchTimeout", batch_timeout.timeout.clone()))?
        };
        let mut capabilities = BTreeMap::new();
        for (name, group) in [(CHANNEL, root), (ORDERER, orderer), (APPLICATION, application)] {
            let caps: Capabilities = value(group, "Capabilities")?.unwrap_or_default();
            capabilities.insert(name.to_owned(), caps.capabilities.keys().cloned().collect());
        }
        let chaincodes: ChaincodeDefinitions = value(application, CHAINCODES_KEY)?.unwrap_or_default();
        let roles: RoleGrants = value(application, ROLES_KEY)?.unwrap_or_default();
        let record_keys: RecordKeys = value(application, RECORD_KEYS_KEY)?.unwrap_or_default();
        Ok(Self {
            channel_id: channel_id.to_owned(),
            sequence: raw.sequence,
            orderer_orgs: orgs(orderer)?,
            application_orgs: orgs(application)?,
            orderer_addresses: addresses.addresses,
            consensus_type: consensus.r#type,
            consenters,
            batch: BatchConfig {
                max_message_count: batch_size.max_message_count,
                absolute_max_bytes: batch_size.absolute_max_bytes,
                preferred_max_bytes: batch_size.preferred_max_bytes,
                timeout_ms,
            },
            capabilities,
            hashing_algorithm: hashing.name,
            chaincodes: chaincodes.definitions,
            roles: roles.roles.into_iter().map(|(role, ids)| (role, ids.msp_ids)).collect(),
            record_keys: record_keys.keys.into_iter().map(|(org, key)| (org, key.to_vec())).collect(),
        })
    }
}

fn value<M: Message + Default>(group: &ConfigGroup, key: &'static str) -> Result<Option<M>, ConvertError> {
    group.values.get(key).map(|v| decode(key, &v.value)).transpose()
}

fn org_config(name: &str, group: &ConfigGroup) -> Result<OrgConfig, ConvertError> {
    let msp: MspConfig = value(group, "MSP")?.ok_or(ConvertError::Missing("org MSP value"))?;
    if msp.r#type != 0 {
        return Err(ConvertError::Invalid(
            "MSPConfig.type",
            format!("org {name}: only FABRIC (0) MSPs are supported"),
        ));
    }
    let fabric: FabricMspConfig = decode("FabricMSPConfig", &msp.config)?;
    let anchors: AnchorPeers = value(group, "AnchorPeers")?.unwrap_or_default();
    let endpoints: OrdererAddresses = value(group, "Endpoints")?.unwrap_or_default();
    Ok(OrgConfig {
        name: name.to_owned(),
        msp_id: fabric.name.clone(),
        msp: fabric,
        anchor_peers: anchors.anchor_peers.iter().map(|a| format!("{}:{}", a.host, a.port)).collect(),
        endpoints: endpoints.addresses,
    })
}

/// Parses a Go-style duration (`250ms`, `2s`, `1m30s`, `1.5s`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_ns += number * scale;
        rest = &rest[unit_len..];
    }
    Some((total_ns / 1e6).round() as u64)
}

// ---------------------------------------------------------------------------------------
// Writing a channel config.

/// An organization to put into a new channel config.
#[derive(Debug, Clone)]
pub struct OrgSpec {
    pub name: String,
    pub msp: FabricMspConfig,
    pub readers: String,
    pub writers: String,
    pub admins: String,
    /// Application orgs only.
    pub endorsement: Option<String>,
    pub anchor_peers: Vec<(String, i32)>,
    /// Orderer orgs only: orderer endpoints `host:port`.
    pub endpoints: Vec<String>,
}

impl OrgSpec {
    /// Fabric's test-network policies for a peer organization.
    pub fn application(name: &str, msp: FabricMspConfig) -> Self {
        let id = msp.name.clone();
        Self {
            name: name.to_owned(),
            readers: format!("OR('{id}.admin', '{id}.peer', '{id}.client')"),
            writers: format!("OR('{id}.admin', '{id}.client')"),
            admins: format!("OR('{id}.admin')"),
            endorsement: Some(format!("OR('{id}.peer')")),
            msp,
            anchor_peers: Vec::new(),
            endpoints: Vec::new(),
        }
    }

    /// The organization's config group (`application`: with anchor peers and the
    /// Endorsement policy; else with orderer endpoints).
    pub fn config_group(&self, application: bool) -> Result<ConfigGroup, ConvertError> {
        org_group(self, application)
    }

    /// Fabric's test-network policies for an ordering organization.
    pub fn orderer(name: &str, msp: FabricMspConfig) -> Self {
        let id = msp.name.clone();
        Self {
            name: name.to_owned(),
            readers: format!("OR('{id}.member')"),
            writers: format!("OR('{id}.member')"),
            admins: format!("OR('{id}.admin')"),
            endorsement: None,
            msp,
            anchor_peers: Vec::new(),
            endpoints: Vec::new(),
        }
    }
}

/// Everything needed to write a channel's genesis config.
#[derive(Debug, Clone)]
pub struct ChannelSpec {
    pub channel_id: String,
    pub orderer_orgs: Vec<OrgSpec>,
    pub application_orgs: Vec<OrgSpec>,
    pub orderer_addresses: Vec<String>,
    pub consenters: Vec<etcdraft::Consenter>,
    pub raft_options: etcdraft::Options,
    pub batch_size: BatchSize,
    pub batch_timeout_ms: u64,
    pub chaincodes: Vec<ChaincodeDefinition>,
    /// The consortium's role grants (role → MSP ids); written only when not empty.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Each organization's record key (MSP id → public key); written only when not empty.
    pub record_keys: BTreeMap<String, Vec<u8>>,
}

impl ChannelSpec {
    /// The `common.Config` (sequence 0) this spec describes.
    pub fn to_config(&self) -> Result<Config, ConvertError> {
        let mut orderer = ConfigGroup { mod_policy: ADMINS.into(), ..Default::default() };
        put_value(
            &mut orderer,
            "ConsensusType",
            &ConsensusType {
                r#type: "etcdraft".into(),
                metadata: etcdraft::ConfigMetadata {
                    consenters: self.consenters.clone(),
                    options: Some(self.raft_options.clone()),
                }
                .encode_to_vec()
                .into(),
                state: 0,
            },
        );
        put_value(&mut orderer, "BatchSize", &self.batch_size);
        put_value(
            &mut orderer,
            "BatchTimeout",
            &BatchTimeout { timeout: format!("{}ms", self.batch_timeout_ms) },
        );
        put_value(&mut orderer, "ChannelRestrictions", &ChannelRestrictions::default());
        put_value(&mut orderer, "Capabilities", &capabilities("V2_0"));
        put_meta_policies(&mut orderer);
        put_policy(
            &mut orderer,
            "BlockValidation",
            implicit_meta("Writers", implicit_meta_policy::Rule::Any),
        );
        for org in &self.orderer_orgs {
            orderer.groups.insert(org.name.clone(), org_group(org, false)?);
        }

        let mut application = ConfigGroup { mod_policy: ADMINS.into(), ..Default::default() };
        put_value(&mut application, "Capabilities", &capabilities("V2_5"));
        put_value(
            &mut application,
            CHAINCODES_KEY,
            &ChaincodeDefinitions { definitions: self.chaincodes.clone() },
        );
        if !self.roles.is_empty() {
            let roles = self
                .roles
                .iter()
                .map(|(role, ids)| (role.clone(), MspIds { msp_ids: ids.clone() }))
                .collect();
            put_value(&mut application, ROLES_KEY, &RoleGrants { roles });
        }
        if !self.record_keys.is_empty() {
            let keys = self.record_keys.iter().map(|(org, key)| (org.clone(), key.clone().into())).collect();
            put_value(&mut application, RECORD_KEYS_KEY, &RecordKeys { keys });
        }
        put_meta_policies(&mut application);
        put_policy(
            &mut application,
            "Endorsement",
            implicit_meta("Endorsement", implicit_meta_policy::Rule::Majority),
        );
        put_policy(
            &mut application,
            "LifecycleEndorsement",
            implicit_meta("Endorsement", implicit_meta_policy::Rule::Majority),
        );
        for org in &self.application_orgs {
            application.groups.insert(org.name.clone(), org_group(org, true)?);
        }

        let mut channel = ConfigGroup { mod_policy: ADMINS.into(), ..Default::default() };
        put_value(&mut channel, "HashingAlgorithm", &HashingAlgorithm { name: "SHA256".into() });
        put_value(&mut channel, "BlockDataHashingStructure", &BlockDataHashingStructure { width: u32::MAX });
        put_value(
            &mut channel,
            "OrdererAddresses",
            &OrdererAddresses { addresses: self.orderer_addresses.clone() },
        );
        put_value(&mut channel, "Capabilities", &capabilities("V2_0"));
        put_meta_policies(&mut channel);
        channel.groups.insert(ORDERER.into(), orderer);
        channel.groups.insert(APPLICATION.into(), application);
        Ok(Config { sequence: 0, channel_group: Some(channel) })
    }

    /// The genesis block: one CONFIG envelope, no creator (made offline, like
    /// configtxgen), LAST_CONFIG pointing at itself.
    pub fn genesis_block(&self, timestamp: Timestamp) -> Result<common::Block, ConvertError> {
        let config = self.to_config()?;
        let nonce = new_nonce();
        let channel_header = ChannelHeader {
            r#type: HeaderType::Config as i32,
            version: 1,
            timestamp: Some(timestamp),
            channel_id: self.channel_id.clone(),
            tx_id: compute_tx_id(&nonce, &[]),
            epoch: 0,
            extension: Bytes::new(),
            tls_cert_hash: Bytes::new(),
        };
        let payload = Payload {
            header: Some(common::Header {
                channel_header: channel_header.encode_to_vec().into(),
                signature_header: SignatureHeader { creator: Bytes::new(), nonce: nonce.to_vec().into() }
                    .encode_to_vec()
                    .into(),
            }),
            data: ConfigEnvelope { config: Some(config), last_update: None }.encode_to_vec().into(),
        };
        let envelope = Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() };
        let mut genesis = block::new_block(0, &[], vec![envelope.encode_to_vec().into()]);
        let orderer_metadata = common::OrdererBlockMetadata {
            last_config: Some(common::LastConfig { index: 0 }),
            consenter_metadata: Bytes::new(),
        };
        let signatures =
            common::Metadata { value: orderer_metadata.encode_to_vec().into(), signatures: Vec::new() };
        block::set_metadata_slot(&mut genesis, block::SIGNATURES, signatures.encode_to_vec().into());
        Ok(genesis)
    }
}

fn org_group(org: &OrgSpec, application: bool) -> Result<ConfigGroup, ConvertError> {
    let mut group = ConfigGroup { mod_policy: ADMINS.into(), ..Default::default() };
    put_value(&mut group, "MSP", &MspConfig { r#type: 0, config: org.msp.encode_to_vec().into() });
    if application {
        put_value(
            &mut group,
            "AnchorPeers",
            &AnchorPeers {
                anchor_peers: org
                    .anchor_peers
                    .iter()
                    .map(|(host, port)| AnchorPeer { host: host.clone(), port: *port })
                    .collect(),
            },
        );
    } else {
        put_value(&mut group, "Endpoints", &OrdererAddresses { addresses: org.endpoints.clone() });
    }
    let mut policies = vec![("Readers", &org.readers), ("Writers", &org.writers), ("Admins", &org.admins)];
    if let Some(endorsement) = &org.endorsement {
        policies.push(("Endorsement", endorsement));
    }
    for (name, text) in policies {
        let envelope = parse_policy(text)
            .map_err(|e| ConvertError::Invalid("org policy", format!("{} {name}: {e}", org.name)))?;
        put_policy(
            &mut group,
            name,
            Policy { r#type: policy::PolicyType::Signature as i32, value: envelope.encode_to_vec().into() },
        );
    }
    Ok(group)
}

fn capabilities(name: &str) -> Capabilities {
    Capabilities { capabilities: BTreeMap::from([(name.to_owned(), Capability {})]) }
}

fn implicit_meta(sub_policy: &str, rule: implicit_meta_policy::Rule) -> Policy {
    Policy {
        r#type: policy::PolicyType::ImplicitMeta as i32,
        value: ImplicitMetaPolicy { sub_policy: sub_policy.into(), rule: rule as i32 }.encode_to_vec().into(),
    }
}

fn put_meta_policies(group: &mut ConfigGroup) {
    put_policy(group, "Readers", implicit_meta("Readers", implicit_meta_policy::Rule::Any));
    put_policy(group, "Writers", implicit_meta("Writers", implicit_meta_policy::Rule::Any));
    put_policy(group, "Admins", implicit_meta("Admins", implicit_meta_policy::Rule::Majority));
}

fn put_policy(group: &mut ConfigGroup, name: &str, policy: Policy) {
    group
        .policies
        .insert(name.into(), ConfigPolicy { version: 0, policy: Some(policy), mod_policy: ADMINS.into() });
}

fn put_value<M: Message>(group: &mut ConfigGroup, key: &str, message: &M) {
    group.values.insert(
        key.into(),
        ConfigValue { version: 0, value: message.encode_to_vec().into(), mod_policy: ADMINS.into() },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("2s"), Some(2000));
        assert_eq!(parse_duration_ms("1m30s"), Some(90_000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1500));
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("5 parsecs"), None);
    }
}
