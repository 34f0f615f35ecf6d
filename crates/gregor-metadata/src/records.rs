//! The records of the metadata log.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::PartitionImage;

/// What a config record applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// A dynamic broker config; node id `None` is the cluster-wide default.
    Broker(Option<i32>),
    /// A consumer group's configs; a group may have them before it exists.
    Group(String),
    /// A client metrics subscription (KIP-714), by name.
    ClientMetrics(String),
}

/// One change to the cluster metadata. Stored as the JSON value of a record in the metadata log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// Written once, when the cluster is formatted.
    Cluster {
        cluster_id: String,
    },
    /// A broker's current endpoint; the newest registration of a node wins.
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// The controller stopped hearing from a broker (broker.session.timeout.ms): it leads
    /// nothing until unfenced, and clients are not sent to it.
    FenceBroker {
        node_id: i32,
    },
    /// A fenced broker heartbeats again, caught up with the metadata log.
    UnfenceBroker {
        node_id: i32,
    },
    /// A broker gone for good (UnregisterBroker): its registration is removed; partitions keep
    /// it among their replicas.
    UnregisterBroker {
        node_id: i32,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    /// A partition's replica assignment and leadership. Written again on every change, with the
    /// partition epoch one higher, and the leader epoch one higher when the leader changes or a
    /// replica leaves the assignment.
    Partition {
        topic_id: Uuid,
        partition: i32,
        #[serde(flatten)]
        state: PartitionImage,
    },
    /// Sets (`Some`) or removes (`None`) one config of a resource.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Producer ids below `next_block_start` are handed out.
    ProducerIds {
        node_id: i32,
        next_block_start: i64,
    },
    /// A feature's finalized level (KIP-584); 0 removes it.
    FeatureLevel {
        name: String,
        level: i16,
    },
}
