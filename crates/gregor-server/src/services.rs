//! What the parts of a broker process share: its identity and configuration, the metadata
//! image (through the loader), the channel to the controller, the partition replicas, a clock
//! and the stop signal. Coordinator runtimes and background tasks are handed these and nothing
//! else; request handlers see them through [`crate::broker::Broker`], which adds the
//! coordinators and the per-connection state.

use std::time::{SystemTime, UNIX_EPOCH};

use gregor_metadata::controller::{NewTopic, TopicDefaults};
use gregor_metadata::{ControllerError, ControllerRequest};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::metadata::{ControllerChannel, MetadataLoader};
use crate::partitions::ReplicaManager;
use crate::replication::fetcher::ReplicaFetchers;
use crate::replication::isr_changes::IsrChanges;

/// The wall clock, in Kafka's unit (milliseconds since the epoch).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub struct Services {
    pub node_id: i32,
    pub config: BrokerConfig,
    /// The metadata image and the publishers that follow it.
    pub metadata: std::sync::Arc<MetadataLoader>,
    /// Where metadata changes are asked for.
    pub controller: ControllerChannel,
    pub replicas: ReplicaManager,
    /// The fetchers of the partitions this broker follows.
    pub fetchers: ReplicaFetchers,
    /// ISR changes this broker's partitions propose, on their way to the controller.
    pub isr_changes: IsrChanges,
    /// True once the broker is stopping.
    stop: watch::Receiver<bool>,
}

impl Services {
    pub fn new(
        config: BrokerConfig,
        metadata: std::sync::Arc<MetadataLoader>,
        controller: ControllerChannel,
        replicas: ReplicaManager,
        stop: watch::Receiver<bool>,
    ) -> Services {
        Services {
            node_id: config.node_id,
            config,
            metadata,
            controller,
            replicas,
            fetchers: ReplicaFetchers::default(),
            isr_changes: IsrChanges::default(),
            stop,
        }
    }

    /// Changes to true when the broker stops.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// What a topic created here leaves unset: `num.partitions`, `default.replication.factor`.
    pub fn topic_defaults(&self) -> TopicDefaults {
        TopicDefaults {
            num_partitions: self.config.get_i64("num.partitions") as i32,
            replication_factor: self.config.get_i64("default.replication.factor") as i16,
        }
    }

    /// Asks the controller for one topic (only checked when `validate_only`), with this
    /// broker's [`Services::topic_defaults`]; returns the topic id.
    pub async fn create_topic(
        &self,
        topic: NewTopic,
        validate_only: bool,
    ) -> Result<Uuid, ControllerError> {
        let topic_id = Uuid::new_v4();
        let request = ControllerRequest::CreateTopic {
            topic,
            defaults: self.topic_defaults(),
            topic_id,
        };
        self.controller.call(request, validate_only).await?;
        Ok(topic_id)
    }
}
