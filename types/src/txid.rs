//! Fabric's transaction id rule: `hex(SHA-256(nonce ‖ creator))`.

use sha2::{Digest, Sha256};

/// Nonce length Fabric uses (`common/crypto.NonceSize`).
pub const NONCE_BYTES: usize = 24;

/// Lowercase hex SHA-256 of `nonce ‖ creator` (creator = marshaled SerializedIdentity).
pub fn compute_tx_id(nonce: &[u8], creator: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(creator);
    hex::encode(hasher.finalize())
}

/// 24 bytes from the operating system's CSPRNG.
pub fn new_nonce() -> [u8; NONCE_BYTES] {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).expect("the OS random source is available");
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_id_is_lowercase_hex_of_nonce_then_creator() {
        let id = compute_tx_id(b"nonce", b"creator");
        assert_eq!(id, hex::encode(Sha256::digest(b"noncecreator")));
        assert_eq!(id.len(), 64);
        assert_ne!(id, compute_tx_id(b"creator", b"nonce"));
    }
}
