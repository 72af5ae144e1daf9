//! Config updates over a channel of three application organizations (Admins: a majority,
//! two of three) and one orderer organization.

use medfabric_msp::{SigningIdentity, node_ou_msp_config};
use medfabric_proto::common::{ConfigGroup, ConfigUpdateEnvelope};
use medfabric_proto::etcdraft;
use medfabric_proto::orderer::{BatchSize, BatchTimeout};
use medfabric_testkit::TestOrg;
use prost::Message;
use prost_types::Timestamp;

use super::*;
use crate::config::{ChannelSpec, OrgSpec};

struct Channel {
    resources: ChannelResources,
    orgs: Vec<TestOrg>,
    orderer: TestOrg,
}

const CHANNEL_ID: &str = "ward";

fn spec(orgs: &[&TestOrg], orderer: &TestOrg) -> ChannelSpec {
    ChannelSpec {
        channel_id: CHANNEL_ID.into(),
        orderer_orgs: vec![OrgSpec::orderer("Orderer", msp(orderer))],
        application_orgs: orgs.iter().map(|o| OrgSpec::application(&o.msp_id, msp(o))).collect(),
        orderer_addresses: vec!["orderer.example:7050".into()],
        consenters: vec![etcdraft::Consenter {
            host: "orderer.example".into(),
            port: 7052,
            ..Default::default()
        }],
        raft_options: etcdraft::Options::default(),
        batch_size: BatchSize {
            max_message_count: 500,
            absolute_max_bytes: 10 << 20,
            preferred_max_bytes: 2 << 20,
        },
        batch_timeout_ms: 2000,
        chaincodes: Vec::new(),
        roles: Default::default(),
        record_keys: Default::default(),
    }
}

fn msp(org: &TestOrg) -> medfabric_proto::msp::FabricMspConfig {
    node_ou_msp_config(&org.msp_id, org.ca.certificate_pem().as_bytes())
}

impl Channel {
    fn new() -> Self {
        let orgs: Vec<TestOrg> = ["Org1MSP", "Org2MSP", "Org3MSP"].into_iter().map(TestOrg::new).collect();
        let orderer = TestOrg::new("OrdererMSP");
        let config = spec(&orgs.iter().collect::<Vec<_>>(), &orderer).to_config().expect("config");
        let resources = ChannelResources::from_config(CHANNEL_ID, config).expect("resources");
        Self { resources, orgs, orderer }
    }

    fn group(&self) -> ConfigGroup {
        self.resources.raw.channel_group.clone().expect("channel group")
    }

    fn admin(&self, index: usize) -> SigningIdentity {
        self.orgs[index].issue("admin", "admin")
    }

    /// The update from the current config to `edit`'s result, signed by `signers`,
    /// submitted by `submitter`.
    fn update(
        &self,
        edit: impl FnOnce(&mut ConfigGroup),
        signers: &[SigningIdentity],
        submitter: &SigningIdentity,
    ) -> Envelope {
        let mut updated = self.group();
        edit(&mut updated);
        let update = compute_update(CHANNEL_ID, &self.group(), &updated).expect("an update");
        signed(update, signers, submitter)
    }

    /// Applies an accepted update, as a committed config block would.
    fn apply(&mut self, config: &ConfigEnvelope) {
        let next = config.config.clone().expect("config");
        self.resources = ChannelResources::from_config(CHANNEL_ID, next).expect("the new config loads");
    }
}

fn signed(update: ConfigUpdate, signers: &[SigningIdentity], submitter: &SigningIdentity) -> Envelope {
    let bytes = update.encode_to_vec();
    let signatures = signers.iter().map(|s| sign_update(&bytes, s)).collect();
    let envelope = ConfigUpdateEnvelope { config_update: bytes.into(), signatures };
    update_envelope(CHANNEL_ID, &envelope, submitter, Timestamp { seconds: 1_800_000_000, nanos: 0 })
}

fn batch_timeout(group: &mut ConfigGroup, timeout: &str) {
    let orderer = group.groups.get_mut("Orderer").expect("orderer");
    let value = orderer.values.get_mut("BatchTimeout").expect("timeout");
    value.value = BatchTimeout { timeout: timeout.into() }.encode_to_vec().into();
}

fn refused(channel: &Channel, envelope: &Envelope) -> String {
    propose(&channel.resources, envelope).expect_err("refused").0
}

#[test]
fn a_batch_change_needs_the_orderer_admins_and_applies_at_the_next_sequence() {
    let mut channel = Channel::new();
    let orderer_admin = channel.orderer.issue("admin", "admin");
    let envelope =
        channel.update(|g| batch_timeout(g, "500ms"), std::slice::from_ref(&orderer_admin), &orderer_admin);
    let config = propose(&channel.resources, &envelope).expect("accepted");
    let next = config.config.as_ref().expect("config");
    assert_eq!(next.sequence, 1);
    let loaded = ChannelConfig::from_config(CHANNEL_ID, next).expect("loads");
    assert_eq!(loaded.batch.timeout_ms, 500);
    // The peer's check of the ordered CONFIG: the same update produces the same config.
    validate(&channel.resources, &config).expect("validates");
    // Only the timeout changed: everything else is the same tree.
    let mut expected = channel.group();
    batch_timeout(&mut expected, "500ms");
    expected.groups.get_mut("Orderer").expect("orderer").values.get_mut("BatchTimeout").expect("t").version =
        1;
    assert_eq!(next.channel_group.as_ref(), Some(&expected));

    // Application admins are not the orderer's.
    let admins = [channel.admin(0), channel.admin(1), channel.admin(2)];
    let envelope = channel.update(|g| batch_timeout(g, "1s"), &admins, &admins[0]);
    let why = refused(&channel, &envelope);
    assert!(
        why.starts_with("error authorizing update: error validating DeltaSet: policy for [Value]  /Channel/Orderer/BatchTimeout not satisfied: implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Admins' sub-policies to be satisfied"),
        "{why}"
    );

    // Once applied, the same update (computed against the old config) is stale.
    channel.apply(&config);
    let first = channel_update_again(&channel, &orderer_admin);
    assert_eq!(
        refused(&channel, &first),
        "error authorizing update: error validating DeltaSet: attempt to set key [Value]  /Channel/Orderer/BatchTimeout to version 1, but key is at version 1"
    );
}

/// The timeout update as computed against the genesis config (the value at version 0).
fn channel_update_again(channel: &Channel, signer: &SigningIdentity) -> Envelope {
    let mut original = channel.group();
    original.groups.get_mut("Orderer").expect("o").values.get_mut("BatchTimeout").expect("t").version = 0;
    let mut updated = original.clone();
    batch_timeout(&mut updated, "3s");
    let update = compute_update(CHANNEL_ID, &original, &updated).expect("update");
    signed(update, std::slice::from_ref(signer), signer)
}

#[test]
fn adding_an_organization_needs_a_majority_of_the_application_admins() {
    let channel = Channel::new();
    let clinic = TestOrg::new("ClinicMSP");
    let add = |g: &mut ConfigGroup| {
        let spec = spec(&[&clinic], &channel.orderer);
        let clinic_group = spec.to_config().expect("config").channel_group.expect("group").groups["Application"]
            .groups["ClinicMSP"]
            .clone();
        g.groups.get_mut("Application").expect("app").groups.insert("ClinicMSP".into(), clinic_group);
    };
    // One admin of three is not a majority.
    let one = [channel.admin(0)];
    let why = refused(&channel, &channel.update(add, &one, &one[0]));
    assert!(
        why.ends_with("policy for [Group]  /Channel/Application not satisfied: implicit policy evaluation failed - 1 sub-policies were satisfied, but this policy requires 2 of the 'Admins' sub-policies to be satisfied"),
        "{why}"
    );
    // The same admin twice is still one.
    let twice = [channel.admin(0), channel.admin(0)];
    let why = refused(&channel, &channel.update(add, &twice, &twice[0]));
    assert!(why.contains("1 sub-policies were satisfied"), "{why}");
    // A member that is not an admin does not count.
    let member = [channel.admin(0), channel.orgs[1].issue("nurse", "client")];
    assert!(
        refused(&channel, &channel.update(add, &member, &member[0]))
            .contains("1 sub-policies were satisfied")
    );
    // Two admins of three: the clinic is in, with its MSP.
    let two = [channel.admin(0), channel.admin(2)];
    let config = propose(&channel.resources, &channel.update(add, &two, &two[1])).expect("accepted");
    validate(&channel.resources, &config).expect("validates");
    let next = ChannelResources::from_config(CHANNEL_ID, config.config.clone().expect("c")).expect("loads");
    assert!(next.config.application_orgs.iter().any(|o| o.msp_id == "ClinicMSP"));
    assert!(next.msps.deserialize(clinic.issue("frontdesk", "client").serialized()).is_ok());
}

#[test]
fn removing_an_organization_drops_it_and_its_identities() {
    let channel = Channel::new();
    let two = [channel.admin(0), channel.admin(1)];
    let remove = |g: &mut ConfigGroup| {
        g.groups.get_mut("Application").expect("app").groups.remove("Org3MSP");
    };
    let config = propose(&channel.resources, &channel.update(remove, &two, &two[0])).expect("accepted");
    let next = ChannelResources::from_config(CHANNEL_ID, config.config.clone().expect("c")).expect("loads");
    assert_eq!(next.config.application_orgs.len(), 2);
    assert!(next.msps.deserialize(channel.admin(2).serialized()).is_err(), "Org3's identities are gone");
}

#[test]
fn refusals_name_what_is_wrong() {
    let channel = Channel::new();
    let orderer_admin = channel.orderer.issue("admin", "admin");
    let signers = std::slice::from_ref(&orderer_admin);
    // Another channel.
    let mut update = compute_update("other", &channel.group(), &{
        let mut g = channel.group();
        batch_timeout(&mut g, "1s");
        g
    })
    .expect("update");
    update.channel_id = "other".into();
    assert_eq!(
        refused(&channel, &signed(update, signers, &orderer_admin)),
        "error authorizing update: ConfigUpdate for channel 'other' but envelope for channel 'ward'"
    );
    // Nothing changed.
    let same = ConfigUpdate {
        channel_id: CHANNEL_ID.into(),
        read_set: Some(ConfigGroup { version: 0, ..Default::default() }),
        write_set: Some(ConfigGroup { version: 0, ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(
        refused(&channel, &signed(same, signers, &orderer_admin)),
        "error authorizing update: error validating DeltaSet: delta set was empty -- update would have no effect"
    );
    // A new element at a version other than 0; an element read at a version it is not at.
    let extra = ConfigValue { version: 3, value: Bytes::new(), mod_policy: "Admins".into() };
    let jump = ConfigUpdate {
        channel_id: CHANNEL_ID.into(),
        read_set: Some(ConfigGroup::default()),
        write_set: Some(ConfigGroup { values: [("Extra".to_owned(), extra)].into(), ..Default::default() }),
        ..Default::default()
    };
    let why = refused(&channel, &signed(jump, signers, &orderer_admin));
    assert!(
        why.contains("attempted to set key [Value]  /Channel/Extra to version 3, but key does not exist"),
        "{why}"
    );
    let stale = ConfigUpdate {
        channel_id: CHANNEL_ID.into(),
        read_set: Some(ConfigGroup { version: 4, ..Default::default() }),
        write_set: Some(ConfigGroup { version: 5, mod_policy: "Admins".into(), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(
        refused(&channel, &signed(stale, signers, &orderer_admin)),
        "error authorizing update: error validating ReadSet: proposed update requires that key [Group]  /Channel be at version 4, but it is currently at version 0"
    );
    // A name Fabric does not allow; a mod_policy that names nothing.
    let mut bad = channel.group();
    bad.groups.get_mut("Application").expect("a").values.insert("bad name".into(), ConfigValue::default());
    let update = compute_update(CHANNEL_ID, &channel.group(), &bad).expect("update");
    let why = refused(&channel, &signed(update, signers, &orderer_admin));
    assert!(
        why.contains(
            "illegal characters in key: [Value]  : config ID 'bad name' contains illegal characters"
        ),
        "{why}"
    );
    let mut unset = channel.group();
    batch_timeout(&mut unset, "1s");
    unset.groups.get_mut("Orderer").expect("o").values.get_mut("BatchTimeout").expect("t").mod_policy =
        String::new();
    let update = compute_update(CHANNEL_ID, &channel.group(), &unset).expect("update");
    let why = refused(&channel, &signed(update, signers, &orderer_admin));
    assert!(
        why.contains(
            "invalid mod_policy for element [Value]  /Channel/Orderer/BatchTimeout: mod_policy not set"
        ),
        "{why}"
    );
    // A config that does not load: a batch of no messages.
    let mut zero = channel.group();
    let orderer = zero.groups.get_mut("Orderer").expect("o");
    orderer.values.get_mut("BatchSize").expect("b").value =
        BatchSize { max_message_count: 0, absolute_max_bytes: 1 << 20, preferred_max_bytes: 1 << 19 }
            .encode_to_vec()
            .into();
    let update = compute_update(CHANNEL_ID, &channel.group(), &zero).expect("update");
    let why = refused(&channel, &signed(update, signers, &orderer_admin));
    assert!(
        why.ends_with("Attempted to set the batch size max message count to an invalid value: 0"),
        "{why}"
    );
    // Not a CONFIG_UPDATE at all.
    let mut not_update =
        signed(compute_update(CHANNEL_ID, &channel.group(), &unset).expect("u"), signers, &orderer_admin);
    not_update.payload = Bytes::from_static(b"\x0a\x02\x0a\x00");
    assert!(refused(&channel, &not_update).starts_with("error converting envelope to config update"));
}

#[test]
fn an_update_changing_an_org_msp_id_is_refused() {
    let channel = Channel::new();
    let impostor = TestOrg::new("RenamedMSP");
    let rename = |g: &mut ConfigGroup| {
        let app = g.groups.get_mut("Application").expect("app");
        let org3 = app.groups.get_mut("Org3MSP").expect("org3");
        org3.values.get_mut("MSP").expect("msp").value =
            medfabric_proto::msp::MspConfig { r#type: 0, config: msp(&impostor).encode_to_vec().into() }
                .encode_to_vec()
                .into();
    };
    // Org3's own admins govern its MSP value, but not its MSP id.
    let org3 = [channel.admin(2)];
    let why = refused(&channel, &channel.update(rename, &org3, &org3[0]));
    assert!(
        why.contains("application org Org3MSP attempted to change MSP ID from Org3MSP to RenamedMSP"),
        "{why}"
    );
}

#[test]
fn validate_refuses_a_config_its_last_update_does_not_produce() {
    let channel = Channel::new();
    let orderer_admin = channel.orderer.issue("admin", "admin");
    let envelope =
        channel.update(|g| batch_timeout(g, "500ms"), std::slice::from_ref(&orderer_admin), &orderer_admin);
    let mut config = propose(&channel.resources, &envelope).expect("accepted");
    // The orderer (or anyone) slips in another change the update did not authorise.
    let group = config.config.as_mut().and_then(|c| c.channel_group.as_mut()).expect("group");
    batch_timeout(group, "1ms");
    assert_eq!(
        validate(&channel.resources, &config).expect_err("refused").0,
        "ConfigEnvelope LastUpdate did not produce the supplied config result"
    );
    // A CONFIG with no update behind it authorises nothing.
    config.last_update = None;
    assert!(validate(&channel.resources, &config).is_err());
    // Nor does one at another sequence.
    let mut skipped = propose(&channel.resources, &envelope).expect("accepted");
    skipped.config.as_mut().expect("c").sequence = 2;
    assert_eq!(
        validate(&channel.resources, &skipped).expect_err("refused").0,
        "config currently at sequence 0, cannot validate config at sequence 2"
    );
}

#[test]
fn compute_update_matches_configtxlator_for_a_changed_value() {
    let channel = Channel::new();
    let mut updated = channel.group();
    batch_timeout(&mut updated, "1s");
    let update = compute_update(CHANNEL_ID, &channel.group(), &updated).expect("update");
    // Read: the path down, bare; write: the path down at the same versions, the value at +1.
    let read = update.read_set.expect("read");
    assert_eq!(read.version, 0);
    assert!(read.values.is_empty() && read.policies.is_empty());
    assert_eq!(read.groups.keys().collect::<Vec<_>>(), ["Orderer"]);
    assert!(read.groups["Orderer"].values.is_empty());
    let write = update.write_set.expect("write");
    let orderer = &write.groups["Orderer"];
    assert_eq!((orderer.version, orderer.mod_policy.as_str()), (0, ""));
    assert_eq!(orderer.values.keys().collect::<Vec<_>>(), ["BatchTimeout"]);
    assert_eq!(orderer.values["BatchTimeout"].version, 1);
    assert_eq!(orderer.values["BatchTimeout"].mod_policy, "Admins");
    assert_eq!(
        compute_update(CHANNEL_ID, &channel.group(), &channel.group()).expect_err("same").0,
        "no differences detected between original and updated config"
    );
}

#[test]
fn a_config_document_converts_back_to_the_same_config() {
    let channel = Channel::new();
    let config = channel.resources.raw.clone();
    let document = to_document(&config);
    assert_eq!(from_document(&document).expect("converts back"), config);
    // Values and policies read as a person would write them.
    let orderer = &document["channel_group"]["groups"]["Orderer"];
    assert_eq!(orderer["values"]["BatchTimeout"]["value"], serde_json::json!({"timeout": "2000ms"}));
    assert_eq!(orderer["values"]["BatchSize"]["value"]["max_message_count"], 500);
    let org1 = &document["channel_group"]["groups"]["Application"]["groups"]["Org1MSP"];
    assert_eq!(
        org1["policies"]["Admins"]["policy"],
        serde_json::json!({"type": "Signature", "rule": "OR('Org1MSP.admin')"})
    );
    assert_eq!(org1["values"]["MSP"]["value"]["config"]["name"], "Org1MSP");
    assert!(
        org1["values"]["MSP"]["value"]["config"]["root_certs"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("-----BEGIN CERTIFICATE-----"))
    );
    assert_eq!(
        document["channel_group"]["policies"]["Admins"]["policy"],
        serde_json::json!({"type": "ImplicitMeta", "rule": "MAJORITY", "sub_policy": "Admins"})
    );
    // An edit made on the document is an update the orderer accepts.
    let mut edited = document.clone();
    edited["channel_group"]["groups"]["Orderer"]["values"]["BatchTimeout"]["value"]["timeout"] =
        "750ms".into();
    let updated = from_document(&edited).expect("edited").channel_group.expect("group");
    let update = compute_update(CHANNEL_ID, &channel.group(), &updated).expect("update");
    let admin = channel.orderer.issue("admin", "admin");
    let config =
        propose(&channel.resources, &signed(update, std::slice::from_ref(&admin), &admin)).expect("accepted");
    let loaded = ChannelConfig::from_config(CHANNEL_ID, config.config.as_ref().expect("c")).expect("loads");
    assert_eq!(loaded.batch.timeout_ms, 750);
    // A mistake in the document is named.
    let mut broken = document;
    broken["channel_group"]["groups"]["Orderer"]["values"]["BatchSize"]["value"]["max_message_count"] =
        "many".into();
    let why = from_document(&broken).expect_err("refused").0;
    assert_eq!(why, "value /Channel/Orderer/BatchSize: max_message_count must be a number");
}

#[test]
fn admission_refuses_what_fabric_would_order_as_nothing_or_cannot_take() {
    let channel = Channel::new();
    let admin = channel.orderer.issue("admin", "admin");
    let signers = std::slice::from_ref(&admin);
    // A new value under a group whose version does not change: Fabric drops it and orders
    // an unchanged config; nobody signed for that.
    let lost = ConfigValue { version: 0, value: Bytes::from_static(b"x"), mod_policy: "Admins".into() };
    let noop = ConfigUpdate {
        channel_id: CHANNEL_ID.into(),
        read_set: Some(ConfigGroup::default()),
        write_set: Some(ConfigGroup { values: [("Lost".to_owned(), lost)].into(), ..Default::default() }),
        ..Default::default()
    };
    assert_eq!(
        refused(&channel, &signed(noop, &[], &admin)),
        "error authorizing update: the update changes nothing in the config"
    );
    // Batch byte limits of 0, another hashing algorithm.
    for (absolute, preferred, name) in [(0, 0, "absolute max bytes"), (1 << 20, 0, "preferred max bytes")] {
        let mut zero = channel.group();
        zero.groups.get_mut("Orderer").expect("o").values.get_mut("BatchSize").expect("b").value =
            BatchSize { max_message_count: 10, absolute_max_bytes: absolute, preferred_max_bytes: preferred }
                .encode_to_vec()
                .into();
        let update = compute_update(CHANNEL_ID, &channel.group(), &zero).expect("update");
        let why = refused(&channel, &signed(update, signers, &admin));
        assert!(
            why.ends_with(&format!("Attempted to set the batch size {name} to an invalid value: 0")),
            "{why}"
        );
    }
    // The orderer organizations and the consenters stay.
    let mut no_orderers = channel.group();
    no_orderers.groups.get_mut("Orderer").expect("o").groups.clear();
    let update = compute_update(CHANNEL_ID, &channel.group(), &no_orderers).expect("update");
    assert!(
        refused(&channel, &signed(update, signers, &admin))
            .ends_with("the orderer section must keep at least one organization")
    );
    let mut moved = channel.group();
    let consensus = moved.groups.get_mut("Orderer").expect("o").values.get_mut("ConsensusType").expect("c");
    let mut kind = medfabric_proto::orderer::ConsensusType::decode(consensus.value.as_ref()).expect("type");
    let mut metadata = etcdraft::ConfigMetadata::decode(kind.metadata.as_ref()).expect("metadata");
    metadata.consenters[0].server_tls_cert = Bytes::from_static(b"another certificate");
    kind.metadata = metadata.encode_to_vec().into();
    consensus.value = kind.encode_to_vec().into();
    let update = compute_update(CHANNEL_ID, &channel.group(), &moved).expect("update");
    assert!(
        refused(&channel, &signed(update, signers, &admin)).contains("does not change its consenter set")
    );
    // Too many signatures.
    let mut updated = channel.group();
    batch_timeout(&mut updated, "1s");
    let update = compute_update(CHANNEL_ID, &channel.group(), &updated).expect("update");
    let many = vec![admin.clone(); MAX_UPDATE_SIGNATURES + 1];
    assert!(refused(&channel, &signed(update, &many, &admin)).contains("more than the 256 accepted"));
}

#[test]
fn a_config_envelope_must_come_from_an_orderer() {
    let channel = Channel::new();
    let admin = channel.orderer.issue("admin", "admin");
    let mut updated = channel.group();
    batch_timeout(&mut updated, "1s");
    let update = compute_update(CHANNEL_ID, &channel.group(), &updated).expect("update");
    let config =
        propose(&channel.resources, &signed(update, std::slice::from_ref(&admin), &admin)).expect("ok");
    let timestamp = Timestamp { seconds: 1_800_000_000, nanos: 0 };
    let parse = |envelope: &Envelope| crate::Transaction::from_envelope(envelope.clone()).expect("parses");
    let by_orderer =
        config_envelope(CHANNEL_ID, &config, &channel.orderer.issue("orderer0", "orderer"), timestamp);
    check_config_signer(&channel.resources, &parse(&by_orderer)).expect("an orderer's");
    let by_member =
        config_envelope(CHANNEL_ID, &config, &channel.orgs[0].issue("clerk", "client"), timestamp);
    let why = check_config_signer(&channel.resources, &parse(&by_member)).expect_err("not an orderer").0;
    assert!(
        why.starts_with("the CONFIG envelope's creator does not satisfy /Channel/Orderer/Writers"),
        "{why}"
    );
    let mut forged = by_orderer;
    forged.signature = Bytes::from_static(b"not a signature");
    assert_eq!(
        check_config_signer(&channel.resources, &parse(&forged)).expect_err("forged").0,
        "the CONFIG envelope's signature does not verify"
    );
}

#[test]
fn a_new_organization_may_not_share_another_organizations_ca() {
    let channel = Channel::new();
    // "Clinic" brings Org1's CA: Org1's admins would count as the clinic's too.
    let mut copy = channel.group();
    let org1 = copy.groups["Application"].groups["Org1MSP"].clone();
    let mut clinic = org1.clone();
    let mut fabric = medfabric_proto::msp::FabricMspConfig::decode(
        medfabric_proto::msp::MspConfig::decode(clinic.values["MSP"].value.as_ref())
            .expect("msp")
            .config
            .as_ref(),
    )
    .expect("fabric msp");
    fabric.name = "ClinicMSP".into();
    clinic.values.get_mut("MSP").expect("msp").value =
        medfabric_proto::msp::MspConfig { r#type: 0, config: fabric.encode_to_vec().into() }
            .encode_to_vec()
            .into();
    copy.groups.get_mut("Application").expect("app").groups.insert("ClinicMSP".into(), clinic);
    let update = compute_update(CHANNEL_ID, &channel.group(), &copy).expect("update");
    let admins = [channel.admin(0), channel.admin(1)];
    let why = refused(&channel, &signed(update, &admins, &admins[0]));
    assert!(
        why.ends_with(
            "organizations ClinicMSP and Org1MSP share a CA certificate: its holders would count for both"
        ),
        "{why}"
    );
}
