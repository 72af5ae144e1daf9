//! `medfabric network generate`: the equivalent of Fabric's cryptogen + configtxgen.
//!
//! From a topology file (`network-config/*.yaml`) it writes, under an output directory:
//! - `organizations/{peer,orderer}Organizations/<domain>/`: per org a root CA (`ca/`)
//!   and a TLS CA (`tlsca/`), the org MSP (`msp/`), and for every node and user an MSP
//!   folder (`msp/`: cacerts, signcerts, keystore, tlscacerts, config.yaml with NodeOUs)
//!   and TLS material (`tls/`);
//! - `channel-artifacts/<channel>.block`: the genesis block;
//! - `nodes/<node>.yaml`: one config file per peer, orderer and CA;
//! - `network.yaml`: the topology it was generated from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use medfabric_ca::{CertificateAuthority, LeafRequest, Name, Usage, Validity};
use medfabric_config::ca::{Bootstrap, CaConfig, CaTls, SeedIdentity};
use medfabric_config::peer::{GatewaySection, PeerConfig, PeerEntry, PrivateDataSection};
use medfabric_config::tls::TlsConfig;
use medfabric_config::{Limits, OrdererConfig, to_yaml};
use medfabric_msp::{MspFolder, NodeOuConfig};
use medfabric_proto::Message;
use medfabric_proto::etcdraft;
use medfabric_proto::medfabric::config::ChaincodeDefinition;
use medfabric_proto::orderer::BatchSize;
use medfabric_types::{ChannelSpec, OrgSpec};
use serde::Serialize;

use crate::topology::{
    Orderer, Peer, PeerOrg, Topology, User, application_policy, collection_package, role_grants,
};
use time::OffsetDateTime;

/// Certificate lifetimes, as cryptogen uses them.
const CA_VALIDITY_DAYS: i64 = 3650;
const LEAF_VALIDITY_DAYS: i64 = 3650;

/// What `generate` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub out: PathBuf,
    pub channel: String,
    pub genesis_block: PathBuf,
    pub node_configs: Vec<PathBuf>,
    pub organizations: Vec<String>,
}

/// Generates a network into `out`. An existing, non-empty `out` is refused unless
/// `force`, which replaces only what a previous generation wrote.
pub fn generate(topology_path: &Path, out: &Path, force: bool) -> Result<Generated> {
    generate_topology(&Topology::load(topology_path)?, out, force)
}

/// Generates a network from a checked topology (see [`generate`]).
pub fn generate_topology(topology: &Topology, out: &Path, force: bool) -> Result<Generated> {
    topology.check()?;
    prepare_out_dir(out, force)?;
    let now = OffsetDateTime::now_utc();
    std::fs::write(out.join("network.yaml"), serde_yaml::to_string(topology)?)?;

    let (orderer_spec, orderer_tls) = write_orderer_org(topology, out, now)?;
    let (app_orgs, record_keys) = write_peer_orgs(topology, out, now)?;
    let spec = channel_spec(topology, orderer_spec, &orderer_tls, app_orgs, record_keys)?;
    let timestamp = medfabric_proto::Timestamp { seconds: now.unix_timestamp(), nanos: 0 };
    let genesis = spec.genesis_block(timestamp)?;
    let artifacts = out.join("channel-artifacts");
    std::fs::create_dir_all(&artifacts)?;
    let genesis_path = artifacts.join(format!("{}.block", topology.channel));
    std::fs::write(&genesis_path, genesis.encode_to_vec())?;

    let node_configs = write_node_configs(topology, out)?;
    Ok(Generated {
        out: out.to_path_buf(),
        channel: topology.channel.clone(),
        genesis_block: genesis_path,
        node_configs,
        organizations: topology
            .organizations
            .iter()
            .map(|o| o.msp_id.clone())
            .chain([topology.orderer.msp_id.clone()])
            .collect(),
    })
}

/// The orderer organization's CAs, consenter identities and TLS certificates, and
/// users; returns its channel-config spec and each consenter's TLS certificate (PEM).
fn write_orderer_org(
    topology: &Topology,
    out: &Path,
    now: OffsetDateTime,
) -> Result<(OrgSpec, BTreeMap<String, String>)> {
    let orderer_org_dir = out.join("organizations/ordererOrganizations").join(&topology.orderer.domain);
    let orderer_cas = OrgCas::new(&topology.orderer.domain, &orderer_org_dir, now)?;
    let mut orderer_tls = BTreeMap::new();
    for orderer in &topology.orderer.consenters {
        let fqdn = format!("{}.{}", orderer.name, topology.orderer.domain);
        let dir = orderer_org_dir.join("orderers").join(&fqdn);
        orderer_cas.write_identity(&dir, &fqdn, "orderer", None, now)?;
        let tls = orderer_cas.write_tls(&dir, &fqdn, &[&orderer.host, &fqdn], "server", now)?;
        orderer_tls.insert(orderer.name.clone(), tls);
    }
    let orderer_users = with_admin(&topology.orderer.users);
    for user in &orderer_users {
        write_user(&orderer_cas, &orderer_org_dir, &topology.orderer.domain, user, now)?;
    }

    let mut orderer_spec = OrgSpec::orderer(
        &topology.orderer.name,
        MspFolder::load(&orderer_org_dir.join("msp"), &topology.orderer.msp_id)?,
    );
    orderer_spec.endpoints =
        topology.orderer.consenters.iter().map(|o| format!("{}:{}", o.host, o.port)).collect();

    Ok((orderer_spec, orderer_tls))
}

/// Each peer organization's CAs, peer identities, TLS certificates, record key, users
/// and CA TLS certificate; returns their channel-config specs and the record keys'
/// public halves by MSP id.
fn write_peer_orgs(
    topology: &Topology,
    out: &Path,
    now: OffsetDateTime,
) -> Result<(Vec<OrgSpec>, RecordKeys)> {
    let mut app_orgs = Vec::new();
    let mut record_keys = BTreeMap::new();
    for org in &topology.organizations {
        let (spec, record_key) = write_peer_org(org, out, now)?;
        record_keys.insert(org.msp_id.clone(), record_key);
        app_orgs.push(spec);
    }
    Ok((app_orgs, record_keys))
}

/// One peer organization's material, made by it alone: its CA and TLS CA, org MSP,
/// peers (MSP, TLS, the org's record key), users and CA TLS certificate, under
/// `out/organizations/peerOrganizations/<domain>/`. Returns its channel-config spec and
/// the public half of its record key.
pub(crate) fn write_peer_org(org: &PeerOrg, out: &Path, now: OffsetDateTime) -> Result<(OrgSpec, Vec<u8>)> {
    let org_dir = out.join("organizations/peerOrganizations").join(&org.domain);
    let cas = OrgCas::new(&org.domain, &org_dir, now)?;
    // The org's record key: held by its peers only, published in the channel config.
    let record_key = medfabric_ca::KeyPair::generate();
    for peer in &org.peers {
        let fqdn = format!("{}.{}", peer.name, org.domain);
        let dir = org_dir.join("peers").join(&fqdn);
        cas.write_identity(&dir, &fqdn, "peer", None, now)?;
        cas.write_tls(&dir, &fqdn, &[&peer.host, &fqdn], "server", now)?;
        write_key(&dir.join("recordkey/priv_sk"), &record_key.to_pkcs8_pem())?;
    }
    for user in &with_admin(&org.users) {
        write_user(&cas, &org_dir, &org.domain, user, now)?;
    }
    // The org's CA serves HTTPS with a certificate from the org's TLS CA.
    let ca_host = format!("ca.{}", org.domain);
    cas.write_tls(&org_dir.join("ca"), &ca_host, &[&org.ca.host, &ca_host], "server", now)?;
    let mut spec = OrgSpec::application(&org.name, MspFolder::load(&org_dir.join("msp"), &org.msp_id)?);
    let anchor = &org.peers[0];
    spec.anchor_peers = vec![(anchor.host.clone(), i32::from(anchor.port))];
    Ok((spec, record_key.public_key_sec1().to_vec()))
}

/// Public halves of the organizations' record keys (SEC1), by MSP id.
type RecordKeys = BTreeMap<String, Vec<u8>>;

/// The channel the genesis block creates: orgs, consenters, batching and chaincodes.
fn channel_spec(
    topology: &Topology,
    orderer_spec: OrgSpec,
    orderer_tls: &BTreeMap<String, String>,
    app_orgs: Vec<OrgSpec>,
    record_keys: RecordKeys,
) -> Result<ChannelSpec> {
    let consenters = topology
        .orderer
        .consenters
        .iter()
        .map(|o| {
            let tls = orderer_tls[&o.name].as_bytes().to_vec();
            etcdraft::Consenter {
                host: o.host.clone(),
                port: u32::from(o.cluster_port),
                client_tls_cert: tls.clone().into(),
                server_tls_cert: tls.into(),
            }
        })
        .collect();
    let batch = &topology.orderer.batch;
    Ok(ChannelSpec {
        channel_id: topology.channel.clone(),
        orderer_orgs: vec![orderer_spec],
        application_orgs: app_orgs,
        orderer_addresses: topology
            .orderer
            .consenters
            .iter()
            .map(|o| format!("{}:{}", o.host, o.port))
            .collect(),
        consenters,
        raft_options: etcdraft::Options {
            tick_interval: "500ms".into(),
            election_tick: 10,
            heartbeat_tick: 1,
            max_inflight_blocks: 5,
            snapshot_interval_size: 16 * 1024 * 1024,
        },
        batch_size: BatchSize {
            max_message_count: batch.max_message_count,
            absolute_max_bytes: batch.absolute_max_bytes,
            preferred_max_bytes: batch.preferred_max_bytes,
        },
        batch_timeout_ms: batch.batch_timeout_ms,
        chaincodes: topology
            .chaincodes
            .iter()
            .map(|cc| {
                Ok(ChaincodeDefinition {
                    name: cc.name.clone(),
                    version: cc.version.clone(),
                    sequence: cc.sequence,
                    endorsement_policy: Some(application_policy(&cc.endorsement_policy)?),
                    init_required: cc.init_required,
                    collections: collection_package(&cc.collections)?,
                })
            })
            .collect::<Result<_>>()?,
        roles: role_grants(topology)?,
        record_keys,
    })
}

/// What `generate` owns inside an output directory.
// `data` holds the nodes' ledgers, which belong to the genesis block being replaced.
const GENERATED: [&str; 5] = ["organizations", "channel-artifacts", "nodes", "network.yaml", "data"];

fn prepare_out_dir(out: &Path, force: bool) -> Result<()> {
    if out.exists() {
        let non_empty = std::fs::read_dir(out)?.next().is_some();
        if non_empty && !force {
            bail!(
                "{} already exists and is not empty; pass --force to replace the generated network in it",
                out.display()
            );
        }
        for name in GENERATED {
            let path = out.join(name);
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else if path.exists() {
                std::fs::remove_file(&path)?;
            }
        }
    }
    std::fs::create_dir_all(out)?;
    Ok(())
}

/// What an org's CA must know it did not issue itself: every peer (actor id: its common
/// name) and every user (actor id: `hf.EnrollmentID`, the user's name).
fn seed_identities(org: &PeerOrg) -> Vec<SeedIdentity> {
    let org_dir = format!("../organizations/peerOrganizations/{}", org.domain);
    let peers = org.peers.iter().map(|p| {
        let fqdn = format!("{}.{}", p.name, org.domain);
        SeedIdentity {
            certificate_file: Some(format!("{org_dir}/peers/{fqdn}/msp/signcerts/{fqdn}-cert.pem").into()),
            id: fqdn,
            kind: "peer".into(),
            affiliation: String::new(),
            attrs: BTreeMap::new(),
        }
    });
    let users = with_admin(&org.users).into_iter().map(|u| {
        let cn = format!("{}@{}", u.name, org.domain);
        SeedIdentity {
            certificate_file: Some(format!("{org_dir}/users/{cn}/msp/signcerts/{cn}-cert.pem").into()),
            id: u.name,
            kind: u.user_type,
            affiliation: String::new(),
            attrs: u.attrs,
        }
    });
    peers.chain(users).collect()
}

fn with_admin(users: &[User]) -> Vec<User> {
    let mut all = users.to_vec();
    if !all.iter().any(|u| u.name == "Admin") {
        all.insert(0, User { name: "Admin".into(), user_type: "admin".into(), attrs: BTreeMap::new() });
    }
    all
}

fn write_user(cas: &OrgCas, org_dir: &Path, domain: &str, user: &User, now: OffsetDateTime) -> Result<()> {
    let id = format!("{}@{}", user.name, domain);
    let dir = org_dir.join("users").join(&id);
    let mut attrs = BTreeMap::from([
        ("hf.EnrollmentID".to_owned(), user.name.clone()),
        ("hf.Type".to_owned(), user.user_type.clone()),
        ("hf.Affiliation".to_owned(), String::new()),
    ]);
    attrs.extend(user.attrs.clone());
    cas.write_identity(&dir, &id, &user.user_type, Some(attrs), now)?;
    cas.write_tls(&dir, &id, &[], "client", now)?;
    Ok(())
}

/// An organization's two CAs and the org MSP folder.
struct OrgCas {
    domain: String,
    ca: CertificateAuthority,
    tls_ca: CertificateAuthority,
}

impl OrgCas {
    fn new(domain: &str, org_dir: &Path, now: OffsetDateTime) -> Result<Self> {
        let validity = Validity::days_from(now - time::Duration::minutes(5), CA_VALIDITY_DAYS);
        let ca = CertificateAuthority::new_root(
            &Name::fabric_style(&format!("ca.{domain}"), Some(domain), &[]),
            validity,
        )?;
        let tls_ca = CertificateAuthority::new_root(
            &Name::fabric_style(&format!("tlsca.{domain}"), Some(domain), &[]),
            validity,
        )?;
        let cas = Self { domain: domain.to_owned(), ca, tls_ca };
        write_file(&org_dir.join("ca").join(cas.ca_file()), cas.ca.certificate_pem().as_bytes())?;
        write_key(&org_dir.join("ca/priv_sk"), &cas.ca.key().to_pkcs8_pem())?;
        write_file(&org_dir.join("tlsca").join(cas.tls_ca_file()), cas.tls_ca.certificate_pem().as_bytes())?;
        write_key(&org_dir.join("tlsca/priv_sk"), &cas.tls_ca.key().to_pkcs8_pem())?;
        cas.write_msp_public(&org_dir.join("msp"))?;
        Ok(cas)
    }

    fn ca_file(&self) -> String {
        format!("ca.{}-cert.pem", self.domain)
    }

    fn tls_ca_file(&self) -> String {
        format!("tlsca.{}-cert.pem", self.domain)
    }

    /// cacerts, tlscacerts and config.yaml: what every MSP folder of the org shares.
    fn write_msp_public(&self, msp: &Path) -> Result<()> {
        write_file(&msp.join("cacerts").join(self.ca_file()), self.ca.certificate_pem().as_bytes())?;
        write_file(
            &msp.join("tlscacerts").join(self.tls_ca_file()),
            self.tls_ca.certificate_pem().as_bytes(),
        )?;
        let config = NodeOuConfig::standard(&format!("cacerts/{}", self.ca_file()));
        write_file(&msp.join("config.yaml"), config.to_yaml().as_bytes())
    }

    fn write_identity(
        &self,
        dir: &Path,
        id: &str,
        node_ou: &str,
        attrs: Option<BTreeMap<String, String>>,
        now: OffsetDateTime,
    ) -> Result<()> {
        let issued = self.ca.issue(&LeafRequest {
            attributes: attrs,
            ..LeafRequest::enrollment(
                id,
                node_ou,
                Validity::days_from(now - time::Duration::minutes(5), LEAF_VALIDITY_DAYS),
            )
        })?;
        let msp = dir.join("msp");
        self.write_msp_public(&msp)?;
        write_file(&msp.join("signcerts").join(format!("{id}-cert.pem")), issued.certificate_pem.as_bytes())?;
        let key = issued.key.context("issuer generated no key")?;
        write_key(&msp.join("keystore/priv_sk"), &key.to_pkcs8_pem())
    }

    /// Writes `tls/{ca.crt, <kind>.crt, <kind>.key}`; returns the certificate PEM.
    fn write_tls(
        &self,
        dir: &Path,
        id: &str,
        hosts: &[&str],
        kind: &str,
        now: OffsetDateTime,
    ) -> Result<String> {
        let mut sans: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        if kind == "server" {
            sans.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
        }
        sans.sort();
        sans.dedup();
        let issued = self.tls_ca.issue(&LeafRequest {
            name: Name::fabric_style(id, None, &[]),
            subject_alt_names: sans,
            attributes: None,
            validity: Validity::days_from(now - time::Duration::minutes(5), LEAF_VALIDITY_DAYS),
            usage: Usage::Tls,
            public_key: None,
        })?;
        let tls = dir.join("tls");
        write_file(&tls.join("ca.crt"), self.tls_ca.certificate_pem().as_bytes())?;
        write_file(&tls.join(format!("{kind}.crt")), issued.certificate_pem.as_bytes())?;
        let key = issued.key.context("issuer generated no key")?;
        write_key(&tls.join(format!("{kind}.key")), &key.to_pkcs8_pem())?;
        Ok(issued.certificate_pem)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes a secret (a key, the CA's config with its bootstrap password) owner-only.
fn write_key(path: &Path, pem: &str) -> Result<()> {
    medfabric_config::secret::write(path, pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Per-node configuration files (`medfabric-config`'s types). Paths inside are relative to
// the file's directory.

fn tls_files(node_dir: &str, kind: &str, root_ca_files: &[PathBuf]) -> TlsConfig {
    TlsConfig {
        cert_file: format!("{node_dir}/tls/{kind}.crt").into(),
        key_file: format!("{node_dir}/tls/{kind}.key").into(),
        ca_file: format!("{node_dir}/tls/ca.crt").into(),
        root_ca_files: root_ca_files.to_vec(),
        client_auth_required: false,
    }
}

/// What every node config of a network shares, with paths relative to `nodes/`.
struct NodeCommon {
    genesis: PathBuf,
    orderer_endpoints: Vec<String>,
    /// Every organization's TLS CA.
    tls_cas: Vec<PathBuf>,
    /// Every peer by its host name, as other peers and gateways know it.
    all_peers: Vec<(String, PeerEntry)>,
    /// Chaincode name → the built-in implementation the peers run.
    chaincodes: BTreeMap<String, String>,
}

impl NodeCommon {
    fn of(topology: &Topology) -> Self {
        let genesis = format!("../channel-artifacts/{}.block", topology.channel).into();
        let orderer_endpoints =
            topology.orderer.consenters.iter().map(|o| format!("{}:{}", o.host, o.port)).collect();
        let tls_cas = std::iter::once(("ordererOrganizations", &topology.orderer.domain))
            .chain(topology.organizations.iter().map(|o| ("peerOrganizations", &o.domain)))
            .map(|(kind, domain)| {
                format!("../organizations/{kind}/{domain}/tlsca/tlsca.{domain}-cert.pem").into()
            })
            .collect();
        let all_peers = topology
            .organizations
            .iter()
            .flat_map(|org| {
                org.peers.iter().map(move |peer| {
                    let fqdn = format!("{}.{}", peer.name, org.domain);
                    let entry = PeerEntry {
                        msp_id: org.msp_id.clone(),
                        address: format!("{}:{}", peer.host, peer.port),
                        cert_file: format!(
                            "../organizations/peerOrganizations/{}/peers/{fqdn}/msp/signcerts/{fqdn}-cert.pem",
                            org.domain
                        )
                        .into(),
                    };
                    (fqdn, entry)
                })
            })
            .collect();
        let chaincodes = topology
            .chaincodes
            .iter()
            .map(|cc| (cc.name.clone(), cc.implementation.clone().unwrap_or_else(|| cc.name.clone())))
            .collect();
        Self { genesis, orderer_endpoints, tls_cas, all_peers, chaincodes }
    }
}

fn orderer_config(
    topology: &Topology,
    index: usize,
    orderer: &Orderer,
    common: &NodeCommon,
) -> OrdererConfig {
    let domain = &topology.orderer.domain;
    let fqdn = format!("{}.{domain}", orderer.name);
    let node_dir = format!("../organizations/ordererOrganizations/{domain}/orderers/{fqdn}");
    OrdererConfig {
        node_id: fqdn.clone(),
        consenter_id: index as u64 + 1,
        msp_id: topology.orderer.msp_id.clone(),
        msp_dir: format!("{node_dir}/msp").into(),
        tls: Some(tls_files(&node_dir, "server", &common.tls_cas)),
        listen_address: format!("{}:{}", orderer.host, orderer.port),
        cluster_listen_address: format!("{}:{}", orderer.host, orderer.cluster_port),
        operations_address: Some(format!("{}:{}", orderer.host, orderer.operations_port)),
        data_dir: format!("../data/{fqdn}").into(),
        genesis_block: common.genesis.clone(),
        limits: Limits::default(),
        cluster_peers: BTreeMap::new(),
    }
}

fn peer_config(topology: &Topology, org: &PeerOrg, peer: &Peer, common: &NodeCommon) -> PeerConfig {
    let fqdn = format!("{}.{}", peer.name, org.domain);
    let node_dir = format!("../organizations/peerOrganizations/{}/peers/{fqdn}", org.domain);
    PeerConfig {
        node_id: fqdn.clone(),
        msp_id: org.msp_id.clone(),
        msp_dir: format!("{node_dir}/msp").into(),
        tls: Some(tls_files(&node_dir, "server", &common.tls_cas)),
        record_key_file: Some(format!("{node_dir}/recordkey/priv_sk").into()),
        listen_address: format!("{}:{}", peer.host, peer.port),
        external_address: None,
        operations_address: Some(format!("{}:{}", peer.host, peer.operations_port)),
        data_dir: format!("../data/{fqdn}").into(),
        channel: topology.channel.clone(),
        genesis_block: common.genesis.clone(),
        orderer_endpoints: common.orderer_endpoints.clone(),
        peers: common.all_peers.iter().filter(|(name, _)| *name != fqdn).map(|(_, p)| p.clone()).collect(),
        gateway: GatewaySection::default(),
        chaincodes: common.chaincodes.clone(),
        limits: Limits::default(),
        // Fabric's defaults, except reconciliation every 5 s instead of every
        // minute and a 3 s wait for missing private data at commit.
        private_data: PrivateDataSection {
            pull_timeout_ms: 3000,
            reconcile_interval_ms: 5000,
            ..PrivateDataSection::default()
        },
        max_clock_skew_ms: medfabric_config::peer::DEFAULT_CLOCK_SKEW_MS,
    }
}

/// The org's CA, with a fresh bootstrap password.
fn ca_config(org: &PeerOrg) -> Result<CaConfig> {
    let ca_name = format!("ca.{}", org.domain);
    let ca_dir = format!("../organizations/peerOrganizations/{}/ca", org.domain);
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).context("OS random source")?;
    Ok(CaConfig {
        name: ca_name.clone(),
        msp_id: org.msp_id.clone(),
        listen_address: format!("{}:{}", org.ca.host, org.ca.port),
        cert_file: format!("{ca_dir}/{ca_name}-cert.pem").into(),
        key_file: format!("{ca_dir}/priv_sk").into(),
        registry_file: PathBuf::new(),
        data_dir: Some(format!("../data/{ca_name}").into()),
        bootstrap: Bootstrap { id: "admin".into(), secret: hex::encode(secret) },
        max_request_body_bytes: medfabric_config::ca::DEFAULT_MAX_REQUEST_BODY_BYTES,
        affiliations: vec![org.name.to_lowercase()],
        max_enrollments: -1,
        password_attempts: 10,
        allow_identity_removal: false,
        seed_identities: seed_identities(org),
        tls: Some(CaTls {
            cert_file: format!("{ca_dir}/tls/server.crt").into(),
            key_file: format!("{ca_dir}/tls/server.key").into(),
            ca_file: Some(format!("{ca_dir}/tls/ca.crt").into()),
        }),
        plain_http: false,
    })
}

fn write_node_configs(topology: &Topology, out: &Path) -> Result<Vec<PathBuf>> {
    write_node_configs_of(topology, out, true, |_| true)
}

/// The node configs of `topology` (its orderers when `orderers`, and the peers and CA of
/// each organization `org_filter` keeps) under `out/nodes/`.
pub(crate) fn write_node_configs_of(
    topology: &Topology,
    out: &Path,
    orderers: bool,
    org_filter: impl Fn(&PeerOrg) -> bool,
) -> Result<Vec<PathBuf>> {
    let nodes = out.join("nodes");
    std::fs::create_dir_all(&nodes)?;
    let common = NodeCommon::of(topology);
    let mut written = Vec::new();
    // `secret` files (the CA's, with its bootstrap password) are readable by the owner only.
    let mut emit = |name: &str, yaml: String, secret: bool| -> Result<()> {
        let path = nodes.join(format!("{name}.yaml"));
        if secret {
            write_key(&path, &yaml)?
        } else {
            write_file(&path, yaml.as_bytes())?
        }
        written.push(path);
        Ok(())
    };
    for (index, orderer) in topology.orderer.consenters.iter().enumerate().filter(|_| orderers) {
        let config = orderer_config(topology, index, orderer, &common);
        emit(&config.node_id.clone(), to_yaml(&config).map_err(anyhow::Error::msg)?, false)?;
    }
    for org in topology.organizations.iter().filter(|o| org_filter(o)) {
        for peer in &org.peers {
            let config = peer_config(topology, org, peer, &common);
            emit(&config.node_id.clone(), to_yaml(&config).map_err(anyhow::Error::msg)?, false)?;
        }
        let config = ca_config(org)?;
        // The CA's file holds its bootstrap password: readable by the owner only.
        emit(&config.name.clone(), to_yaml(&config).map_err(anyhow::Error::msg)?, true)?;
    }
    Ok(written)
}
