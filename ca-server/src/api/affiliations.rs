//! The affiliations API.

use anyhow::Result;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::authority;
use crate::registry::IdentityRecord;

use super::*;

impl CaService {
    /// `DELETE affiliations/{name}` (hf.AffiliationMgr; refused while identities use it).
    pub fn remove_affiliation(&self, caller: &IdentityRecord, name: &str) -> Result<Value, ApiError> {
        if !authority::holds(caller, authority::AFFILIATION_MGR) {
            return Err(ApiError::authorization("not an affiliation manager"));
        }
        authority::can_act_on_affiliation(caller, name).map_err(ApiError::authorization)?;
        self.registry().update(|data| {
            let prefix = format!("{name}.");
            if data.identities.values().any(|i| i.affiliation == name || i.affiliation.starts_with(&prefix)) {
                return Err(ApiError::new(400, 0, format!("Affiliation '{name}' is in use by identities")));
            }
            if !data.affiliations.remove(name) {
                return Err(ApiError::new(404, 0, format!("Affiliation '{name}' does not exist")));
            }
            data.affiliations.retain(|a| !a.starts_with(&prefix));
            Ok(())
        })?;
        Ok(json!({"name": name, "caname": self.config.name}))
    }

    /// `GET affiliations`: the tree.
    pub fn affiliations(&self) -> Value {
        let names: Vec<String> = self.registry().data.affiliations.iter().cloned().collect();
        fn children(names: &[String], parent: &str) -> Vec<Value> {
            names
                .iter()
                .filter(|n| match n.rsplit_once('.') {
                    Some((p, _)) => p == parent,
                    None => parent.is_empty(),
                })
                .map(|n| {
                    let nested = children(names, n);
                    if nested.is_empty() {
                        json!({"name": n})
                    } else {
                        json!({"name": n, "affiliations": nested})
                    }
                })
                .collect()
        }
        json!({"name": "", "affiliations": children(&names, ""), "caname": self.config.name})
    }

    /// `POST affiliations` (hf.AffiliationMgr).
    pub fn add_affiliation(&self, caller: &IdentityRecord, body: &[u8]) -> Result<Value, ApiError> {
        if !authority::holds(caller, authority::AFFILIATION_MGR) {
            return Err(ApiError::authorization("not an affiliation manager"));
        }
        #[derive(Deserialize)]
        struct Add {
            name: String,
        }
        let add: Add = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        authority::can_act_on_affiliation(caller, &add.name).map_err(ApiError::authorization)?;
        authority::check_affiliation_name(&add.name).map_err(ApiError::bad_request)?;
        self.registry().update(|data| {
            if !data.affiliations.insert(add.name.clone()) {
                return Err(ApiError::new(409, 0, format!("Affiliation '{}' already exists", add.name)));
            }
            Ok(())
        })?;
        Ok(json!({"name": add.name, "caname": self.config.name}))
    }
}
