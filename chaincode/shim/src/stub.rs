//! The chaincode-facing API: [`Chaincode`] and [`ChaincodeStub`], after Fabric's
//! `ChaincodeStubInterface` (fabric-chaincode-go v2).

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_proto::protos::{Response, SignedProposal};
use medfabric_proto::queryresult::KeyModification;
use prost_types::Timestamp;

use crate::composite::{self, MAX_UNICODE_RUNE};
use crate::error::ShimResult;
use crate::identity::ClientIdentity;

/// Status of a successful response.
pub const OK: i32 = 200;
/// From this status on a response is an error and gets no endorsement.
pub const ERROR_THRESHOLD: i32 = 400;
/// Status of a chaincode error.
pub const ERROR: i32 = 500;

/// A successful response carrying `payload`.
pub fn success(payload: impl Into<Bytes>) -> Response {
    Response { status: OK, message: String::new(), payload: payload.into() }
}

/// An error response (status 500) with `message`.
pub fn error(message: impl Into<String>) -> Response {
    Response { status: ERROR, message: message.into(), payload: Bytes::new() }
}

/// Chaincode logic. It must be deterministic: it sees only the stub (state, proposal,
/// creator, transaction time) — no clock, randomness, network or files.
pub trait Chaincode: Send + Sync {
    /// Called for an `Init` transaction; chaincodes without initialisation succeed.
    fn init(&self, _stub: &mut dyn ChaincodeStub) -> Response {
        success(Bytes::new())
    }

    /// Called for every transaction and query.
    fn invoke(&self, stub: &mut dyn ChaincodeStub) -> Response;
}

/// One key and value of a query result (Fabric's `queryresult.KV`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub namespace: String,
    pub key: String,
    pub value: Bytes,
}

/// Where a paginated query stopped (Fabric's `QueryResponseMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageMetadata {
    pub fetched_records_count: i32,
    /// Pass it back to get the next page; empty once the range is done.
    pub bookmark: String,
}

/// Fabric substitutes this key for an empty range start, which keeps simple-key ranges
/// out of the composite-key namespace (keys starting with U+0000).
pub const EMPTY_KEY_SUBSTITUTE: &str = "\u{1}";

/// What a chaincode can ask of the peer during one transaction.
///
/// Required methods are the primitive operations each backend (the peer's simulator,
/// the in-memory [`crate::MockStub`]) provides; the provided methods add Fabric's
/// argument checks and conveniences on top, so every backend behaves the same.
pub trait ChaincodeStub {
    // ---- proposal context -------------------------------------------------------------

    /// All arguments, the function name first.
    fn args(&self) -> &[Bytes];
    fn tx_id(&self) -> &str;
    fn channel_id(&self) -> &str;
    /// The submitting client's `SerializedIdentity` bytes.
    fn creator(&self) -> &[u8];
    /// Transient data: passed to the chaincode, never written to a block.
    fn transient(&self) -> &BTreeMap<String, Bytes>;
    /// The client's timestamp from the channel header (the same on every endorser).
    fn tx_timestamp(&self) -> Option<Timestamp>;
    fn signed_proposal(&self) -> Option<&SignedProposal>;
    /// Decorations (`ChaincodeInput.decorations`): what the endorsing peer adds to the
    /// input, as Fabric's decorator plugins do. Keys under `medfabric.` come only from
    /// the peer (`medfabric.roles`: the consortium's role grants, JSON role → MSP ids).
    fn decorations(&self) -> &BTreeMap<String, Bytes>;

    // ---- public state (primitives) ----------------------------------------------------

    /// Reads a key; the read (with its committed version) joins the read set. A key
    /// this transaction wrote reads back as written.
    fn get_state(&mut self, key: &str) -> ShimResult<Option<Bytes>>;
    /// Writes a key. An empty value deletes it, as in Fabric.
    fn put_state(&mut self, key: &str, value: Bytes) -> ShimResult<()>;
    fn del_state(&mut self, key: &str) -> ShimResult<()>;
    /// Keys in `[start, end)` (empty `end`: no upper bound), without argument checks:
    /// prefer [`ChaincodeStub::get_state_by_range`]. The range is re-checked at commit
    /// (phantom reads).
    fn query_range(&mut self, start: &str, end: &str) -> ShimResult<Vec<KeyValue>>;
    /// One page of `[start, end)` from `bookmark` on; for read-only transactions only
    /// (not re-checked at commit, so a transaction that writes may not use it).
    fn query_range_page(
        &mut self,
        start: &str,
        end: &str,
        page_size: u32,
        bookmark: &str,
    ) -> ShimResult<(Vec<KeyValue>, PageMetadata)>;
    /// Every committed value of a key, newest first (not re-checked at commit).
    fn get_history_for_key(&mut self, key: &str) -> ShimResult<Vec<KeyModification>>;
    /// Sets the transaction's chaincode event; the last call wins.
    fn set_event(&mut self, name: &str, payload: Bytes) -> ShimResult<()>;
    /// Sets a key-level endorsement policy (a serialized `SignaturePolicyEnvelope`);
    /// empty removes it.
    fn set_state_validation_parameter(&mut self, key: &str, policy: Bytes) -> ShimResult<()>;
    /// The key-level endorsement policy of a key (its read joins the read set).
    fn get_state_validation_parameter(&mut self, key: &str) -> ShimResult<Option<Bytes>>;
    /// Calls another chaincode on this channel: its reads and writes join this
    /// transaction. Other channels are not supported.
    fn invoke_chaincode(&mut self, name: &str, args: &[Bytes], channel: &str) -> ShimResult<Response>;

    // ---- provided: arguments and identity ---------------------------------------------

    /// The arguments as strings (invalid UTF-8 is replaced).
    fn string_args(&self) -> Vec<String> {
        self.args().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()
    }

    /// `(args[0], args[1..])` as strings.
    fn function_and_parameters(&self) -> (String, Vec<String>) {
        let mut args = self.string_args();
        if args.is_empty() {
            return (String::new(), Vec::new());
        }
        let function = args.remove(0);
        (function, args)
    }

    /// The creator as Fabric's `cid` package sees it: MSP id, certificate, attributes,
    /// OUs.
    fn client_identity(&self) -> ShimResult<ClientIdentity> {
        ClientIdentity::from_serialized(self.creator())
    }

    // ---- provided: state conveniences -------------------------------------------------

    /// Reads several keys; each read joins the read set.
    fn get_multiple_states(&mut self, keys: &[&str]) -> ShimResult<Vec<Option<Bytes>>> {
        keys.iter().map(|key| self.get_state(key)).collect()
    }

    /// Simple keys in `[start, end)`; an empty `start` means the first simple key, an
    /// empty `end` no upper bound. Composite keys are excluded.
    fn get_state_by_range(&mut self, start: &str, end: &str) -> ShimResult<Vec<KeyValue>> {
        let start = if start.is_empty() { EMPTY_KEY_SUBSTITUTE } else { start };
        composite::validate_simple_keys(&[start, end])?;
        self.query_range(start, end)
    }

    /// One page of simple keys; see [`ChaincodeStub::query_range_page`].
    fn get_state_by_range_with_pagination(
        &mut self,
        start: &str,
        end: &str,
        page_size: u32,
        bookmark: &str,
    ) -> ShimResult<(Vec<KeyValue>, PageMetadata)> {
        let start = if start.is_empty() { EMPTY_KEY_SUBSTITUTE } else { start };
        composite::validate_simple_keys(&[start, end])?;
        self.query_range_page(start, end, page_size, bookmark)
    }

    fn create_composite_key(&self, object_type: &str, attributes: &[&str]) -> ShimResult<String> {
        composite::create_composite_key(object_type, attributes)
    }

    fn split_composite_key(&self, key: &str) -> ShimResult<(String, Vec<String>)> {
        composite::split_composite_key(key)
    }

    /// Composite keys of `object_type` whose leading attributes are `attributes`.
    fn get_state_by_partial_composite_key(
        &mut self,
        object_type: &str,
        attributes: &[&str],
    ) -> ShimResult<Vec<KeyValue>> {
        let start = composite::create_composite_key(object_type, attributes)?;
        let end = format!("{start}{MAX_UNICODE_RUNE}");
        self.query_range(&start, &end)
    }

    fn get_state_by_partial_composite_key_with_pagination(
        &mut self,
        object_type: &str,
        attributes: &[&str],
        page_size: u32,
        bookmark: &str,
    ) -> ShimResult<(Vec<KeyValue>, PageMetadata)> {
        let start = composite::create_composite_key(object_type, attributes)?;
        let end = format!("{start}{MAX_UNICODE_RUNE}");
        self.query_range_page(&start, &end, page_size, bookmark)
    }

    // ---- private data (primitives) -----------------------------------------------------

    /// Reads a private key on a peer of a member organization; the read (of the key's
    /// hash, with its version) joins the read set. Fails on a peer that lacks the value
    /// the hashed state names (a non-member, or data not yet reconciled).
    fn get_private_data(&mut self, collection: &str, key: &str) -> ShimResult<Option<Bytes>>;
    /// The SHA-256 of a private value; works on every peer.
    fn get_private_data_hash(&mut self, collection: &str, key: &str) -> ShimResult<Option<Bytes>>;
    /// Writes a private key: the value goes peer to peer, only its hash into the block.
    /// An empty value deletes.
    fn put_private_data(&mut self, collection: &str, key: &str, value: Bytes) -> ShimResult<()>;
    fn del_private_data(&mut self, collection: &str, key: &str) -> ShimResult<()>;
    /// Deletes a private key and removes every earlier version of it from every member
    /// peer (Fabric 2.5's purge); the block keeps the hashed evidence.
    fn purge_private_data(&mut self, collection: &str, key: &str) -> ShimResult<()>;
    /// Private keys in `[start, end)` as this peer holds them (not re-checked at commit).
    fn get_private_data_by_range(
        &mut self,
        collection: &str,
        start: &str,
        end: &str,
    ) -> ShimResult<Vec<KeyValue>>;
    fn set_private_data_validation_parameter(
        &mut self,
        collection: &str,
        key: &str,
        policy: Bytes,
    ) -> ShimResult<()>;
    fn get_private_data_validation_parameter(
        &mut self,
        collection: &str,
        key: &str,
    ) -> ShimResult<Option<Bytes>>;

    // ---- provided: private data conveniences ---------------------------------------------

    /// Reads several private keys.
    fn get_multiple_private_data(
        &mut self,
        collection: &str,
        keys: &[&str],
    ) -> ShimResult<Vec<Option<Bytes>>> {
        keys.iter().map(|key| self.get_private_data(collection, key)).collect()
    }

    /// Private composite keys of `object_type` whose leading attributes are `attributes`.
    fn get_private_data_by_partial_composite_key(
        &mut self,
        collection: &str,
        object_type: &str,
        attributes: &[&str],
    ) -> ShimResult<Vec<KeyValue>> {
        let start = composite::create_composite_key(object_type, attributes)?;
        let end = format!("{start}{MAX_UNICODE_RUNE}");
        self.get_private_data_by_range(collection, &start, &end)
    }
}
