//! Re-validation of a chain of blocks through our validator and committer, for auditors:
//! `medfabric ledger replay`. The codes we compute are compared with the ones the
//! blocks carry (Fabric's TRANSACTIONS_FILTER, when a peer wrote it).

use std::path::Path;

use medfabric_proto::common::Block;
use medfabric_types::block::{self, decode_block};
use medfabric_types::validation_code_name;
use serde::Serialize;

use crate::channel::{Channel, CommitError};
use crate::ledger::Store;
use crate::source::DirSource;

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub block: u64,
    pub tx: usize,
    pub tx_id: String,
    pub ours: String,
    pub recorded: String,
    /// Why our validator gave its code.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlockReplay {
    pub number: u64,
    /// Our validation codes, by name.
    pub codes: Vec<String>,
    /// The codes recorded in the block (empty when it has no TRANSACTIONS_FILTER).
    pub recorded: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub channel_id: String,
    pub blocks: Vec<BlockReplay>,
    pub mismatches: Vec<Mismatch>,
    pub height: u64,
    /// SHA-256 over the final world state (see `ChannelLedger::state_hash`).
    pub state_hash: String,
    /// Set when a block could not be committed (the replay stops there).
    pub error: Option<String>,
    pub ok: bool,
}

/// Replays the block files of `dir` (`NNNNNN.block`) from `config_block` into a fresh
/// ledger under `ledger_dir`.
pub fn replay(
    dir: &Path,
    config_block: &Block,
    ledger_dir: &Path,
) -> anyhow::Result<(ReplayReport, Channel)> {
    let store = Store::open(ledger_dir)?;
    let channel = Channel::open(&store, config_block)?;
    let mut report = ReplayReport {
        channel_id: channel.channel_id().to_owned(),
        blocks: Vec::new(),
        mismatches: Vec::new(),
        height: 0,
        state_hash: String::new(),
        error: None,
        ok: false,
    };
    for number in DirSource::numbers(dir)? {
        let bytes = std::fs::read(DirSource::path_of(dir, number))?;
        let block = decode_block(&bytes)?;
        if number == 0 {
            // The config block the ledger started from.
            if block::header(&block) != block::header(config_block) {
                report.error = Some("block 0 differs from the config block given".into());
                break;
            }
            continue;
        }
        match replay_block(&channel, &block, &mut report) {
            Ok(()) => {}
            Err(e) => {
                report.error = Some(format!("block {number}: {e}"));
                break;
            }
        }
    }
    report.height = channel.height()?;
    report.state_hash = hex::encode(channel.ledger().state_hash()?);
    report.ok = report.error.is_none() && report.mismatches.is_empty() && !report.blocks.is_empty();
    Ok((report, channel))
}

fn replay_block(channel: &Channel, block: &Block, report: &mut ReplayReport) -> Result<(), CommitError> {
    let recorded = block::transactions_filter(block).to_vec();
    let event = channel.commit(block)?;
    let number = event.number;
    for (index, tx) in event.txs.iter().enumerate() {
        if let Some(&fabric) = recorded.get(index)
            && fabric != tx.code as u8
        {
            report.mismatches.push(Mismatch {
                block: number,
                tx: index,
                tx_id: tx.tx_id.clone(),
                ours: validation_code_name(tx.code as u8),
                recorded: validation_code_name(fabric),
                reason: tx.reason.clone(),
            });
        }
    }
    report.blocks.push(BlockReplay {
        number,
        codes: event.txs.iter().map(|t| validation_code_name(t.code as u8)).collect(),
        recorded: recorded.iter().map(|c| validation_code_name(*c)).collect(),
    });
    Ok(())
}
