//! medfabric's chaincode API.
//!
//! A chaincode implements [`Chaincode`] and talks to the ledger through a
//! [`ChaincodeStub`], whose methods are those of Fabric's `ChaincodeStubInterface`:
//! arguments and proposal context, public state with versions, range and
//! composite-key queries, history, events, key-level endorsement policies and calls to
//! other chaincodes. [`Router`] maps `args[0]` to typed handlers, [`ClientIdentity`]
//! reads the creator like Fabric's `cid` package, and [`MockStub`] runs chaincode
//! against an in-memory ledger so it can be unit-tested without a peer.
//!
//! The peer runs the same [`tx::TxStub`] over a snapshot of its RocksDB state and turns
//! the resulting [`TxRecord`] into a canonical read-write set, so what a chaincode does
//! in a unit test is what it does on a peer.

mod composite;
mod error;
mod identity;
mod memory;
mod router;
pub mod statebased;
mod stub;
pub mod tx;

pub use composite::{COMPOSITE_KEY_NAMESPACE, MAX_UNICODE_RUNE, create_composite_key, split_composite_key};
pub use error::{ShimError, ShimResult};
pub use identity::ClientIdentity;
pub use medfabric_msp::{NodeRole, verify_document_signature};
pub use memory::{MemoryState, MockOutcome, MockStub};
pub use router::{ArgsError, ContractError, Router, decode_args};
pub use stub::{
    Chaincode, ChaincodeStub, EMPTY_KEY_SUBSTITUTE, ERROR, ERROR_THRESHOLD, KeyValue, OK, PageMetadata,
    error, success,
};
pub use tx::{
    Access, CollectionRules, PrivateRecord, PrivateWrite, StateView, TxContext, TxRecord,
    VALIDATION_PARAMETER, Version, VersionedValue,
};
