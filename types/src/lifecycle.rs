//! Chaincode definitions and the endorsement policies they impose.
//!
//! Definitions come from one narrow source per chain: the channel config for networks
//! made by `medfabric network generate`, or the definitions committed in Fabric's
//! `_lifecycle` namespace for chains made by Fabric. Key-level (state-based) policies
//! live in key metadata under `VALIDATION_PARAMETER`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use medfabric_msp::{Identity, SignaturePolicy, policy_to_string};
use medfabric_proto::kvrwset::{HashedRwSet, KvMetadataWrite, KvWrite, KvrwSet};
use medfabric_proto::lifecycle::{ChaincodeEndorsementInfo, ChaincodeValidationInfo, StateData, state_data};
use medfabric_proto::protos::{
    ApplicationPolicy, CollectionConfigPackage, StaticCollectionConfig, application_policy,
    collection_config, collection_policy_config,
};
use medfabric_proto::rwset::TxReadWriteSet;

use crate::config::{ChannelConfig, ChannelResources};
use crate::error::{ConvertError, decode};

/// Fabric's lifecycle system namespace.
pub const LIFECYCLE_NAMESPACE: &str = "_lifecycle";
/// Key-metadata entry holding a key-level endorsement policy.
pub const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";
/// Prefix of an organization's implicit private data collection: `_implicit_org_<MSPID>`.
pub const IMPLICIT_COLLECTION_PREFIX: &str = "_implicit_org_";

/// The state namespace holding a collection's hashed keys (hex SHA-256) and value hashes,
/// kept by every peer of the channel; private values live apart, on member peers only.
pub fn hashed_namespace(namespace: &str, collection: &str) -> String {
    format!("{namespace}$$h{collection}")
}

/// A private data collection of a chaincode (Fabric's `StaticCollectionConfig`), or an
/// organization's implicit collection.
#[derive(Debug, Clone)]
pub struct Collection {
    pub name: String,
    /// Which organizations' peers hold the data, and whose clients are members.
    pub members: SignaturePolicy,
    pub members_text: String,
    /// Peers the endorser must push the data to besides itself, or the endorsement fails.
    pub required_peer_count: usize,
    /// Peers the endorser pushes the data to at most.
    pub maximum_peer_count: usize,
    /// Blocks the data lives after the block that wrote it; 0: forever.
    pub block_to_live: u64,
    /// Only clients of member organizations may read (write) it at endorsement.
    pub member_only_read: bool,
    pub member_only_write: bool,
    /// Overrides the chaincode's policy for writes to the collection.
    pub endorsement_policy: Option<EndorsementPolicy>,
}

impl Collection {
    /// A collection from its `StaticCollectionConfig`.
    pub fn from_static(config: &StaticCollectionConfig) -> Result<Self, ConvertError> {
        let invalid = |why: String| ConvertError::Invalid("collection config", why);
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if config.name.is_empty()
            || config.name.starts_with(IMPLICIT_COLLECTION_PREFIX)
            || !config.name.chars().all(allowed)
        {
            return Err(invalid(format!("collection name {:?} is not allowed", config.name)));
        }
        let envelope = match config.member_orgs_policy.as_ref().and_then(|p| p.payload.as_ref()) {
            Some(collection_policy_config::Payload::SignaturePolicy(envelope)) => envelope,
            None => return Err(invalid(format!("collection {} has no member_orgs_policy", config.name))),
        };
        let members = SignaturePolicy::from_envelope(envelope)
            .map_err(|e| invalid(format!("collection {}: {e}", config.name)))?;
        let count = |n: i32, what: &str| {
            usize::try_from(n).map_err(|_| invalid(format!("collection {}: negative {what}", config.name)))
        };
        let required_peer_count = count(config.required_peer_count, "required_peer_count")?;
        let maximum_peer_count = count(config.maximum_peer_count, "maximum_peer_count")?;
        if maximum_peer_count < required_peer_count {
            return Err(invalid(format!(
                "collection {}: maximum_peer_count {maximum_peer_count} is below required_peer_count {required_peer_count}",
                config.name
            )));
        }
        let endorsement_policy = config
            .endorsement_policy
            .as_ref()
            .filter(|p| p.r#type.is_some())
            .map(EndorsementPolicy::from_application_policy)
            .transpose()?;
        Ok(Self {
            name: config.name.clone(),
            members,
            members_text: policy_to_string(envelope),
            required_peer_count,
            maximum_peer_count,
            block_to_live: config.block_to_live,
            member_only_read: config.member_only_read,
            member_only_write: config.member_only_write,
            endorsement_policy,
        })
    }

    /// The implicit collection of the organization `msp_id` (named `org_name` in the
    /// channel config): its members are that organization, writes need its
    /// `Endorsement` policy, any client may use it, and the endorser pushes the data to
    /// at most one other peer (Fabric's default `implicitCollectionDisseminationPolicy`).
    pub fn implicit(msp_id: &str, org_name: &str) -> Result<Self, ConvertError> {
        let text = format!("OR('{msp_id}.member')");
        let envelope = medfabric_msp::parse_policy(&text)
            .map_err(|e| ConvertError::Invalid("implicit collection", e.to_string()))?;
        let members = SignaturePolicy::from_envelope(&envelope)
            .map_err(|e| ConvertError::Invalid("implicit collection", e.to_string()))?;
        Ok(Self {
            name: format!("{IMPLICIT_COLLECTION_PREFIX}{msp_id}"),
            members,
            members_text: text,
            required_peer_count: 0,
            maximum_peer_count: 1,
            block_to_live: 0,
            // As in Fabric: any client may read or write an org's implicit collection
            // (through that org's peers); only the org's peers hold it.
            member_only_read: false,
            member_only_write: false,
            endorsement_policy: Some(EndorsementPolicy::ChannelReference(format!(
                "/Channel/Application/{org_name}/Endorsement"
            ))),
        })
    }

    /// Is `identity` (a client or a peer) of a member organization?
    pub fn is_member(&self, identity: &Arc<Identity>) -> bool {
        self.members.evaluate(std::slice::from_ref(identity))
    }
}

fn collections_of(
    package: Option<&CollectionConfigPackage>,
) -> Result<BTreeMap<String, Collection>, ConvertError> {
    let mut out = BTreeMap::new();
    for config in package.map(|p| p.config.as_slice()).unwrap_or_default() {
        let Some(collection_config::Payload::StaticCollectionConfig(config)) = &config.payload else {
            return Err(ConvertError::Missing("CollectionConfig.static_collection_config"));
        };
        let collection = Collection::from_static(config)?;
        if out.insert(collection.name.clone(), collection).is_some() {
            return Err(ConvertError::Invalid(
                "collection config",
                format!("collection {} defined twice", config.name),
            ));
        }
    }
    Ok(out)
}

/// An endorsement policy: a signature policy, or a reference to a channel policy.
#[derive(Debug, Clone)]
pub enum EndorsementPolicy {
    Signature { policy: SignaturePolicy, text: String },
    ChannelReference(String),
}

impl EndorsementPolicy {
    pub fn from_application_policy(policy: &ApplicationPolicy) -> Result<Self, ConvertError> {
        match &policy.r#type {
            Some(application_policy::Type::SignaturePolicy(envelope)) => Ok(Self::Signature {
                policy: SignaturePolicy::from_envelope(envelope)
                    .map_err(|e| ConvertError::Invalid("endorsement policy", e.to_string()))?,
                text: policy_to_string(envelope),
            }),
            Some(application_policy::Type::ChannelConfigPolicyReference(path)) => {
                Ok(Self::ChannelReference(path.clone()))
            }
            None => Err(ConvertError::Missing("ApplicationPolicy.type")),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Signature { text, .. } => text.clone(),
            Self::ChannelReference(path) => path.clone(),
        }
    }

    pub fn evaluate(
        &self,
        identities: &[Arc<Identity>],
        resources: &ChannelResources,
    ) -> Result<bool, ConvertError> {
        match self {
            Self::Signature { policy, .. } => Ok(policy.evaluate(identities)),
            Self::ChannelReference(path) => resources
                .policies
                .evaluate(path, identities)
                .map_err(|e| ConvertError::Invalid("endorsement policy", e.to_string())),
        }
    }
}

/// A committed chaincode definition.
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    pub version: String,
    pub sequence: i64,
    pub policy: EndorsementPolicy,
    /// Defined by Fabric's `_lifecycle` transactions (rather than the channel config).
    pub from_lifecycle: bool,
    /// Explicit private data collections by name.
    pub collections: BTreeMap<String, Collection>,
}

impl Definition {
    /// The collection `name` of this chaincode: an explicit one, or the implicit
    /// collection of an application organization of the channel.
    pub fn collection(&self, name: &str, resources: &ChannelResources) -> Option<Collection> {
        if let Some(collection) = self.collections.get(name) {
            return Some(collection.clone());
        }
        let msp_id = name.strip_prefix(IMPLICIT_COLLECTION_PREFIX)?;
        let org = resources.config.application_orgs.iter().find(|o| o.msp_id == msp_id)?;
        Collection::implicit(msp_id, &org.name).ok()
    }
}

/// The chaincode definitions in force on a channel.
#[derive(Debug, Clone, Default)]
pub struct ChaincodeRegistry {
    definitions: BTreeMap<String, Definition>,
}

impl ChaincodeRegistry {
    /// Definitions carried in a medfabric channel config.
    pub fn from_config(config: &ChannelConfig) -> Result<Self, ConvertError> {
        let mut registry = Self::default();
        registry.update_from_config(config)?;
        Ok(registry)
    }

    pub fn update_from_config(&mut self, config: &ChannelConfig) -> Result<(), ConvertError> {
        for def in &config.chaincodes {
            let policy = def
                .endorsement_policy
                .as_ref()
                .ok_or(ConvertError::Missing("ChaincodeDefinition.endorsement_policy"))?;
            self.definitions.insert(
                def.name.clone(),
                Definition {
                    name: def.name.clone(),
                    version: def.version.clone(),
                    sequence: def.sequence,
                    policy: EndorsementPolicy::from_application_policy(policy)?,
                    from_lifecycle: false,
                    collections: collections_of(def.collections.as_ref())?,
                },
            );
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Definition> {
        self.definitions.get(name)
    }

    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.definitions.values()
    }

    /// Applies the public `_lifecycle` writes of a valid Fabric transaction: a
    /// `CommitChaincodeDefinition` writes those of `namespaces/fields/<name>/{Sequence,
    /// EndorsementInfo, ValidationInfo}` that changed. Callers apply them when the block
    /// ends: the transactions of a block use the definitions in force at its start.
    pub fn apply_lifecycle_writes(&mut self, writes: &[KvWrite]) -> Result<(), ConvertError> {
        #[derive(Default)]
        struct Fields {
            sequence: Option<i64>,
            version: Option<String>,
            policy: Option<EndorsementPolicy>,
            collections: Option<BTreeMap<String, Collection>>,
        }
        let mut by_name: BTreeMap<&str, Fields> = BTreeMap::new();
        for write in writes {
            let Some(rest) = write.key.strip_prefix("namespaces/fields/") else { continue };
            let Some((name, field)) = rest.split_once('/') else { continue };
            if write.is_delete {
                continue;
            }
            let data: StateData = decode("lifecycle StateData", &write.value)?;
            let entry = by_name.entry(name).or_default();
            match (field, data.r#type) {
                ("Sequence", Some(state_data::Type::Int64(seq))) => entry.sequence = Some(seq),
                ("EndorsementInfo", Some(state_data::Type::Bytes(bytes))) => {
                    let info: ChaincodeEndorsementInfo = decode("ChaincodeEndorsementInfo", &bytes)?;
                    entry.version = Some(info.version);
                }
                ("ValidationInfo", Some(state_data::Type::Bytes(bytes))) => {
                    let info: ChaincodeValidationInfo = decode("ChaincodeValidationInfo", &bytes)?;
                    let policy: ApplicationPolicy = decode("ApplicationPolicy", &info.validation_parameter)?;
                    entry.policy = Some(EndorsementPolicy::from_application_policy(&policy)?);
                }
                ("Collections", Some(state_data::Type::Bytes(bytes))) => {
                    let package: CollectionConfigPackage = decode("CollectionConfigPackage", &bytes)?;
                    entry.collections = Some(collections_of(Some(&package))?);
                }
                _ => {}
            }
        }
        // Fabric writes only the fields that changed; a commit always writes Sequence.
        for (name, fields) in by_name {
            let Some(sequence) = fields.sequence else { continue };
            let existing = self.definitions.get(name);
            let version = fields.version.or_else(|| existing.map(|d| d.version.clone()));
            let policy = fields.policy.or_else(|| existing.map(|d| d.policy.clone()));
            let collections =
                fields.collections.or_else(|| existing.map(|d| d.collections.clone())).unwrap_or_default();
            if let (Some(version), Some(policy)) = (version, policy) {
                self.definitions.insert(
                    name.to_owned(),
                    Definition {
                        name: name.to_owned(),
                        version,
                        sequence,
                        policy,
                        from_lifecycle: true,
                        collections,
                    },
                );
            }
        }
        Ok(())
    }
}

/// Key-level endorsement policies by (namespace, key). Updates made by the valid
/// transactions of a block take effect when the block ends; until then a later write in
/// the same block to an updated key is refused, as Fabric's validator does
/// (`ValidationParameterUpdatedError`).
#[derive(Debug, Clone, Default)]
pub struct KeyPolicies {
    committed: HashMap<(String, String), Bytes>,
    /// Updates of the current block: `None` removes the key's policy.
    pending: HashMap<(String, String), Option<Bytes>>,
}

/// Where key-level endorsement policies come from while a block is validated: the
/// policies committed before the block, and which keys earlier transactions of the same
/// block changed (a transaction writing such a key fails its policy check, as in
/// Fabric).
pub trait KeyPolicySource {
    /// The committed policy (a serialized `SignaturePolicyEnvelope`) of a key.
    fn committed_policy(&self, namespace: &str, key: &str) -> Result<Option<Bytes>, ConvertError>;
    /// Did an earlier transaction of the block change the key's policy?
    fn updated_in_block(&self, namespace: &str, key: &str) -> bool;
}

/// A key, `(namespace, key)`, and its new key-level policy (`None`: removed).
pub type PolicyUpdate = ((String, String), Option<Bytes>);

/// The key-level policy changes of a valid transaction, one home for the peer's
/// validator and the verifier: a metadata write sets its key's policy to the write's
/// `VALIDATION_PARAMETER` entry (none: removed), and a delete ([`crate::mvcc::is_delete`],
/// [`crate::mvcc::is_hashed_delete`]) removes the policy of a key that has one
/// (`has_policy`, committed state). Public keys, and hashed private keys in their
/// collection's hashed namespace (key = hex of the key hash). Later entries win.
pub fn policy_updates<E>(
    sets: &[crate::mvcc::NsReads<'_>],
    mut has_policy: impl FnMut(&str, &str) -> Result<bool, E>,
) -> Result<Vec<PolicyUpdate>, E> {
    fn policy_of(entries: &[medfabric_proto::kvrwset::KvMetadataEntry]) -> Option<Bytes> {
        entries
            .iter()
            .find(|e| e.name == VALIDATION_PARAMETER)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    }
    let mut updates = Vec::new();
    for set in sets {
        let ns = set.namespace;
        for KvMetadataWrite { key, entries } in &set.kv.metadata_writes {
            updates.push(((ns.to_owned(), key.clone()), policy_of(entries)));
        }
        for write in set.kv.writes.iter().filter(|w| crate::mvcc::is_delete(w)) {
            if has_policy(ns, &write.key)? {
                updates.push(((ns.to_owned(), write.key.clone()), None));
            }
        }
        for &(collection, hashed) in &set.collections {
            let hashed_ns = hashed_namespace(ns, collection);
            for write in &hashed.metadata_writes {
                updates.push(((hashed_ns.clone(), hex::encode(&write.key_hash)), policy_of(&write.entries)));
            }
            for write in hashed.hashed_writes.iter().filter(|w| crate::mvcc::is_hashed_delete(w)) {
                let key = hex::encode(&write.key_hash);
                if has_policy(&hashed_ns, &key)? {
                    updates.push(((hashed_ns.clone(), key), None));
                }
            }
        }
    }
    Ok(updates)
}

impl KeyPolicySource for KeyPolicies {
    fn committed_policy(&self, namespace: &str, key: &str) -> Result<Option<Bytes>, ConvertError> {
        Ok(self.get(namespace, key).cloned())
    }

    fn updated_in_block(&self, namespace: &str, key: &str) -> bool {
        KeyPolicies::updated_in_block(self, namespace, key)
    }
}

impl KeyPolicies {
    /// The policy committed before the current block.
    pub fn get(&self, namespace: &str, key: &str) -> Option<&Bytes> {
        self.committed.get(&(namespace.to_owned(), key.to_owned()))
    }

    /// Did an earlier valid transaction of the current block change this key's policy?
    pub fn updated_in_block(&self, namespace: &str, key: &str) -> bool {
        self.pending.contains_key(&(namespace.to_owned(), key.to_owned()))
    }

    /// Records the key-level policy changes of a valid transaction ([`policy_updates`]),
    /// effective at block end.
    pub fn apply(&mut self, sets: &[crate::mvcc::NsReads<'_>]) {
        let committed = &self.committed;
        let updates = policy_updates(sets, |namespace, key| {
            Ok::<_, std::convert::Infallible>(committed.contains_key(&(namespace.to_owned(), key.to_owned())))
        })
        .unwrap_or_else(|never| match never {});
        self.pending.extend(updates);
    }

    /// Makes the current block's updates effective.
    pub fn end_block(&mut self) {
        for (id, policy) in self.pending.drain() {
            match policy {
                Some(policy) => self.committed.insert(id, policy),
                None => self.committed.remove(&id),
            };
        }
    }
}

/// Does a transaction's set of valid endorsers satisfy every policy that applies to it?
/// Returns `Ok(None)` when satisfied and `Ok(Some(why))` when not. As in Fabric's v20
/// validator, each namespace with writes is checked (key-level policies for keys that
/// have one, the chaincode policy for the others), and the invoked chaincode's policy is
/// checked when nothing of its namespace was.
pub fn check_endorsement(
    invoked: &str,
    rwset: &TxReadWriteSet,
    endorsers: &[Arc<Identity>],
    registry: &ChaincodeRegistry,
    key_policies: &dyn KeyPolicySource,
    resources: &ChannelResources,
) -> Result<Option<String>, ConvertError> {
    let mut invoked_checked = false;
    for ns in &rwset.ns_rwset {
        let kv: KvrwSet = decode("KVRWSet", &ns.rwset)?;
        let mut collection_sets = Vec::new();
        for c in &ns.collection_hashed_rwset {
            let hashed: HashedRwSet = decode("HashedRWSet", &c.hashed_rwset)?;
            if !hashed.hashed_writes.is_empty() || !hashed.metadata_writes.is_empty() {
                collection_sets.push((c.collection_name.as_str(), hashed));
            }
        }
        if kv.writes.is_empty() && kv.metadata_writes.is_empty() && collection_sets.is_empty() {
            continue;
        }
        invoked_checked |= ns.namespace == invoked;
        let verdict = if ns.namespace == LIFECYCLE_NAMESPACE {
            check_lifecycle_writes(&kv, &collection_sets, endorsers, resources)?
        } else {
            let Some(definition) = registry.get(&ns.namespace) else {
                return Ok(Some(format!("no chaincode definition for namespace {:?}", ns.namespace)));
            };
            let writes = NamespaceWrites { namespace: &ns.namespace, kv: &kv, collections: &collection_sets };
            check_chaincode_writes(definition, &writes, endorsers, key_policies, resources)?
        };
        if verdict.is_some() {
            return Ok(verdict);
        }
    }
    if invoked_checked {
        return Ok(None);
    }
    // Nothing of the invoked chaincode's namespace was written: its policy still applies.
    if invoked == LIFECYCLE_NAMESPACE {
        return lifecycle_endorsement(endorsers, resources);
    }
    let Some(definition) = registry.get(invoked) else {
        return Ok(Some(format!("no chaincode definition for invoked chaincode {invoked:?}")));
    };
    if !definition.policy.evaluate(endorsers, resources)? {
        return Ok(Some(format!(
            "endorsement policy {} of invoked chaincode {} not satisfied",
            definition.policy.describe(),
            definition.name
        )));
    }
    Ok(None)
}

/// What a transaction writes in one chaincode namespace: public keys and the
/// collections with hashed writes.
struct NamespaceWrites<'a> {
    namespace: &'a str,
    kv: &'a KvrwSet,
    collections: &'a [(&'a str, HashedRwSet)],
}

fn lifecycle_endorsement(
    endorsers: &[Arc<Identity>],
    resources: &ChannelResources,
) -> Result<Option<String>, ConvertError> {
    let path = "/Channel/Application/LifecycleEndorsement";
    Ok((!evaluate_path(resources, path, endorsers)?).then(|| format!("{path} not satisfied")))
}

/// `_lifecycle`'s writes: public ones need LifecycleEndorsement; only an org's implicit
/// collection may be written, endorsed by that org's Endorsement policy.
fn check_lifecycle_writes(
    kv: &KvrwSet,
    collections: &[(&str, HashedRwSet)],
    endorsers: &[Arc<Identity>],
    resources: &ChannelResources,
) -> Result<Option<String>, ConvertError> {
    if !(kv.writes.is_empty() && kv.metadata_writes.is_empty())
        && let Some(why) = lifecycle_endorsement(endorsers, resources)?
    {
        return Ok(Some(why));
    }
    for (collection, _) in collections {
        let Some(msp_id) = collection.strip_prefix(IMPLICIT_COLLECTION_PREFIX) else {
            return Ok(Some(format!("illegal write to collection {collection} of {LIFECYCLE_NAMESPACE}")));
        };
        let org = resources.config.application_orgs.iter().find(|o| o.msp_id == msp_id);
        let Some(org) = org else {
            return Ok(Some(format!("implicit collection of unknown org {msp_id}")));
        };
        let path = format!("/Channel/Application/{}/Endorsement", org.name);
        if !evaluate_path(resources, &path, endorsers)? {
            return Ok(Some(format!("{path} not satisfied")));
        }
    }
    Ok(None)
}

/// A chaincode namespace's writes: each key's key-level policy where it has one; private
/// keys without one fall back to the collection's policy; whatever remains needs the
/// chaincode's policy.
fn check_chaincode_writes(
    definition: &Definition,
    writes: &NamespaceWrites<'_>,
    endorsers: &[Arc<Identity>],
    key_policies: &dyn KeyPolicySource,
    resources: &ChannelResources,
) -> Result<Option<String>, ConvertError> {
    let NamespaceWrites { namespace, kv, collections } = writes;
    let mut needs_chaincode_policy = false;
    let written = kv.writes.iter().map(|w| &w.key).chain(kv.metadata_writes.iter().map(|m| &m.key));
    for key in written {
        match key_policy(key_policies, namespace, key, endorsers)? {
            KeyVerdict::Failed(why) => return Ok(Some(why)),
            KeyVerdict::Satisfied => {}
            KeyVerdict::NoPolicy => needs_chaincode_policy = true,
        }
    }
    for (name, hashed) in collections.iter() {
        let Some(collection) = definition.collection(name, resources) else {
            return Ok(Some(format!("collection {name} is not defined for chaincode {}", definition.name)));
        };
        let hashed_ns = hashed_namespace(namespace, name);
        let key_hashes = hashed
            .hashed_writes
            .iter()
            .map(|w| &w.key_hash)
            .chain(hashed.metadata_writes.iter().map(|m| &m.key_hash));
        let mut needs_collection_policy = false;
        for key_hash in key_hashes {
            match key_policy(key_policies, &hashed_ns, &hex::encode(key_hash), endorsers)? {
                KeyVerdict::Failed(why) => return Ok(Some(why)),
                KeyVerdict::Satisfied => {}
                KeyVerdict::NoPolicy => needs_collection_policy = true,
            }
        }
        if !needs_collection_policy {
            continue;
        }
        match &collection.endorsement_policy {
            Some(policy) if !policy.evaluate(endorsers, resources)? => {
                return Ok(Some(format!(
                    "endorsement policy {} of collection {name} of chaincode {} not satisfied",
                    policy.describe(),
                    definition.name
                )));
            }
            Some(_) => {}
            None => needs_chaincode_policy = true,
        }
    }
    if needs_chaincode_policy && !definition.policy.evaluate(endorsers, resources)? {
        return Ok(Some(format!(
            "endorsement policy {} of chaincode {} not satisfied",
            definition.policy.describe(),
            definition.name
        )));
    }
    Ok(None)
}

enum KeyVerdict {
    Satisfied,
    Failed(String),
    NoPolicy,
}

/// A written key's own (key-level) policy, if it has one.
fn key_policy(
    key_policies: &dyn KeyPolicySource,
    namespace: &str,
    key: &str,
    endorsers: &[Arc<Identity>],
) -> Result<KeyVerdict, ConvertError> {
    if key_policies.updated_in_block(namespace, key) {
        return Ok(KeyVerdict::Failed(format!(
            "the key-level policy of {namespace}/{key:?} was changed by an earlier transaction of this block"
        )));
    }
    let Some(envelope) = key_policies.committed_policy(namespace, key)? else {
        return Ok(KeyVerdict::NoPolicy);
    };
    let policy = SignaturePolicy::from_bytes(&envelope)
        .map_err(|e| ConvertError::Invalid("key-level policy", e.to_string()))?;
    if policy.evaluate(endorsers) {
        Ok(KeyVerdict::Satisfied)
    } else {
        Ok(KeyVerdict::Failed(format!("key-level policy of {namespace}/{key:?} not satisfied")))
    }
}

fn evaluate_path(
    resources: &ChannelResources,
    path: &str,
    endorsers: &[Arc<Identity>],
) -> Result<bool, ConvertError> {
    resources
        .policies
        .evaluate(path, endorsers)
        .map_err(|e| ConvertError::Invalid("channel policy", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medfabric_proto::kvrwset::{KvMetadataEntry, KvMetadataWrite};
    use medfabric_proto::lifecycle::StateData;
    use prost::Message;

    fn field(name: &str, field: &str, data: state_data::Type) -> KvWrite {
        KvWrite {
            key: format!("namespaces/fields/{name}/{field}"),
            is_delete: false,
            value: StateData { r#type: Some(data) }.encode_to_vec().into(),
        }
    }

    fn definition_writes(version: &str, sequence: i64, policy: &str) -> Vec<KvWrite> {
        let policy = ApplicationPolicy {
            r#type: Some(application_policy::Type::SignaturePolicy(
                medfabric_msp::parse_policy(policy).expect("policy"),
            )),
        };
        let validation = ChaincodeValidationInfo {
            validation_plugin: "vscc".into(),
            validation_parameter: policy.encode_to_vec().into(),
        };
        let endorsement = ChaincodeEndorsementInfo { version: version.into(), ..Default::default() };
        vec![
            field("cc", "EndorsementInfo", state_data::Type::Bytes(endorsement.encode_to_vec().into())),
            field("cc", "Sequence", state_data::Type::Int64(sequence)),
            field("cc", "ValidationInfo", state_data::Type::Bytes(validation.encode_to_vec().into())),
        ]
    }

    #[test]
    fn upgrades_that_write_only_changed_fields_apply() {
        let mut registry = ChaincodeRegistry::default();
        registry.apply_lifecycle_writes(&definition_writes("1.0", 1, "OR('A.peer')")).expect("commit");
        let mut upgrade = definition_writes("2.0", 2, "OR('A.peer')");
        upgrade.retain(|w| !w.key.ends_with("ValidationInfo"));
        registry.apply_lifecycle_writes(&upgrade).expect("upgrade");
        let cc = registry.get("cc").expect("defined");
        assert_eq!((cc.version.as_str(), cc.sequence), ("2.0", 2));
        assert_eq!(cc.policy.describe(), "OR('A.peer')");
        // A policy-only change replaces the policy.
        let mut change = definition_writes("2.0", 3, "AND('A.peer', 'B.peer')");
        change.retain(|w| !w.key.ends_with("EndorsementInfo"));
        registry.apply_lifecycle_writes(&change).expect("policy change");
        assert_eq!(registry.get("cc").expect("defined").policy.describe(), "AND('A.peer', 'B.peer')");
    }

    #[test]
    fn key_policies_change_at_block_end() {
        let mut policies = KeyPolicies::default();
        let set = KvrwSet {
            metadata_writes: vec![KvMetadataWrite {
                key: "k".into(),
                entries: vec![KvMetadataEntry {
                    name: VALIDATION_PARAMETER.into(),
                    value: vec![1, 2].into(),
                }],
            }],
            ..Default::default()
        };
        let one = |kv| [crate::mvcc::NsReads { namespace: "cc", kv, collections: Vec::new() }];
        policies.apply(&one(&set));
        assert!(policies.get("cc", "k").is_none(), "not in force within the block");
        assert!(policies.updated_in_block("cc", "k"));
        policies.end_block();
        assert_eq!(policies.get("cc", "k").map(|b| b.to_vec()), Some(vec![1, 2]));
        assert!(!policies.updated_in_block("cc", "k"));
        // A write with an empty value deletes the key, and its policy with it (as the
        // peer's ledger does).
        let delete = KvrwSet {
            writes: vec![KvWrite { key: "k".into(), is_delete: false, value: Bytes::new() }],
            ..Default::default()
        };
        policies.apply(&one(&delete));
        assert!(policies.updated_in_block("cc", "k"));
        policies.end_block();
        assert!(policies.get("cc", "k").is_none(), "deleting a key drops its policy");
        // A hashed private key's policy is tracked in its collection's hashed namespace.
        let hashed = HashedRwSet {
            metadata_writes: vec![medfabric_proto::kvrwset::KvMetadataWriteHash {
                key_hash: vec![0xab].into(),
                entries: vec![KvMetadataEntry { name: VALIDATION_PARAMETER.into(), value: vec![3].into() }],
            }],
            ..Default::default()
        };
        let empty = KvrwSet::default();
        policies.apply(&[crate::mvcc::NsReads {
            namespace: "cc",
            kv: &empty,
            collections: vec![("c", &hashed)],
        }]);
        policies.end_block();
        assert_eq!(policies.get(&hashed_namespace("cc", "c"), "ab").map(|b| b.to_vec()), Some(vec![3]));
    }
}
