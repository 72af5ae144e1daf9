//! Peer integration tests: Fabric conformance, validator cases, endorser behaviour,
//! crash consistency of the committing process.

mod conformance;
mod crash;
mod endorser;
mod private;
mod support;
mod validator;
