//! `medfabric`: the operator and auditor command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use medfabric_cli::medical;

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
    /// Submit a transaction (endorse, sign, order, wait for the commit).
    Invoke(CallArgs),
    /// Evaluate a chaincode function on a peer (nothing is ordered).
    Query(CallArgs),
    /// Follow chaincode events or blocks on a peer.
    Events(EventsArgs),
    /// Load a running network (N transactions at concurrency C) and report committed
    /// tps, latency percentiles, validation codes and CPU per node; or a micro-benchmark.
    Bench(BenchArgs),
    /// One organization: make its material alone, print its public definition.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// The channel's config: fetch it, compute, sign and submit updates (`config`), or
    /// change the batch settings in one step (`set-batch`).
    Channel {
        #[command(subcommand)]
        command: medfabric_cli::channel::ChannelCommand,
    },
    /// The organizations' certificate authorities: enroll, register, revoke.
    Ca {
        #[command(subcommand)]
        command: medfabric_cli::ca::CaCommand,
        #[command(flatten)]
        args: medfabric_cli::ca::CaArgs,
    },
    /// Patients (medical chaincode).
    Patient {
        #[command(subcommand)]
        command: medical::PatientCommand,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// Encrypted records: create, read (decrypt), show, share, erase.
    Record {
        #[command(subcommand)]
        command: medical::RecordCommand,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// Consents: grant, update, revoke, show.
    Consent {
        #[command(subcommand)]
        command: medical::ConsentCommand,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// Access requests (audited) and break-glass reviews.
    Access {
        #[command(subcommand)]
        command: medical::AccessCommand,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// Accounts, transfers, escrowed fees.
    Pay {
        #[command(subcommand)]
        command: medical::PayCommand,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// Insurance claims.
    Claim {
        #[command(subcommand)]
        command: medical::ClaimCommand,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// Regulator queries: disclosures, accesses, break-glass, consent history, payments,
    /// erasures, commitment.
    Audit {
        #[command(flatten)]
        args: medical::AuditArgs,
        #[command(flatten)]
        actor: medical::Actor,
    },
    /// The medical story on the consortium network (or, with `--story gateway`, the
    /// key-value scenario on the dev network), each step printed with its result.
    Demo {
        /// `medical` (default) or `gateway`.
        #[arg(long, default_value = "medical")]
        story: String,
        /// Topology of the network to start when it is not generated yet (default:
        /// `network-config/consortium.yaml` for the medical story, `dev.yaml` for the
        /// gateway one).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "medfabric-data")]
        data: PathBuf,
        /// Stop the network when the scenario is done.
        #[arg(long)]
        down: bool,
    },
}

/// Which network and identity a client command uses.
#[derive(clap::Args)]
struct Who {
    /// The network directory (from `network up`).
    #[arg(long, default_value = "medfabric-data")]
    data: PathBuf,
    /// The user to act as: `name` or `name@MSPID` (see `network status`).
    #[arg(long = "as", default_value = "drhouse")]
    user: String,
    /// The peer to connect to (default: the first peer of the user's organization).
    #[arg(long)]
    peer: Option<String>,
    /// Channel (default: the network's).
    #[arg(long)]
    channel: Option<String>,
}

#[derive(clap::Args)]
struct CallArgs {
    chaincode: String,
    function: String,
    args: Vec<String>,
    #[command(flatten)]
    who: Who,
    /// Endorse on exactly these organizations (comma-separated MSP ids).
    #[arg(long, value_delimiter = ',')]
    endorsing_orgs: Vec<String>,
    /// Transient data `KEY=VALUE` (repeatable): passed to the chaincode, never written
    /// to a block — how private data values reach the endorsers.
    #[arg(long = "transient", value_name = "KEY=VALUE")]
    transient: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EventsArgs {
    /// Follow this chaincode's events (else: blocks).
    #[arg(long)]
    chaincode: Option<String>,
    /// Start at this block (default: the next commit).
    #[arg(long)]
    start: Option<u64>,
    /// Stop after this many events (or blocks).
    #[arg(long)]
    count: Option<usize>,
    #[command(flatten)]
    who: Who,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BenchArgs {
    #[command(subcommand)]
    micro: Option<BenchCommand>,
    #[arg(long, default_value = "kv")]
    chaincode: String,
    #[arg(long, default_value = "put")]
    function: String,
    /// An argument template (repeat for each): `{i}` is the transaction index, `{w}` the
    /// worker, `{run}` a random tag of this run.
    #[arg(long = "arg", default_values_t = ["bench:{run}:{i}".to_string(), "value-{i}".to_string()])]
    args: Vec<String>,
    /// Transient data `KEY=TEMPLATE` (repeatable, same placeholders): private data
    /// workloads, e.g. `--function putpvt --arg shared --arg k{run}{i} --transient value=v{i}`.
    #[arg(long = "transient", value_name = "KEY=TEMPLATE")]
    transient: Vec<String>,
    /// Transactions.
    #[arg(short = 'n', long, default_value_t = 1000)]
    transactions: usize,
    /// Transactions in flight at once.
    #[arg(short = 'c', long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    who: Who,
    #[arg(long)]
    json: bool,
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
    /// Start every orderer and peer of a network as its own process (generating it first,
    /// on free loopback ports, if DATA has no network), and wait until all are healthy.
    Up {
        /// Topology file.
        #[arg(default_value = "network-config/dev.yaml")]
        config: PathBuf,
        #[arg(long, default_value = "medfabric-data")]
        data: PathBuf,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop the network's processes.
    Down {
        #[arg(long, default_value = "medfabric-data")]
        data: PathBuf,
    },
    /// Each node's pid, addresses, data directory and health; each user's MSP folder and
    /// TLS files.
    Status {
        #[arg(long, default_value = "medfabric-data")]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Development: make a new organization (an `organizations` entry of a topology) inside
    /// this network directory, on free ports, with its node configs; writes its definition
    /// to `definitions/<MSPID>.json` for `channel add-org`. `network up` starts its nodes.
    AddOrg {
        /// The organization file.
        org: PathBuf,
        #[arg(long, default_value = "medfabric-data")]
        data: PathBuf,
    },
}

/// One organization on its own host.
#[derive(Subcommand)]
enum OrgCommand {
    /// Make one organization's CAs, TLS CA, MSP, node and user certificates and record
    /// key under DIR, with no other organization's keys (the file is one `organizations`
    /// entry of a topology); prints its definition.
    Init {
        org: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the public definition (MSP, anchor peers, record key) of the organization
    /// made under DIR: what the channel's members need to add it.
    Definition { dir: PathBuf },
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
    /// Write a peer's blocks as NNNNNN.block files (the peer may be running).
    Export {
        /// The peer's ledger directory (`<data_dir>/ledger`).
        ledger: PathBuf,
        #[arg(long)]
        channel: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// A peer ledger's height and world-state hash (the peer may be running).
    State {
        /// The peer's ledger directory (`<data_dir>/ledger`).
        ledger: PathBuf,
        #[arg(long)]
        channel: String,
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
    /// The medical chaincode under load on a running network: `access` (audited record
    /// accesses under a consent, checked against the regulator's audit trail) or
    /// `deposit` (credits into one hospital account, checked against its balance).
    Medical {
        #[arg(value_enum, default_value = "access")]
        workload: medfabric_bench::medical_bench::Workload,
        /// Transactions.
        #[arg(short = 'n', long, default_value_t = 1000)]
        transactions: usize,
        /// Transactions in flight at once.
        #[arg(short = 'c', long, default_value_t = 64)]
        concurrency: usize,
        /// The network directory (from `network up`).
        #[arg(long, default_value = "medfabric-data")]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
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

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Network { command } => network(command),
        Command::Block { command } => block(command),
        Command::Ledger { command } => ledger(command),
        Command::Invoke(call) => runtime()?.block_on(call_chaincode(call, true)),
        Command::Query(call) => runtime()?.block_on(call_chaincode(call, false)),
        Command::Events(args) => done(runtime()?.block_on(events(args))),
        Command::Org { command } => org(command),
        Command::Channel { command } => done(runtime()?.block_on(medfabric_cli::channel::run(command))),
        Command::Ca { command, args } => done(medfabric_cli::ca::run(command, args)),
        Command::Patient { command, actor } => done(runtime()?.block_on(medical::patient(command, actor))),
        Command::Record { command, actor } => done(runtime()?.block_on(medical::record(command, actor))),
        Command::Consent { command, actor } => done(runtime()?.block_on(medical::consent(command, actor))),
        Command::Access { command, actor } => done(runtime()?.block_on(medical::access(command, actor))),
        Command::Pay { command, actor } => done(runtime()?.block_on(medical::pay(command, actor))),
        Command::Claim { command, actor } => done(runtime()?.block_on(medical::claim(command, actor))),
        Command::Audit { args, actor } => done(runtime()?.block_on(medical::audit(args, actor))),
        Command::Demo { story, config, data, down } => demo(&story, config, data, down),
        Command::Bench(args) => bench(args),
    }
}

/// A command that prints its own output and succeeds unless it fails.
fn done(outcome: Result<()>) -> Result<ExitCode> {
    outcome.map(|()| ExitCode::SUCCESS)
}

/// `network generate|up|down|status`.
fn network(command: NetworkCommand) -> Result<ExitCode> {
    use medfabric_network::up;
    match command {
        NetworkCommand::Generate { config, out, force } => {
            let generated = medfabric_network::generate::generate(&config, &out, force)?;
            print_json(&generated)?;
        }
        NetworkCommand::Up { config, data, json } => {
            let status = up::up(&config, &data)?;
            if json {
                print_json(&status)?;
            } else {
                print!("{}", up::describe(&status));
                println!("(`medfabric network status --data {} --json` for scripts)", data.display());
            }
        }
        NetworkCommand::Down { data } => {
            let stopped = up::down(&data)?;
            println!("stopped {} node(s): {}", stopped.len(), stopped.join(", "));
        }
        NetworkCommand::AddOrg { org, data } => {
            let (definition, configs) = medfabric_network::org::add_to_network(&data, &org)?;
            let definitions = data.join("definitions");
            std::fs::create_dir_all(&definitions)?;
            let file = definitions.join(format!("{}.json", definition.msp_id));
            std::fs::write(&file, serde_json::to_string_pretty(&definition)? + "\n")?;
            print_json(&serde_json::json!({
                "organization": definition.msp_id,
                "definition_file": file,
                "node_configs": configs,
            }))?;
        }
        NetworkCommand::Status { data, json } => {
            let status = up::status(&data)?;
            if json {
                print_json(&status)?;
            } else {
                print!("{}", up::describe(&status));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `org init|definition`.
fn org(command: OrgCommand) -> Result<ExitCode> {
    let definition = match command {
        OrgCommand::Init { org, out } => medfabric_network::org::init(&org, &out)?,
        OrgCommand::Definition { dir } => medfabric_network::org::definition(&dir)?,
    };
    print_json(&definition)?;
    Ok(ExitCode::SUCCESS)
}

/// `block inspect`.
fn block(command: BlockCommand) -> Result<ExitCode> {
    match command {
        BlockCommand::Inspect { file, config } => {
            let report = medfabric_cli::ledger::inspect(&file, config.as_deref())?;
            print_json(&report)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `ledger verify|export|state|replay`.
fn ledger(command: LedgerCommand) -> Result<ExitCode> {
    match command {
        LedgerCommand::Verify { dir, config } => {
            let summary = medfabric_cli::ledger::verify(&dir, &config)?;
            print_json(&summary)?;
            if !summary.ok {
                return Ok(ExitCode::from(1));
            }
        }
        LedgerCommand::Export { ledger, channel, out } => {
            let blocks = medfabric_cli::ledger::export(&ledger, &channel, &out)?;
            print_json(&serde_json::json!({"blocks": blocks, "out": out}))?;
        }
        LedgerCommand::State { ledger, channel } => {
            print_json(&medfabric_cli::ledger::state(&ledger, &channel)?)?;
        }
        LedgerCommand::Replay { dir, config } => {
            let report = medfabric_cli::ledger::replay(&dir, &config)?;
            print_json(&report)?;
            if !report.ok {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `demo --story medical|gateway`.
fn demo(story: &str, config: Option<PathBuf>, data: PathBuf, down: bool) -> Result<ExitCode> {
    use medfabric_bench::demo;
    use medfabric_network::up;

    let outcome = match story {
        "medical" => {
            let config = config.unwrap_or_else(|| PathBuf::from("network-config/consortium.yaml"));
            runtime()?.block_on(medfabric_bench::medical_demo::run(&config, &data)).map(|_| ())
        }
        "gateway" => {
            let config = config.unwrap_or_else(|| PathBuf::from("network-config/dev.yaml"));
            runtime()?.block_on(demo::run(&config, &data))
        }
        other => Err(anyhow::anyhow!("unknown story {other:?} (medical or gateway)")),
    };
    if down {
        up::down(&data)?;
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// `bench` (load on a running network) and its micro-benchmarks.
fn bench(args: BenchArgs) -> Result<ExitCode> {
    use medfabric_bench::load;
    use medfabric_network::up;
    match args {
        BenchArgs {
            micro: None,
            chaincode,
            function,
            args,
            transient,
            transactions,
            concurrency,
            who,
            json,
        } => {
            let status = up::status(&who.data)?;
            let transient = transient
                .iter()
                .map(|entry| {
                    entry
                        .split_once('=')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--transient takes KEY=TEMPLATE, got {entry:?}"))
                })
                .collect::<Result<Vec<_>>>()?;
            let spec = load::LoadSpec {
                chaincode,
                function,
                args,
                transient,
                transactions,
                concurrency,
                user: who.user,
                peer: who.peer,
            };
            let report = runtime()?.block_on(load::run(&status, &spec, !json))?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", load::describe(&report));
            }
        }
        BenchArgs {
            micro: Some(BenchCommand::Medical { workload, transactions, concurrency, data, json }),
            ..
        } => {
            let status = up::status(&data)?;
            let size = medfabric_bench::medical_bench::Size {
                transactions: transactions.max(1),
                concurrency: concurrency.max(1),
                progress: !json,
            };
            let report = runtime()?.block_on(medfabric_bench::medical_bench::run(&status, workload, size))?;
            if json {
                print_json(&report)?;
            } else {
                print!("{}", medfabric_bench::medical_bench::describe(&report));
            }
            if report.check.as_ref().is_some_and(|c| !c.ok) {
                return Ok(ExitCode::from(1));
            }
        }
        BenchArgs { micro: Some(BenchCommand::Commit { blocks, txs_per_block }), .. } => {
            print_json(&medfabric_bench::bench::commit(blocks.max(1), txs_per_block.max(1))?)?;
        }
        BenchArgs { micro: Some(BenchCommand::Order { consenters, envelopes, streams }), .. } => {
            print_json(&medfabric_bench::bench::order(consenters, envelopes, streams)?)?;
        }
        BenchArgs { micro: Some(BenchCommand::Msp { seconds }), .. } => {
            let result = medfabric_bench::bench::msp(Duration::from_secs_f64(seconds.max(0.1)))?;
            print_json(&result)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `invoke` and `query`.
async fn call_chaincode(call: CallArgs, submit: bool) -> Result<ExitCode> {
    use medfabric_sdk::{ClientError, code_name};
    let (gateway, status) =
        medfabric_network::connect::connect(&call.who.data, &call.who.user, call.who.peer.as_deref())?;
    let channel = call.who.channel.clone().unwrap_or(status.channel);
    let contract = gateway.network(&channel).contract(&call.chaincode);
    let orgs: Vec<&str> = call.endorsing_orgs.iter().map(String::as_str).collect();
    let mut draft = contract.proposal_builder(&call.function, &call.args).endorsing_organizations(&orgs);
    for entry in &call.transient {
        let Some((key, value)) = entry.split_once('=') else {
            anyhow::bail!("--transient takes KEY=VALUE, got {entry:?}");
        };
        draft = draft.transient(key, value.as_bytes().to_vec());
    }
    let proposal = draft.signed(gateway.signer());
    let tx_id = proposal.tx_id().to_owned();
    let outcome: Result<(bytes::Bytes, Option<medfabric_sdk::CommitStatus>), ClientError> = async {
        if !submit {
            return Ok((proposal.evaluate().await?, None));
        }
        let transaction = proposal.endorse().await?;
        let result = transaction.result.clone();
        let status = transaction.submit().await?.status().await?;
        Ok((result, Some(status)))
    }
    .await;
    match outcome {
        Ok((result, commit)) => {
            let valid = commit.as_ref().is_none_or(|c| c.is_valid());
            if call.json {
                print_json(&serde_json::json!({
                    "tx_id": tx_id,
                    "result": String::from_utf8_lossy(&result),
                    "result_hex": hex::encode(&result),
                    "block": commit.as_ref().map(|c| c.block_number),
                    "code": commit.as_ref().map(|c| code_name(c.code)),
                }))?;
            } else {
                println!("{}", String::from_utf8_lossy(&result));
                if let Some(c) = &commit {
                    eprintln!("tx {tx_id}: {} in block {}", code_name(c.code), c.block_number);
                }
            }
            Ok(if valid { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `events`: chaincode events or blocks, one JSON line each.
async fn events(args: EventsArgs) -> Result<()> {
    use medfabric_sdk::Start;
    use tokio_stream::StreamExt;
    let (gateway, status) =
        medfabric_network::connect::connect(&args.who.data, &args.who.user, args.who.peer.as_deref())?;
    let network = gateway.network(&args.who.channel.clone().unwrap_or(status.channel));
    let start = args.start.map_or(Start::NextCommit, Start::Block);
    let limit = args.count.unwrap_or(usize::MAX);
    let mut seen = 0;
    match &args.chaincode {
        Some(chaincode) => {
            let mut stream = network.chaincode_events(chaincode, start).await?;
            while seen < limit {
                let Some(batch) = stream.next().await else { break };
                let batch = batch?;
                for event in batch.events {
                    println!(
                        "{}",
                        serde_json::json!({
                            "block": batch.block_number,
                            "tx_id": event.tx_id,
                            "chaincode": event.chaincode_id,
                            "event": event.event_name,
                            "payload": String::from_utf8_lossy(&event.payload),
                        })
                    );
                    seen += 1;
                }
            }
        }
        None => {
            let mut stream = network.block_events(start).await?;
            while seen < limit {
                let Some(block) = stream.next().await else { break };
                let block = block?;
                let header = medfabric_types::block::header(&block);
                println!(
                    "{}",
                    serde_json::json!({
                        "block": header.number,
                        "transactions": medfabric_types::block::envelopes(&block).len(),
                        "codes": medfabric_types::block::transactions_filter(&block),
                        "data_hash": hex::encode(&header.data_hash),
                    })
                );
                seen += 1;
            }
        }
    }
    Ok(())
}
