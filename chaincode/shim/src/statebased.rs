//! Key-level endorsement policies, as Fabric's `statebased` package builds them: the
//! serialized `SignaturePolicyEnvelope` a chaincode passes to
//! [`crate::ChaincodeStub::set_state_validation_parameter`].

use bytes::Bytes;
use prost::Message;

use crate::{ShimError, ShimResult};

/// `AND('<org>.peer', …)` over `orgs` (sorted, without duplicates), serialized: a
/// write to the key then needs an endorsement from a peer of every one of them.
pub fn peers_of_every(orgs: &[&str]) -> ShimResult<Bytes> {
    let mut orgs: Vec<&str> = orgs.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect();
    if orgs.is_empty() {
        return Err(ShimError::Invalid("a key-level policy needs at least one MSP id".into()));
    }
    orgs.sort_unstable();
    orgs.dedup();
    if let Some(bad) =
        orgs.iter().find(|o| !o.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)))
    {
        return Err(ShimError::Invalid(format!("{bad:?} is not an MSP id")));
    }
    let text = format!("AND({})", orgs.iter().map(|o| format!("'{o}.peer'")).collect::<Vec<_>>().join(", "));
    let policy = medfabric_msp::parse_policy(&text)
        .map_err(|e| ShimError::Invalid(format!("key-level policy: {e}")))?;
    Ok(Bytes::from(policy.encode_to_vec()))
}
