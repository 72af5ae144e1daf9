//! `medfabric patient|record|consent|access|pay|claim|audit`: the medical chaincode for
//! people, with tables by default and `--json` for scripts. Every command acts as one
//! user of a network started with `network up` (`--data`, `--as`).

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use medfabric_network::connect::public_key_of_user;
use medfabric_network::up::NetworkStatus;
use medfabric_sdk::medical::{Medical, NewRecord, Reader};

/// Who acts, on which network.
#[derive(Args, Debug, Clone)]
pub struct Actor {
    /// The network directory (from `network up`).
    #[arg(long, default_value = "medfabric-data", global = true)]
    pub data: PathBuf,
    /// The user to act as: `name` or `name@MSPID` (see `network status`).
    #[arg(long = "as", default_value = "drgrey", global = true)]
    pub user: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum PatientCommand {
    /// Register the acting user (`--as`, role patient) as a patient: id `MSPID/name`,
    /// key from its own certificate, custodian its organization. A patient registers
    /// only themselves (no provider picks a patient's key).
    Register,
    /// A patient's registry entry.
    Show { patient_id: String },
}

#[derive(Subcommand, Debug)]
pub enum RecordCommand {
    /// Encrypt a file (or text) and add it as a record of a patient.
    Create {
        #[arg(long)]
        id: String,
        /// The patient id (`MSPID/name`).
        #[arg(long)]
        patient: String,
        /// FHIR resource type.
        #[arg(long = "type", default_value = "Observation")]
        resource_type: String,
        /// Data class for consent (lab, imaging, vitals, medication, note…; public, so never a
        /// condition: put that in a sensitive --label).
        #[arg(long, default_value = "lab")]
        class: String,
        /// Security labels (N, R, HIV, PSY…).
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
        #[arg(long)]
        text: Option<String>,
    },
    /// Fetch the ciphertext from the custodian's peer and decrypt it.
    Read {
        id: String,
        /// Write the plaintext here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Public metadata (no PHI).
    Show { id: String },
    /// Crypto-shred the record (purge ciphertext and wrapped keys everywhere).
    Erase {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Args, Debug)]
pub struct ConsentTermsArgs {
    #[arg(long)]
    patient: String,
    #[arg(long)]
    id: String,
    /// opt-in, opt-out, research-opt-in, emergency-only.
    #[arg(long, conflicts_with = "terms")]
    template: Option<String>,
    /// `actor:MSPID/name`, `org:MSPID`, `role:ROLE` or `any`.
    #[arg(long)]
    grantee: Option<String>,
    /// Data classes the template covers.
    #[arg(long = "class")]
    classes: Vec<String>,
    /// Fee per access (minor units), held in escrow.
    #[arg(long)]
    fee: Option<u64>,
    #[arg(long, default_value_t = 0)]
    custodian_share_bps: u32,
    /// Full terms as JSON (FHIR-style rule with nested provisions).
    #[arg(long)]
    terms: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConsentCommand {
    Grant(ConsentTermsArgs),
    Update(ConsentTermsArgs),
    Revoke {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        id: String,
    },
    Show {
        #[arg(long)]
        patient: String,
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AccessCommand {
    /// Request access to a record for a purpose (audited; fee escrowed if any).
    Request {
        record: String,
        #[arg(long)]
        purpose: String,
        /// Break-glass (purpose ETREAT) justification (sent in the transient map, kept
        /// off the chain in the custodian's audit collection).
        #[arg(long)]
        justification: Option<String>,
        /// Request under this consent (needed for one that names sensitive labels).
        #[arg(long)]
        consent: Option<String>,
    },
    /// Review a break-glass access.
    Review {
        event: String,
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PayCommand {
    /// Fund an account you own (default: yours).
    Deposit {
        amount: u64,
        #[arg(long)]
        account: Option<String>,
    },
    /// Pay from your account (or your organization's with `--from-org`).
    Transfer {
        to: String,
        amount: u64,
        #[arg(long)]
        from_org: bool,
    },
    Balance {
        account: Option<String>,
    },
    Settle {
        access: String,
    },
    Refund {
        access: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClaimCommand {
    Submit {
        #[arg(long)]
        id: String,
        #[arg(long)]
        record: String,
        #[arg(long)]
        payer_org: String,
        #[arg(long)]
        amount: u64,
    },
    Adjudicate {
        id: String,
        /// Approve this amount (else: deny).
        #[arg(long)]
        approve: Option<u64>,
    },
    Pay {
        id: String,
    },
    Show {
        id: String,
    },
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// disclosures, accesses-by-actor, accesses-by-org, accesses-to-record, break-glass,
    /// consent-history, payments, erasures, commitment.
    pub query: String,
    /// Patient, actor, organization or record.
    pub subject: Option<String>,
    /// Unix seconds (inclusive); for `commitment`, the time asked about.
    #[arg(long)]
    pub from: Option<u64>,
    #[arg(long)]
    pub to: Option<u64>,
    #[arg(long)]
    pub page_size: Option<u32>,
    #[arg(long, default_value = "")]
    pub bookmark: String,
    /// FHIR AuditEvent / Consent resources (implies --json).
    #[arg(long)]
    pub fhir: bool,
}

fn who(actor: &Actor) -> Result<(Medical, NetworkStatus)> {
    let status = medfabric_network::up::status(&actor.data)?;
    let medical = medfabric_bench::medical_demo::actor(&status, &actor.user)?;
    Ok((medical, status))
}

fn reader_of(status: &NetworkStatus, user: &str) -> Result<Reader> {
    let found = status.user(user).with_context(|| format!("no user {user} in the network"))?;
    Ok(Reader { name: format!("{}/{}", found.org, found.name), public_key: public_key_of_user(found)? })
}

/// Another organization than `custodian` to endorse record writes with.
fn second_org(status: &NetworkStatus, me: &Medical, custodian: &str) -> Result<String> {
    let mine = me.actor().split('/').next().unwrap_or_default();
    if mine != custodian {
        return Ok(mine.to_owned());
    }
    status
        .peers()
        .map(|p| p.org.clone())
        .find(|o| o != custodian)
        .context("the network has a single organization")
}

/// The second endorser of record writes: an organization the consortium made a regulator
/// (from the network's topology), other than the custodian; else any other organization.
fn endorser_for_records(
    data: &std::path::Path,
    status: &NetworkStatus,
    me: &Medical,
    custodian: &str,
) -> Result<String> {
    let topology = medfabric_network::Topology::load(&data.join("network.yaml"))?;
    match topology.roles.get("regulator").and_then(|orgs| orgs.iter().find(|o| *o != custodian)) {
        Some(regulator) => Ok(regulator.clone()),
        None => second_org(status, me, custodian),
    }
}

fn print(actor: &Actor, value: &Value, human: impl FnOnce(&Value)) -> Result<()> {
    if actor.json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

fn field(value: &Value, name: &str) -> String {
    match &value[name] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn grantee(text: &str) -> Result<Value> {
    Ok(match text.split_once(':') {
        Some(("actor", v)) => json!({"kind": "actor", "value": v}),
        Some(("org", v)) => json!({"kind": "org", "value": v}),
        Some(("role", v)) => json!({"kind": "role", "value": v}),
        None if text == "any" => json!({"kind": "any"}),
        _ => bail!("grantee {text:?}: use actor:MSPID/name, org:MSPID, role:ROLE or any"),
    })
}

pub async fn patient(command: PatientCommand, actor: Actor) -> Result<()> {
    let (me, status) = who(&actor)?;
    match command {
        PatientCommand::Register => {
            let reader = reader_of(&status, &actor.user)?;
            let custodian = me.actor().split('/').next().unwrap_or_default().to_owned();
            let patient = me.register_patient(&reader.name, &custodian, &reader.public_key).await?;
            print(&actor, &patient, |p| {
                println!("patient {} registered, custodian {}", field(p, "patient_id"), field(p, "custodian"))
            })
        }
        PatientCommand::Show { patient_id } => {
            let patient = me.query("get_patient", &json!(patient_id)).await?;
            print(&actor, &patient, |p| {
                println!(
                    "patient {}  custodian {}  registered by {} at {}",
                    field(p, "patient_id"),
                    field(p, "custodian"),
                    field(p, "registered_by"),
                    field(p, "registered_at")
                )
            })
        }
    }
}

pub async fn record(command: RecordCommand, actor: Actor) -> Result<()> {
    let (me, status) = who(&actor)?;
    match command {
        RecordCommand::Create { id, patient, resource_type, class, labels, file, text } => {
            let plaintext = match (file, text) {
                (Some(file), None) => {
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?
                }
                (None, Some(text)) => text.into_bytes(),
                _ => bail!("give --file or --text"),
            };
            let registry = me.query("get_patient", &json!(patient)).await?;
            let custodian = field(&registry, "custodian");
            let record = NewRecord {
                record_id: id,
                patient_id: patient,
                resource_type,
                data_class: class,
                security_labels: labels,
                plaintext,
            };
            // The transient data (sensitive labels among it) reaches both endorsers: the
            // second is a regulator organization, a member of the custodian's audit
            // collection — always, so the choice says nothing about the record.
            let second = endorser_for_records(&actor.data, &status, &me, &custodian)?;
            let meta = me.create_record(&record, &custodian, &second).await?;
            print(&actor, &meta, |m| {
                println!(
                    "record {} v{} of {} ({} / {}), commitment {}",
                    field(m, "record_id"),
                    field(m, "version"),
                    field(m, "patient_id"),
                    field(m, "resource_type"),
                    field(m, "data_class"),
                    field(m, "commitment")
                )
            })
        }
        RecordCommand::Read { id, out } => {
            let meta = me.query("get_record", &json!(id)).await?;
            let opened = me.read_record(&id, &field(&meta, "custodian")).await?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &opened.plaintext)?;
                    eprintln!(
                        "record {id} v{} decrypted to {} ({} bytes)",
                        opened.version,
                        path.display(),
                        opened.plaintext.len()
                    );
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&opened.plaintext)?;
                    eprintln!(
                        "\n(record {id} v{}, opened with {}'s key; commitment checked)",
                        opened.version, opened.key_holder
                    );
                }
            }
            Ok(())
        }
        RecordCommand::Show { id } => {
            let meta = me.query("get_record", &json!(id)).await?;
            print(&actor, &meta, |m| {
                println!(
                    "record {}  patient {}  custodian {}  {} / {}  labels {}  v{}  by {}  erased {}",
                    field(m, "record_id"),
                    field(m, "patient_id"),
                    field(m, "custodian"),
                    field(m, "resource_type"),
                    field(m, "data_class"),
                    m["security_labels"],
                    field(m, "version"),
                    field(m, "author"),
                    field(m, "erased")
                )
            })
        }
        RecordCommand::Erase { id, reason } => {
            let meta = me.query("get_record", &json!(id)).await?;
            let custodian = field(&meta, "custodian");
            let second = endorser_for_records(&actor.data, &status, &me, &custodian)?;
            let erased = me.erase_record(&id, &reason, &custodian, &second).await?;
            print(&actor, &erased, |e| {
                println!(
                    "record {} erased ({} versions shredded) by {}",
                    field(e, "record_id"),
                    field(e, "versions"),
                    field(e, "requested_by")
                )
            })
        }
    }
}

fn consent_input(args: &ConsentTermsArgs) -> Result<Value> {
    let mut input = json!({"patient_id": args.patient, "consent_id": args.id});
    match (&args.template, &args.terms) {
        (Some(template), None) => {
            input["template"] = json!(template);
            if let Some(g) = &args.grantee {
                input["grantee"] = grantee(g)?;
            }
            input["classes"] = json!(args.classes);
            if let Some(amount) = args.fee {
                input["fee"] = json!({"amount": amount, "custodian_share_bps": args.custodian_share_bps});
            }
        }
        (None, Some(terms)) => input["terms"] = serde_json::from_str(terms).context("--terms is not JSON")?,
        _ => bail!("give --template or --terms"),
    }
    Ok(input)
}

fn show_consent(c: &Value) {
    println!(
        "consent {}@{} of {}: {} {} for {}  purposes {}  classes {}  fee {}",
        field(c, "consent_id"),
        field(c, "version"),
        field(c, "patient_id"),
        field(c, "status"),
        field(c, "decision"),
        c["grantee"],
        c["purposes"],
        c["classes"],
        c["fee"]
    );
}

pub async fn consent(command: ConsentCommand, actor: Actor) -> Result<()> {
    let (me, _) = who(&actor)?;
    let result = match command {
        ConsentCommand::Grant(args) => me.call("grant_consent", &consent_input(&args)?).await?,
        ConsentCommand::Update(args) => me.call("update_consent", &consent_input(&args)?).await?,
        ConsentCommand::Revoke { patient, id } => me.call("revoke_consent", &json!([patient, id])).await?,
        ConsentCommand::Show { patient, id } => me.query("get_consent", &json!([patient, id])).await?,
    };
    print(&actor, &result, show_consent)
}

pub async fn access(command: AccessCommand, actor: Actor) -> Result<()> {
    let (me, _) = who(&actor)?;
    match command {
        AccessCommand::Request { record, purpose, justification, consent } => {
            let result = me
                .request_access_under(&record, &purpose, justification.as_deref(), consent.as_deref())
                .await?;
            print(&actor, &result, |r| {
                println!(
                    "access {} to {} authorised by {}{}{}",
                    field(r, "access_id"),
                    field(r, "record_id"),
                    field(r, "authorization"),
                    if r["break_glass"] == true {
                        format!(" (BREAK-GLASS, review due {})", field(r, "review_due"))
                    } else {
                        String::new()
                    },
                    if r["fee"].is_null() {
                        String::new()
                    } else {
                        format!(", fee {} escrowed", field(r, "fee"))
                    }
                )
            })
        }
        AccessCommand::Review { event, note } => {
            let result = me.review_break_glass(&event, &note).await?;
            print(&actor, &result, |r| {
                println!(
                    "break-glass access {} reviewed by {}",
                    field(r, "event_id"),
                    r["reviewed"]["reviewer"]
                )
            })
        }
    }
}

pub async fn pay(command: PayCommand, actor: Actor) -> Result<()> {
    let (me, _) = who(&actor)?;
    let result = match command {
        PayCommand::Deposit { amount, account } => {
            me.call("deposit", &json!([account.unwrap_or_else(|| me.actor().to_owned()), amount])).await?
        }
        PayCommand::Transfer { to, amount, from_org } => {
            let function = if from_org { "org_transfer" } else { "transfer" };
            me.call(function, &json!([to, amount])).await?;
            json!({"to": to, "amount": amount})
        }
        PayCommand::Balance { account } => {
            me.query("balance", &json!(account.unwrap_or_else(|| me.actor().to_owned()))).await?
        }
        PayCommand::Settle { access } => me.call("settle", &json!(access)).await?,
        PayCommand::Refund { access } => me.call("refund", &json!(access)).await?,
    };
    print(&actor, &result, |r| println!("{}", serde_json::to_string(r).unwrap_or_default()))
}

pub async fn claim(command: ClaimCommand, actor: Actor) -> Result<()> {
    let (me, _) = who(&actor)?;
    let result = match command {
        ClaimCommand::Submit { id, record, payer_org, amount } => {
            me.call("submit_claim", &json!({"claim_id": id, "encounter_record": record, "payer_org": payer_org, "amount": amount})).await?
        }
        ClaimCommand::Adjudicate { id, approve } => {
            me.call("adjudicate_claim", &json!([id, approve.is_some(), approve.unwrap_or(0)])).await?
        }
        ClaimCommand::Pay { id } => me.call("pay_claim", &json!(id)).await?,
        ClaimCommand::Show { id } => me.query("get_claim", &json!(id)).await?,
    };
    print(&actor, &result, |c| {
        println!(
            "claim {} for {}: {} {} → {}  amount {}  approved {}",
            field(c, "claim_id"),
            field(c, "encounter_record"),
            field(c, "state"),
            field(c, "provider_org"),
            field(c, "payer_org"),
            field(c, "amount"),
            field(c, "approved_amount")
        )
    })
}

pub async fn audit(args: AuditArgs, mut actor: Actor) -> Result<()> {
    let (me, _) = who(&actor)?;
    if args.query == "commitment" {
        let record = args.subject.context("commitment needs a record id")?;
        let time = args.from.or(args.to).unwrap_or(u64::MAX / 2);
        let result = me.query("commitment_at", &json!([record, time])).await?;
        return print(&actor, &result, |r| {
            println!(
                "record {} at {}: version {} commitment {} (written {} by {})",
                field(r, "record_id"),
                field(r, "time"),
                r["version"]["version"],
                r["version"]["commitment"],
                r["version"]["time"],
                r["version"]["author"]
            )
        });
    }
    let function = match args.query.as_str() {
        "disclosures" => "disclosures",
        "accesses-by-actor" => "accesses_by_actor",
        "accesses-by-org" => "accesses_by_org",
        "accesses-to-record" => "accesses_to_record",
        "break-glass" => "break_glass",
        "consent-history" => "consent_history",
        "payments" => "payments_for_disclosures",
        "erasures" => "erasures",
        other => return Err(anyhow!("unknown audit query {other:?}")),
    };
    let mut query = json!({"subject": args.subject.unwrap_or_default(), "bookmark": args.bookmark});
    for (name, value) in [("from", args.from), ("to", args.to)] {
        if let Some(v) = value {
            query[name] = json!(v);
        }
    }
    if let Some(size) = args.page_size {
        query["page_size"] = json!(size);
    }
    if args.fhir {
        query["format"] = json!("fhir");
        actor.json = true;
    }
    // Queries whose answers can carry free text are sealed to a one-time key.
    let sealed = [
        "disclosures",
        "accesses_by_actor",
        "accesses_by_org",
        "accesses_to_record",
        "break_glass",
        "erasures",
    ];
    let page = if sealed.contains(&function) {
        me.audit(function, query).await?
    } else {
        me.query(function, &query).await?
    };
    print(&actor, &page, |p| {
        let items = p["items"].as_array().cloned().unwrap_or_default();
        match function {
            "consent_history" => items.iter().for_each(show_consent),
            "payments_for_disclosures" => {
                println!("{:<66} {:<26} {:>8} state", "access", "payer", "amount");
                for e in &items {
                    println!(
                        "{:<66} {:<26} {:>8} {}",
                        field(e, "access_id"),
                        field(e, "payer"),
                        field(e, "amount"),
                        field(e, "state")
                    );
                }
            }
            "erasures" => {
                for e in &items {
                    println!(
                        "{}  erased by {} at {}: {}",
                        field(e, "record_id"),
                        field(e, "requested_by"),
                        field(e, "time"),
                        field(e, "reason")
                    );
                }
            }
            _ => {
                println!(
                    "{:<20} {:<26} {:<9} {:<24} {:<20} flags",
                    "time (UTC)", "actor", "purpose", "authorisation", "record"
                );
                for e in &items {
                    let authorisation =
                        if e["consent"].is_null() { "BREAK-GLASS".to_owned() } else { field(e, "consent") };
                    let mut flags = Vec::new();
                    if e["overdue"] == true {
                        flags.push("OVERDUE".to_owned());
                    }
                    if let Some(justification) = e["justification"].as_str() {
                        flags.push(format!("\"{justification}\""));
                    }
                    println!(
                        "{:<20} {:<26} {:<9} {:<24} {:<20} {}",
                        medfabric_bench::medical_demo::utc(e["time"].as_u64().unwrap_or(0)),
                        field(e, "actor"),
                        field(e, "purpose"),
                        authorisation,
                        field(e, "record_id"),
                        flags.join(" ")
                    );
                }
            }
        }
        if !field(p, "bookmark").is_empty() && field(p, "bookmark") != "-" {
            println!("(more: --bookmark '{}')", field(p, "bookmark").escape_default());
        }
    })
}
