//! The `medfabric` command's subcommands that are more than a call and a print: the CA
//! commands, the channel config commands, the medical commands and the offline ledger
//! tools. Argument parsing is in
//! `main.rs`.

pub mod ca;
pub mod channel;
pub mod ledger;
pub mod medical;
