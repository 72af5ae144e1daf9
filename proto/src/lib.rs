//! Fabric 2.5 wire types, generated from our own `.proto` files under `proto/`.
//!
//! Package names, message names, field numbers and gRPC service paths are those of
//! Hyperledger Fabric 2.5 (`common`, `msp`, `protos`, `rwset`, `kvrwset`, `queryresult`,
//! `orderer`, `etcdraft`, `gateway`, `lifecycle`), so real Fabric clients and blocks
//! interoperate byte for byte. medfabric's own messages live under `medfabric.*`.
//!
//! Generated types stop at the boundary: the `medfabric-types` crate converts them into
//! validated domain types. Byte fields are `bytes::Bytes` (zero-copy on decode) and maps
//! are `BTreeMap` (deterministic encoding).

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod common {
    tonic::include_proto!("common");
}
pub mod msp {
    tonic::include_proto!("msp");
}
pub mod protos {
    tonic::include_proto!("protos");
}
pub mod rwset {
    tonic::include_proto!("rwset");
}
pub mod kvrwset {
    tonic::include_proto!("kvrwset");
}
pub mod queryresult {
    tonic::include_proto!("queryresult");
}
pub mod orderer {
    tonic::include_proto!("orderer");
}
pub mod etcdraft {
    tonic::include_proto!("etcdraft");
}
pub mod gateway {
    tonic::include_proto!("gateway");
}
pub mod lifecycle {
    tonic::include_proto!("lifecycle");
}
pub mod medfabric {
    pub mod config {
        tonic::include_proto!("medfabric.config");
    }
    pub mod orderer {
        tonic::include_proto!("medfabric.orderer");
    }
    pub mod pvt {
        tonic::include_proto!("medfabric.pvt");
    }
}

pub mod gateway_status;

pub use prost::Message;
pub use prost_types::Timestamp;
