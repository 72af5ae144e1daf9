//! Fabric's MSP folder layout: `cacerts`, `intermediatecerts`, `admincerts`, `signcerts`,
//! `keystore`, `tlscacerts`, `tlsintermediatecerts`, `crls`, and `config.yaml`.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use medfabric_proto::msp::{FabricCryptoConfig, FabricMspConfig, FabricNodeOUs, FabricOuIdentifier};
use serde::{Deserialize, Serialize};

use crate::error::MspError;

/// `config.yaml` of an MSP folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeOuConfig {
    #[serde(rename = "NodeOUs", default, skip_serializing_if = "Option::is_none")]
    pub node_ous: Option<NodeOus>,
    #[serde(rename = "OrganizationalUnitIdentifiers", default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_unit_identifiers: Vec<OuIdentifierFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeOus {
    #[serde(rename = "Enable", default)]
    pub enable: bool,
    #[serde(rename = "ClientOUIdentifier", default, skip_serializing_if = "Option::is_none")]
    pub client: Option<OuIdentifierFile>,
    #[serde(rename = "PeerOUIdentifier", default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<OuIdentifierFile>,
    #[serde(rename = "AdminOUIdentifier", default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<OuIdentifierFile>,
    #[serde(rename = "OrdererOUIdentifier", default, skip_serializing_if = "Option::is_none")]
    pub orderer: Option<OuIdentifierFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OuIdentifierFile {
    /// Path of a CA certificate, relative to the MSP folder.
    #[serde(rename = "Certificate", default, skip_serializing_if = "String::is_empty")]
    pub certificate: String,
    #[serde(rename = "OrganizationalUnitIdentifier")]
    pub organizational_unit_identifier: String,
}

impl NodeOuConfig {
    /// The NodeOU config cryptogen writes: the four roles, certified by `ca_cert_path`.
    pub fn standard(ca_cert_path: &str) -> Self {
        let id = |ou: &str| {
            Some(OuIdentifierFile {
                certificate: ca_cert_path.to_owned(),
                organizational_unit_identifier: ou.to_owned(),
            })
        };
        Self {
            node_ous: Some(NodeOus {
                enable: true,
                client: id("client"),
                peer: id("peer"),
                admin: id("admin"),
                orderer: id("orderer"),
            }),
            organizational_unit_identifiers: Vec::new(),
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("NodeOU config always serializes")
    }
}

/// The `FabricMSPConfig` of an organization with one root CA and the four standard
/// NodeOU roles (client, peer, admin, orderer) certified by that CA — what cryptogen
/// writes, without TLS roots.
pub fn node_ou_msp_config(msp_id: &str, root_cert_pem: &[u8]) -> FabricMspConfig {
    let root = Bytes::copy_from_slice(root_cert_pem);
    let role = |ou: &str| {
        Some(FabricOuIdentifier { certificate: root.clone(), organizational_unit_identifier: ou.into() })
    };
    FabricMspConfig {
        name: msp_id.to_owned(),
        root_certs: vec![root.clone()],
        crypto_config: Some(FabricCryptoConfig {
            signature_hash_family: "SHA2".into(),
            identity_identifier_hash_function: "SHA256".into(),
        }),
        fabric_node_ous: Some(FabricNodeOUs {
            enable: true,
            client_ou_identifier: role("client"),
            peer_ou_identifier: role("peer"),
            admin_ou_identifier: role("admin"),
            orderer_ou_identifier: role("orderer"),
        }),
        ..Default::default()
    }
}

/// Reads an MSP folder into the `FabricMSPConfig` a channel config carries.
#[derive(Debug)]
pub struct MspFolder;

impl MspFolder {
    /// Loads the verifying part of an MSP folder (no private key) as `msp_id`.
    pub fn load(dir: &Path, msp_id: &str) -> Result<FabricMspConfig, MspError> {
        let files = |sub: &str| -> Result<Vec<Bytes>, MspError> {
            Ok(read_dir_files(&dir.join(sub))?.into_iter().map(|(_, b)| Bytes::from(b)).collect())
        };
        let root_certs = files("cacerts")?;
        if root_certs.is_empty() {
            return Err(MspError::Folder {
                path: dir.join("cacerts").display().to_string(),
                why: "no CA certificate".into(),
            });
        }
        let config_path = dir.join("config.yaml");
        let config: NodeOuConfig = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path).map_err(|e| folder_err(&config_path, e))?;
            serde_yaml::from_str(&text).map_err(|e| MspError::Folder {
                path: config_path.display().to_string(),
                why: e.to_string(),
            })?
        } else {
            NodeOuConfig::default()
        };
        let read_ou = |id: &OuIdentifierFile| -> Result<FabricOuIdentifier, MspError> {
            let certificate = if id.certificate.is_empty() {
                Bytes::new()
            } else {
                let path = dir.join(&id.certificate);
                Bytes::from(std::fs::read(&path).map_err(|e| folder_err(&path, e))?)
            };
            Ok(FabricOuIdentifier {
                certificate,
                organizational_unit_identifier: id.organizational_unit_identifier.clone(),
            })
        };
        let fabric_node_ous = match &config.node_ous {
            Some(n) => Some(FabricNodeOUs {
                enable: n.enable,
                client_ou_identifier: n.client.as_ref().map(&read_ou).transpose()?,
                peer_ou_identifier: n.peer.as_ref().map(&read_ou).transpose()?,
                admin_ou_identifier: n.admin.as_ref().map(&read_ou).transpose()?,
                orderer_ou_identifier: n.orderer.as_ref().map(&read_ou).transpose()?,
            }),
            None => None,
        };
        Ok(FabricMspConfig {
            name: msp_id.to_owned(),
            root_certs,
            intermediate_certs: files("intermediatecerts")?,
            admins: files("admincerts")?,
            revocation_list: files("crls")?,
            signing_identity: None,
            organizational_unit_identifiers: config
                .organizational_unit_identifiers
                .iter()
                .map(read_ou)
                .collect::<Result<_, _>>()?,
            crypto_config: Some(FabricCryptoConfig {
                signature_hash_family: "SHA2".into(),
                identity_identifier_hash_function: "SHA256".into(),
            }),
            tls_root_certs: files("tlscacerts")?,
            tls_intermediate_certs: files("tlsintermediatecerts")?,
            fabric_node_ous,
        })
    }
}

/// The regular files of a directory, sorted by name; an absent directory is empty.
pub(crate) fn read_dir_files(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, MspError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(folder_err(dir, e)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| folder_err(dir, e))?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read(&p).map(|b| (p.clone(), b)).map_err(|e| folder_err(&p, e)))
        .collect()
}

fn folder_err(path: &Path, e: std::io::Error) -> MspError {
    MspError::Folder { path: path.display().to_string(), why: e.to_string() }
}
