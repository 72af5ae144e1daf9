//! Making updates: the update between two configs (what Fabric's `configtxlator
//! compute_update` produces, so Fabric accepts ours and we accept Fabric's), signatures
//! over it, and the envelopes that carry it to the orderer and back to the peers.

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{
    ChannelHeader, ConfigEnvelope, ConfigGroup, ConfigPolicy, ConfigSignature, ConfigUpdate,
    ConfigUpdateEnvelope, ConfigValue, Envelope, Header, HeaderType, Payload, SignatureHeader,
};
use prost::Message;
use prost_types::Timestamp;

use super::UpdateError;
use crate::txid::{compute_tx_id, new_nonce};

/// The update that turns the channel group `original` into `updated`: a read set of the
/// versions it builds on and a write set of what changes.
pub fn compute_update(
    channel_id: &str,
    original: &ConfigGroup,
    updated: &ConfigGroup,
) -> Result<ConfigUpdate, UpdateError> {
    let (read_set, write_set, changed) = group_update(original, updated);
    if !changed {
        return Err(UpdateError("no differences detected between original and updated config".into()));
    }
    Ok(ConfigUpdate {
        channel_id: channel_id.to_owned(),
        read_set: Some(read_set),
        write_set: Some(write_set),
        isolated_data: BTreeMap::new(),
    })
}

/// Members of one kind (values or policies) compared: those unchanged (bare, at their
/// version), those written (changed at version + 1, added at 0), and whether the set of
/// names changed.
struct Members<T> {
    same: BTreeMap<String, T>,
    written: BTreeMap<String, T>,
    membership_changed: bool,
}

fn members<T: Clone>(
    original: &BTreeMap<String, T>,
    updated: &BTreeMap<String, T>,
    unchanged: impl Fn(&T, &T) -> bool,
    bare: impl Fn(&T) -> T,
    bumped: impl Fn(&T, &T) -> T,
    added: impl Fn(&T) -> T,
) -> Members<T> {
    let mut out = Members { same: BTreeMap::new(), written: BTreeMap::new(), membership_changed: false };
    for (name, old) in original {
        match updated.get(name) {
            Some(new) if unchanged(old, new) => {
                out.same.insert(name.clone(), bare(old));
            }
            Some(new) => {
                out.written.insert(name.clone(), bumped(old, new));
            }
            None => out.membership_changed = true,
        }
    }
    for (name, new) in updated.iter().filter(|(name, _)| !original.contains_key(*name)) {
        out.membership_changed = true;
        out.written.insert(name.clone(), added(new));
    }
    out
}

fn values(original: &ConfigGroup, updated: &ConfigGroup) -> Members<ConfigValue> {
    members(
        &original.values,
        &updated.values,
        |old, new| old.mod_policy == new.mod_policy && old.value == new.value,
        |old| ConfigValue { version: old.version, ..Default::default() },
        |old, new| ConfigValue { version: old.version + 1, ..new.clone() },
        |new| ConfigValue { version: 0, ..new.clone() },
    )
}

fn policies(original: &ConfigGroup, updated: &ConfigGroup) -> Members<ConfigPolicy> {
    members(
        &original.policies,
        &updated.policies,
        |old, new| old.mod_policy == new.mod_policy && old.policy == new.policy,
        |old| ConfigPolicy { version: old.version, ..Default::default() },
        |old, new| ConfigPolicy { version: old.version + 1, ..new.clone() },
        |new| ConfigPolicy { version: 0, ..new.clone() },
    )
}

/// (read set, write set, changed) for one group.
fn group_update(original: &ConfigGroup, updated: &ConfigGroup) -> (ConfigGroup, ConfigGroup, bool) {
    let values = values(original, updated);
    let policies = policies(original, updated);
    let mut same_groups = BTreeMap::new();
    let (mut read_groups, mut written_groups) = (BTreeMap::new(), BTreeMap::new());
    let mut groups_changed = false;
    for (name, old) in &original.groups {
        match updated.groups.get(name) {
            Some(new) => {
                let (read, write, changed) = group_update(old, new);
                if changed {
                    read_groups.insert(name.clone(), read);
                    written_groups.insert(name.clone(), write);
                } else {
                    same_groups.insert(name.clone(), read);
                }
            }
            None => groups_changed = true,
        }
    }
    for (name, new) in updated.groups.iter().filter(|(name, _)| !original.groups.contains_key(*name)) {
        groups_changed = true;
        written_groups.insert(name.clone(), new_group(new));
    }
    let membership_changed = values.membership_changed || policies.membership_changed || groups_changed;
    if !membership_changed && original.mod_policy == updated.mod_policy {
        if values.written.is_empty() && policies.written.is_empty() && written_groups.is_empty() {
            let bare = ConfigGroup { version: original.version, ..Default::default() };
            return (bare.clone(), bare, false);
        }
        let read = ConfigGroup { version: original.version, groups: read_groups, ..Default::default() };
        let write = ConfigGroup {
            version: original.version,
            groups: written_groups,
            values: values.written,
            policies: policies.written,
            mod_policy: String::new(),
        };
        return (read, write, true);
    }
    // The group itself changes: it lists every member it keeps, unchanged ones bare in
    // both sets.
    let mut write_groups = same_groups.clone();
    write_groups.extend(written_groups);
    let mut groups = same_groups;
    groups.extend(read_groups);
    let read = ConfigGroup {
        version: original.version,
        groups,
        values: values.same.clone(),
        policies: policies.same.clone(),
        mod_policy: String::new(),
    };
    let mut write_values = values.same;
    write_values.extend(values.written);
    let mut write_policies = policies.same;
    write_policies.extend(policies.written);
    let write = ConfigGroup {
        version: original.version + 1,
        groups: write_groups,
        values: write_values,
        policies: write_policies,
        mod_policy: updated.mod_policy.clone(),
    };
    (read, write, true)
}

/// A group new to the config, written whole at version 0.
fn new_group(group: &ConfigGroup) -> ConfigGroup {
    let (_, write, _) = group_update(&ConfigGroup::default(), group);
    ConfigGroup { version: 0, mod_policy: group.mod_policy.clone(), ..write }
}

/// `signer`'s signature on an update: over a fresh signature header followed by the
/// update's bytes.
pub fn sign_update(config_update: &[u8], signer: &SigningIdentity) -> ConfigSignature {
    let header: Bytes =
        SignatureHeader { creator: signer.serialized().clone(), nonce: new_nonce().to_vec().into() }
            .encode_to_vec()
            .into();
    let mut signed = header.to_vec();
    signed.extend_from_slice(config_update);
    ConfigSignature { signature_header: header, signature: signer.sign(&signed).into() }
}

/// An envelope of `header_type` on `channel_id` carrying `data`, signed by `signer`.
fn signed_envelope(
    header_type: HeaderType,
    channel_id: &str,
    data: Bytes,
    signer: &SigningIdentity,
    timestamp: Timestamp,
) -> Envelope {
    let nonce = new_nonce();
    let creator = signer.serialized().clone();
    let channel_header = ChannelHeader {
        r#type: header_type as i32,
        version: 0,
        timestamp: Some(timestamp),
        channel_id: channel_id.to_owned(),
        tx_id: compute_tx_id(&nonce, &creator),
        epoch: 0,
        extension: Bytes::new(),
        tls_cert_hash: Bytes::new(),
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec().into(),
            signature_header: SignatureHeader { creator, nonce: nonce.to_vec().into() }
                .encode_to_vec()
                .into(),
        }),
        data,
    };
    let payload: Bytes = payload.encode_to_vec().into();
    let signature = signer.sign(&payload).into();
    Envelope { payload, signature }
}

/// The `CONFIG_UPDATE` envelope that submits a signed update, itself signed by
/// `submitter` (whose signature counts only for the channel's Writers).
pub fn update_envelope(
    channel_id: &str,
    update: &ConfigUpdateEnvelope,
    submitter: &SigningIdentity,
    timestamp: Timestamp,
) -> Envelope {
    signed_envelope(HeaderType::ConfigUpdate, channel_id, update.encode_to_vec().into(), submitter, timestamp)
}

/// The `CONFIG` envelope an orderer makes of an accepted update.
pub fn config_envelope(
    channel_id: &str,
    config: &ConfigEnvelope,
    orderer: &SigningIdentity,
    timestamp: Timestamp,
) -> Envelope {
    signed_envelope(HeaderType::Config, channel_id, config.encode_to_vec().into(), orderer, timestamp)
}
