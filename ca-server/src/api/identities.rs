//! The identities API: list, get, modify and remove identities a registrar manages.

use anyhow::Result;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authority;
use crate::registry::{Attribute, IdentityRecord, SecretHash};

use super::*;

impl CaService {
    fn identity_json(record: &IdentityRecord) -> Value {
        json!({
            "id": record.id,
            "type": record.kind,
            "affiliation": record.affiliation,
            "attrs": record.attrs,
            "max_enrollments": record.max_enrollments,
        })
    }

    /// `GET identities`: the identities the caller could manage.
    pub fn identities(&self, caller: &IdentityRecord) -> Result<Value, ApiError> {
        if !authority::is_registrar(caller) {
            return Err(ApiError::authorization("Caller is not a registrar"));
        }
        let bootstrap = self.config.bootstrap.id.as_str();
        let list: Vec<Value> = self
            .registry()
            .data
            .identities
            .values()
            .filter(|r| authority::can_manage(caller, r, bootstrap).is_ok())
            .map(Self::identity_json)
            .collect();
        Ok(json!({"identities": list, "caname": self.config.name}))
    }

    /// The identity `id`, if the caller may manage it.
    fn managed(&self, caller: &IdentityRecord, id: &str) -> Result<IdentityRecord, ApiError> {
        // A non-registrar learns nothing, not even whether the id exists.
        if !authority::is_registrar(caller) {
            return Err(ApiError::authorization(format!("'{}' is not a registrar", caller.id)));
        }
        let record = self
            .identity(id)
            .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
        authority::can_manage(caller, &record, &self.config.bootstrap.id).map_err(ApiError::authorization)?;
        Ok(record)
    }

    /// `GET identities/{id}` (registrars that can manage it).
    pub fn identity_info(&self, caller: &IdentityRecord, id: &str) -> Result<Value, ApiError> {
        let record = self.managed(caller, id)?;
        let mut value = Self::identity_json(&record);
        if !self.config.name.is_empty() {
            value["caname"] = json!(self.config.name);
        }
        Ok(value)
    }

    /// `DELETE identities/{id}[?force=true]` (registrars that can manage it, when removal is
    /// enabled; one's own identity only with `force`).
    pub fn remove_identity(&self, caller: &IdentityRecord, id: &str, force: bool) -> Result<Value, ApiError> {
        if !self.config.allow_identity_removal {
            return Err(ApiError::new(403, 56, "Identity removal is disabled"));
        }
        if id == caller.id && !force {
            return Err(ApiError::new(403, 56, "Need to use 'force' option to delete your own identity"));
        }
        let target = self.managed(caller, id)?;
        authority::can_take_over(caller, &target, &self.config.bootstrap.id)
            .map_err(ApiError::authorization)?;
        if target.seeded {
            return Err(ApiError::authorization(format!(
                "'{id}' was issued outside this CA; it is not removed here"
            )));
        }
        let at = now();
        let removed = self.registry().update(|data| {
            unchanged(data, caller)?;
            unchanged(data, &target)?;
            let removed = data
                .identities
                .remove(id)
                .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
            data.removed.insert(id.to_owned());
            // As Fabric CA does: a removed identity's certificates are revoked with it.
            for cert in data.certificates.iter_mut().filter(|c| c.id == id && c.revoked_at.is_none()) {
                cert.revoked_at = Some(at);
                cert.reason = reason_code("cessationofoperation");
            }
            Ok(removed)
        })?;
        Ok(Self::identity_json(&removed))
    }

    /// `PUT identities/{id}`: type, affiliation, attributes, max enrollments, secret, by a
    /// registrar that can manage the identity and give the new type, affiliation and
    /// attributes (`authority`).
    pub fn modify_identity(&self, caller: &IdentityRecord, id: &str, body: &[u8]) -> Result<Value, ApiError> {
        #[derive(Deserialize)]
        struct Modify {
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            affiliation: Option<String>,
            #[serde(default)]
            attrs: Option<Vec<Attribute>>,
            #[serde(default)]
            max_enrollments: Option<i32>,
            #[serde(default)]
            secret: Option<String>,
        }
        let change: Modify = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        let target = self.managed(caller, id)?;
        let denied = |why: String| ApiError::authorization(format!("Modifying '{id}' failed: {why}"));
        // `.` is the root affiliation; empty means unchanged.
        let affiliation = match change.affiliation.as_deref() {
            None | Some("") => None,
            Some(".") => Some(String::new()),
            Some(other) => Some(other.to_owned()),
        };
        if let Some(affiliation) = &affiliation {
            if !affiliation.is_empty() && !self.registry().data.affiliations.contains(affiliation) {
                return Err(ApiError::bad_request(format!("Affiliation '{affiliation}' is not supported")));
            }
            authority::can_act_on_affiliation(caller, affiliation).map_err(denied)?;
        }
        let kind = change.kind.clone().filter(|k| !k.is_empty()).map(|k| k.to_ascii_lowercase());
        if let Some(kind) = &kind {
            authority::can_act_on_type(caller, kind).map_err(denied)?;
        }
        // Any change — a new secret or allowance, or taking away or replacing an attribute —
        // needs a caller that could have given the identity everything it holds: otherwise a
        // lesser registrar could demote a greater one, then re-key it and become it.
        authority::can_take_over(caller, &target, &self.config.bootstrap.id).map_err(denied)?;
        let rekeys = change.secret.as_deref().is_some_and(|s| !s.is_empty())
            || change.max_enrollments.is_some_and(|m| m != 0);
        if rekeys && target.seeded {
            return Err(denied(format!("'{id}' was issued outside this CA; its secret is not set here")));
        }
        let attrs = change.attrs.clone().unwrap_or_default();
        authority::can_register_attributes(&attrs, Some(&target), caller).map_err(denied)?;
        let secret = change
            .secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(SecretHash::new)
            .transpose()
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let default_max = self.config.max_enrollments;
        let updated = self.registry().update(|data| {
            // The checks above were made on these records: they must still be the ones stored.
            unchanged(data, caller)?;
            unchanged(data, &target)?;
            let record = data
                .identities
                .get_mut(id)
                .ok_or_else(|| ApiError::new(404, 63, "Failed to get User: sql: no rows in result set"))?;
            if let Some(kind) = kind {
                set_attr(&mut record.attrs, authority::TYPE, &kind);
                record.kind = kind;
            }
            if let Some(affiliation) = affiliation {
                set_attr(&mut record.attrs, authority::AFFILIATION, &affiliation);
                record.affiliation = affiliation;
            }
            // An empty value deletes the attribute; others replace or add it.
            for attr in attrs {
                record.attrs.retain(|a| a.name != attr.name);
                if !attr.value.is_empty() {
                    record.attrs.push(attr);
                }
            }
            match change.max_enrollments {
                None | Some(0) => {}
                Some(-2) => record.max_enrollments = default_max,
                // Within the CA's limit, as a registration must be.
                Some(n) => record.max_enrollments = super::requested_enrollment_limit(n, default_max)?,
            }
            let new_secret = secret.is_some();
            if let Some(secret) = secret {
                record.secret = secret;
            }
            let record = record.clone();
            if new_secret {
                // A new secret unlocks an identity locked by wrong passwords.
                data.failed_logins.remove(id);
            }
            Ok(record)
        })?;
        Ok(Self::identity_json(&updated))
    }
}
