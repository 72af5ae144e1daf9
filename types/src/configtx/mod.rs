//! Channel config updates, validated as Fabric's configtx validates them (see
//! `docs/config-updates.md`). A `CONFIG_UPDATE` carries a read set (the versions it was
//! computed against), a write set and signatures. It is accepted when every element it
//! reads is still at that version, every element it changes goes up by exactly one
//! version and the *current* element's `mod_policy` is satisfied by the update's
//! signatures, and new elements start at version 0. The result is the current config
//! with the changed elements merged in, at the next sequence. A group written at a new
//! version holds exactly the members its write set lists: that is how members are
//! added and removed.
//!
//! Sans-IO: the current [`ChannelResources`] and the update in, the new config or an
//! [`UpdateError`] with Fabric's message out.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_msp::{Identity, SignedData, valid_identities};
use medfabric_proto::common::{
    Config, ConfigEnvelope, ConfigGroup, ConfigPolicy, ConfigUpdate, ConfigUpdateEnvelope, ConfigValue,
    Envelope, HeaderType, Payload, SignatureHeader,
};
use prost::Message;

use crate::config::{ChannelConfig, ChannelResources};

const ROOT: &str = "/Channel";

/// Most signatures a config update may carry (each is verified on admission, on every
/// consenter and on every peer): enough for a majority of a very large consortium.
pub const MAX_UPDATE_SIGNATURES: usize = 256;

/// Why an update is refused, in Fabric's words. The orderer answers it as BAD_REQUEST.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UpdateError(pub String);

impl UpdateError {
    fn wrap(context: &str) -> impl Fn(UpdateError) -> UpdateError + '_ {
        move |e| UpdateError(format!("{context}: {}", e.0))
    }
}

fn fail<T>(message: impl Into<String>) -> Result<T, UpdateError> {
    Err(UpdateError(message.into()))
}

/// The three kinds of config element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Group,
    Value,
    Policy,
}

/// One element of a config tree, by reference.
#[derive(Debug, Clone, Copy)]
enum Element<'a> {
    Group(&'a ConfigGroup),
    Value(&'a ConfigValue),
    Policy(&'a ConfigPolicy),
}

impl Element<'_> {
    fn version(&self) -> u64 {
        match self {
            Element::Group(g) => g.version,
            Element::Value(v) => v.version,
            Element::Policy(p) => p.version,
        }
    }

    fn mod_policy(&self) -> &str {
        match self {
            Element::Group(g) => &g.mod_policy,
            Element::Value(v) => &v.mod_policy,
            Element::Policy(p) => &p.mod_policy,
        }
    }
}

/// An element's place: its kind and path (`/Channel/Application/Org1/MSP`). Its
/// [`Display`](fmt::Display) is Fabric's key (`[Value]  /Channel/Application/Org1/MSP`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    kind: Kind,
    path: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            Kind::Group => "[Group]  ",
            Kind::Value => "[Value]  ",
            Kind::Policy => "[Policy] ",
        };
        write!(f, "{prefix}{}", self.path)
    }
}

impl Key {
    /// The group whose policies a relative `mod_policy` of this element names: a group
    /// itself, a value's or a policy's parent group.
    fn policy_base(&self) -> &str {
        match self.kind {
            Kind::Group => &self.path,
            Kind::Value | Kind::Policy => self.path.rsplit_once('/').map_or(ROOT, |(parent, _)| parent),
        }
    }
}

/// A config tree flattened: every element by key.
type ConfigMap<'a> = BTreeMap<Key, Element<'a>>;

/// Fabric's rule for config names: `[a-zA-Z0-9.-]+`, at most 249 characters, not `.` or
/// `..`.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("config ID illegal, cannot be empty".into());
    }
    if name.len() > 249 {
        return Err("config ID illegal, cannot be longer than 249".into());
    }
    if name == "." || name == ".." {
        return Err(format!("name '{name}' for config ID is not allowed"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return Err(format!("config ID '{name}' contains illegal characters"));
    }
    Ok(())
}

/// Flattens the tree under `root` (named `/Channel` whatever it is called).
fn map_config(root: &ConfigGroup) -> Result<ConfigMap<'_>, UpdateError> {
    let mut map = ConfigMap::new();
    add_group(&mut map, ROOT.to_owned(), root)?;
    Ok(map)
}

fn add_group<'a>(map: &mut ConfigMap<'a>, path: String, group: &'a ConfigGroup) -> Result<(), UpdateError> {
    let named = |kind: Kind, name: &str| -> Result<Key, UpdateError> {
        let key = Key { kind, path: format!("{path}/{name}") };
        check_name(name).map_err(|why| {
            let prefix = key.to_string();
            UpdateError(format!("illegal characters in key: {}: {why}", &prefix[..9]))
        })?;
        Ok(key)
    };
    for (name, value) in &group.values {
        map.insert(named(Kind::Value, name)?, Element::Value(value));
    }
    for (name, policy) in &group.policies {
        map.insert(named(Kind::Policy, name)?, Element::Policy(policy));
    }
    for (name, child) in &group.groups {
        let key = named(Kind::Group, name)?;
        add_group(map, key.path, child)?;
    }
    map.insert(Key { kind: Kind::Group, path }, Element::Group(group));
    Ok(())
}

/// A `CONFIG_UPDATE` envelope's update, its signatures and its bytes.
#[derive(Debug, Clone)]
pub struct SignedUpdate {
    pub envelope: ConfigUpdateEnvelope,
    pub update: ConfigUpdate,
}

impl SignedUpdate {
    /// Reads the update out of a `CONFIG_UPDATE` envelope.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, UpdateError> {
        let convert = UpdateError::wrap("error converting envelope to config update");
        let payload = Payload::decode(envelope.payload.as_ref())
            .map_err(|e| UpdateError(format!("error unmarshalling Payload: {e}")))
            .map_err(&convert)?;
        let header = payload.header.ok_or_else(|| UpdateError("envelope must have a Header".into()))?;
        let channel_header = medfabric_proto::common::ChannelHeader::decode(header.channel_header.as_ref())
            .map_err(|e| UpdateError(format!("error unmarshalling ChannelHeader: {e}")))
            .map_err(&convert)?;
        if channel_header.r#type != HeaderType::ConfigUpdate as i32 {
            return Err(convert(UpdateError(format!(
                "invalid type {}, expected CONFIG_UPDATE",
                HeaderType::try_from(channel_header.r#type).map_or("UNKNOWN", |t| t.as_str_name())
            ))));
        }
        let update_envelope = ConfigUpdateEnvelope::decode(payload.data.as_ref())
            .map_err(|_| UpdateError("error unmarshalling message for type CONFIG_UPDATE".into()))
            .map_err(&convert)?;
        Self::from_update_envelope(update_envelope)
    }

    pub fn from_update_envelope(envelope: ConfigUpdateEnvelope) -> Result<Self, UpdateError> {
        let update = ConfigUpdate::decode(envelope.config_update.as_ref())
            .map_err(|e| UpdateError(format!("error authorizing update: {e}")))?;
        Ok(Self { envelope, update })
    }

    /// The update's signatures as policies consume them: each over its signature
    /// header followed by the update's bytes, by the header's creator. The envelope's own
    /// signature does not count.
    fn signed_data(&self) -> Result<Vec<(Bytes, Vec<u8>, Bytes)>, UpdateError> {
        self.envelope
            .signatures
            .iter()
            .map(|signature| {
                let header = SignatureHeader::decode(signature.signature_header.as_ref())
                    .map_err(|e| UpdateError(format!("error unmarshalling SignatureHeader: {e}")))?;
                let mut data = signature.signature_header.to_vec();
                data.extend_from_slice(&self.envelope.config_update);
                Ok((header.creator, data, signature.signature.clone()))
            })
            .collect()
    }
}

/// Checks `update` against the channel's current config and returns the channel group it
/// produces (Fabric's `authorizeUpdate`, then the merge).
pub fn authorize_update(
    current: &ChannelResources,
    update: &SignedUpdate,
) -> Result<ConfigGroup, UpdateError> {
    let authorizing = UpdateError::wrap("error authorizing update");
    let channel_id = &current.config.channel_id;
    if update.update.channel_id != *channel_id {
        return fail(format!(
            "ConfigUpdate for channel '{}' but envelope for channel '{channel_id}'",
            update.update.channel_id
        ))
        .map_err(&authorizing);
    }
    let root = current
        .raw
        .channel_group
        .as_ref()
        .ok_or_else(|| UpdateError("the current config has no channel group".into()))?;
    let existing = map_config(root)?;
    let empty = ConfigGroup::default();
    let read = map_config(update.update.read_set.as_ref().unwrap_or(&empty))
        .map_err(UpdateError::wrap("error mapping ReadSet"))
        .map_err(&authorizing)?;
    verify_read_set(&existing, &read)
        .map_err(UpdateError::wrap("error validating ReadSet"))
        .map_err(&authorizing)?;
    let write = map_config(update.update.write_set.as_ref().unwrap_or(&empty))
        .map_err(UpdateError::wrap("error mapping WriteSet"))
        .map_err(&authorizing)?;
    let delta = delta(&read, &write);
    let signed = update.signed_data().map_err(&authorizing)?;
    let signed: Vec<SignedData<'_>> =
        signed.iter().map(|(identity, data, signature)| SignedData { data, identity, signature }).collect();
    let signers = valid_identities(&signed, &current.msps);
    verify_delta(current, &existing, &delta, &signers)
        .map_err(UpdateError::wrap("error validating DeltaSet"))
        .map_err(&authorizing)?;
    let mut merged = existing;
    merged.extend(delta);
    let legacy_admins =
        merged.contains_key(&Key { kind: Kind::Value, path: "/Channel/Orderer/Capabilities".into() });
    rebuild(&merged, ROOT, legacy_admins)
        .map_err(|e| UpdateError(format!("could not turn configMap back to channelGroup: {}", e.0)))
}

/// Changed: every written element the read set does not hold at the same version.
fn delta<'a>(read: &ConfigMap<'_>, write: &ConfigMap<'a>) -> ConfigMap<'a> {
    write
        .iter()
        .filter(|(key, element)| read.get(key).is_none_or(|r| r.version() != element.version()))
        .map(|(key, element)| (key.clone(), *element))
        .collect()
}

/// What an update would change, by Fabric's keys (`[Value]  /Channel/Orderer/BatchSize`).
pub fn changed_elements(update: &ConfigUpdate) -> Result<Vec<String>, UpdateError> {
    let empty = ConfigGroup::default();
    let read = map_config(update.read_set.as_ref().unwrap_or(&empty))?;
    let write = map_config(update.write_set.as_ref().unwrap_or(&empty))?;
    Ok(delta(&read, &write).keys().map(Key::to_string).collect())
}

/// What an update would set, for a person about to sign it: each changed element by
/// Fabric's key with its new version and `mod_policy`, a value or policy decoded, and a
/// group with the full list of members it keeps (a member it does not list is removed).
pub fn describe_changes(update: &ConfigUpdate) -> Result<serde_json::Value, UpdateError> {
    use serde_json::json;
    let empty = ConfigGroup::default();
    let read = map_config(update.read_set.as_ref().unwrap_or(&empty))?;
    let write = map_config(update.write_set.as_ref().unwrap_or(&empty))?;
    let changes: serde_json::Map<String, serde_json::Value> = delta(&read, &write)
        .iter()
        .map(|(key, element)| {
            let name = key.path.rsplit_once('/').map_or("", |(_, name)| name);
            let what = match element {
                Element::Value(v) => json!({"version": v.version, "mod_policy": v.mod_policy,
                    "value": document::value_document(name, &v.value)}),
                Element::Policy(p) => json!({"version": p.version, "mod_policy": p.mod_policy,
                    "policy": document::policy_document(p.policy.as_ref())}),
                Element::Group(g) => json!({"version": g.version, "mod_policy": g.mod_policy,
                    "keeps_only": {"groups": g.groups.keys().collect::<Vec<_>>(),
                        "values": g.values.keys().collect::<Vec<_>>(),
                        "policies": g.policies.keys().collect::<Vec<_>>()}}),
            };
            (key.to_string(), what)
        })
        .collect();
    Ok(serde_json::Value::Object(changes))
}

fn verify_read_set(existing: &ConfigMap<'_>, read: &ConfigMap<'_>) -> Result<(), UpdateError> {
    for (key, element) in read {
        let Some(current) = existing.get(key) else {
            return fail(format!(
                "existing config does not contain element for {key} but was in the read set"
            ));
        };
        if current.version() != element.version() {
            return fail(format!(
                "proposed update requires that key {key} be at version {}, but it is currently at version {}",
                element.version(),
                current.version()
            ));
        }
    }
    Ok(())
}

fn verify_delta(
    current: &ChannelResources,
    existing: &ConfigMap<'_>,
    delta: &ConfigMap<'_>,
    signers: &[Arc<Identity>],
) -> Result<(), UpdateError> {
    if delta.is_empty() {
        return fail("delta set was empty -- update would have no effect");
    }
    for (key, element) in delta {
        check_mod_policy(element.mod_policy())
            .map_err(|e| UpdateError(format!("invalid mod_policy for element {key}: {e}")))?;
        let Some(old) = existing.get(key) else {
            if element.version() != 0 {
                return fail(format!(
                    "attempted to set key {key} to version {}, but key does not exist",
                    element.version()
                ));
            }
            continue;
        };
        if element.version() != old.version() + 1 {
            return fail(format!(
                "attempt to set key {key} to version {}, but key is at version {}",
                element.version(),
                old.version()
            ));
        }
        // The element as it is decides who may change it.
        let policy = policy_path(key, old.mod_policy());
        if !current.policies.contains(&policy) {
            return fail(format!("unexpected missing policy {} for item {key}", old.mod_policy()));
        }
        let satisfied = current
            .policies
            .evaluate(&policy, signers)
            .map_err(|e| UpdateError(format!("policy for {key} not satisfied: {e}")))?;
        if !satisfied {
            return fail(format!(
                "policy for {key} not satisfied: {}",
                current.policies.failure_message(&policy, signers)
            ));
        }
    }
    Ok(())
}

/// A `mod_policy` must name a policy: non-empty, each `/`-separated part a config name.
fn check_mod_policy(mod_policy: &str) -> Result<(), String> {
    if mod_policy.is_empty() {
        return Err("mod_policy not set".into());
    }
    let relative = mod_policy.strip_prefix('/').unwrap_or(mod_policy);
    for (index, part) in relative.split('/').enumerate() {
        check_name(part).map_err(|e| format!("path element at {index} is invalid: {e}"))?;
    }
    Ok(())
}

/// The policy a `mod_policy` names for the element at `key`: an absolute path as is; a
/// relative name in the element's group (a group's own, a value's or policy's parent).
fn policy_path(key: &Key, mod_policy: &str) -> String {
    if mod_policy.starts_with('/') {
        mod_policy.to_owned()
    } else {
        format!("{}/{mod_policy}", key.policy_base())
    }
}

/// Rebuilds the group at `path` from the merged map: its version and `mod_policy`, and
/// exactly the members its own maps list, each from the merged map.
fn rebuild(merged: &ConfigMap<'_>, path: &str, legacy_admins: bool) -> Result<ConfigGroup, UpdateError> {
    let Some(Element::Group(group)) = merged.get(&Key { kind: Kind::Group, path: path.to_owned() }) else {
        return fail(format!("missing group at path: {path}"));
    };
    let admins = |mod_policy: &str| {
        if legacy_admins && mod_policy.is_empty() { "Admins".to_owned() } else { mod_policy.to_owned() }
    };
    let mut out =
        ConfigGroup { version: group.version, mod_policy: admins(&group.mod_policy), ..Default::default() };
    for name in group.values.keys() {
        let child = format!("{path}/{name}");
        let Some(Element::Value(value)) = merged.get(&Key { kind: Kind::Value, path: child.clone() }) else {
            return fail(format!("missing value at path: {child}"));
        };
        let value = ConfigValue { mod_policy: admins(&value.mod_policy), ..(*value).clone() };
        out.values.insert(name.clone(), value);
    }
    for name in group.policies.keys() {
        let child = format!("{path}/{name}");
        let Some(Element::Policy(policy)) = merged.get(&Key { kind: Kind::Policy, path: child.clone() })
        else {
            return fail(format!("missing policy at path: {child}"));
        };
        let policy = ConfigPolicy { mod_policy: admins(&policy.mod_policy), ..(*policy).clone() };
        out.policies.insert(name.clone(), policy);
    }
    for name in group.groups.keys() {
        out.groups.insert(name.clone(), rebuild(merged, &format!("{path}/{name}"), legacy_admins)?);
    }
    Ok(out)
}

/// Fabric's `ProposeConfigUpdate`: the `CONFIG` envelope's content an update produces —
/// the new config at the next sequence, with the update as `last_update` — once the new
/// config loads and keeps what may not change.
pub fn propose(current: &ChannelResources, envelope: &Envelope) -> Result<ConfigEnvelope, UpdateError> {
    let update = SignedUpdate::from_envelope(envelope)?;
    let signatures = update.envelope.signatures.len();
    if signatures > MAX_UPDATE_SIGNATURES {
        return fail(format!(
            "config update carries {signatures} signatures, more than the {MAX_UPDATE_SIGNATURES} accepted"
        ));
    }
    let channel_group = authorize_update(current, &update)?;
    // Fabric orders an update whose new elements all fall outside their (unchanged)
    // parents as a config identical to the current one; nobody signed for it, and each
    // such block would make pending updates stale. Refused here, at admission; a CONFIG
    // that is ordered is still validated exactly as Fabric does.
    if current.raw.channel_group.as_ref() == Some(&channel_group) {
        return fail("error authorizing update: the update changes nothing in the config");
    }
    let config = Config { sequence: current.config.sequence + 1, channel_group: Some(channel_group) };
    check_new_config(current, &config)?;
    Ok(ConfigEnvelope { config: Some(config), last_update: Some(envelope.clone()) })
}

/// Fabric's `Validate` of a `CONFIG` transaction against the config before it: the next
/// sequence, and a `last_update` that is authorised now and produces exactly the config
/// carried. Returns the channel's resources under the new config.
pub fn validate(
    current: &ChannelResources,
    envelope: &ConfigEnvelope,
) -> Result<ChannelResources, UpdateError> {
    let Some(config) = &envelope.config else { return fail("config envelope has nil config") };
    let expected = current.config.sequence + 1;
    if config.sequence != expected {
        return fail(format!(
            "config currently at sequence {}, cannot validate config at sequence {}",
            current.config.sequence, config.sequence
        ));
    }
    let Some(last_update) = &envelope.last_update else {
        return fail("config envelope has no last update: nothing authorises it");
    };
    let update = SignedUpdate::from_envelope(last_update)?;
    let produced = authorize_update(current, &update)?;
    if config.channel_group.as_ref() != Some(&produced) {
        return fail("ConfigEnvelope LastUpdate did not produce the supplied config result");
    }
    check_new_config(current, config)
}

/// The envelope of a `CONFIG` as consenters order it: a well-formed header (epoch 0, a
/// nonce, a creator), signed by its creator, an identity of the channel (no clock: the
/// same verdict on every consenter, whenever it applies the entry) that satisfies
/// `/Channel/Orderer/Writers` — an orderer made it.
pub fn check_config_signer(current: &ChannelResources, tx: &crate::Transaction) -> Result<(), UpdateError> {
    if tx.channel_header.epoch != 0 || tx.signature_header.nonce.is_empty() || tx.creator().is_empty() {
        return fail("the CONFIG envelope's header needs epoch 0, a nonce and a creator");
    }
    let creator = current
        .msps
        .deserialize(tx.creator())
        .map_err(|e| UpdateError(format!("the CONFIG envelope's creator: {e}")))?;
    if creator.verify(&tx.payload, &tx.signature).is_err() {
        return fail("the CONFIG envelope's signature does not verify");
    }
    let signers = [creator];
    if !current.policies.evaluate(ORDERER_WRITERS, &signers).unwrap_or(false) {
        return fail(format!(
            "the CONFIG envelope's creator does not satisfy {ORDERER_WRITERS}: {}",
            current.policies.failure_message(ORDERER_WRITERS, &signers)
        ));
    }
    Ok(())
}

const ORDERER_WRITERS: &str = "/Channel/Orderer/Writers";

/// What the new config must be to take effect: loadable (MSPs, policies, batch
/// settings), with the orderer and application sections kept, no organization's MSP id
/// changed, the consensus type and the consenters unchanged. Returns it loaded.
fn check_new_config(current: &ChannelResources, config: &Config) -> Result<ChannelResources, UpdateError> {
    let channel_id = &current.config.channel_id;
    let next = ChannelResources::from_config(channel_id, config.clone())
        .map_err(|e| UpdateError(format!("initializing channelconfig failed: {e}")))?;
    check_batch(&next.config)
        .map_err(|e| UpdateError(format!("initializing channelconfig failed: {}", e.0)))?;
    let (old, new) = (&current.config, &next.config);
    let old_root = current.raw.channel_group.as_ref();
    let new_root = config.channel_group.as_ref();
    for (section, what) in [("Orderer", "orderer"), ("Application", "application")] {
        let had = old_root.is_some_and(|g| g.groups.contains_key(section));
        let has = new_root.is_some_and(|g| g.groups.contains_key(section));
        if had && !has {
            return fail(format!("current config has {what} section, but new config does not"));
        }
    }
    for (what, old_orgs, new_orgs) in [
        ("orderer", &old.orderer_orgs, &new.orderer_orgs),
        ("application", &old.application_orgs, &new.application_orgs),
    ] {
        for org in new_orgs {
            if let Some(before) = old_orgs.iter().find(|o| o.name == org.name)
                && before.msp_id != org.msp_id
            {
                return fail(format!(
                    "{what} org {} attempted to change MSP ID from {} to {}",
                    org.name, before.msp_id, org.msp_id
                ));
            }
        }
    }
    let mut ids: Vec<&str> =
        new.orderer_orgs.iter().chain(&new.application_orgs).map(|o| o.msp_id.as_str()).collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return fail(format!("Attempted to define two different versions of MSP: {}", pair[0]));
    }
    check_distinct_cas(new)?;
    if let Some(empty) = new.orderer_orgs.iter().chain(&new.application_orgs).find(|o| o.msp_id.is_empty()) {
        return fail(format!("MSP for org {} has empty MSP ID", empty.name));
    }
    if old.consensus_type != new.consensus_type {
        return fail(format!(
            "attempted to change consensus type from {} to {}",
            old.consensus_type, new.consensus_type
        ));
    }
    if new.orderer_orgs.is_empty() {
        return fail("the orderer section must keep at least one organization");
    }
    if consenters(&current.raw) != consenters(config) {
        return fail(
            "consensus metadata update for channel config update is invalid: this orderer does not change its consenter set through a config update yet",
        );
    }
    Ok(next)
}

/// No CA certificate certifies members of two organizations: one CA's holders would
/// count as both in every policy over organizations (a medfabric rule; Fabric does not
/// check it).
fn check_distinct_cas(config: &ChannelConfig) -> Result<(), UpdateError> {
    let mut seen: std::collections::BTreeMap<Vec<u8>, &str> = std::collections::BTreeMap::new();
    for org in config.orderer_orgs.iter().chain(&config.application_orgs) {
        let mut own = std::collections::BTreeSet::new();
        for pem in org.msp.root_certs.iter().chain(&org.msp.intermediate_certs) {
            for (_, der) in medfabric_msp::pem_to_der_all(pem).unwrap_or_default() {
                own.insert(der);
            }
        }
        for der in own {
            if let Some(other) = seen.insert(der, &org.msp_id) {
                return fail(format!(
                    "organizations {other} and {} share a CA certificate: its holders would count for both",
                    org.msp_id
                ));
            }
        }
    }
    Ok(())
}

/// The consenter entries (addresses and TLS certificates) of a config, as written.
fn consenters(config: &Config) -> Vec<medfabric_proto::etcdraft::Consenter> {
    let consensus = config
        .channel_group
        .as_ref()
        .and_then(|g| g.groups.get("Orderer"))
        .and_then(|o| o.values.get("ConsensusType"))
        .and_then(|v| medfabric_proto::orderer::ConsensusType::decode(v.value.as_ref()).ok())
        .unwrap_or_default();
    medfabric_proto::etcdraft::ConfigMetadata::decode(consensus.metadata.as_ref())
        .map(|m| m.consenters)
        .unwrap_or_default()
}

/// The batch settings and hashing Fabric refuses.
fn check_batch(config: &ChannelConfig) -> Result<(), UpdateError> {
    if config.hashing_algorithm != "SHA256" {
        return fail(format!("Unknown hashing algorithm type: {}", config.hashing_algorithm));
    }
    let batch = &config.batch;
    for (value, name) in
        [(batch.absolute_max_bytes, "absolute max bytes"), (batch.preferred_max_bytes, "preferred max bytes")]
    {
        if value == 0 {
            return fail(format!(
                "could not create channel Orderer sub-group config: Attempted to set the batch size {name} to an invalid value: 0"
            ));
        }
    }
    if batch.max_message_count == 0 {
        return fail(
            "could not create channel Orderer sub-group config: Attempted to set the batch size max message count to an invalid value: 0",
        );
    }
    if batch.timeout_ms == 0 {
        return fail(
            "could not create channel Orderer sub-group config: Attempted to set the batch timeout to a non-positive value: 0s",
        );
    }
    if batch.preferred_max_bytes > batch.absolute_max_bytes {
        return fail(format!(
            "could not create channel Orderer sub-group config: Attempted to set the batch size preferred max bytes ({}) greater than the absolute max bytes ({}).",
            batch.preferred_max_bytes, batch.absolute_max_bytes
        ));
    }
    Ok(())
}

mod compute;
mod document;
pub use compute::{compute_update, config_envelope, sign_update, update_envelope};

pub use document::{from_document, to_document, value_from_document, value_to_document};

#[cfg(test)]
mod tests;
