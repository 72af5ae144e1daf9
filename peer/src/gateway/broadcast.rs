//! The gateway's Broadcast to the ordering service over persistent streams, failing over
//! between orderers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use medfabric_config::tls::{ClientTls, lazy_channel};
use medfabric_proto::common::{Envelope, Status};
use medfabric_proto::gateway::{ErrorDetail, SubmitResponse};
use medfabric_proto::orderer::BroadcastResponse;
use medfabric_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::GatewayError;

type Reply = oneshot::Sender<Result<BroadcastResponse, String>>;

/// One persistent Broadcast stream: envelopes go out in order and answers come back in
/// the same order.
struct BroadcastLink {
    requests: mpsc::Sender<(Envelope, Reply)>,
}

/// Envelopes in flight on one stream.
const LINK_WINDOW: usize = 1024;

impl BroadcastLink {
    fn open(client: AtomicBroadcastClient<tonic::transport::Channel>) -> Self {
        let (requests, mut incoming) = mpsc::channel::<(Envelope, Reply)>(LINK_WINDOW);
        tokio::spawn(async move {
            let mut client = client;
            let (out, out_rx) = mpsc::channel::<Envelope>(LINK_WINDOW);
            let mut pending: VecDeque<Reply> = VecDeque::new();
            // The first envelope opens the stream (an idle gateway holds no stream).
            let Some((first, reply)) = incoming.recv().await else { return };
            pending.push_back(reply);
            let _ = out.send(first).await;
            let mut answers = match client.broadcast(ReceiverStream::new(out_rx)).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    for reply in pending {
                        let _ = reply.send(Err(status.message().to_owned()));
                    }
                    return;
                }
            };
            loop {
                tokio::select! {
                    next = incoming.recv() => {
                        let Some((envelope, reply)) = next else { break };
                        pending.push_back(reply);
                        if out.send(envelope).await.is_err() {
                            break;
                        }
                    }
                    answer = answers.message() => {
                        match answer {
                            Ok(Some(answer)) => {
                                if let Some(reply) = pending.pop_front() {
                                    let _ = reply.send(Ok(answer));
                                }
                            }
                            Ok(None) => break,
                            Err(status) => {
                                for reply in pending.drain(..) {
                                    let _ = reply.send(Err(status.message().to_owned()));
                                }
                                break;
                            }
                        }
                    }
                }
            }
            for reply in pending {
                let _ = reply.send(Err("the Broadcast stream ended".into()));
            }
        });
        Self { requests }
    }
}

/// The gateway's link to the ordering service: one persistent Broadcast stream per
/// orderer, used in turn from the last one that worked.
pub(super) struct Broadcaster {
    endpoints: Vec<String>,
    tls: Option<ClientTls>,
    max_message_bytes: usize,
    links: Mutex<Vec<Option<BroadcastLink>>>,
    preferred: std::sync::atomic::AtomicUsize,
}

/// Pause between passes over the orderers while none can take the envelope (a leader
/// election, a restarting node).
const PASS_PAUSE: Duration = Duration::from_millis(250);

impl Broadcaster {
    pub(super) fn new(endpoints: Vec<String>, tls: Option<ClientTls>, max_message_bytes: usize) -> Self {
        let links = Mutex::new(endpoints.iter().map(|_| None).collect());
        Self { endpoints, tls, max_message_bytes, links, preferred: Default::default() }
    }

    fn send(
        &self,
        index: usize,
        envelope: Envelope,
    ) -> Result<oneshot::Receiver<Result<BroadcastResponse, String>>, String> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let open = links[index].as_ref().is_some_and(|l| !l.requests.is_closed());
        if !open {
            let channel =
                lazy_channel(&self.endpoints[index], self.tls.as_ref()).map_err(|e| e.to_string())?;
            let client = AtomicBroadcastClient::new(channel)
                .max_decoding_message_size(self.max_message_bytes)
                .max_encoding_message_size(self.max_message_bytes);
            links[index] = Some(BroadcastLink::open(client));
        }
        let (reply, answer) = oneshot::channel();
        let link = links[index].as_ref().ok_or("no link")?;
        link.requests
            .try_send((envelope, reply))
            .map_err(|e| format!("the Broadcast stream is busy: {e}"))?;
        Ok(answer)
    }

    /// Sends the envelope to orderers in turn until one accepts it (SUCCESS) or refuses
    /// it for good; unreachable orderers and SERVICE_UNAVAILABLE answers move on to the
    /// next one, until `timeout`.
    pub(super) async fn broadcast(
        &self,
        envelope: Envelope,
        timeout: Duration,
    ) -> Result<SubmitResponse, GatewayError> {
        use std::sync::atomic::Ordering;
        if self.endpoints.is_empty() {
            return Err(GatewayError::NoOrdererEndpoints);
        }
        let deadline = Instant::now() + timeout;
        let mut failures: BTreeMap<String, String> = BTreeMap::new();
        let first = self.preferred.load(Ordering::Relaxed);
        for attempt in 0.. {
            let index = (first + attempt) % self.endpoints.len();
            if attempt > 0 && index == first {
                if Instant::now() + PASS_PAUSE >= deadline {
                    break;
                }
                tokio::time::sleep(PASS_PAUSE).await;
            }
            let address = &self.endpoints[index];
            let outcome = match self.send(index, envelope.clone()) {
                Ok(answer) => match tokio::time::timeout_at(deadline.into(), answer).await {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(_)) => Err("the Broadcast stream ended".into()),
                    Err(_) => Err("timed out waiting for the orderer".into()),
                },
                Err(e) => Err(e),
            };
            match outcome {
                Ok(answer) if answer.status == Status::Success as i32 => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(SubmitResponse {});
                }
                Ok(answer) if answer.status == Status::ServiceUnavailable as i32 => {
                    failures
                        .insert(address.clone(), format!("status=SERVICE_UNAVAILABLE, info={}", answer.info));
                }
                Ok(answer) => {
                    let status = Status::try_from(answer.status).map_or("UNKNOWN", |s| s.as_str_name());
                    return Err(GatewayError::OrdererRefused {
                        status: status.to_owned(),
                        info: answer.info,
                    });
                }
                Err(why) => {
                    failures.insert(address.clone(), why);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let details: Vec<ErrorDetail> = failures
            .into_iter()
            .map(|(address, message)| ErrorDetail { address, msp_id: String::new(), message })
            .collect();
        Err(GatewayError::OrderersUnavailable(details))
    }
}
