//! The block cutter, sans-IO: Fabric's batching rules with time passed in.
//!
//! - A config transaction is cut into a block of its own (pending messages first).
//! - A message larger than `preferred_max_bytes` goes alone into a block.
//! - A message that would push the pending batch over `preferred_max_bytes` cuts the
//!   pending batch first.
//! - A batch is cut when it holds `max_message_count` messages.
//! - A non-empty batch is cut `batch_timeout` after its first message arrived.

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_message_count: u32,
    pub preferred_max_bytes: u32,
    pub absolute_max_bytes: u32,
    pub batch_timeout_ms: u64,
}

/// A message waiting to be ordered, with an opaque ticket the caller uses to answer
/// its sender once the batch is ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending<T> {
    pub envelope: Bytes,
    pub ticket: T,
}

#[derive(Debug)]
pub struct BlockCutter<T> {
    limits: BatchLimits,
    pending: Vec<Pending<T>>,
    pending_bytes: usize,
    /// When the first pending message arrived (ms, caller's clock).
    started_ms: Option<u64>,
}

impl<T> BlockCutter<T> {
    pub fn new(limits: BatchLimits) -> Self {
        Self { limits, pending: Vec::new(), pending_bytes: 0, started_ms: None }
    }

    pub fn limits(&self) -> BatchLimits {
        self.limits
    }

    /// New limits (after a config change) apply to messages from now on.
    pub fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn take(&mut self) -> Vec<Pending<T>> {
        self.pending_bytes = 0;
        self.started_ms = None;
        std::mem::take(&mut self.pending)
    }

    /// Adds a message; returns the batches it completes, oldest first.
    pub fn ordered(&mut self, message: Pending<T>, is_config: bool, now_ms: u64) -> Vec<Vec<Pending<T>>> {
        let mut batches = Vec::new();
        let size = message.envelope.len();
        if is_config || size > self.limits.preferred_max_bytes as usize {
            if !self.pending.is_empty() {
                batches.push(self.take());
            }
            batches.push(vec![message]);
            return batches;
        }
        if self.pending_bytes + size > self.limits.preferred_max_bytes as usize && !self.pending.is_empty() {
            batches.push(self.take());
        }
        if self.pending.is_empty() {
            self.started_ms = Some(now_ms);
        }
        self.pending_bytes += size;
        self.pending.push(message);
        if self.pending.len() >= self.limits.max_message_count.max(1) as usize {
            batches.push(self.take());
        }
        batches
    }

    /// The pending batch, if its timeout has passed at `now_ms`.
    pub fn tick(&mut self, now_ms: u64) -> Option<Vec<Pending<T>>> {
        let started = self.started_ms?;
        (now_ms >= started.saturating_add(self.limits.batch_timeout_ms)).then(|| self.take())
    }

    /// Everything pending (when leadership is lost, its senders must be told).
    pub fn drain(&mut self) -> Vec<Pending<T>> {
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BatchLimits {
        BatchLimits {
            max_message_count: 3,
            preferred_max_bytes: 100,
            absolute_max_bytes: 1000,
            batch_timeout_ms: 50,
        }
    }

    fn msg(size: usize, ticket: u32) -> Pending<u32> {
        Pending { envelope: Bytes::from(vec![0u8; size]), ticket }
    }

    fn tickets(batches: &[Vec<Pending<u32>>]) -> Vec<Vec<u32>> {
        batches.iter().map(|b| b.iter().map(|p| p.ticket).collect()).collect()
    }

    #[test]
    fn cuts_at_the_message_count() {
        let mut cutter = BlockCutter::new(limits());
        assert!(cutter.ordered(msg(10, 1), false, 0).is_empty());
        assert!(cutter.ordered(msg(10, 2), false, 1).is_empty());
        assert_eq!(tickets(&cutter.ordered(msg(10, 3), false, 2)), [vec![1, 2, 3]]);
        assert_eq!(cutter.pending_len(), 0);
    }

    #[test]
    fn cuts_before_exceeding_preferred_bytes_and_isolates_large_messages() {
        let mut cutter = BlockCutter::new(limits());
        assert!(cutter.ordered(msg(60, 1), false, 0).is_empty());
        assert_eq!(tickets(&cutter.ordered(msg(60, 2), false, 0)), [vec![1]]);
        assert_eq!(tickets(&cutter.ordered(msg(150, 3), false, 0)), [vec![2], vec![3]]);
        assert_eq!(cutter.pending_len(), 0);
    }

    #[test]
    fn config_goes_alone_and_the_timeout_cuts() {
        let mut cutter = BlockCutter::new(limits());
        assert!(cutter.ordered(msg(10, 1), false, 100).is_empty());
        assert_eq!(tickets(&cutter.ordered(msg(10, 2), true, 101)), [vec![1], vec![2]]);
        assert!(cutter.ordered(msg(10, 3), false, 200).is_empty());
        assert!(cutter.tick(249).is_none());
        assert_eq!(cutter.tick(250).map(|b| b.len()), Some(1));
        assert!(cutter.tick(1000).is_none(), "nothing pending");
    }
}
