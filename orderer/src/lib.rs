//! The medfabric ordering service.
pub mod cutter;
pub mod node;
pub mod raft;
