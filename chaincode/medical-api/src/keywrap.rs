//! Record encryption (`docs/medical.md`, "Envelope encryption", envelope encryption), in one place for
//! the client that writes and reads records and for the chaincode that releases keys:
//!
//! - each record version gets a fresh 256-bit data key; the payload is sealed with
//!   AES-256-GCM under a random 96-bit nonce, with the record id, version and patient
//!   bound as associated data;
//! - the ledger gets a keyed commitment: HMAC-SHA256 of the ciphertext under the data
//!   key (unlinkable once the key is shredded, unlike a plain hash of guessable data);
//! - the data key is wrapped with HPKE base mode (RFC 9180: DHKEM(P-256, HKDF-SHA256),
//!   HKDF-SHA256, AES-256-GCM) to a P-256 public key, with the record id and version in
//!   HPKE `info`. At write time only two wraps exist: to the patient's registered key and
//!   to the custodian organization's record key, which only the custodian's peers hold.
//!   A grantee's wrap is made by the custodian's peer inside `read_record`, under a live
//!   grant, to the key of the grantee's certificate.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::Mac;
use hpke::{Deserializable, Serializable};

type Kem = hpke::kem::DhP256HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::AesGcm256;

const NONCE_BYTES: usize = 12;
/// Labels of the data key's subkeys.
const ENCRYPTION: &str = "medfabric-record-encryption-v1";
const COMMITMENT: &str = "medfabric-record-commitment-v1";
/// An uncompressed P-256 point (HPKE's encapsulated key).
const ENCAPPED_BYTES: usize = 65;

/// Why a seal, open, wrap or unwrap failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

fn error(why: impl Into<String>) -> KeyError {
    KeyError(why.into())
}

/// A record version's data key.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| error(format!("OS random source: {e}")))?;
        Ok(Self(key))
    }

    /// A subkey for one use (HKDF-Expand with SHA-256, one block): the cipher and the
    /// commitment never share a key.
    fn subkey(&self, label: &str) -> [u8; 32] {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.update(&[1]);
        mac.finalize().into_bytes().into()
    }
}

/// What binds a ciphertext to its place: record, version, patient.
pub fn associated_data(record_id: &str, version: u32, patient_id: &str) -> Vec<u8> {
    format!("medfabric-record-v1\0{record_id}\0{version}\0{patient_id}").into_bytes()
}

fn wrap_info(record_id: &str, version: u32) -> Vec<u8> {
    format!("medfabric-record-key-v1\0{record_id}\0{version}").into_bytes()
}

/// Seals `plaintext`: nonce ‖ AES-256-GCM ciphertext and tag.
pub fn seal(key: &DataKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    let cipher =
        Aes256Gcm::new_from_slice(&key.subkey(ENCRYPTION)).map_err(|e| error(format!("data key: {e}")))?;
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| error(format!("OS random source: {e}")))?;
    let nonce_array = Nonce::from(nonce);
    let sealed = cipher
        .encrypt(&nonce_array, Payload { msg: plaintext, aad })
        .map_err(|_| error("AES-GCM encryption failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens what [`seal`] produced; fails if anything (ciphertext or context) changed.
pub fn open(key: &DataKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
    if sealed.len() < NONCE_BYTES + 16 {
        return Err(error("ciphertext too short"));
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    let cipher =
        Aes256Gcm::new_from_slice(&key.subkey(ENCRYPTION)).map_err(|e| error(format!("data key: {e}")))?;
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| error("nonce length"))?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: body, aad })
        .map_err(|_| error("decryption failed: wrong key, or the ciphertext or its context was altered"))
}

/// The keyed commitment of a ciphertext: HMAC-SHA256 under the data key, hex.
pub fn commitment(key: &DataKey, ciphertext: &[u8]) -> String {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key.subkey(COMMITMENT))
        .expect("HMAC takes any key length");
    mac.update(ciphertext);
    hex::encode(mac.finalize().into_bytes())
}

/// Wraps `key` for the holder of `public_key` (uncompressed SEC1 P-256): encapsulated
/// key ‖ sealed data key.
pub fn wrap(key: &DataKey, public_key: &[u8], record_id: &str, version: u32) -> Result<Vec<u8>, KeyError> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(public_key)
        .map_err(|e| error(format!("the reader's public key: {e:?}")))?;
    let (encapped, sealed) = hpke::single_shot_seal::<HpkeAead, Kdf, Kem>(
        &hpke::OpModeS::Base,
        &recipient,
        &wrap_info(record_id, version),
        &key.0,
        b"",
    )
    .map_err(|e| error(format!("HPKE seal: {e:?}")))?;
    let mut out = encapped.to_bytes().to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Unwraps a data key with the holder's private key (the 32-byte P-256 scalar).
pub fn unwrap(
    wrapped: &[u8],
    private_key: &[u8],
    record_id: &str,
    version: u32,
) -> Result<DataKey, KeyError> {
    if wrapped.len() <= ENCAPPED_BYTES {
        return Err(error("wrapped key too short"));
    }
    let (encapped, sealed) = wrapped.split_at(ENCAPPED_BYTES);
    let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped)
        .map_err(|e| error(format!("wrapped key: {e:?}")))?;
    let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(private_key)
        .map_err(|e| error(format!("private key: {e:?}")))?;
    let key = hpke::single_shot_open::<HpkeAead, Kdf, Kem>(
        &hpke::OpModeR::Base,
        &secret,
        &encapped,
        &wrap_info(record_id, version),
        sealed,
        b"",
    )
    .map_err(|_| error("the wrapped key does not open with this key"))?;
    let key: [u8; 32] = key.as_slice().try_into().map_err(|_| error("wrapped key has the wrong length"))?;
    Ok(DataKey(key))
}

/// The public key (uncompressed SEC1) of a 32-byte P-256 private scalar.
pub fn public_key_of(private_key: &[u8]) -> Result<Vec<u8>, KeyError> {
    let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(private_key)
        .map_err(|e| error(format!("private key: {e:?}")))?;
    Ok(<Kem as hpke::Kem>::sk_to_pk(&secret).to_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keypair() -> (Vec<u8>, Vec<u8>) {
        let key = medfabric_ca::KeyPair::generate();
        (key.secret().to_bytes().to_vec(), key.public_key_sec1().to_vec())
    }

    #[test]
    fn a_record_round_trips_and_any_change_is_detected() {
        let key = DataKey::generate().expect("key");
        let aad = associated_data("rec-1", 1, "HospitalMSP/patient1");
        let sealed = seal(&key, b"HbA1c 6.1%", &aad).expect("seal");
        assert_eq!(open(&key, &sealed, &aad).expect("open"), b"HbA1c 6.1%");
        assert!(!sealed.windows(10).any(|w| w == b"HbA1c 6.1%"), "no plaintext in the ciphertext");
        let other = associated_data("rec-1", 2, "HospitalMSP/patient1");
        assert!(open(&key, &sealed, &other).is_err(), "another version's context");
        let mut tampered = sealed.clone();
        *tampered.last_mut().expect("byte") ^= 1;
        assert!(open(&key, &tampered, &aad).is_err(), "a changed byte");
        assert!(open(&DataKey::generate().expect("key"), &sealed, &aad).is_err(), "another key");
        // The commitment is keyed: same ciphertext, other key, other commitment.
        assert_ne!(commitment(&key, &sealed), commitment(&DataKey::generate().expect("key"), &sealed));
        assert_eq!(commitment(&key, &sealed).len(), 64);
    }

    #[test]
    fn wrapped_keys_open_only_for_their_holder_and_record() {
        let key = DataKey::generate().expect("key");
        let (alice, alice_public) = keypair();
        let (bob, _) = keypair();
        assert_eq!(public_key_of(&alice).expect("public"), alice_public);
        let wrapped = wrap(&key, &alice_public, "rec-1", 1).expect("wrap");
        assert_eq!(unwrap(&wrapped, &alice, "rec-1", 1).expect("unwrap"), key);
        assert!(unwrap(&wrapped, &bob, "rec-1", 1).is_err(), "another holder");
        assert!(unwrap(&wrapped, &alice, "rec-2", 1).is_err(), "another record");
        assert!(unwrap(&wrapped, &alice, "rec-1", 2).is_err(), "another version");
        assert!(wrap(&key, b"not a key", "rec-1", 1).is_err());
        assert!(unwrap(&wrapped[..40], &alice, "rec-1", 1).is_err(), "truncated");
    }
}
