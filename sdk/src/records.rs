//! Client-side record encryption: the scheme is [`medfabric_medical_api::keywrap`] (one home
//! for the client and the chaincode that releases keys); here are the parts that touch a
//! client's files — its private key from an MSP folder, a public key from a certificate.
//!
//! Nothing here touches the network: the SDK passes ciphertext and the two wrapped keys
//! (the patient's and the custodian's record key) to the chaincode in the transient map.

use anyhow::{Context, Result, anyhow, bail};
pub use medfabric_medical_api::keywrap::{DataKey, KeyError, associated_data, commitment, open, seal, wrap};
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::DecodePrivateKey;

/// Unwraps a data key with the reader's private key.
pub fn unwrap(
    wrapped: &[u8],
    private_key: &p256::SecretKey,
    record_id: &str,
    version: u32,
) -> Result<DataKey> {
    Ok(medfabric_medical_api::keywrap::unwrap(wrapped, &private_key.to_bytes(), record_id, version)?)
}

/// The private key of an MSP folder (`keystore/*`, PKCS#8 PEM) that matches its
/// certificate, for unwrapping.
pub fn private_key_of(msp_dir: &std::path::Path) -> Result<p256::SecretKey> {
    let certificate = std::fs::read_dir(msp_dir.join("signcerts"))
        .with_context(|| format!("reading {}", msp_dir.join("signcerts").display()))?
        .flatten()
        .find_map(|e| std::fs::read(e.path()).ok())
        .context("no certificate in signcerts")?;
    let public = public_key_of_pem(&certificate)?;
    for entry in std::fs::read_dir(msp_dir.join("keystore"))?.flatten() {
        let Ok(pem) = std::fs::read_to_string(entry.path()) else { continue };
        let Ok(secret) = p256::SecretKey::from_pkcs8_pem(&pem) else { continue };
        if secret.public_key().to_sec1_point(false).as_bytes() == public.as_slice() {
            return Ok(secret);
        }
    }
    bail!("no key in {} matches its certificate", msp_dir.join("keystore").display())
}

/// The uncompressed P-256 public key of a PEM certificate.
pub fn public_key_of_pem(pem: &[u8]) -> Result<Vec<u8>> {
    let certificate = medfabric_msp::Certificate::from_pem(pem).map_err(|e| anyhow!("certificate: {e}"))?;
    if !certificate.is_p256() {
        bail!("the certificate's key is not P-256");
    }
    Ok(certificate.public_key().to_vec())
}
