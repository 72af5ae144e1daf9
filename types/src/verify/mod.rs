//! Offline verification of blocks and ledgers, for auditors: hashes, the hash chain,
//! orderer signatures against the channel's BlockValidation policy, creator and
//! endorsement signatures, and — for transactions the ledger marks VALID — that their
//! signatures, tx ids and endorsement policies really hold.

use bytes::Bytes;
use std::sync::Arc;

use medfabric_msp::{Identity, SignatureCheck, SignedData, check_signature_set, counted_identities};
use medfabric_proto::common::{Block, HeaderType, SignatureHeader};
use serde::Serialize;

mod ledger;

pub use ledger::{LedgerSummary, LedgerVerifier, Problem};

use crate::block::{self, header_hash};
use crate::config::ChannelResources;
use crate::error::{ConvertError, decode};
use crate::transaction::Transaction;
use crate::validation_code_name;

/// Policy the orderer signatures of a block must satisfy.
pub const BLOCK_VALIDATION_POLICY: &str = "/Channel/Orderer/BlockValidation";

#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    pub number: u64,
    pub previous_hash: String,
    pub header_hash: String,
    pub data_hash: String,
    pub data_hash_ok: bool,
    pub tx_count: usize,
    pub last_config_index: Option<u64>,
    /// Orderer signatures in the SIGNATURES metadata slot.
    pub signatures: Vec<SignatureReport>,
    /// Whether the valid orderer signatures satisfy BlockValidation (null without a config).
    pub signatures_ok: Option<bool>,
    pub commit_hash: Option<String>,
    pub txs: Vec<TxReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub msp_id: Option<String>,
    pub signer: Option<String>,
    pub signature_ok: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndorsementReport {
    pub msp_id: Option<String>,
    pub endorser: Option<String>,
    pub signature_ok: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TxReport {
    pub index: usize,
    pub tx_id: String,
    #[serde(rename = "type")]
    pub header_type: String,
    pub channel_id: String,
    pub timestamp: Option<String>,
    pub creator_msp: Option<String>,
    pub creator: Option<String>,
    pub chaincode: Option<String>,
    pub function: Option<String>,
    /// Code from the block's TRANSACTIONS_FILTER (null when the block has none).
    pub validation_code: Option<String>,
    pub tx_id_ok: Option<bool>,
    pub creator_signature_ok: Option<bool>,
    pub proposal_hash_ok: Option<bool>,
    pub endorsements: Vec<EndorsementReport>,
    pub endorsements_ok: Option<bool>,
    /// Set by `ledger verify`, which tracks chaincode definitions and key-level policies.
    pub endorsement_policy_ok: Option<bool>,
    pub error: Option<String>,
}

/// Decodes a block and checks what one block and a config can tell.
pub fn inspect_block(
    bytes: &[u8],
    resources: Option<&ChannelResources>,
) -> Result<(Block, BlockReport), ConvertError> {
    let block = block::decode_block(bytes)?;
    let (report, _) = inspect_decoded(&block, resources);
    Ok((block, report))
}

/// A transaction parsed during inspection, with the endorsers that count for policies.
struct Inspected {
    tx: Transaction,
    endorsers: Vec<Arc<Identity>>,
}

fn inspect_decoded(
    block: &Block,
    resources: Option<&ChannelResources>,
) -> (BlockReport, Vec<Option<Inspected>>) {
    let header = block::header(block);
    let envelopes = block::envelopes(block);
    let computed_data_hash = block::data_hash(envelopes);
    let filter = block::transactions_filter(block);
    let (signatures, signatures_ok) = check_orderer_signatures(block, resources);
    let commit_hash = block::commit_hash(block).map(hex::encode);
    let (txs, parsed) = envelopes
        .iter()
        .enumerate()
        .map(|(index, envelope)| inspect_tx(index, envelope, filter.get(index).copied(), resources))
        .unzip();
    let report = BlockReport {
        number: header.number,
        previous_hash: hex::encode(&header.previous_hash),
        header_hash: hex::encode(header_hash(header)),
        data_hash: hex::encode(&header.data_hash),
        data_hash_ok: computed_data_hash.as_slice() == header.data_hash.as_ref(),
        tx_count: envelopes.len(),
        last_config_index: block::last_config_index(block).ok(),
        signatures,
        signatures_ok,
        commit_hash,
        txs,
    };
    (report, parsed)
}

/// Do a block's orderer signatures satisfy the channel's BlockValidation policy? (What a
/// peer checks before it validates a block from the ordering service.)
pub fn block_signatures_satisfied(block: &Block, resources: &ChannelResources) -> bool {
    check_orderer_signatures(block, Some(resources)).1 == Some(true)
}

fn check_orderer_signatures(
    block: &Block,
    resources: Option<&ChannelResources>,
) -> (Vec<SignatureReport>, Option<bool>) {
    let Ok(metadata) = block::signatures_metadata(block) else {
        return (Vec::new(), resources.map(|_| false));
    };
    let header = block::header(block);
    let signed: Vec<(Vec<u8>, Bytes)> = metadata
        .signatures
        .iter()
        .map(|signature| {
            let creator = decode::<SignatureHeader>("SignatureHeader", &signature.signature_header)
                .map(|h| h.creator)
                .unwrap_or_default();
            (block::signed_block_bytes(&metadata.value, &signature.signature_header, header), creator)
        })
        .collect();
    let Some(resources) = resources else {
        let blank = || SignatureReport { msp_id: None, signer: None, signature_ok: None, error: None };
        return (signed.iter().map(|_| blank()).collect(), None);
    };
    let set: Vec<SignedData<'_>> = signed
        .iter()
        .zip(&metadata.signatures)
        .map(|((data, creator), s)| SignedData { data, identity: creator, signature: &s.signature })
        .collect();
    let checks = check_signature_set(&set, &resources.msps);
    let reports = checks
        .iter()
        .map(|check| {
            let v = Verdict::of(check);
            SignatureReport { msp_id: v.msp_id, signer: v.name, signature_ok: v.ok, error: v.error }
        })
        .collect();
    let ok =
        resources.policies.evaluate(BLOCK_VALIDATION_POLICY, &counted_identities(&checks)).unwrap_or(false);
    (reports, Some(ok))
}

/// The reportable facts of one signature check.
struct Verdict {
    msp_id: Option<String>,
    name: Option<String>,
    /// `None` when the signature was skipped as a repeat of an accepted signer.
    ok: Option<bool>,
    error: Option<String>,
}

impl Verdict {
    fn of(check: &SignatureCheck) -> Self {
        match (&check.identity, &check.signature) {
            (Err(e), _) => Self { msp_id: None, name: None, ok: Some(false), error: Some(e.to_string()) },
            (Ok(identity), signature) => Self {
                msp_id: Some(identity.msp_id().to_owned()),
                name: Some(identity.certificate().common_name().to_owned()),
                ok: signature.as_ref().map(Result::is_ok),
                error: match signature {
                    Some(Err(e)) => Some(e.to_string()),
                    Some(Ok(())) => None,
                    None => Some("repeats a signer already accepted; not checked, as in Fabric".into()),
                },
            },
        }
    }
}

fn inspect_tx(
    index: usize,
    envelope: &[u8],
    code: Option<u8>,
    resources: Option<&ChannelResources>,
) -> (TxReport, Option<Inspected>) {
    let mut report = TxReport {
        index,
        tx_id: String::new(),
        header_type: String::new(),
        channel_id: String::new(),
        timestamp: None,
        creator_msp: None,
        creator: None,
        chaincode: None,
        function: None,
        validation_code: code.map(validation_code_name),
        tx_id_ok: None,
        creator_signature_ok: None,
        proposal_hash_ok: None,
        endorsements: Vec::new(),
        endorsements_ok: None,
        endorsement_policy_ok: None,
        error: None,
    };
    let tx = match Transaction::parse(envelope) {
        Ok(tx) => tx,
        Err(e) => {
            report.error = Some(e.to_string());
            return (report, None);
        }
    };
    report.tx_id = tx.tx_id().to_owned();
    report.header_type = HeaderType::try_from(tx.header_type())
        .map(|t| t.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("UNKNOWN_{}", tx.header_type()));
    report.channel_id = tx.channel_id().to_owned();
    report.timestamp = tx.channel_header.timestamp.as_ref().map(rfc3339);
    let has_creator = !tx.creator().is_empty();
    if has_creator {
        report.tx_id_ok = Some(tx.tx_id_matches());
        if let Ok(sid) =
            decode::<medfabric_proto::msp::SerializedIdentity>("SerializedIdentity", tx.creator())
        {
            report.creator_msp = Some(sid.mspid);
        }
    }
    if let Some(endorser_tx) = tx.endorser() {
        report.chaincode = Some(endorser_tx.header_chaincode_id.name.clone());
        report.function = endorser_tx
            .invocation()
            .ok()
            .and_then(|spec| spec.chaincode_spec)
            .and_then(|spec| spec.input)
            .and_then(|input| input.args.first().map(|f| String::from_utf8_lossy(f).into_owned()));
        report.proposal_hash_ok = tx.proposal_hash_matches();
    }
    let Some(resources) = resources else { return (report, Some(Inspected { tx, endorsers: Vec::new() })) };
    if has_creator {
        match resources.msps.deserialize(tx.creator()) {
            Ok(identity) => {
                report.creator = Some(identity.certificate().common_name().to_owned());
                let verdict = identity.verify(&tx.payload, &tx.signature);
                report.creator_signature_ok = Some(verdict.is_ok());
                if let Err(e) = verdict {
                    report.error = Some(format!("creator signature: {e}"));
                }
            }
            Err(e) => {
                report.creator_signature_ok = Some(false);
                report.error = Some(format!("creator: {e}"));
            }
        }
    }
    // Fabric's policy input: the endorsers whose signature over `prp ‖ endorser` verifies,
    // each identity counted once.
    let mut endorsers = Vec::new();
    if let Some(endorser_tx) = tx.endorser() {
        let checks = endorser_tx.endorsement_checks(&resources.msps);
        report.endorsements = checks
            .iter()
            .map(|check| {
                let v = Verdict::of(check);
                EndorsementReport { msp_id: v.msp_id, endorser: v.name, signature_ok: v.ok, error: v.error }
            })
            .collect();
        let none_bad = report.endorsements.iter().all(|e| e.signature_ok != Some(false));
        report.endorsements_ok = Some(none_bad && !endorser_tx.endorsements.is_empty());
        endorsers = counted_identities(&checks);
    }
    (report, Some(Inspected { tx, endorsers }))
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T01:04:46.000Z` (the epoch for a time
/// outside years 1-9999).
fn rfc3339(ts: &prost_types::Timestamp) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ts.seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ts.nanos.clamp(0, 999_999_999) / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339() {
        let ts = prost_types::Timestamp { seconds: 1_795_482_286, nanos: 0 };
        assert_eq!(rfc3339(&ts), "2026-11-24T01:04:46.000Z");
        assert_eq!(
            rfc3339(&prost_types::Timestamp { seconds: 0, nanos: 5_000_000 }),
            "1970-01-01T00:00:00.005Z"
        );
    }
}
