//! Where a peer's blocks come from. The committer asks a [`BlockSource`] for the next
//! block number; the ordering service's Deliver client is one source, a directory of
//! block files (an export, or Fabric's blocks for re-validation) another.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use medfabric_proto::common::Block;
use medfabric_types::block::decode_block;

pub trait BlockSource: Send {
    /// Block `number`, waiting until it is available; `None` when the source ends.
    fn next_block(&mut self, number: u64) -> impl Future<Output = Result<Option<Block>, String>> + Send;
}

/// Block files named `NNNNNN.block` (the number, zero-padded to six digits or more) in a
/// directory. With `follow`, it waits for files that are not there yet.
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
    follow: bool,
    poll: Duration,
}

impl DirSource {
    pub fn new(dir: &Path, follow: bool) -> Self {
        Self { dir: dir.to_owned(), follow, poll: Duration::from_millis(200) }
    }

    /// The file that holds block `number`.
    pub fn path_of(dir: &Path, number: u64) -> PathBuf {
        dir.join(format!("{number:06}.block"))
    }

    /// Block numbers present in `dir`, in order.
    pub fn numbers(dir: &Path) -> std::io::Result<Vec<u64>> {
        let mut numbers: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".block")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }
}

impl BlockSource for DirSource {
    async fn next_block(&mut self, number: u64) -> Result<Option<Block>, String> {
        let path = Self::path_of(&self.dir, number);
        loop {
            match std::fs::read(&path) {
                Ok(bytes) => {
                    return decode_block(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if !self.follow {
                        return Ok(None);
                    }
                    tokio::time::sleep(self.poll).await;
                }
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
    }
}
