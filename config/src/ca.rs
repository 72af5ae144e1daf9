//! A CA server's node config (`kind: ca`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A CA server's configuration. Relative paths are relative to the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// The CA's name (`caname` in requests), `ca.<domain>` in generated networks.
    /// (`ca_name`, `ca_cert_file`, `ca_key_file` and `bootstrap_admin` are the names
    /// networks generated before these types wrote.)
    #[serde(alias = "ca_name")]
    pub name: String,
    /// The organization whose identities the CA issues (informational).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub msp_id: String,
    pub listen_address: String,
    #[serde(alias = "ca_cert_file")]
    pub cert_file: PathBuf,
    #[serde(alias = "ca_key_file")]
    pub key_file: PathBuf,
    /// The registry file (default: `registry.json` in `data_dir`).
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub registry_file: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(alias = "bootstrap_admin")]
    pub bootstrap: Bootstrap,
    /// Largest request body accepted.
    #[serde(default = "default_body_limit")]
    pub max_request_body_bytes: usize,
    #[serde(default)]
    pub affiliations: Vec<String>,
    /// The CA's enrollment limit per identity (-1: unlimited).
    #[serde(default = "unlimited")]
    pub max_enrollments: i32,
    /// Wrong passwords accepted for one identity before it is locked (0: no limit), as
    /// Fabric CA's `identities.passwordattempts`.
    #[serde(default = "default_password_attempts")]
    pub password_attempts: u32,
    #[serde(default)]
    pub allow_identity_removal: bool,
    /// Identities that exist without this CA having registered them (the ones
    /// `network generate` issued from the same CA key): registered once, with no usable
    /// secret, so nobody can register or enroll the same enrollment id again.
    #[serde(default)]
    pub seed_identities: Vec<SeedIdentity>,
    /// HTTPS: the CA's server certificate and key, from the organization's TLS CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<CaTls>,
    /// Serve plain HTTP; only when a config asks for it (without it, no `tls` is an error).
    #[serde(default)]
    pub plain_http: bool,
}

fn is_empty_path(path: &std::path::Path) -> bool {
    path.as_os_str().is_empty()
}

fn default_password_attempts() -> u32 {
    10
}

fn unlimited() -> i32 {
    -1
}

/// One MiB.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 1 << 20;

fn default_body_limit() -> usize {
    DEFAULT_MAX_REQUEST_BODY_BYTES
}

/// The CA's HTTPS files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The TLS CA that issued `cert_file` (what clients trust; reported by `network status`;
    /// clients of a CA with `tls` and no `ca_file` refuse to connect rather than fall back
    /// to plain HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// An identity made outside the CA (`CaConfig::seed_identities`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedIdentity {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub affiliation: String,
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
    /// Its certificate (PEM), so that revoking the identity revokes it and the CRL lists it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_file: Option<PathBuf>,
}

/// The bootstrap registrar (Fabric CA's `-b admin:secret`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bootstrap {
    pub id: String,
    pub secret: String,
}
