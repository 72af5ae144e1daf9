//! Property: over random sequences of deposits, transfers, paid accesses, settlements,
//! revocations, refunds and claims, money is conserved (balances plus held escrows equal
//! what was deposited) and no operation that would overdraw an account changes anything.

mod support;

use serde_json::{Value, json};
use support::{PATIENT, World};

/// A small deterministic generator (xorshift64*), so failures reproduce by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const PEOPLE: [&str; 4] =
    ["ResearchMSP/scientist1", "ResearchMSP/scientist2", "HospitalMSP/patient1", "InsurerMSP/claims1"];
const ACCOUNTS: [&str; 6] = [
    "ResearchMSP/scientist1",
    "ResearchMSP/scientist2",
    "HospitalMSP/patient1",
    "InsurerMSP/claims1",
    "org:HospitalMSP",
    "org:InsurerMSP",
];
const REG: &str = "RegulatorMSP/inspector1";

fn balances(w: &mut World) -> Vec<u64> {
    ACCOUNTS
        .iter()
        .map(|a| {
            let outcome = w.query(REG, "balance", &json!(a));
            assert_eq!(outcome.response.status, 200, "{}", outcome.response.message);
            support::parse(&outcome)["balance"].as_u64().expect("balance")
        })
        .collect()
}

fn held(w: &World) -> u64 {
    w.snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with("\u{0}escrow\u{0}"))
        .filter_map(|(_, v)| serde_json::from_slice::<Value>(&v).ok())
        .filter(|e| e["state"] == "Held")
        .map(|e| e["amount"].as_u64().unwrap_or(0))
        .sum()
}

/// Runs `steps` random operations; returns how many of each kind committed.
fn run(seed: u64, steps: usize) -> std::collections::BTreeMap<&'static str, usize> {
    let mut committed = std::collections::BTreeMap::new();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut w = World::new();
    w.register_patient(PATIENT);
    w.create_record("rec-1", "lab", &[]);
    let mut deposited = 0u64;
    let mut consent = 0u32;
    let mut accesses: Vec<String> = Vec::new();
    let mut claims = 0u32;
    for step in 0..steps {
        // Time passes now and then, so debits meet settled and recent credits alike.
        if rng.below(4) == 0 {
            w.advance(rng.below(1_200) as i64);
        }
        let mut before = (balances(&mut w), held(&w), w.snapshot());
        let (what, outcome) = match rng.below(8) {
            0 => {
                let who = *rng.pick(&PEOPLE);
                let amount = 1 + rng.below(500);
                let outcome = w.invoke("InsurerMSP/claims1", "deposit", &json!([who, amount]));
                if outcome.committed {
                    deposited += amount;
                }
                ("deposit", outcome)
            }
            1 | 2 => {
                let who = *rng.pick(&PEOPLE);
                let to = *rng.pick(&ACCOUNTS);
                let amount = 1 + rng.below(400);
                ("transfer", w.invoke(who, "transfer", &json!([to, amount])))
            }
            3 => {
                // A fresh paid research consent for one of the researchers, then access.
                consent += 1;
                let researcher = *rng.pick(&PEOPLE[..2]);
                let fee = 1 + rng.below(300);
                w.ok(
                    "HospitalMSP/patient1",
                    "grant_consent",
                    &json!({"patient_id": PATIENT, "consent_id": format!("c{consent}"), "template": "research-opt-in",
                            "grantee": {"kind": "actor", "value": researcher},
                            "fee": {"amount": fee, "custodian_share_bps": rng.below(10_001)}}),
                );
                before = (balances(&mut w), held(&w), w.snapshot());
                let outcome = w.invoke(
                    researcher,
                    "request_access",
                    &json!({"record_id": "rec-1", "purpose": "HRESCH"}),
                );
                if outcome.committed {
                    accesses
                        .push(support::parse(&outcome)["access_id"].as_str().unwrap_or_default().to_owned());
                }
                ("access", outcome)
            }
            4 if !accesses.is_empty() => {
                let id = rng.pick(&accesses).clone();
                ("settle", w.invoke("HospitalMSP/drgrey", "settle", &json!(id)))
            }
            5 if consent > 0 => {
                let c = 1 + rng.below(u64::from(consent));
                (
                    "revoke",
                    w.invoke("HospitalMSP/patient1", "revoke_consent", &json!([PATIENT, format!("c{c}")])),
                )
            }
            6 if !accesses.is_empty() => {
                let id = rng.pick(&accesses).clone();
                ("refund", w.invoke("HospitalMSP/patient1", "refund", &json!(id)))
            }
            _ => {
                claims += 1;
                let id = format!("cl{claims}");
                let amount = 1 + rng.below(300);
                w.ok("HospitalMSP/drgrey", "submit_claim", &json!({"claim_id": id, "encounter_record": "rec-1", "payer_org": "InsurerMSP", "amount": amount}));
                w.ok("InsurerMSP/claims1", "adjudicate_claim", &json!([id, true, amount]));
                let outcome = w.invoke("InsurerMSP/Admin", "org_transfer", &json!(["org:InsurerMSP", 1]));
                assert!(!outcome.committed, "an account cannot pay itself");
                before = (balances(&mut w), held(&w), w.snapshot());
                ("pay_claim", w.invoke("InsurerMSP/claims1", "pay_claim", &json!(id)))
            }
        };
        if outcome.committed {
            *committed.entry(what).or_insert(0) += 1;
        }
        let after_balances = balances(&mut w);
        let total: u64 = after_balances.iter().sum::<u64>() + held(&w);
        assert_eq!(total, deposited, "seed {seed} step {step} ({what}): money was created or lost");
        if !outcome.committed {
            assert_eq!(
                (before.0, before.1, before.2),
                (after_balances, held(&w), w.snapshot()),
                "seed {seed} step {step}: failed {what} changed state: {}",
                outcome.response.message
            );
        }
    }
    committed
}

#[test]
fn money_is_conserved_and_never_overdrawn() {
    let mut committed = std::collections::BTreeMap::new();
    for seed in 1..=12 {
        for (what, n) in run(seed, 60) {
            *committed.entry(what).or_insert(0) += n;
        }
    }
    // The sequences reach every kind of operation (and not only their failures).
    for what in ["deposit", "transfer", "access", "settle", "revoke", "refund", "pay_claim"] {
        assert!(committed.get(what).copied().unwrap_or(0) > 0, "no {what} committed: {committed:?}");
    }
}
