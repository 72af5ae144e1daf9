//! `medfabric`: the operator and auditor command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "medfabric",
    version,
    about = "medfabric: a permissioned ledger for medical data, wire-compatible with Hyperledger Fabric 2.5"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate and manage networks.
    Network {
        #[command(subcommand)]
        command: NetworkCommand,
    },
    /// Inspect a single block file.
    Block {
        #[command(subcommand)]
        command: BlockCommand,
    },
    /// Verify a ledger offline.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Crypto material, MSP folders, node configs and the genesis block from a topology.
    Generate {
        /// Topology file, e.g. network-config/dev.yaml.
        config: PathBuf,
        /// Output directory.
        #[arg(long, default_value = "medfabric-data")]
        out: PathBuf,
        /// Replace a network previously generated into --out.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum BlockCommand {
    /// Decode a block file (raw common.Block bytes) and print JSON.
    Inspect {
        file: PathBuf,
        /// Config block whose MSPs verify the signatures.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Verify every *.block file of a directory; exit status 0 only if all verifies.
    Verify {
        dir: PathBuf,
        /// The channel's config block (e.g. the genesis block).
        #[arg(long)]
        config: PathBuf,
    },
    /// Re-validate every *.block file of a directory through medfabric's validator and
    /// committer into a fresh temporary ledger; print our codes beside the recorded ones.
    /// Exit status 0 only with no mismatch.
    Replay {
        dir: PathBuf,
        /// The channel's config block (e.g. the genesis block).
        #[arg(long)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Identity deserialization (cold and cached), ECDSA verify and sign per second.
    Msp {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Peer commit throughput: blocks of endorsed kv writes through the validator and
    /// the RocksDB committer (validation and commit tx/s, share of signature checks).
    Commit {
        #[arg(long, default_value_t = 20)]
        blocks: u64,
        #[arg(long, default_value_t = 500)]
        txs_per_block: usize,
    },
    /// Ordering throughput and latency: broadcast → block delivered, with 1 or 3+
    /// in-process consenters (gRPC on loopback, Raft on RocksDB).
    Order {
        #[arg(long, default_value_t = 1)]
        consenters: usize,
        #[arg(long, default_value_t = 20000)]
        envelopes: usize,
        #[arg(long, default_value_t = 8)]
        streams: usize,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Network { command: NetworkCommand::Generate { config, out, force } } => {
            let generated = medfabric_client::network::generate(&config, &out, force)?;
            print_json(&generated)?;
        }
        Command::Block { command: BlockCommand::Inspect { file, config } } => {
            let report = medfabric_client::ledger::inspect(&file, config.as_deref())?;
            print_json(&report)?;
        }
        Command::Ledger { command: LedgerCommand::Verify { dir, config } } => {
            let summary = medfabric_client::ledger::verify(&dir, &config)?;
            print_json(&summary)?;
            if !summary.ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Ledger { command: LedgerCommand::Replay { dir, config } } => {
            let report = medfabric_client::ledger::replay(&dir, &config)?;
            print_json(&report)?;
            if !report.ok {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Bench { command: BenchCommand::Commit { blocks, txs_per_block } } => {
            print_json(&medfabric_client::bench::commit(blocks.max(1), txs_per_block.max(1))?)?;
        }
        Command::Bench { command: BenchCommand::Order { consenters, envelopes, streams } } => {
            print_json(&medfabric_client::bench::order(consenters, envelopes, streams)?)?;
        }
        Command::Bench { command: BenchCommand::Msp { seconds } } => {
            let result = medfabric_client::bench::msp(Duration::from_secs_f64(seconds.max(0.1)))?;
            print_json(&result)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
