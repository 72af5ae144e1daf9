//! Revoke and the CRL.

use anyhow::Result;
use medfabric_ca::RevokedEntry;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::authority;
use crate::registry::{IdentityRecord, normalize_hex};

use super::*;

#[derive(Debug, Deserialize, Default)]
struct RevokeBody {
    #[serde(default, deserialize_with = "null_as_empty")]
    id: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    serial: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    aki: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    reason: String,
    #[serde(default, deserialize_with = "null_as_false")]
    gencrl: bool,
}

impl CaService {
    /// `revoke`: by id (every certificate, and the identity) or serial + AKI.
    pub fn revoke(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        if !authority::holds(caller, authority::REVOKER) {
            return Err(ApiError::authorization("Caller does not have authority to revoke"));
        }
        let request: RevokeBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let reason = reason_code(&request.reason);
        let at = now();
        let bootstrap = self.config.bootstrap.id.as_str();
        // Anyone may revoke itself; anyone else only as a registrar that could have given the
        // identity everything it holds (revocation cannot be undone: a lesser revoker must
        // not disable a greater registrar).
        let may_revoke = |data: &crate::registry::RegistryData, owner: &str| -> Result<(), ApiError> {
            if owner == caller.id {
                return Ok(());
            }
            let target = data
                .identities
                .get(owner)
                .ok_or_else(|| ApiError::new(404, 63, format!("Identity {owner} was not found")))?;
            authority::can_take_over(caller, target, bootstrap).map_err(ApiError::authorization)
        };
        let revoked = self.registry().update(|data| {
            unchanged(data, caller)?;
            let mut revoked = Vec::new();
            if !request.id.is_empty() && request.serial.is_empty() {
                if !data.identities.contains_key(&request.id) {
                    return Err(ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"));
                }
                may_revoke(data, &request.id)?;
                let identity = data.identities.get_mut(&request.id).expect("checked above");
                identity.revoked = true;
                for cert in
                    data.certificates.iter_mut().filter(|c| c.id == request.id && c.revoked_at.is_none())
                {
                    cert.revoked_at = Some(at);
                    cert.reason = reason;
                    revoked.push(json!({"Serial": cert.serial, "AKI": cert.aki}));
                }
            } else {
                let (serial, aki) = (normalize_hex(&request.serial), normalize_hex(&request.aki));
                let Some(index) =
                    data.certificates.iter().position(|c| c.serial == serial && normalize_hex(&c.aki) == aki)
                else {
                    return Err(ApiError::new(
                        404,
                        66,
                        format!("Certificate with serial {serial} and AKI {aki} was not found"),
                    ));
                };
                let cert = &data.certificates[index];
                if cert.revoked_at.is_some() {
                    return Err(ApiError::new(
                        404,
                        66,
                        format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                    ));
                }
                if !request.id.is_empty() && request.id != cert.id {
                    return Err(ApiError::new(
                        400,
                        0,
                        format!(
                            "Certificate with serial {serial} and AKI {aki} is not owned by {}",
                            request.id
                        ),
                    ));
                }
                let owner = cert.id.clone();
                may_revoke(data, &owner)?;
                let cert = &mut data.certificates[index];
                cert.revoked_at = Some(at);
                cert.reason = reason;
                revoked.push(json!({"Serial": cert.serial, "AKI": cert.aki}));
            }
            Ok(revoked)
        })?;
        let crl = if request.gencrl { self.crl()? } else { String::new() };
        Ok(json!({"RevokedCerts": revoked, "CRL": crl}))
    }

    /// The current CRL (base64 of its PEM).
    fn crl(&self) -> Result<String, ApiError> {
        let t = now();
        let number = self.registry().update(|data| {
            data.crl_number += 1;
            Ok(data.crl_number)
        })?;
        let registry = self.registry();
        let entries: Vec<RevokedEntry> = registry
            .data
            .certificates
            .iter()
            .filter(|c| c.not_after >= t)
            .filter_map(|c| {
                let revoked_at = OffsetDateTime::from_unix_timestamp(c.revoked_at?).ok()?;
                let serial = hex::decode(if !c.serial.len().is_multiple_of(2) {
                    format!("0{}", c.serial)
                } else {
                    c.serial.clone()
                })
                .ok()?;
                Some(RevokedEntry { serial, revoked_at })
            })
            .collect();
        drop(registry);
        let this_update = OffsetDateTime::now_utc();
        let pem = self
            .ca
            .revocation_list(&entries, this_update, this_update + time::Duration::days(1), number)
            .map_err(|e| ApiError::internal(format!("signing the CRL: {e}")))?;
        Ok(crate::base64::encode(pem.as_bytes()))
    }

    /// `gencrl`: by an identity with `hf.GenCRL`.
    pub fn gencrl(&self, caller: &IdentityRecord) -> Result<Value, ApiError> {
        if !authority::holds(caller, authority::GEN_CRL) {
            return Err(ApiError::authorization(format!(
                "The identity '{}' does not have authority to generate a CRL",
                caller.id
            )));
        }
        Ok(json!({"CRL": self.crl()?}))
    }
}
