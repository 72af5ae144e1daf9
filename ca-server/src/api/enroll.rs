//! Enroll and reenroll: a certificate for a PKCS#10 request, with the attributes the
//! identity holds and asks for.

use anyhow::Result;
use medfabric_ca::{LeafRequest, Name, OuLayout, Usage, Validity};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::registry::{Attribute, CertificateRecord, IdentityRecord, normalize_hex};

use super::*;

#[derive(Debug, Deserialize)]
struct AttrRequest {
    name: String,
    #[serde(default)]
    optional: bool,
}

#[derive(Debug, Deserialize)]
struct EnrollBody {
    certificate_request: String,
    #[serde(default)]
    attr_reqs: Option<Vec<AttrRequest>>,
}

/// The public key of a PEM CSR (verified self-signature, P-256 only).
fn csr_public_key(pem: &str) -> Result<Vec<u8>, ApiError> {
    use x509_parser::prelude::FromDer;
    let bad = |why: String| ApiError::bad_request(format!("Invalid certificate request: {why}"));
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(format!("not PEM: {e}")))?;
    if block.label != "CERTIFICATE REQUEST" {
        return Err(bad(format!("expected a CERTIFICATE REQUEST, got {}", block.label)));
    }
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| bad(format!("not a PKCS#10 request: {e}")))?;
    let spki = &csr.certification_request_info.subject_pki;
    let ec = spki.algorithm.algorithm == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
    let p256 = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .is_some_and(|oid| oid == x509_parser::oid_registry::OID_EC_P256);
    if !(ec && p256) {
        return Err(bad("the key must be ECDSA P-256".into()));
    }
    csr.verify_signature().map_err(|e| bad(format!("signature does not verify: {e}")))?;
    let key = spki.subject_public_key.data.to_vec();
    if key.len() != 65 || key[0] != 4 {
        return Err(bad("the key must be an uncompressed P-256 point".into()));
    }
    Ok(key)
}

impl CaService {
    /// Issues an enrollment certificate for `id` from a CSR.
    fn issue(&self, record: &IdentityRecord, body: &[u8], count_enrollment: bool) -> Result<Value, ApiError> {
        let request: EnrollBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let public_key = csr_public_key(&request.certificate_request)?;
        // Attributes: the ecert ones, or exactly those requested.
        let attributes: Vec<&Attribute> = match &request.attr_reqs {
            None => record.attrs.iter().filter(|a| a.ecert).collect(),
            Some(reqs) => {
                let missing: Vec<&str> = reqs
                    .iter()
                    .filter(|r| !r.optional && record.attr(&r.name).is_none())
                    .map(|r| r.name.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(ApiError::internal(format!(
                        "Failed to find requested attributes: The following required attributes are missing: [{}]",
                        missing.join(" ")
                    )));
                }
                record.attrs.iter().filter(|a| reqs.iter().any(|r| r.name == a.name)).collect()
            }
        };
        // Fabric CA's subject: the type and each affiliation level as OUs, in one RDN.
        let mut ous = vec![record.kind.clone()];
        ous.extend(record.affiliation.split('.').filter(|level| !level.is_empty()).map(str::to_owned));
        let ca_not_before = OffsetDateTime::from_unix_timestamp(self.ca_cert.not_before())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let ca_not_after = OffsetDateTime::from_unix_timestamp(self.ca_cert.not_after())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let not_after = (OffsetDateTime::now_utc() + time::Duration::hours(8760)).min(ca_not_after);
        let leaf = LeafRequest {
            name: Name {
                common_name: record.id.clone(),
                organizational_units: ous,
                ou_layout: OuLayout::MultiValued,
                ..Name::default()
            },
            subject_alt_names: Vec::new(),
            attributes: (!attributes.is_empty())
                .then(|| attributes.iter().map(|a| (a.name.clone(), a.value.clone())).collect()),
            validity: Validity { not_before: ca_not_before, not_after },
            usage: Usage::Signing,
            public_key: Some(public_key),
        };
        let issued = self.ca.issue(&leaf).map_err(|e| ApiError::internal(format!("issuing: {e}")))?;
        let aki = normalize_hex(&self.ca_cert.subject_key_id().map(hex::encode).unwrap_or_default());
        let serial = normalize_hex(&hex::encode(&issued.serial));
        let pem = issued.certificate_pem.clone();
        let id = record.id.clone();
        self.registry().update(|data| {
            // Checked again under the lock: the identity may have been revoked, removed or
            // changed (or enrolled to its limit) since the request was authenticated, and the
            // certificate must not outlive that.
            let current = data.identities.get_mut(&id).ok_or_else(|| {
                ApiError::authentication(format!("{id} was removed while its certificate was being issued"))
            })?;
            let same = current.kind == record.kind
                && current.affiliation == record.affiliation
                && current.attrs == record.attrs;
            if current.revoked || !same {
                return Err(ApiError::authentication(format!(
                    "{id} was revoked or changed while its certificate was being issued"
                )));
            }
            if count_enrollment {
                let max = super::enrollment_limit(current.max_enrollments, self.config.max_enrollments);
                if max >= 0 && current.enrollments >= max {
                    return Err(ApiError::authentication(format!(
                        "Login failure: The identity {id} has already enrolled {} times, it has reached its maximum enrollment allowance",
                        current.enrollments
                    )));
                }
                current.enrollments += 1;
            }
            data.certificates.push(CertificateRecord {
                serial,
                aki,
                id,
                pem,
                not_after: not_after.unix_timestamp(),
                revoked_at: None,
                reason: 0,
            });
            Ok(())
        })?;
        Ok(
            json!({"Cert": crate::base64::encode(issued.certificate_pem.as_bytes()), "ServerInfo": self.cainfo()}),
        )
    }

    /// `enroll`: counts against the identity's enrollment limit.
    pub fn enroll(&self, id: &str, body: &[u8]) -> Result<Value, ApiError> {
        let record = self.identity(id).ok_or_else(|| ApiError::authentication("unknown identity"))?;
        self.issue(&record, body, true)
    }

    /// `reenroll`: a new certificate for the token's identity.
    pub fn reenroll(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        self.issue(caller, body, false)
    }
}
