//! Block validation, sans-IO: Fabric's v20 validator and kvledger MVCC pipeline
//! (`docs/fabric-wire.md`, "Validation order and codes") over a narrow [`CommittedState`] trait.
//!
//! 1. Per transaction, in parallel across cores: structure, header, creator signature,
//!    tx-id rule, proposal hash, channel, endorsement signatures, rw-set decoding.
//! 2. In block order: duplicate tx ids in the ledger, chaincode definitions, endorsement
//!    policies (chaincode, lifecycle and key-level policies, the latter from committed
//!    state plus earlier transactions of the block), config transactions.
//! 3. Duplicate tx ids inside the block (every occurrence after the first).
//! 4. In block order: MVCC and phantom reads against committed state plus the writes of
//!    earlier valid transactions; valid writes join the block's update.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use medfabric_msp::{Identity, counted_identities};
use medfabric_proto::common::{Block, HeaderType};
use medfabric_proto::kvrwset::{HashedRwSet, KvWrite, KvrwSet, Version as ProtoVersion};
use medfabric_proto::protos::{ChaincodeEvent, TxValidationCode as Code};
use medfabric_proto::rwset::TxReadWriteSet;
use medfabric_shim::{ShimError, ShimResult, StateView, VALIDATION_PARAMETER, Version, VersionedValue};
use medfabric_types::config::ChannelResources;
use medfabric_types::configtx;
use medfabric_types::lifecycle::{
    ChaincodeRegistry, KeyPolicySource, LIFECYCLE_NAMESPACE, check_endorsement, hashed_namespace,
    policy_updates,
};
use medfabric_types::mvcc::{self, Conflict, MvccState, NsReads};
use medfabric_types::transaction::{EndorserTransaction, TransactionBody};
use medfabric_types::{ConvertError, Transaction, block};
use prost::Message;

use crate::pvtdata::{CollectionWrite, PrivateTx};

/// Committed state before the block being validated: the reads it makes, and the
/// ledger's tx-id index.
pub trait CommittedState: TxIndex + Sync {
    /// The committed value of `key` (`None`: absent).
    fn get(&self, namespace: &str, key: &str) -> ShimResult<Option<VersionedValue>>;
    /// Live keys of `namespace` in `[start, end)` in key order (empty `end`: unbounded),
    /// at most `limit` of them.
    fn range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>>;
}

/// A ledger's tx-id index.
pub trait TxIndex {
    /// Is the tx id already in the ledger (whatever its validation code)?
    fn contains_tx(&self, tx_id: &str) -> ShimResult<bool>;
}

/// Any state view with a tx-id index (a ledger snapshot, a test's memory) is committed
/// state for the validator.
impl<T: StateView + TxIndex + Sync> CommittedState for T {
    fn get(&self, namespace: &str, key: &str) -> ShimResult<Option<VersionedValue>> {
        StateView::get(self, namespace, key)
    }

    fn range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        StateView::range(self, namespace, start, end, limit)
    }
}

/// What a block's valid transactions change in public state (hashed private state
/// included): the final value of every key they changed (`None`: deleted), keys as
/// `(namespace, key)`, and the writes for the history index, `(namespace, key, tx
/// position)`. The ledger decides how it stores them.
#[derive(Debug, Clone, Default)]
pub struct StateChanges {
    pub state: BTreeMap<(String, String), Option<VersionedValue>>,
    pub history: Vec<(String, String, u64)>,
}

/// A channel's configuration and chaincode definitions, as of the last committed block.
#[derive(Debug)]
pub struct ChannelContext {
    /// The channel config's MSPs and policies: what validation uses, the same on every
    /// peer.
    pub resources: Arc<ChannelResources>,
    /// The same with this peer's local CRLs in force: what the peer admits (proposals,
    /// gateway calls, Deliver, private data requests). As in Fabric, a local CRL never
    /// changes a validation code; two peers with different `crls/` commit alike.
    pub admission: Arc<ChannelResources>,
    pub registry: ChaincodeRegistry,
}

impl ChannelContext {
    /// A context whose admission uses the config's MSPs alone (no local CRLs).
    pub fn new(resources: Arc<ChannelResources>, registry: ChaincodeRegistry) -> Self {
        Self { admission: resources.clone(), resources, registry }
    }
}

/// Namespaces that only system transactions may write.
const SYSTEM_NAMESPACES: [&str; 4] = ["lscc", "cscc", "qscc", "escc"];

/// A fault that stops the whole block from being committed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {number}: {why}")]
    Rejected { number: u64, why: String },
    #[error("ledger: {0}")]
    Ledger(String),
}

/// One transaction's outcome.
#[derive(Debug, Clone)]
pub struct TxOutcome {
    pub tx_id: String,
    pub code: Code,
    pub header_type: i32,
    pub chaincode: Option<String>,
    /// The chaincode event of a transaction (kept whatever the code; listeners deliver
    /// those of valid transactions only).
    pub event: Option<ChaincodeEvent>,
    /// Why the transaction is invalid, for logs and tools.
    pub reason: Option<String>,
}

/// The verdict on a block and what committing it changes.
#[derive(Debug)]
pub struct ValidatedBlock {
    pub number: u64,
    pub txs: Vec<TxOutcome>,
    pub update: StateChanges,
    /// `_lifecycle` writes of valid transactions, in force from the next block on.
    pub lifecycle_writes: Vec<KvWrite>,
    /// A valid config transaction's new channel resources.
    pub new_config: Option<Box<ChannelResources>>,
    /// Valid transactions that touched private data, in block order.
    pub private: Vec<PrivateTx>,
}

impl ValidatedBlock {
    pub fn codes(&self) -> Vec<u8> {
        self.txs.iter().map(|t| t.code as u8).collect()
    }
}

/// Stage 0: data hash and orderer signatures (BlockValidation policy). The genesis
/// block is the trust anchor and has no signatures to check.
pub fn check_block(block: &Block, resources: &ChannelResources) -> Result<(), BlockError> {
    let number = block::header(block).number;
    let reject = |why: &str| BlockError::Rejected { number, why: why.to_owned() };
    if block::data_hash(block::envelopes(block)).as_slice() != block::header(block).data_hash.as_ref() {
        return Err(reject("data hash does not match the block's transactions"));
    }
    if number > 0 && !medfabric_types::verify::block_signatures_satisfied(block, resources) {
        return Err(reject("orderer signatures do not satisfy /Channel/Orderer/BlockValidation"));
    }
    Ok(())
}

/// A namespace's decoded read-write set.
struct NsSet {
    namespace: String,
    kv: KvrwSet,
    /// Collection name, hashed read-write set, `pvt_rwset_hash`.
    collections: Vec<(String, HashedRwSet, Bytes)>,
}

/// Stage 1's verdict on one transaction.
struct Prechecked {
    code: Code,
    reason: Option<String>,
    /// Set once the transaction passed Fabric's `ValidateTransaction` (for in-block
    /// duplicate detection).
    tx_id: Option<String>,
    tx: Option<Transaction>,
    endorsers: Vec<Arc<Identity>>,
    rwset: Option<TxReadWriteSet>,
    sets: Vec<NsSet>,
    event: Option<ChaincodeEvent>,
}

impl Prechecked {
    fn invalid(code: Code, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: Some(reason.into()),
            tx_id: None,
            tx: None,
            endorsers: Vec::new(),
            rwset: None,
            sets: Vec::new(),
            event: None,
        }
    }

    fn fail(&mut self, code: Code, reason: impl Into<String>) {
        self.code = code;
        self.reason = Some(reason.into());
    }
}

fn precheck(envelope: &[u8], channel_id: &str, resources: &ChannelResources) -> Prechecked {
    let tx = match Transaction::parse(envelope) {
        Ok(tx) => tx,
        Err(e) => return Prechecked::invalid(e.code, e.error.to_string()),
    };
    let header = &tx.channel_header;
    let known = matches!(
        HeaderType::try_from(header.r#type),
        Ok(HeaderType::EndorserTransaction | HeaderType::Config | HeaderType::ConfigUpdate)
    );
    if !known {
        return Prechecked::invalid(
            Code::BadCommonHeader,
            format!("header type {} not allowed", header.r#type),
        );
    }
    if header.epoch != 0 || tx.signature_header.nonce.is_empty() || tx.creator().is_empty() {
        return Prechecked::invalid(Code::BadCommonHeader, "non-zero epoch, or no nonce or creator");
    }
    let creator = match resources.msps.deserialize(tx.creator()) {
        Ok(identity) => identity,
        Err(e) => return Prechecked::invalid(Code::BadCreatorSignature, format!("creator: {e}")),
    };
    if let Err(e) = creator.verify(&tx.payload, &tx.signature) {
        return Prechecked::invalid(Code::BadCreatorSignature, format!("creator signature: {e}"));
    }
    // Only endorser transactions follow the tx-id rule (config envelopes from the
    // orderer carry none).
    if tx.endorser().is_some() && !tx.tx_id_matches() {
        return Prechecked::invalid(Code::BadProposalTxid, "tx id is not hex(SHA-256(nonce || creator))");
    }
    if tx.proposal_hash_matches() == Some(false) {
        return Prechecked::invalid(
            Code::InvalidEndorserTransaction,
            "proposal hash does not match the header",
        );
    }
    if tx.channel_id() != channel_id {
        return Prechecked::invalid(
            Code::TargetChainNotFound,
            format!("channel {:?} is not this one", tx.channel_id()),
        );
    }
    let mut checked = Prechecked {
        code: Code::Valid,
        reason: None,
        tx_id: (!tx.tx_id().is_empty()).then(|| tx.tx_id().to_owned()),
        tx: None,
        endorsers: Vec::new(),
        rwset: None,
        sets: Vec::new(),
        event: None,
    };
    match &tx.body {
        TransactionBody::Endorser(etx) => {
            checked.endorsers = counted_identities(&etx.endorsement_checks(&resources.msps));
            let action_name = etx.action.chaincode_id.as_ref().map(|c| c.name.as_str());
            if action_name != Some(etx.header_chaincode_id.name.as_str()) {
                checked.fail(Code::InvalidOtherReason, "the action names another chaincode than the header");
            } else {
                match decode_rwset(etx.rwset()) {
                    Err(why) => checked.fail(Code::BadRwset, why),
                    Ok((rwset, sets)) => {
                        let mut names = HashSet::new();
                        if let Some(dup) = sets.iter().find(|s| !names.insert(s.namespace.as_str())) {
                            checked.fail(
                                Code::IllegalWriteset,
                                format!("namespace {} appears twice", dup.namespace),
                            );
                        }
                        checked.rwset = Some(rwset);
                        checked.sets = sets;
                    }
                }
                match etx.event() {
                    Ok(Some(event)) if event.chaincode_id != etx.header_chaincode_id.name => {
                        checked.fail(Code::InvalidOtherReason, "the event names another chaincode");
                    }
                    Ok(event) => checked.event = event,
                    Err(e) => checked.fail(Code::InvalidOtherReason, format!("event: {e}")),
                }
            }
        }
        TransactionBody::Config(_) => {}
        TransactionBody::Other(_) => checked.fail(Code::UnknownTxType, "a peer commits no config updates"),
    }
    checked.tx = Some(tx);
    checked
}

fn decode_rwset(rwset: Result<TxReadWriteSet, ConvertError>) -> Result<(TxReadWriteSet, Vec<NsSet>), String> {
    let rwset = rwset.map_err(|e| e.to_string())?;
    let mut sets = Vec::with_capacity(rwset.ns_rwset.len());
    for ns in &rwset.ns_rwset {
        let kv = KvrwSet::decode(ns.rwset.as_ref()).map_err(|e| format!("{}: {e}", ns.namespace))?;
        let mut collections: Vec<(String, HashedRwSet, Bytes)> = Vec::new();
        for c in &ns.collection_hashed_rwset {
            let hashed = HashedRwSet::decode(c.hashed_rwset.as_ref())
                .map_err(|e| format!("{}/{}: {e}", ns.namespace, c.collection_name))?;
            if collections.iter().any(|(name, _, _)| *name == c.collection_name) {
                return Err(format!("{}/{} appears twice", ns.namespace, c.collection_name));
            }
            let key_hashes = hashed
                .hashed_reads
                .iter()
                .map(|r| &r.key_hash)
                .chain(hashed.hashed_writes.iter().map(|w| &w.key_hash))
                .chain(hashed.metadata_writes.iter().map(|m| &m.key_hash));
            if key_hashes.into_iter().any(|h| h.len() != 32)
                || (!c.pvt_rwset_hash.is_empty() && c.pvt_rwset_hash.len() != 32)
            {
                return Err(format!(
                    "{}/{}: hashes must be 32 bytes (SHA-256)",
                    ns.namespace, c.collection_name
                ));
            }
            collections.push((c.collection_name.clone(), hashed, c.pvt_rwset_hash.clone()));
        }
        sets.push(NsSet { namespace: ns.namespace.clone(), kv, collections });
    }
    Ok((rwset, sets))
}

/// Key-level policies as the policy stage sees them.
struct PolicyView<'a> {
    state: &'a dyn CommittedState,
    updated: HashSet<(String, String)>,
    /// A ledger read that failed inside the policy check (fatal for the block).
    failure: RefCell<Option<ShimError>>,
}

impl KeyPolicySource for PolicyView<'_> {
    fn committed_policy(&self, namespace: &str, key: &str) -> Result<Option<Bytes>, ConvertError> {
        match self.state.get(namespace, key) {
            Ok(value) => {
                Ok(value
                    .and_then(|v| v.metadata.get(VALIDATION_PARAMETER).filter(|p| !p.is_empty()).cloned()))
            }
            Err(e) => {
                let why = e.to_string();
                *self.failure.borrow_mut() = Some(e);
                Err(ConvertError::Invalid("ledger", why))
            }
        }
    }

    fn updated_in_block(&self, namespace: &str, key: &str) -> bool {
        self.updated.contains(&(namespace.to_owned(), key.to_owned()))
    }
}

impl PolicyView<'_> {
    /// Records the key-level policy changes of a transaction that passed its policy check
    /// ([`policy_updates`], shared with the verifier).
    fn note_updates(&mut self, sets: &[NsSet]) -> ShimResult<()> {
        let reads = ns_reads(sets);
        let state = self.state;
        let updates = policy_updates(&reads, |namespace, key| {
            Ok::<_, ShimError>(
                state
                    .get(namespace, key)?
                    .is_some_and(|v| v.metadata.get(VALIDATION_PARAMETER).is_some_and(|p| !p.is_empty())),
            )
        })?;
        self.updated.extend(updates.into_iter().map(|(id, _)| id));
        Ok(())
    }
}

fn ledger(e: ShimError) -> BlockError {
    BlockError::Ledger(e.to_string())
}

/// Validates `block` against `state` (committed state before it) and returns the codes
/// and the update to commit. Only ledger failures are errors; invalid transactions get
/// their code.
pub fn validate_block(
    block: &Block,
    context: &ChannelContext,
    state: &dyn CommittedState,
) -> Result<ValidatedBlock, BlockError> {
    let number = block::header(block).number;
    let channel_id = context.resources.config.channel_id.as_str();
    let envelopes = block::envelopes(block);

    // Stage 1, in parallel.
    let mut checked = precheck_all(envelopes, channel_id, &context.resources);
    check_config_alone(number, &checked)?;

    // Stage 2, in block order.
    let mut policies = PolicyView { state, updated: HashSet::new(), failure: RefCell::new(None) };
    let mut new_config = None;
    for tx in checked.iter_mut().filter(|t| t.code == Code::Valid) {
        // Taken out while its checks mark `tx`, and put back.
        let Some(parsed) = tx.tx.take() else { continue };
        let stage2 = match &parsed.body {
            TransactionBody::Endorser(etx) => check_endorsed(tx, &parsed, etx, context, &mut policies),
            // A config the peer cannot apply stops the block, as in Fabric: committing
            // it as invalid would leave this peer on the old config.
            TransactionBody::Config(envelope) => config_update(&parsed, envelope, &context.resources)
                .map(|resources| new_config = Some(Box::new(resources)))
                .map_err(|why| BlockError::Rejected { number, why }),
            TransactionBody::Other(_) => Ok(()),
        };
        tx.tx = Some(parsed);
        stage2?;
    }

    // Stage 3: duplicates within the block.
    mark_duplicates_in_block(&mut checked);

    // Stage 4: MVCC and phantom reads, in block order.
    let (update, lifecycle_writes, private) = check_reads(number, &mut checked, state)?;

    let txs = checked.into_iter().map(outcome).collect();
    Ok(ValidatedBlock { number, txs, update, lifecycle_writes, new_config, private })
}

/// A config transaction must be alone in its block, and valid.
fn check_config_alone(number: u64, checked: &[Prechecked]) -> Result<(), BlockError> {
    if let Some(config) = checked.iter().find(|t| is_config(t)) {
        if checked.len() != 1 {
            let why = "a config transaction must be alone in its block".to_owned();
            return Err(BlockError::Rejected { number, why });
        }
        if config.code != Code::Valid {
            let why = format!("config transaction: {}", config.reason.clone().unwrap_or_default());
            return Err(BlockError::Rejected { number, why });
        }
    }
    Ok(())
}

/// Stage 2 for an endorser transaction: a tx id new to the ledger, chaincode
/// definitions that hold, and endorsement policies satisfied (in block order, with the
/// key-level policies earlier valid transactions of the block changed).
fn check_endorsed(
    tx: &mut Prechecked,
    parsed: &Transaction,
    etx: &EndorserTransaction,
    context: &ChannelContext,
    policies: &mut PolicyView<'_>,
) -> Result<(), BlockError> {
    if policies.state.contains_tx(parsed.tx_id()).map_err(ledger)? {
        tx.fail(Code::DuplicateTxid, "tx id already in the ledger");
        return Ok(());
    }
    let invoked = etx.header_chaincode_id.name.as_str();
    if let Some((code, why)) = definition_fault(invoked, &tx.sets, &context.registry) {
        tx.fail(code, why);
        return Ok(());
    }
    // Definitions from the channel config carry no `_lifecycle` Sequence key for the
    // endorsement to read, so an upgrade is caught by version here.
    let endorsed_version = etx.action.chaincode_id.as_ref().map_or("", |c| c.version.as_str());
    if let Some(definition) = context.registry.get(invoked)
        && !definition.from_lifecycle
        && endorsed_version != definition.version
    {
        let why = format!(
            "endorsed for {invoked} version {endorsed_version:?}, the channel defines {:?}",
            definition.version
        );
        tx.fail(Code::InvalidChaincode, why);
        return Ok(());
    }
    let Some(rwset) = &tx.rwset else { return Ok(()) };
    let verdict =
        check_endorsement(invoked, rwset, &tx.endorsers, &context.registry, &*policies, &context.resources);
    if let Some(e) = policies.failure.borrow_mut().take() {
        return Err(ledger(e));
    }
    match verdict {
        Ok(None) => policies.note_updates(&tx.sets).map_err(ledger)?,
        Ok(Some(why)) => tx.fail(Code::EndorsementPolicyFailure, why),
        Err(e) => tx.fail(Code::EndorsementPolicyFailure, e.to_string()),
    }
    Ok(())
}

/// Stage 3: a tx id seen earlier in the block. Only transactions still valid take part,
/// as in Fabric's `markTXIdDuplicates`.
fn mark_duplicates_in_block(checked: &mut [Prechecked]) {
    let mut seen = HashSet::new();
    for tx in checked.iter_mut().filter(|t| t.code == Code::Valid) {
        if let Some(id) = &tx.tx_id
            && !seen.insert(id.clone())
        {
            tx.fail(Code::DuplicateTxid, "tx id appears earlier in this block");
        }
    }
}

/// Stage 4: MVCC and phantom reads in block order, each valid transaction's writes
/// applied before the next is checked. Returns the state changes, the `_lifecycle`
/// writes and the private writes of the block's valid transactions.
fn check_reads(
    number: u64,
    checked: &mut [Prechecked],
    state: &dyn CommittedState,
) -> Result<(StateChanges, Vec<KvWrite>, Vec<PrivateTx>), BlockError> {
    let mut batch = Batch { state, update: StateChanges::default() };
    let mut lifecycle_writes = Vec::new();
    let mut private = Vec::new();
    for (index, tx) in checked.iter_mut().enumerate() {
        if tx.code != Code::Valid || tx.sets.is_empty() {
            continue;
        }
        if let Some(conflict) = batch.conflict(&tx.sets).map_err(ledger)? {
            tx.fail(conflict.0, conflict.1);
            continue;
        }
        batch.apply(&tx.sets, (number, index as u64)).map_err(ledger)?;
        for set in tx.sets.iter().filter(|s| s.namespace == LIFECYCLE_NAMESPACE) {
            lifecycle_writes.extend(set.kv.writes.iter().cloned());
        }
        let collections: Vec<CollectionWrite> = tx
            .sets
            .iter()
            .flat_map(|set| {
                set.collections.iter().map(|(collection, hashed, pvt_hash)| CollectionWrite {
                    namespace: set.namespace.clone(),
                    collection: collection.clone(),
                    hashed: hashed.clone(),
                    pvt_hash: pvt_hash.clone(),
                })
            })
            .collect();
        if !collections.is_empty() {
            let tx_id = tx.tx.as_ref().map(|t| t.tx_id().to_owned()).unwrap_or_default();
            private.push(PrivateTx { index: index as u64, tx_id, collections });
        }
    }
    Ok((batch.update, lifecycle_writes, private))
}

fn outcome(t: Prechecked) -> TxOutcome {
    let parsed = t.tx.as_ref();
    TxOutcome {
        tx_id: parsed.map(|p| p.tx_id().to_owned()).unwrap_or_default(),
        code: t.code,
        header_type: parsed.map_or(-1, Transaction::header_type),
        chaincode: parsed.and_then(|p| p.endorser()).map(|e| e.header_chaincode_id.name.clone()),
        event: t.event,
        reason: t.reason,
    }
}

fn is_config(tx: &Prechecked) -> bool {
    tx.tx.as_ref().is_some_and(|t| matches!(t.body, TransactionBody::Config(_)))
        || tx.code == Code::InvalidConfigTransaction
}

fn precheck_all(envelopes: &[Bytes], channel_id: &str, resources: &ChannelResources) -> Vec<Prechecked> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(envelopes.len().max(1));
    if threads <= 1 || envelopes.len() < 4 {
        return envelopes.iter().map(|e| precheck(e, channel_id, resources)).collect();
    }
    let chunk = envelopes.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = envelopes
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter().map(|e| precheck(e, channel_id, resources)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// INVALID_CHAINCODE for writes to (or an invocation of) an undefined chaincode;
/// ENDORSEMENT_POLICY_FAILURE for writes to system namespaces by other chaincodes.
fn definition_fault(invoked: &str, sets: &[NsSet], registry: &ChaincodeRegistry) -> Option<(Code, String)> {
    if invoked != LIFECYCLE_NAMESPACE && registry.get(invoked).is_none() {
        return Some((Code::InvalidChaincode, format!("chaincode {invoked} is not defined on the channel")));
    }
    for set in sets {
        let writes = !set.kv.writes.is_empty()
            || !set.kv.metadata_writes.is_empty()
            || set
                .collections
                .iter()
                .any(|(_, h, _)| !h.hashed_writes.is_empty() || !h.metadata_writes.is_empty());
        if !writes {
            continue;
        }
        let ns = set.namespace.as_str();
        if SYSTEM_NAMESPACES.contains(&ns) || (ns == LIFECYCLE_NAMESPACE && invoked != LIFECYCLE_NAMESPACE) {
            return Some((Code::EndorsementPolicyFailure, format!("illegal write to system namespace {ns}")));
        }
        if ns != LIFECYCLE_NAMESPACE && registry.get(ns).is_none() {
            return Some((
                Code::InvalidChaincode,
                format!("write to namespace {ns}, which no chaincode defines"),
            ));
        }
    }
    None
}

/// A config transaction's new config: as Fabric's configtx validates it, the next
/// sequence, produced exactly by an update whose signatures satisfy the mod_policies of
/// what it changes under the current config.
fn config_update(
    tx: &Transaction,
    envelope: &medfabric_proto::common::ConfigEnvelope,
    current: &ChannelResources,
) -> Result<ChannelResources, String> {
    if tx.channel_id() != current.config.channel_id {
        return Err(format!("config for channel {}", tx.channel_id()));
    }
    configtx::validate(current, envelope).map_err(|e| format!("error validating config: {e}"))
}

/// Committed state plus the writes of the block's earlier valid transactions.
struct Batch<'a> {
    state: &'a dyn CommittedState,
    update: StateChanges,
}

impl Batch<'_> {
    fn get(&self, namespace: &str, key: &str) -> ShimResult<Option<VersionedValue>> {
        match self.update.state.get(&(namespace.to_owned(), key.to_owned())) {
            Some(pending) => Ok(pending.clone()),
            None => self.state.get(namespace, key),
        }
    }

    /// Fabric's MVCC and phantom-read check ([`medfabric_types::mvcc`], shared with the
    /// offline verifier) of one transaction's reads.
    fn conflict(&self, sets: &[NsSet]) -> ShimResult<Option<(Code, String)>> {
        let reads = ns_reads(sets);
        Ok(mvcc::conflict(self, &reads)?.map(|conflict| match conflict {
            Conflict::Mvcc(why) => (Code::MvccReadConflict, why),
            Conflict::Phantom(why) => (Code::PhantomReadConflict, why),
        }))
    }

    fn put(&mut self, namespace: &str, key: &str, value: Option<Bytes>, version: Version) -> ShimResult<()> {
        let id = (namespace.to_owned(), key.to_owned());
        let entry = match value {
            // A rewritten key keeps its metadata (its key-level policy); a delete drops it.
            Some(value) => {
                let metadata = self.get(namespace, key)?.map(|v| v.metadata).unwrap_or_default();
                Some(VersionedValue { value, version, metadata })
            }
            None => None,
        };
        self.update.state.insert(id, entry);
        Ok(())
    }

    fn put_metadata(
        &mut self,
        namespace: &str,
        key: &str,
        entries: &[medfabric_proto::kvrwset::KvMetadataEntry],
        version: Version,
    ) -> ShimResult<()> {
        // Metadata of an absent key is ignored, as in Fabric.
        if let Some(mut current) = self.get(namespace, key)? {
            current.metadata = entries
                .iter()
                .filter(|e| !e.value.is_empty())
                .map(|e| (e.name.clone(), e.value.clone()))
                .collect();
            current.version = version;
            self.update.state.insert((namespace.to_owned(), key.to_owned()), Some(current));
        }
        Ok(())
    }

    fn apply(&mut self, sets: &[NsSet], version: Version) -> ShimResult<()> {
        for set in sets {
            let ns = &set.namespace;
            for write in &set.kv.writes {
                let value = (!mvcc::is_delete(write)).then(|| write.value.clone());
                self.put(ns, &write.key, value, version)?;
                self.update.history.push((ns.clone(), write.key.clone(), version.1));
            }
            for write in &set.kv.metadata_writes {
                self.put_metadata(ns, &write.key, &write.entries, version)?;
            }
            for (collection, hashed, _) in &set.collections {
                let hashed_ns = hashed_namespace(ns, collection);
                for write in &hashed.hashed_writes {
                    let key = hex::encode(&write.key_hash);
                    let value = (!mvcc::is_hashed_delete(write)).then(|| write.value_hash.clone());
                    self.put(&hashed_ns, &key, value, version)?;
                }
                for write in &hashed.metadata_writes {
                    self.put_metadata(&hashed_ns, &hex::encode(&write.key_hash), &write.entries, version)?;
                }
            }
        }
        Ok(())
    }
}

impl MvccState for Batch<'_> {
    type Error = ShimError;

    fn committed_version(&self, namespace: &str, key: &str) -> ShimResult<Option<ProtoVersion>> {
        Ok(self.state.get(namespace, key)?.map(|v| proto_version(v.version)))
    }

    fn committed_range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
    ) -> ShimResult<Vec<(String, ProtoVersion)>> {
        Ok(self
            .state
            .range(namespace, start, end, usize::MAX)?
            .into_iter()
            .map(|(key, v)| (key, proto_version(v.version)))
            .collect())
    }

    fn pending(&self, namespace: &str, key: &str) -> Option<Option<ProtoVersion>> {
        self.update
            .state
            .get(&(namespace.to_owned(), key.to_owned()))
            .map(|entry| entry.as_ref().map(|v| proto_version(v.version)))
    }

    fn pending_range(&self, namespace: &str, start: &str, end: &str) -> Vec<(String, Option<ProtoVersion>)> {
        self.update
            .state
            .range((namespace.to_owned(), start.to_owned())..)
            .take_while(|((ns, key), _)| ns == namespace && (end.is_empty() || key.as_str() < end))
            .map(|((_, key), entry)| (key.clone(), entry.as_ref().map(|v| proto_version(v.version))))
            .collect()
    }
}

/// A transaction's decoded sets as the shared checks ([`medfabric_types::mvcc`],
/// [`policy_updates`]) take them.
fn ns_reads(sets: &[NsSet]) -> Vec<NsReads<'_>> {
    sets.iter()
        .map(|set| NsReads {
            namespace: &set.namespace,
            kv: &set.kv,
            collections: set.collections.iter().map(|(name, hashed, _)| (name.as_str(), hashed)).collect(),
        })
        .collect()
}

fn proto_version(v: Version) -> medfabric_proto::kvrwset::Version {
    medfabric_proto::kvrwset::Version { block_num: v.0, tx_num: v.1 }
}
