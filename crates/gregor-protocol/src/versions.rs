//! The versions gregor implements, advertised by ApiVersions. Only APIs with a handler are listed,
//! and only versions whose semantics the handler implements.

use proto_kafka::messages::ApiKey;

/// `(api, min advertised, max)`. Produce is advertised from v0 although only v3+ decode:
/// librdkafka turns compression off unless Produce min is 0 (KAFKA-18659), and Kafka 4.x does the
/// same; a v0-2 request is refused like any undecodable version.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // v10 of OffsetCommit/OffsetFetch is unstable in Kafka 4.1.
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Transactions without KIP-890's server-side verification: AddPartitionsToTxn v4+ is
    // broker-to-broker; the v4s of the others only add an error code gregor never returns.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 1),
];

/// The advertised range of `api`, if gregor implements it.
pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// Whether a request of `api` at `version` is both advertised and decodable by the codec.
pub fn decodable(api: ApiKey, version: i16) -> bool {
    let codec = api.valid_versions();
    advertised(api)
        .is_some_and(|(min, max)| version >= min.max(codec.min) && version <= max.min(codec.max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_versions_are_within_the_codec() {
        for &(api, min, max) in SUPPORTED {
            let codec = api.valid_versions();
            assert!(max <= codec.max, "{api:?} max {max} > codec {}", codec.max);
            assert!(min <= max);
            assert!(decodable(api, max));
        }
        assert!(!decodable(ApiKey::Produce, 2));
        assert!(decodable(ApiKey::Produce, 3));
        assert!(decodable(ApiKey::AddPartitionsToTxn, 0));
        assert!(!decodable(ApiKey::AddPartitionsToTxn, 4));
    }
}
