//! Consent with FHIR Consent semantics (`docs/medical.md`, "Consent semantics"): a base decision
//! (permit or deny) for a grantee, narrowed by actions, purposes of use, data classes,
//! security labels and a validity period, with nested provisions that override their
//! parent where they match. Deny wins over permit across consents; no applicable permit
//! means no access.
//!
//! Consents are stored under `consent/<patient>/<id>` with every version kept, and
//! indexed by grantee (`consentgrantee/<grantee>/<patient>/<id>`) so that evaluating a
//! request reads only the consents that can apply to it — never a scan. Every key read
//! during evaluation enters the transaction's read set: a revocation committed first
//! invalidates a concurrent access (MVCC), and a new consent for the same grantee does
//! too (phantom read).

use medfabric_shim::ContractError;
use serde::{Deserialize, Serialize};

use crate::identity::{Caller, Role};
use crate::model::{CONFIDENTIALITY, Outcome, RecordMeta, SENSITIVE, fail};

/// Who a consent is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Grantee {
    /// One person: `MSPID/enrollmentID`.
    Actor(String),
    /// Everyone of an organization (MSP id).
    Org(String),
    /// Everyone with a role.
    Role(Role),
    /// Everyone.
    Any,
}

impl Grantee {
    /// The index key part.
    pub fn index(&self) -> String {
        match self {
            Self::Actor(a) => format!("actor:{a}"),
            Self::Org(o) => format!("org:{o}"),
            Self::Role(r) => format!("role:{r}"),
            Self::Any => "any".into(),
        }
    }

    pub fn matches(&self, caller: &Caller) -> bool {
        match self {
            Self::Actor(a) => *a == caller.actor(),
            Self::Org(o) => *o == caller.msp_id,
            Self::Role(r) => *r == caller.role,
            Self::Any => true,
        }
    }

    /// The index keys under which consents that may apply to `caller` are found.
    pub fn candidates(caller: &Caller) -> [Grantee; 4] {
        [Self::Actor(caller.actor()), Self::Org(caller.msp_id.clone()), Self::Role(caller.role), Self::Any]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Permit,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Revoked,
}

/// Purposes of use (HL7 v3 PurposeOfUse) a consent may name.
pub const PURPOSES: [&str; 10] =
    ["TREAT", "ETREAT", "HPAYMT", "HOPERAT", "HRESCH", "PUBHLTH", "HMARKT", "HDIRECT", "FRAUD", "PATRQT"];
/// Actions (FHIR consent-action).
pub const ACTIONS: [&str; 5] = ["access", "collect", "use", "disclose", "correct"];

/// A rule: empty lists match anything; `period` bounds are inclusive unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Rule {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub purposes: Vec<String>,
    /// Data classes or FHIR resource types.
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub period: Option<Period>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: Option<u64>,
    pub end: Option<u64>,
}

impl Period {
    pub fn contains(&self, t: u64) -> bool {
        self.start.is_none_or(|s| t >= s) && self.end.is_none_or(|e| t <= e)
    }
}

/// A nested provision: an exception to its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provision {
    pub decision: Decision,
    /// Narrows the provision to some grantees (empty: the consent's grantee).
    #[serde(default)]
    pub actors: Vec<Grantee>,
    #[serde(flatten)]
    pub rule: Rule,
    #[serde(default)]
    pub provisions: Vec<Provision>,
}

/// A fee per access, held in escrow and settled to the patient and the custodian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fee {
    pub amount: u64,
    /// The custodian's share, in basis points (the rest goes to the patient).
    #[serde(default)]
    pub custodian_share_bps: u32,
}

/// What a patient grants (the client's input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentTerms {
    pub grantee: Grantee,
    pub decision: Decision,
    #[serde(flatten)]
    pub rule: Rule,
    #[serde(default)]
    pub provisions: Vec<Provision>,
    #[serde(default)]
    pub fee: Option<Fee>,
    /// The named template this was made from, if any.
    #[serde(default)]
    pub template: Option<String>,
}

/// A stored consent version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub consent_id: String,
    pub patient_id: String,
    pub version: u32,
    pub status: Status,
    #[serde(flatten)]
    pub terms: ConsentTerms,
    pub recorded_by: String,
    /// The patient's signed document, when a provider recorded this version for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<crate::access::SignedConsent>,
    pub time: u64,
    pub tx_id: String,
}

impl Consent {
    pub fn reference(&self) -> String {
        format!("{}@{}", self.consent_id, self.version)
    }
}

/// One access request, as consent evaluation sees it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub caller: &'a Caller,
    pub action: &'a str,
    pub purpose: &'a str,
    pub record: &'a RecordMeta,
    pub time: u64,
}

fn listed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == value)
}

impl Rule {
    /// Does a rule with `decision` cover the request? A deny covers a record when it
    /// names none of the record's labels or any of them. A permit covers only what it
    /// names: every sensitive (or restricted, `R`) label of the record must be listed, and
    /// a permit that lists labels needs the record to carry one of them.
    pub fn covers(&self, request: &Request<'_>, decision: Decision) -> bool {
        let record = request.record;
        let labels_ok = match decision {
            Decision::Deny => {
                self.labels.is_empty() || record.security_labels.iter().any(|l| self.labels.contains(l))
            }
            Decision::Permit => {
                let sensitive_named = record
                    .security_labels
                    .iter()
                    .filter(|l| SENSITIVE.contains(&l.as_str()) || *l == "R")
                    .all(|l| self.labels.contains(l));
                sensitive_named
                    && (self.labels.is_empty()
                        || record.security_labels.iter().any(|l| self.labels.contains(l)))
            }
        };
        listed(&self.actions, request.action)
            && listed(&self.purposes, request.purpose)
            && (listed(&self.classes, &record.data_class) || listed(&self.classes, &record.resource_type))
            && labels_ok
            && self.period.is_none_or(|p| p.contains(request.time))
    }

    pub fn check(&self) -> Outcome<()> {
        if let Some(bad) = self.purposes.iter().find(|p| !PURPOSES.contains(&p.as_str())) {
            return fail(format!("unknown purpose of use {bad:?} (one of {})", PURPOSES.join(", ")));
        }
        if let Some(bad) = self.actions.iter().find(|a| !ACTIONS.contains(&a.as_str())) {
            return fail(format!("unknown action {bad:?} (one of {})", ACTIONS.join(", ")));
        }
        if let Some(Period { start: Some(s), end: Some(e) }) = self.period
            && e < s
        {
            return fail("the period ends before it starts");
        }
        Ok(())
    }
}

impl Provision {
    /// The provision's decision where it applies: its nested provisions that apply
    /// override it, a deny among them winning over a permit.
    fn decide(&self, request: &Request<'_>) -> Option<Decision> {
        let actor_ok = self.actors.is_empty() || self.actors.iter().any(|g| g.matches(request.caller));
        if !actor_ok || !self.rule.covers(request, self.decision) {
            return None;
        }
        let nested: Vec<Decision> = self.provisions.iter().filter_map(|p| p.decide(request)).collect();
        Some(if nested.contains(&Decision::Deny) {
            Decision::Deny
        } else if nested.contains(&Decision::Permit) {
            Decision::Permit
        } else {
            self.decision
        })
    }

    fn check(&self, depth: usize) -> Outcome<()> {
        if depth > 4 {
            return fail("provisions nest deeper than 4 levels");
        }
        self.rule.check()?;
        self.provisions.iter().try_for_each(|p| p.check(depth + 1))
    }
}

impl ConsentTerms {
    pub fn check(&self) -> Outcome<()> {
        self.rule.check()?;
        self.provisions.iter().try_for_each(|p| p.check(1))?;
        let known = |l: &String| CONFIDENTIALITY.contains(&l.as_str()) || SENSITIVE.contains(&l.as_str());
        if let Some(bad) = self.rule.labels.iter().find(|l| !known(l)) {
            return fail(format!("unknown security label {bad:?}"));
        }
        if let Some(fee) = self.fee
            && fee.custodian_share_bps > 10_000
        {
            return fail("the custodian's share is at most 10000 basis points");
        }
        if let Grantee::Actor(a) = &self.grantee
            && a.split_once('/').is_none_or(|(m, e)| m.is_empty() || e.is_empty())
        {
            return fail(format!("grantee actor {a:?} must be MSPID/enrollmentID"));
        }
        Ok(())
    }
}

impl Consent {
    /// This consent's decision on `request`, or `None` when it does not apply.
    pub fn decide(&self, request: &Request<'_>) -> Option<Decision> {
        if self.status != Status::Active || !self.terms.grantee.matches(request.caller) {
            return None;
        }
        let base = Provision {
            decision: self.terms.decision,
            actors: Vec::new(),
            rule: self.terms.rule.clone(),
            provisions: self.terms.provisions.clone(),
        };
        base.decide(request)
    }
}

/// The outcome of evaluating every applicable consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Permit { consent: String, fee: Option<Fee> },
    Deny { consent: String },
    NoConsent,
}

/// Deny overrides permit; among permits the first (by consent id) is the authority.
pub fn evaluate<'a>(consents: impl IntoIterator<Item = &'a Consent>, request: &Request<'_>) -> Verdict {
    let mut permit: Option<&Consent> = None;
    for consent in consents {
        match consent.decide(request) {
            Some(Decision::Deny) => return Verdict::Deny { consent: consent.reference() },
            Some(Decision::Permit) if permit.is_none_or(|p| consent.consent_id < p.consent_id) => {
                permit = Some(consent);
            }
            _ => {}
        }
    }
    match permit {
        Some(c) => Verdict::Permit { consent: c.reference(), fee: c.terms.fee },
        None => Verdict::NoConsent,
    }
}

/// Named templates (BPPC-style), filled with the given grantee, classes and fee.
pub fn template(
    name: &str,
    grantee: Option<Grantee>,
    classes: Vec<String>,
    fee: Option<Fee>,
) -> Outcome<ConsentTerms> {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let terms = match name {
        // Treatment, payment and operations by the grantee.
        "opt-in" => ConsentTerms {
            grantee: grantee.ok_or_else(|| ContractError::new("the opt-in template needs a grantee"))?,
            decision: Decision::Permit,
            rule: Rule { purposes: strings(&["TREAT", "HPAYMT", "HOPERAT"]), classes, ..Rule::default() },
            provisions: Vec::new(),
            fee: None,
            template: Some(name.into()),
        },
        // Nobody, for anything (break-glass still works, and is audited).
        "opt-out" => ConsentTerms {
            grantee: Grantee::Any,
            decision: Decision::Deny,
            rule: Rule::default(),
            provisions: Vec::new(),
            fee: None,
            template: Some(name.into()),
        },
        // Research use by the grantee, optionally paid per access.
        "research-opt-in" => ConsentTerms {
            grantee: grantee
                .ok_or_else(|| ContractError::new("the research-opt-in template needs a grantee"))?,
            decision: Decision::Permit,
            rule: Rule {
                actions: strings(&["access", "use"]),
                purposes: strings(&["HRESCH"]),
                classes,
                ..Rule::default()
            },
            provisions: Vec::new(),
            fee,
            template: Some(name.into()),
        },
        // Only emergency treatment by providers.
        "emergency-only" => ConsentTerms {
            grantee: Grantee::Role(Role::Provider),
            decision: Decision::Permit,
            rule: Rule { purposes: strings(&["ETREAT"]), classes, ..Rule::default() },
            provisions: Vec::new(),
            fee: None,
            template: Some(name.into()),
        },
        other => {
            return fail(format!(
                "unknown consent template {other:?} (opt-in, opt-out, research-opt-in, emergency-only)"
            ));
        }
    };
    Ok(terms)
}
