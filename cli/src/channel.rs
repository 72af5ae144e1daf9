//! `medfabric channel`: changing a running channel's config as Fabric operators do with
//! `configtxlator`, `peer channel signconfigtx` and `peer channel update`. Fetch the
//! config as a document, edit it, compute the update between two documents, have each
//! organization sign the update file where its key lives, and submit it to an orderer.
//! Short forms do the common changes in one step.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use medfabric_msp::SigningIdentity;
use medfabric_network::org::OrgDefinition;
use medfabric_network::up::{self, NetworkStatus};
use medfabric_proto::common::{Block, Config, ConfigUpdate, ConfigUpdateEnvelope, Status};
use medfabric_sdk::orderer::OrdererClient;
use medfabric_types::configtx;
use medfabric_types::{ChannelResources, OrgSpec, Transaction, TransactionBody};
use prost::Message;
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum ChannelCommand {
    /// The channel config: fetch it, compute an update, sign it, submit it.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Change the orderer's batch settings: an update signed as `--as` and each
    /// `--sign-as`, then submitted as `--as`.
    SetBatch {
        /// Cut a block after this long (milliseconds).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// Cut a block at this many transactions.
        #[arg(long)]
        max_messages: Option<u32>,
        /// Further signers (users of the network directory), as the mod_policy requires.
        #[arg(long = "sign-as")]
        sign_as: Vec<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Add an organization from its definition (`org definition`): its group (MSP,
    /// anchor peers, its members' Readers/Writers/Admins/Endorsement) and record key.
    /// Signed as `--as` and each `--sign-as` (a majority of the application
    /// organizations' admins), submitted as `--as`.
    AddOrg {
        definition: PathBuf,
        #[arg(long = "sign-as")]
        sign_as: Vec<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Remove an application organization (by its group name): from the block that
    /// carries it, its identities are members nowhere. Signed and submitted as `add-org`.
    RemoveOrg {
        name: String,
        #[arg(long = "sign-as")]
        sign_as: Vec<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Change an organization's MSP in the channel config: add CRLs (each replaces the
    /// ones its CA signed before) or root CA certificates. Signed as `--as` and each
    /// `--sign-as` (the organization's admins, as its MSP's mod_policy requires), then
    /// submitted as `--as`. From the block that carries it, every peer and orderer
    /// refuses the revoked identities.
    UpdateMsp {
        /// The organization's MSP id.
        #[arg(long)]
        org: String,
        /// A CRL (PEM) to put in force.
        #[arg(long = "crl")]
        crls: Vec<PathBuf>,
        /// A root CA certificate (PEM) to add.
        #[arg(long = "root-cert")]
        root_certs: Vec<PathBuf>,
        #[arg(long = "sign-as")]
        sign_as: Vec<String>,
        #[command(flatten)]
        who: Who,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Writes the channel's current config as a document to edit (YAML for `.yaml` or
    /// `.yml`, else JSON), fetched from an orderer.
    Fetch {
        /// Where to write it (default: standard output, JSON).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        who: Who,
    },
    /// Computes the update from one config document to another (unsigned).
    Update {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
        /// The update file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Adds a signature to an update file: as a user of a network directory (`--as`), or
    /// with an MSP folder of this host (`--msp DIR --msp-id ID`).
    Sign {
        file: PathBuf,
        #[command(flatten)]
        signer: SignerArgs,
        /// Sign: without it, the changes are shown and nothing is signed.
        #[arg(long)]
        yes: bool,
    },
    /// Submits a signed update to an orderer and waits for its verdict.
    Submit {
        file: PathBuf,
        #[command(flatten)]
        who: Who,
    },
    /// Shows what an update file changes and who signed it.
    Inspect { file: PathBuf },
}

/// Who acts, in which network directory, through which orderer.
#[derive(Args, Debug, Clone)]
pub struct Who {
    /// The network directory (from `network up`).
    #[arg(long, default_value = "medfabric-data")]
    pub data: PathBuf,
    /// The user to act as: `name` or `name@MSPID`.
    #[arg(long = "as", default_value = "Admin@OrdererMSP")]
    pub user: String,
    /// The orderer to use (default: the first).
    #[arg(long)]
    pub orderer: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct SignerArgs {
    /// The network directory holding `--as`.
    #[arg(long, default_value = "medfabric-data")]
    pub data: PathBuf,
    /// A user of the network directory.
    #[arg(long = "as")]
    pub user: Option<String>,
    /// An MSP folder (`signcerts/`, `keystore/`) instead of `--as`.
    #[arg(long, requires = "msp_id", conflicts_with = "user")]
    pub msp: Option<PathBuf>,
    #[arg(long)]
    pub msp_id: Option<String>,
    /// Write the signed update here instead of in place.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn run(command: ChannelCommand) -> Result<()> {
    match command {
        ChannelCommand::Config { command } => config(command).await,
        ChannelCommand::SetBatch { timeout_ms, max_messages, sign_as, who } => {
            print_json(&set_batch(timeout_ms, max_messages, &sign_as, &who).await?)
        }
        ChannelCommand::AddOrg { definition, sign_as, who } => {
            let text = std::fs::read_to_string(&definition)
                .with_context(|| format!("reading {}", definition.display()))?;
            let definition: OrgDefinition = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an organization definition", definition.display()))?;
            print_json(&add_org(&who, &definition, &sign_as).await?)
        }
        ChannelCommand::RemoveOrg { name, sign_as, who } => {
            print_json(&remove_org(&who, &name, &sign_as).await?)
        }
        ChannelCommand::UpdateMsp { org, crls, root_certs, sign_as, who } => {
            let read = |paths: &[PathBuf]| -> Result<Vec<Vec<u8>>> {
                paths
                    .iter()
                    .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
                    .collect()
            };
            let change = MspChange { crls: read(&crls)?, root_certs: read(&root_certs)? };
            print_json(&update_msp(&who, &org, &change, &sign_as).await?)
        }
    }
}

/// Adds the organization of `definition` (from `org definition`) to the channel: its group
/// under Application — MSP, anchor peers, and Readers/Writers/Admins/Endorsement of its
/// own members — and its record key; signed as `who` and each of `sign_as`, submitted.
pub async fn add_org(who: &Who, definition: &OrgDefinition, sign_as: &[String]) -> Result<Value> {
    let value = configtx::value_from_document("MSP", &definition.msp)?;
    let msp = medfabric_proto::msp::MspConfig::decode(value.as_ref()).context("the definition's MSP")?;
    let fabric =
        medfabric_proto::msp::FabricMspConfig::decode(msp.config.as_ref()).context("a Fabric MSP")?;
    if fabric.name != definition.msp_id {
        bail!("the definition's MSP is named {}, not {}", fabric.name, definition.msp_id);
    }
    let mut spec = OrgSpec::application(&definition.name, fabric);
    for anchor in &definition.anchor_peers {
        let (host, port) = anchor.rsplit_once(':').context("an anchor peer is host:port")?;
        spec.anchor_peers.push((host.to_owned(), port.parse().context("an anchor peer's port")?));
    }
    let record_key = hex::decode(&definition.record_key).context("the record key is hex")?;
    change_config(who, sign_as, |group| {
        let application = application_of(group)?;
        if application.groups.contains_key(&definition.name) {
            bail!("the channel already has an organization named {}", definition.name);
        }
        application.groups.insert(definition.name.clone(), spec.config_group(true)?);
        edit_record_keys(application, |keys| {
            keys.insert(definition.msp_id.clone(), record_key.into());
        })
    })
    .await
}

/// Removes the application organization named `name` (its config group) and its record
/// key from the channel: from the block that carries it, its identities are no longer
/// members anywhere. Signed as `who` and each of `sign_as`, submitted.
pub async fn remove_org(who: &Who, name: &str, sign_as: &[String]) -> Result<Value> {
    change_config(who, sign_as, |group| {
        let application = application_of(group)?;
        let removed = application
            .groups
            .remove(name)
            .with_context(|| format!("the channel has no organization {name}"))?;
        let msp_id =
            removed.values.get("MSP").and_then(|v| decode_msp(v).ok()).map(|m| m.name).unwrap_or_default();
        edit_record_keys(application, |keys| {
            keys.remove(&msp_id);
        })?;
        // Its id keeps no role: an organization added later under the same id starts with none.
        if let Some(value) = application.values.get_mut(medfabric_types::config::ROLES_KEY) {
            let mut grants = medfabric_proto::medfabric::config::RoleGrants::decode(value.value.as_ref())
                .context("the channel's role grants")?;
            for ids in grants.roles.values_mut() {
                ids.msp_ids.retain(|id| *id != msp_id);
            }
            value.value = grants.encode_to_vec().into();
        }
        Ok(())
    })
    .await
}

/// Changes the channel's record keys (MSP id → public key), when it publishes any.
fn edit_record_keys(
    application: &mut medfabric_proto::common::ConfigGroup,
    edit: impl FnOnce(&mut std::collections::BTreeMap<String, bytes::Bytes>),
) -> Result<()> {
    if let Some(value) = application.values.get_mut(medfabric_types::config::RECORD_KEYS_KEY) {
        let mut keys = medfabric_proto::medfabric::config::RecordKeys::decode(value.value.as_ref())
            .context("the channel's record keys")?;
        edit(&mut keys.keys);
        value.value = keys.encode_to_vec().into();
    }
    Ok(())
}

/// What `update_msp` adds to an organization's MSP (PEM each).
#[derive(Debug, Clone, Default)]
pub struct MspChange {
    pub crls: Vec<Vec<u8>>,
    pub root_certs: Vec<Vec<u8>>,
}

/// Puts `change` into `org`'s MSP in the channel config, signed as `who` and each of
/// `sign_as`, and submits it; the verdict as JSON.
pub async fn update_msp(who: &Who, org: &str, change: &MspChange, sign_as: &[String]) -> Result<Value> {
    change_config(who, sign_as, |group| {
        let msp = org_msp_value(group, org)?;
        let mut fabric = decode_msp(msp)?;
        // Each stored CRL on its own (a bundle is split); a new CRL must be signed by one of
        // the org's CAs, supersedes the one its CA (name and key) signed before, and may not
        // be older than it.
        let mut stored: Vec<medfabric_msp::CrlEntry> = Vec::new();
        for pem in &fabric.revocation_list {
            stored.extend(medfabric_msp::crl_entries(pem).context("a CRL in the channel config")?);
        }
        for crl in &change.crls {
            for entry in medfabric_msp::crl_entries(crl)? {
                if !medfabric_msp::crl_signed_by(&entry, &fabric) {
                    bail!("the CRL is not signed by a CA of {org}: it would revoke nothing");
                }
                if let Some(old) = stored.iter().find(|old| old.same_authority(&entry))
                    && number_of(old) > number_of(&entry)
                {
                    bail!("the CRL is older than the one {org}'s CA issued before (CRL number)");
                }
                stored.retain(|old| !old.same_authority(&entry));
                stored.push(entry);
            }
        }
        fabric.revocation_list = stored.into_iter().map(|e| e.pem.into_bytes().into()).collect();
        for root in &change.root_certs {
            medfabric_msp::Certificate::from_pem(root).context("a root certificate")?;
            if !fabric.root_certs.iter().any(|r| r.as_ref() == root.as_slice()) {
                fabric.root_certs.push(root.clone().into());
            }
        }
        msp.value = medfabric_proto::msp::MspConfig { r#type: 0, config: fabric.encode_to_vec().into() }
            .encode_to_vec()
            .into();
        Ok(())
    })
    .await
}

/// A CRL's number as an integer to compare (big-endian, leading zeros dropped).
fn number_of(entry: &medfabric_msp::CrlEntry) -> (usize, Vec<u8>) {
    let bytes: Vec<u8> =
        entry.number.clone().unwrap_or_default().into_iter().skip_while(|b| *b == 0).collect();
    (bytes.len(), bytes)
}

/// The MSP value of the organization whose MSP id is `msp_id` (application or orderer).
fn org_msp_value<'a>(
    group: &'a mut medfabric_proto::common::ConfigGroup,
    msp_id: &str,
) -> Result<&'a mut medfabric_proto::common::ConfigValue> {
    let found = ["Application", "Orderer"].into_iter().find_map(|section| {
        let orgs = group.groups.get(section)?;
        orgs.groups.iter().find_map(|(name, org)| {
            let msp = decode_msp(org.values.get("MSP")?).ok()?;
            (msp.name == msp_id).then(|| (section, name.clone()))
        })
    });
    if let Some((section, name)) = found {
        return group
            .groups
            .get_mut(section)
            .and_then(|orgs| orgs.groups.get_mut(&name))
            .and_then(|org| org.values.get_mut("MSP"))
            .context("the organization's MSP value");
    }
    bail!("no organization with MSP id {msp_id} in the channel config")
}

fn decode_msp(value: &medfabric_proto::common::ConfigValue) -> Result<medfabric_proto::msp::FabricMspConfig> {
    let msp = medfabric_proto::msp::MspConfig::decode(value.value.as_ref()).context("an MSP value")?;
    medfabric_proto::msp::FabricMspConfig::decode(msp.config.as_ref()).context("a Fabric MSP")
}

async fn config(command: ConfigCommand) -> Result<()> {
    match command {
        ConfigCommand::Fetch { out, who } => {
            let (client, channel, status) = orderer_client(&who)?;
            let config = current_config(&client, &channel, &status, &who.user).await?;
            let mut document = configtx::to_document(&config);
            document["channel_id"] = json!(channel);
            match out {
                Some(path) => {
                    write_document(&path, &document)?;
                    eprintln!(
                        "config of {channel} at sequence {} written to {}",
                        config.sequence,
                        path.display()
                    );
                }
                None => println!("{}", serde_json::to_string_pretty(&document)?),
            }
            Ok(())
        }
        ConfigCommand::Update { from, to, out } => {
            let (old, new) = (read_document(&from)?, read_document(&to)?);
            let channel = old["channel_id"].as_str().or(new["channel_id"].as_str()).with_context(|| {
                format!("{} names no channel_id (write it as `channel_id: <channel>`)", from.display())
            })?;
            let (old, new) = (configtx::from_document(&old)?, configtx::from_document(&new)?);
            let update = configtx::compute_update(
                channel,
                old.channel_group.as_ref().context("no channel group")?,
                new.channel_group.as_ref().context("no channel group")?,
            )?;
            let envelope =
                ConfigUpdateEnvelope { config_update: update.encode_to_vec().into(), signatures: Vec::new() };
            write_update(&out, &envelope)?;
            print_json(&describe(&envelope)?)
        }
        ConfigCommand::Sign { file, signer, yes } => {
            let mut envelope = read_update(&file)?;
            if !yes {
                print_json(&describe(&envelope)?)?;
                bail!("nothing signed: review the changes above, then sign with --yes");
            }
            let identity = signer_identity(&signer)?;
            envelope.signatures.push(configtx::sign_update(&envelope.config_update, &identity));
            write_update(signer.out.as_deref().unwrap_or(&file), &envelope)?;
            print_json(&describe(&envelope)?)
        }
        ConfigCommand::Submit { file, who } => {
            let envelope = read_update(&file)?;
            let (client, _, _) = orderer_client(&who)?;
            print_json(&submit(&client, &envelope).await?)
        }
        ConfigCommand::Inspect { file } => print_json(&describe(&read_update(&file)?)?),
    }
}

/// The short form: fetch, change the batch values, compute, sign, submit.
async fn set_batch(
    timeout_ms: Option<u64>,
    max_messages: Option<u32>,
    sign_as: &[String],
    who: &Who,
) -> Result<Value> {
    if timeout_ms.is_none() && max_messages.is_none() {
        bail!("give --timeout-ms and/or --max-messages");
    }
    change_config(who, sign_as, |group| {
        let config = Config { sequence: 0, channel_group: Some(group.clone()) };
        let mut document = configtx::to_document(&config);
        let values = &mut document["channel_group"]["groups"]["Orderer"]["values"];
        if let Some(ms) = timeout_ms {
            values["BatchTimeout"]["value"] = json!({"timeout": format!("{ms}ms")});
        }
        if let Some(count) = max_messages {
            values["BatchSize"]["value"]["max_message_count"] = json!(count);
        }
        *group = configtx::from_document(&document)?.channel_group.context("no channel group")?;
        Ok(())
    })
    .await
}

/// Fetches the current config, applies `edit` to its channel group, and submits the
/// update between the two signed as `who` and each of `sign_as`; the verdict as JSON.
async fn change_config(
    who: &Who,
    sign_as: &[String],
    edit: impl FnOnce(&mut medfabric_proto::common::ConfigGroup) -> Result<()>,
) -> Result<Value> {
    let (client, channel, status) = orderer_client(who)?;
    let config = current_config(&client, &channel, &status, &who.user).await?;
    let original = config.channel_group.context("no channel group")?;
    let mut updated = original.clone();
    edit(&mut updated)?;
    sign_and_submit(&client, &status, &channel, &original, &updated, &who.user, sign_as).await
}

fn application_of(
    group: &mut medfabric_proto::common::ConfigGroup,
) -> Result<&mut medfabric_proto::common::ConfigGroup> {
    group.groups.get_mut("Application").context("the channel has no Application group")
}

/// The update from `original` to `updated`, signed as `user` and each of `sign_as`,
/// submitted; the verdict as JSON.
async fn sign_and_submit(
    client: &OrdererClient,
    status: &NetworkStatus,
    channel: &str,
    original: &medfabric_proto::common::ConfigGroup,
    updated: &medfabric_proto::common::ConfigGroup,
    user: &str,
    sign_as: &[String],
) -> Result<Value> {
    let update = configtx::compute_update(channel, original, updated)?;
    let mut envelope =
        ConfigUpdateEnvelope { config_update: update.encode_to_vec().into(), signatures: Vec::new() };
    for signer in std::iter::once(user).chain(sign_as.iter().map(String::as_str)) {
        let identity = user_identity(status, signer)?;
        envelope.signatures.push(configtx::sign_update(&envelope.config_update, &identity));
    }
    submit(client, &envelope).await
}

/// Submits `envelope` as the client's signer; the verdict and, once it is in, the new
/// config's block and sequence.
async fn submit(client: &OrdererClient, envelope: &ConfigUpdateEnvelope) -> Result<Value> {
    let update =
        ConfigUpdate::decode(envelope.config_update.as_ref()).context("the update does not decode")?;
    let channel = update.channel_id.clone();
    let timestamp = prost_types::Timestamp { seconds: unix_now(), nanos: 0 };
    let outer = configtx::update_envelope(&channel, envelope, client.signer(), timestamp);
    let answer = client.broadcast(outer).await?;
    let status = Status::try_from(answer.status).map_or("UNKNOWN", |s| s.as_str_name());
    if answer.status != Status::Success as i32 {
        bail!("the orderer refused the update: {status}: {}", answer.info);
    }
    let block = client.config_block(&channel).await?;
    let config = config_of(&block)?;
    Ok(json!({
        "status": status,
        "channel": channel,
        "config_block": medfabric_types::block::header(&block).number,
        "sequence": config.sequence,
    }))
}

/// What an update changes (the written elements not read at the same version) and who
/// signed it.
fn describe(envelope: &ConfigUpdateEnvelope) -> Result<Value> {
    let update =
        ConfigUpdate::decode(envelope.config_update.as_ref()).context("the update does not decode")?;
    let signers: Vec<String> = envelope
        .signatures
        .iter()
        .map(|s| {
            medfabric_proto::common::SignatureHeader::decode(s.signature_header.as_ref())
                .ok()
                .and_then(|h| medfabric_proto::msp::SerializedIdentity::decode(h.creator.as_ref()).ok())
                .and_then(|id| {
                    let cert = medfabric_msp::Certificate::from_pem(&id.id_bytes).ok()?;
                    Some(format!("{}/{}", id.mspid, cert.common_name()))
                })
                .unwrap_or_else(|| "<unreadable signer>".into())
        })
        .collect();
    Ok(json!({
        "channel": update.channel_id,
        "changes": configtx::describe_changes(&update)?,
        "signed_by": signers,
    }))
}

fn orderer_client(who: &Who) -> Result<(OrdererClient, String, NetworkStatus)> {
    let status = up::status(&who.data)?;
    let orderer = match &who.orderer {
        Some(name) => status.node(name).with_context(|| format!("no node {name:?} in the network"))?,
        None => status.orderers().next().context("the network has no orderer")?,
    };
    let user = status.user(&who.user).with_context(|| format!("no user {:?} in the network", who.user))?;
    let tls = match &orderer.tls_ca_file {
        Some(ca) => Some(medfabric_config::tls::ClientTls::from_files(
            std::slice::from_ref(ca),
            Some((user.tls_cert_file.as_path(), user.tls_key_file.as_path())),
        )?),
        None => None,
    };
    let identity = medfabric_network::connect::identity(user)?;
    let client = OrdererClient::connect(&orderer.address, tls.as_ref(), identity)?;
    let channel = status.channel.clone();
    Ok((client, channel, status))
}

fn user_identity(status: &NetworkStatus, user: &str) -> Result<Arc<SigningIdentity>> {
    let user = status.user(user).with_context(|| format!("no user {user:?} in the network"))?;
    medfabric_network::connect::identity(user)
}

fn signer_identity(signer: &SignerArgs) -> Result<Arc<SigningIdentity>> {
    match (&signer.msp, &signer.msp_id, &signer.user) {
        (Some(dir), Some(id), _) => Ok(Arc::new(
            SigningIdentity::from_msp_dir(dir, id).with_context(|| format!("loading {}", dir.display()))?,
        )),
        (None, _, Some(user)) => user_identity(&up::status(&signer.data)?, user),
        _ => bail!("sign as a user (--as) or with an MSP folder (--msp DIR --msp-id ID)"),
    }
}

/// How long the user's peer may take to hold the config block the orderer named.
const PEER_CONFIG_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The channel's current config, as the orderer names it and — for a user of an
/// organization with a peer — as that peer, which validated it, holds it: an update is
/// computed from (and signed over) a config the user's own organization vouches for, not
/// whatever an orderer sent.
async fn current_config(
    client: &OrdererClient,
    channel: &str,
    status: &NetworkStatus,
    user: &str,
) -> Result<Config> {
    let block = client.config_block(channel).await?;
    let config = config_of(&block)?;
    let user = status.user(user).with_context(|| format!("no user {user:?} in the network"))?;
    let Some(peer) = status.peer_of(&user.org) else { return Ok(config) };
    let number = medfabric_types::block::header(&block).number;
    let network = medfabric_network::connect::gateway(user, peer)?.network(channel);
    let from_peer = async {
        let mut blocks = network.block_events(medfabric_sdk::Start::Block(number)).await?;
        tokio_stream::StreamExt::next(&mut blocks)
            .await
            .context("the peer sent no block")?
            .map_err(anyhow::Error::from)
    };
    let held = tokio::time::timeout(PEER_CONFIG_WAIT, from_peer)
        .await
        .with_context(|| format!("{} did not hold config block {number} in time", peer.name))??;
    if config_of(&held)? != config {
        bail!("the orderer's config block {number} differs from {}'s: not signing over it", peer.name);
    }
    Ok(config)
}

fn config_of(block: &Block) -> Result<Config> {
    let envelopes = medfabric_types::block::envelopes(block);
    let first = envelopes.first().context("the config block is empty")?;
    let tx = Transaction::parse(first).map_err(|e| anyhow::anyhow!("the config block: {e}"))?;
    let channel = tx.channel_id().to_owned();
    match tx.body {
        TransactionBody::Config(envelope) => {
            let config = envelope.config.context("the config block carries no config")?;
            // It must load as a channel config.
            ChannelResources::from_config(&channel, config.clone())?;
            Ok(config)
        }
        _ => bail!("block {} is not a config block", medfabric_types::block::header(block).number),
    }
}

fn is_yaml(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "yaml" || e == "yml")
}

fn read_document(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if is_yaml(path) {
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
    }
}

fn write_document(path: &Path, document: &Value) -> Result<()> {
    let text = if is_yaml(path) {
        serde_yaml::to_string(document)?
    } else {
        serde_json::to_string_pretty(document)? + "\n"
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn read_update(path: &Path) -> Result<ConfigUpdateEnvelope> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let envelope = ConfigUpdateEnvelope::decode(bytes.as_slice())
        .with_context(|| format!("{} is not a config update file", path.display()))?;
    ConfigUpdate::decode(envelope.config_update.as_ref())
        .with_context(|| format!("{} holds no config update", path.display()))?;
    Ok(envelope)
}

fn write_update(path: &Path, envelope: &ConfigUpdateEnvelope) -> Result<()> {
    std::fs::write(path, envelope.encode_to_vec()).with_context(|| format!("writing {}", path.display()))
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
