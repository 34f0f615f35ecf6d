//! KIP-951: a Produce (v10+) or Fetch (v16+, as Kafka) answered NOT_LEADER_OR_FOLLOWER (or, for
//! Fetch, FENCED_LEADER_EPOCH) names the partition's current leader and epoch, and the response
//! lists those leaders' endpoints, so a client moves to the new leader without asking for
//! metadata first (librdkafka, the Java client). A partition without a leader names -1.

use std::collections::BTreeSet;

use gregor_metadata::MetadataImage;

/// The leaders named in one response.
pub struct Leaders<'a> {
    image: &'a MetadataImage,
    named: BTreeSet<i32>,
}

/// A broker's endpoint for clients: node id, host, port, rack.
pub type Endpoint = (i32, String, i32, Option<String>);

impl<'a> Leaders<'a> {
    pub fn new(image: &'a MetadataImage) -> Leaders<'a> {
        Leaders {
            image,
            named: BTreeSet::new(),
        }
    }

    /// The leader of partition `index` of `topic` (-1 for none) and its leader epoch, if the
    /// partition exists; a leader that is registered and not fenced gets its endpoint listed.
    pub fn of(&mut self, topic: &str, index: i32) -> Option<(i32, i32)> {
        let partition = self.image.topics.get(topic)?.partitions.get(&index)?;
        if let Some(broker) = self.image.brokers.get(&partition.leader) {
            if !broker.fenced {
                self.named.insert(broker.node_id);
            }
        }
        Some((partition.leader, partition.leader_epoch))
    }

    /// The endpoints of every leader named so far.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.named
            .iter()
            .filter_map(|id| self.image.brokers.get(id))
            .map(|b| (b.node_id, b.host.clone(), i32::from(b.port), b.rack.clone()))
            .collect()
    }
}
