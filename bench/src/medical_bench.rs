//! `medfabric bench medical`: the medical chaincode's hot paths under load on a running
//! network, through the same gateway path as `medfabric bench` (endorse → sign → submit
//! → commit status), with the set-up done first and the result checked on the ledger
//! afterwards.
//!
//! - `access`: a provider of another organization requests access to one patient record
//!   under a treatment consent, N times. Each transaction evaluates consent (its keys in
//!   the read set), writes an audit event with its four index entries and the grant.
//!   Afterwards a regulator pages through the record's accesses: their number must equal
//!   the valid transactions.
//! - `deposit`: a payer credits one hospital's organization account N times (the busy
//!   account of the fee and claim flows). The account's balance must grow by exactly the
//!   valid transactions.
//!
//! Users are picked by the `role` attribute of their certificates.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use medfabric_msp::Certificate;
use serde::Serialize;
use serde_json::{Value, json};

use crate::load::{LoadReport, LoadSpec};
use crate::medical_demo::actor;
use medfabric_network::connect::public_key_of_user;
use medfabric_network::up::{NetworkStatus, UserStatus};
use medfabric_sdk::medical::{Medical, NewRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Access,
    Deposit,
}

/// What the ledger says after the load.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub expected: u64,
    pub found: u64,
    pub ok: bool,
    /// Time the check's queries took (for `access`, the regulator's paging).
    pub seconds: f64,
    pub queries: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MedicalBench {
    pub workload: String,
    pub actor: String,
    pub setup_seconds: f64,
    pub load: LoadReport,
    /// `None` when the network has no user who may run the check (a regulator for
    /// `access`).
    pub check: Option<Check>,
}

fn role_of(user: &UserStatus) -> Option<String> {
    let pem = std::fs::read(&user.cert_file).ok()?;
    Certificate::from_pem(&pem).ok()?.attributes().get("role").cloned()
}

fn with_role<'a>(status: &'a NetworkStatus, role: &str) -> impl Iterator<Item = &'a UserStatus> {
    let role = role.to_owned();
    status.users.iter().filter(move |u| role_of(u).as_deref() == Some(role.as_str()))
}

fn first_with_role<'a>(status: &'a NetworkStatus, role: &str) -> Result<&'a UserStatus> {
    with_role(status, role).next().with_context(|| format!("the network has no user with role {role}"))
}

fn actor_id(user: &UserStatus) -> String {
    format!("{}/{}", user.org, user.name)
}

fn run_tag() -> Result<String> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).context("OS random source")?;
    Ok(hex::encode(bytes))
}

/// How much load, and whether to draw a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub transactions: usize,
    pub concurrency: usize,
    pub progress: bool,
}

impl Size {
    /// The medical chaincode's `function` with `args`, sent as `user`.
    async fn run(
        self,
        status: &NetworkStatus,
        function: &str,
        args: Vec<String>,
        user: &UserStatus,
    ) -> Result<LoadReport> {
        let spec = LoadSpec {
            chaincode: "medical".into(),
            function: function.into(),
            args,
            transient: Vec::new(),
            transactions: self.transactions,
            concurrency: self.concurrency,
            user: format!("{}@{}", user.name, user.org),
            peer: None,
        };
        crate::load::run(status, &spec, self.progress).await
    }
}

/// Sets up, runs the load, and checks the ledger.
pub async fn run(status: &NetworkStatus, workload: Workload, size: Size) -> Result<MedicalBench> {
    let started = Instant::now();
    match workload {
        Workload::Access => access(status, size, started).await,
        Workload::Deposit => deposit(status, size, started).await,
    }
}

async fn access(status: &NetworkStatus, size: Size, started: Instant) -> Result<MedicalBench> {
    let patient_user = first_with_role(status, "patient")?;
    let custodian = patient_user.org.clone();
    let doctor_user = with_role(status, "provider")
        .find(|u| u.org == custodian)
        .with_context(|| format!("the network has no provider in {custodian}, the patient's custodian"))?;
    let accessor_user = with_role(status, "provider").find(|u| u.org != custodian).unwrap_or(doctor_user);
    let second_org = if accessor_user.org != custodian {
        accessor_user.org.clone()
    } else {
        match status.users.iter().find(|u| u.org != custodian && status.peer_of(&u.org).is_some()) {
            Some(other) => other.org.clone(),
            None => custodian.clone(),
        }
    };
    let connect = |u: &UserStatus| actor(status, &format!("{}@{}", u.name, u.org));
    let doctor = connect(doctor_user)?;
    let patient = connect(patient_user)?;
    let patient_id = actor_id(patient_user);
    let accessor = actor_id(accessor_user);

    let tag = run_tag()?;
    if doctor.query("get_patient", &json!(patient_id)).await.is_err() {
        // A patient registers themselves, with their certificate's key.
        patient.register_patient(&patient_id, &custodian, &public_key_of_user(patient_user)?).await?;
    }
    let record_id = format!("bench-{tag}");
    let record = NewRecord {
        record_id: record_id.clone(),
        patient_id: patient_id.clone(),
        resource_type: "Observation".into(),
        data_class: "lab".into(),
        security_labels: vec!["N".into()],
        plaintext: format!("{{\"resourceType\":\"Observation\",\"id\":\"{record_id}\"}}").into_bytes(),
    };
    doctor.create_record(&record, &custodian, &second_org).await?;
    patient
        .call(
            "grant_consent",
            &json!({"patient_id": patient_id, "consent_id": format!("bench-{tag}"), "template": "opt-in",
                    "grantee": {"kind": "actor", "value": accessor}}),
        )
        .await?;
    let setup_seconds = started.elapsed().as_secs_f64();

    let args = vec![json!({"record_id": record_id, "purpose": "TREAT"}).to_string()];
    let load = size.run(status, "request_access", args, accessor_user).await?;

    let check = match with_role(status, "regulator").next() {
        None => None,
        Some(regulator_user) => {
            let regulator = connect(regulator_user)?;
            let checked = Instant::now();
            let (found, queries) = count_accesses(&regulator, &record_id).await?;
            let expected = load.valid as u64;
            Some(Check {
                what: format!("audit events of {record_id} (regulator's accesses_to_record, pages of 500)"),
                expected,
                found,
                ok: found == expected,
                seconds: checked.elapsed().as_secs_f64(),
                queries,
            })
        }
    };
    Ok(MedicalBench { workload: "access".into(), actor: accessor, setup_seconds, load, check })
}

async fn count_accesses(regulator: &Medical, record_id: &str) -> Result<(u64, usize)> {
    let (mut found, mut queries, mut bookmark) = (0u64, 0usize, String::new());
    loop {
        let page: Value = regulator
            .audit(
                "accesses_to_record",
                json!({"subject": record_id, "page_size": 500, "bookmark": bookmark}),
            )
            .await?;
        queries += 1;
        let count = page["count"].as_u64().with_context(|| format!("audit page without a count: {page}"))?;
        found += count;
        bookmark = page["bookmark"].as_str().unwrap_or_default().to_owned();
        if count == 0 || bookmark.is_empty() {
            return Ok((found, queries));
        }
    }
}

async fn deposit(status: &NetworkStatus, size: Size, started: Instant) -> Result<MedicalBench> {
    let payer_user = first_with_role(status, "payer")?;
    let hospital_user = first_with_role(status, "provider")?;
    let account = format!("org:{}", hospital_user.org);
    let hospital = actor(status, &format!("{}@{}", hospital_user.name, hospital_user.org))?;
    let before = hospital.balance(&account).await?;
    let setup_seconds = started.elapsed().as_secs_f64();

    let args = vec![account.clone(), "1".into()];
    let load = size.run(status, "deposit", args, payer_user).await?;

    let checked = Instant::now();
    let after = hospital.balance(&account).await?;
    let Some(found) = after.checked_sub(before) else {
        bail!("the balance of {account} fell from {before} to {after} during deposits");
    };
    let expected = load.valid as u64;
    let check = Check {
        what: format!("balance of {account} grew by one unit per valid deposit"),
        expected,
        found,
        ok: found == expected,
        seconds: checked.elapsed().as_secs_f64(),
        queries: 1,
    };
    Ok(MedicalBench {
        workload: "deposit".into(),
        actor: actor_id(payer_user),
        setup_seconds,
        load,
        check: Some(check),
    })
}

/// The report for humans.
pub fn describe(report: &MedicalBench) -> String {
    let mut out = format!(
        "medical {} as {} (set-up {:.2}s)\n{}",
        report.workload,
        report.actor,
        report.setup_seconds,
        crate::load::describe(&report.load)
    );
    match &report.check {
        Some(check) => {
            out += &format!(
                "  check: {}: expected {}, found {} — {} ({} queries, {:.2}s)\n",
                check.what,
                check.expected,
                check.found,
                if check.ok { "ok" } else { "MISMATCH" },
                check.queries,
                check.seconds
            );
        }
        None => out += "  check: skipped (the network has no regulator to page through the audit trail)\n",
    }
    out
}
