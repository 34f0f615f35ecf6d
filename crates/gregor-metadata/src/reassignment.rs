//! Partition reassignment (AlterPartitionReassignments and ListPartitionReassignments; KIP-455
//! as KRaft carries it out). Moving a partition from replicas R to target T starts with the
//! assignment T followed by R - T, adding T - R and removing R - T: the leader copies its log
//! to the added replicas and brings each into the ISR as it catches up. The change that puts
//! every target replica in sync also completes the move: replicas T, the ISR without the
//! removed ones, a leader from T if the old one left, and a new leader epoch whenever a
//! replica leaves, so that a removed replica's fetches are fenced. A target that only drops or
//! reorders in-sync replicas completes at once. A new target replaces a reassignment under way
//! (computed from the assignment as it is, so replicas being added that the new target leaves
//! out are removed again); cancelling reverts to the original replicas.

use std::collections::BTreeSet;

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};

use crate::controller::ControllerError;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::partition_change::{unclean_election_enabled, without, Change};
use crate::records::MetadataRecord;

/// One topic of an AlterPartitionReassignments: each partition's target replicas, or `None`
/// to cancel its reassignment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicReassignments {
    pub topic: String,
    pub partitions: Vec<(i32, Option<Vec<i32>>)>,
}

/// Each partition's outcome, by topic, in the order asked.
pub type ReassignmentOutcomes = Vec<(String, Vec<(i32, Result<(), ControllerError>)>)>;

fn refused(code: ResponseError, message: String) -> ControllerError {
    ControllerError {
        code: code.code(),
        message,
    }
}

/// Decides an AlterPartitionReassignments: each partition on the image as the ones before it
/// in the request leave it (a partition named twice takes the later target). Without
/// `allow_rf_change` (KIP-860), a target of another size than the partition has (or, under
/// way, is being given) is refused.
pub fn alter_reassignments(
    image: &MetadataImage,
    topics: &[TopicReassignments],
    allow_rf_change: bool,
) -> (Vec<MetadataRecord>, ReassignmentOutcomes) {
    let mut after = image.clone();
    let mut records = Vec::new();
    let outcomes = topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|(partition, target)| {
                    let decided = alter(&after, &t.topic, *partition, target, allow_rf_change);
                    let outcome = decided.map(|record| {
                        if let Some(record) = record {
                            after.apply(&record);
                            records.push(record);
                        }
                    });
                    (*partition, outcome)
                })
                .collect();
            (t.topic.clone(), partitions)
        })
        .collect();
    (records, outcomes)
}

fn alter(
    image: &MetadataImage,
    topic: &str,
    partition: i32,
    target: &Option<Vec<i32>>,
    allow_rf_change: bool,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let unknown = |message| refused(ResponseError::UnknownTopicOrPartition, message);
    let t = image
        .topics
        .get(topic)
        .ok_or_else(|| unknown(format!("Unable to find a topic named {topic}.")))?;
    let meta = t
        .partitions
        .get(&partition)
        .ok_or_else(|| unknown(format!("Unable to find partition {topic}:{partition}.")))?;
    let target = match target {
        None => return cancel(image, t, partition, meta),
        Some(target) => target,
    };
    check_target(image, target)?;
    // The size the partition has or, under way, is being given (Kafka 4.1's check).
    let current = without(&meta.replicas, &meta.removing_replicas);
    if !allow_rf_change && target.len() != current.len() {
        return Err(refused(
            ResponseError::InvalidReplicationFactor,
            format!(
                "The replication factor of {topic}:{partition} would change from {} to {}, and allowReplicationFactorChange is false.",
                current.len(),
                target.len()
            ),
        ));
    }
    let removing: Vec<i32> = sorted_difference(&meta.replicas, target);
    // A replica being added stays one when the new target keeps it, so that the same target
    // asked for again changes nothing and a cancel still takes it out.
    let mut adding: Vec<i32> = sorted_difference(target, &meta.replicas);
    adding.extend(meta.adding_replicas.iter().filter(|r| target.contains(r)));
    adding.sort_unstable();
    let mut replicas = target.clone();
    replicas.extend(&removing);
    let change = Change {
        replicas,
        adding,
        removing,
        ..Change::isr(meta, meta.isr.clone())
    };
    Ok(change.record(image, t, partition, meta))
}

/// Back to the original replicas: those being added leave the assignment and the ISR. When
/// only added replicas are in sync, an eligible original replica leads (KIP-966) or, failing
/// that, the revert is an unclean election (an original replica that never had the newest
/// records leads), allowed only by the topic's `unclean.leader.election.enable` (as set on the
/// topic or as the cluster-wide dynamic default: the controller does not see the brokers'
/// static configs); a revert that would leave no replica that may lead is refused.
fn cancel(
    image: &MetadataImage,
    t: &TopicImage,
    partition: i32,
    meta: &PartitionImage,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let topic = &t.name;
    let original = without(&meta.replicas, &meta.adding_replicas);
    if !meta.is_reassigning() {
        return Err(refused(
            ResponseError::NoReassignmentInProgress,
            format!("No partition reassignment is in progress for {topic}:{partition}."),
        ));
    }
    let isr = without(&meta.isr, &meta.adding_replicas);
    let change = Change {
        replicas: original,
        adding: Vec::new(),
        removing: Vec::new(),
        unclean: unclean_election_enabled(image, topic),
        ..Change::isr(meta, isr)
    };
    let record = change.record(image, t, partition, meta);
    // Stranded: no replica left that may ever lead without an unclean election.
    let stranded = matches!(&record, Some(MetadataRecord::Partition { state, .. })
        if state.isr.is_empty() && state.elr.is_empty() && state.last_known_elr.is_empty());
    if stranded {
        return Err(refused(
            ResponseError::InvalidReplicaAssignment,
            format!("Unable to revert partition assignment for {topic}:{partition} because it would require an unclean leader election."),
        ));
    }
    Ok(record)
}

/// Kafka's checks of a manual assignment, with its messages.
fn check_target(image: &MetadataImage, target: &[i32]) -> Result<(), ControllerError> {
    let invalid = |message| Err(refused(ResponseError::InvalidReplicaAssignment, message));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = target.iter().find(|r| !seen.insert(**r)) {
        return invalid(format!(
            "The manual partition assignment includes the broker {twice} more than once."
        ));
    }
    if let Some(unknown) = target.iter().find(|r| !image.brokers.contains_key(r)) {
        return invalid(format!(
            "The manual partition assignment includes broker {unknown}, but no such broker is registered."
        ));
    }
    Ok(())
}

fn sorted_difference(a: &[i32], b: &[i32]) -> Vec<i32> {
    let set: BTreeSet<i32> = a.iter().copied().filter(|r| !b.contains(r)).collect();
    set.into_iter().collect()
}

/// ListPartitionReassignments: the partitions under reassignment, of the topics and partitions
/// named (`None`: all), by topic; unknown names and partitions not moving are left out.
pub fn ongoing<'a>(
    image: &'a MetadataImage,
    requested: Option<&[(String, Vec<i32>)]>,
) -> Vec<(&'a str, Vec<(i32, &'a PartitionImage)>)> {
    let moving = |topic: &'a crate::image::TopicImage, partitions: Vec<i32>| {
        let found: Vec<(i32, &PartitionImage)> = partitions
            .into_iter()
            .filter_map(|p| topic.partitions.get(&p).map(|meta| (p, meta)))
            .filter(|(_, meta)| meta.is_reassigning())
            .collect();
        (!found.is_empty()).then_some((topic.name.as_str(), found))
    };
    match requested {
        None => image
            .topics
            .values()
            .filter_map(|t| moving(t, t.partitions.keys().copied().collect()))
            .collect(),
        Some(requested) => requested
            .iter()
            .filter_map(|(name, partitions)| {
                let topic = image.topics.get(name)?;
                moving(topic, partitions.clone())
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isr::{alter_partitions, IsrProposal};
    use uuid::Uuid;

    /// Brokers 1-4 (those in `fenced` fenced) and topic `t` with one partition on `replicas`,
    /// all in sync, led by the first.
    fn image(replicas: &[i32], fenced: &[i32]) -> MetadataImage {
        crate::elections::tests::image(fenced, &[(replicas, replicas, replicas[0])])
    }

    fn reassign(image: &mut MetadataImage, target: Option<&[i32]>) -> Result<usize, i16> {
        let request = [TopicReassignments {
            topic: "t".into(),
            partitions: vec![(0, target.map(<[i32]>::to_vec))],
        }];
        let (records, mut outcomes) = alter_reassignments(image, &request, true);
        let (_, outcome) = outcomes.remove(0).1.remove(0);
        outcome.map_err(|e| e.code)?;
        records.iter().for_each(|r| image.apply(r));
        Ok(records.len())
    }

    fn partition(image: &MetadataImage) -> PartitionImage {
        image.topics["t"].partitions[&0].clone()
    }

    /// The leader proposes `isr` in the partition's current epochs.
    fn propose(image: &mut MetadataImage, isr: &[i32]) {
        let p = partition(image);
        let proposal = IsrProposal {
            topic_id: image.topics["t"].id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr.to_vec(),
        };
        let (records, outcomes) = alter_partitions(image, p.leader, &[proposal]);
        assert_eq!(outcomes, vec![Ok(())]);
        records.iter().for_each(|r| image.apply(r));
    }

    #[test]
    fn a_move_adds_then_completes_when_the_new_replicas_are_in_sync() {
        let mut image = image(&[1, 2], &[]);
        assert_eq!(reassign(&mut image, Some(&[2, 3])), Ok(1));
        let p = partition(&image);
        assert_eq!(
            (
                p.replicas.clone(),
                p.adding_replicas.clone(),
                p.removing_replicas.clone()
            ),
            (vec![2, 3, 1], vec![3], vec![1])
        );
        assert_eq!(
            (p.isr.clone(), p.leader, p.leader_epoch),
            (vec![1, 2], 1, 4)
        );
        assert_eq!(ongoing(&image, None).len(), 1);
        // The new replica caught up: the leader's expansion completes the move, and the
        // leader, which leaves, hands over to the first target replica in sync.
        propose(&mut image, &[1, 2, 3]);
        let p = partition(&image);
        assert!(!p.is_reassigning());
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch),
            (vec![2, 3], vec![2, 3], 2, 5)
        );
        assert!(ongoing(&image, None).is_empty());
        // Cancelling now finds nothing to cancel.
        assert_eq!(
            reassign(&mut image, None),
            Err(85),
            "NO_REASSIGNMENT_IN_PROGRESS"
        );
    }

    #[test]
    fn dropping_or_reordering_in_sync_replicas_completes_at_once() {
        let mut image = image(&[1, 2, 3], &[]);
        assert_eq!(reassign(&mut image, Some(&[3, 1])), Ok(1));
        let p = partition(&image);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader, p.leader_epoch),
            (vec![3, 1], vec![3, 1], 1, 5),
            "a replica left: a new leader epoch though the leader stays"
        );
        assert_eq!(reassign(&mut image, Some(&[1, 3])), Ok(1));
        let p = partition(&image);
        assert_eq!((p.replicas.clone(), p.leader_epoch), (vec![1, 3], 5));
        assert_eq!(
            reassign(&mut image, Some(&[1, 3])),
            Ok(0),
            "nothing to change"
        );
    }

    #[test]
    fn cancelling_restores_the_original_replicas() {
        let mut image = image(&[1, 2], &[]);
        reassign(&mut image, Some(&[3, 4])).unwrap();
        assert_eq!(partition(&image).replicas, vec![3, 4, 1, 2]);
        assert_eq!(reassign(&mut image, None), Ok(1));
        let p = partition(&image);
        assert!(!p.is_reassigning());
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 2], vec![1, 2], 1)
        );
    }

    #[test]
    fn the_same_target_asked_again_changes_nothing_and_still_cancels() {
        let mut image = image(&[1, 2], &[]);
        reassign(&mut image, Some(&[2, 3])).unwrap();
        let before = partition(&image);
        assert_eq!(reassign(&mut image, Some(&[2, 3])), Ok(0));
        assert_eq!(partition(&image), before);
        assert_eq!(reassign(&mut image, None), Ok(1));
        // Kafka's revert keeps the order of the assignment under way: the target first.
        assert_eq!(partition(&image).replicas, vec![2, 1]);
        // Without a change of size allowed (KIP-860), a move under way counts as its target.
        reassign(&mut image, Some(&[2, 3, 4])).unwrap();
        let request = |target: Vec<i32>| {
            let request = [TopicReassignments {
                topic: "t".into(),
                partitions: vec![(0, Some(target))],
            }];
            let (_, outcomes) = alter_reassignments(&image, &request, false);
            outcomes[0].1[0].1.as_ref().err().map(|e| e.code)
        };
        assert_eq!(request(vec![2, 3, 4]), None);
        assert_eq!(request(vec![2, 3]), Some(38));
    }

    #[test]
    fn a_new_target_replaces_the_one_under_way() {
        let mut image = image(&[1, 2], &[]);
        reassign(&mut image, Some(&[1, 3])).unwrap();
        reassign(&mut image, Some(&[1, 4])).unwrap();
        let p = partition(&image);
        assert_eq!(
            (
                p.replicas.clone(),
                p.adding_replicas.clone(),
                p.removing_replicas.clone()
            ),
            (vec![1, 4, 2, 3], vec![4], vec![2, 3])
        );
        // Replica 3, added by the first target, joined the ISR meanwhile: not enough.
        propose(&mut image, &[1, 2, 3]);
        assert!(partition(&image).is_reassigning());
        propose(&mut image, &[1, 2, 3, 4]);
        let p = partition(&image);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 4], vec![1, 4], 1)
        );
    }

    #[test]
    fn refusals_carry_kafkas_codes() {
        let mut image = image(&[1, 2], &[4]);
        assert_eq!(
            reassign(&mut image, Some(&[])),
            Err(39),
            "INVALID_REPLICA_ASSIGNMENT"
        );
        assert_eq!(reassign(&mut image, Some(&[1, 1])), Err(39));
        assert_eq!(
            reassign(&mut image, Some(&[1, 9])),
            Err(39),
            "not registered"
        );
        assert_eq!(
            reassign(&mut image, None),
            Err(85),
            "NO_REASSIGNMENT_IN_PROGRESS"
        );
        // A fenced broker may be a target: it catches up once it is back.
        assert_eq!(reassign(&mut image, Some(&[1, 4])), Ok(1));
        let request = |topic: &str, partition| {
            let request = [TopicReassignments {
                topic: topic.into(),
                partitions: vec![(partition, Some(vec![1, 2, 3]))],
            }];
            let (records, outcomes) = alter_reassignments(&image, &request, false);
            assert!(records.is_empty());
            outcomes[0].1[0].1.as_ref().unwrap_err().code
        };
        assert_eq!(request("u", 0), 3, "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(request("t", 7), 3);
        assert_eq!(request("t", 0), 38, "INVALID_REPLICATION_FACTOR (KIP-860)");
    }

    #[test]
    fn a_revert_that_needs_an_unclean_election_is_refused_unless_enabled() {
        // 1 and 2 fell out of the ISR after 3 was added and caught up alone.
        let mut image = image(&[1, 2], &[]);
        reassign(&mut image, Some(&[1, 2, 3])).unwrap();
        let id = image.topics["t"].id;
        let mut p = partition(&image);
        p.isr = vec![3];
        p.leader = 3;
        image.apply(&p.record(id, 0));
        assert_eq!(reassign(&mut image, None), Err(39));
        image.apply(&MetadataRecord::Config {
            resource: crate::records::ConfigResource::Topic("t".into()),
            name: "unclean.leader.election.enable".into(),
            value: Some("true".into()),
        });
        assert_eq!(reassign(&mut image, None), Ok(1));
        let p = partition(&image);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone(), p.leader),
            (vec![1, 2], vec![1], 1)
        );
    }

    #[test]
    fn old_records_without_reassignment_fields_still_read() {
        let json = r#"{"type":"Partition","topic_id":"00000000-0000-0000-0000-000000000007","partition":2,"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":3,"partition_epoch":5}"#;
        let record: MetadataRecord = serde_json::from_str(json).unwrap();
        let state = PartitionImage {
            leader_epoch: 3,
            partition_epoch: 5,
            ..PartitionImage::new(vec![1, 2], vec![1], 1)
        };
        assert_eq!(record, state.record(Uuid::from_u128(7), 2));
        assert_eq!(
            serde_json::to_string(&record).unwrap(),
            json,
            "written as before"
        );
    }
}
