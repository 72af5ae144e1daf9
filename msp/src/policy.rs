//! Fabric's signature policies and implicit-meta policies.
//!
//! Evaluation follows Fabric exactly: identities are deserialized and de-duplicated by
//! MSP id + certificate hash *before* their signatures are checked; invalid signatures
//! are dropped silently; each `SignedBy` leaf consumes the first unused identity that
//! satisfies its principal (greedy, not an optimal matching).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use medfabric_proto::common::{
    ConfigGroup, ImplicitMetaPolicy, Policy, SignaturePolicyEnvelope, implicit_meta_policy, policy,
    signature_policy,
};
use medfabric_proto::msp::{
    CombinedPrincipal, MspIdentityAnonymity, MspPrincipal, MspRole, OrganizationUnit, SerializedIdentity,
    msp_principal, msp_role,
};
use prost::Message;

use crate::cert::Certificate;
use crate::error::{MspError, PolicyError, SignatureError};
use crate::identity::{Identity, NodeRole};
use crate::manager::MspManager;

/// One signature over some data by some identity, as policies consume them.
#[derive(Debug, Clone, Copy)]
pub struct SignedData<'a> {
    pub data: &'a [u8],
    pub identity: &'a [u8],
    pub signature: &'a [u8],
}

/// The verdict on one signature of a set, reached as Fabric's
/// `SignatureSetToValidIdentities` reaches it.
#[derive(Debug, Clone)]
pub struct SignatureCheck {
    /// The signer, or why its identity is not valid on the channel.
    pub identity: Result<Arc<Identity>, MspError>,
    /// `None` when the signature was not checked: its identity was already accepted
    /// earlier in the set.
    pub signature: Option<Result<(), SignatureError>>,
}

impl SignatureCheck {
    /// Does this signature add its identity to the set policies are evaluated over?
    pub fn counts(&self) -> bool {
        self.identity.is_ok() && matches!(self.signature, Some(Ok(())))
    }
}

/// Checks every signature of a set. An identity already accepted is skipped before its
/// signature is checked (so nobody can make us verify one signature a thousand times);
/// an identity is accepted — marked as seen — only once a signature of it verifies.
pub fn check_signature_set(signed: &[SignedData<'_>], msps: &MspManager) -> Vec<SignatureCheck> {
    let mut accepted: HashSet<(String, [u8; 32])> = HashSet::new();
    signed
        .iter()
        .map(|sd| {
            let identity = msps.deserialize(sd.identity);
            let signature = match &identity {
                Err(_) => None,
                Ok(identity) => {
                    let key = (identity.msp_id().to_owned(), *identity.id_hash());
                    if accepted.contains(&key) {
                        None
                    } else {
                        let verdict = identity.verify(sd.data, sd.signature);
                        if verdict.is_ok() {
                            accepted.insert(key);
                        }
                        Some(verdict)
                    }
                }
            };
            SignatureCheck { identity, signature }
        })
        .collect()
}

/// Fabric's `SignatureSetToValidIdentities`: the distinct identities among `signed`
/// whose certificate is valid in `msps` and whose signature verifies, in input order.
pub fn valid_identities(signed: &[SignedData<'_>], msps: &MspManager) -> Vec<Arc<Identity>> {
    counted_identities(&check_signature_set(signed, msps))
}

/// The identities the checks of a signature set count for policies.
pub fn counted_identities(checks: &[SignatureCheck]) -> Vec<Arc<Identity>> {
    checks.iter().filter(|c| c.counts()).filter_map(|c| c.identity.as_ref().ok().cloned()).collect()
}

#[derive(Debug, Clone)]
enum Rule {
    SignedBy(usize),
    NOutOf(i64, Vec<Rule>),
}

#[derive(Debug, Clone)]
enum Principal {
    Role { msp_id: String, role: msp_role::MspRoleType },
    OrganizationUnit { msp_id: String, ou: String, certifiers_id: Vec<u8> },
    Identity { msp_id: String, certificate_der: Vec<u8> },
    Anonymity { anonymous: bool },
    Combined(Vec<Principal>),
}

/// A compiled `SignaturePolicyEnvelope`.
#[derive(Debug, Clone)]
pub struct SignaturePolicy {
    rule: Rule,
    principals: Vec<Principal>,
}

impl SignaturePolicy {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PolicyError> {
        let envelope = SignaturePolicyEnvelope::decode(bytes)
            .map_err(|e| PolicyError::Malformed(format!("SignaturePolicyEnvelope: {e}")))?;
        Self::from_envelope(&envelope)
    }

    pub fn from_envelope(envelope: &SignaturePolicyEnvelope) -> Result<Self, PolicyError> {
        if envelope.version != 0 {
            return Err(PolicyError::Malformed(format!(
                "signature policy version {} is not understood (only 0)",
                envelope.version
            )));
        }
        let principals =
            envelope.identities.iter().map(|p| compile_principal(p, 0)).collect::<Result<Vec<_>, _>>()?;
        let rule = envelope
            .rule
            .as_ref()
            .ok_or_else(|| PolicyError::Malformed("signature policy has no rule".into()))?;
        let rule = compile_rule(rule, principals.len())?;
        Ok(Self { rule, principals })
    }

    /// Evaluates over identities that are already valid and de-duplicated (see
    /// [`valid_identities`]).
    pub fn evaluate(&self, identities: &[Arc<Identity>]) -> bool {
        let mut used = vec![false; identities.len()];
        self.eval_rule(&self.rule, identities, &mut used)
    }

    /// Deserializes, de-duplicates and verifies `signed`, then evaluates.
    pub fn evaluate_signed(&self, signed: &[SignedData<'_>], msps: &MspManager) -> bool {
        self.evaluate(&valid_identities(signed, msps))
    }

    fn eval_rule(&self, rule: &Rule, identities: &[Arc<Identity>], used: &mut [bool]) -> bool {
        match rule {
            Rule::SignedBy(index) => {
                let principal = &self.principals[*index];
                for (i, identity) in identities.iter().enumerate() {
                    if !used[i] && satisfies(identity, principal) {
                        used[i] = true;
                        return true;
                    }
                }
                false
            }
            Rule::NOutOf(n, rules) => {
                let mut verified = 0i64;
                let mut scratch = used.to_vec();
                for rule in rules {
                    scratch.copy_from_slice(used);
                    if self.eval_rule(rule, identities, &mut scratch) {
                        verified += 1;
                        used.copy_from_slice(&scratch);
                    }
                }
                verified >= *n
            }
        }
    }
}

fn compile_rule(
    rule: &medfabric_proto::common::SignaturePolicy,
    principals: usize,
) -> Result<Rule, PolicyError> {
    match rule.r#type.as_ref() {
        Some(signature_policy::Type::SignedBy(index)) => {
            let index = usize::try_from(*index).ok().filter(|i| *i < principals).ok_or_else(|| {
                PolicyError::Malformed(format!("signed_by {index} out of {principals} identities"))
            })?;
            Ok(Rule::SignedBy(index))
        }
        Some(signature_policy::Type::NOutOf(n_out_of)) => Ok(Rule::NOutOf(
            i64::from(n_out_of.n),
            n_out_of.rules.iter().map(|r| compile_rule(r, principals)).collect::<Result<_, _>>()?,
        )),
        None => Err(PolicyError::Malformed("signature policy rule has no type".into())),
    }
}

/// Deepest nesting of combined principals accepted (each level is decoded separately,
/// so prost's own recursion limit does not bound it).
const MAX_PRINCIPAL_DEPTH: usize = 8;

fn compile_principal(principal: &MspPrincipal, depth: usize) -> Result<Principal, PolicyError> {
    use msp_principal::Classification;
    if depth > MAX_PRINCIPAL_DEPTH {
        return Err(PolicyError::Malformed(format!("principals nested deeper than {MAX_PRINCIPAL_DEPTH}")));
    }
    let bad = |what: &str, e: prost::DecodeError| PolicyError::Malformed(format!("{what}: {e}"));
    match Classification::try_from(principal.principal_classification) {
        Ok(Classification::Role) => {
            let role = MspRole::decode(principal.principal.as_ref()).map_err(|e| bad("MSPRole", e))?;
            let kind = msp_role::MspRoleType::try_from(role.role)
                .map_err(|_| PolicyError::Malformed(format!("unknown MSP role {}", role.role)))?;
            Ok(Principal::Role { msp_id: role.msp_identifier, role: kind })
        }
        Ok(Classification::OrganizationUnit) => {
            let ou = OrganizationUnit::decode(principal.principal.as_ref())
                .map_err(|e| bad("OrganizationUnit", e))?;
            Ok(Principal::OrganizationUnit {
                msp_id: ou.msp_identifier,
                ou: ou.organizational_unit_identifier,
                certifiers_id: ou.certifiers_identifier.to_vec(),
            })
        }
        Ok(Classification::Identity) => {
            let sid = SerializedIdentity::decode(principal.principal.as_ref())
                .map_err(|e| bad("SerializedIdentity", e))?;
            let cert = Certificate::from_pem(&sid.id_bytes)
                .map_err(|e| PolicyError::Malformed(format!("identity principal: {e}")))?;
            Ok(Principal::Identity { msp_id: sid.mspid, certificate_der: cert.der().to_vec() })
        }
        Ok(Classification::Anonymity) => {
            let a = MspIdentityAnonymity::decode(principal.principal.as_ref())
                .map_err(|e| bad("MSPIdentityAnonymity", e))?;
            Ok(Principal::Anonymity { anonymous: a.anonymity_type != 0 })
        }
        Ok(Classification::Combined) => {
            let c = CombinedPrincipal::decode(principal.principal.as_ref())
                .map_err(|e| bad("CombinedPrincipal", e))?;
            if c.principals.is_empty() {
                return Err(PolicyError::Malformed("combined principal with no principals".into()));
            }
            Ok(Principal::Combined(
                c.principals.iter().map(|p| compile_principal(p, depth + 1)).collect::<Result<_, _>>()?,
            ))
        }
        Err(_) => Err(PolicyError::Malformed(format!(
            "unknown principal classification {}",
            principal.principal_classification
        ))),
    }
}

fn satisfies(identity: &Identity, principal: &Principal) -> bool {
    use msp_role::MspRoleType;
    match principal {
        Principal::Role { msp_id, role } => {
            identity.msp_id() == msp_id
                && match role {
                    MspRoleType::Member => true,
                    MspRoleType::Admin => identity.is_admin(),
                    MspRoleType::Client => identity.role() == Some(NodeRole::Client),
                    MspRoleType::Peer => identity.role() == Some(NodeRole::Peer),
                    MspRoleType::Orderer => identity.role() == Some(NodeRole::Orderer),
                }
        }
        Principal::OrganizationUnit { msp_id, ou, certifiers_id } => {
            identity.msp_id() == msp_id
                && identity.certificate().organizational_units().contains(ou)
                && certifiers_id.as_slice() == identity.certifiers_id()
        }
        Principal::Identity { msp_id, certificate_der } => {
            identity.msp_id() == msp_id && identity.certificate().der() == certificate_der.as_slice()
        }
        // X.509 identities are never anonymous.
        Principal::Anonymity { anonymous } => !anonymous,
        Principal::Combined(all) => all.iter().all(|p| satisfies(identity, p)),
    }
}

// ---------------------------------------------------------------------------------------
// The policy language: AND('A.peer', OR('B.admin', 'C.member')), OutOf(2, ...).

/// Parses Fabric's policy language into a `SignaturePolicyEnvelope`, as Fabric's
/// `policydsl.FromString` does: principals are numbered in order of appearance.
pub fn parse_policy(text: &str) -> Result<SignaturePolicyEnvelope, PolicyError> {
    let mut parser = Parser { text, pos: 0, depth: 0, principals: Vec::new() };
    let rule = parser.expression()?;
    parser.skip_whitespace();
    if parser.pos != text.len() {
        return Err(parser.error("unexpected text after the policy"));
    }
    if !matches!(rule.r#type, Some(signature_policy::Type::NOutOf(_))) {
        return Err(PolicyError::Syntax { at: 0, why: "a policy must start with AND, OR or OutOf".into() });
    }
    Ok(SignaturePolicyEnvelope { version: 0, rule: Some(rule), identities: parser.principals })
}

/// Deepest nesting of AND/OR/OutOf the policy language accepts.
const MAX_POLICY_DEPTH: usize = 32;

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
    principals: Vec<MspPrincipal>,
}

impl Parser<'_> {
    fn error(&self, why: &str) -> PolicyError {
        PolicyError::Syntax { at: self.pos, why: why.into() }
    }

    fn skip_whitespace(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_whitespace();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expression(&mut self) -> Result<medfabric_proto::common::SignaturePolicy, PolicyError> {
        self.depth += 1;
        if self.depth > MAX_POLICY_DEPTH {
            return Err(self.error("policy nested too deeply"));
        }
        let result = self.expression_inner();
        self.depth -= 1;
        result
    }

    fn expression_inner(&mut self) -> Result<medfabric_proto::common::SignaturePolicy, PolicyError> {
        self.skip_whitespace();
        let rest = &self.text[self.pos..];
        if rest.starts_with('\'') || rest.starts_with('"') {
            return self.principal();
        }
        let word_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        let word = rest[..word_len].to_ascii_lowercase();
        self.pos += word_len;
        if !self.eat('(') {
            return Err(self.error("expected '(' after AND, OR or OutOf"));
        }
        let n = match word.as_str() {
            "and" | "or" => None,
            "outof" => {
                self.skip_whitespace();
                let digits = self.text[self.pos..]
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(self.text.len() - self.pos);
                let n: i32 = self.text[self.pos..self.pos + digits]
                    .parse()
                    .map_err(|_| self.error("OutOf needs a count as its first argument"))?;
                self.pos += digits;
                if !self.eat(',') {
                    return Err(self.error("expected ',' after the OutOf count"));
                }
                Some(n)
            }
            _ => {
                return Err(PolicyError::Syntax {
                    at: self.pos - word_len,
                    why: format!("unknown operator {:?}; expected AND, OR or OutOf", &rest[..word_len]),
                });
            }
        };
        let mut rules = vec![self.expression()?];
        while self.eat(',') {
            rules.push(self.expression()?);
        }
        if !self.eat(')') {
            return Err(self.error("expected ')' or ','"));
        }
        let n = match (word.as_str(), n) {
            ("and", _) => rules.len() as i32,
            ("or", _) => 1,
            (_, Some(n)) => n,
            _ => unreachable!("operator checked above"),
        };
        Ok(medfabric_proto::common::SignaturePolicy {
            r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf { n, rules })),
        })
    }

    fn principal(&mut self) -> Result<medfabric_proto::common::SignaturePolicy, PolicyError> {
        let quote = self.text[self.pos..].chars().next().unwrap_or('\'');
        let start = self.pos + 1;
        let len = self.text[start..].find(quote).ok_or_else(|| self.error("unterminated quote"))?;
        let body = &self.text[start..start + len];
        let (msp_id, role) = body.rsplit_once('.').ok_or_else(|| PolicyError::Syntax {
            at: start,
            why: format!("principal {body:?} must be 'MSPID.role'"),
        })?;
        use msp_role::MspRoleType;
        let role = match role {
            "member" => MspRoleType::Member,
            "admin" => MspRoleType::Admin,
            "client" => MspRoleType::Client,
            "peer" => MspRoleType::Peer,
            "orderer" => MspRoleType::Orderer,
            other => {
                return Err(PolicyError::Syntax {
                    at: start,
                    why: format!("unknown role {other:?}; expected member, admin, client, peer or orderer"),
                });
            }
        };
        if msp_id.is_empty() {
            return Err(PolicyError::Syntax { at: start, why: "empty MSP id".into() });
        }
        self.pos = start + len + 1;
        let index = self.principals.len() as i32;
        self.principals.push(MspPrincipal {
            principal_classification: msp_principal::Classification::Role as i32,
            principal: MspRole { msp_identifier: msp_id.to_owned(), role: role as i32 }
                .encode_to_vec()
                .into(),
        });
        Ok(medfabric_proto::common::SignaturePolicy { r#type: Some(signature_policy::Type::SignedBy(index)) })
    }
}

/// Renders a signature policy in the policy language (for humans and JSON reports).
pub fn policy_to_string(envelope: &SignaturePolicyEnvelope) -> String {
    fn principal(p: &MspPrincipal) -> String {
        if p.principal_classification == msp_principal::Classification::Role as i32
            && let Ok(role) = MspRole::decode(p.principal.as_ref())
        {
            let name = msp_role::MspRoleType::try_from(role.role)
                .map(|r| r.as_str_name().to_ascii_lowercase())
                .unwrap_or_else(|_| role.role.to_string());
            return format!("'{}.{}'", role.msp_identifier, name);
        }
        format!("'<principal classification {}>'", p.principal_classification)
    }
    fn rule(r: &medfabric_proto::common::SignaturePolicy, ids: &[MspPrincipal]) -> String {
        match r.r#type.as_ref() {
            Some(signature_policy::Type::SignedBy(i)) => {
                ids.get(*i as usize).map(principal).unwrap_or_else(|| format!("<#{i}>"))
            }
            Some(signature_policy::Type::NOutOf(n)) => {
                let inner: Vec<String> = n.rules.iter().map(|r| rule(r, ids)).collect();
                if n.n as usize == n.rules.len() && n.n > 1 {
                    format!("AND({})", inner.join(", "))
                } else if n.n == 1 {
                    format!("OR({})", inner.join(", "))
                } else {
                    format!("OutOf({}, {})", n.n, inner.join(", "))
                }
            }
            None => "<empty>".into(),
        }
    }
    envelope.rule.as_ref().map(|r| rule(r, &envelope.identities)).unwrap_or_else(|| "<empty>".into())
}

// ---------------------------------------------------------------------------------------
// Policies of a channel config tree.

#[derive(Debug, Clone)]
enum TreePolicy {
    Signature(SignaturePolicy),
    ImplicitMeta { sub_policy: String, rule: implicit_meta_policy::Rule },
}

/// The policies of a channel config tree, by path (`/Channel/Orderer/BlockValidation`).
#[derive(Debug, Clone, Default)]
pub struct PolicyTree {
    policies: BTreeMap<String, TreePolicy>,
    children: BTreeMap<String, Vec<String>>,
}

impl PolicyTree {
    /// Builds the tree of a config group named `name` (normally `Channel`).
    pub fn from_config_group(name: &str, group: &ConfigGroup) -> Result<Self, PolicyError> {
        let mut tree = Self::default();
        tree.add_group(&format!("/{name}"), group)?;
        Ok(tree)
    }

    fn add_group(&mut self, path: &str, group: &ConfigGroup) -> Result<(), PolicyError> {
        for (name, config_policy) in &group.policies {
            let Some(policy) = &config_policy.policy else { continue };
            let full = format!("{path}/{name}");
            self.policies.insert(
                full.clone(),
                compile_tree_policy(policy).map_err(|e| PolicyError::Malformed(format!("{full}: {e}")))?,
            );
        }
        let mut children = Vec::new();
        for (name, child) in &group.groups {
            let child_path = format!("{path}/{name}");
            self.add_group(&child_path, child)?;
            children.push(child_path);
        }
        self.children.insert(path.to_owned(), children);
        Ok(())
    }

    pub fn contains(&self, path: &str) -> bool {
        self.policies.contains_key(path)
    }

    /// Paths of all policies, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }

    /// A human-readable form of the policy at `path`.
    pub fn describe(&self, path: &str) -> Option<String> {
        self.policies.get(path).map(|p| match p {
            TreePolicy::Signature(_) => "signature policy".to_owned(),
            TreePolicy::ImplicitMeta { sub_policy, rule } => {
                format!("{} {}", rule.as_str_name(), sub_policy)
            }
        })
    }

    /// The child groups an implicit-meta policy at `path` counts, and how many of their
    /// sub-policies must be satisfied. Every child group counts; one that lacks the
    /// sub-policy rejects (Fabric gives it a reject policy). Only a group with no children
    /// passes vacuously.
    fn implicit_meta(&self, path: &str, rule: implicit_meta_policy::Rule) -> (&[String], usize) {
        let group = path.rsplit_once('/').map_or("", |(g, _)| g);
        let children = self.children.get(group).map(Vec::as_slice).unwrap_or(&[]);
        let threshold = match rule {
            _ if children.is_empty() => 0,
            implicit_meta_policy::Rule::Any => 1,
            implicit_meta_policy::Rule::All => children.len(),
            implicit_meta_policy::Rule::Majority => children.len() / 2 + 1,
        };
        (children, threshold)
    }

    /// Evaluates the policy at `path` over already-validated identities.
    pub fn evaluate(&self, path: &str, identities: &[Arc<Identity>]) -> Result<bool, PolicyError> {
        let policy = self.policies.get(path).ok_or_else(|| PolicyError::NotFound(path.into()))?;
        match policy {
            TreePolicy::Signature(p) => Ok(p.evaluate(identities)),
            TreePolicy::ImplicitMeta { sub_policy, rule } => {
                let (children, threshold) = self.implicit_meta(path, *rule);
                let mut satisfied = 0;
                for child in children {
                    let sub = format!("{child}/{sub_policy}");
                    if self.policies.contains_key(&sub) && self.evaluate(&sub, identities)? {
                        satisfied += 1;
                        if satisfied >= threshold {
                            break;
                        }
                    }
                }
                Ok(satisfied >= threshold)
            }
        }
    }

    /// Why the policy at `path` is not satisfied by `identities`, in Fabric's words
    /// (`implicit policy evaluation failed - 0 sub-policies were satisfied, but this
    /// policy requires 1 of the 'Writers' sub-policies to be satisfied`).
    pub fn failure_message(&self, path: &str, identities: &[Arc<Identity>]) -> String {
        match self.policies.get(path) {
            None => format!("policy {path} not found"),
            Some(TreePolicy::Signature(_)) => "signature set did not satisfy policy".to_owned(),
            Some(TreePolicy::ImplicitMeta { sub_policy, rule }) => {
                let (children, threshold) = self.implicit_meta(path, *rule);
                let satisfied = children
                    .iter()
                    .map(|child| format!("{child}/{sub_policy}"))
                    .filter(|sub| self.evaluate(sub, identities).unwrap_or(false))
                    .count();
                format!(
                    "implicit policy evaluation failed - {satisfied} sub-policies were satisfied, but this policy requires {threshold} of the '{sub_policy}' sub-policies to be satisfied"
                )
            }
        }
    }

    /// Deserializes, de-duplicates and verifies `signed`, then evaluates `path`.
    pub fn evaluate_signed(
        &self,
        path: &str,
        signed: &[SignedData<'_>],
        msps: &MspManager,
    ) -> Result<bool, PolicyError> {
        if !self.policies.contains_key(path) {
            return Err(PolicyError::NotFound(path.into()));
        }
        self.evaluate(path, &valid_identities(signed, msps))
    }
}

fn compile_tree_policy(policy: &Policy) -> Result<TreePolicy, PolicyError> {
    match policy::PolicyType::try_from(policy.r#type) {
        Ok(policy::PolicyType::Signature) => {
            Ok(TreePolicy::Signature(SignaturePolicy::from_bytes(&policy.value)?))
        }
        Ok(policy::PolicyType::ImplicitMeta) => {
            let meta = ImplicitMetaPolicy::decode(policy.value.as_ref())
                .map_err(|e| PolicyError::Malformed(format!("ImplicitMetaPolicy: {e}")))?;
            let rule = implicit_meta_policy::Rule::try_from(meta.rule)
                .map_err(|_| PolicyError::Malformed(format!("unknown implicit meta rule {}", meta.rule)))?;
            Ok(TreePolicy::ImplicitMeta { sub_policy: meta.sub_policy, rule })
        }
        _ => Err(PolicyError::Malformed(format!("unsupported policy type {}", policy.r#type))),
    }
}
