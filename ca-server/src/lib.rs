//! A Fabric-CA-compatible certificate authority server: the REST API of Fabric CA 1.5
//! under `/api/v1/` (`reference/fabric.md` §1.16, `reference/fabric-ca-behaviour.md`),
//! issuing through `medfabric-ca`, with its registry on disk.

pub mod api;
pub mod authority;
pub mod base64;
pub mod client;
pub mod http;
pub mod registry;
pub mod tls;

pub use api::{ApiError, CaConfig, CaService, CaTls, SeedIdentity};
