//! Integration tests of medfabric-msp through its public API.

mod fabric_folders;
mod identities;
mod policies;
