//! A channel on this peer: its ledger, its configuration and chaincode definitions, and
//! the committer that validates and commits blocks and tells listeners about them.

use std::sync::{Arc, Mutex, RwLock};

use medfabric_proto::common::Block;
use medfabric_proto::kvrwset::KvWrite;
use medfabric_proto::protos::TxValidationCode as Code;
use medfabric_shim::ShimResult;
use medfabric_types::block::{self, set_transactions_filter};
use medfabric_types::config::ChannelResources;
use medfabric_types::lifecycle::{ChaincodeRegistry, LIFECYCLE_NAMESPACE};
use tokio::sync::broadcast;

use crate::ledger::{ChannelLedger, LedgerError, Savepoint, Snapshot, Store};
use crate::validator::{BlockError, ChannelContext, CommittedState, TxOutcome, check_block, validate_block};

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
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("channel_id", &self.ledger.channel_id()).finish()
    }
}

impl CommittedState for Snapshot<'_> {
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
        Ok(Self { ledger, context: RwLock::new(Arc::new(context)), commit_lock: Mutex::new(()), events })
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

    pub fn height(&self) -> Result<u64, LedgerError> {
        self.ledger.height()
    }

    /// Validates and commits the next block. A block that fails stage 0 (data hash,
    /// orderer signatures, chaining) is rejected whole and changes nothing.
    pub fn commit(&self, block: &Block) -> Result<Arc<CommitEvent>, CommitError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let context = self.context();
        let number = block::header(block).number;
        let height = self.ledger.height()?;
        if number != height {
            return Err(BlockError::Rejected { number, why: format!("expected block {height}") }.into());
        }
        let started = std::time::Instant::now();
        check_block(block, &context.resources)?;
        let validated = {
            let snapshot = self.ledger.snapshot();
            validate_block(block, &context, &snapshot)?
        };
        let validate_time = started.elapsed();
        let written = std::time::Instant::now();
        let mut committed = block.clone();
        set_transactions_filter(&mut committed, &validated.codes());
        let is_config = validated.new_config.is_some();
        let _: Savepoint = self.ledger.commit(&committed, &validated.update, is_config)?;
        let write_time = written.elapsed();

        // What changed takes effect for the next block and for new proposals.
        if is_config || !validated.lifecycle_writes.is_empty() {
            let next = match validated.new_config {
                Some(resources) => {
                    let mut registry = context.registry.clone();
                    registry
                        .update_from_config(&resources.config)
                        .map_err(|e| CommitError::Config(format!("block {number}: {e}")))?;
                    registry
                        .apply_lifecycle_writes(&validated.lifecycle_writes)
                        .map_err(|e| CommitError::Config(e.to_string()))?;
                    ChannelContext { resources: *resources, registry }
                }
                None => load_context(&self.ledger)?,
            };
            *self.context.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
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
        Ok(event)
    }
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
    let mut registry = ChaincodeRegistry::from_config(&resources.config)
        .map_err(|e| CommitError::Config(format!("chaincode definitions: {e}")))?;
    let writes: Vec<KvWrite> = ledger
        .state_entries_of(LIFECYCLE_NAMESPACE)?
        .into_iter()
        .map(|(key, value)| KvWrite { key, is_delete: false, value: value.value })
        .collect();
    registry
        .apply_lifecycle_writes(&writes)
        .map_err(|e| CommitError::Config(format!("_lifecycle state: {e}")))?;
    Ok(ChannelContext { resources, registry })
}
