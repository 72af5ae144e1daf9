//! The medical chaincode from a client: typed calls, with record encryption done here
//! ([`crate::records`]) so that plaintext never leaves the client.
//!
//! Writes that carry ciphertext go to the record custodian's private collection; their
//! endorsers are named explicitly (the custodian and one more organization, as the
//! chaincode policy needs two): the transient data they see is ciphertext and the two key
//! wraps (the patient's and the custodian's record key). Reading a record is an evaluate
//! on the custodian's peer, the only one holding the ciphertext and the record key: under
//! a live grant it wraps the data key to the reader's certificate key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::gateway::{ClientError, Contract, code_name};
use medfabric_medical_api::io::{
    AccessInput, Balance, Ciphertext, ClaimInput, EraseInput, PatientInput, RecordInput, RecordKeyInfo,
    SealedRead, SensitiveLabels,
};
use medfabric_medical_api::model::{Patient, RecordMeta};
use medfabric_medical_api::names::{
    AUDIT_AAD, PATIENT_HOLDER, READ_AAD, TRANSIENT_CIPHERTEXT, TRANSIENT_JUSTIFICATION, TRANSIENT_NOTE,
    TRANSIENT_REASON, TRANSIENT_RESPONSE_KEY, TRANSIENT_SALT, TRANSIENT_SENSITIVE_LABELS,
    TRANSIENT_WRAPPED_KEYS, consent_statement, org_holder,
};
use medfabric_medical_api::vocab::SENSITIVE;
use serde::de::DeserializeOwned;

use crate::records::{self, DataKey};

/// One identity's view of the medical chaincode.
#[derive(Debug, Clone)]
pub struct Medical {
    contract: Contract,
    msp_dir: PathBuf,
    actor: String,
}

/// A new record: the plaintext is encrypted here.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub record_id: String,
    pub patient_id: String,
    pub resource_type: String,
    pub data_class: String,
    pub security_labels: Vec<String>,
    pub plaintext: Vec<u8>,
}

/// A holder of a record's stored key wrap: its name in the chaincode (`patient` or
/// `org:MSPID`) and its P-256 public key (uncompressed SEC1).
#[derive(Debug, Clone)]
pub struct Reader {
    pub name: String,
    pub public_key: Vec<u8>,
}

/// A decrypted record.
#[derive(Debug, Clone)]
pub struct Opened {
    pub record_id: String,
    pub version: u32,
    pub plaintext: Vec<u8>,
    /// Whose wrapped key opened it.
    pub key_holder: String,
}

fn describe(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Gateway { message, details, .. } => {
            let from: Vec<String> = details.iter().map(|d| d.message.clone()).collect();
            anyhow!(
                "{message}{}",
                if from.is_empty() { String::new() } else { format!(": {}", from.join("; ")) }
            )
        }
        other => anyhow!("{other}"),
    }
}

impl Medical {
    /// `actor` is `MSPID/enrollmentID` of the identity behind `contract`; `msp_dir` holds
    /// its private key (for unwrapping record keys).
    pub fn new(contract: Contract, msp_dir: &Path, actor: &str) -> Self {
        Self { contract, msp_dir: msp_dir.to_owned(), actor: actor.to_owned() }
    }

    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn contract(&self) -> &Contract {
        &self.contract
    }

    /// Submits `function(args)`: endorse (on `orgs`, or as the gateway plans), order,
    /// wait for the commit; the result as JSON (or a JSON string).
    pub async fn submit(
        &self,
        function: &str,
        args: &[String],
        transient: &[(&str, Vec<u8>)],
        orgs: &[&str],
    ) -> Result<Value> {
        let draft = transient
            .iter()
            .fold(self.contract.proposal_builder(function, args), |d, (k, v)| d.transient(k, v.clone()))
            .endorsing_organizations(orgs);
        let proposal = draft.signed(self.contract.network().gateway().signer());
        let transaction = proposal.endorse().await.map_err(describe)?;
        let result = transaction.result.clone();
        let status = transaction.submit().await.map_err(describe)?.status().await.map_err(describe)?;
        if !status.is_valid() {
            bail!(
                "transaction {} was not committed: {} in block {}",
                status.tx_id,
                code_name(status.code),
                status.block_number
            );
        }
        Ok(parse(&result))
    }

    /// Evaluates `function(args)` (on `orgs`' peers when given).
    pub async fn evaluate(&self, function: &str, args: &[String], orgs: &[&str]) -> Result<Value> {
        let proposal = self
            .contract
            .proposal_builder(function, args)
            .endorsing_organizations(orgs)
            .signed(self.contract.network().gateway().signer());
        let result = proposal.evaluate().await.map_err(describe)?;
        Ok(parse(&result))
    }

    /// Submits with JSON arguments: an array is the positional arguments, anything
    /// else the one argument (strings go as raw text).
    pub async fn call(&self, function: &str, args: &Value) -> Result<Value> {
        self.submit(function, &positional(args), &[], &[]).await
    }

    /// Evaluates with JSON arguments (as [`Medical::call`]).
    pub async fn query(&self, function: &str, args: &Value) -> Result<Value> {
        self.evaluate(function, &positional(args), &[]).await
    }

    pub async fn register_patient(
        &self,
        patient_id: &str,
        custodian: &str,
        public_key: &[u8],
    ) -> Result<Value> {
        let input = PatientInput {
            patient_id: patient_id.to_owned(),
            custodian: custodian.to_owned(),
            public_key: hex::encode(public_key),
        };
        self.call("register_patient", &serde_json::to_value(input)?).await
    }

    /// The two holders a record's data key is wrapped for: the patient (their registered
    /// key, from the ledger) and the custodian organization's record key (from the channel
    /// config, through the chaincode). Nobody else: grantees get it through `read_record`.
    pub async fn record_holders(&self, patient_id: &str, custodian: &str) -> Result<Vec<Reader>> {
        let patient: Patient = typed(&self.query("get_patient", &json!(patient_id)).await?, "get_patient")?;
        let org: RecordKeyInfo = typed(&self.query("record_key", &json!(custodian)).await?, "record_key")?;
        let key = |hex_key: &str, what: &str| -> Result<Vec<u8>> {
            hex::decode(hex_key).with_context(|| format!("{what}'s public key hex"))
        };
        Ok(vec![
            Reader { name: PATIENT_HOLDER.into(), public_key: key(&patient.public_key, "the patient")? },
            Reader { name: org_holder(custodian), public_key: key(&org.public_key, "the record key")? },
        ])
    }

    /// Encrypts and stores a record (version 1), its key wrapped for the patient and the
    /// custodian's record key only; endorsed by the patient's custodian and `second_org`.
    /// The transient data reaches both endorsers: for a record with sensitive labels, make
    /// `second_org` a member of the custodian's audit collection (a regulator organization).
    pub async fn create_record(
        &self,
        record: &NewRecord,
        custodian: &str,
        second_org: &str,
    ) -> Result<Value> {
        let holders = self.record_holders(&record.patient_id, custodian).await?;
        let key = DataKey::generate()?;
        let aad = records::associated_data(&record.record_id, 1, &record.patient_id);
        let ciphertext = records::seal(&key, &record.plaintext, &aad)?;
        let mut wrapped = serde_json::Map::new();
        for holder in &holders {
            let sealed = records::wrap(&key, &holder.public_key, &record.record_id, 1)
                .with_context(|| format!("wrapping the key for {}", holder.name))?;
            wrapped.insert(holder.name.clone(), Value::String(hex::encode(sealed)));
        }
        // Sensitive labels (HIV, PSY, …) identify a condition: they travel in the transient
        // map, salted, into the custodian's audit collection; the public metadata keeps the
        // confidentiality codes only.
        let (sensitive, public): (Vec<String>, Vec<String>) =
            record.security_labels.iter().cloned().partition(|l| SENSITIVE.contains(&l.as_str()));
        let mut salt = [0u8; 32];
        getrandom::fill(&mut salt).map_err(|e| anyhow!("OS random source: {e}"))?;
        let labels = serde_json::to_vec(&SensitiveLabels { labels: sensitive, salt: hex::encode(salt) })?;
        let input = RecordInput {
            record_id: record.record_id.clone(),
            patient_id: record.patient_id.clone(),
            resource_type: record.resource_type.clone(),
            data_class: record.data_class.clone(),
            security_labels: public,
            commitment: records::commitment(&key, &ciphertext),
        };
        let transient = [
            (TRANSIENT_CIPHERTEXT, ciphertext),
            (TRANSIENT_WRAPPED_KEYS, Value::Object(wrapped).to_string().into_bytes()),
            (TRANSIENT_SENSITIVE_LABELS, labels),
        ];
        let orgs = endorsers(custodian, second_org);
        let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
        self.submit("create_record", &[serde_json::to_string(&input)?], &transient, &orgs).await
    }

    /// Reads the latest version on the custodian's peer and decrypts it with this
    /// identity's key; checks the commitment on chain.
    pub async fn read_record(&self, record_id: &str, custodian: &str) -> Result<Opened> {
        let found = self.fetch_record(record_id, custodian).await?;
        let version = found.version;
        let ciphertext = hex::decode(&found.ciphertext).context("ciphertext hex")?;
        let wrapped = hex::decode(&found.wrapped_key).context("wrapped key hex")?;
        let private_key = records::private_key_of(&self.msp_dir)?;
        let key = records::unwrap(&wrapped, &private_key, record_id, version)?;
        // Checked against the ledger, not the answer: whoever saw the response key on the
        // way could have forged a consistent answer.
        let ledger: RecordMeta = typed(&self.query("get_record", &json!(record_id)).await?, "get_record")?;
        if ledger.version != version
            || found.record_id != record_id
            || records::commitment(&key, &ciphertext) != ledger.commitment
        {
            bail!("the ciphertext of {record_id} does not match its version and commitment on the ledger");
        }
        let aad = records::associated_data(record_id, version, &found.patient_id);
        let plaintext = records::open(&key, &ciphertext, &aad)?;
        Ok(Opened { record_id: record_id.to_owned(), version, plaintext, key_holder: found.key_holder })
    }

    /// The chaincode's `read_record` answer (ciphertext and this identity's wrapped key,
    /// still encrypted), evaluated on the custodian's peer. The chaincode seals it to a
    /// one-time key sent in the transient map, so that even a submitted read would leave
    /// nothing usable in a block; this opens it.
    pub async fn fetch_record(&self, record_id: &str, custodian: &str) -> Result<Ciphertext> {
        let mut response_key = [0u8; 32];
        getrandom::fill(&mut response_key).map_err(|e| anyhow!("OS random source: {e}"))?;
        let result = self
            .contract
            .proposal_builder("read_record", &[record_id])
            .transient(TRANSIENT_RESPONSE_KEY, response_key.to_vec())
            .endorsing_organizations(&[custodian])
            .signed(self.contract.network().gateway().signer())
            .evaluate()
            .await
            .map_err(describe)?;
        open_read(&response_key, &parse(&result))
    }
}

/// Typed calls for the rest of the chaincode (each submits, or evaluates for reads).
impl Medical {
    /// Grants a consent: `terms` as the chaincode takes them (a `template` with
    /// `grantee`/`classes`/`fee`, or full `terms`).
    pub async fn grant_consent(&self, patient_id: &str, consent_id: &str, terms: Value) -> Result<Value> {
        self.call("grant_consent", &merge(json!({"patient_id": patient_id, "consent_id": consent_id}), terms))
            .await
    }

    pub async fn update_consent(&self, patient_id: &str, consent_id: &str, terms: Value) -> Result<Value> {
        self.call(
            "update_consent",
            &merge(json!({"patient_id": patient_id, "consent_id": consent_id}), terms),
        )
        .await
    }

    /// The patient's side of a consent a provider records for them: signs the action
    /// (`grant`, `update` or `revoke`) creating consent version `version` with this
    /// identity's key, the one the patient registered. The result is the argument of
    /// [`Medical::record_signed_consent`].
    pub fn sign_consent(&self, action: &str, version: u32, input: &Value) -> Result<Value> {
        let mut document = input.clone();
        let Some(fields) = document.as_object_mut() else { bail!("a consent input is a JSON object") };
        fields.insert("action".into(), json!(action));
        fields.insert("version".into(), json!(version));
        let document = serde_json::to_string(&document)?;
        let statement = consent_statement(&document);
        let signature = self.contract.network().gateway().signer().sign(statement.as_bytes());
        Ok(json!({"document": document, "signature": hex::encode(signature)}))
    }

    /// A provider of the custodian records a consent action the patient signed.
    pub async fn record_signed_consent(&self, signed: &Value) -> Result<Value> {
        self.call("record_signed_consent", signed).await
    }

    pub async fn revoke_consent(&self, patient_id: &str, consent_id: &str) -> Result<Value> {
        self.call("revoke_consent", &json!([patient_id, consent_id])).await
    }

    /// Requests access for a purpose (a justification makes an ETREAT request
    /// break-glass). The justification is free text about the patient: it travels in
    /// the transient map and is kept in the custodian's audit collection, never in a
    /// block.
    pub async fn request_access(
        &self,
        record_id: &str,
        purpose: &str,
        justification: Option<&str>,
    ) -> Result<Value> {
        self.request_access_under(record_id, purpose, justification, None).await
    }

    /// [`Medical::request_access`] under a named consent of the patient (needed for one that
    /// names sensitive labels).
    pub async fn request_access_under(
        &self,
        record_id: &str,
        purpose: &str,
        justification: Option<&str>,
        consent_id: Option<&str>,
    ) -> Result<Value> {
        let input = AccessInput {
            record_id: record_id.to_owned(),
            purpose: purpose.to_owned(),
            justification: None,
            consent_id: consent_id.map(str::to_owned),
        };
        let mut transient: Vec<(&str, Vec<u8>)> = Vec::new();
        if let Some(text) = justification {
            transient.push((TRANSIENT_JUSTIFICATION, text.as_bytes().to_vec()));
            transient.push(salt()?);
        }
        self.submit("request_access", &[serde_json::to_string(&input)?], &transient, &[]).await
    }

    /// Reviews a break-glass access; the note travels like a justification.
    pub async fn review_break_glass(&self, event_id: &str, note: &str) -> Result<Value> {
        let transient = [(TRANSIENT_NOTE, note.as_bytes().to_vec()), salt()?];
        self.submit("review_break_glass", &[event_id.to_owned()], &transient, &[]).await
    }

    /// A payer records money entering the ledger for `account`.
    pub async fn deposit(&self, account: &str, amount: u64) -> Result<Value> {
        self.call("deposit", &json!([account, amount])).await
    }

    pub async fn transfer(&self, to: &str, amount: u64) -> Result<Value> {
        self.call("transfer", &json!([to, amount])).await
    }

    pub async fn balance(&self, account: &str) -> Result<u64> {
        let found: Balance = typed(&self.query("balance", &json!(account)).await?, "balance")?;
        Ok(found.balance)
    }

    pub async fn settle(&self, access_id: &str) -> Result<Value> {
        self.call("settle", &json!(access_id)).await
    }

    pub async fn refund(&self, access_id: &str) -> Result<Value> {
        self.call("refund", &json!(access_id)).await
    }

    pub async fn submit_claim(
        &self,
        claim_id: &str,
        record_id: &str,
        payer_org: &str,
        amount: u64,
    ) -> Result<Value> {
        let input = ClaimInput {
            claim_id: claim_id.to_owned(),
            encounter_record: record_id.to_owned(),
            payer_org: payer_org.to_owned(),
            amount,
        };
        self.call("submit_claim", &serde_json::to_value(input)?).await
    }

    /// Approves `Some(amount)` or denies (`None`).
    pub async fn adjudicate_claim(&self, claim_id: &str, approve: Option<u64>) -> Result<Value> {
        self.call("adjudicate_claim", &json!([claim_id, approve.is_some(), approve.unwrap_or(0)])).await
    }

    pub async fn pay_claim(&self, claim_id: &str) -> Result<Value> {
        self.call("pay_claim", &json!(claim_id)).await
    }

    /// Crypto-shreds a record (endorsed by its custodian and `second_org`; the reason reaches
    /// both in the transient map).
    pub async fn erase_record(
        &self,
        record_id: &str,
        reason: &str,
        custodian: &str,
        second_org: &str,
    ) -> Result<Value> {
        // The reason is free text: transient, into the custodian's audit collection.
        let input =
            serde_json::to_string(&EraseInput { record_id: record_id.to_owned(), reason: String::new() })?;
        let orgs = endorsers(custodian, second_org);
        let orgs: Vec<&str> = orgs.iter().map(String::as_str).collect();
        let transient = [(TRANSIENT_REASON, reason.as_bytes().to_vec()), salt()?];
        self.submit("erase_record", &[input], &transient, &orgs).await
    }

    /// A regulator query (`disclosures`, `accesses_by_actor`, `accesses_by_org`,
    /// `accesses_to_record`, `break_glass`, `consent_history`, `payments_for_disclosures`,
    /// `erasures`): `query` holds `subject`, `from`, `to`, `page_size`, `bookmark`,
    /// `format` (`json` or `fhir`).
    pub async fn audit(&self, function: &str, query: Value) -> Result<Value> {
        // Free text (justifications, notes, reasons) comes only in an answer sealed to a
        // one-time key sent in the transient map.
        let mut response_key = [0u8; 32];
        getrandom::fill(&mut response_key).map_err(|e| anyhow!("OS random source: {e}"))?;
        let result = self
            .contract
            .proposal_builder(function, &[arg_text(&query)])
            .transient(TRANSIENT_RESPONSE_KEY, response_key.to_vec())
            .signed(self.contract.network().gateway().signer())
            .evaluate()
            .await
            .map_err(describe)?;
        open_sealed(&response_key, &parse(&result), &format!("{AUDIT_AAD}\0{function}"))
    }
}

/// Opens a sealed `read_record` answer ([`SealedRead`]: AES-256-GCM under the response
/// key, associated data `medfabric-read-v1 \0 record_id`).
pub fn open_read(response_key: &[u8; 32], sealed: &Value) -> Result<Ciphertext> {
    let header: SealedRead = typed(sealed, "read_record")?;
    let answer = open_sealed(response_key, sealed, &format!("{READ_AAD}\0{}", header.record_id))?;
    let answer: Ciphertext = typed(&answer, "the sealed read_record answer")?;
    if answer.record_id != header.record_id || answer.version != header.version {
        bail!(
            "the sealed answer is for {} v{}, not {} v{}",
            answer.record_id,
            answer.version,
            header.record_id,
            header.version
        );
    }
    Ok(answer)
}

/// Opens `{nonce, sealed}` (hex; AES-256-GCM under `response_key`, associated data `aad`).
pub fn open_sealed(response_key: &[u8; 32], sealed: &Value, aad: &str) -> Result<Value> {
    medfabric_medical_api::sealed::open(response_key, aad, sealed).map_err(anyhow::Error::msg)
}

/// A chaincode answer as the API type it is.
fn typed<T: DeserializeOwned>(value: &Value, function: &str) -> Result<T> {
    T::deserialize(value).with_context(|| format!("{function} answered {value}"))
}

/// The transient `salt` that comes with free text (32 random bytes, hex): its stored value's
/// hash in the block cannot then be matched against guessed texts.
fn salt() -> Result<(&'static str, Vec<u8>)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("OS random source: {e}"))?;
    Ok((TRANSIENT_SALT, hex::encode(bytes).into_bytes()))
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(target), Value::Object(items)) = (base.as_object_mut(), extra) {
        target.extend(items);
    }
    base
}

/// The custodian and another organization (the chaincode policy needs two).
fn endorsers(custodian: &str, second: &str) -> Vec<String> {
    if custodian == second {
        vec![custodian.to_owned()]
    } else {
        vec![custodian.to_owned(), second.to_owned()]
    }
}

fn arg_text(arg: &Value) -> String {
    match arg {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Chaincode arguments from JSON: an array's items, or the value itself.
pub fn positional(args: &Value) -> Vec<String> {
    match args {
        Value::Array(items) => items.iter().map(arg_text).collect(),
        Value::Null => Vec::new(),
        other => vec![arg_text(other)],
    }
}

fn parse(payload: &Bytes) -> Value {
    if payload.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}
