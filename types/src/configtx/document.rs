//! A channel config as a document a person can read and edit (JSON, or YAML by the
//! same shape), and back: what Fabric operators get from `configtxlator proto_decode`.
//!
//! The tree keeps every element's `version` and `mod_policy`. Values of the kinds Fabric
//! and medfabric define are shown decoded (MSPs with their PEM certificates, batch
//! settings, consenters, anchor peers, role grants, …); policies as the policy language
//! (`OR('Org1MSP.admin')`) or `MAJORITY Admins`. Anything else — and anything whose
//! decoded form would not encode back to the same bytes — is shown as `{"raw": base64}`,
//! so a document always converts back to exactly the config it came from.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use medfabric_msp::{parse_policy, policy_to_string};
use medfabric_proto::common::{
    BlockDataHashingStructure, Capabilities, Capability, Config, ConfigGroup, ConfigPolicy, ConfigValue,
    HashingAlgorithm, ImplicitMetaPolicy, OrdererAddresses, Policy, SignaturePolicyEnvelope,
    implicit_meta_policy, policy,
};
use medfabric_proto::etcdraft;
use medfabric_proto::medfabric::config::{MspIds, RecordKeys, RoleGrants};
use medfabric_proto::msp::{
    FabricCryptoConfig, FabricMspConfig, FabricNodeOUs, FabricOuIdentifier, MspConfig,
};
use medfabric_proto::orderer::{BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType};
use medfabric_proto::protos::{AnchorPeer, AnchorPeers};
use prost::Message;
use serde_json::{Map, Value, json};

use super::UpdateError;
use crate::config::{RECORD_KEYS_KEY, ROLES_KEY};

/// `config` as a document: `{"sequence": n, "channel_group": {...}}`.
pub fn to_document(config: &Config) -> Value {
    let empty = ConfigGroup::default();
    json!({
        "sequence": config.sequence,
        "channel_group": group_document(config.channel_group.as_ref().unwrap_or(&empty)),
    })
}

/// The config a document describes.
pub fn from_document(document: &Value) -> Result<Config, UpdateError> {
    let sequence = document.get("sequence").and_then(Value::as_u64).unwrap_or(0);
    let group = document
        .get("channel_group")
        .ok_or_else(|| UpdateError("the document has no channel_group".into()))?;
    Ok(Config { sequence, channel_group: Some(group_from(group, "/Channel")?) })
}

fn group_document(group: &ConfigGroup) -> Value {
    let values: Map<String, Value> = group
        .values
        .iter()
        .map(|(name, v)| {
            (name.clone(), json!({"version": v.version, "mod_policy": v.mod_policy, "value": value_document(name, &v.value)}))
        })
        .collect();
    let policies: Map<String, Value> = group
        .policies
        .iter()
        .map(|(name, p)| {
            (name.clone(), json!({"version": p.version, "mod_policy": p.mod_policy, "policy": policy_document(p.policy.as_ref())}))
        })
        .collect();
    let groups: Map<String, Value> =
        group.groups.iter().map(|(name, g)| (name.clone(), group_document(g))).collect();
    json!({
        "version": group.version,
        "mod_policy": group.mod_policy,
        "groups": groups,
        "values": values,
        "policies": policies,
    })
}

fn group_from(document: &Value, path: &str) -> Result<ConfigGroup, UpdateError> {
    let mut group = ConfigGroup {
        version: document.get("version").and_then(Value::as_u64).unwrap_or(0),
        mod_policy: text(document, "mod_policy"),
        ..Default::default()
    };
    for (name, child) in object(document, "groups") {
        group.groups.insert(name.clone(), group_from(child, &format!("{path}/{name}"))?);
    }
    for (name, value) in object(document, "values") {
        let at = format!("{path}/{name}");
        let content =
            value.get("value").ok_or_else(|| UpdateError(format!("value {at} has no \"value\"")))?;
        group.values.insert(
            name.clone(),
            ConfigValue {
                version: value.get("version").and_then(Value::as_u64).unwrap_or(0),
                value: value_from(name, content).map_err(|e| UpdateError(format!("value {at}: {e}")))?,
                mod_policy: text(value, "mod_policy"),
            },
        );
    }
    for (name, policy) in object(document, "policies") {
        let at = format!("{path}/{name}");
        let content =
            policy.get("policy").ok_or_else(|| UpdateError(format!("policy {at} has no \"policy\"")))?;
        group.policies.insert(
            name.clone(),
            ConfigPolicy {
                version: policy.get("version").and_then(Value::as_u64).unwrap_or(0),
                policy: Some(policy_from(content).map_err(|e| UpdateError(format!("policy {at}: {e}")))?),
                mod_policy: text(policy, "mod_policy"),
            },
        );
    }
    Ok(group)
}

fn object<'a>(document: &'a Value, field: &str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    document.get(field).and_then(Value::as_object).into_iter().flatten()
}

fn text(document: &Value, field: &str) -> String {
    document.get(field).and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn raw(bytes: &[u8]) -> Value {
    json!({"raw": BASE64.encode(bytes)})
}

// ---- values ---------------------------------------------------------------------------

/// A config value of kind `key` (`MSP`, `BatchSize`, …) as the document shows it.
pub fn value_to_document(key: &str, bytes: &[u8]) -> Value {
    value_document(key, bytes)
}

/// The bytes of a config value of kind `key` from its document form.
pub fn value_from_document(key: &str, document: &Value) -> Result<Bytes, UpdateError> {
    value_from(key, document).map_err(|e| UpdateError(format!("{key}: {e}")))
}

/// A value decoded by its key, or raw when it is of an unknown kind or would not encode
/// back to the same bytes.
pub(super) fn value_document(key: &str, bytes: &[u8]) -> Value {
    let Some(decoded) = decode_value(key, bytes) else { return raw(bytes) };
    match encode_value(key, &decoded) {
        Ok(back) if back.as_ref() == bytes => decoded,
        _ => raw(bytes),
    }
}

fn value_from(key: &str, document: &Value) -> Result<Bytes, String> {
    if let Some(raw) = document.get("raw").and_then(Value::as_str) {
        return BASE64.decode(raw).map(Bytes::from).map_err(|e| format!("raw: {e}"));
    }
    encode_value(key, document)
}

fn decode_value(key: &str, bytes: &[u8]) -> Option<Value> {
    Some(match key {
        "HashingAlgorithm" => json!({"name": HashingAlgorithm::decode(bytes).ok()?.name}),
        "BlockDataHashingStructure" => json!({"width": BlockDataHashingStructure::decode(bytes).ok()?.width}),
        "OrdererAddresses" | "Endpoints" => {
            json!({"addresses": OrdererAddresses::decode(bytes).ok()?.addresses})
        }
        "Capabilities" => {
            json!({"capabilities": Capabilities::decode(bytes).ok()?.capabilities.keys().collect::<Vec<_>>()})
        }
        "BatchSize" => {
            let b = BatchSize::decode(bytes).ok()?;
            json!({"max_message_count": b.max_message_count, "absolute_max_bytes": b.absolute_max_bytes, "preferred_max_bytes": b.preferred_max_bytes})
        }
        "BatchTimeout" => json!({"timeout": BatchTimeout::decode(bytes).ok()?.timeout}),
        "ChannelRestrictions" => json!({"max_count": ChannelRestrictions::decode(bytes).ok()?.max_count}),
        "ConsensusType" => consensus_document(&ConsensusType::decode(bytes).ok()?)?,
        "MSP" => msp_document(&MspConfig::decode(bytes).ok()?)?,
        "AnchorPeers" => json!({"anchor_peers": AnchorPeers::decode(bytes).ok()?.anchor_peers.iter()
            .map(|a| json!({"host": a.host, "port": a.port})).collect::<Vec<_>>()}),
        ROLES_KEY => json!({"roles": RoleGrants::decode(bytes).ok()?.roles.into_iter()
            .map(|(role, ids)| (role, json!(ids.msp_ids))).collect::<Map<_, _>>()}),
        RECORD_KEYS_KEY => json!({"keys": RecordKeys::decode(bytes).ok()?.keys.into_iter()
            .map(|(org, key)| (org, json!(hex::encode(key)))).collect::<Map<_, _>>()}),
        _ => return None,
    })
}

fn encode_value(key: &str, d: &Value) -> Result<Bytes, String> {
    let bytes = match key {
        "HashingAlgorithm" => HashingAlgorithm { name: string(d, "name")? }.encode_to_vec(),
        "BlockDataHashingStructure" => {
            BlockDataHashingStructure { width: number(d, "width")? }.encode_to_vec()
        }
        "OrdererAddresses" | "Endpoints" => {
            OrdererAddresses { addresses: strings(d, "addresses")? }.encode_to_vec()
        }
        "Capabilities" => Capabilities {
            capabilities: strings(d, "capabilities")?.into_iter().map(|c| (c, Capability {})).collect(),
        }
        .encode_to_vec(),
        "BatchSize" => BatchSize {
            max_message_count: number(d, "max_message_count")?,
            absolute_max_bytes: number(d, "absolute_max_bytes")?,
            preferred_max_bytes: number(d, "preferred_max_bytes")?,
        }
        .encode_to_vec(),
        "BatchTimeout" => BatchTimeout { timeout: string(d, "timeout")? }.encode_to_vec(),
        "ChannelRestrictions" => ChannelRestrictions { max_count: long(d, "max_count")? }.encode_to_vec(),
        "ConsensusType" => consensus_from(d)?.encode_to_vec(),
        "MSP" => msp_from(d)?.encode_to_vec(),
        "AnchorPeers" => AnchorPeers {
            anchor_peers: list(d, "anchor_peers")?
                .iter()
                .map(|a| Ok(AnchorPeer { host: string(a, "host")?, port: number(a, "port")? as i32 }))
                .collect::<Result<_, String>>()?,
        }
        .encode_to_vec(),
        ROLES_KEY => RoleGrants {
            roles: map(d, "roles")?
                .iter()
                .map(|(role, ids)| Ok((role.clone(), MspIds { msp_ids: string_list(ids, role)? })))
                .collect::<Result<_, String>>()?,
        }
        .encode_to_vec(),
        RECORD_KEYS_KEY => RecordKeys {
            keys: map(d, "keys")?
                .iter()
                .map(|(org, key)| {
                    let key = key.as_str().ok_or(format!("keys.{org} is not a string"))?;
                    Ok((org.clone(), hex::decode(key).map_err(|e| format!("keys.{org}: {e}"))?.into()))
                })
                .collect::<Result<_, String>>()?,
        }
        .encode_to_vec(),
        _ => return Err(format!("no decoded form for {key}: give {{\"raw\": base64}}")),
    };
    Ok(bytes.into())
}

fn consensus_document(consensus: &ConsensusType) -> Option<Value> {
    let metadata = if consensus.r#type == "etcdraft" {
        let meta = etcdraft::ConfigMetadata::decode(consensus.metadata.as_ref()).ok()?;
        let options = meta.options.unwrap_or_default();
        json!({
            "consenters": meta.consenters.iter().map(|c| Some(json!({
                "host": c.host,
                "port": c.port,
                "client_tls_cert": utf8(&c.client_tls_cert)?,
                "server_tls_cert": utf8(&c.server_tls_cert)?,
            }))).collect::<Option<Vec<_>>>()?,
            "options": {
                "tick_interval": options.tick_interval,
                "election_tick": options.election_tick,
                "heartbeat_tick": options.heartbeat_tick,
                "max_inflight_blocks": options.max_inflight_blocks,
                "snapshot_interval_size": options.snapshot_interval_size,
            },
        })
    } else {
        raw(&consensus.metadata)
    };
    Some(json!({"type": consensus.r#type, "state": consensus.state, "metadata": metadata}))
}

fn consensus_from(d: &Value) -> Result<ConsensusType, String> {
    let kind = string(d, "type")?;
    let metadata = d.get("metadata").ok_or("no metadata")?;
    let metadata = match metadata.get("raw").and_then(Value::as_str) {
        Some(raw) => BASE64.decode(raw).map_err(|e| format!("metadata.raw: {e}"))?,
        None => {
            let options = metadata.get("options").ok_or("metadata has no options")?;
            etcdraft::ConfigMetadata {
                consenters: list(metadata, "consenters")?
                    .iter()
                    .map(|c| {
                        Ok(etcdraft::Consenter {
                            host: string(c, "host")?,
                            port: number(c, "port")?,
                            client_tls_cert: string(c, "client_tls_cert")?.into_bytes().into(),
                            server_tls_cert: string(c, "server_tls_cert")?.into_bytes().into(),
                        })
                    })
                    .collect::<Result<_, String>>()?,
                options: Some(etcdraft::Options {
                    tick_interval: string(options, "tick_interval")?,
                    election_tick: number(options, "election_tick")?,
                    heartbeat_tick: number(options, "heartbeat_tick")?,
                    max_inflight_blocks: number(options, "max_inflight_blocks")?,
                    snapshot_interval_size: number(options, "snapshot_interval_size")?,
                }),
            }
            .encode_to_vec()
        }
    };
    Ok(ConsensusType { r#type: kind, metadata: metadata.into(), state: long(d, "state")? as i32 })
}

fn utf8(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

fn pems(certs: &[Bytes]) -> Option<Vec<String>> {
    certs.iter().map(|c| utf8(c)).collect()
}

fn ou_document(ou: Option<&FabricOuIdentifier>) -> Option<Value> {
    Some(match ou {
        None => Value::Null,
        Some(ou) => {
            json!({"certificate": utf8(&ou.certificate)?, "organizational_unit_identifier": ou.organizational_unit_identifier})
        }
    })
}

fn msp_document(msp: &MspConfig) -> Option<Value> {
    if msp.r#type != 0 {
        return None;
    }
    let f = FabricMspConfig::decode(msp.config.as_ref()).ok()?;
    if f.signing_identity.is_some() {
        return None;
    }
    let node_ous = match &f.fabric_node_ous {
        None => Value::Null,
        Some(n) => json!({
            "enable": n.enable,
            "client_ou_identifier": ou_document(n.client_ou_identifier.as_ref())?,
            "peer_ou_identifier": ou_document(n.peer_ou_identifier.as_ref())?,
            "admin_ou_identifier": ou_document(n.admin_ou_identifier.as_ref())?,
            "orderer_ou_identifier": ou_document(n.orderer_ou_identifier.as_ref())?,
        }),
    };
    Some(json!({"type": 0, "config": {
        "name": f.name,
        "root_certs": pems(&f.root_certs)?,
        "intermediate_certs": pems(&f.intermediate_certs)?,
        "admins": pems(&f.admins)?,
        "revocation_list": pems(&f.revocation_list)?,
        "organizational_unit_identifiers": f.organizational_unit_identifiers.iter()
            .map(|ou| ou_document(Some(ou))).collect::<Option<Vec<_>>>()?,
        "crypto_config": f.crypto_config.as_ref().map(|c| json!({
            "signature_hash_family": c.signature_hash_family,
            "identity_identifier_hash_function": c.identity_identifier_hash_function,
        })),
        "tls_root_certs": pems(&f.tls_root_certs)?,
        "tls_intermediate_certs": pems(&f.tls_intermediate_certs)?,
        "fabric_node_ous": node_ous,
    }}))
}

fn ou_from(d: &Value) -> Result<Option<FabricOuIdentifier>, String> {
    if d.is_null() {
        return Ok(None);
    }
    Ok(Some(FabricOuIdentifier {
        certificate: string(d, "certificate")?.into_bytes().into(),
        organizational_unit_identifier: string(d, "organizational_unit_identifier")?,
    }))
}

fn msp_from(d: &Value) -> Result<MspConfig, String> {
    let c = d.get("config").ok_or("MSP has no config")?;
    let certs = |field: &str| -> Result<Vec<Bytes>, String> {
        Ok(strings(c, field)?.into_iter().map(|p| Bytes::from(p.into_bytes())).collect())
    };
    let null = Value::Null;
    let node_ous = match c.get("fabric_node_ous").unwrap_or(&null) {
        Value::Null => None,
        n => Some(FabricNodeOUs {
            enable: n.get("enable").and_then(Value::as_bool).unwrap_or(false),
            client_ou_identifier: ou_from(n.get("client_ou_identifier").unwrap_or(&null))?,
            peer_ou_identifier: ou_from(n.get("peer_ou_identifier").unwrap_or(&null))?,
            admin_ou_identifier: ou_from(n.get("admin_ou_identifier").unwrap_or(&null))?,
            orderer_ou_identifier: ou_from(n.get("orderer_ou_identifier").unwrap_or(&null))?,
        }),
    };
    let crypto_config = match c.get("crypto_config").unwrap_or(&null) {
        Value::Null => None,
        cc => Some(FabricCryptoConfig {
            signature_hash_family: string(cc, "signature_hash_family")?,
            identity_identifier_hash_function: string(cc, "identity_identifier_hash_function")?,
        }),
    };
    let fabric = FabricMspConfig {
        name: string(c, "name")?,
        root_certs: certs("root_certs")?,
        intermediate_certs: certs("intermediate_certs")?,
        admins: certs("admins")?,
        revocation_list: certs("revocation_list")?,
        signing_identity: None,
        organizational_unit_identifiers: list(c, "organizational_unit_identifiers")?
            .iter()
            .map(|ou| ou_from(ou).map(Option::unwrap_or_default))
            .collect::<Result<_, String>>()?,
        crypto_config,
        tls_root_certs: certs("tls_root_certs")?,
        tls_intermediate_certs: certs("tls_intermediate_certs")?,
        fabric_node_ous: node_ous,
    };
    Ok(MspConfig { r#type: 0, config: fabric.encode_to_vec().into() })
}

// ---- policies -------------------------------------------------------------------------

pub(super) fn policy_document(policy: Option<&Policy>) -> Value {
    let Some(policy) = policy else { return Value::Null };
    let decoded = match policy::PolicyType::try_from(policy.r#type) {
        Ok(policy::PolicyType::Signature) => SignaturePolicyEnvelope::decode(policy.value.as_ref())
            .ok()
            .map(|envelope| json!({"type": "Signature", "rule": policy_to_string(&envelope)})),
        Ok(policy::PolicyType::ImplicitMeta) => {
            ImplicitMetaPolicy::decode(policy.value.as_ref()).ok().and_then(|m| {
                let rule = implicit_meta_policy::Rule::try_from(m.rule).ok()?;
                Some(json!({"type": "ImplicitMeta", "rule": rule.as_str_name(), "sub_policy": m.sub_policy}))
            })
        }
        _ => None,
    };
    match decoded {
        Some(d) if policy_from(&d).is_ok_and(|back| &back == policy) => d,
        _ => json!({"type": policy.r#type, "raw": BASE64.encode(&policy.value)}),
    }
}

fn policy_from(d: &Value) -> Result<Policy, String> {
    if let Some(raw) = d.get("raw").and_then(Value::as_str) {
        let r#type =
            d.get("type").and_then(Value::as_i64).ok_or("a raw policy needs its numeric type")? as i32;
        return Ok(Policy { r#type, value: BASE64.decode(raw).map_err(|e| format!("raw: {e}"))?.into() });
    }
    match string(d, "type")?.as_str() {
        "Signature" => {
            let rule = string(d, "rule")?;
            let envelope = parse_policy(&rule).map_err(|e| format!("{rule}: {e}"))?;
            Ok(Policy {
                r#type: policy::PolicyType::Signature as i32,
                value: envelope.encode_to_vec().into(),
            })
        }
        "ImplicitMeta" => {
            let rule = string(d, "rule")?;
            let rule = implicit_meta_policy::Rule::from_str_name(&rule)
                .ok_or(format!("rule {rule}: ANY, ALL or MAJORITY"))?;
            let meta = ImplicitMetaPolicy { sub_policy: string(d, "sub_policy")?, rule: rule as i32 };
            Ok(Policy { r#type: policy::PolicyType::ImplicitMeta as i32, value: meta.encode_to_vec().into() })
        }
        other => Err(format!("policy type {other}: Signature or ImplicitMeta")),
    }
}

// ---- field access ---------------------------------------------------------------------

fn string(d: &Value, field: &str) -> Result<String, String> {
    d.get(field).and_then(Value::as_str).map(str::to_owned).ok_or(format!("{field} must be a string"))
}

fn long(d: &Value, field: &str) -> Result<u64, String> {
    d.get(field).and_then(Value::as_u64).ok_or(format!("{field} must be a number"))
}

fn number(d: &Value, field: &str) -> Result<u32, String> {
    u32::try_from(long(d, field)?).map_err(|_| format!("{field} is too large"))
}

fn list<'a>(d: &'a Value, field: &str) -> Result<&'a Vec<Value>, String> {
    d.get(field).and_then(Value::as_array).ok_or(format!("{field} must be a list"))
}

fn map<'a>(d: &'a Value, field: &str) -> Result<&'a Map<String, Value>, String> {
    d.get(field).and_then(Value::as_object).ok_or(format!("{field} must be a map"))
}

fn string_list(d: &Value, field: &str) -> Result<Vec<String>, String> {
    d.as_array()
        .ok_or(format!("{field} must be a list"))?
        .iter()
        .map(|s| s.as_str().map(str::to_owned).ok_or(format!("{field} holds a non-string")))
        .collect()
}

fn strings(d: &Value, field: &str) -> Result<Vec<String>, String> {
    string_list(d.get(field).unwrap_or(&Value::Null), field)
}
