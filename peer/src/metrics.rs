//! The peer's Prometheus metrics, with Fabric's names where Fabric has one.

use std::time::Duration;

use medfabric_node::ops::{LATENCY_BUCKETS, register};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::channel::CommitEvent;

#[derive(Debug, Clone)]
pub struct PeerMetrics {
    pub registry: Registry,
    pub proposals_received: IntCounter,
    pub successful_proposals: IntCounter,
    pub proposal_duration: Histogram,
    pub blocks_committed: IntCounter,
    pub block_processing_time: Histogram,
    pub blockstorage_commit_time: Histogram,
    pub transaction_count: IntCounterVec,
    pub height: IntGauge,
    pub gateway_requests: IntCounterVec,
    pub gateway_duration: HistogramVec,
    pub deliver_streams_opened: IntCounter,
    pub deliver_blocks_sent: IntCounter,
}

impl Default for PeerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[expect(clippy::expect_used, reason = "metric names and labels are constants")]
impl PeerMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str| register(&registry, IntCounter::new(name, help).expect("metric"));
        let histogram = |name: &str, help: &str| {
            register(
                &registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
                    .expect("metric"),
            )
        };
        Self {
            proposals_received: counter("endorser_proposals_received", "Proposals received"),
            successful_proposals: counter("endorser_successful_proposals", "Proposals endorsed"),
            proposal_duration: histogram("endorser_proposal_duration", "Time to answer a proposal, seconds"),
            blocks_committed: counter("ledger_blocks_committed", "Blocks validated and committed"),
            block_processing_time: histogram(
                "ledger_block_processing_time",
                "Time to validate and commit a block, seconds",
            ),
            blockstorage_commit_time: histogram(
                "ledger_blockstorage_and_pvtdata_commit_time",
                "Time to write a block and its state updates (one synced batch), seconds",
            ),
            transaction_count: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("ledger_transaction_count", "Committed transactions by validation code"),
                    &["validation_code"],
                )
                .expect("metric"),
            ),
            height: register(
                &registry,
                IntGauge::new("ledger_blockchain_height", "Ledger height").expect("metric"),
            ),
            gateway_requests: register(
                &registry,
                IntCounterVec::new(
                    Opts::new("gateway_requests_completed", "Gateway requests by method and gRPC code"),
                    &["method", "code"],
                )
                .expect("metric"),
            ),
            gateway_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gateway_request_duration",
                        "Gateway request duration by method, seconds",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["method"],
                )
                .expect("metric"),
            ),
            deliver_streams_opened: counter("deliver_streams_opened", "Deliver seek requests accepted"),
            deliver_blocks_sent: counter("deliver_blocks_sent", "Blocks sent by Deliver"),
            registry,
        }
    }

    /// Records one answered proposal.
    pub fn proposal(&self, elapsed: Duration, endorsed: bool) {
        self.proposals_received.inc();
        if endorsed {
            self.successful_proposals.inc();
        }
        self.proposal_duration.observe(elapsed.as_secs_f64());
    }

    /// Records a committed block.
    pub fn committed(&self, event: &CommitEvent) {
        self.blocks_committed.inc();
        self.height.set(i64::try_from(event.number + 1).unwrap_or(i64::MAX));
        self.block_processing_time.observe((event.validate_time + event.write_time).as_secs_f64());
        self.blockstorage_commit_time.observe(event.write_time.as_secs_f64());
        for tx in &event.txs {
            self.transaction_count.with_label_values(&[tx.code.as_str_name()]).inc();
        }
    }

    /// Records a finished gateway request.
    pub fn gateway(&self, method: &str, elapsed: Duration, code: tonic::Code) {
        self.gateway_requests.with_label_values(&[method, &format!("{code:?}")]).inc();
        self.gateway_duration.with_label_values(&[method]).observe(elapsed.as_secs_f64());
    }
}
