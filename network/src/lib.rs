//! Local networks: [`generate`] turns a YAML topology into crypto material, MSP folders,
//! node configs and the channel's genesis block; [`up`] starts, stops and reports the
//! nodes of a generated network as processes; [`connect`] builds an SDK gateway for one of
//! its users.

pub mod connect;
pub mod generate;
pub mod up;

pub use generate::{Topology, generate};
