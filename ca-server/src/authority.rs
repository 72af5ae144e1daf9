//! Fabric CA's authorization rules for registrars, as its documentation and server state
//! them (read from Fabric CA's `lib/attr` and request-context rules; our own code):
//!
//! - **Type**: a caller acts on an identity type only if its `hf.Registrar.Roles` lists it
//!   (case-insensitive) or holds `*`. No roles at all: not a registrar.
//! - **Affiliation**: a caller acts on an affiliation equal to its own or below it
//!   (`org1` covers `org1` and `org1.dept1`, not `org10`); the root affiliation (`""`)
//!   covers all.
//! - **Attributes**: each requested attribute name must match the caller's
//!   `hf.Registrar.Attributes` (exact, or a pattern ending in `*`). Then, by name:
//!   - `hf.Revoker`, `hf.GenCRL`, `hf.IntermediateCA`, `hf.AffiliationMgr` (booleans): the
//!     caller must hold the attribute as true; the value must be a boolean (or empty: delete);
//!   - `hf.Registrar.Roles`, `hf.Registrar.DelegateRoles`: the caller must hold the
//!     attribute, and the value must be a subset of the caller's (or the caller's holds `*`);
//!     delegate roles must be a subset of the identity's roles;
//!   - `hf.Registrar.Attributes`: the caller must hold it, each listed name must be one the
//!     caller may register, and an `hf.` name listed must be held by the identity;
//!   - `hf.EnrollmentID`, `hf.Type`, `hf.Affiliation`: never (the CA sets them);
//!   - any other `hf.` name: refused (reserved prefix); other names: allowed.
//! - **Manage** (get, modify, revoke, remove an identity): the caller must be able to act on
//!   the identity's type and affiliation. Revoking oneself (or one's own certificate) is
//!   allowed, as in Fabric CA. Stricter than Fabric CA: the bootstrap admin is managed only
//!   by itself.
//!
//! Each check returns the reason a refusal has (logged by the server; the wire carries
//! Fabric CA's generic 403 / 71).

use crate::registry::{Attribute, IdentityRecord};

pub const ROLES: &str = "hf.Registrar.Roles";
pub const DELEGATE_ROLES: &str = "hf.Registrar.DelegateRoles";
pub const REGISTRAR_ATTRIBUTES: &str = "hf.Registrar.Attributes";
pub const REVOKER: &str = "hf.Revoker";
pub const GEN_CRL: &str = "hf.GenCRL";
pub const INTERMEDIATE_CA: &str = "hf.IntermediateCA";
pub const AFFILIATION_MGR: &str = "hf.AffiliationMgr";
pub const ENROLLMENT_ID: &str = "hf.EnrollmentID";
pub const TYPE: &str = "hf.Type";
pub const AFFILIATION: &str = "hf.Affiliation";

const BOOLEANS: [&str; 4] = [REVOKER, GEN_CRL, INTERMEDIATE_CA, AFFILIATION_MGR];
const FIXED: [&str; 3] = [ENROLLMENT_ID, TYPE, AFFILIATION];

/// A comma-separated list, each entry trimmed, empty entries dropped.
fn list(value: &str) -> Vec<&str> {
    value.split(',').map(str::trim).filter(|v| !v.is_empty()).collect()
}

fn contains_ci(values: &[&str], wanted: &str) -> bool {
    values.iter().any(|v| v.eq_ignore_ascii_case(wanted))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Does the caller hold boolean attribute `name` as true?
pub fn holds(caller: &IdentityRecord, name: &str) -> bool {
    caller.attr(name).and_then(parse_bool).unwrap_or(false)
}

/// The caller's registrar roles, if it is a registrar (a non-empty `hf.Registrar.Roles`).
fn registrar_roles(caller: &IdentityRecord) -> Option<Vec<&str>> {
    caller.attr(ROLES).map(list).filter(|roles| !roles.is_empty())
}

pub fn is_registrar(caller: &IdentityRecord) -> bool {
    registrar_roles(caller).is_some()
}

/// May the caller act on identities of `kind` (empty: `client`)?
pub fn can_act_on_type(caller: &IdentityRecord, kind: &str) -> Result<(), String> {
    let Some(roles) = registrar_roles(caller) else {
        return Err(format!("'{}' is not a registrar", caller.id));
    };
    let kind = if kind.is_empty() { "client" } else { kind };
    if roles.contains(&"*") || contains_ci(&roles, kind) {
        Ok(())
    } else {
        Err(format!("Registrar does not have authority to act on type '{kind}'"))
    }
}

/// Is `affiliation` the caller's own or below it?
pub fn covers_affiliation(caller: &IdentityRecord, affiliation: &str) -> bool {
    let own = caller.affiliation.as_str();
    own.is_empty()
        || affiliation == own
        || affiliation.strip_prefix(own).is_some_and(|rest| rest.starts_with('.'))
}

pub fn can_act_on_affiliation(caller: &IdentityRecord, affiliation: &str) -> Result<(), String> {
    if covers_affiliation(caller, affiliation) {
        Ok(())
    } else {
        Err(format!("Caller does not have authority to act on affiliation '{affiliation}'"))
    }
}

/// May the caller get or revoke `target` (Fabric CA's rule: its type and affiliation)?
pub fn can_manage(
    caller: &IdentityRecord,
    target: &IdentityRecord,
    bootstrap_id: &str,
) -> Result<(), String> {
    if target.id == bootstrap_id && caller.id != bootstrap_id {
        return Err(format!("the bootstrap identity '{bootstrap_id}' is managed only by itself"));
    }
    can_act_on_affiliation(caller, &target.affiliation)?;
    can_act_on_type(caller, &target.kind)
}

/// May the caller modify or remove `target`? As [`can_manage`], and (stricter than Fabric
/// CA) the caller could have given the target every attribute it holds: otherwise a new
/// secret, or removing the id and registering it again, would hand the caller rights it
/// was never granted.
pub fn can_take_over(
    caller: &IdentityRecord,
    target: &IdentityRecord,
    bootstrap_id: &str,
) -> Result<(), String> {
    can_manage(caller, target, bootstrap_id)?;
    let held: Vec<Attribute> =
        target.attrs.iter().filter(|a| !FIXED.contains(&a.name.as_str())).cloned().collect();
    can_register_attributes(&held, Some(target), caller)
        .map_err(|e| format!("'{}' holds attributes beyond the caller's grants: {e}", target.id))
}

/// NodeOU role names: no affiliation level may be one (every level becomes an OU, and an
/// `admin` level would make its holders MSP admins).
pub const NODE_OU_ROLES: [&str; 4] = ["client", "peer", "admin", "orderer"];

/// Is `affiliation` free of levels named like a NodeOU role, and of empty levels?
pub fn check_affiliation_name(affiliation: &str) -> Result<(), String> {
    let levels: Vec<&str> = affiliation.split('.').collect();
    if let Some(level) = levels.iter().find(|l| NODE_OU_ROLES.iter().any(|r| r.eq_ignore_ascii_case(l))) {
        return Err(format!("affiliation '{affiliation}': the level '{level}' is a NodeOU role name"));
    }
    if levels.iter().any(|l| l.is_empty()) {
        return Err(format!("affiliation '{affiliation}' has an empty level"));
    }
    Ok(())
}

/// Does a name match one of the caller's `hf.Registrar.Attributes` patterns?
fn name_allowed(name: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == *p,
    })
}

/// Is every entry of `small` in `big` (case-insensitive)?
fn subset(small: &str, big: &str) -> Result<(), String> {
    let big = list(big);
    match list(small).into_iter().find(|s| !contains_ci(&big, s)) {
        Some(extra) => Err(format!("'{extra}' is not a member of '{}'", big.join(","))),
        None => Ok(()),
    }
}

fn value_of<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs.iter().find(|a| a.name == name).map(|a| a.value.as_str())
}

/// May the caller give `requested` to a new identity (`target` None) or to `target`?
pub fn can_register_attributes(
    requested: &[Attribute],
    target: Option<&IdentityRecord>,
    caller: &IdentityRecord,
) -> Result<(), String> {
    if requested.is_empty() {
        return Ok(());
    }
    let patterns = list(caller.attr(REGISTRAR_ATTRIBUTES).unwrap_or(""));
    if patterns.is_empty() {
        return Err(format!("Registrar does not have any values for '{REGISTRAR_ATTRIBUTES}'"));
    }
    for attr in requested {
        let name = attr.name.as_str();
        if !name_allowed(name, &patterns) {
            return Err(format!("Attribute '{name}' is not part of the caller's '{REGISTRAR_ATTRIBUTES}'"));
        }
        if FIXED.contains(&name) {
            return Err(format!("Cannot register fixed value attribute '{name}'"));
        }
        if BOOLEANS.contains(&name) {
            check_boolean(attr, caller)?;
        } else if [ROLES, DELEGATE_ROLES, REGISTRAR_ATTRIBUTES].contains(&name) {
            check_list(attr, requested, target, caller, &patterns)?;
        } else if name.starts_with("hf.") {
            return Err(format!("'{name}' uses the reserved prefix 'hf.' but is not a reserved attribute"));
        }
    }
    Ok(())
}

fn check_boolean(attr: &Attribute, caller: &IdentityRecord) -> Result<(), String> {
    let name = &attr.name;
    let Some(own) = caller.attr(name) else {
        return Err(format!("Attribute '{name}' requires ownership but the caller does not own it"));
    };
    if parse_bool(own) != Some(true) {
        return Err(format!("Caller has a value of 'false' for boolean attribute '{name}'"));
    }
    if attr.value.is_empty() || parse_bool(&attr.value).is_some() {
        Ok(())
    } else {
        Err(format!("'{}' is not a boolean value for '{name}'", attr.value))
    }
}

fn check_list(
    attr: &Attribute,
    requested: &[Attribute],
    target: Option<&IdentityRecord>,
    caller: &IdentityRecord,
    patterns: &[&str],
) -> Result<(), String> {
    let name = attr.name.as_str();
    let Some(own) = caller.attr(name) else {
        return Err(format!("Attribute '{name}' requires ownership but the caller does not own it"));
    };
    if attr.value.is_empty() {
        return Ok(()); // a deletion
    }
    if name == REGISTRAR_ATTRIBUTES {
        for listed in list(&attr.value) {
            if !name_allowed(listed, patterns) {
                return Err(format!("'{listed}' is not part of the caller's '{REGISTRAR_ATTRIBUTES}'"));
            }
            let held =
                value_of(requested, listed).is_some() || target.is_some_and(|t| t.attr(listed).is_some());
            if listed.starts_with("hf.") && !held {
                return Err(format!(
                    "'{listed}' is requested for '{REGISTRAR_ATTRIBUTES}' but the identity does not hold it"
                ));
            }
        }
        return Ok(());
    }
    if !list(own).contains(&"*") {
        subset(&attr.value, own)
            .map_err(|e| format!("the values requested for '{name}' exceed the caller's: {e}"))?;
    }
    if name == DELEGATE_ROLES {
        let roles = value_of(requested, ROLES)
            .filter(|r| !r.is_empty())
            .or_else(|| target.and_then(|t| t.attr(ROLES)))
            .unwrap_or("");
        if !list(roles).contains(&"*") {
            subset(&attr.value, roles)
                .map_err(|_| "The delegateRoles field is a superset of roles".to_owned())?;
        }
    }
    Ok(())
}
