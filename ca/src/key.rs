use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::Generate;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

use crate::authority::CaError;

/// A P-256 key pair that rcgen can sign with. Signatures are DER and low-S, like
/// Fabric's BCCSP produces.
#[derive(Clone)]
pub struct KeyPair {
    secret: p256::SecretKey,
    public_sec1: Vec<u8>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").field("public", &self.public_sec1).finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh key from the operating system's RNG.
    pub fn generate() -> Self {
        Self::from_secret(p256::SecretKey::generate())
    }

    pub fn from_secret(secret: p256::SecretKey) -> Self {
        let public_sec1 = secret.public_key().to_sec1_bytes().to_vec();
        Self { secret, public_sec1 }
    }

    /// Reads a PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, CaError> {
        let secret = p256::SecretKey::from_pkcs8_pem(pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
            .map_err(|e| CaError::Key(e.to_string()))?;
        Ok(Self::from_secret(secret))
    }

    /// PKCS#8 PEM, the format of Fabric's `keystore/priv_sk`.
    pub fn to_pkcs8_pem(&self) -> String {
        self.secret.to_pkcs8_pem(LineEnding::LF).expect("a valid P-256 key always encodes").to_string()
    }

    /// Uncompressed SEC1 public point.
    pub fn public_key_sec1(&self) -> &[u8] {
        &self.public_sec1
    }

    pub fn secret(&self) -> &p256::SecretKey {
        &self.secret
    }
}

impl rcgen::PublicKeyData for KeyPair {
    fn der_bytes(&self) -> &[u8] {
        &self.public_sec1
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for KeyPair {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let key = p256::ecdsa::SigningKey::from(&self.secret);
        let signature: p256::ecdsa::Signature = key.sign(msg);
        Ok(signature.normalize_s().to_der().as_bytes().to_vec())
    }
}

/// A public key only, for certificates whose private key the CA never sees (CSRs).
#[derive(Debug, Clone)]
pub(crate) struct PublicKey(pub(crate) Vec<u8>);

impl rcgen::PublicKeyData for PublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}
