//! Crash consistency: a `medfabric-peer` process committing blocks is killed with
//! SIGKILL at random moments and restarted. After every kill its ledger is at a whole
//! block, with the state hash of a peer that never crashed at that height.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use medfabric_peer::ledger::Store;
use medfabric_peer::source::DirSource;
use medfabric_peer::testnet::{CHANNEL, TestNetwork};
use prost::Message;

const BLOCKS: u64 = 80;
const TXS_PER_BLOCK: usize = 100;
const KILLS: usize = 20;

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Writes `BLOCKS` blocks of endorsed transactions to `blocks` and returns the state
/// hash a never-crashed peer has after each height (index = height).
fn write_chain(net: &TestNetwork, blocks: &Path, reference: &Path) -> Vec<[u8; 32]> {
    let (channel, endorser) = net.peer(reference, net.peer1.clone());
    let mut hashes = vec![[0; 32], channel.ledger().state_hash().expect("hash")];
    let mut tip = net.genesis.clone();
    let mut seq = 0;
    for b in 1..=BLOCKS {
        let envelopes: Vec<_> = (0..TXS_PER_BLOCK)
            .map(|i| {
                seq += 1;
                let key = format!("key{:03}", (b as usize * 7 + i) % 500);
                // Mostly blind writes, some read-modify-writes (a few conflict).
                let args: Vec<String> = if i % 5 == 0 {
                    vec!["inc".into(), format!("ctr{}", i % 3)]
                } else {
                    vec!["put".into(), key, format!("value-{b}-{i}-{}", "x".repeat(200))]
                };
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let signed = net.proposal(&net.client1, "kv", &args, seq);
                let response = endorser.process(&signed).expect("endorsed");
                net.envelope(&net.client1, &signed, &[response])
            })
            .collect();
        let block = net.block(&tip, &envelopes);
        channel.commit(&block).expect("reference commit");
        hashes.push(channel.ledger().state_hash().expect("hash"));
        std::fs::write(DirSource::path_of(blocks, b), block.encode_to_vec()).expect("block file");
        tip = block;
    }
    hashes
}

fn spawn_peer(config: &Path, blocks: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medfabric-peer"))
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--blocks-from")
        .arg(blocks)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("peer starts");
    // Wait for the ready line, so the kill lands while it commits.
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("ready line");
    assert!(line.contains("\"ready\""), "unexpected first line {line:?}");
    child
}

/// Height and state hash of the ledger at rest.
fn ledger_at_rest(data_dir: &Path) -> (u64, [u8; 32]) {
    let store = Store::open(&data_dir.join("ledger")).expect("ledger opens after the crash");
    let ledger = store.channel(CHANNEL).expect("channel");
    let height = ledger.height().expect("height");
    assert!(ledger.block(height - 1).expect("read").is_some(), "last block {} stored", height - 1);
    assert!(ledger.block(height).expect("read").is_none(), "nothing stored past the height");
    (height, ledger.state_hash().expect("hash"))
}

#[test]
fn a_peer_killed_while_committing_resumes_at_a_consistent_height() {
    let net = TestNetwork::new();
    let work = tempfile::tempdir().expect("tempdir");
    let blocks = work.path().join("blocks");
    std::fs::create_dir_all(&blocks).expect("blocks dir");
    let hashes = write_chain(&net, &blocks, &work.path().join("reference"));

    let genesis = work.path().join("genesis.block");
    std::fs::write(&genesis, net.genesis.encode_to_vec()).expect("genesis");
    let msp = work.path().join("msp");
    net.org1.write_msp_dir("peer1.org1", "peer", &msp).expect("msp dir");
    let data_dir = work.path().join("data");
    let config = work.path().join("peer.yaml");
    std::fs::write(
        &config,
        format!(
            "node_id: peer1.org1\nmsp_id: Org1MSP\nmsp_dir: {}\nlisten_address: 127.0.0.1:0\ndata_dir: {}\nchannel: {CHANNEL}\ngenesis_block: {}\n",
            msp.display(),
            data_dir.display(),
            genesis.display()
        ),
    )
    .expect("config");

    let seed = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64 | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut heights = Vec::new();
    for _ in 0..KILLS {
        let mut child = spawn_peer(&config, &blocks);
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 150));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let (height, hash) = ledger_at_rest(&data_dir);
        assert_eq!(hash, hashes[height as usize], "seed {seed}: state hash after a crash at height {height}");
        heights.push(height);
    }
    eprintln!("heights after each kill: {heights:?}");
    assert!(
        heights.iter().any(|h| (2..=BLOCKS).contains(h)),
        "seed {seed}: no kill landed while blocks were being committed: {heights:?}"
    );

    // Finally it finishes, with the never-crashed peer's state.
    let mut child = spawn_peer(&config, &blocks);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let (height, hash) = ledger_at_rest(&data_dir);
        assert_eq!(hash, hashes[height as usize]);
        if height == BLOCKS + 1 {
            break;
        }
        assert!(Instant::now() < deadline, "seed {seed}: stuck at height {height}");
        child = spawn_peer(&config, &blocks);
    }
}
