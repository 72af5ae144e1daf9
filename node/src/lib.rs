//! What medfabric's server processes (peer, orderer) share: the operations HTTP endpoint
//! (`/healthz`, Prometheus `/metrics`) and the Deliver seek loop that streams blocks from
//! a block store, and [`tls`]: the client-facing port's TLS, trusting the TLS CAs of the
//! current channel config.

pub mod deliver;
pub mod ops;
pub mod tls;
