//! Payments in integer minor units. An account is a base balance plus credit entries:
//! a credit is a blind write of its own key (`credit/<owner>/<time>/<tx>/<n>`), so any
//! number of concurrent payments into one account never conflict with each other; a
//! debit reads the base and credits, folds them in and subtracts, so a balance can
//! never go negative. Totals are conserved: money only moves between accounts and
//! escrows, and enters only by `deposit`.
//!
//! A busy account (a hospital's, receiving fees all day) must stay spendable: a debit
//! that read *every* credit would be invalidated (phantom read) by any credit
//! committed meanwhile. So a debit first reads only *settled* credits, those stamped
//! more than [`SETTLE_SECONDS`] before its own transaction time. Peers refuse
//! proposals stamped further than their clock-skew limit (5 minutes by default) from
//! their clock, so no credit endorsed alongside the debit can land in that range. Only
//! when the base and settled credits do not cover the amount does the debit read the
//! recent credits as well (and may then conflict with concurrent credits).

use bytes::Bytes;
use medfabric_shim::{ChaincodeStub, ContractError};

use crate::consent::{Fee, Status};
use crate::identity::{Role, caller};
use crate::model::*;
use crate::records::record;

pub use medfabric_medical_api::io::{Balance, ClaimInput, Deposited};

fn account_key(stub: &dyn ChaincodeStub, owner: &str) -> Outcome<String> {
    key(stub, ACCOUNT, &[owner])
}

/// Credits older than this (by transaction time) are settled: a debit covered by them
/// never reads newer credits. Must exceed the peers' clock-skew limit.
pub const SETTLE_SECONDS: u64 = 15 * 60;

fn load_account(stub: &mut dyn ChaincodeStub, owner: &str) -> Outcome<Account> {
    let id = account_key(stub, owner)?;
    Ok(get_json(stub, &id)?.unwrap_or(Account { owner: owner.to_owned(), balance: 0 }))
}

/// Credits of `owner` in `[start, end)` (composite keys), with their amounts.
fn credits_between(stub: &mut dyn ChaincodeStub, start: &str, end: &str) -> Outcome<Vec<(String, u64)>> {
    let mut credits = Vec::new();
    for entry in stub.query_range(start, end)? {
        let amount = std::str::from_utf8(&entry.value)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ContractError::new(format!("credit {:?} is corrupt", entry.key)))?;
        credits.push((entry.key, amount));
    }
    Ok(credits)
}

/// `owner`'s credits stamped before `cutoff` (`Some`), from `cutoff` on, or all (`None`
/// for both bounds is every credit).
fn credits(
    stub: &mut dyn ChaincodeStub,
    owner: &str,
    before: Option<u64>,
    from: Option<u64>,
) -> Outcome<Vec<(String, u64)>> {
    let prefix = key(stub, CREDIT, &[owner])?;
    let start = match from {
        Some(t) => key(stub, CREDIT, &[owner, &padded(t)])?,
        None => prefix.clone(),
    };
    let end = match before {
        Some(t) => key(stub, CREDIT, &[owner, &padded(t)])?,
        None => format!("{prefix}{}", medfabric_shim::MAX_UNICODE_RUNE),
    };
    credits_between(stub, &start, &end)
}

/// The base balance and every unfolded credit with its amount.
fn load(stub: &mut dyn ChaincodeStub, owner: &str) -> Outcome<(Account, Vec<(String, u64)>)> {
    let account = load_account(stub, owner)?;
    let credits = credits(stub, owner, None, None)?;
    Ok((account, credits))
}

/// Base plus credits, summed wide (a u64 balance cannot be made to overflow here).
fn total(account: &Account, credits: &[(String, u64)]) -> Outcome<u64> {
    let sum = credits.iter().map(|(_, c)| u128::from(*c)).sum::<u128>() + u128::from(account.balance);
    u64::try_from(sum).map_err(|_| {
        ContractError::new(format!("the balance of {} exceeds the ledger's range", account.owner))
    })
}

/// The balance of `owner` (base plus credits).
pub fn balance_of(stub: &mut dyn ChaincodeStub, owner: &str) -> Outcome<u64> {
    let (account, credits) = load(stub, owner)?;
    total(&account, &credits)
}

/// Adds `amount` to `owner` without reading anything (no conflicts between credits).
pub fn credit(stub: &mut dyn ChaincodeStub, owner: &str, amount: u64) -> Outcome<()> {
    if amount == 0 {
        return Ok(());
    }
    // One transaction may credit the same owner more than once: number the entries.
    let tx_id = stub.tx_id().to_owned();
    let time = padded(now(stub));
    let mut n = 0u32;
    loop {
        let k = key(stub, CREDIT, &[owner, &time, &tx_id, &n.to_string()])?;
        if !pending_write(stub, &k) {
            stub.put_state(&k, Bytes::from(amount.to_string()))?;
            return Ok(());
        }
        n += 1;
    }
}

/// Did this transaction already write `key`? (Reading back one's own write records no
/// read, so this costs no conflict.)
fn pending_write(stub: &mut dyn ChaincodeStub, key: &str) -> bool {
    // A key only this transaction can have written (its tx id is in it): a stored
    // value means an earlier write in this very transaction.
    stub.get_state(key).ok().flatten().is_some()
}

/// Takes `amount` from `owner`, folding credits into the base: the settled ones, and
/// the recent ones too only when the settled ones do not cover the amount.
pub fn debit(stub: &mut dyn ChaincodeStub, owner: &str, amount: u64) -> Outcome<()> {
    let mut account = load_account(stub, owner)?;
    let cutoff = now(stub).saturating_sub(SETTLE_SECONDS);
    let mut folded = credits(stub, owner, Some(cutoff), None)?;
    let mut available = total(&account, &folded)?;
    if available < amount {
        folded.extend(credits(stub, owner, None, Some(cutoff))?);
        available = total(&account, &folded)?;
        if available < amount {
            return fail(format!("insufficient funds: {owner} has {available}, needs {amount}"));
        }
    }
    for (k, _) in folded {
        stub.del_state(&k)?;
    }
    account.balance = available - amount;
    let id = account_key(stub, owner)?;
    put_json(stub, &id, &account)
}

fn check_account_id(owner: &str) -> Outcome<()> {
    check_id("account", owner)
}

/// Money entering the ledger from outside (a bank transfer received): only payers
/// (the consortium's payment processors) record deposits, into any account, at most
/// [`MAX_DEPOSIT`] each. A blind credit: deposits never conflict.
pub fn deposit(stub: &mut dyn ChaincodeStub, (account, amount): (String, u64)) -> Outcome<Deposited> {
    let who = caller(stub)?;
    who.require("deposit", &[Role::Payer])?;
    check_account_id(&account)?;
    if amount == 0 || amount > MAX_DEPOSIT {
        return fail(format!("amount must be between 1 and {MAX_DEPOSIT}"));
    }
    credit(stub, &account, amount)?;
    Ok(Deposited { account, amount })
}

/// Moves `amount` from the caller's account to `to`.
pub fn transfer(stub: &mut dyn ChaincodeStub, (to, amount): (String, u64)) -> Outcome<()> {
    let who = caller(stub)?;
    check_account_id(&to)?;
    if amount == 0 {
        return fail("amount must be positive");
    }
    let from = who.actor();
    if to == from {
        return fail("cannot transfer to the same account");
    }
    debit(stub, &from, amount)?;
    credit(stub, &to, amount)
}

/// Pays `amount` from the caller's organization account (`org:MSPID`) to `to`; only
/// by an admin of that organization (the MSP's `admin` NodeOU, as its Admins policy
/// counts them): the org's money is not any one provider's to spend.
pub fn org_transfer(stub: &mut dyn ChaincodeStub, (to, amount): (String, u64)) -> Outcome<()> {
    let identity = stub.client_identity()?;
    if identity.role() != Some(medfabric_shim::NodeRole::Admin) {
        return fail(format!(
            "access denied: org_transfer requires an admin of {}; {} is not one",
            identity.msp_id(),
            identity.enrollment_id()
        ));
    }
    check_account_id(&to)?;
    if amount == 0 {
        return fail("amount must be positive");
    }
    let from = org_account(identity.msp_id());
    if to == from {
        return fail("cannot transfer to the same account");
    }
    debit(stub, &from, amount)?;
    credit(stub, &to, amount)
}

/// A balance: one's own, one's organization's, or any for a regulator.
pub fn balance(stub: &mut dyn ChaincodeStub, (owner,): (String,)) -> Outcome<Balance> {
    let who = caller(stub)?;
    let allowed = owner == who.actor() || owner == org_account(&who.msp_id) || who.role == Role::Regulator;
    if !allowed {
        return fail(format!("access denied: {} may not read the balance of {owner}", who.actor()));
    }
    Ok(Balance { balance: balance_of(stub, &owner)?, owner })
}

// ---- escrow of data-access fees --------------------------------------------------------

fn escrow_key(stub: &dyn ChaincodeStub, access_id: &str) -> Outcome<String> {
    key(stub, ESCROW, &[access_id])
}

/// Holds a consent's fee from `payer` for access `access_id`.
pub fn hold(
    stub: &mut dyn ChaincodeStub,
    payer: &str,
    access_id: &str,
    meta: &RecordMeta,
    consent: &str,
    fee: Fee,
    time: u64,
) -> Outcome<()> {
    debit(stub, payer, fee.amount)?;
    let escrow = Escrow {
        access_id: access_id.to_owned(),
        payer: payer.to_owned(),
        patient_id: meta.patient_id.clone(),
        custodian: meta.custodian.clone(),
        amount: fee.amount,
        custodian_share_bps: fee.custodian_share_bps,
        consent: consent.to_owned(),
        state: EscrowState::Held,
        created_at: time,
        closed_at: None,
    };
    let id = escrow_key(stub, access_id)?;
    put_json(stub, &id, &escrow)?;
    let index = key(stub, ESCROW_BY_PATIENT, &[&meta.patient_id, &padded(time), access_id])?;
    stub.put_state(&index, Bytes::from(access_id.to_owned()))?;
    Ok(())
}

/// A held escrow the caller is a party to (payer, patient, custodian provider).
fn held_escrow(stub: &mut dyn ChaincodeStub, access_id: &str) -> Outcome<Escrow> {
    let who = caller(stub)?;
    let escrow = load_escrow(stub, access_id)?;
    let party = who.actor() == escrow.payer
        || who.actor() == escrow.patient_id
        || (who.role == Role::Provider && who.msp_id == escrow.custodian);
    if !party {
        return fail(format!("access denied: {} is not a party to escrow {access_id}", who.actor()));
    }
    if escrow.state != EscrowState::Held {
        return fail(format!("escrow {access_id} is already {:?}", escrow.state));
    }
    Ok(escrow)
}

fn load_escrow(stub: &mut dyn ChaincodeStub, access_id: &str) -> Outcome<Escrow> {
    let id = escrow_key(stub, access_id)?;
    get_json(stub, &id)?.ok_or_else(|| ContractError::new(format!("no escrow for access {access_id}")))
}

/// Is the consent an escrow was taken under still in force (same version, active, in
/// its period)? Reads the consent: a concurrent revocation conflicts.
fn consent_in_force(stub: &mut dyn ChaincodeStub, escrow: &Escrow, time: u64) -> Outcome<bool> {
    let Some((consent_id, version)) = escrow.consent.rsplit_once('@') else { return Ok(false) };
    let id = key(stub, CONSENT, &[&escrow.patient_id, consent_id])?;
    let Some(consent) = get_json::<crate::consent::Consent>(stub, &id)? else { return Ok(false) };
    let period_ok = consent.terms.rule.period.is_none_or(|p| p.contains(time));
    Ok(consent.status == Status::Active && consent.version.to_string() == version && period_ok)
}

/// Settles a held fee to the patient and the custodian, once the access committed and
/// while its consent is still in force; by the payer, the patient or a custodian
/// provider.
pub fn settle(stub: &mut dyn ChaincodeStub, (access_id,): (String,)) -> Outcome<Escrow> {
    let mut escrow = held_escrow(stub, &access_id)?;
    let time = now(stub);
    if !consent_in_force(stub, &escrow, time)? {
        return fail(format!("consent {} is no longer in force: refund the escrow", escrow.consent));
    }
    let custodian_part =
        u64::try_from(u128::from(escrow.amount) * u128::from(escrow.custodian_share_bps) / 10_000)
            .unwrap_or(escrow.amount);
    credit(stub, &org_account(&escrow.custodian), custodian_part)?;
    credit(stub, &escrow.patient_id, escrow.amount - custodian_part)?;
    escrow.state = EscrowState::Settled;
    escrow.closed_at = Some(time);
    let id = escrow_key(stub, &access_id)?;
    put_json(stub, &id, &escrow)?;
    // The paid grant now serves.
    let event = crate::access::audit_event(stub, &access_id)?;
    let grant_key = key(stub, GRANT, &[&event.record_id, &escrow.payer, &access_id])?;
    if let Some(mut grant) = get_json::<Grant>(stub, &grant_key)? {
        grant.active = true;
        put_json(stub, &grant_key, &grant)?;
    }
    Ok(escrow)
}

/// Refunds a held fee to the payer when its consent was revoked or expired before
/// settlement; the access grant is withdrawn too. By any party to the escrow.
pub fn refund(stub: &mut dyn ChaincodeStub, (access_id,): (String,)) -> Outcome<Escrow> {
    let mut escrow = held_escrow(stub, &access_id)?;
    let time = now(stub);
    if consent_in_force(stub, &escrow, time)? {
        return fail(format!("consent {} is still in force: settle the escrow", escrow.consent));
    }
    credit(stub, &escrow.payer, escrow.amount)?;
    // Withdraw the grant this access gave (never used: it waited for settlement).
    let event = crate::access::audit_event(stub, &access_id)?;
    let grant_key = key(stub, GRANT, &[&event.record_id, &escrow.payer, &access_id])?;
    stub.del_state(&grant_key)?;
    // Its seal goes in any case, so the grant cannot be recreated from it.
    unseal(stub, Seal::Grant, &escrow.custodian, &[&access_id])?;
    escrow.state = EscrowState::Refunded;
    escrow.closed_at = Some(time);
    let id = escrow_key(stub, &access_id)?;
    put_json(stub, &id, &escrow)?;
    Ok(escrow)
}

// ---- insurance claims ------------------------------------------------------------------

fn claim_key(stub: &dyn ChaincodeStub, claim_id: &str) -> Outcome<String> {
    key(stub, CLAIM, &[claim_id])
}

fn load_claim(stub: &mut dyn ChaincodeStub, claim_id: &str) -> Outcome<Claim> {
    let id = claim_key(stub, claim_id)?;
    get_json(stub, &id)?.ok_or_else(|| ContractError::new(format!("claim {claim_id} not found")))
}

/// A provider submits a claim for an encounter record of its organization.
pub fn submit_claim(stub: &mut dyn ChaincodeStub, (input,): (ClaimInput,)) -> Outcome<Claim> {
    let who = caller(stub)?;
    who.require("submit_claim", &[Role::Provider])?;
    check_id("claim id", &input.claim_id)?;
    check_id("payer organization", &input.payer_org)?;
    if input.amount == 0 {
        return fail("amount must be positive");
    }
    let meta = record(stub, &input.encounter_record)?;
    who.require_org("submit_claim", &meta.custodian)?;
    let id = claim_key(stub, &input.claim_id)?;
    if stub.get_state(&id)?.is_some() {
        return fail(format!("claim {} exists", input.claim_id));
    }
    let claim = Claim {
        claim_id: input.claim_id,
        encounter_record: meta.record_id,
        patient_id: meta.patient_id,
        provider: who.actor(),
        provider_org: who.msp_id.clone(),
        payer_org: input.payer_org,
        amount: input.amount,
        approved_amount: None,
        state: ClaimState::Submitted,
        submitted_at: now(stub),
        adjudicated_by: None,
        paid_at: None,
    };
    put_json(stub, &id, &claim)?;
    Ok(claim)
}

/// The payer adjudicates: approve (up to the amount claimed) or deny.
pub fn adjudicate_claim(
    stub: &mut dyn ChaincodeStub,
    (claim_id, approve, approved_amount): (String, bool, u64),
) -> Outcome<Claim> {
    let who = caller(stub)?;
    who.require("adjudicate_claim", &[Role::Payer])?;
    let mut claim = load_claim(stub, &claim_id)?;
    who.require_org("adjudicate_claim", &claim.payer_org)?;
    if claim.state != ClaimState::Submitted {
        return fail(format!("claim {claim_id} is already {:?}", claim.state));
    }
    if approve {
        if approved_amount == 0 || approved_amount > claim.amount {
            return fail(format!("approved amount must be between 1 and {}", claim.amount));
        }
        claim.state = ClaimState::Approved;
        claim.approved_amount = Some(approved_amount);
    } else {
        claim.state = ClaimState::Denied;
    }
    claim.adjudicated_by = Some(who.actor());
    let id = claim_key(stub, &claim_id)?;
    put_json(stub, &id, &claim)?;
    Ok(claim)
}

/// The payer pays an approved claim from its organization account to the provider's.
pub fn pay_claim(stub: &mut dyn ChaincodeStub, (claim_id,): (String,)) -> Outcome<Claim> {
    let who = caller(stub)?;
    who.require("pay_claim", &[Role::Payer])?;
    let mut claim = load_claim(stub, &claim_id)?;
    who.require_org("pay_claim", &claim.payer_org)?;
    let Some(amount) = claim.approved_amount.filter(|_| claim.state == ClaimState::Approved) else {
        return fail(format!("claim {claim_id} is {:?}, not approved", claim.state));
    };
    debit(stub, &org_account(&claim.payer_org), amount)?;
    credit(stub, &org_account(&claim.provider_org), amount)?;
    claim.state = ClaimState::Paid;
    claim.paid_at = Some(now(stub));
    let id = claim_key(stub, &claim_id)?;
    put_json(stub, &id, &claim)?;
    Ok(claim)
}

pub fn get_claim(stub: &mut dyn ChaincodeStub, (claim_id,): (String,)) -> Outcome<Claim> {
    let who = caller(stub)?;
    let claim = load_claim(stub, &claim_id)?;
    let party =
        who.msp_id == claim.provider_org || who.msp_id == claim.payer_org || who.role == Role::Regulator;
    if !party {
        return fail(format!("access denied: {} is not a party to claim {claim_id}", who.actor()));
    }
    Ok(claim)
}
