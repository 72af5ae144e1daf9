//! A transaction envelope parsed into its parts, keeping the exact bytes that were
//! signed and hashed (never re-serialize what you verify).

use bytes::Bytes;
use medfabric_proto::common::{
    ChannelHeader, ConfigEnvelope, Envelope, HeaderType, Payload, SignatureHeader,
};
use medfabric_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeHeaderExtension, ChaincodeId, ChaincodeInvocationSpec,
    ChaincodeProposalPayload, Endorsement, ProposalResponsePayload, Transaction as TransactionMessage,
    TxValidationCode,
};
use medfabric_proto::rwset::TxReadWriteSet;

use crate::error::{ConvertError, decode};
use crate::proposal::proposal_hash;

/// A parsed envelope.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// `Envelope.payload`: the bytes the creator signed.
    pub payload: Bytes,
    pub signature: Bytes,
    pub channel_header_bytes: Bytes,
    pub channel_header: ChannelHeader,
    pub signature_header_bytes: Bytes,
    pub signature_header: SignatureHeader,
    pub body: TransactionBody,
}

#[derive(Debug, Clone)]
pub enum TransactionBody {
    Endorser(Box<EndorserTransaction>),
    Config(Box<ConfigEnvelope>),
    /// Another header type; the data is kept undecoded.
    Other(Bytes),
}

/// The single action of an endorser transaction.
#[derive(Debug, Clone)]
pub struct EndorserTransaction {
    /// Chaincode named in the channel header extension.
    pub header_chaincode_id: ChaincodeId,
    /// `TransactionAction.header`: the proposal's SignatureHeader bytes.
    pub action_signature_header: Bytes,
    /// `ChaincodeActionPayload.chaincode_proposal_payload` (no transient map).
    pub chaincode_proposal_payload: Bytes,
    /// The bytes every endorser signed (with its identity appended).
    pub proposal_response_payload: Bytes,
    pub proposal_hash: Bytes,
    pub action: ChaincodeAction,
    pub endorsements: Vec<Endorsement>,
}

/// Why an envelope is malformed, with the validation code Fabric gives it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {error}")]
pub struct TxError {
    pub code: TxValidationCode,
    pub error: ConvertError,
}

fn fail(code: TxValidationCode) -> impl Fn(ConvertError) -> TxError {
    move |error| TxError { code, error }
}

impl Transaction {
    /// Parses a marshaled `common.Envelope`. Structural faults carry the code Fabric's
    /// validator gives them; signature, tx-id and policy checks are the caller's.
    pub fn parse(envelope: &[u8]) -> Result<Self, TxError> {
        if envelope.is_empty() {
            return Err(TxError {
                code: TxValidationCode::NilEnvelope,
                error: ConvertError::Missing("envelope"),
            });
        }
        let envelope: Envelope =
            decode("Envelope", envelope).map_err(fail(TxValidationCode::InvalidOtherReason))?;
        Self::from_envelope(envelope)
    }

    pub fn from_envelope(envelope: Envelope) -> Result<Self, TxError> {
        use TxValidationCode as Code;
        // An empty payload decodes to a Payload without a header, as in Fabric.
        let payload: Payload = decode("Payload", &envelope.payload).map_err(fail(Code::BadPayload))?;
        let header = payload
            .header
            .ok_or(ConvertError::Missing("Payload.header"))
            .map_err(fail(Code::BadCommonHeader))?;
        let channel_header: ChannelHeader =
            decode("ChannelHeader", &header.channel_header).map_err(fail(Code::BadCommonHeader))?;
        let signature_header: SignatureHeader =
            decode("SignatureHeader", &header.signature_header).map_err(fail(Code::BadCommonHeader))?;
        let body = match HeaderType::try_from(channel_header.r#type) {
            Ok(HeaderType::EndorserTransaction) => {
                TransactionBody::Endorser(Box::new(parse_endorser(&channel_header, &payload.data)?))
            }
            Ok(HeaderType::Config) => TransactionBody::Config(Box::new(
                decode("ConfigEnvelope", &payload.data).map_err(fail(Code::InvalidConfigTransaction))?,
            )),
            _ => TransactionBody::Other(payload.data.clone()),
        };
        Ok(Self {
            payload: envelope.payload,
            signature: envelope.signature,
            channel_header_bytes: header.channel_header,
            channel_header,
            signature_header_bytes: header.signature_header,
            signature_header,
            body,
        })
    }

    pub fn tx_id(&self) -> &str {
        &self.channel_header.tx_id
    }

    pub fn channel_id(&self) -> &str {
        &self.channel_header.channel_id
    }

    pub fn creator(&self) -> &Bytes {
        &self.signature_header.creator
    }

    pub fn header_type(&self) -> i32 {
        self.channel_header.r#type
    }

    /// Does the tx id follow `hex(SHA-256(nonce ‖ creator))`?
    pub fn tx_id_matches(&self) -> bool {
        crate::txid::compute_tx_id(&self.signature_header.nonce, &self.signature_header.creator)
            == self.channel_header.tx_id
    }

    pub fn endorser(&self) -> Option<&EndorserTransaction> {
        match &self.body {
            TransactionBody::Endorser(tx) => Some(tx),
            _ => None,
        }
    }
}

fn parse_endorser(channel_header: &ChannelHeader, data: &Bytes) -> Result<EndorserTransaction, TxError> {
    use TxValidationCode as Code;
    let extension: ChaincodeHeaderExtension = decode("ChaincodeHeaderExtension", &channel_header.extension)
        .map_err(fail(Code::BadHeaderExtension))?;
    let header_chaincode_id = extension
        .chaincode_id
        .ok_or(ConvertError::Missing("ChaincodeHeaderExtension.chaincode_id"))
        .map_err(fail(Code::InvalidOtherReason))?;
    let invalid = fail(Code::InvalidEndorserTransaction);
    let tx: TransactionMessage = decode("Transaction", data).map_err(&invalid)?;
    if tx.actions.len() != 1 {
        return Err(invalid(ConvertError::Invalid(
            "Transaction.actions",
            format!("exactly one action is allowed, found {}", tx.actions.len()),
        )));
    }
    let action = &tx.actions[0];
    let action_header: SignatureHeader =
        decode("TransactionAction.header", &action.header).map_err(&invalid)?;
    if action_header.creator.is_empty() || action_header.nonce.is_empty() {
        return Err(invalid(ConvertError::Missing("TransactionAction.header creator or nonce")));
    }
    let payload: ChaincodeActionPayload =
        decode("ChaincodeActionPayload", &action.payload).map_err(&invalid)?;
    let endorsed =
        payload.action.ok_or(ConvertError::Missing("ChaincodeActionPayload.action")).map_err(&invalid)?;
    // The proposal response payload is needed for the proposal-hash check, which comes
    // before the plugin stage in Fabric: a bad one is an invalid endorser transaction.
    let prp: ProposalResponsePayload =
        decode("ProposalResponsePayload", &endorsed.proposal_response_payload).map_err(&invalid)?;
    let chaincode_action: ChaincodeAction =
        decode("ChaincodeAction", &prp.extension).map_err(fail(Code::BadResponsePayload))?;
    Ok(EndorserTransaction {
        header_chaincode_id,
        action_signature_header: action.header.clone(),
        chaincode_proposal_payload: payload.chaincode_proposal_payload,
        proposal_response_payload: endorsed.proposal_response_payload,
        proposal_hash: prp.proposal_hash,
        action: chaincode_action,
        endorsements: endorsed.endorsements,
    })
}

impl EndorserTransaction {
    /// Fabric's check of the endorsements: each endorser's signature over
    /// `proposal_response_payload ‖ endorser`, as a signature set (repeated signers
    /// skipped once accepted). `counted_identities` of the result is a policy's input.
    pub fn endorsement_checks(&self, msps: &medfabric_msp::MspManager) -> Vec<medfabric_msp::SignatureCheck> {
        let data: Vec<Vec<u8>> = self
            .endorsements
            .iter()
            .map(|e| [self.proposal_response_payload.as_ref(), e.endorser.as_ref()].concat())
            .collect();
        let set: Vec<medfabric_msp::SignedData<'_>> = self
            .endorsements
            .iter()
            .zip(&data)
            .map(|(e, data)| medfabric_msp::SignedData {
                data,
                identity: &e.endorser,
                signature: &e.signature,
            })
            .collect();
        medfabric_msp::check_signature_set(&set, msps)
    }

    /// The read-write set the endorsers produced.
    pub fn rwset(&self) -> Result<TxReadWriteSet, ConvertError> {
        decode("TxReadWriteSet", &self.action.results)
    }

    /// The chaincode invocation (function and arguments), when the payload carries it.
    pub fn invocation(&self) -> Result<ChaincodeInvocationSpec, ConvertError> {
        let ccpp: ChaincodeProposalPayload =
            decode("ChaincodeProposalPayload", &self.chaincode_proposal_payload)?;
        decode("ChaincodeInvocationSpec", &ccpp.input)
    }

    /// The chaincode event, if the chaincode set one.
    pub fn event(&self) -> Result<Option<medfabric_proto::protos::ChaincodeEvent>, ConvertError> {
        if self.action.events.is_empty() {
            return Ok(None);
        }
        decode("ChaincodeEvent", &self.action.events).map(Some)
    }
}

impl Transaction {
    /// Recomputes the proposal hash from the envelope's own header bytes and compares it
    /// with the one the endorsers signed (INVALID_ENDORSER_TRANSACTION when it differs).
    pub fn proposal_hash_matches(&self) -> Option<bool> {
        let tx = self.endorser()?;
        let expected = proposal_hash(
            &self.channel_header_bytes,
            &tx.action_signature_header,
            &tx.chaincode_proposal_payload,
        );
        Some(expected.as_slice() == tx.proposal_hash.as_ref())
    }
}
