//! A synthetic channel with fresh crypto material, for tests and benchmarks: two
//! application orgs with a peer and a client each, an orderer org, and the `kv`
//! chaincode defined twice — `kv` with `OR(Org1.peer, Org2.peer)` and `kvand` with
//! `AND(Org1.peer, Org2.peer)`. `kv` has private data collections `both` (members Org1
//! and Org2) and `org1` (Org1 only, block-to-live 1). Clients build proposals, endorse them through real
//! [`Endorser`]s and assemble envelopes; the orderer identity signs blocks.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use medfabric_ca::{CertificateAuthority, LeafRequest, Name, Validity};
use medfabric_msp::{SigningIdentity, node_ou_msp_config, parse_policy};
use medfabric_proto::common::{Block, Envelope};
use medfabric_proto::etcdraft;
use medfabric_proto::medfabric::config::ChaincodeDefinition;
use medfabric_proto::orderer::BatchSize;
use medfabric_proto::protos::{
    self, ApplicationPolicy, CollectionConfig, CollectionConfigPackage, CollectionPolicyConfig,
    ProposalResponse, StaticCollectionConfig, application_policy, collection_config,
    collection_policy_config,
};
use medfabric_shim::Chaincode;
use medfabric_types::endorsement::{assemble_transaction, sign_envelope};
use medfabric_types::{ChannelSpec, OrgSpec, ProposalBuilder, SignedProposal, block};
use prost::Message;
use time::OffsetDateTime;

use crate::channel::Channel;
use crate::endorser::Endorser;
use crate::ledger::Store;

pub const CHANNEL: &str = "testchannel";

/// An org's root CA.
pub struct TestOrg {
    pub msp_id: String,
    pub ca: CertificateAuthority,
}

impl std::fmt::Debug for TestOrg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestOrg").field("msp_id", &self.msp_id).finish()
    }
}

impl TestOrg {
    pub fn new(msp_id: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        let ca = CertificateAuthority::new_root(
            &Name::fabric_style(&format!("ca.{msp_id}"), Some(msp_id), &[]),
            Validity::days_from(now - time::Duration::hours(1), 365),
        )
        .unwrap_or_else(|e| panic!("test CA for {msp_id}: {e}"));
        Self { msp_id: msp_id.into(), ca }
    }

    /// A fresh identity with NodeOU `ou` (client, peer, admin, orderer).
    pub fn identity(&self, cn: &str, ou: &str) -> SigningIdentity {
        self.identity_with(cn, ou, BTreeMap::new())
    }

    /// A fresh identity with certificate attributes.
    pub fn identity_with(&self, cn: &str, ou: &str, attributes: BTreeMap<String, String>) -> SigningIdentity {
        let (certificate_pem, key_pem) = self.issue(cn, ou, attributes);
        SigningIdentity::new(&self.msp_id, certificate_pem.as_bytes(), &key_pem)
            .unwrap_or_else(|e| panic!("identity {cn}: {e}"))
    }

    /// A fresh certificate and key (PEM).
    pub fn issue(&self, cn: &str, ou: &str, attributes: BTreeMap<String, String>) -> (String, String) {
        let now = OffsetDateTime::now_utc();
        let request =
            LeafRequest::enrollment(cn, ou, Validity::days_from(now - time::Duration::hours(1), 30))
                .with_attributes(attributes);
        let issued = self.ca.issue(&request).unwrap_or_else(|e| panic!("issuing {cn}: {e}"));
        let key_pem = issued.key_pem();
        (issued.certificate_pem, key_pem)
    }

    /// Writes an MSP folder (`signcerts/`, `keystore/`) for a fresh identity and
    /// returns it loaded.
    pub fn write_msp_dir(&self, cn: &str, ou: &str, dir: &Path) -> std::io::Result<SigningIdentity> {
        let (certificate_pem, key_pem) = self.issue(cn, ou, BTreeMap::new());
        std::fs::create_dir_all(dir.join("signcerts"))?;
        std::fs::create_dir_all(dir.join("keystore"))?;
        std::fs::write(dir.join("signcerts").join("cert.pem"), &certificate_pem)?;
        std::fs::write(dir.join("keystore").join("key.pem"), &key_pem)?;
        SigningIdentity::from_msp_dir(dir, &self.msp_id).map_err(std::io::Error::other)
    }
}

/// The channel's genesis block and its members' identities.
pub struct TestNetwork {
    pub genesis: Block,
    pub org1: TestOrg,
    pub org2: TestOrg,
    pub client1: SigningIdentity,
    pub client2: SigningIdentity,
    pub peer1: Arc<SigningIdentity>,
    pub peer2: Arc<SigningIdentity>,
    pub orderer: SigningIdentity,
}

impl std::fmt::Debug for TestNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNetwork").finish_non_exhaustive()
    }
}

pub(crate) fn policy(text: &str) -> ApplicationPolicy {
    ApplicationPolicy {
        r#type: Some(application_policy::Type::SignaturePolicy(
            parse_policy(text).unwrap_or_else(|e| panic!("policy {text}: {e}")),
        )),
    }
}

pub(crate) fn collection(name: &str, members: &str, block_to_live: u64) -> CollectionConfig {
    CollectionConfig {
        payload: Some(collection_config::Payload::StaticCollectionConfig(StaticCollectionConfig {
            name: name.into(),
            member_orgs_policy: Some(CollectionPolicyConfig {
                payload: Some(collection_policy_config::Payload::SignaturePolicy(
                    parse_policy(members).unwrap_or_else(|e| panic!("policy {members}: {e}")),
                )),
            }),
            required_peer_count: 0,
            maximum_peer_count: 1,
            block_to_live,
            member_only_read: true,
            member_only_write: true,
            endorsement_policy: None,
        })),
    }
}

/// A channel of `application_orgs` ordered by one Raft consenter of `orderer` on
/// loopback, without chaincodes or role grants: what test channels are built from.
pub(crate) fn channel_spec(
    channel_id: &str,
    orderer: &TestOrg,
    application_orgs: Vec<OrgSpec>,
) -> ChannelSpec {
    ChannelSpec {
        channel_id: channel_id.into(),
        orderer_orgs: vec![OrgSpec::orderer(
            "Orderer",
            node_ou_msp_config(&orderer.msp_id, orderer.ca.certificate_pem().as_bytes()),
        )],
        application_orgs,
        orderer_addresses: vec!["127.0.0.1:7050".into()],
        consenters: vec![etcdraft::Consenter { host: "127.0.0.1".into(), port: 7052, ..Default::default() }],
        raft_options: etcdraft::Options::default(),
        batch_size: BatchSize {
            max_message_count: 500,
            absolute_max_bytes: 10 << 20,
            preferred_max_bytes: 2 << 20,
        },
        batch_timeout_ms: 200,
        chaincodes: Vec::new(),
        roles: Default::default(),
        record_keys: Default::default(),
    }
}

impl Default for TestNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl TestNetwork {
    pub fn new() -> Self {
        let (org1, org2, ord) =
            (TestOrg::new("Org1MSP"), TestOrg::new("Org2MSP"), TestOrg::new("OrdererMSP"));
        let definition = |name: &str, text: &str| ChaincodeDefinition {
            name: name.into(),
            version: "1.0".into(),
            sequence: 1,
            endorsement_policy: Some(policy(text)),
            ..Default::default()
        };
        let spec = ChannelSpec {
            chaincodes: vec![
                ChaincodeDefinition {
                    collections: Some(CollectionConfigPackage {
                        config: vec![
                            collection("both", "OR('Org1MSP.member', 'Org2MSP.member')", 0),
                            collection("org1", "OR('Org1MSP.member')", 1),
                        ],
                    }),
                    ..definition("kv", "OR('Org1MSP.peer', 'Org2MSP.peer')")
                },
                definition("kvand", "AND('Org1MSP.peer', 'Org2MSP.peer')"),
            ],
            ..channel_spec(
                CHANNEL,
                &ord,
                vec![
                    OrgSpec::application(
                        "Org1",
                        node_ou_msp_config("Org1MSP", org1.ca.certificate_pem().as_bytes()),
                    ),
                    OrgSpec::application(
                        "Org2",
                        node_ou_msp_config("Org2MSP", org2.ca.certificate_pem().as_bytes()),
                    ),
                ],
            )
        };
        let genesis = spec
            .genesis_block(medfabric_proto::Timestamp { seconds: 1_800_000_000, nanos: 0 })
            .unwrap_or_else(|e| panic!("genesis block: {e}"));
        Self {
            genesis,
            client1: org1.identity("alice", "client"),
            client2: org2.identity("bob", "client"),
            peer1: Arc::new(org1.identity("peer0.org1", "peer")),
            peer2: Arc::new(org2.identity("peer0.org2", "peer")),
            orderer: ord.identity("orderer0", "orderer"),
            org1,
            org2,
        }
    }

    /// The chaincodes a test peer runs: the kv chaincode under both definitions.
    pub fn chaincodes() -> BTreeMap<String, Arc<dyn Chaincode>> {
        let kv: Arc<dyn Chaincode> = Arc::new(medfabric_kv::chaincode());
        BTreeMap::from([("kv".to_owned(), kv.clone()), ("kvand".to_owned(), kv)])
    }

    /// Opens a peer ledger in `dir` and an endorser signing as `signer`.
    pub fn peer(&self, dir: &Path, signer: Arc<SigningIdentity>) -> (Arc<Channel>, Endorser) {
        let store = Store::open(dir).unwrap_or_else(|e| panic!("ledger at {}: {e}", dir.display()));
        let channel =
            Arc::new(Channel::open(&store, &self.genesis).unwrap_or_else(|e| panic!("channel: {e}")));
        channel.set_member_identity(signer.serialized().clone());
        let channels = BTreeMap::from([(CHANNEL.to_owned(), channel.clone())]);
        (channel, Endorser::new(channels, Self::chaincodes(), signer))
    }

    /// A signed proposal invoking `chaincode` with `args`; `seq` makes timestamps differ.
    pub fn proposal(
        &self,
        creator: &SigningIdentity,
        chaincode: &str,
        args: &[&str],
        seq: u64,
    ) -> protos::SignedProposal {
        self.proposal_with_transient(creator, chaincode, args, &[], seq)
    }

    /// [`TestNetwork::proposal`] with transient data.
    pub fn proposal_with_transient(
        &self,
        creator: &SigningIdentity,
        chaincode: &str,
        args: &[&str],
        transient: &[(&str, &[u8])],
        seq: u64,
    ) -> protos::SignedProposal {
        let builder = args.iter().fold(ProposalBuilder::new(CHANNEL, chaincode), |b, a| {
            b.arg(Bytes::copy_from_slice(a.as_bytes()))
        });
        let builder = transient.iter().fold(builder, |b, (k, v)| b.transient(k, v.to_vec()));
        let seconds = 1_800_000_100 + i64::try_from(seq).unwrap_or(0);
        builder.sign(creator, medfabric_proto::Timestamp { seconds, nanos: 0 })
    }

    /// The envelope a client submits: the endorsements assembled and signed.
    pub fn envelope(
        &self,
        creator: &SigningIdentity,
        signed: &protos::SignedProposal,
        responses: &[ProposalResponse],
    ) -> Envelope {
        let proposal = SignedProposal::parse(signed).unwrap_or_else(|e| panic!("proposal: {e}"));
        let mut envelope =
            assemble_transaction(&proposal, responses).unwrap_or_else(|e| panic!("assembling: {e}"));
        sign_envelope(&mut envelope, creator);
        envelope
    }

    /// An orderer-signed block after `previous` holding `envelopes`.
    pub fn block(&self, previous: &Block, envelopes: &[Envelope]) -> Block {
        let header = block::header(previous);
        let mut b = block::new_block(
            header.number + 1,
            &block::header_hash(header),
            envelopes.iter().map(|e| e.encode_to_vec().into()).collect(),
        );
        block::sign_block(&mut b, &self.orderer, 0, Bytes::new());
        b
    }
}
