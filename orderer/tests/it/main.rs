//! Ordering-service tests with `medfabric-orderer` processes on loopback.

mod cluster;
mod single;
mod support;
