//! gRPC service paths and a few hand-checked encodings of the Fabric wire.

use medfabric_proto::Message;

#[test]
fn service_paths_are_fabrics() {
    use medfabric_proto::{gateway, orderer, protos};
    assert_eq!(protos::endorser_server::SERVICE_NAME, "protos.Endorser");
    assert_eq!(protos::deliver_server::SERVICE_NAME, "protos.Deliver");
    assert_eq!(protos::chaincode_support_server::SERVICE_NAME, "protos.ChaincodeSupport");
    assert_eq!(protos::chaincode_server::SERVICE_NAME, "protos.Chaincode");
    assert_eq!(gateway::gateway_server::SERVICE_NAME, "gateway.Gateway");
    assert_eq!(orderer::atomic_broadcast_server::SERVICE_NAME, "orderer.AtomicBroadcast");
}

#[test]
fn field_numbers_encode_as_fabric_defines_them() {
    use medfabric_proto::common::{BlockHeader, ChannelHeader};
    use medfabric_proto::protos::ProposalResponse;
    // ChannelHeader: type=1 (varint), channel_id=4, tx_id=5, epoch=6.
    let header = ChannelHeader {
        r#type: 3,
        channel_id: "c".into(),
        tx_id: "t".into(),
        epoch: 1,
        ..Default::default()
    };
    assert_eq!(header.encode_to_vec(), vec![0x08, 3, 0x22, 1, b'c', 0x2a, 1, b't', 0x30, 1]);
    // BlockHeader: number=1, previous_hash=2, data_hash=3.
    let block = BlockHeader { number: 5, previous_hash: vec![1].into(), data_hash: vec![2].into() };
    assert_eq!(block.encode_to_vec(), vec![0x08, 5, 0x12, 1, 1, 0x1a, 1, 2]);
    // ProposalResponse has no field 3: response=4, payload=5.
    let response = ProposalResponse { version: 1, payload: vec![9].into(), ..Default::default() };
    assert_eq!(response.encode_to_vec(), vec![0x08, 1, 0x2a, 1, 9]);
}
