//! Micro-benchmarks of the identity and signature hot path (`medfabric bench msp`).

use std::time::{Duration, Instant};

use anyhow::Result;
use medfabric_ca::{CertificateAuthority, LeafRequest, Name, Validity};
use medfabric_msp::{Msp, MspManager, SigningIdentity, node_ou_msp_config};
use serde::Serialize;
use time::OffsetDateTime;

#[derive(Debug, Serialize)]
pub struct MspBench {
    pub seconds_per_measure: f64,
    pub deserialize_cold_per_sec: f64,
    pub deserialize_cached_per_sec: f64,
    pub verify_per_sec: f64,
    pub sign_per_sec: f64,
}

/// Runs each measurement for about `duration` on one thread.
pub fn msp(duration: Duration) -> Result<MspBench> {
    let now = OffsetDateTime::now_utc();
    let ca = CertificateAuthority::new_root(
        &Name::fabric_style("ca.bench", Some("bench"), &[]),
        Validity::days_from(now, 30),
    )?;
    let issued = ca.issue(&LeafRequest::enrollment("user", "client", Validity::days_from(now, 30)))?;
    let key = issued.key_pem();
    let signer = SigningIdentity::new("BenchMSP", issued.certificate_pem.as_bytes(), &key)?;
    let config = node_ou_msp_config("BenchMSP", ca.certificate_pem().as_bytes());
    let msps = MspManager::new([Msp::from_config(&config)?]);
    let serialized = signer.serialized().clone();
    let message = vec![7u8; 300];
    let signature = signer.sign(&message);
    let identity = msps.deserialize(&serialized)?;

    let rate = |f: &mut dyn FnMut()| -> f64 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < duration {
            for _ in 0..16 {
                f();
            }
            n += 16;
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let cold = rate(&mut || {
        std::hint::black_box(msps.deserialize_uncached(&serialized).is_ok());
    });
    let cached = rate(&mut || {
        std::hint::black_box(msps.deserialize(&serialized).is_ok());
    });
    let verify = rate(&mut || {
        std::hint::black_box(identity.verify(&message, &signature).is_ok());
    });
    let sign = rate(&mut || {
        std::hint::black_box(signer.sign(&message));
    });
    Ok(MspBench {
        seconds_per_measure: duration.as_secs_f64(),
        deserialize_cold_per_sec: cold.round(),
        deserialize_cached_per_sec: cached.round(),
        verify_per_sec: verify.round(),
        sign_per_sec: sign.round(),
    })
}

#[derive(Debug, Serialize)]
pub struct CommitBench {
    pub blocks: u64,
    pub txs_per_block: usize,
    pub txs: u64,
    pub valid: u64,
    /// Wall time of the whole commit path (validate + write) over all blocks.
    pub seconds: f64,
    pub commit_tx_per_sec: f64,
    pub validate_seconds: f64,
    pub validate_tx_per_sec: f64,
    pub write_seconds: f64,
    pub validation_threads: usize,
    /// The signature checks alone (creator + endorsement, with identity lookups), on
    /// one core, over the same transactions.
    pub signature_check_seconds_one_core: f64,
    /// `signature_check_seconds_one_core / (validate_seconds × validation_threads)`:
    /// the share of validation CPU that goes to signature checks.
    pub signature_share_of_validation: f64,
}

/// Commit throughput: `blocks` blocks of `txs_per_block` endorsed kv writes (`put`,
/// OR policy) through the validator and the RocksDB committer of a fresh ledger.
pub fn commit(blocks: u64, txs_per_block: usize) -> Result<CommitBench> {
    use medfabric_peer::testnet::TestNetwork;
    use medfabric_types::Transaction;

    let net = TestNetwork::new();
    let work = tempfile::tempdir()?;
    // Endorse on one peer (not measured), then commit on a fresh one (measured).
    let (endorsing, endorser) = net.peer(&work.path().join("endorser"), net.peer1.clone());
    let mut chain = Vec::new();
    let mut tip = net.genesis.clone();
    let mut seq = 0;
    for b in 0..blocks {
        let envelopes: Vec<_> = (0..txs_per_block)
            .map(|i| {
                seq += 1;
                let key = format!("key-{b}-{i}");
                let signed = net.proposal(
                    &net.client1,
                    "kv",
                    &["put", &key, "a 64-byte value .............................................."],
                    seq,
                );
                let response =
                    endorser.process(&signed).map_err(|e| anyhow::anyhow!("endorsement: {e:?}"))?;
                Ok(net.envelope(&net.client1, &signed, &[response]))
            })
            .collect::<Result<_>>()?;
        let block = net.block(&tip, &envelopes);
        endorsing.commit(&block)?;
        tip = block.clone();
        chain.push(block);
    }

    let (committing, _) = net.peer(&work.path().join("committer"), net.peer2.clone());
    let (mut validate, mut write, mut valid) = (Duration::ZERO, Duration::ZERO, 0u64);
    let started = Instant::now();
    for block in &chain {
        let event = committing.commit(block)?;
        validate += event.validate_time;
        write += event.write_time;
        valid += event.txs.iter().filter(|t| t.code as i32 == 0).count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();

    // The signature work of the same transactions, on one core.
    let context = committing.context();
    let msps = &context.resources.msps;
    let envelopes: Vec<Vec<u8>> = chain
        .iter()
        .flat_map(|b| medfabric_types::block::envelopes(b).iter().map(|e| e.to_vec()).collect::<Vec<_>>())
        .collect();
    let parsed: Vec<Transaction> =
        envelopes.iter().map(|e| Transaction::parse(e)).collect::<Result<_, _>>()?;
    let sig_started = Instant::now();
    for tx in &parsed {
        let creator = msps.deserialize(tx.creator())?;
        std::hint::black_box(creator.verify(&tx.payload, &tx.signature).is_ok());
        if let Some(etx) = tx.endorser() {
            for e in &etx.endorsements {
                let endorser = msps.deserialize(&e.endorser)?;
                let data = [etx.proposal_response_payload.as_ref(), e.endorser.as_ref()].concat();
                std::hint::black_box(endorser.verify(&data, &e.signature).is_ok());
            }
        }
    }
    let sig_seconds = sig_started.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let txs = blocks * txs_per_block as u64;
    Ok(CommitBench {
        blocks,
        txs_per_block,
        txs,
        valid,
        seconds,
        commit_tx_per_sec: (txs as f64 / seconds).round(),
        validate_seconds: validate.as_secs_f64(),
        validate_tx_per_sec: (txs as f64 / validate.as_secs_f64()).round(),
        write_seconds: write.as_secs_f64(),
        validation_threads: threads,
        signature_check_seconds_one_core: sig_seconds,
        signature_share_of_validation: (sig_seconds / (validate.as_secs_f64() * threads as f64)).min(1.0),
    })
}

#[derive(Debug, Serialize)]
pub struct OrderBench {
    pub consenters: usize,
    pub envelopes: usize,
    pub streams: usize,
    pub envelope_bytes: usize,
    /// From the first send to the last envelope delivered in a block (Deliver).
    pub seconds: f64,
    pub delivered_tx_per_sec: f64,
    pub blocks: usize,
    /// Broadcast → SUCCESS (the envelope is in a committed block), per envelope.
    pub ack_latency_ms_p50: f64,
    pub ack_latency_ms_p90: f64,
    pub ack_latency_ms_p99: f64,
}

/// Ordering throughput and latency: `consenters` in-process orderers (gRPC on
/// loopback, Raft on RocksDB), `envelopes` endorser transactions over `streams`
/// Broadcast streams spread over the consenters, blocks counted on a Deliver stream.
pub fn order(consenters: usize, envelopes: usize, streams: usize) -> Result<OrderBench> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(order_async(consenters.clamp(1, 7), envelopes.max(1), streams.max(1)))
}

/// A one-organization topology with `ports.len()` consenters on loopback (cluster ports
/// as given), for the ordering benchmark.
fn order_topology(ports: &[u16]) -> medfabric_network::topology::Topology {
    use medfabric_network::topology::{
        Batch, ChaincodeEntry, Endpoint, Orderer, OrdererOrg, Peer, PeerOrg, Topology, User,
    };
    let consenters = ports
        .iter()
        .enumerate()
        .map(|(i, port)| Orderer {
            name: format!("orderer{i}"),
            host: "127.0.0.1".into(),
            port: 20000 + i as u16,
            cluster_port: *port,
            operations_port: 21000 + i as u16,
        })
        .collect();
    Topology {
        channel: "benchchannel".into(),
        orderer: OrdererOrg {
            name: "OrdererOrg".into(),
            msp_id: "OrdererMSP".into(),
            domain: "orderer.bench.local".into(),
            batch: Batch {
                max_message_count: 500,
                absolute_max_bytes: 10 << 20,
                preferred_max_bytes: 2 << 20,
                batch_timeout_ms: 250,
            },
            consenters,
            users: Vec::new(),
        },
        organizations: vec![PeerOrg {
            name: "Hospital".into(),
            msp_id: "HospitalMSP".into(),
            domain: "hospital.bench.local".into(),
            ca: Endpoint { host: "127.0.0.1".into(), port: 22054 },
            peers: vec![Peer {
                name: "peer0".into(),
                host: "127.0.0.1".into(),
                port: 22051,
                operations_port: 22443,
            }],
            users: vec![User {
                name: "client1".into(),
                user_type: "client".into(),
                attrs: Default::default(),
            }],
        }],
        chaincodes: vec![ChaincodeEntry {
            name: "kv".into(),
            version: "1.0".into(),
            sequence: 1,
            endorsement_policy: "OR('HospitalMSP.peer')".into(),
            init_required: false,
            implementation: None,
            collections: Vec::new(),
        }],
        roles: Default::default(),
    }
}

/// Starts the generated network's consenters in this process (plaintext links, so the
/// figure is Raft and the block cutter); returns their Broadcast addresses.
async fn start_consenters(generated: &medfabric_network::generate::Generated) -> Result<Vec<String>> {
    use medfabric_orderer::node::{Orderer, OrdererConfig, serve};
    let mut addresses = Vec::new();
    for config_path in generated
        .node_configs
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("orderer")))
    {
        let mut config = OrdererConfig::load(config_path)?;
        config.tls = None;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addresses.push(listener.local_addr()?.to_string());
        let cluster = tokio::net::TcpListener::bind(&config.cluster_listen_address).await?;
        let orderer = Orderer::start(&config).await?;
        tokio::spawn(async move {
            serve(orderer, listener, cluster, None, &config, std::future::pending()).await
        });
    }
    Ok(addresses)
}

type BroadcastClient =
    medfabric_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient<tonic::transport::Channel>;

async fn broadcast_client(address: &str) -> Result<BroadcastClient> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?;
    Ok(BroadcastClient::new(endpoint.connect().await?).max_decoding_message_size(64 << 20))
}

/// Waits until `probe` is ordered (a leader is elected), up to 30 s.
async fn wait_for_leader(address: &str, probe: &Envelope) -> Result<()> {
    use medfabric_proto::common::Status;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = broadcast_client(address).await?;
        let mut answers = c.broadcast(tokio_stream::iter(vec![probe.clone()])).await?.into_inner();
        if answers.message().await?.is_some_and(|a| a.status == Status::Success as i32) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "no leader after 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `chunk` on one Broadcast stream; returns each envelope's send → SUCCESS
/// latency in milliseconds.
async fn broadcast_chunk(mut client: BroadcastClient, chunk: Vec<Envelope>) -> Result<Vec<f64>> {
    use medfabric_proto::common::Status;
    let (tx, rx) = tokio::sync::mpsc::channel::<Envelope>(1024);
    let mut answers = client.broadcast(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let n = chunk.len();
    let sender = tokio::spawn(async move {
        let mut times = Vec::with_capacity(n);
        for e in chunk {
            times.push(Instant::now());
            if tx.send(e).await.is_err() {
                break;
            }
        }
        times
    });
    let mut acked_at = Vec::with_capacity(n);
    while acked_at.len() < n {
        match answers.message().await? {
            Some(a) if a.status == Status::Success as i32 => acked_at.push(Instant::now()),
            Some(a) => anyhow::bail!("envelope refused: {} {}", a.status, a.info),
            None => anyhow::bail!("broadcast stream ended"),
        }
    }
    let sent_at = sender.await?;
    Ok(sent_at.iter().zip(&acked_at).map(|(s, a)| a.duration_since(*s).as_secs_f64() * 1000.0).collect())
}

/// Counts envelopes delivered in blocks on `deliver` until `envelopes` arrived (or the
/// stream ends): `(envelopes, blocks, when the last arrived)`.
async fn count_delivered(
    mut deliver: tonic::Streaming<medfabric_proto::orderer::DeliverResponse>,
    envelopes: usize,
) -> (usize, usize, Instant) {
    use medfabric_proto::orderer::deliver_response;
    let (mut count, mut blocks) = (0usize, 0usize);
    while count < envelopes {
        match deliver.message().await {
            Ok(Some(message)) => {
                if let Some(deliver_response::Type::Block(block)) = message.r#type {
                    count += medfabric_types::block::envelopes(&block).len();
                    blocks += 1;
                }
            }
            _ => break,
        }
    }
    (count, blocks, Instant::now())
}

async fn order_async(consenters: usize, envelopes: usize, streams: usize) -> Result<OrderBench> {
    use medfabric_types::deliver::{Seek, seek_envelope};
    use prost::Message;

    let work = tempfile::tempdir()?;
    // Cluster ports: reserved from the OS, then released for the consenters.
    let ports: Vec<u16> = {
        let held: Vec<_> =
            (0..consenters).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
        held.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?
    };
    let out = work.path().join("net");
    let generated = medfabric_network::generate::generate_topology(&order_topology(&ports), &out, false)?;
    let addresses = start_consenters(&generated).await?;
    let org = out.join("organizations/peerOrganizations/hospital.bench.local");
    let client =
        SigningIdentity::from_msp_dir(&org.join("users/client1@hospital.bench.local/msp"), "HospitalMSP")?;
    let peer =
        SigningIdentity::from_msp_dir(&org.join("peers/peer0.hospital.bench.local/msp"), "HospitalMSP")?;
    wait_for_leader(&addresses[0], &bench_envelope(&client, &peer, "probe", 0)?).await?;

    let all: Vec<Envelope> = (0..envelopes)
        .map(|i| bench_envelope(&client, &peer, &format!("k{i}"), i as u64 + 1))
        .collect::<Result<_>>()?;
    let envelope_bytes = all.first().map_or(0, |e| e.encoded_len());
    // Count delivered envelopes from the next block on.
    let seek = seek_envelope(
        &generated.channel,
        &client,
        Seek::NextCommit,
        Seek::Number(u64::MAX),
        true,
        now_timestamp(),
    );
    let deliver =
        broadcast_client(&addresses[0]).await?.deliver(tokio_stream::iter(vec![seek])).await?.into_inner();
    let started = Instant::now();
    let delivered = tokio::spawn(count_delivered(deliver, envelopes));
    let mut tasks = Vec::new();
    for (s, chunk) in all.chunks(envelopes.div_ceil(streams)).enumerate() {
        let client = broadcast_client(&addresses[s % addresses.len()]).await?;
        tasks.push(tokio::spawn(broadcast_chunk(client, chunk.to_vec())));
    }
    let mut latencies = Vec::with_capacity(envelopes);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let (count, blocks, finished) = delivered.await?;
    anyhow::ensure!(count >= envelopes, "only {count} of {envelopes} envelopes delivered");
    let seconds = finished.duration_since(started).as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Ok(OrderBench {
        consenters,
        envelopes,
        streams,
        envelope_bytes,
        seconds,
        delivered_tx_per_sec: (envelopes as f64 / seconds).round(),
        blocks,
        ack_latency_ms_p50: pct(0.5),
        ack_latency_ms_p90: pct(0.9),
        ack_latency_ms_p99: pct(0.99),
    })
}

fn now_timestamp() -> medfabric_proto::Timestamp {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    medfabric_proto::Timestamp { seconds: now.as_secs() as i64, nanos: 0 }
}

/// An endorser transaction (`put key value`) as a client would submit it.
fn bench_envelope(
    client: &SigningIdentity,
    endorser: &SigningIdentity,
    key: &str,
    seq: u64,
) -> Result<Envelope> {
    use medfabric_types::endorsement::{SimulationResult, assemble_transaction, endorse, sign_envelope};
    use medfabric_types::{ProposalBuilder, SignedProposal};
    let mut timestamp = now_timestamp();
    timestamp.nanos = (seq % 1_000_000_000) as i32;
    let signed = ProposalBuilder::new("benchchannel", "kv")
        .arg("put")
        .arg(key.to_owned())
        .arg("a 64-byte value ..............................................")
        .sign(client, timestamp);
    let proposal = SignedProposal::parse(&signed)?;
    let result = SimulationResult {
        response: medfabric_proto::protos::Response { status: 200, ..Default::default() },
        results: Default::default(),
        events: Default::default(),
        chaincode_id: medfabric_proto::protos::ChaincodeId {
            name: "kv".into(),
            version: "1.0".into(),
            path: String::new(),
        },
    };
    let mut envelope = assemble_transaction(&proposal, &[endorse(&proposal, result, endorser)])?;
    sign_envelope(&mut envelope, client);
    Ok(envelope)
}

use medfabric_proto::common::Envelope;
