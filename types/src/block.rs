//! Blocks: Fabric's header hash (ASN.1 DER), flat data hash, and metadata slots.

use bytes::Bytes;
use medfabric_msp::{SigningIdentity, der};
use medfabric_proto::common::{
    Block, BlockData, BlockHeader, BlockMetadata, LastConfig, Metadata, MetadataSignature,
    OrdererBlockMetadata, SignatureHeader,
};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::{ConvertError, decode};
use crate::txid::new_nonce;

/// Metadata slot indices (`common.BlockMetadataIndex`).
pub const SIGNATURES: usize = 0;
pub const LAST_CONFIG: usize = 1;
pub const TRANSACTIONS_FILTER: usize = 2;
pub const ORDERER: usize = 3;
pub const COMMIT_HASH: usize = 4;
/// Number of metadata slots a block carries.
pub const METADATA_SLOTS: usize = 5;

/// `SEQUENCE { INTEGER number, OCTET STRING previous_hash, OCTET STRING data_hash }`,
/// exactly as Go's `asn1.Marshal` writes Fabric's block header.
pub fn header_der(header: &BlockHeader) -> Vec<u8> {
    let mut body = Vec::with_capacity(80);
    der::write_unsigned_integer(&mut body, header.number);
    der::write_tlv(&mut body, 0x04, &header.previous_hash);
    der::write_tlv(&mut body, 0x04, &header.data_hash);
    let mut out = Vec::with_capacity(body.len() + 4);
    der::write_tlv(&mut out, 0x30, &body);
    out
}

/// SHA-256 of [`header_der`]: the block's hash, which the next block names as previous.
pub fn header_hash(header: &BlockHeader) -> [u8; 32] {
    Sha256::digest(header_der(header)).into()
}

/// SHA-256 of the concatenated envelopes (not a Merkle tree).
pub fn data_hash(data: &[Bytes]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for envelope in data {
        hasher.update(envelope);
    }
    hasher.finalize().into()
}

/// Decodes a block, requiring a header.
pub fn decode_block(bytes: &[u8]) -> Result<Block, ConvertError> {
    let block: Block = decode("Block", bytes)?;
    if block.header.is_none() {
        return Err(ConvertError::Missing("Block.header"));
    }
    Ok(block)
}

/// The block header (decoded blocks always have one, see [`decode_block`]).
pub fn header(block: &Block) -> &BlockHeader {
    static EMPTY: BlockHeader =
        BlockHeader { number: 0, previous_hash: Bytes::new(), data_hash: Bytes::new() };
    block.header.as_ref().unwrap_or(&EMPTY)
}

/// The envelopes of a block.
pub fn envelopes(block: &Block) -> &[Bytes] {
    block.data.as_ref().map(|d| d.data.as_slice()).unwrap_or(&[])
}

/// Raw bytes of metadata slot `index` (empty when absent).
pub fn metadata_slot(block: &Block, index: usize) -> &[u8] {
    block.metadata.as_ref().and_then(|m| m.metadata.get(index)).map(|b| b.as_ref()).unwrap_or(&[])
}

/// The SIGNATURES slot decoded: `Metadata{value = OrdererBlockMetadata, signatures}`.
pub fn signatures_metadata(block: &Block) -> Result<Metadata, ConvertError> {
    decode("SIGNATURES metadata", metadata_slot(block, SIGNATURES))
}

/// The last config index the orderer recorded (SIGNATURES slot, then the legacy slot).
pub fn last_config_index(block: &Block) -> Result<u64, ConvertError> {
    let signatures = signatures_metadata(block)?;
    if !signatures.value.is_empty() {
        let orderer: OrdererBlockMetadata = decode("OrdererBlockMetadata", &signatures.value)?;
        if let Some(last) = orderer.last_config {
            return Ok(last.index);
        }
    }
    let legacy: Metadata = decode("LAST_CONFIG metadata", metadata_slot(block, LAST_CONFIG))?;
    let last: LastConfig = decode("LastConfig", &legacy.value)?;
    Ok(last.index)
}

/// The TRANSACTIONS_FILTER slot: one validation code per transaction, raw bytes.
pub fn transactions_filter(block: &Block) -> &[u8] {
    metadata_slot(block, TRANSACTIONS_FILTER)
}

/// Writes the TRANSACTIONS_FILTER slot: one validation code per transaction.
pub fn set_transactions_filter(block: &mut Block, codes: &[u8]) {
    assert_eq!(codes.len(), envelopes(block).len(), "one validation code per transaction");
    set_metadata_slot(block, TRANSACTIONS_FILTER, Bytes::copy_from_slice(codes));
}

/// The COMMIT_HASH slot's 32-byte value, when a peer recorded one.
pub fn commit_hash(block: &Block) -> Option<Bytes> {
    decode::<Metadata>("COMMIT_HASH metadata", metadata_slot(block, COMMIT_HASH))
        .ok()
        .map(|m| m.value)
        .filter(|v| !v.is_empty())
}

/// Writes the COMMIT_HASH slot as `Metadata{value = hash}`.
pub fn set_commit_hash(block: &mut Block, hash: [u8; 32]) {
    let metadata = Metadata { value: Bytes::copy_from_slice(&hash), signatures: Vec::new() };
    set_metadata_slot(block, COMMIT_HASH, metadata.encode_to_vec().into());
}

/// A new unsigned block over `envelopes`, with five empty metadata slots.
pub fn new_block(number: u64, previous_hash: &[u8], envelopes: Vec<Bytes>) -> Block {
    let data_hash = data_hash(&envelopes);
    Block {
        header: Some(BlockHeader {
            number,
            previous_hash: Bytes::copy_from_slice(previous_hash),
            data_hash: Bytes::copy_from_slice(&data_hash),
        }),
        data: Some(BlockData { data: envelopes }),
        metadata: Some(BlockMetadata { metadata: vec![Bytes::new(); METADATA_SLOTS] }),
    }
}

/// Fills SIGNATURES (and the legacy LAST_CONFIG slot) with `signer`'s signature over
/// `value ‖ signature_header ‖ header_der`, as a Raft orderer does. Signatures already
/// present are kept, so several consenters' copies can be merged.
pub fn sign_block(
    block: &mut Block,
    signer: &SigningIdentity,
    last_config_index: u64,
    consenter_metadata: Bytes,
) {
    let value = OrdererBlockMetadata {
        last_config: Some(LastConfig { index: last_config_index }),
        consenter_metadata,
    }
    .encode_to_vec();
    let signature_header =
        SignatureHeader { creator: signer.serialized().clone(), nonce: new_nonce().to_vec().into() }
            .encode_to_vec();
    let signature = signer.sign(&signed_block_bytes(&value, &signature_header, header(block)));
    let mut existing = signatures_metadata(block).unwrap_or_default();
    existing.value = value.into();
    existing.signatures.push(MetadataSignature {
        signature_header: signature_header.into(),
        signature: signature.into(),
        identifier_header: Bytes::new(),
    });
    let legacy = Metadata {
        value: LastConfig { index: last_config_index }.encode_to_vec().into(),
        signatures: Vec::new(),
    };
    set_metadata_slot(block, SIGNATURES, existing.encode_to_vec().into());
    set_metadata_slot(block, LAST_CONFIG, legacy.encode_to_vec().into());
}

/// Replaces metadata slot `index`, growing the slot list as needed.
pub fn set_metadata_slot(block: &mut Block, index: usize, value: Bytes) {
    let metadata = block.metadata.get_or_insert_with(BlockMetadata::default);
    if metadata.metadata.len() <= index {
        metadata.metadata.resize(METADATA_SLOTS.max(index + 1), Bytes::new());
    }
    metadata.metadata[index] = value;
}

/// The bytes an orderer signature in SIGNATURES covers.
pub fn signed_block_bytes(value: &[u8], signature_header: &[u8], header: &BlockHeader) -> Vec<u8> {
    let header_bytes = header_der(header);
    let mut signed = Vec::with_capacity(value.len() + signature_header.len() + header_bytes.len());
    signed.extend_from_slice(value);
    signed.extend_from_slice(signature_header);
    signed.extend_from_slice(&header_bytes);
    signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_header_der_matches_fabric() {
        // Block 0 of the Fabric 2.5 vectors (expected.json: header_der_hex).
        let data_hash =
            hex::decode("aca0ca0efbc31658cfb57cebaa6f8578d6d3fa0cfc52551b9187460704c7c0dc").expect("hex");
        let header = BlockHeader { number: 0, previous_hash: Bytes::new(), data_hash: data_hash.into() };
        assert_eq!(
            hex::encode(header_der(&header)),
            "302702010004000420aca0ca0efbc31658cfb57cebaa6f8578d6d3fa0cfc52551b9187460704c7c0dc"
        );
    }

    #[test]
    fn new_block_hashes_its_data() {
        let envelopes = vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")];
        let block = new_block(7, &[1; 32], envelopes);
        assert_eq!(header(&block).data_hash.as_ref(), Sha256::digest(b"abc").as_slice());
        assert_eq!(block.metadata.as_ref().map(|m| m.metadata.len()), Some(METADATA_SLOTS));
    }
}
