//! The `PrivateData` service: each handler decodes the signed message, hands it to a core
//! that authenticates the sender and reads or writes the stores (with `now` passed in),
//! and encodes the answer; [`PvtError`] becomes a gRPC status in one place.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use medfabric_msp::{Identity, NodeRole};
use medfabric_node::deliver::now_unix;
use medfabric_proto::medfabric::pvt::private_data_server::PrivateData;
use medfabric_proto::medfabric::pvt::{
    Element, PullPayload, PullResponse, PushPayload, PushResponse, SignedMessage,
};
use medfabric_proto::rwset::TxPvtReadWriteSet;
use medfabric_shim::tx::hash;
use prost::Message;
use sha2::{Digest as _, Sha256};

use super::{PvtError, eligible_part};
use crate::channel::Channel;
use crate::pvtdata::{self, CollectionView, PvtKey};

/// How far a message's timestamp may be from the receiver's clock.
const TIME_WINDOW_SECONDS: i64 = 15 * 60;

/// How much one sending peer may hold in this peer's transient store at once: pushes
/// whose data the transient store still holds (their transaction has neither
/// committed nor expired), and the bytes of their write sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushQuota {
    pub entries: usize,
    pub bytes: u64,
}

impl Default for PushQuota {
    /// 10,000 pending pushes and 256 MiB per sender.
    fn default() -> Self {
        Self { entries: 10_000, bytes: 256 << 20 }
    }
}

/// One sender's pushes still counted against its quota.
#[derive(Debug, Default)]
struct Pending {
    pushes: VecDeque<(Arc<Channel>, String, u64)>,
    bytes: u64,
}

impl Pending {
    /// Forgets pushes whose data the transient store no longer holds (committed,
    /// purged or expired).
    fn prune(&mut self) -> Result<(), PvtError> {
        let mut kept = VecDeque::with_capacity(self.pushes.len());
        for (channel, tx_id, bytes) in self.pushes.drain(..) {
            if pvtdata::transient_get(channel.ledger(), &tx_id).map_err(PvtError::ledger)?.is_empty() {
                self.bytes -= bytes;
            } else {
                kept.push_back((channel, tx_id, bytes));
            }
        }
        self.pushes = kept;
        Ok(())
    }

    fn fits(&self, quota: PushQuota, bytes: u64) -> bool {
        self.pushes.len() < quota.entries && self.bytes.saturating_add(bytes) <= quota.bytes
    }
}

/// The `PrivateData` service: accepts pushes into the transient store and serves pulls
/// from the private data store or the transient store.
#[derive(Debug, Clone)]
pub struct PrivateDataService {
    channels: BTreeMap<String, Arc<Channel>>,
    tls_binding: bool,
    quota: PushQuota,
    /// By SHA-256 of the sender's serialized identity.
    pending: Arc<Mutex<HashMap<[u8; 32], Pending>>>,
}

/// What a request says about its sender: the signed message, its timestamp and the TLS
/// certificate hash it claims, and the hash of the certificate its connection presented.
struct Sent<'a> {
    message: &'a SignedMessage,
    timestamp: Option<&'a prost_types::Timestamp>,
    bound_to: &'a [u8],
    connection: Option<[u8; 32]>,
}

fn connection_cert_hash<T>(request: &tonic::Request<T>) -> Option<[u8; 32]> {
    request.peer_certs().and_then(|certs| certs.first().map(|c| Sha256::digest(c.as_ref()).into()))
}

impl PrivateDataService {
    pub fn new(channels: BTreeMap<String, Arc<Channel>>) -> Self {
        Self { channels, tls_binding: false, quota: PushQuota::default(), pending: Arc::default() }
    }

    /// Bounds what each sender may hold in this peer's transient store.
    pub fn with_push_quota(mut self, quota: PushQuota) -> Self {
        self.quota = quota;
        self
    }

    /// Counts a push of `bytes` for `tx_id` against `sender`'s quota, or refuses it.
    fn charge(&self, sender: &[u8], channel: &Arc<Channel>, tx_id: &str, bytes: u64) -> Result<(), PvtError> {
        let key: [u8; 32] = Sha256::digest(sender).into();
        let mut all = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let pending = all.entry(key).or_default();
        if !pending.fits(self.quota, bytes) {
            // Only at the limit: one pass over the sender's pushes.
            pending.prune()?;
        }
        if !pending.fits(self.quota, bytes) {
            return Err(PvtError::QuotaExceeded {
                pushes: pending.pushes.len(),
                bytes: pending.bytes,
                quota: self.quota,
            });
        }
        pending.bytes += bytes;
        pending.pushes.push_back((channel.clone(), tx_id.to_owned(), bytes));
        Ok(())
    }

    /// Served over TLS: every message must be bound to its connection's client
    /// certificate.
    pub fn with_tls_binding(mut self, on: bool) -> Self {
        self.tls_binding = on;
        self
    }

    /// Checks a signed message: a peer of the channel that signed it recently, over a
    /// connection presenting the TLS certificate it is bound to.
    fn sender(&self, channel: &Channel, sent: Sent<'_>, now: i64) -> Result<Arc<Identity>, PvtError> {
        let Sent { message, timestamp, bound_to, connection } = sent;
        if self.tls_binding {
            let Some(presented) = connection else {
                return Err(PvtError::Denied(
                    "private data is exchanged over mutual TLS: this connection presented no client certificate".into(),
                ));
            };
            if bound_to != presented.as_slice() {
                return Err(PvtError::Denied(
                    "the message is bound to another TLS certificate than this connection's".into(),
                ));
            }
        }
        let resources = channel.context().admission.clone();
        let identity = resources
            .msps
            .deserialize(&message.identity)
            .map_err(|e| PvtError::Denied(format!("sender identity: {e}")))?;
        identity
            .verify(&message.payload, &message.signature)
            .map_err(|e| PvtError::Denied(format!("sender signature: {e}")))?;
        if identity.role() != Some(NodeRole::Peer) {
            return Err(PvtError::Denied("only peers exchange private data".into()));
        }
        let sent = timestamp.map_or(0, |t| t.seconds);
        if (sent - now).abs() > TIME_WINDOW_SECONDS {
            return Err(PvtError::Denied("message timestamp is outside the accepted window".into()));
        }
        identity.check_validity_at(now).map_err(|e| PvtError::Denied(format!("sender identity: {e}")))?;
        Ok(identity)
    }

    fn channel(&self, channel_id: &str) -> Result<&Arc<Channel>, PvtError> {
        self.channels.get(channel_id).ok_or_else(|| PvtError::UnknownChannel(channel_id.to_owned()))
    }

    /// The channel a message is for, and its sender once [`Self::sender`] accepts it.
    fn authenticate(
        &self,
        channel_id: &str,
        sent: Sent<'_>,
        now: i64,
    ) -> Result<(&Arc<Channel>, Arc<Identity>), PvtError> {
        let channel = self.channel(channel_id)?;
        let sender = self.sender(channel, sent, now)?;
        Ok((channel, sender))
    }

    /// Accepts a push: an authenticated peer's write sets, cut to the collections this
    /// peer's organization may hold, into the transient store.
    fn accept_push(
        &self,
        message: &SignedMessage,
        connection: Option<[u8; 32]>,
        now: i64,
    ) -> Result<(), PvtError> {
        let payload = PushPayload::decode(message.payload.as_ref())
            .map_err(|e| PvtError::BadRequest(format!("push payload: {e}")))?;
        let sent = Sent {
            message,
            timestamp: payload.timestamp.as_ref(),
            bound_to: &payload.tls_cert_hash,
            connection,
        };
        let (channel, _) = self.authenticate(&payload.channel_id, sent, now)?;
        if channel.ledger().transaction(&payload.tx_id).map_err(PvtError::ledger)?.is_some() {
            return Err(PvtError::AlreadyCommitted(payload.tx_id));
        }
        let rwset = TxPvtReadWriteSet::decode(payload.pvt_rwset.as_ref())
            .map_err(|e| PvtError::BadRequest(format!("private write set: {e}")))?;
        // Keep only what this peer's organization may hold.
        let Some(part) = eligible_part(&rwset, &channel.membership()) else {
            return Err(PvtError::Denied("this peer is not a member of the pushed collections".into()));
        };
        self.charge(&message.identity, channel, &payload.tx_id, payload.pvt_rwset.len() as u64)?;
        let height = channel.height().map_err(PvtError::ledger)?;
        pvtdata::transient_put(channel.ledger(), &payload.tx_id, height, &part).map_err(PvtError::ledger)?;
        Ok(())
    }

    /// Serves a pull: of the digests asked for, the data of collections the requester's
    /// organization is a member of and this peer holds as a member.
    fn serve_pull(
        &self,
        message: &SignedMessage,
        connection: Option<[u8; 32]>,
        now: i64,
    ) -> Result<Vec<Element>, PvtError> {
        let payload = PullPayload::decode(message.payload.as_ref())
            .map_err(|e| PvtError::BadRequest(format!("pull payload: {e}")))?;
        let sent = Sent {
            message,
            timestamp: payload.timestamp.as_ref(),
            bound_to: &payload.tls_cert_hash,
            connection,
        };
        let (channel, requester) = self.authenticate(&payload.channel_id, sent, now)?;
        let membership = channel.membership();
        let mut elements = Vec::new();
        for digest in payload.digests {
            let Some(collection) = membership.collection(&digest.namespace, &digest.collection) else {
                continue;
            };
            // Only members get data, and only data this peer holds as a member.
            if !collection.is_member(&requester) || !membership.eligible(&collection) {
                continue;
            }
            let key = PvtKey {
                block: digest.block_num,
                tx: digest.tx_num,
                namespace: digest.namespace.clone(),
                collection: digest.collection.clone(),
            };
            let committed = pvtdata::stored(channel.ledger(), &key).map_err(PvtError::ledger)?;
            let rwset = match committed.filter(|b| hash(b) == digest.pvt_rwset_hash.as_ref()) {
                Some(rwset) => Some(rwset),
                None => pvtdata::transient_collection(
                    channel.ledger(),
                    &digest.tx_id,
                    &digest.namespace,
                    &digest.collection,
                    &digest.pvt_rwset_hash,
                )
                .map_err(PvtError::ledger)?,
            };
            if let Some(rwset) = rwset {
                elements.push(Element { digest: Some(digest), rwset });
            }
        }
        Ok(elements)
    }
}

#[tonic::async_trait]
impl PrivateData for PrivateDataService {
    async fn push(
        &self,
        request: tonic::Request<SignedMessage>,
    ) -> Result<tonic::Response<PushResponse>, tonic::Status> {
        let connection = connection_cert_hash(&request);
        self.accept_push(&request.into_inner(), connection, now_unix())?;
        Ok(tonic::Response::new(PushResponse {}))
    }

    async fn pull(
        &self,
        request: tonic::Request<SignedMessage>,
    ) -> Result<tonic::Response<PullResponse>, tonic::Status> {
        let connection = connection_cert_hash(&request);
        let elements = self.serve_pull(&request.into_inner(), connection, now_unix())?;
        Ok(tonic::Response::new(PullResponse { elements }))
    }
}
