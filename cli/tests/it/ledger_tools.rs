//! `medfabric block inspect` and `medfabric ledger verify` on a real Fabric chain.

use medfabric_proto::Message;
use medfabric_proto::common::{Block, Envelope, Metadata};
use medfabric_types::block;

use crate::support::{fabric_testdata, json, ledger_verify, medfabric, path};

fn blocks_dir() -> std::path::PathBuf {
    fabric_testdata().join("blocks")
}

/// A temporary copy of the Fabric chain, without the block file named `leave_out`.
fn copy_of_chain(leave_out: Option<&str>) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(blocks_dir()).expect("dir") {
        let entry = entry.expect("entry");
        if leave_out.is_none_or(|name| entry.file_name() != name) {
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
        }
    }
    tmp
}

#[test]
fn ledger_verify_accepts_the_fabric_chain() {
    let dir = blocks_dir();
    let out = ledger_verify(&dir, &dir.join("000000.block"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let summary = json(&out);
    assert_eq!(summary["blocks"], 64);
    assert_eq!(summary["txs"], 87);
    assert_eq!(summary["chain_ok"], true);
    assert_eq!(summary["signatures_ok"], true);
    assert_eq!(summary["transactions_ok"], true);
    assert_eq!(summary["validation_codes"]["VALID"], 66);
    assert_eq!(summary["validation_codes"]["MVCC_READ_CONFLICT"], 6);
    assert_eq!(summary["validation_codes"]["PHANTOM_READ_CONFLICT"], 4);
    assert_eq!(summary["validation_codes"]["DUPLICATE_TXID"], 2);
    assert_eq!(summary["validation_codes"]["BAD_PROPOSAL_TXID"], 1);
    assert!(summary["first_problem"].is_null());
}

#[test]
fn block_inspect_reports_hashes_codes_and_signatures() {
    let dir = blocks_dir();
    let config = dir.join("000000.block");
    let out = medfabric(&["block", "inspect", path(&dir.join("000057.block")), "--config", path(&config)]);
    assert!(out.status.success());
    let report = json(&out);
    assert_eq!(report["number"], 57);
    assert_eq!(report["data_hash_ok"], true);
    assert_eq!(report["signatures_ok"], true);
    let tx = &report["txs"][0];
    assert_eq!(tx["type"], "ENDORSER_TRANSACTION");
    assert_eq!(tx["channel_id"], "vectors");
    assert_eq!(tx["creator_msp"], "Org1MSP");
    assert_eq!(tx["chaincode"], "vecor");
    assert_eq!(tx["validation_code"], "ENDORSEMENT_POLICY_FAILURE");
    assert_eq!(tx["creator_signature_ok"], true);
    assert_eq!(tx["endorsements_ok"], false, "block 57's endorsement signature was altered");
    assert!(tx["tx_id"].as_str().expect("tx id").starts_with("059d1e3474"));

    // Without a config, hashes are still computed; signatures are not judged.
    let out = medfabric(&["block", "inspect", path(&dir.join("000003.block"))]);
    let report = json(&out);
    assert_eq!(report["header_hash"].as_str().map(str::len), Some(64));
    assert_eq!(report["txs"][0]["chaincode"], "_lifecycle");
    assert!(report["txs"][0]["creator_signature_ok"].is_null());
    assert!(report["signatures_ok"].is_null());
}

#[test]
fn block_inspect_rejects_a_truncated_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bytes = std::fs::read(blocks_dir().join("000010.block")).expect("block");
    let file = tmp.path().join("cut.block");
    std::fs::write(&file, &bytes[..bytes.len() / 3]).expect("write");
    let out = medfabric(&["block", "inspect", path(&file)]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a block"), "{stderr}");
}

/// Copies the Fabric chain, lets `tamper` alter one block, and returns the verdict.
fn verify_tampered(number: usize, tamper: impl FnOnce(&mut Block)) -> serde_json::Value {
    let tmp = copy_of_chain(None);
    let file = tmp.path().join(format!("{number:06}.block"));
    let mut block = block::decode_block(&std::fs::read(&file).expect("read")).expect("decode");
    tamper(&mut block);
    std::fs::write(&file, block.encode_to_vec()).expect("write");
    let out = ledger_verify(tmp.path(), &blocks_dir().join("000000.block"));
    assert_eq!(out.status.code(), Some(1), "tampering with block {number} must fail verification");
    let summary = json(&out);
    assert_eq!(summary["ok"], false);
    summary
}

fn flip(bytes: &mut bytes::Bytes, at: usize) {
    let mut v = bytes.to_vec();
    let at = at.min(v.len() - 1);
    v[at] ^= 0x01;
    *bytes = v.into();
}

#[test]
fn a_flipped_byte_in_a_transaction_is_caught() {
    let summary = verify_tampered(20, |b| {
        let data = &mut b.data.as_mut().expect("data").data[0];
        let mid = data.len() / 2;
        flip(data, mid);
    });
    assert_eq!(summary["first_problem"]["block"], 20);
    assert_eq!(summary["chain_ok"], false);
}

#[test]
fn a_flipped_byte_in_a_creator_signature_is_caught() {
    let summary = verify_tampered(12, |b| {
        let data = &mut b.data.as_mut().expect("data").data[0];
        let mut envelope = Envelope::decode(data.as_ref()).expect("envelope");
        let last = envelope.signature.len() - 1;
        flip(&mut envelope.signature, last);
        *data = envelope.encode_to_vec().into();
    });
    assert_eq!(summary["first_problem"]["block"], 12);
}

#[test]
fn a_flipped_byte_in_an_orderer_signature_is_caught() {
    let summary = verify_tampered(30, |b| {
        let slot = &mut b.metadata.as_mut().expect("metadata").metadata[block::SIGNATURES];
        let mut metadata = Metadata::decode(slot.as_ref()).expect("metadata");
        let last = metadata.signatures[0].signature.len() - 2;
        flip(&mut metadata.signatures[0].signature, last);
        *slot = metadata.encode_to_vec().into();
    });
    assert_eq!(summary["first_problem"]["block"], 30);
    assert_eq!(summary["signatures_ok"], false);
    assert_eq!(summary["chain_ok"], true);
}

#[test]
fn a_flipped_byte_in_a_header_is_caught() {
    let summary = verify_tampered(40, |b| flip(&mut b.header.as_mut().expect("header").previous_hash, 5));
    assert_eq!(summary["first_problem"]["block"], 40);
    // The last block has no successor: only its orderer signature protects its header.
    let summary = verify_tampered(63, |b| flip(&mut b.header.as_mut().expect("header").data_hash, 0));
    assert_eq!(summary["first_problem"]["block"], 63);
}

#[test]
fn a_missing_block_is_caught() {
    let tmp = copy_of_chain(Some("000033.block"));
    let out = ledger_verify(tmp.path(), &blocks_dir().join("000000.block"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["first_problem"]["block"], 34);
}

#[test]
fn a_block_marked_valid_against_its_policy_is_caught() {
    // Re-label block 40's ENDORSEMENT_POLICY_FAILURE as VALID: the filter is not signed by
    // the orderer, so only re-evaluating the policy can catch a peer that lies about it.
    let summary = verify_tampered(40, |b| {
        b.metadata.as_mut().expect("metadata").metadata[block::TRANSACTIONS_FILTER] = vec![0u8].into();
    });
    assert_eq!(summary["first_problem"]["block"], 40);
    assert_eq!(summary["transactions_ok"], false);
    let problem = summary["first_problem"]["problem"].as_str().expect("text");
    assert!(problem.contains("marked VALID"), "{problem}");
}

/// TRANSACTIONS_FILTER is not signed by the orderer: a peer could relabel codes. Each
/// relabelling is caught by re-deriving the verdict (duplicates, MVCC, phantom reads).
#[test]
fn relabelled_validation_codes_are_caught() {
    let relabel = |number: usize, index: usize, code: u8| {
        verify_tampered(number, move |b| {
            let slot = &mut b.metadata.as_mut().expect("metadata").metadata[block::TRANSACTIONS_FILTER];
            let mut codes = slot.to_vec();
            codes[index] = code;
            *slot = codes.into();
        })
    };
    for (number, index, code, needle) in [
        (56, 0, 0, "already in the ledger"), // DUPLICATE_TXID -> VALID
        // MVCC_READ_CONFLICT -> VALID: tx 0 of the block wrote the key tx 1 read.
        (21, 1, 0, "vecor/\"ctr\" was changed earlier in this block"),
        (39, 0, 0, "changed since endorsement"), // PHANTOM (Merkle summary) -> VALID
        (32, 0, 0, "changed since endorsement"), // PHANTOM (raw reads) -> VALID
        (20, 0, 11, "its reads still hold"),     // VALID -> MVCC_READ_CONFLICT
        (55, 0, 9, "tx id is new"),              // VALID -> DUPLICATE_TXID
        (7, 0, 4, "no such fault"),              // VALID -> BAD_CREATOR_SIGNATURE
    ] {
        let summary = relabel(number, index, code);
        assert_eq!(summary["first_problem"]["block"], number as u64, "block {number}");
        let problem = summary["first_problem"]["problem"].as_str().expect("text");
        assert!(problem.contains(needle), "block {number}: {problem}");
        assert_eq!(summary["transactions_ok"], false);
    }
}

#[test]
fn ledger_replay_reproduces_fabrics_codes() {
    let dir = blocks_dir();
    let out = medfabric(&["ledger", "replay", path(&dir), "--config", path(&dir.join("000000.block"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let report = json(&out);
    assert_eq!(report["height"], 64);
    assert_eq!(report["mismatches"].as_array().map(Vec::len), Some(0));
    assert_eq!(
        report["blocks"][20]["codes"],
        serde_json::json!(["VALID", "MVCC_READ_CONFLICT", "MVCC_READ_CONFLICT"])
    );
    assert_eq!(report["blocks"][20]["codes"], report["blocks"][20]["recorded"]);
    assert_eq!(report["state_hash"].as_str().map(str::len), Some(64));
}

/// A relabelled TRANSACTIONS_FILTER (not covered by the orderer's signature) shows up as
/// a mismatch, and the exit status says so.
#[test]
fn ledger_replay_reports_relabelled_codes() {
    let tmp = copy_of_chain(None);
    let file = tmp.path().join("000021.block");
    let mut b = block::decode_block(&std::fs::read(&file).expect("read")).expect("decode");
    let slot = &mut b.metadata.as_mut().expect("metadata").metadata[block::TRANSACTIONS_FILTER];
    *slot = vec![0u8, 0, 0].into();
    std::fs::write(&file, b.encode_to_vec()).expect("write");
    let out = medfabric(&[
        "ledger",
        "replay",
        path(tmp.path()),
        "--config",
        path(&blocks_dir().join("000000.block")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let mismatches = report["mismatches"].as_array().expect("list");
    assert_eq!(mismatches.len(), 2, "{mismatches:?}");
    assert_eq!(mismatches[0]["block"], 21);
    assert_eq!(mismatches[0]["ours"], "MVCC_READ_CONFLICT");
    assert_eq!(mismatches[0]["recorded"], "VALID");
    assert_eq!(report["height"], 64, "the replay goes on after a mismatch");
}
