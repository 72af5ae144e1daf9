//! Answers sealed to a caller's one-time response key (sent in the transient map, which
//! never lands in a block): `{"nonce", "sealed"}`, hex, AES-256-GCM with associated data
//! naming what the answer is (`medfabric-read-v1 \0 record_id`,
//! `medfabric-audit-v1 \0 function`). Should the call be submitted instead of evaluated,
//! its block holds only ciphertext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use serde_json::Value;

/// `value` sealed to `key` (32 bytes) with a random nonce: `{"nonce", "sealed"}` (hex).
///
/// The nonce is random: the same proposal evaluated twice may seal two different
/// plaintexts (a key re-wrap is randomised), which a nonce derived from the proposal
/// would put under one nonce. Sealed answers come from evaluates: endorsers need not agree.
pub fn seal(key: &[u8], aad: &str, value: &Value) -> Result<Value, String> {
    let cipher =
        aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|_| "a response key is 32 bytes".to_owned())?;
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).map_err(|e| format!("OS random source: {e}"))?;
    let plaintext = serde_json::to_vec(value).map_err(|e| format!("encoding the answer: {e}"))?;
    let sealed = cipher
        .encrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: &plaintext, aad: aad.as_bytes() })
        .map_err(|_| "sealing the answer failed".to_owned())?;
    Ok(serde_json::json!({"nonce": hex::encode(nonce), "sealed": hex::encode(sealed)}))
}

/// Opens what [`seal`] made with the same key and associated data.
pub fn open(key: &[u8; 32], aad: &str, sealed: &Value) -> Result<Value, String> {
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = sealed[name].as_str().ok_or_else(|| format!("the answer has no {name}: {sealed}"))?;
        hex::decode(text).map_err(|e| format!("{name} hex: {e}"))
    };
    let nonce: [u8; 12] =
        field("nonce")?.try_into().map_err(|_| "the answer's nonce is not 12 bytes".to_owned())?;
    let plaintext = aes_gcm::Aes256Gcm::new_from_slice(key)
        .map_err(|e| format!("response key: {e}"))?
        .decrypt(&aes_gcm::Nonce::from(nonce), Payload { msg: &field("sealed")?, aad: aad.as_bytes() })
        .map_err(|_| "the answer does not open with this request's response key".to_owned())?;
    serde_json::from_slice(&plaintext).map_err(|e| format!("the sealed answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_opens_only_with_its_key_and_associated_data() {
        let key = [7u8; 32];
        let answer = serde_json::json!({"record_id": "r1", "version": 2});
        let sealed = seal(&key, "medfabric-read-v1\0r1", &answer).expect("seals");
        assert_eq!(open(&key, "medfabric-read-v1\0r1", &sealed).expect("opens"), answer);
        assert!(open(&[8u8; 32], "medfabric-read-v1\0r1", &sealed).is_err());
        assert!(open(&key, "medfabric-read-v1\0r2", &sealed).is_err());
        assert_ne!(
            seal(&key, "a", &answer).expect("seals")["nonce"],
            seal(&key, "a", &answer).expect("seals")["nonce"]
        );
    }
}
