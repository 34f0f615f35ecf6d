//! Every API the broker advertises answers every version it advertises: the test walks the
//! broker's own ApiVersions response and sends each API at its lowest and highest version with a
//! minimal request. The answer may carry an error code; it must arrive, carry the request's
//! correlation id, and decode completely at that version.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{receive, send, Gregor};
use gregor_protocol::kafka::messages::*;
use gregor_protocol::kafka::protocol::StrBytes;
use gregor_protocol::{ApiKey, RequestKind};

/// A request for `api` that every version can encode: defaults, except where a default would
/// get no answer at all (an acks=0 produce) or would wait for something.
fn minimal_request(api: ApiKey) -> Option<RequestKind> {
    use ApiKey as K;
    Some(match api {
        K::Produce => ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .into(),
        K::Fetch => FetchRequest::default().with_max_wait_ms(0).into(),
        K::ListOffsets => ListOffsetsRequest::default().into(),
        K::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default().into(),
        K::Metadata => MetadataRequest::default().into(),
        K::FindCoordinator => FindCoordinatorRequest::default().into(),
        K::ApiVersions => ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("gregor-test"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .into(),
        K::CreateTopics => CreateTopicsRequest::default().into(),
        K::DeleteTopics => DeleteTopicsRequest::default().into(),
        K::InitProducerId => InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .into(),
        K::DeleteRecords => DeleteRecordsRequest::default().into(),
        K::DescribeLogDirs => DescribeLogDirsRequest::default().into(),
        K::AlterReplicaLogDirs => AlterReplicaLogDirsRequest::default().into(),
        K::DescribeConfigs => DescribeConfigsRequest::default().into(),
        K::AlterConfigs => AlterConfigsRequest::default().into(),
        K::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default().into(),
        K::CreatePartitions => CreatePartitionsRequest::default().into(),
        K::DescribeCluster => DescribeClusterRequest::default().into(),
        K::UpdateFeatures => UpdateFeaturesRequest::default().into(),
        K::JoinGroup => JoinGroupRequest::default().into(),
        K::SyncGroup => SyncGroupRequest::default().into(),
        K::Heartbeat => HeartbeatRequest::default().into(),
        K::LeaveGroup => LeaveGroupRequest::default().into(),
        K::OffsetCommit => OffsetCommitRequest::default().into(),
        K::OffsetFetch => OffsetFetchRequest::default().into(),
        K::DescribeGroups => DescribeGroupsRequest::default().into(),
        K::ListGroups => ListGroupsRequest::default().into(),
        K::DeleteGroups => DeleteGroupsRequest::default().into(),
        K::OffsetDelete => OffsetDeleteRequest::default().into(),
        K::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::default().into(),
        K::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::default().into(),
        K::AddPartitionsToTxn => AddPartitionsToTxnRequest::default().into(),
        K::AddOffsetsToTxn => AddOffsetsToTxnRequest::default().into(),
        K::EndTxn => EndTxnRequest::default().into(),
        K::TxnOffsetCommit => TxnOffsetCommitRequest::default().into(),
        K::DescribeTransactions => DescribeTransactionsRequest::default().into(),
        K::ListTransactions => ListTransactionsRequest::default().into(),
        K::DescribeProducers => DescribeProducersRequest::default().into(),
        K::GetTelemetrySubscriptions => GetTelemetrySubscriptionsRequest::default().into(),
        K::PushTelemetry => PushTelemetryRequest::default().into(),
        K::ListConfigResources => ListConfigResourcesRequest::default().into(),
        K::WriteTxnMarkers => WriteTxnMarkersRequest::default().into(),
        K::DescribeQuorum => DescribeQuorumRequest::default().into(),
        K::AddRaftVoter => AddRaftVoterRequest::default().into(),
        K::UnregisterBroker => UnregisterBrokerRequest::default()
            .with_broker_id(BrokerId(99))
            .into(),
        K::RemoveRaftVoter => RemoveRaftVoterRequest::default().into(),
        K::ElectLeaders => ElectLeadersRequest::default().into(),
        K::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::default().into(),
        K::ListPartitionReassignments => ListPartitionReassignmentsRequest::default().into(),
        _ => return None,
    })
}

#[test]
fn every_advertised_api_answers_its_lowest_and_highest_version() {
    let g = Gregor::start(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let ask = minimal_request(ApiKey::ApiVersions).unwrap();
    send(&mut s, ApiKey::ApiVersions, 3, 0, &ask);
    let ResponseKind::ApiVersions(advertised) = receive(&mut s, ApiKey::ApiVersions, 3, 0) else {
        panic!("not an ApiVersions response");
    };
    assert_eq!(advertised.error_code, 0);
    assert!(advertised.api_keys.len() > 30, "{advertised:?}");

    let mut correlation_id = 1;
    for range in &advertised.api_keys {
        let api = ApiKey::try_from(range.api_key).expect("a known API key");
        let request = minimal_request(api)
            .unwrap_or_else(|| panic!("{api:?} is advertised: give it a minimal request here"));
        // Kafka 4 advertises Produce from v0 for librdkafka's sake (KAFKA-18659) but, like
        // gregor, serves only v3 and up.
        let lowest = if api == ApiKey::Produce {
            3
        } else {
            range.min_version
        };
        for version in [lowest, range.max_version] {
            // A fresh connection per request: a broker that closes one cannot hide it.
            let mut s = TcpStream::connect(("127.0.0.1", g.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            send(&mut s, api, version, correlation_id, &request);
            receive(&mut s, api, version, correlation_id);
            correlation_id += 1;
        }
    }
    assert!(g.log_tail(200).lines().all(|l| !l.contains("panicked")));
}
