//! KIP-392, fetch from follower: a consumer that says which rack it is in (`client.rack`, sent in
//! Fetch v11+) is told by the partition's leader to read from a replica in its rack, so its
//! reads do not cross racks (or availability zones). The leader answers that partition with no
//! records and the replica's id (PreferredReadReplica); the consumer then fetches from that
//! follower, which serves it up to its own high watermark. Which replica is chosen is the
//! broker's `replica.selector.class`: unset (Kafka's default) always keeps consumers on the
//! leader; Kafka's `RackAwareReplicaSelector` is the one selector gregor has.

/// The `replica.selector.class` that picks a replica in the consumer's rack.
pub const RACK_AWARE_SELECTOR: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";

/// How a leader picks the replica a consumer reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// Consumers read from the leader (no `replica.selector.class`).
    LeaderOnly,
    /// Kafka's `RackAwareReplicaSelector`.
    RackAware,
}

impl ReplicaSelector {
    /// The selector `replica.selector.class` names (validated at start-up).
    pub fn from_config(class: &str) -> ReplicaSelector {
        if class.trim() == RACK_AWARE_SELECTOR {
            ReplicaSelector::RackAware
        } else {
            ReplicaSelector::LeaderOnly
        }
    }
}

/// A replica a consumer could read from: one the leader knows to have the fetch offset (Kafka's
/// `ReplicaView`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadCandidate {
    pub id: i32,
    pub rack: Option<String>,
    pub log_end_offset: i64,
    /// How long ago it last had everything the leader had (0 for the leader itself).
    pub since_caught_up_ms: i64,
}

/// The replica other than the leader that a consumer in `client_rack` should read from, as
/// Kafka's `RackAwareReplicaSelector` chooses: none (stay on the leader) when the consumer
/// names no rack, when no replica is in its rack or when the leader is; otherwise the most
/// caught-up replica in its rack (highest log end, then most recently caught up, then highest
/// id, so the choice is stable).
pub fn select(
    selector: ReplicaSelector,
    client_rack: &str,
    leader: &ReadCandidate,
    followers: &[ReadCandidate],
) -> Option<i32> {
    if selector == ReplicaSelector::LeaderOnly || client_rack.is_empty() {
        return None;
    }
    let in_rack = |c: &&ReadCandidate| c.rack.as_deref() == Some(client_rack);
    if in_rack(&leader) {
        return None;
    }
    followers
        .iter()
        .filter(in_rack)
        .max_by_key(|c| (c.log_end_offset, -c.since_caught_up_ms, c.id))
        .map(|c| c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: i32, rack: &str, log_end_offset: i64, since: i64) -> ReadCandidate {
        ReadCandidate {
            id,
            rack: (!rack.is_empty()).then(|| rack.to_string()),
            log_end_offset,
            since_caught_up_ms: since,
        }
    }

    #[test]
    fn a_consumer_reads_in_its_rack_from_the_most_caught_up_replica() {
        let leader = replica(1, "a", 100, 0);
        let followers = [
            replica(2, "b", 90, 0),
            replica(3, "b", 100, 500),
            replica(4, "b", 100, 20),
            replica(5, "c", 100, 0),
        ];
        let pick = |rack| select(ReplicaSelector::RackAware, rack, &leader, &followers);
        // Highest log end first, then the most recently caught up.
        assert_eq!(pick("b"), Some(4));
        assert_eq!(pick("c"), Some(5));
        // The leader's own rack, an unknown rack and no rack stay on the leader.
        assert_eq!(pick("a"), None);
        assert_eq!(pick("z"), None);
        assert_eq!(pick(""), None);
        // Equal replicas: the highest id, every time.
        let twins = [replica(7, "b", 100, 0), replica(6, "b", 100, 0)];
        assert_eq!(
            select(ReplicaSelector::RackAware, "b", &leader, &twins),
            Some(7)
        );
        // Without a selector consumers stay on the leader.
        assert_eq!(
            select(ReplicaSelector::LeaderOnly, "b", &leader, &followers),
            None
        );
    }

    #[test]
    fn the_selector_is_named_by_kafkas_class() {
        assert_eq!(
            ReplicaSelector::from_config(RACK_AWARE_SELECTOR),
            ReplicaSelector::RackAware
        );
        assert_eq!(
            ReplicaSelector::from_config(""),
            ReplicaSelector::LeaderOnly
        );
    }
}
