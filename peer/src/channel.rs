//! A channel on this peer: its ledger, its configuration and chaincode definitions, and
//! the committer that validates and commits blocks and tells listeners about them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use medfabric_msp::Identity;
use medfabric_types::lifecycle::Collection;

use medfabric_proto::common::{Block, HeaderType};
use medfabric_proto::kvrwset::KvWrite;
use medfabric_proto::protos::TxValidationCode as Code;
use medfabric_shim::ShimResult;
use medfabric_types::block::{self, set_transactions_filter};
use medfabric_types::config::ChannelResources;
use medfabric_types::lifecycle::{ChaincodeRegistry, LIFECYCLE_NAMESPACE};
use tokio::sync::{broadcast, watch};

use crate::ledger::{BlockUpdate, ChannelLedger, LedgerError, Savepoint, Snapshot, Store};
use crate::pvtdata::{self, CollectionView, Missing, PvtKey};
use crate::validator::{BlockError, ChannelContext, TxIndex, TxOutcome, check_block, validate_block};

/// What listeners hear after each commit.
#[derive(Debug, Clone)]
pub struct CommitEvent {
    pub channel_id: String,
    pub number: u64,
    pub txs: Vec<TxOutcome>,
    /// Time spent validating the block (all stages) and writing it (one synced batch).
    pub validate_time: std::time::Duration,
    pub write_time: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Config(String),
}

/// How many commit events a slow listener may fall behind before it misses some.
const EVENT_BUFFER: usize = 1024;

pub struct Channel {
    ledger: ChannelLedger,
    context: RwLock<Arc<ChannelContext>>,
    /// One commit at a time.
    commit_lock: Mutex<()>,
    events: broadcast::Sender<Arc<CommitEvent>>,
    /// The ledger height, for Deliver streams and event streams waiting for blocks.
    heights: watch::Sender<u64>,
    /// This peer's serialized identity: decides which collections it holds.
    member: RwLock<Option<Bytes>>,
    /// Blocks the transient store keeps unclaimed private data.
    transient_retention: AtomicU64,
    /// Whether a config this peer committed under had its organization: from then on,
    /// a config without it is a removal, not a join still to come.
    org_joined: AtomicBool,
    /// Revocation lists from this peer's local MSP (`crls/`), added to the channel's MSPs.
    local_crls: RwLock<Vec<Vec<u8>>>,
    /// The background compaction of the private stores: running, and asked again.
    compaction: Arc<(std::sync::atomic::AtomicBool, std::sync::atomic::AtomicBool)>,
}

/// Fabric's default `transientstoreMaxBlockRetention` before 3.0.
pub const DEFAULT_TRANSIENT_RETENTION: u64 = medfabric_config::peer::DEFAULT_TRANSIENT_RETENTION;

/// A channel's collections and whether an identity's organization is a member of each.
#[derive(Debug, Clone)]
pub struct Membership {
    pub context: Arc<ChannelContext>,
    pub member: Option<Arc<Identity>>,
}

impl CollectionView for Membership {
    fn collection(&self, namespace: &str, collection: &str) -> Option<Collection> {
        self.context.registry.get(namespace)?.collection(collection, &self.context.resources)
    }

    fn eligible(&self, collection: &Collection) -> bool {
        self.member.as_ref().is_some_and(|m| collection.is_member(m))
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("channel_id", &self.ledger.channel_id()).finish()
    }
}

impl TxIndex for Snapshot<'_> {
    fn contains_tx(&self, tx_id: &str) -> ShimResult<bool> {
        Snapshot::contains_tx(self, tx_id).map_err(|e| medfabric_shim::ShimError::Ledger(e.to_string()))
    }
}

impl Channel {
    /// Opens (or creates, committing `genesis`) the channel's ledger in `store`, and
    /// resumes from its last committed block.
    pub fn open(store: &Store, genesis: &Block) -> Result<Self, CommitError> {
        let resources = ChannelResources::from_config_block(genesis)
            .map_err(|e| CommitError::Config(format!("genesis block: {e}")))?;
        let ledger = store.channel(&resources.config.channel_id)?;
        if ledger.height()? == 0 {
            let mut genesis = genesis.clone();
            if block::header(&genesis).number != 0 {
                return Err(CommitError::Config("the genesis block must be block 0".into()));
            }
            check_block(&genesis, &resources)?;
            let codes = vec![Code::Valid as u8; block::envelopes(&genesis).len()];
            set_transactions_filter(&mut genesis, &codes);
            ledger.commit(&genesis, &Default::default(), true)?;
        } else {
            let stored = ledger.block(0)?.ok_or_else(|| LedgerError::Corrupt("block 0 missing".into()))?;
            if block::header(&stored) != block::header(genesis) {
                return Err(CommitError::Config(format!(
                    "the ledger of channel {} was started from another genesis block",
                    resources.config.channel_id
                )));
            }
        }
        let context = load_context(&ledger)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let heights = watch::Sender::new(ledger.height()?);
        Ok(Self {
            ledger,
            context: RwLock::new(Arc::new(context)),
            commit_lock: Mutex::new(()),
            events,
            heights,
            member: RwLock::new(None),
            transient_retention: AtomicU64::new(DEFAULT_TRANSIENT_RETENTION),
            org_joined: AtomicBool::new(false),
            compaction: Arc::default(),
            local_crls: RwLock::new(Vec::new()),
        })
    }

    /// Names this peer (its serialized signing identity): it holds the private data of
    /// the collections its organization is a member of.
    pub fn set_member_identity(&self, identity: Bytes) {
        *self.member.write().unwrap_or_else(|p| p.into_inner()) = Some(identity);
    }

    /// Puts certificate revocation lists (PEM) from this peer's local MSP in force for
    /// what this peer admits (endorsement, gateway, Deliver, private data requests):
    /// identities they revoke are refused from now on. Validation keeps using the
    /// channel config's MSPs alone, so peers with different local lists never commit
    /// different codes. Returns whether they changed.
    pub fn set_local_crls(&self, crls: Vec<Vec<u8>>) -> Result<bool, CommitError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        if *self.local_crls.read().unwrap_or_else(|p| p.into_inner()) == crls {
            return Ok(false);
        }
        let current = self.context();
        // Rebuilt from the config, so CRLs removed from the folder stop applying.
        let admission = current
            .resources
            .with_local_crls(&crls)
            .map_err(|e| CommitError::Config(format!("local CRLs: {e}")))?;
        let next = ChannelContext {
            resources: current.resources.clone(),
            admission: Arc::new(admission),
            registry: current.registry.clone(),
        };
        *self.context.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        *self.local_crls.write().unwrap_or_else(|p| p.into_inner()) = crls;
        Ok(true)
    }

    pub fn set_transient_retention(&self, blocks: u64) {
        self.transient_retention.store(blocks, Ordering::Relaxed);
    }

    /// Does the channel config in `context` have this peer's organization?
    fn org_in_channel(&self, context: &ChannelContext) -> bool {
        use prost::Message;
        let Some(member) = self.member.read().unwrap_or_else(|p| p.into_inner()).clone() else {
            return false;
        };
        let Ok(identity) = medfabric_proto::msp::SerializedIdentity::decode(member.as_ref()) else {
            return true;
        };
        let config = &context.resources.config;
        config.application_orgs.iter().chain(&config.orderer_orgs).any(|o| o.msp_id == identity.mspid)
    }

    /// Collections as of now, and this peer's membership.
    pub fn membership(&self) -> Membership {
        let context = self.context();
        let member = self.member.read().unwrap_or_else(|p| p.into_inner()).clone();
        let member = member.and_then(|m| context.resources.msps.deserialize(&m).ok());
        Membership { context, member }
    }

    /// Private data of `block` this peer is eligible for and does not have in its
    /// transient store (to pull from other peers before committing).
    pub fn private_needs(&self, block: &Block) -> Result<Vec<Missing>, CommitError> {
        let membership = self.membership();
        let number = block::header(block).number;
        let mut needs = Vec::new();
        for (index, envelope) in block::envelopes(block).iter().enumerate() {
            let Ok(tx) = medfabric_types::Transaction::parse(envelope) else { continue };
            let Some(Ok(rwset)) = tx.endorser().map(|e| e.rwset()) else { continue };
            for ns in &rwset.ns_rwset {
                for set in ns.collection_hashed_rwset.iter().filter(|c| !c.pvt_rwset_hash.is_empty()) {
                    let Some(collection) = membership.collection(&ns.namespace, &set.collection_name) else {
                        continue;
                    };
                    if !membership.eligible(&collection) {
                        continue;
                    }
                    let held = pvtdata::transient_collection(
                        &self.ledger,
                        tx.tx_id(),
                        &ns.namespace,
                        &set.collection_name,
                        &set.pvt_rwset_hash,
                    )?;
                    if held.is_none() {
                        needs.push(Missing {
                            key: PvtKey {
                                block: number,
                                tx: index as u64,
                                namespace: ns.namespace.clone(),
                                collection: set.collection_name.clone(),
                            },
                            tx_id: tx.tx_id().to_owned(),
                            hash: set.pvt_rwset_hash.clone(),
                        });
                    }
                }
            }
        }
        Ok(needs)
    }

    /// Purged and expired values leave the files too, off the commit path: one
    /// background compaction at a time, run again if asked meanwhile.
    fn compact_private(&self) {
        let (running, again) = &*self.compaction;
        again.store(true, Ordering::SeqCst);
        if running.swap(true, Ordering::SeqCst) {
            return;
        }
        let (ledger, state) = (self.ledger.clone(), self.compaction.clone());
        std::thread::spawn(move || {
            let (running, again) = &*state;
            loop {
                while again.swap(false, Ordering::SeqCst) {
                    if let Err(e) = pvtdata::compact(&ledger) {
                        tracing::warn!("compacting private data: {e}");
                    }
                }
                running.store(false, Ordering::SeqCst);
                // Asked again between the last pass and the release: take it back.
                if !again.load(Ordering::SeqCst) || running.swap(true, Ordering::SeqCst) {
                    return;
                }
            }
        });
    }

    /// Stores private data fetched for already committed blocks (reconciliation).
    pub fn store_reconciled(&self, fetched: &[(Missing, Bytes)]) -> Result<usize, CommitError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(pvtdata::store_reconciled(&self.ledger, fetched)?)
    }

    pub fn channel_id(&self) -> &str {
        self.ledger.channel_id()
    }

    pub fn ledger(&self) -> &ChannelLedger {
        &self.ledger
    }

    /// The configuration and chaincode definitions in force now.
    pub fn context(&self) -> Arc<ChannelContext> {
        self.context.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommitEvent>> {
        self.events.subscribe()
    }

    /// The ledger height now and after each commit.
    pub fn watch_height(&self) -> watch::Receiver<u64> {
        self.heights.subscribe()
    }

    pub fn height(&self) -> Result<u64, LedgerError> {
        self.ledger.height()
    }

    /// The context and a state snapshot that belong together: no commit falls between
    /// reading one and taking the other.
    pub fn view(&self) -> (Arc<ChannelContext>, Snapshot<'_>) {
        let guard = self.context.read().unwrap_or_else(|p| p.into_inner());
        let context = guard.clone();
        let snapshot = self.ledger.snapshot();
        drop(guard);
        (context, snapshot)
    }

    /// Validates and commits the next block. A block that fails stage 0 (data hash,
    /// orderer signatures, chaining), or whose config cannot be applied, is rejected
    /// whole and changes nothing.
    pub fn commit(&self, block: &Block) -> Result<Arc<CommitEvent>, CommitError> {
        self.commit_with(block, &BTreeMap::new())
    }

    /// Commits the next block with private data fetched from other peers (`supplied`,
    /// by transaction and collection; checked against the block's hashes) besides what
    /// the transient store holds.
    pub fn commit_with(
        &self,
        block: &Block,
        supplied: &BTreeMap<PvtKey, Bytes>,
    ) -> Result<Arc<CommitEvent>, CommitError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let context = self.context();
        let number = block::header(block).number;
        let height = self.ledger.height()?;
        if number != height {
            return Err(BlockError::Rejected { number, why: format!("expected block {height}") }.into());
        }
        let started = std::time::Instant::now();
        let compact_after;
        check_block(block, &context.resources)?;
        let (validated, update, next) = {
            let snapshot = self.ledger.snapshot();
            let mut validated = validate_block(block, &context, &snapshot)?;
            let membership = self.membership();
            let org_in_channel = self.org_in_channel(&context);
            if org_in_channel {
                self.org_joined.store(true, Ordering::Relaxed);
            } else if self.org_joined.load(Ordering::Relaxed) {
                let why = "this peer's organization is no longer in the channel config".to_owned();
                return Err(BlockError::Rejected { number, why }.into());
            }
            if membership.member.is_none() && org_in_channel {
                // Committing as a non-member would silently drop data this peer holds. A
                // peer whose organization the channel does not have yet (one catching up
                // from the genesis block before its org was added) is not a member of
                // those blocks' collections, and commits them.
                let why = "this peer's identity is not valid under the channel's MSPs".to_owned();
                return Err(BlockError::Rejected { number, why }.into());
            }
            let tx_ids: BTreeSet<&str> =
                validated.txs.iter().map(|t| t.tx_id.as_str()).filter(|t| !t.is_empty()).collect();
            let private = pvtdata::plan_commit(
                &snapshot,
                number,
                &validated.private,
                &tx_ids,
                &membership,
                supplied,
                &validated.update.state,
                self.transient_retention.load(Ordering::Relaxed),
            )?;
            for id in private.expired_hashes.iter().cloned() {
                validated.update.state.insert(id, None);
            }
            compact_after = private.removed_data();
            if private.missing > 0 {
                tracing::warn!(
                    block = number,
                    missing = private.missing,
                    "private data missing; will reconcile"
                );
            }
            let update = BlockUpdate {
                state: std::mem::take(&mut validated.update.state),
                history: std::mem::take(&mut validated.update.history),
                private: private.ops,
            };
            // The context after this block is built before anything is written: a block
            // whose effects cannot be loaded is not committed.
            let next = match (validated.new_config.take(), validated.lifecycle_writes.is_empty()) {
                (None, true) => None,
                (config, _) => {
                    let (resources, admission) = match config {
                        None => (context.resources.clone(), context.admission.clone()),
                        // A new config keeps this peer's local CRLs in force for admission.
                        Some(fresh) => {
                            let crls = self.local_crls.read().unwrap_or_else(|p| p.into_inner()).clone();
                            let admission = fresh
                                .with_local_crls(&crls)
                                .map_err(|e| BlockError::Rejected { number, why: e.to_string() })?;
                            (Arc::new(*fresh), Arc::new(admission))
                        }
                    };
                    let registry = registry_for(&resources, &snapshot, &validated.lifecycle_writes)
                        .map_err(|e| BlockError::Rejected { number, why: e.to_string() })?;
                    Some(ChannelContext { resources, admission, registry })
                }
            };
            (validated, update, next)
        };
        let validate_time = started.elapsed();
        let written = std::time::Instant::now();
        let mut committed = block.clone();
        set_transactions_filter(&mut committed, &validated.codes());
        // The validator refuses blocks whose config it cannot apply: a config
        // transaction here is valid and alone in its block.
        let is_config = validated.txs.iter().any(|t| t.header_type == HeaderType::Config as i32);
        {
            // Endorsers see the new state and the new context together (see `view`).
            let mut slot = self.context.write().unwrap_or_else(|p| p.into_inner());
            let _: Savepoint = self.ledger.commit(&committed, &update, is_config)?;
            if let Some(next) = next {
                *slot = Arc::new(next);
            }
        }
        let write_time = written.elapsed();
        if compact_after {
            self.compact_private();
        }
        let event = Arc::new(CommitEvent {
            channel_id: self.ledger.channel_id().to_owned(),
            number,
            txs: validated.txs,
            validate_time,
            write_time,
        });
        // No listener is fine.
        let _ = self.events.send(event.clone());
        self.heights.send_replace(number + 1);
        Ok(event)
    }
}

/// Chaincode definitions: the config's, then those committed in `_lifecycle` (in
/// `state`), then this block's `_lifecycle` writes.
fn registry_for(
    resources: &ChannelResources,
    state: &Snapshot<'_>,
    block_writes: &[KvWrite],
) -> Result<ChaincodeRegistry, CommitError> {
    let mut registry = ChaincodeRegistry::from_config(&resources.config)
        .map_err(|e| CommitError::Config(format!("chaincode definitions: {e}")))?;
    let committed: Vec<KvWrite> = state
        .scan(LIFECYCLE_NAMESPACE, "", usize::MAX, |_| true)?
        .into_iter()
        .map(|(key, value)| KvWrite { key, is_delete: false, value: value.value })
        .collect();
    for writes in [committed.as_slice(), block_writes] {
        registry
            .apply_lifecycle_writes(writes)
            .map_err(|e| CommitError::Config(format!("_lifecycle state: {e}")))?;
    }
    Ok(registry)
}

/// The channel context from the ledger: the last config block, then chaincode
/// definitions from that config and from committed `_lifecycle` state.
fn load_context(ledger: &ChannelLedger) -> Result<ChannelContext, CommitError> {
    let savepoint = ledger.savepoint()?.ok_or_else(|| LedgerError::Corrupt("no savepoint".into()))?;
    let config_block = ledger
        .block(savepoint.last_config)?
        .ok_or_else(|| LedgerError::Corrupt(format!("config block {} missing", savepoint.last_config)))?;
    let resources = ChannelResources::from_config_block(&config_block)
        .map_err(|e| CommitError::Config(format!("config block {}: {e}", savepoint.last_config)))?;
    let registry = registry_for(&resources, &ledger.snapshot(), &[])?;
    Ok(ChannelContext::new(Arc::new(resources), registry))
}
