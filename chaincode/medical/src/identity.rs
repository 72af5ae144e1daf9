//! Who is calling: the role and actor id from the caller's certificate (Fabric CA
//! attributes `role` and `hf.EnrollmentID`, extension 1.2.3.4.5.6.7.8.1), and the MSP.
//!
//! An organization's CA can write any `role` into the certificates it issues, so the
//! attribute alone proves nothing: a role counts only when the consortium granted it
//! to the caller's organization. The grants live in the channel config
//! (`MedfabricRoles`, changed only under `/Channel/Application/Admins`); the endorsing
//! peer passes them in the decoration [`ROLES_DECORATION`], never the client.

use std::collections::BTreeMap;
use std::fmt;

use medfabric_shim::ChaincodeStub;
use serde::{Deserialize, Serialize};

use crate::model::{Outcome, fail};
use crate::records::hex;

pub use medfabric_medical_api::names::ROLES_DECORATION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Patient,
    Provider,
    Researcher,
    Payer,
    Regulator,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "patient" => Self::Patient,
            "provider" => Self::Provider,
            "researcher" => Self::Researcher,
            "payer" => Self::Payer,
            "regulator" => Self::Regulator,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Provider => "provider",
            Self::Researcher => "researcher",
            Self::Payer => "payer",
            Self::Regulator => "regulator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub msp_id: String,
    pub enrollment_id: String,
    pub role: Role,
}

impl Caller {
    /// `MSPID/enrollmentID`: unique across the consortium.
    pub fn actor(&self) -> String {
        format!("{}/{}", self.msp_id, self.enrollment_id)
    }

    /// Fails unless the caller has one of `roles`.
    pub fn require(&self, function: &str, roles: &[Role]) -> Outcome<()> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        fail(format!(
            "access denied: {function} requires role {}; {} has role {}",
            allowed.join(" or "),
            self.actor(),
            self.role
        ))
    }

    /// Fails unless the caller belongs to `msp_id`.
    pub fn require_org(&self, function: &str, msp_id: &str) -> Outcome<()> {
        if self.msp_id == msp_id {
            return Ok(());
        }
        fail(format!(
            "access denied: {function} is reserved to {msp_id}; {} belongs to {}",
            self.actor(),
            self.msp_id
        ))
    }
}

/// The consortium's role grants, as the endorsing peer decorated the proposal.
pub fn role_grants(stub: &dyn ChaincodeStub) -> Outcome<BTreeMap<String, Vec<String>>> {
    let Some(json) = stub.decorations().get(ROLES_DECORATION) else {
        return fail(
            "access denied: the channel config grants no roles (MedfabricRoles); no role attribute is honoured",
        );
    };
    serde_json::from_slice(json).or_else(|e| fail(format!("the consortium's role grants are corrupt: {e}")))
}

/// Is `msp_id` granted `role` by the consortium?
pub fn granted(grants: &BTreeMap<String, Vec<String>>, role: Role, msp_id: &str) -> bool {
    grants.get(role.as_str()).is_some_and(|ids| ids.iter().any(|id| id == msp_id))
}

/// The caller of this transaction, from its certificate; its role only if the
/// consortium granted that role to its organization. An actor id that names a
/// registered patient is that patient only with the key the patient registered: an
/// identity a CA re-issued under the same name (in any role) acts for nobody.
pub fn caller(stub: &mut dyn ChaincodeStub) -> Outcome<Caller> {
    let identity = stub.client_identity()?;
    let Some(role_text) = identity.attribute("role") else {
        return fail(format!(
            "access denied: the certificate of {} in {} has no role attribute",
            identity.enrollment_id(),
            identity.msp_id()
        ));
    };
    let Some(role) = Role::parse(role_text) else {
        return fail(format!("access denied: unknown role {role_text:?}"));
    };
    let enrollment_id = identity.enrollment_id().to_owned();
    if enrollment_id.is_empty() || enrollment_id.contains('/') {
        return fail(format!("access denied: bad enrollment id {enrollment_id:?}"));
    }
    if !granted(&role_grants(stub)?, role, identity.msp_id()) {
        return fail(format!(
            "access denied: the consortium has not granted role {role} to {}; {}/{enrollment_id}'s certificate attribute does not count",
            identity.msp_id(),
            identity.msp_id(),
        ));
    }
    let caller = Caller { msp_id: identity.msp_id().to_owned(), enrollment_id, role };
    if let Some(patient) = crate::records::registered_patient(stub, &caller.actor())?
        && hex(identity.certificate().public_key()) != patient.public_key
    {
        return fail(format!(
            "access denied: {} is a registered patient, and this certificate does not hold the key the patient registered",
            caller.actor()
        ));
    }
    Ok(caller)
}
