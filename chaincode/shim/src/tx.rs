//! The stub behind every transaction: reads from a state view, records the read-write
//! set. The peer runs it over a RocksDB snapshot, [`crate::MockStub`] over memory, so
//! chaincode behaves identically in unit tests and on a peer.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use medfabric_proto::protos::{Response, SignedProposal};
use medfabric_proto::queryresult::KeyModification;
use prost_types::Timestamp;

use crate::error::{ShimError, ShimResult};
use crate::stub::{Chaincode, ChaincodeStub, KeyValue, PageMetadata, error};

/// A committed version: `(block number, transaction number)` of the last writer.
pub type Version = (u64, u64);

/// Name of the key metadata entry holding a key-level endorsement policy.
pub const VALIDATION_PARAMETER: &str = "VALIDATION_PARAMETER";
/// Most results one range query may return (Fabric's `totalQueryLimit`).
pub const MAX_RANGE_RESULTS: usize = 100_000;
/// How deep chaincode-to-chaincode calls may nest.
pub const MAX_CALL_DEPTH: usize = 8;

/// A committed value with its version and key metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue {
    pub value: Bytes,
    pub version: Version,
    pub metadata: BTreeMap<String, Bytes>,
}

/// Committed state as of one height: a consistent snapshot.
pub trait StateView {
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
    /// Committed modifications of a key, newest first.
    fn history(&self, namespace: &str, key: &str) -> ShimResult<Vec<KeyModification>>;
    /// The hashed entry of a private key, kept by every peer: the value is the SHA-256
    /// of the private value; version and metadata (key-level policy) are the key's.
    fn private_hash(
        &self,
        namespace: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> ShimResult<Option<VersionedValue>>;
    /// The private value of a key, held only by peers of member organizations (`None`
    /// when absent here).
    fn private_get(&self, namespace: &str, collection: &str, key: &str)
    -> ShimResult<Option<VersionedValue>>;
    /// Private keys of a collection held here in `[start, end)`, at most `limit`.
    fn private_range(
        &self,
        namespace: &str,
        collection: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>>;
}

/// SHA-256 of a private key or value, as the hashed read-write set carries it.
pub fn hash(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// What a transaction does to a private data collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The collection rules of one transaction: which collections the chaincode defines and
/// whether the transaction's creator may read or write them (member-only read/write).
pub trait CollectionRules: Send + Sync + std::fmt::Debug {
    /// `Err` when `collection` is not defined for chaincode `namespace`, or the creator may
    /// not `access` it.
    fn check(&self, namespace: &str, collection: &str, access: Access) -> ShimResult<()>;
}

/// Finds the chaincode a transaction calls by name.
pub trait Resolver {
    fn resolve(&self, name: &str) -> Result<Arc<dyn Chaincode>, String>;
}

impl Resolver for BTreeMap<String, Arc<dyn Chaincode>> {
    fn resolve(&self, name: &str) -> Result<Arc<dyn Chaincode>, String> {
        self.get(name).cloned().ok_or_else(|| format!("chaincode {name} not found"))
    }
}

/// What the proposal tells the chaincode. Its `Debug` names the transient and decoration
/// keys only: their values can be secrets (ciphertext, response keys, an org's record key).
#[derive(Clone, Default)]
pub struct TxContext {
    pub channel_id: String,
    pub tx_id: String,
    pub args: Vec<Bytes>,
    pub creator: Bytes,
    pub transient: BTreeMap<String, Bytes>,
    pub timestamp: Option<Timestamp>,
    pub signed_proposal: Option<SignedProposal>,
    /// `ChaincodeInput.decorations` as the endorsing peer set them.
    pub decorations: BTreeMap<String, Bytes>,
    /// Collection rules (none: every collection exists and is open, as in a bare mock).
    pub collections: Option<Arc<dyn CollectionRules>>,
}

impl std::fmt::Debug for TxContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxContext")
            .field("channel_id", &self.channel_id)
            .field("tx_id", &self.tx_id)
            .field("args", &self.args.len())
            .field("transient", &self.transient.keys().collect::<Vec<_>>())
            .field("timestamp", &self.timestamp)
            .field("decorations", &self.decorations.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A private write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateWrite {
    Put(Bytes),
    Delete,
    /// Removes the key and every earlier version of it from every member peer.
    Purge,
}

/// What a transaction read and wrote in one private data collection, by plaintext key.
/// Only hashes of it enter the transaction; the values travel peer to peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateRecord {
    /// Point reads with the version of the key's hash seen (`None`: absent).
    pub reads: BTreeMap<String, Option<Version>>,
    pub writes: BTreeMap<String, PrivateWrite>,
    pub metadata_writes: BTreeMap<String, BTreeMap<String, Bytes>>,
    /// Values were read (not only hashes): only member peers can endorse.
    pub read_values: bool,
}

impl PrivateRecord {
    pub fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty() && self.metadata_writes.is_empty()
    }

    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty() || !self.metadata_writes.is_empty()
    }
}

/// A range query as it will be re-checked at commit: the committed keys it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeRecord {
    pub start: String,
    pub end: String,
    pub exhausted: bool,
    pub reads: Vec<(String, Version)>,
}

/// Everything one simulated transaction read and wrote, per namespace, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxRecord {
    /// Point reads: the committed version seen (`None`: the key was absent).
    pub reads: BTreeMap<String, BTreeMap<String, Option<Version>>>,
    /// Range queries in the order they ran.
    pub ranges: BTreeMap<String, Vec<RangeRecord>>,
    /// Writes; `None` deletes.
    pub writes: BTreeMap<String, BTreeMap<String, Option<Bytes>>>,
    pub metadata_writes: BTreeMap<String, BTreeMap<String, BTreeMap<String, Bytes>>>,
    /// The invoked chaincode's event `(name, payload)`.
    pub event: Option<(String, Bytes)>,
    /// Every chaincode that ran, the invoked one included.
    pub chaincodes: BTreeSet<String>,
    /// A paginated query ran: the transaction may not write.
    pub paginated: bool,
    /// Private data by namespace and collection.
    pub private: BTreeMap<String, BTreeMap<String, PrivateRecord>>,
}

impl TxRecord {
    pub fn has_writes(&self) -> bool {
        self.writes.values().any(|w| !w.is_empty())
            || self.metadata_writes.values().any(|w| !w.is_empty())
            || self.private.values().flat_map(|c| c.values()).any(PrivateRecord::has_writes)
    }

    /// Did the transaction write anything (public or private) in `namespace`?
    pub fn has_writes_in(&self, namespace: &str) -> bool {
        self.writes.get(namespace).is_some_and(|w| !w.is_empty())
            || self.metadata_writes.get(namespace).is_some_and(|w| !w.is_empty())
            || self.private.get(namespace).is_some_and(|c| c.values().any(PrivateRecord::has_writes))
    }

    /// Namespaces with anything recorded, in order.
    pub fn namespaces(&self) -> BTreeSet<&str> {
        let mut names = BTreeSet::new();
        names.extend(self.reads.iter().filter(|(_, r)| !r.is_empty()).map(|(n, _)| n.as_str()));
        names.extend(self.ranges.iter().filter(|(_, r)| !r.is_empty()).map(|(n, _)| n.as_str()));
        names.extend(self.writes.iter().filter(|(_, w)| !w.is_empty()).map(|(n, _)| n.as_str()));
        names.extend(self.metadata_writes.iter().filter(|(_, w)| !w.is_empty()).map(|(n, _)| n.as_str()));
        names.extend(
            self.private.iter().filter(|(_, c)| c.values().any(|r| !r.is_empty())).map(|(n, _)| n.as_str()),
        );
        names
    }
}

/// Runs `chaincode` (deployed as `namespace`) for one transaction and returns its
/// response and what it read and wrote. A panicking chaincode gets an error response.
pub fn execute(
    chaincode: &dyn Chaincode,
    namespace: &str,
    context: &TxContext,
    state: &dyn StateView,
    chaincodes: &dyn Resolver,
    init: bool,
) -> (Response, TxRecord) {
    let mut record = TxRecord::default();
    record.chaincodes.insert(namespace.to_owned());
    let response = {
        let mut stub = TxStub {
            state,
            chaincodes,
            context,
            args: None,
            namespace: namespace.to_owned(),
            record: &mut record,
            depth: 0,
        };
        run_guarded(chaincode, &mut stub, init)
    };
    (response, record)
}

fn run_guarded(chaincode: &dyn Chaincode, stub: &mut dyn ChaincodeStub, init: bool) -> Response {
    let outcome =
        catch_unwind(AssertUnwindSafe(|| if init { chaincode.init(stub) } else { chaincode.invoke(stub) }));
    outcome.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        error(format!("chaincode panicked: {why}"))
    })
}

/// The [`ChaincodeStub`] of one chaincode within one transaction.
pub struct TxStub<'a> {
    state: &'a dyn StateView,
    chaincodes: &'a dyn Resolver,
    context: &'a TxContext,
    /// Arguments of a called chaincode (the proposal's for the invoked one).
    args: Option<Vec<Bytes>>,
    namespace: String,
    record: &'a mut TxRecord,
    depth: usize,
}

fn check_key(key: &str) -> ShimResult<()> {
    if key.is_empty() {
        return Err(ShimError::Invalid("key must not be an empty string".into()));
    }
    Ok(())
}

fn in_range(key: &str, start: &str, end: &str) -> bool {
    key >= start && (end.is_empty() || key < end)
}

impl TxStub<'_> {
    fn check_write(&self) -> ShimResult<()> {
        if self.record.paginated {
            return Err(ShimError::Invalid(format!(
                "txid [{}]: unsuppored transaction. Transaction has already performed a paginated query. Writes are not allowed",
                self.context.tx_id
            )));
        }
        Ok(())
    }

    fn write(&mut self, key: &str, value: Option<Bytes>) -> ShimResult<()> {
        self.check_write()?;
        self.record.writes.entry(self.namespace.clone()).or_default().insert(key.to_owned(), value);
        Ok(())
    }

    fn record_range(&mut self, range: RangeRecord) {
        let ranges = self.record.ranges.entry(self.namespace.clone()).or_default();
        let same =
            |r: &RangeRecord| r.start == range.start && r.end == range.end && r.exhausted == range.exhausted;
        if !ranges.iter().any(same) {
            ranges.push(range);
        }
    }

    fn own_write(&self, key: &str) -> Option<&Option<Bytes>> {
        self.record.writes.get(&self.namespace).and_then(|w| w.get(key))
    }

    fn record_read(&mut self, key: &str, version: Option<Version>) {
        self.record.reads.entry(self.namespace.clone()).or_default().entry(key.to_owned()).or_insert(version);
    }

    fn check_collection(&self, collection: &str, access: Access) -> ShimResult<()> {
        if collection.is_empty() {
            return Err(ShimError::Invalid("collection must not be an empty string".into()));
        }
        match &self.context.collections {
            Some(rules) => rules.check(&self.namespace, collection, access),
            None => Ok(()),
        }
    }

    fn private_record(&mut self, collection: &str) -> &mut PrivateRecord {
        self.record
            .private
            .entry(self.namespace.clone())
            .or_default()
            .entry(collection.to_owned())
            .or_default()
    }

    fn own_private_write(&self, collection: &str, key: &str) -> Option<&PrivateWrite> {
        self.record.private.get(&self.namespace)?.get(collection)?.writes.get(key)
    }

    fn write_private(&mut self, collection: &str, key: &str, write: PrivateWrite) -> ShimResult<()> {
        check_key(key)?;
        self.check_collection(collection, Access::Write)?;
        self.check_write()?;
        self.private_record(collection).writes.insert(key.to_owned(), write);
        Ok(())
    }

    /// The committed hashed entry of a private key; the read joins the read set.
    fn read_private_hash(&mut self, collection: &str, key: &str) -> ShimResult<Option<VersionedValue>> {
        let hashed = self.state.private_hash(&self.namespace, collection, &hash(key.as_bytes()))?;
        self.private_record(collection)
            .reads
            .entry(key.to_owned())
            .or_insert(hashed.as_ref().map(|h| h.version));
        Ok(hashed)
    }
}

impl ChaincodeStub for TxStub<'_> {
    fn args(&self) -> &[Bytes] {
        self.args.as_deref().unwrap_or(&self.context.args)
    }

    fn tx_id(&self) -> &str {
        &self.context.tx_id
    }

    fn channel_id(&self) -> &str {
        &self.context.channel_id
    }

    fn creator(&self) -> &[u8] {
        &self.context.creator
    }

    fn transient(&self) -> &BTreeMap<String, Bytes> {
        &self.context.transient
    }

    fn tx_timestamp(&self) -> Option<Timestamp> {
        self.context.timestamp
    }

    fn signed_proposal(&self) -> Option<&SignedProposal> {
        self.context.signed_proposal.as_ref()
    }

    fn decorations(&self) -> &BTreeMap<String, Bytes> {
        &self.context.decorations
    }

    fn get_state(&mut self, key: &str) -> ShimResult<Option<Bytes>> {
        if let Some(written) = self.own_write(key) {
            return Ok(written.clone());
        }
        let found = self.state.get(&self.namespace, key)?;
        self.record_read(key, found.as_ref().map(|v| v.version));
        Ok(found.map(|v| v.value))
    }

    fn put_state(&mut self, key: &str, value: Bytes) -> ShimResult<()> {
        check_key(key)?;
        self.write(key, (!value.is_empty()).then_some(value))
    }

    fn del_state(&mut self, key: &str) -> ShimResult<()> {
        self.write(key, None)
    }

    fn query_range(&mut self, start: &str, end: &str) -> ShimResult<Vec<KeyValue>> {
        let committed = self.state.range(&self.namespace, start, end, MAX_RANGE_RESULTS + 1)?;
        if committed.len() > MAX_RANGE_RESULTS {
            return Err(ShimError::Invalid(format!(
                "range query [{start:?}, {end:?}) matches more than {MAX_RANGE_RESULTS} keys"
            )));
        }
        let record = RangeRecord {
            start: start.to_owned(),
            end: end.to_owned(),
            exhausted: true,
            reads: committed.iter().map(|(k, v)| (k.clone(), v.version)).collect(),
        };
        self.record_range(record);
        // The chaincode sees its own writes; the record keeps what commit will re-check.
        let mut merged: BTreeMap<String, Bytes> = committed.into_iter().map(|(k, v)| (k, v.value)).collect();
        if let Some(writes) = self.record.writes.get(&self.namespace) {
            for (key, value) in writes.iter().filter(|(k, _)| in_range(k, start, end)) {
                match value {
                    Some(value) => merged.insert(key.clone(), value.clone()),
                    None => merged.remove(key),
                };
            }
        }
        Ok(merged
            .into_iter()
            .map(|(key, value)| KeyValue { namespace: self.namespace.clone(), key, value })
            .collect())
    }

    fn query_range_page(
        &mut self,
        start: &str,
        end: &str,
        page_size: u32,
        bookmark: &str,
    ) -> ShimResult<(Vec<KeyValue>, PageMetadata)> {
        if page_size == 0 {
            return Err(ShimError::Invalid("pageSize must be greater than zero".into()));
        }
        if self.record.has_writes() {
            return Err(ShimError::Invalid(format!(
                "txid [{}]: unsuppored transaction. Paginated queries are supported only in a read-only transaction",
                self.context.tx_id
            )));
        }
        self.record.paginated = true;
        let from = if bookmark.is_empty() || bookmark < start { start } else { bookmark };
        let limit = usize::try_from(page_size).unwrap_or(usize::MAX).min(MAX_RANGE_RESULTS);
        let mut page = self.state.range(&self.namespace, from, end, limit + 1)?;
        let next = if page.len() > limit { page.pop().map(|(k, _)| k) } else { None };
        // As in Fabric, a full page stops the iterator at its last key (not exhausted).
        let (range_end, exhausted) = match (&next, page.last()) {
            (Some(_), Some((last, _))) => (last.clone(), false),
            _ => (end.to_owned(), true),
        };
        self.record_range(RangeRecord {
            start: from.to_owned(),
            end: range_end,
            exhausted,
            reads: page.iter().map(|(k, v)| (k.clone(), v.version)).collect(),
        });
        let results: Vec<KeyValue> = page
            .into_iter()
            .map(|(key, v)| KeyValue { namespace: self.namespace.clone(), key, value: v.value })
            .collect();
        let metadata = PageMetadata {
            fetched_records_count: i32::try_from(results.len()).unwrap_or(i32::MAX),
            bookmark: next.unwrap_or_default(),
        };
        Ok((results, metadata))
    }

    fn get_history_for_key(&mut self, key: &str) -> ShimResult<Vec<KeyModification>> {
        self.state.history(&self.namespace, key)
    }

    fn set_event(&mut self, name: &str, payload: Bytes) -> ShimResult<()> {
        if name.is_empty() {
            return Err(ShimError::Invalid("event name can not be empty string".into()));
        }
        // Only the invoked chaincode's event reaches the transaction, as in Fabric.
        if self.depth == 0 {
            self.record.event = Some((name.to_owned(), payload));
        }
        Ok(())
    }

    fn set_state_validation_parameter(&mut self, key: &str, policy: Bytes) -> ShimResult<()> {
        check_key(key)?;
        self.check_write()?;
        let entries = BTreeMap::from([(VALIDATION_PARAMETER.to_owned(), policy)]);
        self.record
            .metadata_writes
            .entry(self.namespace.clone())
            .or_default()
            .insert(key.to_owned(), entries);
        Ok(())
    }

    fn get_state_validation_parameter(&mut self, key: &str) -> ShimResult<Option<Bytes>> {
        let pending = self.record.metadata_writes.get(&self.namespace).and_then(|m| m.get(key));
        if let Some(entries) = pending {
            return Ok(entries.get(VALIDATION_PARAMETER).filter(|v| !v.is_empty()).cloned());
        }
        let found = self.state.get(&self.namespace, key)?;
        self.record_read(key, found.as_ref().map(|v| v.version));
        Ok(found.and_then(|v| v.metadata.get(VALIDATION_PARAMETER).filter(|p| !p.is_empty()).cloned()))
    }

    fn get_private_data(&mut self, collection: &str, key: &str) -> ShimResult<Option<Bytes>> {
        check_key(key)?;
        self.check_collection(collection, Access::Read)?;
        if let Some(write) = self.own_private_write(collection, key) {
            return Ok(match write {
                PrivateWrite::Put(value) => Some(value.clone()),
                PrivateWrite::Delete | PrivateWrite::Purge => None,
            });
        }
        self.private_record(collection).read_values = true;
        let Some(hashed) = self.read_private_hash(collection, key)? else { return Ok(None) };
        let private = self.state.private_get(&self.namespace, collection, key)?;
        match private {
            Some(private) if private.version == hashed.version => Ok(Some(private.value)),
            private => Err(ShimError::Invalid(format!(
                "private data matching public hash version is not available. Public hash version = {:?}, Private data version = {:?}",
                hashed.version,
                private.map(|p| p.version)
            ))),
        }
    }

    fn get_private_data_hash(&mut self, collection: &str, key: &str) -> ShimResult<Option<Bytes>> {
        check_key(key)?;
        self.check_collection(collection, Access::Read).or_else(|e| match e {
            // The hash is readable by everyone; only an undefined collection fails.
            ShimError::Denied(_) => Ok(()),
            other => Err(other),
        })?;
        if let Some(write) = self.own_private_write(collection, key) {
            return Ok(match write {
                PrivateWrite::Put(value) => Some(Bytes::copy_from_slice(&hash(value))),
                PrivateWrite::Delete | PrivateWrite::Purge => None,
            });
        }
        Ok(self.read_private_hash(collection, key)?.map(|h| h.value))
    }

    fn put_private_data(&mut self, collection: &str, key: &str, value: Bytes) -> ShimResult<()> {
        let write = if value.is_empty() { PrivateWrite::Delete } else { PrivateWrite::Put(value) };
        self.write_private(collection, key, write)
    }

    fn del_private_data(&mut self, collection: &str, key: &str) -> ShimResult<()> {
        self.write_private(collection, key, PrivateWrite::Delete)
    }

    fn purge_private_data(&mut self, collection: &str, key: &str) -> ShimResult<()> {
        self.write_private(collection, key, PrivateWrite::Purge)
    }

    fn get_private_data_by_range(
        &mut self,
        collection: &str,
        start: &str,
        end: &str,
    ) -> ShimResult<Vec<KeyValue>> {
        self.check_collection(collection, Access::Read)?;
        let committed =
            self.state.private_range(&self.namespace, collection, start, end, MAX_RANGE_RESULTS + 1)?;
        if committed.len() > MAX_RANGE_RESULTS {
            return Err(ShimError::Invalid(format!(
                "range query [{start:?}, {end:?}) matches more than {MAX_RANGE_RESULTS} keys"
            )));
        }
        let mut merged: BTreeMap<String, Bytes> = committed.into_iter().map(|(k, v)| (k, v.value)).collect();
        if let Some(record) = self.record.private.get(&self.namespace).and_then(|c| c.get(collection)) {
            for (key, write) in record.writes.iter().filter(|(k, _)| in_range(k, start, end)) {
                match write {
                    PrivateWrite::Put(value) => merged.insert(key.clone(), value.clone()),
                    PrivateWrite::Delete | PrivateWrite::Purge => merged.remove(key),
                };
            }
        }
        Ok(merged
            .into_iter()
            .map(|(key, value)| KeyValue { namespace: self.namespace.clone(), key, value })
            .collect())
    }

    fn set_private_data_validation_parameter(
        &mut self,
        collection: &str,
        key: &str,
        policy: Bytes,
    ) -> ShimResult<()> {
        check_key(key)?;
        self.check_collection(collection, Access::Write)?;
        self.check_write()?;
        let entries = BTreeMap::from([(VALIDATION_PARAMETER.to_owned(), policy)]);
        self.private_record(collection).metadata_writes.insert(key.to_owned(), entries);
        Ok(())
    }

    fn get_private_data_validation_parameter(
        &mut self,
        collection: &str,
        key: &str,
    ) -> ShimResult<Option<Bytes>> {
        check_key(key)?;
        self.check_collection(collection, Access::Read)?;
        let pending = self
            .record
            .private
            .get(&self.namespace)
            .and_then(|c| c.get(collection))
            .and_then(|r| r.metadata_writes.get(key));
        if let Some(entries) = pending {
            return Ok(entries.get(VALIDATION_PARAMETER).filter(|v| !v.is_empty()).cloned());
        }
        let hashed = self.read_private_hash(collection, key)?;
        Ok(hashed.and_then(|h| h.metadata.get(VALIDATION_PARAMETER).filter(|p| !p.is_empty()).cloned()))
    }

    fn invoke_chaincode(&mut self, name: &str, args: &[Bytes], channel: &str) -> ShimResult<Response> {
        if !channel.is_empty() && channel != self.context.channel_id {
            return Err(ShimError::Invalid(format!(
                "calling chaincode {name} on channel {channel} from channel {}: only the same channel is supported",
                self.context.channel_id
            )));
        }
        if self.depth >= MAX_CALL_DEPTH {
            return Err(ShimError::Invalid(format!("chaincode calls nest deeper than {MAX_CALL_DEPTH}")));
        }
        let chaincode = self.chaincodes.resolve(name).map_err(ShimError::Invalid)?;
        self.record.chaincodes.insert(name.to_owned());
        let mut callee = TxStub {
            state: self.state,
            chaincodes: self.chaincodes,
            context: self.context,
            args: Some(args.to_vec()),
            namespace: name.to_owned(),
            record: &mut *self.record,
            depth: self.depth + 1,
        };
        Ok(run_guarded(chaincode.as_ref(), &mut callee, false))
    }
}
