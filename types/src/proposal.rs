//! Proposals: built and signed by clients, parsed and checked by endorsers.

use std::collections::BTreeMap;

use bytes::Bytes;
use medfabric_msp::SigningIdentity;
use medfabric_proto::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use medfabric_proto::protos::{
    self, ChaincodeHeaderExtension, ChaincodeId, ChaincodeInput, ChaincodeInvocationSpec,
    ChaincodeProposalPayload, ChaincodeSpec, Proposal,
};
use prost::Message;
use prost_types::Timestamp;
use sha2::{Digest, Sha256};

use crate::error::{ConvertError, decode};
use crate::txid::{compute_tx_id, new_nonce};

/// `SHA-256(channel_header ‖ signature_header ‖ ccpp_without_transient)`: the hash an
/// endorser puts in `ProposalResponsePayload.proposal_hash`.
pub fn proposal_hash(
    channel_header: &[u8],
    signature_header: &[u8],
    ccpp_without_transient: &[u8],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(channel_header);
    hasher.update(signature_header);
    hasher.update(ccpp_without_transient);
    hasher.finalize().into()
}

/// Builds a signed proposal the way Fabric's gateway client does.
#[derive(Debug, Clone)]
pub struct ProposalBuilder {
    channel_id: String,
    chaincode: String,
    args: Vec<Bytes>,
    transient: BTreeMap<String, Bytes>,
    decorations: BTreeMap<String, Bytes>,
    header_type: HeaderType,
}

impl ProposalBuilder {
    pub fn new(channel_id: &str, chaincode: &str) -> Self {
        Self {
            channel_id: channel_id.to_owned(),
            chaincode: chaincode.to_owned(),
            args: Vec::new(),
            transient: BTreeMap::new(),
            decorations: BTreeMap::new(),
            header_type: HeaderType::EndorserTransaction,
        }
    }

    /// Appends an argument; the first is the function name.
    pub fn arg(mut self, arg: impl Into<Bytes>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn transient(mut self, key: &str, value: impl Into<Bytes>) -> Self {
        self.transient.insert(key.to_owned(), value.into());
        self
    }

    /// A `ChaincodeInput` decoration. Peers drop client decorations under their own
    /// prefix (`medfabric.`) and set those themselves.
    pub fn decoration(mut self, key: &str, value: impl Into<Bytes>) -> Self {
        self.decorations.insert(key.to_owned(), value.into());
        self
    }

    /// Signs with `signer`; `timestamp` is the client's clock (it becomes the
    /// transaction's timestamp, which chaincode sees).
    pub fn sign(self, signer: &SigningIdentity, timestamp: Timestamp) -> protos::SignedProposal {
        let mut proposal = self.build(signer.serialized().clone(), timestamp);
        proposal.signature = signer.sign(&proposal.proposal_bytes).into();
        proposal
    }

    /// The proposal of `creator` (a serialized identity), unsigned: for signing
    /// elsewhere (an HSM, a wallet), over `SHA-256(proposal_bytes)`.
    pub fn build(self, creator: Bytes, timestamp: Timestamp) -> protos::SignedProposal {
        let nonce = new_nonce();
        let tx_id = compute_tx_id(&nonce, &creator);
        let chaincode_id = ChaincodeId { name: self.chaincode.clone(), ..Default::default() };
        let channel_header = ChannelHeader {
            r#type: self.header_type as i32,
            version: 0,
            timestamp: Some(timestamp),
            channel_id: self.channel_id,
            tx_id,
            epoch: 0,
            extension: ChaincodeHeaderExtension { chaincode_id: Some(chaincode_id.clone()) }
                .encode_to_vec()
                .into(),
            tls_cert_hash: Bytes::new(),
        };
        let signature_header = SignatureHeader { creator, nonce: nonce.to_vec().into() };
        let input = ChaincodeInvocationSpec {
            chaincode_spec: Some(ChaincodeSpec {
                r#type: protos::chaincode_spec::Type::Node as i32,
                chaincode_id: Some(chaincode_id),
                input: Some(ChaincodeInput {
                    args: self.args,
                    decorations: self.decorations,
                    is_init: false,
                }),
                timeout: 0,
            }),
        };
        let proposal = Proposal {
            header: Header {
                channel_header: channel_header.encode_to_vec().into(),
                signature_header: signature_header.encode_to_vec().into(),
            }
            .encode_to_vec()
            .into(),
            payload: ChaincodeProposalPayload {
                input: input.encode_to_vec().into(),
                transient_map: self.transient,
            }
            .encode_to_vec()
            .into(),
            extension: Bytes::new(),
        };
        protos::SignedProposal { proposal_bytes: proposal.encode_to_vec().into(), signature: Bytes::new() }
    }
}

/// A received proposal, checked for well-formedness (Fabric's endorser checks that do
/// not need the MSP or the ledger), with the exact bytes kept for signing and hashing.
#[derive(Debug, Clone)]
pub struct SignedProposal {
    pub proposal_bytes: Bytes,
    pub signature: Bytes,
    pub channel_header_bytes: Bytes,
    pub channel_header: ChannelHeader,
    pub signature_header_bytes: Bytes,
    pub signature_header: SignatureHeader,
    pub chaincode_id: ChaincodeId,
    pub input: ChaincodeInput,
    pub transient_map: BTreeMap<String, Bytes>,
    /// `ChaincodeProposalPayload{input}` re-marshaled without the transient map.
    pub payload_without_transient: Bytes,
}

impl SignedProposal {
    /// Parses and checks a proposal, the tx-id rule included.
    pub fn parse(signed: &protos::SignedProposal) -> Result<Self, ConvertError> {
        let proposal = Self::parse_structure(signed)?;
        proposal.check_tx_id()?;
        Ok(proposal)
    }

    /// Parses and checks a proposal's structure, leaving the tx-id rule to
    /// [`SignedProposal::check_tx_id`]: Fabric's endorser checks the creator and its
    /// signature in between.
    pub fn parse_structure(signed: &protos::SignedProposal) -> Result<Self, ConvertError> {
        if signed.proposal_bytes.is_empty() {
            return Err(ConvertError::Missing("SignedProposal.proposal_bytes"));
        }
        if signed.signature.is_empty() {
            return Err(ConvertError::Missing("SignedProposal.signature"));
        }
        let proposal: Proposal = decode("Proposal", &signed.proposal_bytes)?;
        let header: Header = decode("Proposal.header", &proposal.header)?;
        let channel_header: ChannelHeader = decode("ChannelHeader", &header.channel_header)?;
        let signature_header: SignatureHeader = decode("SignatureHeader", &header.signature_header)?;
        match HeaderType::try_from(channel_header.r#type) {
            Ok(HeaderType::EndorserTransaction | HeaderType::Config) => {}
            _ => {
                return Err(ConvertError::Invalid(
                    "ChannelHeader.type",
                    format!("invalid header type {}", channel_header.r#type),
                ));
            }
        }
        if channel_header.epoch != 0 {
            return Err(ConvertError::Invalid("ChannelHeader.epoch", "must be 0".into()));
        }
        if signature_header.nonce.is_empty() {
            return Err(ConvertError::Missing("SignatureHeader.nonce"));
        }
        if signature_header.creator.is_empty() {
            return Err(ConvertError::Missing("SignatureHeader.creator"));
        }
        let extension: ChaincodeHeaderExtension =
            decode("ChaincodeHeaderExtension", &channel_header.extension)?;
        let chaincode_id = extension
            .chaincode_id
            .filter(|id| !id.name.is_empty())
            .ok_or(ConvertError::Missing("ChaincodeHeaderExtension.chaincode_id"))?;
        let payload: ChaincodeProposalPayload = decode("ChaincodeProposalPayload", &proposal.payload)?;
        let spec: ChaincodeInvocationSpec = decode("ChaincodeInvocationSpec", &payload.input)?;
        let input =
            spec.chaincode_spec.and_then(|s| s.input).ok_or(ConvertError::Missing("ChaincodeSpec.input"))?;
        if input.args.is_empty() {
            return Err(ConvertError::Missing("ChaincodeInput.args"));
        }
        let payload_without_transient =
            ChaincodeProposalPayload { input: payload.input.clone(), transient_map: BTreeMap::new() }
                .encode_to_vec()
                .into();
        Ok(Self {
            proposal_bytes: signed.proposal_bytes.clone(),
            signature: signed.signature.clone(),
            channel_header_bytes: header.channel_header,
            channel_header,
            signature_header_bytes: header.signature_header,
            signature_header,
            chaincode_id,
            input,
            transient_map: payload.transient_map,
            payload_without_transient,
        })
    }

    /// The tx-id rule: `tx_id == hex(SHA-256(nonce ‖ creator))`.
    pub fn check_tx_id(&self) -> Result<(), ConvertError> {
        let expected = compute_tx_id(&self.signature_header.nonce, &self.signature_header.creator);
        if self.channel_header.tx_id != expected {
            return Err(ConvertError::Invalid(
                "ChannelHeader.tx_id",
                format!("incorrectly computed txid '{}' -- expected '{expected}'", self.channel_header.tx_id),
            ));
        }
        Ok(())
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

    /// The hash endorsers sign into their response.
    pub fn hash(&self) -> [u8; 32] {
        proposal_hash(
            &self.channel_header_bytes,
            &self.signature_header_bytes,
            &self.payload_without_transient,
        )
    }
}
