//! `medfabric demo`: brings the dev network up and runs a short scripted scenario with
//! the key-value chaincode through the gateway, printing each step and its result.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio_stream::StreamExt;

use medfabric_sdk::{ClientError, CommitStatus, Network, Start, code_name};

fn step(n: usize, text: &str) {
    println!("\n[{n}] {text}");
}

/// Runs the scenario on the network in `data` (started from `config` if needed).
pub async fn run(config: &Path, data: &Path) -> Result<()> {
    step(1, "network up: orderer and peers as separate processes, TLS on every link");
    let (config, data) = (config.to_owned(), data.to_owned());
    let status = tokio::task::spawn_blocking(move || medfabric_network::up::up(&config, &data)).await??;
    print!("{}", medfabric_network::up::describe(&status));
    let channel = status.channel.clone();
    let (doctor, hospital_peer) = medfabric_network::connect::pick(&status, "drhouse", None)?;
    let (tech, lab_peer) = medfabric_network::connect::pick(&status, "tech1", None)?;
    let hospital = medfabric_network::connect::gateway(doctor, hospital_peer)?.network(&channel);
    let lab = medfabric_network::connect::gateway(tech, lab_peer)?.network(&channel);
    let tag = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();

    let committed = writes(&hospital, &lab, tag).await?;
    chaincode_events(&hospital, tag).await?;
    conflicts_and_errors(&hospital, tag).await?;
    block_events(&lab, committed.block_number).await?;
    private_data(&hospital, &lab, tag).await?;

    println!(
        "\nThe network keeps running: `medfabric network status --data {}`; stop it with `medfabric network down --data {}`.",
        status.data_dir.display(),
        status.data_dir.display()
    );
    Ok(())
}

/// Steps 2 to 4: a put through one org's gateway, read through the other's, and a
/// write that needs both organizations' endorsements. Returns the put's status.
async fn writes(hospital: &Network, lab: &Network, tag: u64) -> Result<CommitStatus> {
    step(2, "drhouse (HospitalMSP) submits kv put through the Hospital peer's gateway");
    let key = format!("demo:{tag}:allergy");
    let kv = hospital.contract("kv");
    let proposal = kv.proposal("put", &[key.as_str(), "penicillin"]);
    let submitted = proposal.endorse().await?.submit().await?;
    let committed = submitted.status().await?;
    println!("    tx {} → block {} {}", committed.tx_id, committed.block_number, code_name(committed.code));
    ensure!(committed.is_valid(), "the put was not valid");

    step(3, "tech1 (LabMSP) reads it through the Lab peer (which got the block from the orderer)");
    let value = read_eventually(&lab.contract("kv"), &key).await?;
    println!("    get {key} = {}", String::from_utf8_lossy(&value));

    step(4, "a write under AND(Hospital, Lab): the gateway collects both organizations' endorsements");
    let both = hospital
        .contract("kvand")
        .submit("put", &[format!("demo:{tag}:consent").as_str(), "granted"])
        .await?;
    println!("    kvand put VALID (result {:?})", String::from_utf8_lossy(&both));

    Ok(committed)
}

/// Step 5.
async fn chaincode_events(hospital: &Network, tag: u64) -> Result<()> {
    let kv = hospital.contract("kv");
    step(5, "chaincode events: follow kv events, then emit one");
    let mut events = hospital.chaincode_events("kv", Start::NextCommit).await?;
    let payload = format!("{{\"patient\":\"alice\",\"ward\":\"{tag}\"}}");
    let emitted = kv.proposal("event", &["admission", payload.as_str()]);
    let tx_id = emitted.tx_id().to_owned();
    emitted.endorse().await?.submit().await?.status().await?;
    let received = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .context("no chaincode event within 30 s")?
        .context("event stream ended")??;
    let event = received.events.first().context("empty event batch")?;
    println!(
        "    block {}: event {:?} from tx {} payload {}",
        received.block_number,
        event.event_name,
        &event.tx_id[..12.min(event.tx_id.len())],
        String::from_utf8_lossy(&event.payload)
    );
    ensure!(event.tx_id == tx_id, "the event came from another transaction");

    Ok(())
}

/// Steps 6 and 7: an MVCC conflict and a gateway error with its details.
async fn conflicts_and_errors(hospital: &Network, tag: u64) -> Result<()> {
    let kv = hospital.contract("kv");
    step(6, "two read-modify-writes of one counter endorsed concurrently: the second loses (MVCC)");
    let counter = format!("demo:{tag}:visits");
    let first = kv.proposal("inc", &[counter.as_str()]).endorse().await?;
    let second = kv.proposal("inc", &[counter.as_str()]).endorse().await?;
    let a = first.submit().await?.status().await?;
    let b = second.submit().await?.status().await?;
    println!("    first inc: {} (block {})", code_name(a.code), a.block_number);
    println!("    second inc: {} (block {})", code_name(b.code), b.block_number);
    ensure!(
        a.is_valid() && code_name(b.code) == "MVCC_READ_CONFLICT",
        "expected VALID then MVCC_READ_CONFLICT"
    );

    step(7, "a bad request: reading a key that does not exist");
    match kv.evaluate("get", &[format!("demo:{tag}:nothing")]).await {
        Err(ClientError::Gateway { code, message, details }) => {
            println!("    {code:?}: {message}");
            for d in details {
                println!("      from {} ({}): {}", d.address, d.msp_id, d.message);
            }
        }
        other => bail!("expected a gateway error, got {other:?}"),
    }

    Ok(())
}

/// Step 8.
async fn block_events(lab: &Network, from: u64) -> Result<()> {
    step(8, "block events from the Lab peer's Deliver service");
    let mut blocks = lab.block_events(Start::Block(from)).await?;
    let block = tokio::time::timeout(Duration::from_secs(30), blocks.next())
        .await
        .context("no block within 30 s")?
        .context("block stream ended")??;
    let header = medfabric_types::block::header(&block);
    println!(
        "    block {} with {} transaction(s), validation codes {:?}",
        header.number,
        medfabric_types::block::envelopes(&block).len(),
        medfabric_types::block::transactions_filter(&block)
    );

    Ok(())
}

/// Step 9: a private write, read by the other member org, with only its hash on chain.
async fn private_data(hospital: &Network, lab: &Network, tag: u64) -> Result<()> {
    let kv = hospital.contract("kv");
    step(9, "private data: drhouse writes a value through the transient map into collection `shared`");
    let secret = format!("demo-{tag}-lab-result: HbA1c 6.1%");
    let private_key = format!("demo:{tag}:result");
    let written = kv
        .proposal_builder("putpvt", &["shared", private_key.as_str()])
        .transient("value", secret.clone().into_bytes())
        .signed(hospital.gateway().signer())
        .endorse()
        .await?
        .submit()
        .await?
        .status()
        .await?;
    ensure!(written.is_valid(), "the private write was not valid");
    let value =
        read_eventually_with(&lab.contract("kv"), "getpvt", &["shared", private_key.as_str()]).await?;
    println!("    tech1 reads it on the Lab peer: {}", String::from_utf8_lossy(&value));
    let mut blocks = lab.block_events(Start::Block(written.block_number)).await?;
    let block = tokio::time::timeout(Duration::from_secs(30), blocks.next())
        .await
        .context("no block within 30 s")?
        .context("block stream ended")??;
    let bytes = prost::Message::encode_to_vec(&block);
    let holds = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    let value_hash = <sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes());
    ensure!(!holds(secret.as_bytes()), "the block holds the private value");
    ensure!(holds(&value_hash), "the block lacks the value hash");
    println!(
        "    block {}: no plaintext, only the value hash {}…",
        written.block_number,
        &hex::encode(value_hash)[..16]
    );

    Ok(())
}

/// Reads `key`, retrying while the peer has not committed the block yet.
async fn read_eventually(contract: &medfabric_sdk::Contract, key: &str) -> Result<bytes::Bytes> {
    read_eventually_with(contract, "get", &[key]).await
}

/// Evaluates `function(args)` until the peer has committed what it needs (20 s at most).
async fn read_eventually_with(
    contract: &medfabric_sdk::Contract,
    function: &str,
    args: &[&str],
) -> Result<bytes::Bytes> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match contract.evaluate(function, args).await {
            Ok(value) => return Ok(value),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
