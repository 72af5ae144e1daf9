//! Offline verification of blocks and ledgers, for auditors: hashes, the hash chain,
//! orderer signatures against the channel's BlockValidation policy, creator and
//! endorsement signatures, and — for transactions the ledger marks VALID — that their
//! signatures, tx ids and endorsement policies really hold.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use std::sync::Arc;

use medfabric_msp::{Identity, SignatureCheck, SignedData, check_signature_set, counted_identities};
use medfabric_proto::common::{Block, HeaderType, SignatureHeader};
use medfabric_proto::kvrwset::KvrwSet;
use medfabric_proto::protos::TxValidationCode;
use serde::Serialize;

use crate::block::{self, header_hash};
use crate::config::ChannelResources;
use crate::error::{ConvertError, decode};
use crate::lifecycle::{ChaincodeRegistry, KeyPolicies, LIFECYCLE_NAMESPACE, check_endorsement};
use crate::replay::{Conflict, StateVersions};
use crate::transaction::{Transaction, TransactionBody};
use crate::validation_code_name;

/// Policy the orderer signatures of a block must satisfy.
pub const BLOCK_VALIDATION_POLICY: &str = "/Channel/Orderer/BlockValidation";

#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    pub number: u64,
    pub previous_hash: String,
    pub header_hash: String,
    pub data_hash: String,
    pub data_hash_ok: bool,
    pub tx_count: usize,
    pub last_config_index: Option<u64>,
    /// Orderer signatures in the SIGNATURES metadata slot.
    pub signatures: Vec<SignatureReport>,
    /// Whether the valid orderer signatures satisfy BlockValidation (null without a config).
    pub signatures_ok: Option<bool>,
    pub commit_hash: Option<String>,
    pub txs: Vec<TxReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignatureReport {
    pub msp_id: Option<String>,
    pub signer: Option<String>,
    pub signature_ok: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EndorsementReport {
    pub msp_id: Option<String>,
    pub endorser: Option<String>,
    pub signature_ok: Option<bool>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TxReport {
    pub index: usize,
    pub tx_id: String,
    #[serde(rename = "type")]
    pub header_type: String,
    pub channel_id: String,
    pub timestamp: Option<String>,
    pub creator_msp: Option<String>,
    pub creator: Option<String>,
    pub chaincode: Option<String>,
    pub function: Option<String>,
    /// Code from the block's TRANSACTIONS_FILTER (null when the block has none).
    pub validation_code: Option<String>,
    pub tx_id_ok: Option<bool>,
    pub creator_signature_ok: Option<bool>,
    pub proposal_hash_ok: Option<bool>,
    pub endorsements: Vec<EndorsementReport>,
    pub endorsements_ok: Option<bool>,
    /// Set by `ledger verify`, which tracks chaincode definitions and key-level policies.
    pub endorsement_policy_ok: Option<bool>,
    pub error: Option<String>,
}

/// Decodes a block and checks what one block and a config can tell.
pub fn inspect_block(
    bytes: &[u8],
    resources: Option<&ChannelResources>,
) -> Result<(Block, BlockReport), ConvertError> {
    let block = block::decode_block(bytes)?;
    let (report, _) = inspect_decoded(&block, resources);
    Ok((block, report))
}

/// A transaction parsed during inspection, with the endorsers that count for policies.
struct Inspected {
    tx: Transaction,
    endorsers: Vec<Arc<Identity>>,
}

fn inspect_decoded(
    block: &Block,
    resources: Option<&ChannelResources>,
) -> (BlockReport, Vec<Option<Inspected>>) {
    let header = block::header(block);
    let envelopes = block::envelopes(block);
    let computed_data_hash = block::data_hash(envelopes);
    let filter = block::transactions_filter(block);
    let (signatures, signatures_ok) = check_orderer_signatures(block, resources);
    let commit_hash = block::commit_hash(block).map(hex::encode);
    let (txs, parsed) = envelopes
        .iter()
        .enumerate()
        .map(|(index, envelope)| inspect_tx(index, envelope, filter.get(index).copied(), resources))
        .unzip();
    let report = BlockReport {
        number: header.number,
        previous_hash: hex::encode(&header.previous_hash),
        header_hash: hex::encode(header_hash(header)),
        data_hash: hex::encode(&header.data_hash),
        data_hash_ok: computed_data_hash.as_slice() == header.data_hash.as_ref(),
        tx_count: envelopes.len(),
        last_config_index: block::last_config_index(block).ok(),
        signatures,
        signatures_ok,
        commit_hash,
        txs,
    };
    (report, parsed)
}

/// Do a block's orderer signatures satisfy the channel's BlockValidation policy? (What a
/// peer checks before it validates a block from the ordering service.)
pub fn block_signatures_satisfied(block: &Block, resources: &ChannelResources) -> bool {
    check_orderer_signatures(block, Some(resources)).1 == Some(true)
}

fn check_orderer_signatures(
    block: &Block,
    resources: Option<&ChannelResources>,
) -> (Vec<SignatureReport>, Option<bool>) {
    let Ok(metadata) = block::signatures_metadata(block) else {
        return (Vec::new(), resources.map(|_| false));
    };
    let header = block::header(block);
    let signed: Vec<(Vec<u8>, Bytes)> = metadata
        .signatures
        .iter()
        .map(|signature| {
            let creator = decode::<SignatureHeader>("SignatureHeader", &signature.signature_header)
                .map(|h| h.creator)
                .unwrap_or_default();
            (block::signed_block_bytes(&metadata.value, &signature.signature_header, header), creator)
        })
        .collect();
    let Some(resources) = resources else {
        let blank = || SignatureReport { msp_id: None, signer: None, signature_ok: None, error: None };
        return (signed.iter().map(|_| blank()).collect(), None);
    };
    let set: Vec<SignedData<'_>> = signed
        .iter()
        .zip(&metadata.signatures)
        .map(|((data, creator), s)| SignedData { data, identity: creator, signature: &s.signature })
        .collect();
    let checks = check_signature_set(&set, &resources.msps);
    let reports = checks
        .iter()
        .map(|check| {
            let v = Verdict::of(check);
            SignatureReport { msp_id: v.msp_id, signer: v.name, signature_ok: v.ok, error: v.error }
        })
        .collect();
    let ok =
        resources.policies.evaluate(BLOCK_VALIDATION_POLICY, &counted_identities(&checks)).unwrap_or(false);
    (reports, Some(ok))
}

/// The reportable facts of one signature check.
struct Verdict {
    msp_id: Option<String>,
    name: Option<String>,
    /// `None` when the signature was skipped as a repeat of an accepted signer.
    ok: Option<bool>,
    error: Option<String>,
}

impl Verdict {
    fn of(check: &SignatureCheck) -> Self {
        match (&check.identity, &check.signature) {
            (Err(e), _) => Self { msp_id: None, name: None, ok: Some(false), error: Some(e.to_string()) },
            (Ok(identity), signature) => Self {
                msp_id: Some(identity.msp_id().to_owned()),
                name: Some(identity.certificate().common_name().to_owned()),
                ok: signature.as_ref().map(Result::is_ok),
                error: match signature {
                    Some(Err(e)) => Some(e.to_string()),
                    Some(Ok(())) => None,
                    None => Some("repeats a signer already accepted; not checked, as in Fabric".into()),
                },
            },
        }
    }
}

fn inspect_tx(
    index: usize,
    envelope: &[u8],
    code: Option<u8>,
    resources: Option<&ChannelResources>,
) -> (TxReport, Option<Inspected>) {
    let mut report = TxReport {
        index,
        tx_id: String::new(),
        header_type: String::new(),
        channel_id: String::new(),
        timestamp: None,
        creator_msp: None,
        creator: None,
        chaincode: None,
        function: None,
        validation_code: code.map(validation_code_name),
        tx_id_ok: None,
        creator_signature_ok: None,
        proposal_hash_ok: None,
        endorsements: Vec::new(),
        endorsements_ok: None,
        endorsement_policy_ok: None,
        error: None,
    };
    let tx = match Transaction::parse(envelope) {
        Ok(tx) => tx,
        Err(e) => {
            report.error = Some(e.to_string());
            return (report, None);
        }
    };
    report.tx_id = tx.tx_id().to_owned();
    report.header_type = HeaderType::try_from(tx.header_type())
        .map(|t| t.as_str_name().to_owned())
        .unwrap_or_else(|_| format!("UNKNOWN_{}", tx.header_type()));
    report.channel_id = tx.channel_id().to_owned();
    report.timestamp = tx.channel_header.timestamp.as_ref().map(rfc3339);
    let has_creator = !tx.creator().is_empty();
    if has_creator {
        report.tx_id_ok = Some(tx.tx_id_matches());
        if let Ok(sid) =
            decode::<medfabric_proto::msp::SerializedIdentity>("SerializedIdentity", tx.creator())
        {
            report.creator_msp = Some(sid.mspid);
        }
    }
    if let Some(endorser_tx) = tx.endorser() {
        report.chaincode = Some(endorser_tx.header_chaincode_id.name.clone());
        report.function = endorser_tx
            .invocation()
            .ok()
            .and_then(|spec| spec.chaincode_spec)
            .and_then(|spec| spec.input)
            .and_then(|input| input.args.first().map(|f| String::from_utf8_lossy(f).into_owned()));
        report.proposal_hash_ok = tx.proposal_hash_matches();
    }
    let Some(resources) = resources else { return (report, Some(Inspected { tx, endorsers: Vec::new() })) };
    if has_creator {
        match resources.msps.deserialize(tx.creator()) {
            Ok(identity) => {
                report.creator = Some(identity.certificate().common_name().to_owned());
                let verdict = identity.verify(&tx.payload, &tx.signature);
                report.creator_signature_ok = Some(verdict.is_ok());
                if let Err(e) = verdict {
                    report.error = Some(format!("creator signature: {e}"));
                }
            }
            Err(e) => {
                report.creator_signature_ok = Some(false);
                report.error = Some(format!("creator: {e}"));
            }
        }
    }
    // Fabric's policy input: the endorsers whose signature over `prp ‖ endorser` verifies,
    // each identity counted once.
    let mut endorsers = Vec::new();
    if let Some(endorser_tx) = tx.endorser() {
        let checks = endorser_tx.endorsement_checks(&resources.msps);
        report.endorsements = checks
            .iter()
            .map(|check| {
                let v = Verdict::of(check);
                EndorsementReport { msp_id: v.msp_id, endorser: v.name, signature_ok: v.ok, error: v.error }
            })
            .collect();
        let none_bad = report.endorsements.iter().all(|e| e.signature_ok != Some(false));
        report.endorsements_ok = Some(none_bad && !endorser_tx.endorsements.is_empty());
        endorsers = counted_identities(&checks);
    }
    (report, Some(Inspected { tx, endorsers }))
}

// ---------------------------------------------------------------------------------------

/// A problem found while verifying a ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub block: Option<u64>,
    pub tx: Option<usize>,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerSummary {
    pub channel_id: String,
    pub blocks: u64,
    pub first_block: Option<u64>,
    pub last_block: Option<u64>,
    pub txs: u64,
    /// Transactions per validation code recorded in TRANSACTIONS_FILTER.
    pub validation_codes: BTreeMap<String, u64>,
    /// Numbers consecutive, previous hashes chained, data hashes right.
    pub chain_ok: bool,
    /// Every block after genesis carries orderer signatures satisfying BlockValidation.
    pub signatures_ok: bool,
    /// Metadata consistent: LAST_CONFIG index, TRANSACTIONS_FILTER length.
    pub metadata_ok: bool,
    /// The recorded validation codes hold up: VALID transactions have good creator
    /// signatures, tx ids and proposal hashes, satisfy their endorsement policies, reuse
    /// no tx id and read nothing that changed; codes for creator signatures, tx ids,
    /// proposal hashes, duplicates, policies, MVCC and phantom reads are re-derived.
    pub transactions_ok: bool,
    /// MVCC/phantom verdicts and "new tx id" claims need the whole history: they are
    /// re-checked only when the walk starts at block 0.
    pub state_replayed: bool,
    pub problems: usize,
    pub first_problem: Option<Problem>,
    pub ok: bool,
}

/// Walks a ledger block by block from a config block.
#[derive(Debug)]
pub struct LedgerVerifier {
    resources: ChannelResources,
    registry: ChaincodeRegistry,
    key_policies: KeyPolicies,
    /// `_lifecycle` writes of the current block's valid transactions (effective at its end).
    pending_lifecycle: Vec<medfabric_proto::kvrwset::KvWrite>,
    state: StateVersions,
    seen_tx_ids: HashSet<String>,
    previous: Option<(u64, [u8; 32])>,
    last_config_block: Option<u64>,
    summary: LedgerSummary,
}

enum Kind {
    Chain,
    Signatures,
    Metadata,
    Transactions,
}

impl LedgerVerifier {
    /// Starts from the channel config found in `config_block`.
    pub fn new(config_block: &Block) -> Result<Self, ConvertError> {
        let resources = ChannelResources::from_config_block(config_block)?;
        let registry = ChaincodeRegistry::from_config(&resources.config)?;
        Ok(Self {
            summary: LedgerSummary {
                channel_id: resources.config.channel_id.clone(),
                blocks: 0,
                first_block: None,
                last_block: None,
                txs: 0,
                validation_codes: BTreeMap::new(),
                chain_ok: true,
                signatures_ok: true,
                metadata_ok: true,
                transactions_ok: true,
                state_replayed: false,
                problems: 0,
                first_problem: None,
                ok: true,
            },
            // Known once the walk meets a config block (the genesis block is one).
            last_config_block: None,
            resources,
            registry,
            key_policies: KeyPolicies::default(),
            pending_lifecycle: Vec::new(),
            state: StateVersions::default(),
            seen_tx_ids: HashSet::new(),
            previous: None,
        })
    }

    fn problem(&mut self, kind: Kind, block: Option<u64>, tx: Option<usize>, problem: String) {
        match kind {
            Kind::Chain => self.summary.chain_ok = false,
            Kind::Signatures => self.summary.signatures_ok = false,
            Kind::Metadata => self.summary.metadata_ok = false,
            Kind::Transactions => self.summary.transactions_ok = false,
        }
        self.summary.problems += 1;
        self.summary.ok = false;
        if self.summary.first_problem.is_none() {
            self.summary.first_problem = Some(Problem { block, tx, problem });
        }
    }

    fn tx_problem(&mut self, block: u64, tx: usize, problem: String) {
        self.problem(Kind::Transactions, Some(block), Some(tx), problem);
    }

    /// Records a block file that could not be read or decoded.
    pub fn unreadable(&mut self, what: &str, why: &str) {
        self.problem(Kind::Chain, None, None, format!("{what}: {why}"));
    }

    /// Verifies the next block of the ledger (blocks must come in order).
    pub fn verify(&mut self, bytes: &[u8]) -> Option<BlockReport> {
        match block::decode_block(bytes) {
            Ok(block) => Some(self.verify_block(&block)),
            Err(e) => {
                let next = self.previous.and_then(|(n, _)| n.checked_add(1));
                self.problem(Kind::Chain, next, None, format!("block does not decode: {e}"));
                None
            }
        }
    }

    /// Verifies the next block, already decoded.
    pub fn verify_block(&mut self, block: &Block) -> BlockReport {
        let (mut report, parsed) = inspect_decoded(block, Some(&self.resources));
        let number = report.number;
        let header = block::header(block);
        self.summary.blocks += 1;
        if self.summary.first_block.is_none() {
            self.summary.first_block = Some(number);
            self.summary.state_replayed = number == 0;
        }
        self.summary.last_block = Some(number);
        match self.previous {
            Some((previous, hash)) => {
                if previous.checked_add(1) != Some(number) {
                    self.problem(
                        Kind::Chain,
                        Some(number),
                        None,
                        format!("block number {number} follows block {previous}"),
                    );
                } else if header.previous_hash.as_ref() != hash.as_slice() {
                    self.problem(
                        Kind::Chain,
                        Some(number),
                        None,
                        format!("previous_hash does not match the header hash of block {previous}"),
                    );
                }
            }
            None if number == 0 && !header.previous_hash.is_empty() => {
                self.problem(Kind::Chain, Some(0), None, "genesis block has a previous_hash".into());
            }
            None => {}
        }
        if !report.data_hash_ok {
            self.problem(
                Kind::Chain,
                Some(number),
                None,
                "data_hash does not match the block's transactions".into(),
            );
        }
        if number > 0 || !report.signatures.is_empty() {
            if let Some(bad) = report.signatures.iter().position(|s| s.signature_ok == Some(false)) {
                let why = report.signatures[bad].error.clone().unwrap_or_default();
                self.problem(
                    Kind::Signatures,
                    Some(number),
                    None,
                    format!("orderer signature {bad} does not verify: {why}"),
                );
            } else if report.signatures_ok != Some(true) {
                self.problem(
                    Kind::Signatures,
                    Some(number),
                    None,
                    format!("orderer signatures do not satisfy {BLOCK_VALIDATION_POLICY}"),
                );
            }
        }
        let filter = block::transactions_filter(block).to_vec();
        if !filter.is_empty() && filter.len() != report.tx_count {
            self.problem(
                Kind::Metadata,
                Some(number),
                None,
                format!(
                    "TRANSACTIONS_FILTER has {} entries for {} transactions",
                    filter.len(),
                    report.tx_count
                ),
            );
        }
        let mut new_config = None;
        for (index, inspected) in parsed.into_iter().enumerate() {
            self.summary.txs += 1;
            let code = filter.get(index).copied();
            let name = code.map(validation_code_name).unwrap_or_else(|| "NOT_RECORDED".into());
            *self.summary.validation_codes.entry(name).or_default() += 1;
            let Some(Inspected { tx, endorsers }) = inspected else {
                if code == Some(TxValidationCode::Valid as u8) {
                    self.tx_problem(number, index, "marked VALID but the envelope is malformed".into());
                }
                continue;
            };
            let policy_ok = self.check_tx(number, index, &tx, &endorsers, &report.txs[index], code);
            report.txs[index].endorsement_policy_ok = policy_ok;
            if matches!(tx.body, TransactionBody::Config(_)) && code.is_none_or(|c| c == 0) {
                new_config = Some(tx);
            }
        }
        // What this block's valid transactions changed applies from the next block on.
        let lifecycle = std::mem::take(&mut self.pending_lifecycle);
        if let Err(e) = self.registry.apply_lifecycle_writes(&lifecycle) {
            self.problem(
                Kind::Transactions,
                Some(number),
                None,
                format!("lifecycle write does not decode: {e}"),
            );
        }
        self.key_policies.end_block();
        self.state.end_block();
        let expected_last_config = if new_config.is_some() { Some(number) } else { self.last_config_block };
        if let (Some(recorded), Some(expected)) = (report.last_config_index, expected_last_config)
            && recorded != expected
        {
            self.problem(
                Kind::Metadata,
                Some(number),
                None,
                format!("LAST_CONFIG index {recorded}, expected {expected}"),
            );
        }
        if let Some(tx) = new_config {
            self.last_config_block = Some(number);
            if number > 0 {
                self.apply_config(number, &tx);
            }
        }
        self.previous = Some((number, header_hash(header)));
        report
    }

    /// Checks one transaction against the code the ledger gave it, in Fabric's order:
    /// envelope checks, duplicate tx ids, endorsement policies, then MVCC and phantom
    /// reads against the replayed state. Returns the endorsement-policy verdict for
    /// transactions that reached that stage. A VALID transaction's writes are applied.
    fn check_tx(
        &mut self,
        number: u64,
        index: usize,
        tx: &Transaction,
        endorsers: &[Arc<Identity>],
        report: &TxReport,
        code: Option<u8>,
    ) -> Option<bool> {
        use TxValidationCode as Code;
        let code = code?;
        let name = validation_code_name(code);
        let valid = code == Code::Valid as u8;
        let endorser_tx = tx.endorser();

        // Envelope-level facts against the codes that claim them.
        if valid {
            if report.creator_signature_ok == Some(false) {
                self.tx_problem(
                    number,
                    index,
                    "marked VALID but its creator signature does not verify".into(),
                );
            }
            if let Some(etx) = endorser_tx {
                let header = &tx.channel_header;
                let mut wrong = Vec::new();
                if report.tx_id_ok != Some(true) {
                    wrong.push("its tx id is not hex(SHA-256(nonce || creator))");
                }
                if report.proposal_hash_ok != Some(true) {
                    wrong.push("its proposal hash does not match its header");
                }
                if tx.signature_header.nonce.is_empty() || tx.creator().is_empty() || header.epoch != 0 {
                    wrong.push("its header lacks a nonce or creator, or has a non-zero epoch");
                }
                if etx.action.chaincode_id.as_ref().map(|c| c.name.as_str())
                    != Some(etx.header_chaincode_id.name.as_str())
                {
                    wrong.push("its action names another chaincode than its header");
                }
                for why in wrong {
                    self.tx_problem(number, index, format!("marked VALID but {why}"));
                }
            }
        }
        let refuted = match Code::try_from(i32::from(code)) {
            Ok(Code::BadCreatorSignature) => report.creator_signature_ok == Some(true),
            Ok(Code::BadProposalTxid) => report.tx_id_ok == Some(true),
            Ok(Code::InvalidEndorserTransaction) => report.proposal_hash_ok == Some(true),
            _ => false,
        };
        if refuted {
            self.tx_problem(number, index, format!("marked {name} but the envelope shows no such fault"));
        }
        let etx = endorser_tx?;

        // Duplicate tx ids: in an earlier block or earlier in this one.
        let duplicate = !tx.tx_id().is_empty() && !self.seen_tx_ids.insert(tx.tx_id().to_owned());
        let policy_stage =
            [Code::Valid, Code::EndorsementPolicyFailure, Code::MvccReadConflict, Code::PhantomReadConflict];
        let reached_policy = policy_stage.iter().any(|c| *c as u8 == code);
        if duplicate && reached_policy {
            self.tx_problem(number, index, format!("marked {name} but its tx id is already in the ledger"));
        }
        if !duplicate && code == Code::DuplicateTxid as u8 && self.summary.state_replayed {
            self.tx_problem(number, index, "marked DUPLICATE_TXID but its tx id is new".into());
        }
        if !reached_policy {
            return None;
        }
        let rwset = match etx.rwset() {
            Ok(rwset) => rwset,
            Err(e) => {
                self.tx_problem(number, index, format!("marked {name} but its rw-set does not decode: {e}"));
                return Some(false);
            }
        };

        // Endorsement policies.
        let verdict = check_endorsement(
            &etx.header_chaincode_id.name,
            &rwset,
            endorsers,
            &self.registry,
            &self.key_policies,
            &self.resources,
        );
        let policy_ok = match verdict {
            Ok(None) => true,
            Ok(Some(why)) => {
                if code != Code::EndorsementPolicyFailure as u8 {
                    self.tx_problem(number, index, format!("marked {name} but {why}"));
                }
                false
            }
            Err(e) => {
                self.tx_problem(number, index, format!("its policies cannot be checked: {e}"));
                false
            }
        };
        if policy_ok && code == Code::EndorsementPolicyFailure as u8 {
            self.tx_problem(
                number,
                index,
                "marked ENDORSEMENT_POLICY_FAILURE but its endorsements satisfy every policy".into(),
            );
        }

        // MVCC and phantom reads against the replayed state.
        if self.summary.state_replayed && code != Code::EndorsementPolicyFailure as u8 {
            match self.state.check(&rwset) {
                Ok(conflict) => {
                    let agrees = matches!(
                        (&conflict, Code::try_from(i32::from(code))),
                        (None, Ok(Code::Valid))
                            | (Some(Conflict::Mvcc(_)), Ok(Code::MvccReadConflict))
                            | (Some(Conflict::Phantom(_)), Ok(Code::PhantomReadConflict))
                    );
                    if !agrees {
                        let found = match conflict {
                            None => "its reads still hold".to_owned(),
                            Some(Conflict::Mvcc(why) | Conflict::Phantom(why)) => why,
                        };
                        self.tx_problem(number, index, format!("marked {name} but {found}"));
                    }
                }
                Err(e) => self.tx_problem(number, index, format!("its reads cannot be checked: {e}")),
            }
        }

        if valid {
            if let Err(e) = self.state.apply(&rwset, number, index as u64) {
                self.tx_problem(number, index, format!("its writes cannot be applied: {e}"));
            }
            for ns in &rwset.ns_rwset {
                let Ok(kv) = decode::<KvrwSet>("KVRWSet", &ns.rwset) else { continue };
                if ns.namespace == LIFECYCLE_NAMESPACE {
                    self.pending_lifecycle.extend(kv.writes.iter().cloned());
                }
            }
            if let Ok(sets) = crate::replay::decoded(&rwset) {
                self.key_policies.apply(&crate::replay::ns_reads(&sets));
            }
        }
        Some(policy_ok)
    }

    fn apply_config(&mut self, number: u64, tx: &Transaction) {
        let TransactionBody::Config(envelope) = &tx.body else { return };
        let Some(config) = envelope.config.clone() else {
            self.problem(
                Kind::Transactions,
                Some(number),
                Some(0),
                "config transaction carries no config".into(),
            );
            return;
        };
        let expected_sequence = self.resources.config.sequence + 1;
        if config.sequence != expected_sequence {
            self.problem(
                Kind::Transactions,
                Some(number),
                Some(0),
                format!("config sequence {} follows {}", config.sequence, self.resources.config.sequence),
            );
        }
        match ChannelResources::from_config(tx.channel_id(), config) {
            Ok(resources) => {
                if let Err(e) = self.registry.update_from_config(&resources.config) {
                    self.problem(
                        Kind::Transactions,
                        Some(number),
                        Some(0),
                        format!("config chaincode definitions: {e}"),
                    );
                }
                self.resources = resources;
            }
            Err(e) => {
                self.problem(Kind::Transactions, Some(number), Some(0), format!("config does not load: {e}"))
            }
        }
    }

    pub fn finish(self) -> LedgerSummary {
        let mut summary = self.summary;
        if summary.blocks == 0 {
            summary.ok = false;
            summary.chain_ok = false;
            if summary.first_problem.is_none() {
                summary.problems += 1;
                summary.first_problem =
                    Some(Problem { block: None, tx: None, problem: "no blocks to verify".into() });
            }
        }
        summary
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T01:04:46.000Z` (the epoch for a time
/// outside years 1-9999).
fn rfc3339(ts: &prost_types::Timestamp) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ts.seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ts.nanos.clamp(0, 999_999_999) / 1_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_render_as_rfc3339() {
        let ts = prost_types::Timestamp { seconds: 1_795_482_286, nanos: 0 };
        assert_eq!(rfc3339(&ts), "2026-11-24T01:04:46.000Z");
        assert_eq!(
            rfc3339(&prost_types::Timestamp { seconds: 0, nanos: 5_000_000 }),
            "1970-01-01T00:00:00.005Z"
        );
    }
}
