//! The coordinators' internal topics, `__consumer_offsets` and `__transaction_state`: compacted
//! topics of the ordinary log, created on first use with the sizes the broker configs give, and
//! keyed the way Kafka places a group or transactional id on one of their partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gregor_metadata::controller::NewTopic;
use gregor_metadata::MetadataImage;
use gregor_protocol::kafka::ResponseError;

use crate::delayed::{Unreplicated, Written};
use crate::partitions::{Partition, ReplicaManager};
use crate::services::Services;

/// An internal topic and the broker configs that size it.
pub struct InternalTopic {
    pub name: &'static str,
    partitions: &'static str,
    replication: &'static str,
    segment_bytes: &'static str,
}

pub const OFFSETS: InternalTopic = InternalTopic {
    name: "__consumer_offsets",
    partitions: "offsets.topic.num.partitions",
    replication: "offsets.topic.replication.factor",
    segment_bytes: "offsets.topic.segment.bytes",
};

pub const TRANSACTIONS: InternalTopic = InternalTopic {
    name: "__transaction_state",
    partitions: "transaction.state.log.num.partitions",
    replication: "transaction.state.log.replication.factor",
    segment_bytes: "transaction.state.log.segment.bytes",
};

/// Java's `String.hashCode`, which Kafka uses to place a group or transactional id on a
/// partition of its internal topic; gregor places them the same way.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

pub fn partition_for(key: &str, partitions: i32) -> i32 {
    (java_string_hash(key) & 0x7fff_ffff) % partitions.max(1)
}

/// How many partitions the topic has (0 if it does not exist yet).
pub fn partition_count(services: &Services, topic: &InternalTopic) -> i32 {
    count_in(&services.metadata.image(), topic)
}

fn count_in(image: &MetadataImage, topic: &InternalTopic) -> i32 {
    image
        .topics
        .get(topic.name)
        .map_or(0, |t| t.partitions.len() as i32)
}

/// The partitions of the topic that `node_id` leads, with their leader epochs, whose
/// coordinators run on it, and the topic's partition count.
fn led_by(image: &MetadataImage, topic: &InternalTopic, node_id: i32) -> (i32, Leaderships) {
    let led = image
        .topics
        .get(topic.name)
        .map_or_else(BTreeMap::new, |t| {
            t.partitions
                .iter()
                .filter(|(_, p)| p.leader == node_id)
                .map(|(&index, p)| (index, p.leader_epoch))
                .collect()
        });
    (count_in(image, topic), led)
}

/// Partition index → the leader epoch this broker leads it in.
pub type Leaderships = BTreeMap<i32, i32>;

/// The partitions of an internal topic a coordinator runtime serves, as of the metadata image
/// at `offset`.
pub struct Followed {
    pub offset: i64,
    pub partitions: Leaderships,
}

impl Followed {
    /// The partitions of `topic` that `node_id` leads in `image`, with the topic's partition
    /// count, if they differ from the ones followed so far; `None` (and nothing to do) if not,
    /// or if `image` is not newer than the one followed, or if a replica here does not lead
    /// yet in the image's leader epoch (the image is published before the replicas take it:
    /// loading a log that is still a follower's could miss its leader's last records; the
    /// metadata publisher comes back once they have).
    pub fn change(
        &mut self,
        image: &MetadataImage,
        topic: &InternalTopic,
        node_id: i32,
        replicas: &ReplicaManager,
    ) -> Option<(i32, Leaderships)> {
        if image.offset <= self.offset {
            return None;
        }
        let (count, led) = led_by(image, topic, node_id);
        let taken = led.iter().all(|(index, epoch)| {
            let hosted = replicas.get(topic.name, *index);
            hosted.is_none_or(|p| p.leads_in(*epoch))
        });
        if !taken {
            return None;
        }
        if self.partitions == led {
            self.offset = image.offset;
            return None;
        }
        Some((count, led))
    }

    /// Moves a coordinator to `led` (from [`Followed::change`], for the image at `offset`):
    /// forgets the state of the partitions it lost or leads in a new leader epoch (whose log
    /// may have been truncated meanwhile), loads the ones it took, and serves `led`.
    /// `unreplicated` keeps only writes in those leaderships, plus each loaded log up to its
    /// end (a new leader's log may end past its high watermark, and nothing read from there
    /// may be shown before it is replicated). If a load fails, the partitions taken are
    /// forgotten and not served, and the next image tries again. The topic has `count`
    /// partitions. Returns the partitions dropped and the records loaded.
    pub fn follow<S: CoordinatorState>(
        &mut self,
        offset: i64,
        (count, led): (i32, Leaderships),
        state: &mut S,
        unreplicated: &Unreplicated,
    ) -> Result<(BTreeSet<i32>, usize), S::Error> {
        let unload = |state: &mut S, partitions: &BTreeSet<i32>| {
            state.unload(&|key| partitions.contains(&partition_for(key, count)))
        };
        let serve = |state: &mut S, led: &Leaderships| {
            let serving = led.clone();
            state.serve(Box::new(move |key| coordinated(&serving, count, key)))
        };
        let lost = changed(&self.partitions, &led);
        unload(state, &lost);
        self.partitions.retain(|index, _| !lost.contains(index));
        serve(state, &self.partitions);
        unreplicated.retain_led(&self.partitions);
        let taken = changed(&led, &self.partitions);
        let mut loaded = 0;
        let mut written = Vec::new();
        for &index in &taken {
            match state.load(index) {
                Ok((records, partition)) => {
                    loaded += records;
                    written.extend(partition.map(|p| Written::log_end(p, led[&index])));
                }
                Err(e) => {
                    unload(state, &taken);
                    return Err(e);
                }
            }
        }
        serve(state, &led);
        unreplicated.add(written);
        *self = Followed {
            offset,
            partitions: led,
        };
        Ok((lost, loaded))
    }
}

/// A coordinator's state by key (group or transactional id), as [`Followed::follow`] moves it
/// between partitions of its internal topic.
pub trait CoordinatorState {
    type Error;
    /// Forgets the state kept for the keys `owned` names.
    fn unload(&mut self, owned: &dyn Fn(&str) -> bool);
    /// Serves the keys `coordinated` names only (NOT_COORDINATOR for others).
    fn serve(&mut self, coordinated: Box<dyn Fn(&str) -> bool + Send>);
    /// Loads a partition from its log: the records read, and the partition if hosted here.
    fn load(&mut self, index: i32) -> Result<(usize, Option<Arc<Partition>>), Self::Error>;
}

/// The partitions of `from` that `to` does not have in the same leader epoch.
fn changed(from: &Leaderships, to: &Leaderships) -> BTreeSet<i32> {
    from.iter()
        .filter(|(index, epoch)| to.get(index) != Some(epoch))
        .map(|(index, _)| *index)
        .collect()
}

impl Default for Followed {
    fn default() -> Followed {
        Followed {
            offset: i64::MIN,
            partitions: Leaderships::new(),
        }
    }
}

/// Whether `key` lives on one of the `led` partitions of a topic of `count` partitions.
pub fn coordinated(led: &Leaderships, count: i32, key: &str) -> bool {
    count > 0 && led.contains_key(&partition_for(key, count))
}

/// The node leading the partition of the topic where `key` lives: its coordinator (`None`
/// while the topic does not exist or the partition has no leader).
pub fn coordinator_of(image: &MetadataImage, topic: &InternalTopic, key: &str) -> Option<i32> {
    let partitions = &image.topics.get(topic.name)?.partitions;
    let partition = partitions.get(&partition_for(key, partitions.len() as i32))?;
    (partition.leader >= 0).then_some(partition.leader)
}

/// Creates the topic on first use, as Kafka does; returns its partition count.
pub async fn ensure(services: &Services, topic: &InternalTopic) -> Result<i32, String> {
    let existing = partition_count(services, topic);
    if existing > 0 {
        return Ok(existing);
    }
    let brokers = services.metadata.image().brokers.len() as i64;
    let replication = services.config.get_i64(topic.replication).min(brokers);
    let configs = vec![
        ("cleanup.policy".to_string(), Some("compact".to_string())),
        ("compression.type".to_string(), Some("producer".to_string())),
        (
            "segment.bytes".to_string(),
            Some(services.config.get(topic.segment_bytes)),
        ),
    ];
    let new = NewTopic {
        name: topic.name.to_string(),
        num_partitions: services.config.get_i64(topic.partitions) as i32,
        replication_factor: replication as i16,
        assignments: vec![],
        configs,
    };
    match services.create_topic(new, false).await {
        Ok(_) => tracing::info!("created {}", topic.name),
        Err(e) if e.code == ResponseError::TopicAlreadyExists.code() => {}
        Err(e) => return Err(e.message),
    }
    Ok(partition_count(services, topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_where_kafka_puts_them() {
        // Java: "my-group".hashCode() == -1906497762; (h & 0x7fffffff) % 50 == 36.
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 36);
        assert_eq!(java_string_hash(""), 0);
        assert!((0..50).contains(&partition_for("ünïcødé", 50)));
    }

    const PARTITIONS: i32 = 8;

    /// A key that lives on partition `p`.
    fn key_on(p: i32) -> String {
        (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| partition_for(k, PARTITIONS) == p)
            .unwrap()
    }

    /// A coordinator with one key per partition, recording what `follow` does to them.
    #[derive(Default)]
    struct Keys {
        loaded: BTreeSet<i32>,
        served: BTreeSet<i32>,
        fail_on: Option<i32>,
    }

    impl CoordinatorState for Keys {
        type Error = i32;
        fn unload(&mut self, owned: &dyn Fn(&str) -> bool) {
            self.loaded.retain(|&p| !owned(&key_on(p)));
        }
        fn serve(&mut self, coordinated: Box<dyn Fn(&str) -> bool + Send>) {
            self.served = (0..PARTITIONS)
                .filter(|&p| coordinated(&key_on(p)))
                .collect();
        }
        fn load(&mut self, index: i32) -> Result<(usize, Option<Arc<Partition>>), i32> {
            if self.fail_on == Some(index) {
                return Err(index);
            }
            assert!(self.loaded.insert(index), "{index} loaded twice");
            Ok((1, None))
        }
    }

    /// A partition led again in a new leader epoch is dropped and loaded again (its log may
    /// have been truncated while another broker led it); one no longer led is dropped and
    /// not served; a failed load leaves the partitions taken unloaded and unserved, and the
    /// next image loads them.
    #[test]
    fn a_new_leader_epoch_reloads_a_partition() {
        let unreplicated = Unreplicated::default();
        let mut keys = Keys::default();
        let mut followed = Followed::default();
        let first = Leaderships::from([(0, 3), (1, 3), (2, 3)]);
        assert_eq!(
            followed.follow(1, (PARTITIONS, first), &mut keys, &unreplicated),
            Ok((BTreeSet::new(), 3))
        );
        assert_eq!(keys.loaded, BTreeSet::from([0, 1, 2]));

        let led = Leaderships::from([(0, 3), (1, 5), (3, 1)]);
        let (dropped, loaded) = followed
            .follow(2, (PARTITIONS, led.clone()), &mut keys, &unreplicated)
            .unwrap();
        assert_eq!((dropped, loaded), (BTreeSet::from([1, 2]), 2));
        assert_eq!(keys.loaded, BTreeSet::from([0, 1, 3]));
        assert_eq!(keys.served, BTreeSet::from([0, 1, 3]));
        assert_eq!(followed.partitions, led);

        keys.fail_on = Some(4);
        let next = Leaderships::from([(0, 3), (1, 5), (3, 1), (4, 1), (5, 1)]);
        assert_eq!(
            followed.follow(3, (PARTITIONS, next.clone()), &mut keys, &unreplicated),
            Err(4)
        );
        assert!(!keys.loaded.contains(&4) && !keys.loaded.contains(&5));
        assert_eq!(
            keys.served,
            BTreeSet::from([0, 1, 3]),
            "nothing taken is served after a failed load"
        );
        keys.fail_on = None;
        assert_eq!(
            followed.follow(3, (PARTITIONS, next.clone()), &mut keys, &unreplicated),
            Ok((BTreeSet::new(), 2))
        );
        assert_eq!(keys.served, BTreeSet::from([0, 1, 3, 4, 5]));
    }
}
