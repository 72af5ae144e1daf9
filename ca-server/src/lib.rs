//! A Fabric-CA-compatible certificate authority server: the REST API of Fabric CA 1.5
//! under `/api/v1/` (`docs/fabric-ca.md`),
//! issuing through `medfabric-ca`, with its registry on disk.

pub mod api;
pub mod authority;
pub mod base64;
pub mod http;
pub mod registry;
pub mod tls;

pub use api::{ApiError, CaConfig, CaService, CaTls, SeedIdentity};
