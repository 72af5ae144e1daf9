//! Offline ledger tools for auditors: `block inspect` and `ledger verify` over block
//! files (raw `common.Block` bytes, as Fabric's peer CLI fetches them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use medfabric_types::ChannelResources;
use medfabric_types::block::{self, decode_block};
use medfabric_types::verify::{BlockReport, LedgerSummary, LedgerVerifier, inspect_block};

/// Decodes and checks one block file; with a config block, signatures are verified
/// against that channel's MSPs and policies.
pub fn inspect(file: &Path, config_block: Option<&Path>) -> Result<BlockReport> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let resources = config_block.map(load_resources).transpose()?;
    let (_, report) = inspect_block(&bytes, resources.as_ref())
        .with_context(|| format!("{} is not a block", file.display()))?;
    Ok(report)
}

fn load_resources(path: &Path) -> Result<ChannelResources> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let block = decode_block(&bytes).with_context(|| format!("{} is not a block", path.display()))?;
    ChannelResources::from_config_block(&block)
        .with_context(|| format!("{} is not a config block", path.display()))
}

/// Verifies every `*.block` file of `dir`, in block-number order, starting from the
/// channel config in `config_block`.
pub fn verify(dir: &Path, config_block: &Path) -> Result<LedgerSummary> {
    let config_bytes =
        std::fs::read(config_block).with_context(|| format!("reading {}", config_block.display()))?;
    let config =
        decode_block(&config_bytes).with_context(|| format!("{} is not a block", config_block.display()))?;
    let mut verifier = LedgerVerifier::new(&config)
        .with_context(|| format!("{} is not a config block", config_block.display()))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "block"));
    if files.is_empty() {
        bail!("no *.block files in {}", dir.display());
    }
    // Order by the number in each block's header; files that do not decode go last and
    // are reported as problems.
    let mut numbered = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let decoded = decode_block(&bytes).ok();
        let number = decoded.as_ref().map_or(u64::MAX, |b| block::header(b).number);
        numbered.push((number, path, decoded));
    }
    numbered.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, path, decoded) in &numbered {
        if let Some(block) = decoded {
            verifier.verify_block(block);
        } else {
            verifier.unreadable(&path.display().to_string(), "does not decode as a block");
        }
    }
    Ok(verifier.finish())
}

/// Replays the block files of `dir` through our validator and committer, into a
/// temporary ledger that is removed afterwards.
pub fn replay(dir: &Path, config_block: &Path) -> Result<medfabric_peer::replay::ReplayReport> {
    let config_bytes =
        std::fs::read(config_block).with_context(|| format!("reading {}", config_block.display()))?;
    let config =
        decode_block(&config_bytes).with_context(|| format!("{} is not a block", config_block.display()))?;
    let ledger = tempfile::tempdir().context("creating a temporary ledger directory")?;
    let (report, _channel) = medfabric_peer::replay::replay(dir, &config, ledger.path())?;
    Ok(report)
}

/// A peer ledger at a glance: height, last block hash and the world-state hash.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct LedgerState {
    pub channel: String,
    pub height: u64,
    pub state_hash: String,
}

/// Reads a peer's ledger (its `data_dir/ledger`, read-only: the peer may be running).
pub fn state(ledger_dir: &Path, channel: &str) -> Result<LedgerState> {
    let store = medfabric_peer::Store::open_read_only(ledger_dir)
        .with_context(|| format!("opening {}", ledger_dir.display()))?;
    let ledger = store.channel(channel)?;
    Ok(LedgerState {
        channel: channel.to_owned(),
        height: ledger.height()?,
        state_hash: hex::encode(ledger.state_hash()?),
    })
}

/// Writes a peer's blocks (with the validation codes it recorded) as `NNNNNN.block`
/// files into `out`, for `ledger verify` and offline audit. Returns the block count.
pub fn export(ledger_dir: &Path, channel: &str, out: &Path) -> Result<u64> {
    use prost::Message;
    let store = medfabric_peer::Store::open_read_only(ledger_dir)
        .with_context(|| format!("opening {}", ledger_dir.display()))?;
    let ledger = store.channel(channel)?;
    std::fs::create_dir_all(out)?;
    let height = ledger.height()?;
    for number in 0..height {
        let block = ledger.block(number)?.with_context(|| format!("block {number} missing"))?;
        std::fs::write(out.join(format!("{number:06}.block")), block.encode_to_vec())?;
    }
    Ok(height)
}
