//! Endorsement planning for the gateway: which other organizations' peers must endorse a
//! proposal, decided from the chaincode interest of this peer's own endorsement. Pure: the
//! channel context, the interest and the peers that are up come in; a plan comes out.

use std::sync::Arc;

use medfabric_msp::{Identity, SignaturePolicy};
use medfabric_proto::protos::ChaincodeInterest;
use medfabric_types::lifecycle::{Collection, Definition, EndorsementPolicy, LIFECYCLE_NAMESPACE};

use crate::validator::ChannelContext;

/// Most organizations a plan chooses among (the search is over their subsets).
pub const MAX_PLANNED_ORGS: usize = 16;

/// A peer of another organization that can endorse now.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub msp_id: &'a str,
    /// Its serialized signing identity (`SerializedIdentity` bytes).
    pub identity: &'a [u8],
}

/// What a plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct PlanRequest<'a> {
    pub context: &'a ChannelContext,
    /// The interest this peer's own endorsement reported.
    pub interest: &'a ChaincodeInterest,
    /// The proposal carries transient data (private inputs).
    pub has_transient: bool,
    /// `(namespace, collection)` pairs the endorsed read-write set writes to.
    pub written: &'a [(String, String)],
    /// This peer's organization and serialized identity: always part of the plan.
    pub own_msp: &'a str,
    pub own_identity: &'a [u8],
    /// Peers of other organizations that are up, in preference order (the first of each
    /// organization counts).
    pub candidates: &'a [Candidate<'a>],
}

/// The fewest other organizations (first found among equals, in candidate order) whose
/// peers, with this one, satisfy every policy the interest names: each chaincode's
/// endorsement policy (unless only key-level or collection policies apply to it), each
/// key-level policy and the policy of each collection written. Endorsers that must read
/// private data — and, when the proposal carries transient data, every endorser — come
/// only from member organizations of the collections named, so private inputs reach no
/// one else.
pub fn plan(request: &PlanRequest<'_>) -> Result<Vec<String>, String> {
    let PlanRequest { context, interest, has_transient, written, .. } = *request;
    let resources = &context.resources;
    let mut definitions: Vec<&Definition> = Vec::new();
    let mut key_policies: Vec<SignaturePolicy> = Vec::new();
    let mut collection_policies: Vec<EndorsementPolicy> = Vec::new();
    let mut member_of: Vec<Collection> = Vec::new();
    for call in interest.chaincodes.iter().filter(|c| c.name != LIFECYCLE_NAMESPACE) {
        let definition = context.registry.get(&call.name).ok_or_else(|| {
            format!(
                "No metadata was found for chaincode {} in channel {}",
                call.name, resources.config.channel_id
            )
        })?;
        if !call.disregard_namespace_policy {
            definitions.push(definition);
        }
        for policy in &call.key_policies {
            key_policies.push(SignaturePolicy::from_envelope(policy).map_err(|e| e.to_string())?);
        }
        for name in &call.collection_names {
            let collection = definition
                .collection(name, resources)
                .ok_or_else(|| format!("collection {name} is not defined for chaincode {}", call.name))?;
            // A collection's policy governs writes to it only.
            if written.iter().any(|(ns, c)| *ns == call.name && c == name) {
                collection_policies.extend(collection.endorsement_policy.clone());
            }
            if has_transient || !call.no_private_reads {
                member_of.push(collection);
            }
        }
    }
    let identity_of = |serialized: &[u8]| resources.msps.deserialize(serialized).ok();
    let own = identity_of(request.own_identity).ok_or("this peer's identity is not valid on the channel")?;
    let mut others: Vec<(&str, Arc<Identity>)> = Vec::new();
    for candidate in request.candidates {
        if candidate.msp_id != request.own_msp
            && !others.iter().any(|(m, _)| *m == candidate.msp_id)
            && let Some(identity) = identity_of(candidate.identity)
            && member_of.iter().all(|c| c.is_member(&identity))
        {
            others.push((candidate.msp_id, identity));
        }
    }
    others.truncate(MAX_PLANNED_ORGS);
    let satisfied = |identities: &[Arc<Identity>]| -> bool {
        definitions.iter().all(|d| d.policy.evaluate(identities, resources).unwrap_or(false))
            && key_policies.iter().all(|p| p.evaluate(identities))
            && collection_policies.iter().all(|p| p.evaluate(identities, resources).unwrap_or(false))
    };
    let mut subsets: Vec<u32> = (0..1u32 << others.len()).collect();
    subsets.sort_by_key(|s| (s.count_ones(), *s));
    for subset in subsets {
        let chosen: Vec<usize> = (0..others.len()).filter(|i| subset & (1 << i) != 0).collect();
        let mut identities = vec![own.clone()];
        identities.extend(chosen.iter().map(|i| others[*i].1.clone()));
        if satisfied(&identities) {
            return Ok(chosen.iter().map(|i| others[*i].0.to_owned()).collect());
        }
    }
    Err(format!(
        "no set of organizations among {} satisfies the policies of {}",
        std::iter::once(request.own_msp).chain(others.iter().map(|(m, _)| *m)).collect::<Vec<_>>().join(", "),
        interest.chaincodes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use medfabric_msp::{SigningIdentity, node_ou_msp_config, parse_policy};
    use medfabric_proto::common::SignaturePolicyEnvelope;
    use medfabric_proto::medfabric::config::ChaincodeDefinition;
    use medfabric_proto::protos::{ChaincodeCall, ChaincodeInterest, CollectionConfigPackage};
    use medfabric_types::lifecycle::ChaincodeRegistry;
    use medfabric_types::{ChannelResources, ChannelSpec, OrgSpec};

    use super::*;
    use crate::testnet::{TestOrg, channel_spec, collection, policy};

    const ORGS: [&str; 3] = ["AMSP", "BMSP", "CMSP"];

    struct World {
        context: ChannelContext,
        peers: Vec<SigningIdentity>,
    }

    /// Three organizations; chaincodes `any` (OR of all), `ab` (AND of A and B), `two`
    /// (2 of 3) with collection `abonly` (members A and B) and `written` (members all,
    /// endorsement policy AND of A and C).
    fn world() -> World {
        let orgs: Vec<TestOrg> = ORGS.iter().map(|m| TestOrg::new(m)).collect();
        let orderer = TestOrg::new("OrdererMSP");
        let definition = |name: &str, text: &str| ChaincodeDefinition {
            name: name.into(),
            version: "1.0".into(),
            sequence: 1,
            endorsement_policy: Some(policy(text)),
            ..Default::default()
        };
        let mut guarded = collection("written", "OR('AMSP.member', 'BMSP.member', 'CMSP.member')", 0);
        if let Some(medfabric_proto::protos::collection_config::Payload::StaticCollectionConfig(c)) =
            &mut guarded.payload
        {
            c.endorsement_policy = Some(policy("AND('AMSP.peer', 'CMSP.peer')"));
        }
        let applications = orgs
            .iter()
            .map(|o| {
                OrgSpec::application(
                    &o.msp_id,
                    node_ou_msp_config(&o.msp_id, o.ca.certificate_pem().as_bytes()),
                )
            })
            .collect();
        let spec = ChannelSpec {
            chaincodes: vec![
                definition("any", "OR('AMSP.peer', 'BMSP.peer', 'CMSP.peer')"),
                definition("ab", "AND('AMSP.peer', 'BMSP.peer')"),
                ChaincodeDefinition {
                    collections: Some(CollectionConfigPackage {
                        config: vec![collection("abonly", "OR('AMSP.member', 'BMSP.member')", 0), guarded],
                    }),
                    ..definition("two", "OutOf(2, 'AMSP.peer', 'BMSP.peer', 'CMSP.peer')")
                },
            ],
            ..channel_spec("planchannel", &orderer, applications)
        };
        let genesis = spec
            .genesis_block(medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 })
            .expect("genesis block");
        let resources = ChannelResources::from_config_block(&genesis).expect("resources");
        let registry = ChaincodeRegistry::from_config(&resources.config).expect("definitions");
        World {
            context: ChannelContext::new(Arc::new(resources), registry),
            peers: orgs.iter().map(|o| o.identity("peer0", "peer")).collect(),
        }
    }

    fn call(name: &str, collections: &[&str], no_private_reads: bool) -> ChaincodeCall {
        ChaincodeCall {
            name: name.into(),
            collection_names: collections.iter().map(|c| (*c).into()).collect(),
            no_private_reads,
            ..Default::default()
        }
    }

    fn key_policy(text: &str) -> SignaturePolicyEnvelope {
        parse_policy(text).expect("policy")
    }

    #[test]
    fn plans_follow_policies_membership_and_the_peers_that_are_up() {
        let world = world();
        let with_key_policy = ChaincodeCall {
            key_policies: vec![key_policy("AND('AMSP.peer', 'CMSP.peer')")],
            disregard_namespace_policy: true,
            ..call("ab", &[], true)
        };
        // (what, calls, has transient, written, own org, orgs up, expected plan or error)
        type Row<'a> = (
            &'a str,
            Vec<ChaincodeCall>,
            bool,
            Vec<(&'a str, &'a str)>,
            usize,
            Vec<usize>,
            Result<Vec<&'a str>, &'a str>,
        );
        let table: Vec<Row> = vec![
            ("one org satisfies OR", vec![call("any", &[], true)], false, vec![], 0, vec![1, 2], Ok(vec![])),
            ("AND needs B", vec![call("ab", &[], true)], false, vec![], 0, vec![1, 2], Ok(vec!["BMSP"])),
            (
                "AND with B down",
                vec![call("ab", &[], true)],
                false,
                vec![],
                0,
                vec![2],
                Err("no set of organizations among AMSP, CMSP"),
            ),
            (
                "AND from B's peer",
                vec![call("ab", &[], true)],
                false,
                vec![],
                1,
                vec![0, 2],
                Ok(vec!["AMSP"]),
            ),
            (
                "2 of 3: the first",
                vec![call("two", &[], true)],
                false,
                vec![],
                0,
                vec![1, 2],
                Ok(vec!["BMSP"]),
            ),
            ("2 of 3 with B down", vec![call("two", &[], true)], false, vec![], 0, vec![2], Ok(vec!["CMSP"])),
            (
                "2 of 3, all others down",
                vec![call("two", &[], true)],
                false,
                vec![],
                0,
                vec![],
                Err("no set of organizations among AMSP satisfies the policies of two"),
            ),
            (
                "private reads: members only",
                vec![call("two", &["abonly"], false)],
                false,
                vec![],
                0,
                vec![2, 1],
                Ok(vec!["BMSP"]),
            ),
            (
                "private reads, the member down",
                vec![call("two", &["abonly"], false)],
                false,
                vec![],
                0,
                vec![2],
                Err("no set of organizations"),
            ),
            (
                "no private reads: anyone",
                vec![call("two", &["abonly"], true)],
                false,
                vec![],
                0,
                vec![2, 1],
                Ok(vec!["CMSP"]),
            ),
            (
                "transient data: members only",
                vec![call("two", &["abonly"], true)],
                true,
                vec![],
                0,
                vec![2, 1],
                Ok(vec!["BMSP"]),
            ),
            (
                "collection policy when written",
                vec![call("two", &["written"], true)],
                false,
                vec![("two", "written")],
                0,
                vec![1, 2],
                Ok(vec!["CMSP"]),
            ),
            (
                "collection policy ignored when not written",
                vec![call("two", &["written"], true)],
                false,
                vec![],
                0,
                vec![1, 2],
                Ok(vec!["BMSP"]),
            ),
            (
                "key-level policy instead of the chaincode's",
                vec![with_key_policy],
                false,
                vec![],
                0,
                vec![1, 2],
                Ok(vec!["CMSP"]),
            ),
            (
                "two chaincodes: both policies",
                vec![call("ab", &[], true), call("two", &["written"], true)],
                false,
                vec![("two", "written")],
                0,
                vec![1, 2],
                Ok(vec!["BMSP", "CMSP"]),
            ),
            (
                "unknown chaincode",
                vec![call("nope", &[], true)],
                false,
                vec![],
                0,
                vec![1, 2],
                Err("No metadata was found for chaincode nope in channel"),
            ),
            (
                "unknown collection",
                vec![call("two", &["nope"], false)],
                false,
                vec![],
                0,
                vec![1, 2],
                Err("collection nope is not defined for chaincode two"),
            ),
            (
                "_lifecycle is not planned",
                vec![call(LIFECYCLE_NAMESPACE, &[], true), call("any", &[], true)],
                false,
                vec![],
                0,
                vec![1],
                Ok(vec![]),
            ),
        ];
        for (what, chaincodes, has_transient, written, own, up, expected) in table {
            let interest = ChaincodeInterest { chaincodes };
            let written: Vec<(String, String)> =
                written.iter().map(|(n, c)| ((*n).to_owned(), (*c).to_owned())).collect();
            let candidates: Vec<Candidate> = up
                .iter()
                .map(|i| Candidate { msp_id: ORGS[*i], identity: world.peers[*i].serialized() })
                .collect();
            let planned = plan(&PlanRequest {
                context: &world.context,
                interest: &interest,
                has_transient,
                written: &written,
                own_msp: ORGS[own],
                own_identity: world.peers[own].serialized(),
                candidates: &candidates,
            });
            match (planned, expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{what}: {got}"),
                (got, want) => panic!("{what}: planned {got:?}, expected {want:?}"),
            }
        }
    }
}
