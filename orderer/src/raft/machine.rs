//! The state machine: each applied entry (a batch of envelopes) becomes the next block.

// openraft's traits return `StorageError`, a large type; our helpers return it too.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Block, HeaderType};
use medfabric_proto::etcdraft::BlockMetadata;
use medfabric_types::block::{self};
use medfabric_types::{ChannelResources, Transaction, configtx};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use prost::Message;
use rocksdb::{IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use super::*;

/// The last snapshot built or installed: its meta and data.
type StoredSnapshot = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

/// Applies ordered batches: builds, signs and stores the next blocks.
#[derive(Clone)]
pub struct BlockMachine {
    store: OrdererStore,
    signer: Arc<SigningIdentity>,
    /// Called with each new config block, after it is stored.
    on_config: Arc<dyn Fn(&Block) + Send + Sync>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl Debug for BlockMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockMachine").finish_non_exhaustive()
    }
}

impl BlockMachine {
    pub fn new(
        store: OrdererStore,
        signer: Arc<SigningIdentity>,
        on_config: Arc<dyn Fn(&Block) + Send + Sync>,
    ) -> Self {
        Self { store, signer, on_config, snapshot: Arc::default() }
    }
}

pub(super) fn tx_id_of(envelope: &[u8]) -> Option<String> {
    let tx = Transaction::parse(envelope).ok()?;
    (tx.header_type() == HeaderType::EndorserTransaction as i32 && !tx.tx_id().is_empty())
        .then(|| tx.tx_id().to_owned())
}

/// A CONFIG envelope parsed, and its content.
pub(super) fn config_of(envelope: &[u8]) -> Option<(Transaction, medfabric_proto::common::ConfigEnvelope)> {
    let tx = Transaction::parse(envelope).ok()?;
    match &tx.body {
        medfabric_types::TransactionBody::Config(config) => {
            let config = (**config).clone();
            Some((tx, config))
        }
        _ => None,
    }
}

/// Does the envelope's channel header say CONFIG (whether or not the rest parses)?
fn is_config(envelope: &[u8]) -> bool {
    use medfabric_proto::common::{ChannelHeader, Envelope, Payload};
    Envelope::decode(envelope)
        .ok()
        .and_then(|e| Payload::decode(e.payload.as_ref()).ok())
        .and_then(|p| p.header)
        .and_then(|h| ChannelHeader::decode(h.channel_header.as_ref()).ok())
        .is_some_and(|h| h.r#type == HeaderType::Config as i32)
}

/// The config a lone CONFIG entry puts in force after `previous`: signed by an orderer,
/// authorised by its update, for this channel; or why it is refused.
fn next_config(
    previous: &ChannelResources,
    tx: &Transaction,
    config: &medfabric_proto::common::ConfigEnvelope,
) -> Result<ChannelResources, String> {
    let signed = configtx::check_config_signer(previous, tx);
    match signed.and_then(|()| configtx::validate(previous, config)) {
        Ok(next) if next.config.channel_id == tx.channel_id() => Ok(next),
        Ok(_) => Err(format!("config for another channel: {}", tx.channel_id())),
        Err(e) => Err(stale_config_reason(previous, config, e)),
    }
}

/// Why a CONFIG is refused when its entry applies. When the config moved on since the
/// update was admitted, the update itself is checked against the config now in force,
/// so the client hears what Fabric would say of it (a stale read, a version already
/// taken) rather than only that the sequence moved.
fn stale_config_reason(
    current: &ChannelResources,
    config: &medfabric_proto::common::ConfigEnvelope,
    error: configtx::UpdateError,
) -> String {
    let moved = config.config.as_ref().is_some_and(|c| c.sequence != current.config.sequence + 1);
    let update = config.last_update.as_ref().map(configtx::SignedUpdate::from_envelope);
    match update {
        Some(Ok(update)) if moved => match configtx::authorize_update(current, &update) {
            Err(why) => format!(
                "error applying config update to existing channel '{}': {why}",
                current.config.channel_id
            ),
            Ok(_) => format!(
                "config update for existing channel did not pass final checks: the channel's config changed to sequence {} while it was ordered; resubmit it",
                current.config.sequence
            ),
        },
        _ => format!("config update for existing channel did not pass final checks: {error}"),
    }
}

/// The channel's config as of the chain's last config block.
fn config_at(store: &OrdererStore, tip: &ChainTip) -> Result<ChannelResources, SError> {
    let block = store
        .block(tip.last_config)
        .map_err(|e| StorageIOError::read_state_machine(AnyError::error(e)))?
        .ok_or_else(|| {
            SError::from(StorageIOError::read_state_machine(AnyError::error("no last config block")))
        })?;
    ChannelResources::from_config_block(&block)
        .map_err(|e| SError::from(StorageIOError::read_state_machine(AnyError::error(e))))
}

impl RaftStateMachine<TypeConfig> for BlockMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), SError> {
        let applied = self.store.applied()?;
        Ok((applied.last_applied, applied.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<OrderResponse>, SError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let db = self.store.db.clone();
        let mut applied = self.store.applied()?;
        let mut tip = self
            .store
            .tip()
            .map_err(|e| StorageIOError::read_state_machine(AnyError::error(e)))?
            .ok_or_else(|| {
            SError::from(StorageIOError::read_state_machine(AnyError::error("no chain tip")))
        })?;
        let mut batch = WriteBatch::default();
        let mut responses = Vec::new();
        let mut configs = Vec::new();
        // The config in force as entries apply (loaded at the first config entry).
        let mut current: Option<ChannelResources> = None;
        let mut seen_in_batch = std::collections::HashSet::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let mut response = OrderResponse::default();
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m)
                }
                EntryPayload::Normal(request) => {
                    // An envelope whose tx id is already ordered is not ordered again:
                    // a client retrying after a lost answer cannot duplicate it.
                    let mut envelopes: Vec<Bytes> = Vec::new();
                    let decoded: Vec<Vec<u8>> =
                        request.envelopes.iter().filter_map(|text| hex::decode(text).ok()).collect();
                    // A CONFIG goes into a block alone (peers stop at any other block
                    // holding one): an entry that mixes one with anything is refused
                    // whole, before any of its tx ids is recorded.
                    let mixed = decoded.len() > 1 && decoded.iter().any(|e| is_config(e));
                    if mixed {
                        response.refused = Some("a CONFIG envelope must be alone in its block".into());
                    }
                    for envelope in decoded.into_iter().filter(|_| !mixed) {
                        if let Some(tx_id) = tx_id_of(&envelope) {
                            let known =
                                db.get_cf(cf(&db, CF_TXIDS), tx_id.as_bytes()).map_err(|e| io(&e))?.is_some();
                            if known || !seen_in_batch.insert(tx_id.clone()) {
                                continue;
                            }
                            batch.put_cf(cf(&db, CF_TXIDS), tx_id.as_bytes(), tip.height.to_be_bytes());
                        }
                        envelopes.push(envelope.into());
                    }
                    // A config must follow the config before it, checked again here (in
                    // log order, the same on every consenter): two updates may have
                    // passed admission against the same config, and only the first
                    // still holds once it is in a block.
                    let lone_config = envelopes.len() == 1 && is_config(&envelopes[0]);
                    let config = if lone_config { config_of(&envelopes[0]) } else { None };
                    if lone_config && config.is_none() {
                        response.refused = Some("the CONFIG envelope does not parse".into());
                        envelopes.clear();
                    }
                    if let Some((tx, config_envelope)) = &config {
                        let previous = match current.take() {
                            Some(resources) => resources,
                            None => config_at(&self.store, &tip)?,
                        };
                        match next_config(&previous, tx, config_envelope) {
                            Ok(next) => current = Some(next),
                            Err(why) => {
                                response.refused = Some(why);
                                envelopes.clear();
                                current = Some(previous);
                            }
                        }
                    }
                    if !envelopes.is_empty() {
                        let previous = hex::decode(&tip.last_hash).unwrap_or_default();
                        let is_config = config.is_some();
                        if let Some((_, config)) = &config {
                            tip.config_sequence = config.config.as_ref().map_or(0, |c| c.sequence);
                        }
                        let mut next = block::new_block(tip.height, &previous, envelopes);
                        if is_config {
                            tip.last_config = tip.height;
                        }
                        let consenter =
                            BlockMetadata { raft_index: entry.log_id.index, ..Default::default() };
                        block::sign_block(
                            &mut next,
                            &self.signer,
                            tip.last_config,
                            consenter.encode_to_vec().into(),
                        );
                        batch.put_cf(cf(&db, CF_BLOCKS), tip.height.to_be_bytes(), next.encode_to_vec());
                        response.block = Some(tip.height);
                        tip.height += 1;
                        tip.last_hash = hex::encode(block::header_hash(block::header(&next)));
                        if is_config {
                            configs.push(next);
                        }
                    }
                }
            }
            responses.push(response);
        }
        batch.put_cf(cf(&db, CF_CHAIN), b"tip", json(&tip));
        batch.put_cf(cf(&db, CF_CHAIN), b"applied", json(&applied));
        db.write_opt(batch, &synced()).map_err(|e| StorageIOError::write_state_machine(&e))?;
        self.store.height.send_replace(tip.height);
        for config in &configs {
            (self.on_config)(config);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SError> {
        let data: ChainSnapshot = from_json(snapshot.get_ref())?;
        let db = self.store.db.clone();
        let mut batch = WriteBatch::default();
        for (number, hex_block) in data.blocks.iter().enumerate() {
            let bytes = hex::decode(hex_block)
                .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
            batch.put_cf(cf(&db, CF_BLOCKS), (number as u64).to_be_bytes(), bytes);
        }
        for tx_id in &data.tx_ids {
            batch.put_cf(cf(&db, CF_TXIDS), tx_id.as_bytes(), []);
        }
        let applied =
            AppliedState { last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        batch.put_cf(cf(&db, CF_CHAIN), b"tip", json(&data.tip));
        batch.put_cf(cf(&db, CF_CHAIN), b"applied", json(&applied));
        db.write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        self.store.height.send_replace(data.tip.height);
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((meta.clone(), snapshot.into_inner()));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SError> {
        let current = self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(current.map(|(meta, data)| Snapshot { meta, snapshot: Box::new(Cursor::new(data)) }))
    }
}

/// A snapshot holds the whole chain: a consenter that installs it has every block.
#[derive(Debug, Serialize, Deserialize)]
struct ChainSnapshot {
    tip: ChainTip,
    blocks: Vec<String>,
    tx_ids: Vec<String>,
}

impl RaftSnapshotBuilder<TypeConfig> for BlockMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SError> {
        let db = self.store.db.clone();
        let read = |e: &dyn std::fmt::Display| {
            SError::from(StorageIOError::read_state_machine(AnyError::error(e.to_string())))
        };
        // A consistent view: the tip, applied state and blocks of one snapshot.
        let view = db.snapshot();
        let tip: ChainTip = view
            .get_cf(cf(&db, CF_CHAIN), b"tip")
            .map_err(|e| read(&e))?
            .map(|b| from_json(&b))
            .transpose()?
            .ok_or_else(|| read(&"no chain tip"))?;
        let applied: AppliedState = view
            .get_cf(cf(&db, CF_CHAIN), b"applied")
            .map_err(|e| read(&e))?
            .map(|b| from_json(&b))
            .transpose()?
            .unwrap_or_default();
        let mut blocks = Vec::new();
        for number in 0..tip.height {
            let bytes = view
                .get_cf(cf(&db, CF_BLOCKS), number.to_be_bytes())
                .map_err(|e| read(&e))?
                .ok_or_else(|| read(&"missing block"))?;
            blocks.push(hex::encode(bytes));
        }
        let mut tx_ids = Vec::new();
        for item in view.iterator_cf(cf(&db, CF_TXIDS), IteratorMode::Start) {
            let (key, _) = item.map_err(|e| read(&e))?;
            tx_ids.push(String::from_utf8_lossy(&key).into_owned());
        }
        let data = json(&ChainSnapshot { tip: tip.clone(), blocks, tx_ids });
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
            snapshot_id: format!("{}-{}", applied.last_applied.map_or(0, |l| l.index), tip.height),
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

#[cfg(test)]
mod tests {
    use medfabric_proto::common::{ConfigEnvelope, Envelope};
    use medfabric_testkit::TestOrg;

    use super::*;

    #[test]
    fn a_config_is_told_by_its_header_whether_or_not_it_parses() {
        let orderer = TestOrg::new("OrdererMSP").issue("orderer0", "orderer");
        let timestamp = medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 };
        let config = configtx::config_envelope("ch", &ConfigEnvelope::default(), &orderer, timestamp);
        assert!(is_config(&config.encode_to_vec()));
        assert!(config_of(&config.encode_to_vec()).is_some());
        // A CONFIG header over data that is no ConfigEnvelope: still a CONFIG, and refused
        // as one rather than ordered among transactions.
        let mut payload = medfabric_proto::common::Payload::decode(config.payload.as_ref()).expect("payload");
        payload.data = bytes::Bytes::from_static(&[0xff, 0xff, 0xff]);
        let broken =
            Envelope { payload: payload.encode_to_vec().into(), signature: config.signature.clone() };
        assert!(is_config(&broken.encode_to_vec()));
        assert!(config_of(&broken.encode_to_vec()).is_none());
        assert!(!is_config(b"not an envelope"));
        let update = configtx::update_envelope("ch", &Default::default(), &orderer, timestamp);
        assert!(!is_config(&update.encode_to_vec()));
    }
}
