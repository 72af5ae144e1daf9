//! A client of an ordering node: Broadcast (one envelope, its status) and Deliver (one
//! block; the channel's current config block), what channel administration needs.

use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use medfabric_config::tls::{ClientTls, lazy_channel};
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Block, Envelope, Status};
use medfabric_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medfabric_proto::orderer::{BroadcastResponse, deliver_response};
use medfabric_types::block;
use medfabric_types::deliver::{Seek, seek_envelope};
use tokio_stream::StreamExt;

/// Largest message sent or received (a config block holds every org's certificates).
const MAX_MESSAGE: usize = 100 << 20;
/// How long one Broadcast or Deliver exchange may take.
const EXCHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A connection to one ordering node, acting as `signer`.
#[derive(Debug, Clone)]
pub struct OrdererClient {
    client: AtomicBroadcastClient<tonic::transport::Channel>,
    signer: Arc<SigningIdentity>,
}

impl OrdererClient {
    pub fn connect(address: &str, tls: Option<&ClientTls>, signer: Arc<SigningIdentity>) -> Result<Self> {
        let client = AtomicBroadcastClient::new(lazy_channel(address, tls)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        Ok(Self { client, signer })
    }

    pub fn signer(&self) -> &Arc<SigningIdentity> {
        &self.signer
    }

    /// Broadcasts one envelope and returns the orderer's answer (SUCCESS once it is in a
    /// block; otherwise Fabric's status and reason).
    pub async fn broadcast(&self, envelope: Envelope) -> Result<BroadcastResponse> {
        let mut client = self.client.clone();
        let exchange = async move {
            let mut answers = client.broadcast(tokio_stream::iter(vec![envelope])).await?.into_inner();
            answers
                .next()
                .await
                .context("the orderer closed the stream without an answer")?
                .map_err(anyhow::Error::from)
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
            .await
            .context("no answer from the orderer in time")?
    }

    /// One block of `channel`: a number, or the newest.
    pub async fn block(&self, channel: &str, position: Seek) -> Result<Block> {
        let envelope = seek_envelope(channel, &self.signer, position, position, false, timestamp());
        let mut client = self.client.clone();
        let exchange = async move {
            let mut answers = client.deliver(tokio_stream::iter(vec![envelope])).await?.into_inner();
            let mut found = None;
            while let Some(answer) = answers.next().await {
                match answer?.r#type {
                    Some(deliver_response::Type::Block(block)) => found = Some(block),
                    Some(deliver_response::Type::Status(status)) => {
                        let status = Status::try_from(status).map_or("UNKNOWN", |s| s.as_str_name());
                        return match found {
                            Some(block) if status == "SUCCESS" => Ok(block),
                            _ => bail!("the orderer answered {status}"),
                        };
                    }
                    None => {}
                }
            }
            found.context("the orderer sent no block")
        };
        tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await.context("no block from the orderer in time")?
    }

    /// The channel's current config block: the newest block names it.
    pub async fn config_block(&self, channel: &str) -> Result<Block> {
        let newest = self.block(channel, Seek::Newest).await?;
        let index = block::last_config_index(&newest).context("the newest block names no config block")?;
        if index == block::header(&newest).number {
            return Ok(newest);
        }
        self.block(channel, Seek::Number(index)).await
    }
}

fn timestamp() -> prost_types::Timestamp {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: 0 }
}
