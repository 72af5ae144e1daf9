//! medfabric's client side: the operator and auditor tooling behind the `medfabric`
//! CLI. [`network`] generates a network (crypto material, MSP folders, node configs and
//! the channel genesis block) from a YAML topology; [`ledger`] inspects and verifies
//! block files offline; [`bench`] holds micro-benchmarks.

pub mod bench;
pub mod ca_cli;
pub mod connect;
pub mod demo;
pub mod ledger;
pub mod load;
pub mod medical;
pub mod medical_bench;
pub mod medical_cli;
pub mod medical_demo;
pub mod network;
pub mod records;
pub mod sdk;
pub mod up;
