//! Block intake from the ordering service: the peer asks an orderer's Deliver for every
//! block from its ledger height on, and moves to the next orderer when a stream fails,
//! ends or stalls.

use std::sync::Arc;
use std::time::Duration;

use medfabric_config::tls::{ClientTls, lazy_channel};
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Block, Status};
use medfabric_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use medfabric_proto::orderer::{DeliverResponse, deliver_response};
use medfabric_types::block;
use medfabric_types::deliver::{Seek, seek_envelope};

use crate::source::BlockSource;

/// How long an orderer may stay silent before the peer suspects the stream (an idle
/// channel sends nothing, so this is long; a broken connection is noticed by keepalive).
const STALL: Duration = Duration::from_secs(300);
/// Pause between attempts once every orderer has failed in a row.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Blocks from the ordering service's Deliver, failing over between orderers.
pub struct OrdererSource {
    channel_id: String,
    endpoints: Vec<String>,
    tls: Option<ClientTls>,
    signer: Arc<SigningIdentity>,
    /// The endpoint in use (index into `endpoints`).
    current: usize,
    failures: u32,
    stream: Option<(u64, tonic::Streaming<DeliverResponse>)>,
    max_message_bytes: usize,
}

impl std::fmt::Debug for OrdererSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrdererSource")
            .field("endpoints", &self.endpoints)
            .field("current", &self.current)
            .finish()
    }
}

impl OrdererSource {
    pub fn new(
        channel_id: &str,
        endpoints: Vec<String>,
        tls: Option<ClientTls>,
        signer: Arc<SigningIdentity>,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            channel_id: channel_id.to_owned(),
            endpoints,
            tls,
            signer,
            current: 0,
            failures: 0,
            stream: None,
            max_message_bytes,
        }
    }

    /// Opens a Deliver stream at the current endpoint for blocks from `number` on.
    async fn open(&mut self, number: u64) -> Result<tonic::Streaming<DeliverResponse>, String> {
        let address = &self.endpoints[self.current];
        let channel = lazy_channel(address, self.tls.as_ref()).map_err(|e| e.to_string())?;
        let mut client = AtomicBroadcastClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes);
        let now = std::time::SystemTime::now();
        let envelope = seek_envelope(
            &self.channel_id,
            &self.signer,
            Seek::Number(number),
            Seek::Number(u64::MAX),
            true,
            prost_types::Timestamp::from(now),
        );
        let request = tokio_stream::iter(vec![envelope]).chain(tokio_stream::pending());
        client.deliver(request).await.map(tonic::Response::into_inner).map_err(|s| s.message().to_owned())
    }

    /// The next message on the open stream, or why the stream is over.
    async fn receive(&mut self, number: u64) -> Result<Block, String> {
        let stream = match &mut self.stream {
            Some((at, stream)) if *at == number => stream,
            _ => {
                let stream = self.open(number).await?;
                &mut self.stream.insert((number, stream)).1
            }
        };
        let message = tokio::time::timeout(STALL, stream.message())
            .await
            .map_err(|_| format!("no block for {}s", STALL.as_secs()))?
            .map_err(|s| s.message().to_owned())?
            .ok_or("the orderer closed the stream")?;
        match message.r#type {
            Some(deliver_response::Type::Block(block)) => {
                let got = block::header(&block).number;
                if got != number {
                    return Err(format!("asked for block {number}, got {got}"));
                }
                if let Some((at, _)) = &mut self.stream {
                    *at = number + 1;
                }
                Ok(block)
            }
            Some(deliver_response::Type::Status(status)) => Err(format!(
                "the orderer ended the stream: {}",
                Status::try_from(status).map_or("UNKNOWN", |s| s.as_str_name())
            )),
            None => Err("empty Deliver response".into()),
        }
    }
}

use tokio_stream::StreamExt;

impl BlockSource for OrdererSource {
    async fn next_block(&mut self, number: u64) -> Result<Option<Block>, String> {
        if self.endpoints.is_empty() {
            return Err("no orderer endpoints configured".into());
        }
        loop {
            match self.receive(number).await {
                Ok(block) => {
                    self.failures = 0;
                    return Ok(Some(block));
                }
                Err(why) => {
                    tracing::warn!(orderer = %self.endpoints[self.current], block = number, "deliver: {why}");
                    self.stream = None;
                    self.current = (self.current + 1) % self.endpoints.len();
                    self.failures += 1;
                    if self.failures as usize >= self.endpoints.len() {
                        let rounds = self.failures / self.endpoints.len() as u32;
                        let pause = Duration::from_millis(200 * u64::from(rounds.min(25))).min(BACKOFF_MAX);
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
    }
}
