//! What medfabric's server processes (peer, orderer) and its clients share: TLS on
//! gRPC links, the operations HTTP endpoint (`/healthz`, Prometheus `/metrics`), and the
//! Deliver seek loop that streams blocks from a block store.

pub mod deliver;
pub mod ops;
pub mod tls;
