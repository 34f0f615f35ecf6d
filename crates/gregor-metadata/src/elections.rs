//! Leader elections that are asked for rather than forced by a fenced broker: an admin's
//! ElectLeaders (preferred or unclean, as `kafka-leader-election.sh` sends it) and the
//! controller's own leader balancing (`auto.leader.rebalance.enable`). Pure decisions on the
//! image, with KRaft's answers: a partition already led as asked needs no election
//! (ELECTION_NOT_NEEDED), a preferred replica that is fenced or out of the ISR cannot lead
//! (PREFERRED_LEADER_NOT_AVAILABLE), and an unclean election of a partition without a live
//! replica finds no one (ELIGIBLE_LEADERS_NOT_AVAILABLE).

use std::collections::{BTreeMap, BTreeSet};

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};

use crate::controller::ControllerError;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::partition_change::Change;
use crate::records::MetadataRecord;

/// ElectLeaders' `election_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// The first replica of the assignment leads again, if it is an unfenced in-sync replica.
    Preferred,
    /// A partition without a leader gets one: an unfenced in-sync replica if there is one,
    /// else an unfenced eligible one (KIP-966), else any unfenced replica, which becomes the
    /// whole ISR (the records it lacks are lost).
    Unclean,
}

impl ElectionType {
    /// From the request's code (0 preferred, 1 unclean; v0 requests are preferred).
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// The outcome of one partition's election: `None` elected, else why not.
pub type ElectionOutcome = (i32, Option<ControllerError>);

/// A topic's outcomes, by partition (topics come by name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicElections {
    pub topic: String,
    pub partitions: Vec<ElectionOutcome>,
}

/// How many leaders one balancing round moves at most (KRaft's bound): the rest are moved by
/// the next round, which comes at once.
pub const MAX_ELECTIONS_PER_BALANCE: usize = 1000;

/// ElectLeaders for `requested` partitions by topic (`None`: every partition, when the
/// partitions whose leader is already the one asked for are left out of the answer, as Kafka
/// does). A partition named twice is elected once.
pub fn elect_leaders(
    image: &MetadataImage,
    election: ElectionType,
    requested: Option<&BTreeMap<String, BTreeSet<i32>>>,
) -> (Vec<MetadataRecord>, Vec<TopicElections>) {
    let mut records = Vec::new();
    let mut answers = Vec::new();
    let mut decide = |topic: &str, partition: i32| match elect(image, topic, partition, election) {
        Ok(record) => {
            records.push(record);
            None
        }
        Err(refused) => Some(refused),
    };
    match requested {
        Some(requested) => {
            for (topic, partitions) in requested {
                let partitions = partitions.iter().map(|&p| (p, decide(topic, p))).collect();
                answers.push(TopicElections {
                    topic: topic.clone(),
                    partitions,
                });
            }
        }
        None => {
            let not_needed = ResponseError::ElectionNotNeeded.code();
            for topic in image.topics.values() {
                let partitions = topic
                    .partitions
                    .keys()
                    .map(|&p| (p, decide(&topic.name, p)))
                    .filter(|(_, e)| e.as_ref().is_none_or(|e| e.code != not_needed))
                    .collect();
                answers.push(TopicElections {
                    topic: topic.name.clone(),
                    partitions,
                });
            }
        }
    }
    (records, answers)
}

/// Preferred elections for partitions whose leader is not their first replica while that
/// replica could lead: at most [`MAX_ELECTIONS_PER_BALANCE`] records.
pub fn balance_leaders(image: &MetadataImage) -> Vec<MetadataRecord> {
    image
        .topics
        .values()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |(&p, meta)| (topic, p, meta))
        })
        .filter(|(_, _, meta)| meta.replicas.first().is_some_and(|&r| r != meta.leader))
        .filter_map(|(topic, p, meta)| preferred(image, topic, p, meta).ok())
        .take(MAX_ELECTIONS_PER_BALANCE)
        .collect()
}

/// One partition's election: the record that changes its leader, or why there is none.
fn elect(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    election: ElectionType,
) -> Result<MetadataRecord, ControllerError> {
    let unknown = |message: String| ControllerError {
        code: ResponseError::UnknownTopicOrPartition.code(),
        message,
    };
    let t = image
        .topics
        .get(topic)
        .ok_or_else(|| unknown(format!("topic {topic} does not exist")))?;
    let meta = t
        .partitions
        .get(&partition)
        .ok_or_else(|| unknown(format!("partition {topic}-{partition} does not exist")))?;
    match election {
        ElectionType::Preferred => preferred(image, t, partition, meta),
        ElectionType::Unclean => unclean(image, t, partition, meta),
    }
}

/// Whether broker `id` may lead: registered and not fenced.
fn live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

fn preferred(
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
    meta: &PartitionImage,
) -> Result<MetadataRecord, ControllerError> {
    let first = meta.replicas.first().copied().unwrap_or(-1);
    if first == meta.leader {
        return Err(ControllerError {
            code: ResponseError::ElectionNotNeeded.code(),
            message: format!("replica {first} already leads {}-{partition}", topic.name),
        });
    }
    let eligible = |r: &i32| meta.isr.contains(r) && live(image, *r);
    // As KRaft's: the preferred replica if it can lead; else a leader that can stays; else
    // (a leader gone) the next replica that can.
    let leader = if eligible(&first) {
        first
    } else if eligible(&meta.leader) {
        meta.leader
    } else {
        meta.replicas.iter().copied().find(eligible).unwrap_or(-1)
    };
    if leader == meta.leader {
        return Err(ControllerError {
            code: ResponseError::PreferredLeaderNotAvailable.code(),
            message: format!(
                "replica {first} of {}-{partition} cannot lead: it is fenced or not in sync",
                topic.name
            ),
        });
    }
    Ok(meta.change(topic.id, partition, leader, meta.isr.clone()))
}

fn unclean(
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
    meta: &PartitionImage,
) -> Result<MetadataRecord, ControllerError> {
    if meta.leader != -1 {
        return Err(ControllerError {
            code: ResponseError::ElectionNotNeeded.code(),
            message: format!("{}-{partition} has a leader", topic.name),
        });
    }
    let change = Change {
        unclean: true,
        ..Change::isr(meta, meta.isr.clone())
    };
    change
        .record(image, topic, partition, meta)
        .filter(|record| {
            let MetadataRecord::Partition { state, .. } = record else {
                return false;
            };
            state.leader != -1
        })
        .ok_or_else(|| ControllerError {
            code: ResponseError::EligibleLeadersNotAvailable.code(),
            message: format!("no replica of {}-{partition} is alive", topic.name),
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use uuid::Uuid;

    const NOT_NEEDED: i16 = 84;
    const PREFERRED_NOT_AVAILABLE: i16 = 80;
    const NO_ELIGIBLE: i16 = 83;
    const UNKNOWN: i16 = 3;

    /// Brokers 1-4 (`fenced` ones fenced) and topic `t` whose partition p is `partitions[p]`:
    /// (replicas, isr, leader), in leader epoch 4 and partition epoch 0.
    pub(crate) fn image(fenced: &[i32], partitions: &[(&[i32], &[i32], i32)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for node_id in 1..=4 {
            image.apply(&MetadataRecord::RegisterBroker {
                node_id,
                host: "127.0.0.1".into(),
                port: 9090 + node_id as u16,
                rack: None,
            });
        }
        let topic_id = Uuid::new_v4();
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id,
        });
        for (p, (replicas, isr, leader)) in partitions.iter().enumerate() {
            let state = PartitionImage {
                leader_epoch: 4,
                ..PartitionImage::new(replicas.to_vec(), isr.to_vec(), *leader)
            };
            image.apply(&state.record(topic_id, p as i32));
        }
        for &node_id in fenced {
            image.apply(&MetadataRecord::FenceBroker { node_id });
        }
        image
    }

    fn asked(partitions: &[i32]) -> BTreeMap<String, BTreeSet<i32>> {
        BTreeMap::from([("t".to_string(), partitions.iter().copied().collect())])
    }

    /// Each asked partition's error code (0: elected), and the records.
    fn codes(
        image: &MetadataImage,
        election: ElectionType,
        partitions: Option<&[i32]>,
    ) -> (Vec<(i32, i16)>, Vec<MetadataRecord>) {
        let asked = partitions.map(asked);
        let (records, answers) = elect_leaders(image, election, asked.as_ref());
        let codes = answers
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|(p, e)| (*p, e.as_ref().map_or(0, |e| e.code)))
            .collect();
        (codes, records)
    }

    fn leader_and_isr(record: &MetadataRecord) -> (i32, i32, Vec<i32>, i32) {
        match record {
            MetadataRecord::Partition {
                partition, state, ..
            } => (
                *partition,
                state.leader,
                state.isr.clone(),
                state.leader_epoch,
            ),
            other => panic!("not a partition record: {other:?}"),
        }
    }

    #[test]
    fn preferred_moves_leadership_back_only_to_an_unfenced_in_sync_first_replica() {
        let image = image(
            &[3],
            &[
                (&[1, 2], &[1, 2], 2),  // 1 can lead again
                (&[1, 2], &[1, 2], 1),  // 1 leads already
                (&[1, 2], &[2], 2),     // 1 is not in sync
                (&[3, 2], &[3, 2], 2),  // 3 is fenced
                (&[3, 1], &[3, 1], -1), // 3 fenced, the leader gone: 1 takes it
            ],
        );
        let (codes, records) = codes(&image, ElectionType::Preferred, Some(&[0, 1, 2, 3, 4, 9]));
        assert_eq!(
            codes,
            vec![
                (0, 0),
                (1, NOT_NEEDED),
                (2, PREFERRED_NOT_AVAILABLE),
                (3, PREFERRED_NOT_AVAILABLE),
                (4, 0),
                (9, UNKNOWN)
            ]
        );
        let changes: Vec<_> = records.iter().map(leader_and_isr).collect();
        assert_eq!(changes, vec![(0, 1, vec![1, 2], 5), (4, 1, vec![3, 1], 5)]);
    }

    #[test]
    fn unclean_elects_only_leaderless_partitions_preferring_in_sync_replicas() {
        let image = image(
            &[1],
            &[
                (&[1, 2, 3], &[1], -1),    // only the fenced 1 was in sync: 2 uncleanly
                (&[1, 2, 3], &[1, 3], -1), // 3 is in sync and alive: a clean election
                (&[2, 1], &[2], 2),        // has a leader
                (&[1], &[1], -1),          // no live replica
            ],
        );
        let (codes, records) = codes(&image, ElectionType::Unclean, Some(&[0, 1, 2, 3]));
        assert_eq!(
            codes,
            vec![(0, 0), (1, 0), (2, NOT_NEEDED), (3, NO_ELIGIBLE)]
        );
        let changes: Vec<_> = records.iter().map(leader_and_isr).collect();
        assert_eq!(changes, vec![(0, 2, vec![2], 5), (1, 3, vec![1, 3], 5)]);
    }

    #[test]
    fn all_partitions_leave_out_those_already_led_as_asked() {
        let image = image(&[], &[(&[1, 2], &[1, 2], 2), (&[2, 1], &[2, 1], 2)]);
        let (codes, records) = codes(&image, ElectionType::Preferred, None);
        assert_eq!(codes, vec![(0, 0)]);
        assert_eq!(records.len(), 1);
        // A topic that does not exist is answered per partition, the others untouched.
        let missing = BTreeMap::from([("nope".to_string(), BTreeSet::from([0]))]);
        let (records, answers) = elect_leaders(&image, ElectionType::Preferred, Some(&missing));
        assert!(records.is_empty());
        assert_eq!(
            answers[0].partitions[0].1.as_ref().map(|e| e.code),
            Some(UNKNOWN)
        );
    }

    #[test]
    fn balancing_elects_every_preferred_replica_that_can_lead_and_no_other() {
        let image = image(
            &[3],
            &[
                (&[1, 2], &[1, 2], 2),
                (&[1, 2], &[2], 2),
                (&[3, 1], &[3, 1], 1),
                (&[2, 1], &[2, 1], 2),
            ],
        );
        let changes: Vec<_> = balance_leaders(&image).iter().map(leader_and_isr).collect();
        assert_eq!(changes, vec![(0, 1, vec![1, 2], 5)]);
        assert_eq!(ElectionType::from_code(0), Some(ElectionType::Preferred));
        assert_eq!(ElectionType::from_code(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_code(2), None);
    }
}
