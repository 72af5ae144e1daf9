//! Private data between peers (`medfabric.pvt.PrivateData`, our replacement for
//! Fabric's gossip private-data messages), over the peers' TLS links:
//!
//! - **Push**: after simulating a proposal with private writes, the endorser pushes each
//!   collection's write set to at most `maximum_peer_count` peers of member
//!   organizations; the endorsement fails if fewer than `required_peer_count` accepted
//!   it. Each receiver gets only the collections its organization is a member of and
//!   keeps them in its transient store.
//! - **Pull**: before committing a block, a peer of a member organization fetches the
//!   private data its transient store lacks from other member peers; what it still
//!   lacks after that is recorded as missing and fetched later by the [`reconcile`]
//!   loop.
//!
//! Every message is signed by the sending peer's identity and carries a timestamp; a
//! receiver serves and accepts data only for collections whose member policy the
//! other peer satisfies. On a TLS network every message is also bound to its sender's
//! TLS client certificate (its SHA-256 is in the signed payload), as Fabric's gossip
//! binds its handshake: a message arriving over any other connection is refused, so
//! one peer cannot replay another's messages as its own.
//!
//! What one sender may keep in this peer's transient store is bounded ([`PushQuota`]:
//! pending pushes and their bytes, counted until the transaction commits or the
//! transient store drops them), so a member peer pushing data for transactions that
//! never commit cannot fill another peer's disk.

mod error;
mod server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use medfabric_config::tls::{ClientTls, lazy_channel};
use medfabric_msp::SigningIdentity;
use medfabric_node::deliver::now_unix;
use medfabric_proto::medfabric::pvt::private_data_client::PrivateDataClient;
use medfabric_proto::medfabric::pvt::{Digest, PullPayload, PushPayload, SignedMessage};
use medfabric_proto::rwset::{NsPvtReadWriteSet, TxPvtReadWriteSet};
use medfabric_shim::tx::hash;
use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::channel::{Channel, Membership};
use crate::pvtdata::{self, CollectionView, Missing, PvtKey};

pub use error::PvtError;
pub use server::{PrivateDataService, PushQuota};

/// Another peer that may hold private data.
#[derive(Debug, Clone)]
pub struct PeerLink {
    pub msp_id: String,
    pub address: String,
    /// Its serialized signing identity (decides its collection memberships).
    pub identity: Bytes,
    client: PrivateDataClient<tonic::transport::Channel>,
}

/// This peer's view of the other peers, for pushing and pulling private data.
#[derive(Debug)]
pub struct PrivatePeers {
    peers: Vec<PeerLink>,
    signer: Arc<SigningIdentity>,
    timeout: Duration,
    /// SHA-256 of the TLS client certificate this peer presents (empty without TLS).
    tls_cert_hash: Bytes,
}

/// `(msp id, address, serialized identity)` of another peer.
pub type PeerInfo = (String, String, Bytes);

fn timestamp_now() -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: now_unix(), nanos: 0 }
}

/// Keeps only the collections `keep(namespace, collection)` accepts.
fn filter_rwset(rwset: &TxPvtReadWriteSet, keep: impl Fn(&str, &str) -> bool) -> Option<TxPvtReadWriteSet> {
    let ns_pvt_rwset: Vec<NsPvtReadWriteSet> = rwset
        .ns_pvt_rwset
        .iter()
        .filter_map(|ns| {
            let collection_pvt_rwset: Vec<_> = ns
                .collection_pvt_rwset
                .iter()
                .filter(|c| keep(&ns.namespace, &c.collection_name))
                .cloned()
                .collect();
            (!collection_pvt_rwset.is_empty())
                .then(|| NsPvtReadWriteSet { namespace: ns.namespace.clone(), collection_pvt_rwset })
        })
        .collect();
    (!ns_pvt_rwset.is_empty()).then(|| TxPvtReadWriteSet { data_model: rwset.data_model, ns_pvt_rwset })
}

/// The part of `rwset` this peer's organization may hold.
pub fn eligible_part(rwset: &TxPvtReadWriteSet, membership: &Membership) -> Option<TxPvtReadWriteSet> {
    filter_rwset(rwset, |ns, coll| membership.collection(ns, coll).is_some_and(|c| membership.eligible(&c)))
}

impl PrivatePeers {
    pub fn new(
        peers: &[PeerInfo],
        tls: Option<&ClientTls>,
        signer: Arc<SigningIdentity>,
        timeout: Duration,
        max_message_bytes: usize,
    ) -> anyhow::Result<Self> {
        let peers = peers
            .iter()
            .map(|(msp_id, address, identity)| {
                Ok(PeerLink {
                    msp_id: msp_id.clone(),
                    address: address.clone(),
                    identity: identity.clone(),
                    client: PrivateDataClient::new(lazy_channel(address, tls)?)
                        .max_decoding_message_size(max_message_bytes)
                        .max_encoding_message_size(max_message_bytes),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tls_cert_hash = match tls.and_then(|t| t.identity.as_ref()) {
            None => Bytes::new(),
            Some((cert_pem, _)) => {
                let der = medfabric_msp::pem_to_der_all(cert_pem)
                    .map_err(|e| anyhow::anyhow!("TLS client certificate: {e}"))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("TLS client certificate: no PEM block"))?
                    .1;
                Bytes::copy_from_slice(&Sha256::digest(&der))
            }
        };
        Ok(Self { peers, signer, timeout, tls_cert_hash })
    }

    fn sign(&self, payload: Vec<u8>) -> SignedMessage {
        let signature = self.signer.sign(&payload);
        SignedMessage {
            payload: payload.into(),
            identity: self.signer.serialized().clone(),
            signature: signature.into(),
        }
    }

    /// Peers whose organization is a member of the collection (by their identity on the
    /// channel).
    fn members_of(&self, membership: &Membership, namespace: &str, collection: &str) -> Vec<usize> {
        let Some(found) = membership.collection(namespace, collection) else { return Vec::new() };
        let msps = &membership.context.resources.msps;
        (0..self.peers.len())
            .filter(|i| msps.deserialize(&self.peers[*i].identity).is_ok_and(|id| found.is_member(&id)))
            .collect()
    }

    /// Pushes a transaction's private write sets to member peers; fails when a
    /// collection reached fewer than its `required_peer_count`.
    pub async fn disseminate(
        &self,
        channel_id: &str,
        tx_id: &str,
        rwset: &TxPvtReadWriteSet,
        membership: &Membership,
    ) -> Result<(), String> {
        // Which peers get which collections.
        let mut plan: BTreeMap<usize, Vec<(String, String)>> = BTreeMap::new();
        let mut required: Vec<(String, String, usize)> = Vec::new();
        for ns in &rwset.ns_pvt_rwset {
            for set in &ns.collection_pvt_rwset {
                let Some(found) = membership.collection(&ns.namespace, &set.collection_name) else {
                    return Err(format!(
                        "collection {} of {} is not defined",
                        set.collection_name, ns.namespace
                    ));
                };
                let members = self.members_of(membership, &ns.namespace, &set.collection_name);
                if members.len() < found.required_peer_count {
                    return Err(format!(
                        "required to disseminate to at least {} peers, but know of only {} eligible peers",
                        found.required_peer_count,
                        members.len()
                    ));
                }
                for peer in members.into_iter().take(found.maximum_peer_count) {
                    plan.entry(peer).or_default().push((ns.namespace.clone(), set.collection_name.clone()));
                }
                if found.required_peer_count > 0 {
                    required.push((
                        ns.namespace.clone(),
                        set.collection_name.clone(),
                        found.required_peer_count,
                    ));
                }
            }
        }
        let pushes = plan.into_iter().filter_map(|(peer, collections)| {
            let part = filter_rwset(rwset, |ns, coll| collections.iter().any(|(n, c)| n == ns && c == coll))?;
            let payload = PushPayload {
                channel_id: channel_id.to_owned(),
                tx_id: tx_id.to_owned(),
                pvt_rwset: part.encode_to_vec().into(),
                timestamp: Some(timestamp_now()),
                tls_cert_hash: self.tls_cert_hash.clone(),
            };
            let message = self.sign(payload.encode_to_vec());
            let mut client = self.peers[peer].client.clone();
            let timeout = self.timeout;
            Some(async move {
                let mut request = tonic::Request::new(message);
                request.set_timeout(timeout);
                let outcome = client.push(request).await;
                if let Err(e) = &outcome {
                    tracing::debug!(peer = %self.peers[peer].address, "private data push failed: {}", e.message());
                }
                (collections, outcome.is_ok())
            })
        });
        let results = futures::future::join_all(pushes).await;
        for (namespace, collection, count) in required {
            let acked = results
                .iter()
                .filter(|(collections, ok)| {
                    *ok && collections.iter().any(|(n, c)| *n == namespace && *c == collection)
                })
                .count();
            if acked < count {
                return Err(format!(
                    "failed to distribute private data of collection {collection} of {namespace}: {acked} of the required {count} peers accepted it"
                ));
            }
        }
        Ok(())
    }

    /// Fetches missing private data from member peers; returns what arrived and
    /// matches its hash.
    pub async fn pull(
        &self,
        channel_id: &str,
        membership: &Membership,
        needs: &[Missing],
    ) -> BTreeMap<PvtKey, Bytes> {
        let mut found: BTreeMap<PvtKey, Bytes> = BTreeMap::new();
        // Ask peers one at a time, each for what is still missing that it may hold.
        for peer in 0..self.peers.len() {
            let wanted: Vec<&Missing> = needs
                .iter()
                .filter(|m| !found.contains_key(&m.key))
                .filter(|m| self.members_of(membership, &m.key.namespace, &m.key.collection).contains(&peer))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let payload = PullPayload {
                channel_id: channel_id.to_owned(),
                digests: wanted.iter().map(|m| digest_of(m)).collect(),
                timestamp: Some(timestamp_now()),
                tls_cert_hash: self.tls_cert_hash.clone(),
            };
            let mut request = tonic::Request::new(self.sign(payload.encode_to_vec()));
            request.set_timeout(self.timeout);
            let mut client = self.peers[peer].client.clone();
            let response = match client.pull(request).await {
                Ok(response) => response.into_inner(),
                Err(e) => {
                    tracing::debug!(peer = %self.peers[peer].address, "private data pull failed: {}", e.message());
                    continue;
                }
            };
            for element in response.elements {
                let Some(digest) = element.digest else { continue };
                let Some(need) = wanted.iter().find(|m| digest_of(m) == digest) else { continue };
                if hash(&element.rwset) == need.hash.as_ref() {
                    found.insert(need.key.clone(), element.rwset);
                }
            }
        }
        found
    }
}

fn digest_of(missing: &Missing) -> Digest {
    Digest {
        tx_id: missing.tx_id.clone(),
        namespace: missing.key.namespace.clone(),
        collection: missing.key.collection.clone(),
        block_num: missing.key.block,
        tx_num: missing.key.tx,
        pvt_rwset_hash: missing.hash.clone(),
    }
}

/// Reconciliation: every `interval`, fetches up to `batch` missing entries from member
/// peers and stores what arrives. Runs until dropped.
pub async fn reconcile(channel: Arc<Channel>, peers: Arc<PrivatePeers>, interval: Duration, batch: usize) {
    let mut cursor = None;
    loop {
        match reconcile_once(&channel, &peers, batch, &mut cursor).await {
            Ok(0) => {}
            Ok(stored) => tracing::info!(stored, "reconciled missing private data"),
            Err(e) => tracing::warn!("reconciling private data: {e}"),
        }
        tokio::time::sleep(interval).await;
    }
}

/// One reconciliation pass over up to `batch` missing entries after `cursor` (which
/// advances, so entries nobody can serve do not block the others); returns how many
/// entries were stored.
pub async fn reconcile_once(
    channel: &Arc<Channel>,
    peers: &PrivatePeers,
    batch: usize,
    cursor: &mut Option<PvtKey>,
) -> anyhow::Result<usize> {
    let mut missing = pvtdata::missing(channel.ledger(), cursor.as_ref(), batch)?;
    *cursor = missing.last().map(|m| m.key.clone());
    if missing.is_empty() {
        return Ok(0);
    }
    for entry in &mut missing {
        let block = channel.ledger().block(entry.key.block)?;
        let tx_id = block
            .as_ref()
            .and_then(|b| medfabric_types::block::envelopes(b).get(entry.key.tx as usize).cloned())
            .and_then(|e| medfabric_types::Transaction::parse(&e).ok())
            .map(|t| t.tx_id().to_owned());
        entry.tx_id = tx_id.unwrap_or_default();
    }
    let found = peers.pull(channel.channel_id(), &channel.membership(), &missing).await;
    let fetched: Vec<(Missing, Bytes)> =
        missing.into_iter().filter_map(|m| found.get(&m.key).cloned().map(|b| (m, b))).collect();
    if fetched.is_empty() {
        return Ok(0);
    }
    let channel = channel.clone();
    Ok(tokio::task::spawn_blocking(move || channel.store_reconciled(&fetched)).await??)
}
