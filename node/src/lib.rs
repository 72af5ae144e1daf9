//! What medfabric's server processes (peer, orderer) share: the operations HTTP endpoint
//! (`/healthz`, Prometheus `/metrics`) and the Deliver seek loop that streams blocks from
//! a block store. TLS on gRPC links is `medfabric-config`'s.

pub mod deliver;
pub mod ops;
