//! The medical chaincode: patients, encrypted records with keyed commitments on chain,
//! FHIR-style consent, access as an audited transaction (with break-glass), payments
//! (accounts, escrowed data-access fees, insurance claims), regulator audit queries and
//! crypto-shredding. `docs/design.md` ("Medical chaincode") and `docs/medical.md` describe the domain.
//!
//! Every function reads the caller's role (`role` attribute: patient, provider,
//! researcher, payer, regulator) and organization from its certificate and refuses
//! what the role may not do, with a message and no writes. Arguments are JSON objects
//! (or plain strings), results JSON.
//!
//! | function | who | what |
//! |---|---|---|
//! | `create_record`, `append_version` | provider of the custodian | metadata + commitment; transient `ciphertext`, `wrapped_keys` (for `patient` and `org:<custodian>` only), `sensitive_labels` (create) |
//! | `record_key` | any role | an organization's record public key (from the channel config) |
//! | `get_record`, `get_patient` | any role | metadata only |
//! | `read_record` | the patient, holders of a live committed grant (custodian staff too) | ciphertext + the data key wrapped to the caller's certificate key (the custodian's peer wraps it from its record key), sealed to the caller's transient `response_key` |
//! | `register_patient` | the patient themselves (their org is the custodian) | patient id `<custodian>/<id>`, the key of their certificate |
//! | `grant_consent`, `update_consent`, `revoke_consent` | the patient (creator key = registered key) | FHIR Consent semantics, templates |
//! | `record_signed_consent` | custodian provider | a consent action the patient signed (verified against the registered key) |
//! | `get_consent` | patient, custodian provider, regulator | current version |
//! | `request_access` | provider, researcher, payer | consent check, audit event, grant, fee escrow; break-glass |
//! | `review_break_glass` | custodian provider, regulator | review note |
//! | `deposit`, `transfer`, `org_transfer`, `balance` | account owners | integer minor units |
//! | `settle`, `refund` | parties to an escrow | fee to patient and custodian, or back to the payer |
//! | `submit_claim`, `adjudicate_claim`, `pay_claim`, `get_claim` | provider, payer | insurance claims |
//! | `disclosures`, `accesses_by_actor`, `accesses_by_org`, `accesses_to_record`, `break_glass`, `consent_history`, `payments_for_disclosures`, `commitment_at`, `erasures` | regulator | paginated, JSON or FHIR |
//! | `erase_record` | patient, custodian provider | crypto-shred (purge) with an erasure event; the reason in transient `reason` |

pub mod access;
pub mod audit;
pub mod consent;
pub mod identity;
pub mod model;
pub mod payments;
pub mod records;

pub use medfabric_medical_api::keywrap;
use medfabric_shim::Router;

/// The medical chaincode as a [`Router`].
pub fn chaincode() -> Router {
    Router::new("medical")
        .route("register_patient", records::register_patient)
        .route("get_patient", records::get_patient)
        .route("create_record", records::create_record)
        .route("append_version", records::append_version)
        .route("get_record", records::get_record)
        .route("read_record", records::read_record)
        .route("record_key", records::record_key)
        .route("erase_record", records::erase_record)
        .route("grant_consent", access::grant_consent)
        .route("update_consent", access::update_consent)
        .route("revoke_consent", access::revoke_consent)
        .route("record_signed_consent", access::record_signed_consent)
        .route("get_consent", access::get_consent)
        .route("request_access", access::request_access)
        .route("review_break_glass", access::review_break_glass)
        .route("deposit", payments::deposit)
        .route("transfer", payments::transfer)
        .route("org_transfer", payments::org_transfer)
        .route("balance", payments::balance)
        .route("settle", payments::settle)
        .route("refund", payments::refund)
        .route("submit_claim", payments::submit_claim)
        .route("adjudicate_claim", payments::adjudicate_claim)
        .route("pay_claim", payments::pay_claim)
        .route("get_claim", payments::get_claim)
        .route("disclosures", audit::disclosures)
        .route("accesses_by_actor", audit::accesses_by_actor)
        .route("accesses_by_org", audit::accesses_by_org)
        .route("accesses_to_record", audit::accesses_to_record)
        .route("break_glass", audit::break_glass)
        .route("consent_history", audit::consent_history)
        .route("payments_for_disclosures", audit::payments_for_disclosures)
        .route("commitment_at", audit::commitment_at)
        .route("erasures", audit::erasures)
}
