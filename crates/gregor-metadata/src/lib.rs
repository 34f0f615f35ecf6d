//! Cluster metadata, KRaft's way: every change to topics, partitions, configs, brokers and producer
//! id blocks is a [`MetadataRecord`] appended to the metadata log; the [`MetadataImage`] that request
//! handlers read is built only by replaying those records. A change is asked for as a
//! [`ControllerRequest`] value; the [`controller`] decides which records it produces (pure
//! functions of the image), the quorum (`gregor-raft`) commits them, and applying them to an image
//! yields a [`MetadataDelta`] saying what changed. [`store`] reads a metadata log written before
//! the quorum, for the upgrade.

pub mod client_metrics;
pub mod configs;
pub mod controller;
pub mod delta;
pub mod elections;
pub mod features;
pub mod image;
pub mod isr;
pub(crate) mod partition_change;
pub mod reassignment;
pub mod records;
pub mod request;
pub mod store;

pub use configs::{ConfigDef, GroupConfigBounds, GROUP_CONFIGS, TOPIC_CONFIGS};
pub use controller::ControllerError;
pub use delta::{MetadataDelta, RemovedTopic};
pub use image::{BrokerRegistration, ConfigLayers, MetadataImage, PartitionImage, TopicImage};
pub use isr::IsrProposal;
pub use records::{ConfigResource, MetadataRecord};
pub use request::{
    ControllerReply, ControllerRequest, QuorumDescription, ReplicaProgress, VoterChange,
};
pub use store::{replay_pre_raft, METADATA_LOG_DIR};
