//! End-to-end tests of the `medfabric` binary.

mod generate;
mod ledger_tools;
mod support;
