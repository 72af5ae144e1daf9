//! The Deliver seek loop shared by the orderer's and the peer's Deliver services (and
//! the gateway's ChaincodeEvents): request checks, `SeekInfo` → block range, and the
//! loop that streams stored blocks, waiting for new ones.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use medfabric_msp::Identity;
use medfabric_proto::common::{Block, Envelope, HeaderType, Status};
use medfabric_proto::orderer::{SeekInfo, SeekPosition, seek_info, seek_position};
use medfabric_types::config::ChannelResources;
use medfabric_types::{Transaction, TransactionBody};
use prost::Message;
use tokio::sync::{mpsc, watch};

/// A refused request: the `common.Status` the client gets and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: Status,
    pub info: String,
}

impl Refusal {
    pub fn new(status: Status, info: impl Into<String>) -> Self {
        Self { status, info: info.into() }
    }
}

/// The clock, read once per request at the service edge; the checks take it as `now`.
pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Why a creator is refused: not a valid (unexpired) identity of the channel, or — in
/// Fabric's words — the policy is not satisfied (a bad signature counts as no signer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Creator(String),
    Policy(String),
}

/// The creator is valid (and not expired at `now`, unix seconds) in the channel's MSPs,
/// signed `payload`, and satisfies `policy`.
pub fn check_creator(
    resources: &ChannelResources,
    creator: &[u8],
    payload: &[u8],
    signature: &[u8],
    policy: &str,
    now: i64,
) -> Result<Arc<Identity>, Denial> {
    let creator = resources.msps.deserialize_at(creator, now).map_err(|e| Denial::Creator(e.to_string()))?;
    let signed = creator.verify(payload, signature).is_ok();
    let identities = if signed { vec![creator.clone()] } else { Vec::new() };
    if !signed || !resources.policies.evaluate(policy, &identities).unwrap_or(false) {
        return Err(Denial::Policy(resources.policies.failure_message(policy, &identities)));
    }
    Ok(creator)
}

/// [`check_creator`] as a Deliver or Broadcast answer: FORBIDDEN, with Fabric's message.
pub fn authorize(
    resources: &ChannelResources,
    creator: &[u8],
    payload: &[u8],
    signature: &[u8],
    policy: &str,
    now: i64,
) -> Result<Arc<Identity>, Refusal> {
    check_creator(resources, creator, payload, signature, policy, now).map_err(|denial| match denial {
        Denial::Creator(why) => Refusal::new(Status::Forbidden, format!("creator: {why}")),
        Denial::Policy(why) => Refusal::new(Status::Forbidden, format!("{why}: permission denied")),
    })
}

/// How far a request's timestamp may be from the server's clock (Fabric's 15 minutes).
pub const TIME_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A checked seek request: its creator and what it asks for.
#[derive(Debug)]
pub struct SeekRequest {
    pub creator: Arc<Identity>,
    pub seek: SeekInfo,
    pub tx: Transaction,
}

/// Checks a Deliver request envelope for `channel_id`: a DELIVER_SEEK_INFO payload with
/// a timestamp near `now` (unix seconds), signed by a creator satisfying `policy`. Nonce
/// and tx id may be empty (Fabric's gateway client sends neither).
pub fn check_seek_request(
    envelope: &Envelope,
    resources: &ChannelResources,
    policy: &str,
    now: i64,
) -> Result<SeekRequest, Refusal> {
    let tx = Transaction::from_envelope(envelope.clone())
        .map_err(|e| Refusal::new(Status::BadRequest, format!("bad envelope: {}", e.error)))?;
    if tx.channel_id() != resources.config.channel_id {
        return Err(Refusal::new(Status::NotFound, format!("channel {} not found", tx.channel_id())));
    }
    if tx.header_type() != HeaderType::DeliverSeekInfo as i32 {
        return Err(Refusal::new(Status::BadRequest, "not a DELIVER_SEEK_INFO envelope"));
    }
    let seconds = tx.channel_header.timestamp.as_ref().map_or(0, |t| t.seconds);
    if seconds.abs_diff(now) > TIME_WINDOW.as_secs() {
        return Err(Refusal::new(
            Status::BadRequest,
            format!("envelope timestamp {seconds} is more than 15m0s apart from the server's time"),
        ));
    }
    let creator = authorize(resources, tx.creator(), &tx.payload, &tx.signature, policy, now)?;
    let TransactionBody::Other(data) = &tx.body else {
        return Err(Refusal::new(Status::BadRequest, "no SeekInfo"));
    };
    let seek = SeekInfo::decode(data.as_ref())
        .map_err(|e| Refusal::new(Status::BadRequest, format!("SeekInfo: {e}")))?;
    Ok(SeekRequest { creator, seek, tx })
}

/// Blocks `start..=stop`; `wait`: block until they are committed (else NOT_FOUND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekRange {
    pub start: u64,
    pub stop: u64,
    pub wait: bool,
}

/// A seek position as a block number, at `height`.
pub fn position(position: Option<&SeekPosition>, height: u64) -> Option<u64> {
    Some(match position?.r#type.as_ref()? {
        seek_position::Type::Oldest(_) => 0,
        seek_position::Type::Newest(_) => height.saturating_sub(1),
        seek_position::Type::Specified(s) => s.number,
        seek_position::Type::NextCommit(_) => height,
    })
}

/// The block range of a `SeekInfo` at ledger height `height`.
pub fn seek_range(seek: &SeekInfo, height: u64) -> Result<SeekRange, Refusal> {
    let (Some(start), Some(stop)) =
        (position(seek.start.as_ref(), height), position(seek.stop.as_ref(), height))
    else {
        return Err(Refusal::new(Status::BadRequest, "SeekInfo needs a start and a stop position"));
    };
    if start > stop {
        return Err(Refusal::new(Status::BadRequest, format!("start {start} is after stop {stop}")));
    }
    let wait = seek.behavior != seek_info::SeekBehavior::FailIfNotReady as i32;
    Ok(SeekRange { start, stop, wait })
}

/// Sends `wrap(block)` for each block of `range` that `wrap` keeps, reading blocks with
/// `fetch` and waiting on `heights` for blocks not committed yet. Returns when the range
/// is done or the client has gone; a refusal ends the stream with its status.
pub async fn stream_blocks<T>(
    range: SeekRange,
    mut heights: watch::Receiver<u64>,
    fetch: impl Fn(u64) -> Result<Option<Block>, String>,
    out: &mpsc::Sender<Result<T, tonic::Status>>,
    mut wrap: impl FnMut(Block) -> Option<T>,
) -> Result<(), Refusal> {
    for number in range.start..=range.stop {
        loop {
            if number < *heights.borrow_and_update() {
                break;
            }
            if !range.wait {
                return Err(Refusal::new(Status::NotFound, format!("block {number} is not there yet")));
            }
            tokio::select! {
                changed = heights.changed() => {
                    if changed.is_err() {
                        return Err(Refusal::new(Status::ServiceUnavailable, "the node is stopping"));
                    }
                }
                // The client went away: stop waiting for it.
                _ = out.closed() => return Ok(()),
            }
        }
        let block = fetch(number)
            .map_err(|e| Refusal::new(Status::InternalServerError, e))?
            .ok_or_else(|| Refusal::new(Status::NotFound, format!("block {number} missing")))?;
        if let Some(message) = wrap(block)
            && out.send(Ok(message)).await.is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}
