//! Ordering-service tests with `medfabric-orderer` processes on loopback.

mod cluster;
mod sim;
mod single;
mod support;
