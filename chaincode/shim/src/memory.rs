//! An in-memory ledger for unit-testing chaincode without a peer.
//!
//! [`MockStub`] runs chaincode through the same [`TxStub`](crate::tx) the peer uses, so
//! reads, writes, range queries, composite keys, events, key-level policies and
//! chaincode-to-chaincode calls behave as on a peer. Each successful invocation commits
//! as its own block.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_proto::protos::Response;
use medfabric_proto::queryresult::KeyModification;
use prost_types::Timestamp;

use crate::error::ShimResult;
use crate::stub::{Chaincode, ChaincodeStub, ERROR_THRESHOLD, KeyValue};
use crate::tx::{
    CollectionRules, PrivateRecord, PrivateWrite, StateView, TxContext, TxRecord, VALIDATION_PARAMETER,
    Version, VersionedValue, execute, hash,
};

/// Committed state and history held in memory.
#[derive(Debug, Default, Clone)]
pub struct MemoryState {
    state: BTreeMap<(String, String), VersionedValue>,
    /// Modifications per key, oldest first.
    history: BTreeMap<(String, String), Vec<KeyModification>>,
    /// Private values by (namespace, collection, key).
    private: BTreeMap<(String, String, String), VersionedValue>,
    /// Hashed private entries by (namespace, collection, key hash).
    hashed: BTreeMap<(String, String, Vec<u8>), VersionedValue>,
}

impl MemoryState {
    /// Applies a transaction's writes at `version`, as a peer commits a valid one.
    pub fn apply(&mut self, record: &TxRecord, version: Version, tx_id: &str, timestamp: Option<Timestamp>) {
        for (namespace, writes) in &record.writes {
            for (key, value) in writes {
                let id = (namespace.clone(), key.clone());
                match value {
                    Some(value) => {
                        let metadata = self.state.get(&id).map(|v| v.metadata.clone()).unwrap_or_default();
                        self.state
                            .insert(id.clone(), VersionedValue { value: value.clone(), version, metadata });
                    }
                    None => {
                        self.state.remove(&id);
                    }
                }
                self.history.entry(id).or_default().push(KeyModification {
                    tx_id: tx_id.to_owned(),
                    value: value.clone().unwrap_or_default(),
                    timestamp,
                    is_delete: value.is_none(),
                });
            }
        }
        for (namespace, collections) in &record.private {
            for (collection, private) in collections {
                self.apply_private(namespace, collection, private, version);
            }
        }
        for (namespace, writes) in &record.metadata_writes {
            for (key, entries) in writes {
                if let Some(current) = self.state.get_mut(&(namespace.clone(), key.clone())) {
                    current.metadata = entries
                        .iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    current.version = version;
                }
            }
        }
    }

    fn apply_private(&mut self, namespace: &str, collection: &str, record: &PrivateRecord, version: Version) {
        for (key, write) in &record.writes {
            let id = (namespace.to_owned(), collection.to_owned(), key.clone());
            let hashed_id = (namespace.to_owned(), collection.to_owned(), hash(key.as_bytes()).to_vec());
            match write {
                PrivateWrite::Put(value) => {
                    let metadata =
                        self.hashed.get(&hashed_id).map(|v| v.metadata.clone()).unwrap_or_default();
                    let value_hash = Bytes::copy_from_slice(&hash(value));
                    self.hashed.insert(hashed_id, VersionedValue { value: value_hash, version, metadata });
                    self.private.insert(
                        id,
                        VersionedValue { value: value.clone(), version, metadata: BTreeMap::new() },
                    );
                }
                PrivateWrite::Delete | PrivateWrite::Purge => {
                    self.hashed.remove(&hashed_id);
                    self.private.remove(&id);
                }
            }
        }
        for (key, entries) in &record.metadata_writes {
            let hashed_id = (namespace.to_owned(), collection.to_owned(), hash(key.as_bytes()).to_vec());
            if let Some(current) = self.hashed.get_mut(&hashed_id) {
                current.metadata = entries
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                current.version = version;
            }
        }
    }

    /// The private value of a key.
    pub fn private_value(&self, namespace: &str, collection: &str, key: &str) -> Option<&VersionedValue> {
        self.private.get(&(namespace.to_owned(), collection.to_owned(), key.to_owned()))
    }

    /// Every private key and value of `collection` of chaincode `namespace`, in key order.
    pub fn private_entries(&self, namespace: &str, collection: &str) -> Vec<(String, Bytes)> {
        self.private
            .iter()
            .filter(|((ns, c, _), _)| ns == namespace && c == collection)
            .map(|((_, _, key), v)| (key.clone(), v.value.clone()))
            .collect()
    }

    /// Sets (or with `None` removes) a key directly, as a committer applying a block
    /// update does.
    pub fn set(&mut self, namespace: &str, key: &str, value: Option<VersionedValue>) {
        let id = (namespace.to_owned(), key.to_owned());
        match value {
            Some(value) => self.state.insert(id, value),
            None => self.state.remove(&id),
        };
    }

    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    pub fn value(&self, namespace: &str, key: &str) -> Option<&VersionedValue> {
        self.state.get(&(namespace.to_owned(), key.to_owned()))
    }
}

impl StateView for MemoryState {
    fn get(&self, namespace: &str, key: &str) -> ShimResult<Option<VersionedValue>> {
        Ok(self.value(namespace, key).cloned())
    }

    fn range(
        &self,
        namespace: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        Ok(self
            .state
            .range((namespace.to_owned(), start.to_owned())..)
            .take_while(|((ns, key), _)| ns == namespace && (end.is_empty() || key.as_str() < end))
            .take(limit)
            .map(|((_, key), value)| (key.clone(), value.clone()))
            .collect())
    }

    fn history(&self, namespace: &str, key: &str) -> ShimResult<Vec<KeyModification>> {
        Ok(self
            .history
            .get(&(namespace.to_owned(), key.to_owned()))
            .map(|h| h.iter().rev().cloned().collect())
            .unwrap_or_default())
    }

    fn private_hash(
        &self,
        namespace: &str,
        collection: &str,
        key_hash: &[u8],
    ) -> ShimResult<Option<VersionedValue>> {
        Ok(self.hashed.get(&(namespace.to_owned(), collection.to_owned(), key_hash.to_vec())).cloned())
    }

    fn private_get(
        &self,
        namespace: &str,
        collection: &str,
        key: &str,
    ) -> ShimResult<Option<VersionedValue>> {
        Ok(self.private_value(namespace, collection, key).cloned())
    }

    fn private_range(
        &self,
        namespace: &str,
        collection: &str,
        start: &str,
        end: &str,
        limit: usize,
    ) -> ShimResult<Vec<(String, VersionedValue)>> {
        Ok(self
            .private
            .range((namespace.to_owned(), collection.to_owned(), start.to_owned())..)
            .take_while(|((ns, coll, key), _)| {
                ns == namespace && coll == collection && (end.is_empty() || key.as_str() < end)
            })
            .take(limit)
            .map(|((_, _, key), value)| (key.clone(), value.clone()))
            .collect())
    }
}

/// The outcome of one mock transaction.
#[derive(Debug, Clone)]
pub struct MockOutcome {
    pub tx_id: String,
    pub response: Response,
    /// What the transaction read and wrote (committed only when the response is a success).
    pub record: TxRecord,
    pub committed: bool,
}

impl MockOutcome {
    pub fn payload_str(&self) -> String {
        String::from_utf8_lossy(&self.response.payload).into_owned()
    }
}

/// A channel with chaincodes and an in-memory ledger, for unit tests.
pub struct MockStub {
    channel_id: String,
    state: MemoryState,
    chaincodes: BTreeMap<String, Arc<dyn Chaincode>>,
    creator: Bytes,
    transient: BTreeMap<String, Bytes>,
    decorations: BTreeMap<String, Bytes>,
    timestamp: Timestamp,
    height: u64,
    collections: Option<Arc<dyn CollectionRules>>,
}

impl std::fmt::Debug for MockStub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockStub")
            .field("channel_id", &self.channel_id)
            .field("chaincodes", &self.chaincodes.keys().collect::<Vec<_>>())
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl MockStub {
    pub fn new(channel_id: &str) -> Self {
        Self {
            channel_id: channel_id.to_owned(),
            state: MemoryState::default(),
            chaincodes: BTreeMap::new(),
            creator: Bytes::new(),
            transient: BTreeMap::new(),
            decorations: BTreeMap::new(),
            timestamp: Timestamp { seconds: 1_700_000_000, nanos: 0 },
            height: 1,
            collections: None,
        }
    }

    /// Deploys `chaincode` under `name`.
    pub fn with_chaincode(mut self, name: &str, chaincode: impl Chaincode + 'static) -> Self {
        self.chaincodes.insert(name.to_owned(), Arc::new(chaincode));
        self
    }

    /// The `SerializedIdentity` later transactions are submitted with.
    pub fn set_creator(&mut self, creator: impl Into<Bytes>) {
        self.creator = creator.into();
    }

    pub fn set_transient(&mut self, transient: BTreeMap<String, Bytes>) {
        self.transient = transient;
    }

    /// Sets a decoration every later transaction carries, as an endorsing peer adds
    /// it (e.g. `medfabric.roles`).
    pub fn set_decoration(&mut self, key: &str, value: Bytes) {
        self.decorations.insert(key.to_owned(), value);
    }

    /// Drops a decoration (a peer that does not add it).
    pub fn remove_decoration(&mut self, key: &str) {
        self.decorations.remove(key);
    }

    /// The collection rules later transactions run under (default: every collection
    /// exists and anyone may read and write it).
    pub fn set_collection_rules(&mut self, rules: Arc<dyn CollectionRules>) {
        self.collections = Some(rules);
    }

    /// The committed private value of `key` in `collection` of chaincode `namespace`.
    pub fn private_value(&self, namespace: &str, collection: &str, key: &str) -> Option<Bytes> {
        self.state.private_value(namespace, collection, key).map(|v| v.value.clone())
    }

    /// The transaction time later transactions carry (it advances by a second per tx).
    pub fn set_timestamp(&mut self, timestamp: Timestamp) {
        self.timestamp = timestamp;
    }

    pub fn state(&self) -> &MemoryState {
        &self.state
    }

    /// The committed value of `key` in chaincode `namespace`.
    pub fn value(&self, namespace: &str, key: &str) -> Option<Bytes> {
        self.state.value(namespace, key).map(|v| v.value.clone())
    }

    /// The key-level endorsement policy committed for `key`.
    pub fn validation_parameter(&self, namespace: &str, key: &str) -> Option<Bytes> {
        self.state.value(namespace, key).and_then(|v| v.metadata.get(VALIDATION_PARAMETER).cloned())
    }

    fn next_context(&mut self, args: Vec<Bytes>) -> TxContext {
        self.timestamp.seconds += 1;
        TxContext {
            channel_id: self.channel_id.clone(),
            tx_id: format!("mock-tx-{}", self.height),
            args,
            creator: self.creator.clone(),
            transient: self.transient.clone(),
            decorations: self.decorations.clone(),
            timestamp: Some(self.timestamp),
            signed_proposal: None,
            collections: self.collections.clone(),
        }
    }

    /// Submits a transaction: runs chaincode `name` with `args` and commits its writes
    /// when it succeeds (status below 400).
    pub fn invoke(&mut self, name: &str, args: &[&str]) -> MockOutcome {
        self.run(name, args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect(), true, false)
    }

    /// Evaluates a transaction: runs the chaincode and commits nothing.
    pub fn query(&mut self, name: &str, args: &[&str]) -> MockOutcome {
        self.run(name, args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect(), false, false)
    }

    /// Runs chaincode `name`'s `init` and commits on success.
    pub fn init(&mut self, name: &str, args: &[&str]) -> MockOutcome {
        self.run(name, args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect(), true, true)
    }

    /// Runs `body` as the chaincode deployed under `namespace` (it need not be
    /// registered): a way to exercise stub methods directly. Commits on success.
    pub fn transact(
        &mut self,
        namespace: &str,
        body: impl Fn(&mut dyn ChaincodeStub) -> Response + Send + Sync,
    ) -> MockOutcome {
        let context = self.next_context(vec![Bytes::from_static(b"transact")]);
        let (response, record) = execute(&body, namespace, &context, &self.state, &self.chaincodes, false);
        self.finish(context, response, record, true)
    }

    fn run(&mut self, name: &str, args: Vec<Bytes>, commit: bool, init: bool) -> MockOutcome {
        let context = self.next_context(args);
        let (response, record) = match self.chaincodes.get(name) {
            Some(chaincode) => {
                execute(chaincode.as_ref(), name, &context, &self.state, &self.chaincodes, init)
            }
            None => (crate::stub::error(format!("chaincode {name} not found")), TxRecord::default()),
        };
        self.finish(context, response, record, commit)
    }

    fn finish(
        &mut self,
        context: TxContext,
        response: Response,
        record: TxRecord,
        commit: bool,
    ) -> MockOutcome {
        let committed = commit && response.status < ERROR_THRESHOLD;
        if committed {
            self.state.apply(&record, (self.height, 0), &context.tx_id, context.timestamp);
            self.height += 1;
        }
        MockOutcome { tx_id: context.tx_id, response, record, committed }
    }

    /// All committed keys of a namespace, for assertions.
    pub fn entries(&self, namespace: &str) -> Vec<KeyValue> {
        self.state
            .range(namespace, "", "", usize::MAX)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, v)| KeyValue { namespace: namespace.to_owned(), key, value: v.value })
            .collect()
    }
}

impl<F> Chaincode for F
where
    F: Fn(&mut dyn ChaincodeStub) -> Response + Send + Sync,
{
    fn invoke(&self, stub: &mut dyn ChaincodeStub) -> Response {
        self(stub)
    }
}
