//! ECDSA P-256 over SHA-256, DER-encoded, low-S: Fabric's only signature scheme here.
//! The arithmetic runs on `ring` (about 3x faster than the `p256` crate on this machine);
//! `p256` parses keys and enforces low-S, which `ring` neither produces nor checks.

use std::path::Path;
use std::sync::Arc;

use p256::elliptic_curve::scalar::IsHigh;
use p256::pkcs8::DecodePrivateKey;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};

use crate::cert::Certificate;
use crate::error::{MspError, SignatureError};
use crate::folder::read_dir_files;

/// Verifies an application-level signature (a person's over a document, not a
/// transaction): a DER ECDSA P-256 signature over SHA-256(`message`), in either S form
/// (signers such as Node's `crypto.sign` do not normalise S; nothing here keys on the
/// signature bytes, so malleability does not matter).
pub fn verify_document_signature(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let parsed = p256::ecdsa::Signature::from_der(signature).map_err(|_| SignatureError::Malformed)?;
    let low = parsed.normalize_s();
    verify_signature(public_key, message, low.to_der().as_bytes())
}

/// Verifies a DER ECDSA signature over SHA-256(`message`) with an uncompressed SEC1
/// P-256 public key. High-S signatures are rejected, as Fabric does.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    // Like Go's asn1.Unmarshal in Fabric, bytes after the DER SEQUENCE are ignored.
    let signature =
        crate::der::read_tlv(signature).map(|(tlv, _)| tlv.raw).ok_or(SignatureError::Malformed)?;
    let parsed = p256::ecdsa::Signature::from_der(signature).map_err(|_| SignatureError::Malformed)?;
    if bool::from(parsed.s().is_high()) {
        return Err(SignatureError::HighS);
    }
    if public_key.len() != 65 || public_key[0] != 0x04 {
        return Err(SignatureError::BadPublicKey);
    }
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(message, signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// A P-256 private key that produces Fabric-compatible (DER, low-S) signatures.
pub struct Signer {
    key_pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads a PEM private key: PKCS#8 (`PRIVATE KEY`, Fabric's `priv_sk`) or SEC1
    /// (`EC PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, MspError> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
            .map_err(|e| MspError::BadPrivateKey(e.to_string()))?;
        Self::from_secret(&secret)
    }

    /// Wraps a `p256` secret key.
    pub fn from_secret(secret: &p256::SecretKey) -> Result<Self, MspError> {
        let public = secret.public_key().to_sec1_bytes();
        let scalar = secret.to_bytes();
        let rng = SystemRandom::new();
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            scalar.as_slice(),
            &public,
            &rng,
        )
        .map_err(|e| MspError::BadPrivateKey(e.to_string()))?;
        Ok(Self { key_pair, rng })
    }

    /// The uncompressed SEC1 public key.
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.key_pair.public_key().as_ref()
    }

    /// Signs SHA-256(`message`); the result is DER with S normalised to the low half.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature = self
            .key_pair
            .sign(&self.rng, message)
            .expect("ring ECDSA signing fails only when the system RNG fails");
        to_low_s(signature.as_ref())
    }
}

/// Re-encodes a DER ECDSA signature with S in the low half of the curve order.
fn to_low_s(der: &[u8]) -> Vec<u8> {
    match p256::ecdsa::Signature::from_der(der) {
        Ok(sig) => sig.normalize_s().to_der().as_bytes().to_vec(),
        Err(_) => der.to_vec(),
    }
}

/// A local identity able to sign: its MSP id, certificate and key. This is what a
/// client, peer or orderer loads from its own MSP folder (`signcerts`, `keystore`).
#[derive(Debug, Clone)]
pub struct SigningIdentity {
    msp_id: String,
    certificate_pem: Vec<u8>,
    serialized: bytes::Bytes,
    signer: Arc<Signer>,
}

impl SigningIdentity {
    /// Builds an identity from a PEM certificate and the PEM private key it belongs to.
    pub fn new(msp_id: &str, certificate_pem: &[u8], key_pem: &str) -> Result<Self, MspError> {
        let signer = Signer::from_pem(key_pem)?;
        let certificate = Certificate::from_pem(certificate_pem)?;
        if certificate.public_key() != signer.public_key() {
            return Err(MspError::BadPrivateKey("private key does not match the certificate".into()));
        }
        let serialized = serialize_identity(msp_id, certificate_pem);
        Ok(Self {
            msp_id: msp_id.to_owned(),
            certificate_pem: certificate_pem.to_vec(),
            serialized: serialized.into(),
            signer: Arc::new(signer),
        })
    }

    /// Loads `signcerts/*` and `keystore/*` from a Fabric MSP folder.
    pub fn from_msp_dir(dir: &Path, msp_id: &str) -> Result<Self, MspError> {
        let certs = read_dir_files(&dir.join("signcerts"))?;
        let keys = read_dir_files(&dir.join("keystore"))?;
        let (cert_path, cert) = certs.first().ok_or_else(|| MspError::Folder {
            path: dir.join("signcerts").display().to_string(),
            why: "no certificate".into(),
        })?;
        // The keystore may hold several keys (Fabric CA leaves old ones after reenroll);
        // pick the one that matches the certificate.
        let mut last_err = MspError::Folder {
            path: dir.join("keystore").display().to_string(),
            why: "no private key".into(),
        };
        for (_, key) in &keys {
            match Self::new(msp_id, cert, &String::from_utf8_lossy(key)) {
                Ok(identity) => return Ok(identity),
                Err(e) => last_err = e,
            }
        }
        let _ = cert_path;
        Err(last_err)
    }

    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    pub fn certificate_pem(&self) -> &[u8] {
        &self.certificate_pem
    }

    /// The marshaled `msp.SerializedIdentity` (the `creator` of headers).
    pub fn serialized(&self) -> &bytes::Bytes {
        &self.serialized
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signer.sign(message)
    }

    pub fn public_key(&self) -> &[u8] {
        self.signer.public_key()
    }
}

/// Marshals `msp.SerializedIdentity{mspid, id_bytes}`.
pub fn serialize_identity(msp_id: &str, certificate_pem: &[u8]) -> Vec<u8> {
    use prost::Message;
    medfabric_proto::msp::SerializedIdentity {
        mspid: msp_id.to_owned(),
        id_bytes: certificate_pem.to_vec().into(),
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::Generate;

    fn signer() -> Signer {
        Signer::from_secret(&p256::SecretKey::generate()).expect("fresh key loads")
    }

    /// Flips S to N - S, producing the high-S twin of a valid signature.
    fn high_s_twin(der: &[u8]) -> Vec<u8> {
        let sig = p256::ecdsa::Signature::from_der(der).expect("der");
        let (r, s) = sig.split_scalars();
        let flipped = -*s.as_ref();
        p256::ecdsa::Signature::from_scalars(r.to_bytes(), flipped.to_bytes())
            .expect("valid scalars")
            .to_der()
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn signatures_are_low_s_and_verify() {
        let signer = signer();
        for i in 0..64u8 {
            let msg = [i; 40];
            let sig = signer.sign(&msg);
            let parsed = p256::ecdsa::Signature::from_der(&sig).expect("der");
            assert!(!bool::from(parsed.s().is_high()), "signature {i} is high-S");
            verify_signature(signer.public_key(), &msg, &sig).expect("verifies");
        }
    }

    #[test]
    fn high_s_twin_is_rejected() {
        let signer = signer();
        let sig = signer.sign(b"message");
        let twin = high_s_twin(&sig);
        assert_ne!(twin, sig);
        assert_eq!(verify_signature(signer.public_key(), b"message", &twin), Err(SignatureError::HighS));
    }

    #[test]
    fn wrong_key_and_wrong_message_are_rejected() {
        let a = signer();
        let b = signer();
        let sig = a.sign(b"message");
        assert_eq!(verify_signature(b.public_key(), b"message", &sig), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature(a.public_key(), b"messagf", &sig), Err(SignatureError::Mismatch));
        assert_eq!(
            verify_signature(a.public_key(), b"message", &sig[..sig.len() - 1]),
            Err(SignatureError::Malformed)
        );
        let mut trailing = sig.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(
            verify_signature(a.public_key(), b"message", &trailing),
            Ok(()),
            "Fabric ignores trailing bytes"
        );
    }
}
