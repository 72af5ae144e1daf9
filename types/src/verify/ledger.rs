//! The ledger walk: block after block from a config block, the hash chain, orderer
//! signatures and metadata, and each transaction's recorded code re-derived in Fabric's
//! validation order against the replayed state.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use medfabric_msp::Identity;
use medfabric_proto::common::{Block, BlockHeader};
use medfabric_proto::kvrwset::KvrwSet;
use medfabric_proto::protos::TxValidationCode;
use medfabric_proto::rwset::TxReadWriteSet;
use serde::Serialize;

use super::{BLOCK_VALIDATION_POLICY, BlockReport, Inspected, TxReport, inspect_decoded};
use crate::block::{self, header_hash};
use crate::config::ChannelResources;
use crate::error::{ConvertError, decode};
use crate::lifecycle::{ChaincodeRegistry, KeyPolicies, LIFECYCLE_NAMESPACE, check_endorsement};
use crate::replay::{Conflict, StateVersions};
use crate::transaction::{EndorserTransaction, Transaction, TransactionBody};
use crate::validation_code_name;

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
        self.check_chain(number, header, &report);
        self.check_block_signatures(number, &report);
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
        let new_config = self.check_transactions(number, parsed, &filter, &mut report);
        self.end_block(number, &report, new_config);
        self.previous = Some((number, header_hash(header)));
        report
    }

    /// The block's place in the chain: its number follows, its previous hash is the
    /// header hash of the block before, and its data hash is right.
    fn check_chain(&mut self, number: u64, header: &BlockHeader, report: &BlockReport) {
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
    }

    /// The orderer signatures (every block after genesis, and a genesis block that has
    /// any): each verifies and together they satisfy BlockValidation.
    fn check_block_signatures(&mut self, number: u64, report: &BlockReport) {
        if number == 0 && report.signatures.is_empty() {
            return;
        }
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

    /// Checks each transaction against its recorded code; returns the block's valid
    /// config transaction, if it has one.
    fn check_transactions(
        &mut self,
        number: u64,
        parsed: Vec<Option<Inspected>>,
        filter: &[u8],
        report: &mut BlockReport,
    ) -> Option<Transaction> {
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
        new_config
    }

    /// The end of a block: what its valid transactions changed takes effect, its
    /// LAST_CONFIG index is checked, and a new config applies from the next block on.
    fn end_block(&mut self, number: u64, report: &BlockReport, new_config: Option<Transaction>) {
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
        self.check_envelope_claims(number, index, tx, report, code);
        let etx = tx.endorser()?;
        if !self.check_tx_id(number, index, tx, code) {
            return None;
        }
        let rwset = match etx.rwset() {
            Ok(rwset) => rwset,
            Err(e) => {
                self.tx_problem(number, index, format!("marked {name} but its rw-set does not decode: {e}"));
                return Some(false);
            }
        };
        let policy_ok = self.check_policies(number, index, etx, &rwset, endorsers, code);
        if self.summary.state_replayed && code != Code::EndorsementPolicyFailure as u8 {
            self.check_reads(number, index, &rwset, code);
        }
        if code == Code::Valid as u8 {
            self.apply_valid(number, index, &rwset);
        }
        Some(policy_ok)
    }

    /// Envelope-level facts against the codes that claim them: a VALID transaction's
    /// creator signature, tx id, proposal hash and header hold; a code naming one of
    /// those faults is refuted when the envelope shows none.
    fn check_envelope_claims(
        &mut self,
        number: u64,
        index: usize,
        tx: &Transaction,
        report: &TxReport,
        code: u8,
    ) {
        use TxValidationCode as Code;
        let name = validation_code_name(code);
        if code == Code::Valid as u8 {
            if report.creator_signature_ok == Some(false) {
                self.tx_problem(
                    number,
                    index,
                    "marked VALID but its creator signature does not verify".into(),
                );
            }
            if let Some(etx) = tx.endorser() {
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
    }

    /// Duplicate tx ids, in an earlier block or earlier in this one, against the code.
    /// Returns whether the transaction reached the endorsement-policy stage.
    fn check_tx_id(&mut self, number: u64, index: usize, tx: &Transaction, code: u8) -> bool {
        use TxValidationCode as Code;
        let name = validation_code_name(code);
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
        reached_policy
    }

    /// The endorsement policies (chaincode, collection and key-level) against the code;
    /// returns whether the endorsements satisfy them.
    fn check_policies(
        &mut self,
        number: u64,
        index: usize,
        etx: &EndorserTransaction,
        rwset: &TxReadWriteSet,
        endorsers: &[Arc<Identity>],
        code: u8,
    ) -> bool {
        use TxValidationCode as Code;
        let name = validation_code_name(code);
        let verdict = check_endorsement(
            &etx.header_chaincode_id.name,
            rwset,
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
        policy_ok
    }

    /// MVCC and phantom reads against the replayed state, against the code.
    fn check_reads(&mut self, number: u64, index: usize, rwset: &TxReadWriteSet, code: u8) {
        use TxValidationCode as Code;
        let name = validation_code_name(code);
        match self.state.check(rwset) {
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

    /// A valid transaction's writes: state versions, `_lifecycle` writes (effective at
    /// the block's end) and key-level policy changes.
    fn apply_valid(&mut self, number: u64, index: usize, rwset: &TxReadWriteSet) {
        if let Err(e) = self.state.apply(rwset, number, index as u64) {
            self.tx_problem(number, index, format!("its writes cannot be applied: {e}"));
        }
        for ns in &rwset.ns_rwset {
            let Ok(kv) = decode::<KvrwSet>("KVRWSet", &ns.rwset) else { continue };
            if ns.namespace == LIFECYCLE_NAMESPACE {
                self.pending_lifecycle.extend(kv.writes.iter().cloned());
            }
        }
        if let Ok(sets) = crate::replay::decoded(rwset) {
            self.key_policies.apply(&crate::replay::ns_reads(&sets));
        }
    }

    /// A config block's config applies from the next block on, once it is shown to be
    /// authorised: the next sequence, produced exactly by its `last_update`, whose
    /// signatures satisfy the mod_policies of what it changes under the config before.
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
        if let Err(e) = crate::configtx::validate(&self.resources, envelope) {
            // The walk goes on under the config before it: nothing authorised this one's
            // MSPs and policies to judge what follows.
            self.problem(
                Kind::Transactions,
                Some(number),
                Some(0),
                format!("config update not authorised by the config before it: {e}"),
            );
            return;
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
