//! The medfabric peer: a RocksDB ledger ([`ledger`]), transaction simulation over the
//! chaincode shim ([`simulator`]), the endorser ([`endorser`]), the sans-IO block
//! validator ([`validator`]) and the committer that ties validation to the ledger
//! ([`channel`]). Blocks reach the committer through a [`source::BlockSource`];
//! [`node`] runs it all as a process.

pub mod channel;
pub mod deliver;
pub mod endorser;
pub mod gateway;
pub mod intake;
pub mod ledger;
pub mod metrics;
pub mod node;
pub mod plan;
pub mod pvtdata;
pub mod pvtnet;
pub mod replay;
pub mod simulator;
pub mod source;
pub mod testnet;
pub mod validator;

pub use channel::{Channel, CommitError, CommitEvent};
pub use ledger::{ChannelLedger, Store};
