//! Local networks: [`topology`] is the YAML topology file; [`generate`] turns it into crypto material, MSP folders,
//! node configs and the channel's genesis block; [`up`] starts, stops and reports the
//! nodes of a generated network as processes; [`connect`] builds an SDK gateway for one of
//! its users; [`org`] makes one organization alone and its public definition.

pub mod connect;
pub mod generate;
pub mod org;
pub mod topology;
pub mod up;

pub use generate::generate;
pub use topology::Topology;
