//! `medfabric demo`: the medical story on the consortium network
//! (`network-config/consortium.yaml`), each step printed with its result:
//! a hospital adds a patient's record (encrypted here, commitment on chain); the patient
//! grants a research site research consent with a fee and shares the record key; the
//! researcher requests access (fee escrowed, then settled), reads and decrypts; the
//! patient revokes and the next request is denied; an emergency break-glass read by
//! another hospital's provider; an insurance claim paid; the regulator's disclosure
//! report for the patient.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use medfabric_network::connect::public_key_of_user;
use medfabric_network::up::NetworkStatus;
use medfabric_sdk::medical::{Medical, NewRecord, Reader};

/// The consortium's actors, each through its own organization's gateway.
pub struct Cast {
    pub status: NetworkStatus,
    pub doctor: Medical,
    pub patient: Medical,
    pub researcher: Medical,
    pub lab: Medical,
    pub insurer: Medical,
    pub regulator: Medical,
}

/// What the story produced (for tests).
#[derive(Debug, Clone)]
pub struct Story {
    pub patient_id: String,
    pub record_id: String,
    pub plaintext: Vec<u8>,
    pub paid_access: String,
    pub break_glass_access: String,
    pub disclosures: Value,
}

fn step(n: usize, text: &str) {
    println!("\n[{n}] {text}");
}

/// What tech1 types when breaking the glass: free text about the patient, which only
/// the custodian's and the regulator's peers hold.
pub const BREAK_GLASS_JUSTIFICATION: &str = "patient unconscious in the lab's emergency unit";

/// Connects `user` (`name`) through its organization's first peer.
pub fn actor(status: &NetworkStatus, user: &str) -> Result<Medical> {
    let (who, peer) = medfabric_network::connect::pick(status, user, None)?;
    let contract =
        medfabric_network::connect::gateway(who, peer)?.network(&status.channel).contract("medical");
    Ok(Medical::new(contract, &who.msp_dir, &format!("{}/{}", who.org, who.name)))
}

impl Cast {
    pub fn new(status: NetworkStatus) -> Result<Self> {
        Ok(Self {
            doctor: actor(&status, "drgrey")?,
            patient: actor(&status, "patient1")?,
            researcher: actor(&status, "scientist1")?,
            lab: actor(&status, "tech1")?,
            insurer: actor(&status, "claims1")?,
            regulator: actor(&status, "inspector1")?,
            status,
        })
    }

    pub fn reader(&self, user: &str, name: &str) -> Result<Reader> {
        let user = self.status.user(user).with_context(|| format!("no user {user}"))?;
        Ok(Reader { name: name.to_owned(), public_key: public_key_of_user(user)? })
    }
}

fn show(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Brings the network up (from `config` if `data` has none) and tells the story.
pub async fn run(config: &Path, data: &Path) -> Result<Story> {
    step(1, "network up: the consortium (hospital, lab, insurer, research site, regulator; 3 Raft orderers)");
    let (config, data) = (config.to_owned(), data.to_owned());
    let status = tokio::task::spawn_blocking(move || medfabric_network::up::up(&config, &data)).await??;
    print!("{}", medfabric_network::up::describe(&status));
    let cast = Cast::new(status)?;
    tell(&cast).await
}

/// The organizations the story plays in.
const HOSPITAL: &str = "HospitalMSP";
const LAB: &str = "LabMSP";

/// The story on a running consortium network.
pub async fn tell(cast: &Cast) -> Result<Story> {
    let tag = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let patient_id = cast.patient.actor().to_owned();
    let (record_id, plaintext) = register_and_record(cast, &patient_id, tag).await?;
    let consent_id = grant_consents(cast, &patient_id, tag).await?;
    let paid_access = paid_research_access(cast, &patient_id, &record_id).await?;
    read_then_revoke(cast, &patient_id, &record_id, &consent_id, &plaintext).await?;
    let break_glass_access = break_the_glass(cast, &record_id).await?;
    claim(cast, &record_id, tag).await?;
    let disclosures = accounting(cast, &patient_id).await?;
    Ok(Story { patient_id, record_id, plaintext, paid_access, break_glass_access, disclosures })
}

/// Step 2: returns the record's id and plaintext.
async fn register_and_record(cast: &Cast, patient_id: &str, tag: u64) -> Result<(String, Vec<u8>)> {
    let patient_id = patient_id.to_owned();
    let (hospital, lab_org) = (HOSPITAL, LAB);
    step(
        2,
        "patient1 registers herself with the hospital (her certificate's key); drgrey adds an encrypted lab result",
    );
    let patient_key = cast.reader("patient1", "patient")?.public_key;
    if cast.doctor.query("get_patient", &json!(patient_id)).await.is_err() {
        cast.patient.register_patient(&patient_id, hospital, &patient_key).await?;
    }
    let record_id = format!("lab-{tag}");
    let plaintext = format!("{{\"resourceType\":\"Observation\",\"code\":\"4548-4\",\"display\":\"HbA1c\",\"value\":\"6.1 %\",\"subject\":\"{patient_id}\"}}").into_bytes();
    let record = NewRecord {
        record_id: record_id.clone(),
        patient_id: patient_id.clone(),
        resource_type: "Observation".into(),
        data_class: "lab".into(),
        security_labels: vec!["N".into()],
        plaintext: plaintext.clone(),
    };
    let meta = cast.doctor.create_record(&record, hospital, lab_org).await?;
    println!(
        "    record {record_id} v{}: commitment {} (ciphertext and the key, wrapped for patient1 and for HospitalMSP's peers only, in HospitalMSP's private collection)",
        meta["version"],
        &meta["commitment"].as_str().unwrap_or_default()[..16]
    );

    Ok((record_id, plaintext))
}

/// Step 3: returns the research consent's id.
async fn grant_consents(cast: &Cast, patient_id: &str, tag: u64) -> Result<String> {
    let hospital = HOSPITAL;
    step(
        3,
        "patient1 consents: treatment by the hospital; research by scientist1 with a 500-unit fee per access",
    );
    cast.patient
        .call(
            "grant_consent",
            &json!({"patient_id": patient_id, "consent_id": format!("treat-{tag}"), "template": "opt-in",
                    "grantee": {"kind": "org", "value": hospital}}),
        )
        .await?;
    let consent_id = format!("research-{tag}");
    let consent = cast
        .patient
        .call(
            "grant_consent",
            &json!({"patient_id": patient_id, "consent_id": consent_id, "template": "research-opt-in",
                    "grantee": {"kind": "actor", "value": cast.researcher.actor()}, "classes": ["lab"],
                    "fee": {"amount": 500, "custodian_share_bps": 2000}}),
        )
        .await?;
    println!(
        "    consent {}@{}: {} for {}",
        consent_id,
        consent["version"],
        consent["decision"],
        show(&consent["grantee"])
    );
    println!(
        "    no key exists yet for {}: the hospital's peer wraps one only for a committed, live access",
        cast.researcher.actor()
    );

    Ok(consent_id)
}

/// Step 4: returns the paid access's id.
async fn paid_research_access(cast: &Cast, patient_id: &str, record_id: &str) -> Result<String> {
    let hospital = HOSPITAL;
    step(
        4,
        "scientist1 is funded and requests access for research: the fee is escrowed; settled, the grant serves",
    );
    cast.insurer.call("deposit", &json!([cast.researcher.actor(), 2000])).await?;
    let access =
        cast.researcher.call("request_access", &json!({"record_id": record_id, "purpose": "HRESCH"})).await?;
    let paid_access = access["access_id"].as_str().context("access id")?.to_owned();
    println!(
        "    access {}… authorised by {}, fee {} held",
        &paid_access[..12],
        access["authorization"],
        access["fee"]
    );
    match cast.researcher.read_record(record_id, hospital).await {
        Ok(_) => bail!("the record was readable before the fee was settled"),
        Err(e) => println!("    before settlement: {e}"),
    }
    let settled = cast.researcher.call("settle", &json!(paid_access)).await?;
    let patient_balance = cast.patient.query("balance", &json!(patient_id)).await?;
    let hospital_balance = cast.doctor.query("balance", &json!("org:HospitalMSP")).await?;
    println!(
        "    escrow {}: patient balance {}, HospitalMSP balance {}",
        settled["state"], patient_balance["balance"], hospital_balance["balance"]
    );

    Ok(paid_access)
}

/// Steps 5 and 6.
async fn read_then_revoke(
    cast: &Cast,
    patient_id: &str,
    record_id: &str,
    consent_id: &str,
    plaintext: &[u8],
) -> Result<()> {
    let hospital = HOSPITAL;
    step(
        5,
        "scientist1 reads from the hospital's peer, which wraps the key to scientist1's certificate under the grant; decrypted locally",
    );
    let opened = cast.researcher.read_record(record_id, hospital).await?;
    ensure!(opened.plaintext == plaintext, "the decrypted record differs from what was written");
    println!(
        "    v{} opened with {}'s key: {}",
        opened.version,
        opened.key_holder,
        String::from_utf8_lossy(&opened.plaintext)
    );

    step(6, "patient1 revokes the consent; scientist1's next request is denied (nothing written)");
    cast.patient.submit("revoke_consent", &[patient_id.to_owned(), consent_id.to_owned()], &[], &[]).await?;
    match cast.researcher.call("request_access", &json!({"record_id": record_id, "purpose": "HRESCH"})).await
    {
        Ok(v) => bail!("access after revocation was granted: {v}"),
        Err(e) => println!("    denied: {e}"),
    }

    Ok(())
}

/// Step 7: returns the break-glass access's id.
async fn break_the_glass(cast: &Cast, record_id: &str) -> Result<String> {
    let hospital = HOSPITAL;
    step(
        7,
        "emergency: tech1 (LabMSP) breaks the glass and reads at once (the hospital's peer releases the key under the audited grant)",
    );
    let emergency = cast.lab.request_access(record_id, "ETREAT", Some(BREAK_GLASS_JUSTIFICATION)).await?;
    let break_glass_access = emergency["access_id"].as_str().context("access id")?.to_owned();
    println!(
        "    break-glass access {}…, review due at {}",
        &break_glass_access[..12],
        emergency["review_due"]
    );
    // The hospital's own providers read through an audited access too (treatment consent).
    cast.doctor.call("request_access", &json!({"record_id": record_id, "purpose": "TREAT"})).await?;
    let read = cast.lab.read_record(record_id, hospital).await?;
    println!("    tech1 decrypted {} bytes", read.plaintext.len());
    let own = cast.doctor.read_record(record_id, hospital).await?;
    println!(
        "    drgrey (the hospital's own provider) decrypted {} bytes through the audited access",
        own.plaintext.len()
    );

    Ok(break_glass_access)
}

/// Step 8.
async fn claim(cast: &Cast, record_id: &str, tag: u64) -> Result<()> {
    step(8, "an insurance claim: drgrey submits, claims1 (InsurerMSP) approves and pays");
    let claim_id = format!("claim-{tag}");
    cast.doctor
        .call("submit_claim", &json!({"claim_id": claim_id, "encounter_record": record_id, "payer_org": "InsurerMSP", "amount": 12000}))
        .await?;
    cast.insurer
        .submit("adjudicate_claim", &[claim_id.clone(), "true".into(), "10000".into()], &[], &[])
        .await?;
    cast.insurer.call("deposit", &json!(["org:InsurerMSP", 50_000])).await?;
    let paid = cast.insurer.call("pay_claim", &json!(claim_id)).await?;
    println!("    claim {claim_id}: {} {}", paid["state"], paid["approved_amount"]);

    Ok(())
}

/// Step 9: returns the accounting of disclosures.
async fn accounting(cast: &Cast, patient_id: &str) -> Result<Value> {
    step(9, "the regulator's accounting of disclosures for patient1 (HIPAA §164.528)");
    let disclosures = cast.regulator.audit("disclosures", json!({"subject": patient_id})).await?;
    println!("    {:<20} {:<26} {:<8} {:<22} what", "date", "recipient", "purpose", "authorisation");
    for item in disclosures["items"].as_array().into_iter().flatten() {
        let date = utc(item["time"].as_u64().unwrap_or(0));
        let authorisation = item["consent"].as_str().map_or_else(|| "BREAK-GLASS".to_owned(), str::to_owned);
        println!(
            "    {:<20} {:<26} {:<8} {:<22} {} {}",
            date,
            item["actor"].as_str().unwrap_or_default(),
            item["purpose"].as_str().unwrap_or_default(),
            authorisation,
            item["resource_type"].as_str().unwrap_or_default(),
            item["record_id"].as_str().unwrap_or_default()
        );
    }
    let fhir = cast
        .regulator
        .query("disclosures", &json!({"subject": patient_id, "format": "fhir", "page_size": 1}))
        .await?;
    println!("    as FHIR: {}", show(&fhir["items"][0]).chars().take(160).collect::<String>() + "…");
    Ok(disclosures)
}

/// `YYYY-MM-DD hh:mm:ss` (UTC) of unix seconds.
pub fn utc(seconds: u64) -> String {
    let stamp = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    )
}
