//! Connecting the SDK to a network started by `medfabric network up`: a user's identity
//! and TLS material from the network directory, and a peer's address and TLS CA.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use medfabric_config::tls::ClientTls;

use crate::up::{NetworkStatus, NodeStatus, UserStatus};
use medfabric_sdk::Gateway;

/// The user (`name` or `name@MSP`) and the peer it connects to: `peer` by name, else
/// the first peer of the user's organization.
pub fn pick<'a>(
    status: &'a NetworkStatus,
    user: &str,
    peer: Option<&str>,
) -> Result<(&'a UserStatus, &'a NodeStatus)> {
    let user = status.user(user).with_context(|| {
        let known: Vec<String> = status.users.iter().map(|u| format!("{}@{}", u.name, u.org)).collect();
        format!("no user {user:?} in the network; known: {}", known.join(", "))
    })?;
    let peer = match peer {
        Some(name) => status.node(name).with_context(|| format!("no node {name:?} in the network"))?,
        None => {
            status.peer_of(&user.org).with_context(|| format!("no peer of {} in the network", user.org))?
        }
    };
    Ok((user, peer))
}

/// A gateway connection as `user` to `peer`, with mutual TLS when the peer has TLS.
pub fn gateway(user: &UserStatus, peer: &NodeStatus) -> Result<Gateway> {
    let signer = Gateway::identity(&user.msp_dir, &user.org)?;
    let tls = match &peer.tls_ca_file {
        Some(ca) => Some(ClientTls::from_files(
            std::slice::from_ref(ca),
            Some((user.tls_cert_file.as_path(), user.tls_key_file.as_path())),
        )?),
        None => None,
    };
    Gateway::connect(&peer.address, tls.as_ref(), signer)
}

/// Connects as `user` in the network at `data` (see [`pick`]).
pub fn connect(data: &Path, user: &str, peer: Option<&str>) -> Result<(Gateway, NetworkStatus)> {
    let status = crate::up::status(data)?;
    let (user, node) = pick(&status, user, peer)?;
    let gateway = gateway(user, node)?;
    Ok((gateway, status))
}

/// A shared identity handle, for code that signs itself.
pub fn identity(user: &UserStatus) -> Result<Arc<medfabric_msp::SigningIdentity>> {
    Gateway::identity(&user.msp_dir, &user.org)
}

/// A user's certificate public key (uncompressed SEC1), for naming them as a reader.
pub fn public_key_of_user(user: &UserStatus) -> Result<Vec<u8>> {
    let pem =
        std::fs::read(&user.cert_file).with_context(|| format!("reading {}", user.cert_file.display()))?;
    medfabric_sdk::records::public_key_of_pem(&pem)
}
