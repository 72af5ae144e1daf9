//! `medfabric bench`: a Caliper-like load run against a running network — N
//! transactions at concurrency C through the gateway (endorse → sign → submit → commit
//! status), with templated arguments; committed tps, latency percentiles, validation
//! codes and the CPU time each node process used.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use medfabric_network::up::NetworkStatus;
use medfabric_sdk::{ClientError, Contract, code_name};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub chaincode: String,
    pub function: String,
    /// Arguments; `{i}` becomes the transaction's index, `{w}` the worker's, `{run}` a
    /// per-run random tag (so reruns do not collide).
    pub args: Vec<String>,
    /// Transient data: key → value template (same placeholders as `args`).
    pub transient: Vec<(String, String)>,
    pub transactions: usize,
    pub concurrency: usize,
    pub user: String,
    pub peer: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeCpu {
    pub name: String,
    pub cpu_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub chaincode: String,
    pub function: String,
    pub transactions: usize,
    pub concurrency: usize,
    pub seconds: f64,
    /// Valid transactions per second of wall time.
    pub committed_tps: f64,
    /// Transactions (valid or not) that reached a block, per second.
    pub ordered_tps: f64,
    pub latency: Latency,
    pub valid: usize,
    /// Invalid transactions by validation code name.
    pub invalid: BTreeMap<String, usize>,
    /// Transactions that never reached a block (endorsement or submit errors).
    pub failed: usize,
    pub first_errors: Vec<String>,
    pub node_cpu: Vec<NodeCpu>,
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().map_or(100.0, |t| t as f64)
}

/// User plus system CPU seconds a process has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state(0) ... utime(11) stime(12).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn expand(template: &str, index: usize, worker: usize, run: &str) -> String {
    template.replace("{i}", &index.to_string()).replace("{w}", &worker.to_string()).replace("{run}", run)
}

enum Outcome {
    Committed { code: i32, latency: Duration },
    Failed(String),
}

async fn one(contract: &Contract, args: &[String], transient: &[(String, String)]) -> Outcome {
    let started = Instant::now();
    let (function, rest) = args.split_first().map_or(("", &[][..]), |(f, r)| (f.as_str(), r));
    let outcome = async {
        let draft = transient.iter().fold(contract.proposal_builder(function, rest), |d, (k, v)| {
            d.transient(k, v.clone().into_bytes())
        });
        let transaction = draft.signed(contract.network().gateway().signer()).endorse().await?;
        let status = transaction.submit().await?.status().await?;
        Ok::<_, ClientError>(status)
    }
    .await;
    match outcome {
        Ok(status) => Outcome::Committed { code: status.code, latency: started.elapsed() },
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// The shared position in the run and the count of finished transactions.
struct Counters {
    next: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

/// One worker: takes the next transaction index until the run's are used up, and submits
/// the spec's call with its placeholders expanded.
async fn work(
    contract: Contract,
    spec: LoadSpec,
    worker: usize,
    run_tag: String,
    counters: Counters,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    loop {
        let index = counters.next.fetch_add(1, Ordering::Relaxed);
        if index >= spec.transactions {
            break;
        }
        let args: Vec<String> = std::iter::once(spec.function.clone())
            .chain(spec.args.iter().map(|a| expand(a, index, worker, &run_tag)))
            .collect();
        let transient: Vec<(String, String)> =
            spec.transient.iter().map(|(k, v)| (k.clone(), expand(v, index, worker, &run_tag))).collect();
        outcomes.push(one(&contract, &args, &transient).await);
        counters.done.fetch_add(1, Ordering::Relaxed);
    }
    outcomes
}

/// A progress bar on stderr until `total` transactions are done.
async fn progress_bar(done: Arc<AtomicUsize>, total: usize, started: Instant) {
    loop {
        let n = done.load(Ordering::Relaxed);
        let width = 40;
        let filled = (n * width).checked_div(total).unwrap_or(width).min(width);
        let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
        eprint!("\r[{}{}] {n}/{total} {rate:.0} tx/s ", "=".repeat(filled), " ".repeat(width - filled));
        let _ = std::io::stderr().flush();
        if n >= total {
            eprintln!();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The run's outcomes counted.
struct Tally {
    latencies: Vec<Duration>,
    valid: usize,
    invalid: BTreeMap<String, usize>,
    failed: usize,
    /// The first five failures' messages.
    first_errors: Vec<String>,
}

fn tally(outcomes: Vec<Outcome>) -> Tally {
    let mut t = Tally {
        latencies: Vec::new(),
        valid: 0,
        invalid: BTreeMap::new(),
        failed: 0,
        first_errors: Vec::new(),
    };
    for outcome in outcomes {
        match outcome {
            Outcome::Committed { code, latency } => {
                t.latencies.push(latency);
                if code == 0 {
                    t.valid += 1;
                } else {
                    *t.invalid.entry(code_name(code).to_owned()).or_default() += 1;
                }
            }
            Outcome::Failed(why) => {
                t.failed += 1;
                if t.first_errors.len() < 5 {
                    t.first_errors.push(why);
                }
            }
        }
    }
    t
}

/// Runs the load against the network described by `status`.
pub async fn run(status: &NetworkStatus, spec: &LoadSpec, progress: bool) -> Result<LoadReport> {
    let (user, peer) = medfabric_network::connect::pick(status, &spec.user, spec.peer.as_deref())?;
    let gateway = medfabric_network::connect::gateway(user, peer)?;
    let contract = gateway.network(&status.channel).contract(&spec.chaincode);
    let run_tag = {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).context("OS random source")?;
        hex::encode(bytes)
    };
    let cpu_before: Vec<(String, u32, f64)> =
        status.nodes.iter().filter_map(|n| Some((n.name.clone(), n.pid?, cpu_seconds(n.pid?)?))).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..spec.concurrency.max(1) {
        let counters = Counters { next: next.clone(), done: done.clone() };
        workers.spawn(work(contract.clone(), spec.clone(), worker, run_tag.clone(), counters));
    }
    let reporter = progress.then(|| tokio::spawn(progress_bar(done.clone(), spec.transactions, started)));
    let mut outcomes = Vec::with_capacity(spec.transactions);
    while let Some(batch) = workers.join_next().await {
        outcomes.extend(batch.context("bench worker")?);
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(reporter) = reporter {
        let _ = reporter.await;
    }
    let node_cpu = cpu_before
        .iter()
        .filter_map(|(name, pid, before)| {
            Some(NodeCpu {
                name: name.clone(),
                cpu_seconds: ((cpu_seconds(*pid)? - before) * 100.0).round() / 100.0,
            })
        })
        .collect();
    let Tally { mut latencies, valid, invalid, failed, first_errors } = tally(outcomes);
    latencies.sort_unstable();
    let ordered = latencies.len();
    let mean_ms = if ordered == 0 {
        0.0
    } else {
        latencies.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / ordered as f64
    };
    Ok(LoadReport {
        chaincode: spec.chaincode.clone(),
        function: spec.function.clone(),
        transactions: spec.transactions,
        concurrency: spec.concurrency,
        seconds,
        committed_tps: valid as f64 / seconds.max(1e-9),
        ordered_tps: ordered as f64 / seconds.max(1e-9),
        latency: Latency {
            p50_ms: percentile(&latencies, 50.0),
            p95_ms: percentile(&latencies, 95.0),
            p99_ms: percentile(&latencies, 99.0),
            max_ms: latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            mean_ms,
        },
        valid,
        invalid,
        failed,
        first_errors,
        node_cpu,
    })
}

/// The report for humans.
pub fn describe(report: &LoadReport) -> String {
    let mut out = format!(
        "{}.{}: {} transactions at concurrency {} in {:.2}s\n  committed {:.1} tx/s (valid), {:.1} tx/s ordered\n  latency p50 {:.1} ms  p95 {:.1} ms  p99 {:.1} ms  max {:.1} ms\n  valid {}  invalid {:?}  failed {}\n",
        report.chaincode,
        report.function,
        report.transactions,
        report.concurrency,
        report.seconds,
        report.committed_tps,
        report.ordered_tps,
        report.latency.p50_ms,
        report.latency.p95_ms,
        report.latency.p99_ms,
        report.latency.max_ms,
        report.valid,
        report.invalid,
        report.failed
    );
    for error in &report.first_errors {
        out += &format!("  error: {error}\n");
    }
    out += "  CPU seconds per node:\n";
    for node in &report.node_cpu {
        out += &format!("    {:40} {:.2}\n", node.name, node.cpu_seconds);
    }
    out
}

/// Loads the network status of `data` for a run.
pub fn network(data: &Path) -> Result<NetworkStatus> {
    medfabric_network::up::status(data)
}
