//! `protos.Deliver` on the peer: committed blocks (with their TRANSACTIONS_FILTER),
//! filtered blocks (tx id, type, validation code, chaincode events without payload), and
//! blocks with private data (none until private data collections exist). Readers of
//! the channel's application (`/Channel/Application/Readers`, Fabric's `event/Block` and
//! `event/FilteredBlock` ACLs) may read.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use medfabric_node::deliver::{Refusal, check_seek_request, seek_range, stream_blocks};
use medfabric_proto::common::{Block, Envelope, HeaderType, Status};
use medfabric_proto::protos::{
    self, BlockAndPrivateData, ChaincodeEvent, DeliverResponse, FilteredBlock, FilteredChaincodeAction,
    FilteredTransaction, FilteredTransactionActions, deliver_response, filtered_transaction,
};
use medfabric_types::Transaction;
use medfabric_types::block;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::channel::Channel;
use crate::metrics::PeerMetrics;
use crate::pvtdata::CollectionView;
use medfabric_proto::rwset::{CollectionPvtReadWriteSet, NsPvtReadWriteSet, TxPvtReadWriteSet};

/// The policy a Deliver client must satisfy.
pub const READERS_POLICY: &str = "/Channel/Application/Readers";

/// The chaincode events of a committed block's valid transactions, in block order,
/// with the index of each transaction.
pub fn valid_events(block: &Block) -> Vec<(usize, ChaincodeEvent)> {
    let codes = block::transactions_filter(block);
    block::envelopes(block)
        .iter()
        .enumerate()
        .filter(|(i, _)| codes.get(*i) == Some(&(protos::TxValidationCode::Valid as u8)))
        .filter_map(|(i, envelope)| {
            let tx = Transaction::parse(envelope).ok()?;
            Some((i, tx.endorser()?.event().ok()??))
        })
        .collect()
}

/// A committed block as Fabric's filtered block: per transaction its id, header type
/// and validation code, and chaincode events without their payload.
pub fn filtered_block(channel_id: &str, block: &Block) -> FilteredBlock {
    let codes = block::transactions_filter(block);
    let filtered_transactions = block::envelopes(block)
        .iter()
        .enumerate()
        .map(|(i, envelope)| {
            let code =
                codes.get(i).copied().map_or(protos::TxValidationCode::InvalidOtherReason as i32, i32::from);
            let Ok(tx) = Transaction::parse(envelope) else {
                return FilteredTransaction { tx_validation_code: code, ..Default::default() };
            };
            let data = tx.endorser().map(|endorser| {
                let chaincode_actions = endorser
                    .event()
                    .ok()
                    .flatten()
                    .map(|event| FilteredChaincodeAction {
                        chaincode_event: Some(ChaincodeEvent { payload: Default::default(), ..event }),
                    })
                    .into_iter()
                    .collect();
                filtered_transaction::Data::TransactionActions(FilteredTransactionActions {
                    chaincode_actions,
                })
            });
            FilteredTransaction {
                txid: tx.tx_id().to_owned(),
                r#type: tx.header_type(),
                tx_validation_code: code,
                data,
            }
        })
        .collect();
    FilteredBlock {
        channel_id: channel_id.to_owned(),
        number: block::header(block).number,
        filtered_transactions,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Full,
    Filtered,
    WithPrivateData,
}

/// The peer's Deliver service over its channels.
#[derive(Debug, Clone)]
pub struct DeliverService {
    channels: BTreeMap<String, Arc<Channel>>,
    metrics: Arc<PeerMetrics>,
}

impl DeliverService {
    pub fn new(channels: BTreeMap<String, Arc<Channel>>, metrics: Arc<PeerMetrics>) -> Self {
        Self { channels, metrics }
    }

    fn serve(&self, request: tonic::Request<tonic::Streaming<Envelope>>, kind: Kind) -> ResponseStream {
        // The TLS binding: SHA-256 of the client's TLS certificate, when it sent one.
        let client_cert_hash: Option<[u8; 32]> =
            request.peer_certs().and_then(|certs| certs.first().map(|c| Sha256::digest(c.as_ref()).into()));
        let mut incoming = request.into_inner();
        let service = self.clone();
        let (out, out_rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(next) = incoming.next().await {
                let Ok(envelope) = next else { break };
                let status = match service.deliver(&envelope, kind, client_cert_hash, &out).await {
                    Ok(()) => Status::Success,
                    Err(refusal) => {
                        tracing::debug!("deliver refused: {}", refusal.info);
                        refusal.status
                    }
                };
                let done = DeliverResponse { r#type: Some(deliver_response::Type::Status(status as i32)) };
                if out.send(Ok(done)).await.is_err() {
                    break;
                }
            }
        });
        Box::pin(ReceiverStream::new(out_rx))
    }

    async fn deliver(
        &self,
        envelope: &Envelope,
        kind: Kind,
        client_cert_hash: Option<[u8; 32]>,
        out: &mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
    ) -> Result<(), Refusal> {
        let channel_id = Transaction::from_envelope(envelope.clone())
            .map(|tx| tx.channel_id().to_owned())
            .map_err(|e| Refusal::new(Status::BadRequest, format!("bad envelope: {}", e.error)))?;
        let Some(channel) = self.channels.get(&channel_id) else {
            return Err(Refusal::new(Status::NotFound, format!("channel {channel_id} not found")));
        };
        let request = check_seek_request(
            envelope,
            &channel.context().admission,
            READERS_POLICY,
            medfabric_node::deliver::now_unix(),
        )?;
        if request.tx.header_type() != HeaderType::DeliverSeekInfo as i32 {
            return Err(Refusal::new(Status::BadRequest, "not a DELIVER_SEEK_INFO envelope"));
        }
        // A request bound to a TLS certificate must come over a connection made with it.
        let claimed = &request.tx.channel_header.tls_cert_hash;
        if !claimed.is_empty() && client_cert_hash.is_none_or(|actual| actual.as_slice() != claimed.as_ref())
        {
            return Err(Refusal::new(
                Status::Forbidden,
                format!(
                    "claimed TLS cert hash is {} but actual TLS cert hash is {}",
                    hex::encode(claimed),
                    client_cert_hash.map(hex::encode).unwrap_or_default()
                ),
            ));
        }
        let height =
            channel.height().map_err(|e| Refusal::new(Status::InternalServerError, e.to_string()))?;
        let range = seek_range(&request.seek, height)?;
        self.metrics.deliver_streams_opened.inc();
        let sent = self.metrics.deliver_blocks_sent.clone();
        let fetch = |number| channel.ledger().block(number).map_err(|e| e.to_string());
        let requester = channel.context().admission.msps.deserialize(request.tx.creator()).ok();
        stream_blocks(range, channel.watch_height(), fetch, out, |block| {
            sent.inc();
            let r#type = match kind {
                Kind::Full => deliver_response::Type::Block(block),
                Kind::Filtered => deliver_response::Type::FilteredBlock(filtered_block(&channel_id, &block)),
                Kind::WithPrivateData => {
                    let number = block.header.as_ref().map_or(0, |h| h.number);
                    let private_data_map = requester
                        .as_ref()
                        .map(|who| private_data_for(channel, number, who))
                        .unwrap_or_default();
                    deliver_response::Type::BlockAndPrivateData(BlockAndPrivateData {
                        block: Some(block),
                        private_data_map,
                    })
                }
            };
            Some(DeliverResponse { r#type: Some(r#type) })
        })
        .await
    }
}

/// The private data of block `number` held here, for the collections `requester`'s
/// organization is a member of, by transaction position.
pub fn private_data_for(
    channel: &Channel,
    number: u64,
    requester: &Arc<medfabric_msp::Identity>,
) -> BTreeMap<u64, TxPvtReadWriteSet> {
    let membership = channel.membership();
    let stored = match crate::pvtdata::block_private_data(channel.ledger(), number) {
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(block = number, "reading private data: {e}");
            return BTreeMap::new();
        }
    };
    let mut map: BTreeMap<u64, TxPvtReadWriteSet> = BTreeMap::new();
    for (at, rwset) in stored {
        let eligible =
            membership.collection(&at.namespace, &at.collection).is_some_and(|c| c.is_member(requester));
        if !eligible {
            continue;
        }
        let tx = map.entry(at.tx).or_insert_with(|| TxPvtReadWriteSet {
            data_model: medfabric_proto::rwset::tx_read_write_set::DataModel::Kv as i32,
            ns_pvt_rwset: Vec::new(),
        });
        if tx.ns_pvt_rwset.last().is_none_or(|ns| ns.namespace != at.namespace) {
            tx.ns_pvt_rwset.push(NsPvtReadWriteSet {
                namespace: at.namespace.clone(),
                collection_pvt_rwset: Vec::new(),
            });
        }
        if let Some(ns) = tx.ns_pvt_rwset.last_mut() {
            ns.collection_pvt_rwset.push(CollectionPvtReadWriteSet { collection_name: at.collection, rwset });
        }
    }
    map
}

type ResponseStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<DeliverResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl protos::deliver_server::Deliver for DeliverService {
    type DeliverStream = ResponseStream;
    type DeliverFilteredStream = ResponseStream;
    type DeliverWithPrivateDataStream = ResponseStream;

    async fn deliver(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        Ok(tonic::Response::new(self.serve(request, Kind::Full)))
    }

    async fn deliver_filtered(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        Ok(tonic::Response::new(self.serve(request, Kind::Filtered)))
    }

    async fn deliver_with_private_data(
        &self,
        request: tonic::Request<tonic::Streaming<Envelope>>,
    ) -> Result<tonic::Response<ResponseStream>, tonic::Status> {
        Ok(tonic::Response::new(self.serve(request, Kind::WithPrivateData)))
    }
}
