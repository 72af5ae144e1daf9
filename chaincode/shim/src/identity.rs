//! The transaction creator as chaincode sees it, like Fabric's `pkg/cid`.
//!
//! The peer has already validated the creator against the channel's MSPs before the
//! chaincode runs; this only reads facts out of the certificate.

use std::collections::BTreeMap;

use medfabric_msp::{Certificate, NodeRole};
use medfabric_proto::msp::SerializedIdentity;
use prost::Message;

use crate::error::{ShimError, ShimResult};

#[derive(Debug, Clone)]
pub struct ClientIdentity {
    msp_id: String,
    certificate: Certificate,
}

impl ClientIdentity {
    /// Reads a `SerializedIdentity` (MSP id + PEM certificate).
    pub fn from_serialized(creator: &[u8]) -> ShimResult<Self> {
        let sid = SerializedIdentity::decode(creator)
            .map_err(|e| ShimError::Identity(format!("creator is not a SerializedIdentity: {e}")))?;
        let certificate = Certificate::from_pem(&sid.id_bytes)
            .map_err(|e| ShimError::Identity(format!("creator certificate: {e}")))?;
        Ok(Self { msp_id: sid.mspid, certificate })
    }

    /// Fabric's `cid.GetID`: base64 of `x509::<subject DN>::<issuer DN>`.
    pub fn id(&self) -> String {
        base64(
            format!("x509::{}::{}", self.certificate.subject_dn(), self.certificate.issuer_dn()).as_bytes(),
        )
    }

    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// An attribute from the Fabric CA extension (OID 1.2.3.4.5.6.7.8.1).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.certificate.attributes().get(name).map(String::as_str)
    }

    pub fn attributes(&self) -> &BTreeMap<String, String> {
        self.certificate.attributes()
    }

    /// `cid.AssertAttributeValue`: an error unless the attribute is present with `value`.
    pub fn assert_attribute_value(&self, name: &str, value: &str) -> ShimResult<()> {
        match self.attribute(name) {
            None => Err(ShimError::Identity(format!("attribute '{name}' was not found"))),
            Some(found) if found != value => {
                Err(ShimError::Identity(format!("attribute '{name}' equals '{found}', not '{value}'")))
            }
            Some(_) => Ok(()),
        }
    }

    /// `cid.HasOUValue`.
    pub fn has_ou_value(&self, ou: &str) -> bool {
        self.certificate.organizational_units().iter().any(|o| o == ou)
    }

    /// The NodeOU role named by a standard OU (`client`, `peer`, `admin`, `orderer`).
    pub fn role(&self) -> Option<NodeRole> {
        [NodeRole::Client, NodeRole::Peer, NodeRole::Admin, NodeRole::Orderer]
            .into_iter()
            .find(|role| self.has_ou_value(role.as_str()))
    }

    /// The enrollment id: the `hf.EnrollmentID` attribute, else the common name.
    pub fn enrollment_id(&self) -> &str {
        self.attribute("hf.EnrollmentID").unwrap_or_else(|| self.certificate.common_name())
    }
}

/// Standard base64 with padding (RFC 4648 §4), as Go's `base64.StdEncoding`.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
