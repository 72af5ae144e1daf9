//! Register: a registrar adds an identity, within what its own attributes allow.

use anyhow::Result;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authority;
use crate::registry::{Attribute, IdentityRecord, SecretHash};

use super::*;

#[derive(Debug, Deserialize)]
struct RegisterBody {
    #[serde(deserialize_with = "null_as_empty")]
    id: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default, deserialize_with = "null_as_zero")]
    max_enrollments: i32,
    #[serde(default, deserialize_with = "null_as_empty")]
    affiliation: String,
    #[serde(default, deserialize_with = "null_as_no_attrs")]
    attrs: Vec<Attribute>,
}

impl CaService {
    /// `register`: by a registrar allowed to register the type, affiliation and attributes
    /// (`authority`). Type and affiliation default to the caller's; affiliation `.` is the root.
    pub fn register(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        let request: RegisterBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        // Stored in lower case: the type becomes a NodeOU, which the MSP matches exactly.
        let kind = request
            .kind
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| caller.kind.clone())
            .to_ascii_lowercase();
        let affiliation = match request.affiliation.as_str() {
            "" => caller.affiliation.clone(),
            "." => String::new(),
            other => other.to_owned(),
        };
        let denied =
            |why: String| ApiError::authorization(format!("Registration of '{}' failed: {why}", request.id));
        // Ids become actor ids on the ledger: a plain alphabet, so none can pose as another
        // (case, spaces, look-alike letters, control characters).
        let plain = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
        if request.id.is_empty() || request.id.len() > 128 || !request.id.chars().all(plain) {
            return Err(ApiError::bad_request(format!(
                "Invalid identity name {:?}: use 1-128 of [A-Za-z0-9._@-]",
                request.id
            )));
        }
        authority::can_act_on_type(caller, &kind).map_err(denied)?;
        authority::can_act_on_affiliation(caller, &affiliation).map_err(denied)?;
        authority::can_register_attributes(&request.attrs, None, caller).map_err(denied)?;
        let secret = match request.secret.clone().filter(|s| !s.is_empty()) {
            Some(s) => s,
            None => random_secret()?,
        };
        let max_enrollments =
            super::requested_enrollment_limit(request.max_enrollments, self.config.max_enrollments)?;
        let hash = SecretHash::new(&secret).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut attrs = fixed_attributes(&request.id, &kind, &affiliation);
        for attr in request.attrs.iter().filter(|a| !a.value.is_empty()) {
            attrs.retain(|a| a.name != attr.name);
            attrs.push(attr.clone());
        }
        self.registry().update(|data| {
            unchanged(data, caller)?;
            if !affiliation.is_empty() && !data.affiliations.contains(&affiliation) {
                return Err(denied(format!("unknown affiliation '{affiliation}'")));
            }
            if data.removed.contains(&request.id) {
                return Err(ApiError::new(
                    409,
                    74,
                    format!("Identity '{}' was removed and cannot be registered again", request.id),
                ));
            }
            let taken = |id: &String| id.eq_ignore_ascii_case(&request.id);
            if data.identities.keys().any(taken) || data.removed.iter().any(taken) {
                return Err(ApiError::new(
                    409,
                    74,
                    format!("Identity '{}' is already registered", request.id),
                ));
            }
            data.identities.insert(
                request.id.clone(),
                IdentityRecord {
                    id: request.id.clone(),
                    kind,
                    affiliation,
                    attrs,
                    max_enrollments,
                    enrollments: 0,
                    secret: hash,
                    revoked: false,
                    seeded: false,
                },
            );
            Ok(())
        })?;
        Ok(json!({"secret": secret}))
    }
}
