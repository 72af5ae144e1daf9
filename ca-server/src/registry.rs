//! The CA's registry on disk: identities (secrets stored as salted PBKDF2-HMAC-SHA256,
//! never in plain text), issued certificates with their revocation state, affiliations.
//! One JSON file, replaced atomically (write, fsync, rename, fsync the directory) on every
//! change, so a crash leaves the old registry or the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// PBKDF2 rounds for stored secrets.
const ITERATIONS: u32 = 100_000;

/// An attribute of an identity; `ecert` puts it in enrollment certificates by default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub value: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ecert: bool,
}

/// A salted secret hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretHash {
    pub salt: String,
    pub iterations: u32,
    pub hash: String,
}

/// PBKDF2-HMAC-SHA256 (RFC 8018), 32 bytes; `iterations` of at least 1.
fn pbkdf2(secret: &[u8], salt: &[u8], iterations: NonZeroU32) -> [u8; 32] {
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA256, iterations, salt, secret, &mut out);
    out
}

/// [`ITERATIONS`], checked once.
fn iterations() -> NonZeroU32 {
    NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN)
}

impl SecretHash {
    pub fn new(secret: &str) -> Result<Self> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
        Ok(Self {
            salt: hex::encode(salt),
            iterations: ITERATIONS,
            hash: hex::encode(pbkdf2(secret.as_bytes(), &salt, iterations())),
        })
    }

    /// A hash no secret matches (identities enrolled outside the CA): cheap to make, unlike
    /// hashing a random secret.
    pub fn unusable() -> Self {
        Self { salt: String::new(), iterations: 0, hash: String::new() }
    }

    /// Does `secret` hash to the stored hash? (ring's verification compares in constant
    /// time.) An unusable hash (no iterations) matches nothing.
    pub fn matches(&self, secret: &str) -> bool {
        let Some(iterations) = NonZeroU32::new(self.iterations) else { return false };
        let Ok(salt) = hex::decode(&self.salt) else { return false };
        let Ok(stored) = hex::decode(&self.hash) else { return false };
        stored.len() == 32
            && ring::pbkdf2::verify(
                ring::pbkdf2::PBKDF2_HMAC_SHA256,
                iterations,
                &salt,
                secret.as_bytes(),
                &stored,
            )
            .is_ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdentityRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub affiliation: String,
    pub attrs: Vec<Attribute>,
    /// -1: unlimited.
    pub max_enrollments: i32,
    pub enrollments: i32,
    pub secret: SecretHash,
    /// Revoked identities can no longer enroll.
    #[serde(default)]
    pub revoked: bool,
    /// Issued outside this CA (by `network generate`): never re-keyed or removed here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub seeded: bool,
}

impl IdentityRecord {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.name == name).map(|a| a.value.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Lowercase hex without leading zeros (Fabric CA's normalisation).
    pub serial: String,
    pub aki: String,
    pub id: String,
    pub pem: String,
    pub not_after: i64,
    #[serde(default)]
    pub revoked_at: Option<i64>,
    #[serde(default)]
    pub reason: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RegistryData {
    pub identities: BTreeMap<String, IdentityRecord>,
    pub certificates: Vec<CertificateRecord>,
    pub affiliations: BTreeSet<String>,
    #[serde(default)]
    pub crl_number: u64,
    /// Ids removed from the registry: never registered again, so a new holder never gets
    /// the actor id (and the grants on chain) of an old one.
    #[serde(default)]
    pub removed: BTreeSet<String>,
    /// Wrong passwords given for an identity since its last good one: at the CA's
    /// `password_attempts` it can no longer log in with a password until a registrar
    /// sets a new secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_logins: BTreeMap<String, u32>,
}

/// The registry and the file it lives in.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    pub data: RegistryData,
}

impl Registry {
    /// Opens the registry at `path`, or starts an empty one.
    pub fn open(path: &Path) -> Result<Self> {
        let data = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).with_context(|| format!("registry {}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryData::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self { path: path.to_owned(), data })
    }

    /// Writes the registry durably (atomic replace).
    pub fn save(&self) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = self.path.with_extension("tmp");
        // Secret hashes: owner-only, brute-forcing weak secrets needs the file.
        let mut file = medfabric_config::secret::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(&self.data)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Applies `change` to a copy and saves it; the registry is unchanged if either fails.
    pub fn update<T>(
        &mut self,
        change: impl FnOnce(&mut RegistryData) -> Result<T, crate::api::ApiError>,
    ) -> Result<T, crate::api::ApiError> {
        let mut next = self.data.clone();
        let out = change(&mut next)?;
        let previous = std::mem::replace(&mut self.data, next);
        if let Err(e) = self.save() {
            self.data = previous;
            return Err(crate::api::ApiError::internal(format!("saving the registry: {e}")));
        }
        Ok(out)
    }
}

/// Normalises a serial or AKI as Fabric CA does: lowercase hex, no `:`, no leading zeros.
pub fn normalize_hex(input: &str) -> String {
    let cleaned: String = input.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
    let trimmed = cleaned.trim_start_matches('0');
    if trimmed.is_empty() { "0".into() } else { trimmed.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hashed_and_checked() {
        let hash = SecretHash::new("s3cret").expect("hash");
        assert!(hash.matches("s3cret"));
        assert!(!hash.matches("s3creT"));
        assert_ne!(hash.hash, hex::encode("s3cret"), "not stored in plain text");
        assert_ne!(SecretHash::new("s3cret").expect("hash").hash, hash.hash, "salted");
    }

    #[test]
    fn pbkdf2_matches_rfc_vectors() {
        // RFC 7914 §11 (PBKDF2-HMAC-SHA256, "passwd"/"salt", c=1), first 32 bytes.
        assert_eq!(
            hex::encode(pbkdf2(b"passwd", b"salt", NonZeroU32::MIN)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    #[test]
    fn hex_is_normalised() {
        assert_eq!(normalize_hex("00:AB:0c"), "ab0c");
        assert_eq!(normalize_hex("000"), "0");
    }
}
