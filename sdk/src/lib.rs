//! The Rust client SDK of medfabric. An application depends on this crate alone: it
//! builds no peer, orderer, CA server, RocksDB or openraft.
//!
//! - [`gateway`]: Fabric Gateway's client flow (evaluate, endorse, submit, commit status,
//!   chaincode and block events) and offline signing, re-exported at the crate root.
//! - [`ca`]: the REST client of a Fabric-CA-compatible CA (enroll, register, revoke, MSP
//!   folders).
//! - [`http`]: the one HTTP client (HTTPS to a CA, nodes' operations endpoints).
//! - [`orderer`]: an ordering node's Broadcast and Deliver (config updates, config blocks).
//! - [`records`]: client-side record encryption (AES-256-GCM data keys, HPKE wraps).
//! - [`medical`]: the medical chaincode from a client, with encryption done here.

pub mod ca;
pub mod gateway;
pub mod http;
pub mod medical;
pub mod orderer;
pub mod records;

pub use gateway::*;
pub use medfabric_config::tls::ClientTls;
