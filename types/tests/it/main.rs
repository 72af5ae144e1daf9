//! Integration tests of medfabric-types: conformance with a real Fabric 2.5 chain.

mod fabric_conformance;
mod roundtrip;
mod support;
