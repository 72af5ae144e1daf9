//! Deliver requests: the signed `SeekInfo` envelope a client sends to an orderer's or a
//! peer's Deliver service.

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
use medfabric_proto::orderer::{SeekInfo, SeekPosition, seek_info, seek_position};
use prost::Message;
use prost_types::Timestamp;

use crate::txid::{compute_tx_id, new_nonce};

/// Where a seek starts or stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    Oldest,
    Newest,
    Number(u64),
    NextCommit,
}

impl Seek {
    fn position(self) -> SeekPosition {
        let r#type = match self {
            Seek::Oldest => seek_position::Type::Oldest(Default::default()),
            Seek::Newest => seek_position::Type::Newest(Default::default()),
            Seek::Number(number) => {
                seek_position::Type::Specified(medfabric_proto::orderer::SeekSpecified { number })
            }
            Seek::NextCommit => seek_position::Type::NextCommit(Default::default()),
        };
        SeekPosition { r#type: Some(r#type) }
    }
}

/// A signed DELIVER_SEEK_INFO envelope for blocks `start..=stop`; with `wait`, the
/// server waits for blocks not yet there (BLOCK_UNTIL_READY), else it fails.
pub fn seek_envelope(
    channel_id: &str,
    signer: &SigningIdentity,
    start: Seek,
    stop: Seek,
    wait: bool,
    timestamp: Timestamp,
) -> Envelope {
    let behavior =
        if wait { seek_info::SeekBehavior::BlockUntilReady } else { seek_info::SeekBehavior::FailIfNotReady };
    let seek = SeekInfo {
        start: Some(start.position()),
        stop: Some(stop.position()),
        behavior: behavior as i32,
        ..Default::default()
    };
    let nonce = new_nonce();
    let creator = signer.serialized().clone();
    let channel_header = ChannelHeader {
        r#type: HeaderType::DeliverSeekInfo as i32,
        timestamp: Some(timestamp),
        channel_id: channel_id.to_owned(),
        tx_id: compute_tx_id(&nonce, &creator),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec().into(),
            signature_header: SignatureHeader { creator, nonce: nonce.to_vec().into() }
                .encode_to_vec()
                .into(),
        }),
        data: seek.encode_to_vec().into(),
    };
    let payload: Bytes = payload.encode_to_vec().into();
    let signature = signer.sign(&payload).into();
    Envelope { payload, signature }
}
