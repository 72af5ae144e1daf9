use std::collections::BTreeMap;

use bytes::Bytes;

use crate::cert::Certificate;
use crate::error::{MspError, SignatureError};
use crate::signature::verify_signature;

/// The role a NodeOU-enabled MSP gives an identity, from its certificate's OU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Client,
    Peer,
    Admin,
    Orderer,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Client => "client",
            NodeRole::Peer => "peer",
            NodeRole::Admin => "admin",
            NodeRole::Orderer => "orderer",
        }
    }
}

/// An identity that its MSP has validated: chain to a root, not revoked, not a CA,
/// one NodeOU role. Expiry is checked separately with [`Identity::check_validity_at`],
/// because it depends on the time of the check while everything else here does not.
#[derive(Debug)]
pub struct Identity {
    pub(crate) msp_id: String,
    pub(crate) serialized: Bytes,
    pub(crate) certificate: Certificate,
    pub(crate) id_hash: [u8; 32],
    pub(crate) role: Option<NodeRole>,
    pub(crate) is_admin: bool,
    pub(crate) certifiers_id: [u8; 32],
}

impl Identity {
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The marshaled `SerializedIdentity` this identity was read from.
    pub fn serialized(&self) -> &Bytes {
        &self.serialized
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// SHA-256 of the low-S-sanitised certificate (Fabric's identity id).
    pub fn id_hash(&self) -> &[u8; 32] {
        &self.id_hash
    }

    /// `None` when the MSP does not enable NodeOUs.
    pub fn role(&self) -> Option<NodeRole> {
        self.role
    }

    /// Admin by NodeOU or listed among the MSP's admin certificates.
    pub fn is_admin(&self) -> bool {
        self.is_admin
    }

    /// Hash of the certification chain above the certificate (Fabric's
    /// `CertifiersIdentifier`), used by OU principals.
    pub fn certifiers_id(&self) -> &[u8; 32] {
        &self.certifiers_id
    }

    pub fn attributes(&self) -> &BTreeMap<String, String> {
        self.certificate.attributes()
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.certificate.attributes().get(name).map(String::as_str)
    }

    /// Fabric CA's `hf.EnrollmentID`, or the certificate's common name without it.
    pub fn enrollment_id(&self) -> &str {
        self.attribute("hf.EnrollmentID").unwrap_or_else(|| self.certificate.common_name())
    }

    /// Verifies `signature` over SHA-256(`message`) with this identity's key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        verify_signature(self.certificate.public_key(), message, signature)
    }

    /// Checks the certificate's validity period at `unix_seconds`.
    pub fn check_validity_at(&self, unix_seconds: i64) -> Result<(), MspError> {
        if unix_seconds < self.certificate.not_before() {
            return Err(MspError::NotYetValid { not_before: self.certificate.not_before() });
        }
        if unix_seconds > self.certificate.not_after() {
            return Err(MspError::Expired { not_after: self.certificate.not_after() });
        }
        Ok(())
    }
}
