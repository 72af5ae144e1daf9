//! Benchmarks and demos: [`bench`] holds micro-benchmarks (commit, order, MSP), [`load`]
//! and [`medical_bench`] drive a running network, [`demo`] and [`medical_demo`] tell a
//! story against one.

pub mod bench;
pub mod demo;
pub mod load;
pub mod medical_bench;
pub mod medical_demo;
