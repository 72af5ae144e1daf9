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
