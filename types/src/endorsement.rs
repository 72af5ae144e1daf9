//! Endorsement: an endorser's signed response, and the transaction a gateway assembles
//! from identical responses.

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{Envelope, Header, Payload};
use medfabric_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeId, Endorsement,
    ProposalResponse, ProposalResponsePayload, Response, Transaction, TransactionAction,
};
use prost::Message;

use crate::error::ConvertError;
use crate::proposal::SignedProposal;

/// What a simulation produced, to be endorsed.
#[derive(Debug, Clone)]
pub struct SimulationResult {
    pub response: Response,
    /// Marshaled `rwset.TxReadWriteSet` (canonical: sorted namespaces and keys).
    pub results: Bytes,
    /// Marshaled `ChaincodeEvent`, or empty.
    pub events: Bytes,
    /// Name and definition version of the chaincode.
    pub chaincode_id: ChaincodeId,
}

/// The `ProposalResponsePayload` bytes endorsers sign for a simulation result.
pub fn response_payload(proposal: &SignedProposal, result: &SimulationResult) -> Bytes {
    let action = ChaincodeAction {
        results: result.results.clone(),
        events: result.events.clone(),
        response: Some(result.response.clone()),
        chaincode_id: Some(result.chaincode_id.clone()),
    };
    ProposalResponsePayload {
        proposal_hash: proposal.hash().to_vec().into(),
        extension: action.encode_to_vec().into(),
    }
    .encode_to_vec()
    .into()
}

/// Builds the `ProposalResponse` of an endorser: it signs `prp_bytes ‖ endorser`.
pub fn endorse(
    proposal: &SignedProposal,
    result: SimulationResult,
    endorser: &SigningIdentity,
) -> ProposalResponse {
    let prp = response_payload(proposal, &result);
    let mut signed = Vec::with_capacity(prp.len() + endorser.serialized().len());
    signed.extend_from_slice(&prp);
    signed.extend_from_slice(endorser.serialized());
    let endorsement =
        Endorsement { endorser: endorser.serialized().clone(), signature: endorser.sign(&signed).into() };
    ProposalResponse {
        version: 1,
        timestamp: None,
        response: Some(result.response),
        payload: prp,
        endorsement: Some(endorsement),
        interest: None,
    }
}

/// Assembles the unsigned transaction envelope from a proposal and its endorsements.
/// Every response must carry byte-identical payloads; repeated endorsers are dropped.
pub fn assemble_transaction(
    proposal: &SignedProposal,
    responses: &[ProposalResponse],
) -> Result<Envelope, ConvertError> {
    let first = responses.first().ok_or(ConvertError::Missing("proposal responses"))?;
    let mut endorsements: Vec<Endorsement> = Vec::with_capacity(responses.len());
    for response in responses {
        if response.payload != first.payload {
            return Err(ConvertError::Invalid(
                "ProposalResponse.payload",
                "endorsers returned different proposal response payloads".into(),
            ));
        }
        let endorsement =
            response.endorsement.clone().ok_or(ConvertError::Missing("ProposalResponse.endorsement"))?;
        if !endorsements.iter().any(|e| e.endorser == endorsement.endorser) {
            endorsements.push(endorsement);
        }
    }
    let action_payload = ChaincodeActionPayload {
        chaincode_proposal_payload: proposal.payload_without_transient.clone(),
        action: Some(ChaincodeEndorsedAction {
            proposal_response_payload: first.payload.clone(),
            endorsements,
        }),
    };
    let transaction = Transaction {
        actions: vec![TransactionAction {
            header: proposal.signature_header_bytes.clone(),
            payload: action_payload.encode_to_vec().into(),
        }],
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: proposal.channel_header_bytes.clone(),
            signature_header: proposal.signature_header_bytes.clone(),
        }),
        data: transaction.encode_to_vec().into(),
    };
    Ok(Envelope { payload: payload.encode_to_vec().into(), signature: Bytes::new() })
}

/// Signs an envelope's payload (the client's final signature before submit).
pub fn sign_envelope(envelope: &mut Envelope, signer: &SigningIdentity) {
    envelope.signature = signer.sign(&envelope.payload).into();
}
