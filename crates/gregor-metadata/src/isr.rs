//! In-sync replica sets. A partition's leader proposes the ISR it sees (AlterPartition: a
//! follower that caught up joins, one that fell behind leaves) and the controller decides, so
//! that the ISR, and with it the choice of the next leader, changes only through the metadata
//! log. A proposal names the partition and leader epochs it was made in: one made on a state
//! that changed meanwhile is refused, and the leader proposes again on the new state. A replica
//! joins only while its broker is registered and unfenced (KIP-841: a broker that is fenced or
//! shutting down must not be counted on for acknowledged records).

use std::collections::HashSet;

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::controller::ControllerError;
use crate::image::MetadataImage;
use crate::partition_change::Change;
use crate::records::MetadataRecord;

/// One partition's proposed ISR, as its leader saw the partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrProposal {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

fn refused(code: ResponseError, message: String) -> ControllerError {
    ControllerError {
        code: code.code(),
        message,
    }
}

/// Decides the proposals of leader `broker_id`: the records of those accepted (none for a
/// proposal that changes nothing) and each proposal's outcome, in order. Within one request a
/// partition can change once; a second proposal for it is stale.
pub fn alter_partitions(
    image: &MetadataImage,
    broker_id: i32,
    proposals: &[IsrProposal],
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut records = Vec::new();
    let mut changed = HashSet::new();
    let outcomes = proposals
        .iter()
        .map(|proposal| {
            let key = (proposal.topic_id, proposal.partition);
            if changed.contains(&key) {
                return Err(refused(
                    ResponseError::InvalidUpdateVersion,
                    format!(
                        "partition {} was already changed by this request",
                        proposal.partition
                    ),
                ));
            }
            let record = decide(image, broker_id, proposal)?;
            if let Some(record) = record {
                changed.insert(key);
                records.push(record);
            }
            Ok(())
        })
        .collect();
    (records, outcomes)
}

/// One proposal: the record that carries it out (`None`: the ISR is already that), or why not.
fn decide(
    image: &MetadataImage,
    broker_id: i32,
    proposal: &IsrProposal,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let topic = image.topic_by_id(&proposal.topic_id).ok_or_else(|| {
        refused(
            ResponseError::UnknownTopicId,
            format!("no topic has id {}", proposal.topic_id),
        )
    })?;
    let name = format!("{}-{}", topic.name, proposal.partition);
    let meta = topic.partitions.get(&proposal.partition).ok_or_else(|| {
        refused(
            ResponseError::UnknownTopicOrPartition,
            format!("{name} does not exist"),
        )
    })?;
    if proposal.leader_epoch != meta.leader_epoch {
        return Err(refused(
            ResponseError::FencedLeaderEpoch,
            format!(
                "{name} is in leader epoch {}, not {}",
                meta.leader_epoch, proposal.leader_epoch
            ),
        ));
    }
    if meta.leader != broker_id {
        return Err(refused(
            ResponseError::InvalidRequest,
            format!("broker {broker_id} does not lead {name}"),
        ));
    }
    if proposal.partition_epoch != meta.partition_epoch {
        return Err(refused(
            ResponseError::InvalidUpdateVersion,
            format!(
                "{name} is in partition epoch {}, not {}",
                meta.partition_epoch, proposal.partition_epoch
            ),
        ));
    }
    let distinct: HashSet<&i32> = proposal.new_isr.iter().collect();
    let valid = distinct.len() == proposal.new_isr.len()
        && proposal.new_isr.contains(&broker_id)
        && proposal.new_isr.iter().all(|r| meta.replicas.contains(r));
    if !valid {
        return Err(refused(
            ResponseError::InvalidRequest,
            format!(
                "ISR {:?} of {name} must be distinct replicas of {:?} that include the leader",
                proposal.new_isr, meta.replicas
            ),
        ));
    }
    let ineligible: Vec<i32> = proposal
        .new_isr
        .iter()
        .copied()
        .filter(|r| !meta.isr.contains(r))
        .filter(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
        .collect();
    if !ineligible.is_empty() {
        return Err(refused(
            ResponseError::IneligibleReplica,
            format!("replicas {ineligible:?} of {name} are fenced or not registered"),
        ));
    }
    let mut current = meta.isr.clone();
    let mut proposed = proposal.new_isr.clone();
    current.sort_unstable();
    proposed.sort_unstable();
    if current == proposed {
        return Ok(None);
    }
    // The ISR keeps the order of the assignment, so that an election's first choice is stable.
    // An expansion that brings the last replica of a reassignment in sync completes it.
    let isr = meta
        .replicas
        .iter()
        .copied()
        .filter(|r| proposal.new_isr.contains(r))
        .collect();
    let change = Change::isr(meta, isr);
    Ok(change.record(image, topic, proposal.partition, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::PartitionImage;

    /// Brokers 1, 2, 3 (3 fenced) and one partition on all three, led by 1 with ISR [1, 2], in
    /// leader epoch 4 and partition epoch 0.
    fn image() -> (MetadataImage, Uuid) {
        let image = crate::elections::tests::image(&[3], &[(&[1, 2, 3], &[1, 2], 1)]);
        let id = image.topics["t"].id;
        (image, id)
    }

    fn proposal(id: Uuid, leader_epoch: i32, partition_epoch: i32, isr: &[i32]) -> IsrProposal {
        IsrProposal {
            topic_id: id,
            partition: 0,
            leader_epoch,
            partition_epoch,
            new_isr: isr.to_vec(),
        }
    }

    fn partition(image: &MetadataImage) -> &PartitionImage {
        &image.topics["t"].partitions[&0]
    }

    #[test]
    fn a_shrink_is_recorded_in_a_new_partition_epoch_under_the_same_leader_epoch() {
        let (mut image, id) = image();
        let (records, outcomes) = alter_partitions(&image, 1, &[proposal(id, 4, 0, &[1])]);
        assert_eq!(outcomes, vec![Ok(())]);
        records.iter().for_each(|r| image.apply(r));
        let p = partition(&image);
        assert_eq!(
            (p.isr.clone(), p.leader, p.leader_epoch, p.partition_epoch),
            (vec![1], 1, 4, 1)
        );
        // Unchanged is no record; stale is refused.
        let (records, outcomes) = alter_partitions(&image, 1, &[proposal(id, 4, 1, &[1])]);
        assert!(records.is_empty());
        assert_eq!(outcomes, vec![Ok(())]);
        let (_, outcomes) = alter_partitions(&image, 1, &[proposal(id, 4, 0, &[1, 2])]);
        assert_eq!(
            outcomes[0].as_ref().unwrap_err().code,
            95,
            "INVALID_UPDATE_VERSION"
        );
    }

    #[test]
    fn refusals_carry_kafkas_codes() {
        let (image, id) = image();
        let code = |broker: i32, p: IsrProposal| {
            let (records, outcomes) = alter_partitions(&image, broker, &[p]);
            assert!(records.is_empty());
            outcomes[0].as_ref().map_err(|e| e.code).err()
        };
        assert_eq!(
            code(1, proposal(id, 3, 0, &[1])),
            Some(74),
            "FENCED_LEADER_EPOCH"
        );
        assert_eq!(
            code(2, proposal(id, 4, 0, &[2])),
            Some(42),
            "INVALID_REQUEST: not the leader"
        );
        assert_eq!(
            code(1, proposal(id, 4, 0, &[2])),
            Some(42),
            "without the leader"
        );
        assert_eq!(
            code(1, proposal(id, 4, 0, &[1, 1])),
            Some(42),
            "a duplicate"
        );
        assert_eq!(
            code(1, proposal(id, 4, 0, &[1, 4])),
            Some(42),
            "not a replica"
        );
        assert_eq!(
            code(1, proposal(id, 4, 0, &[1, 2, 3])),
            Some(107),
            "INELIGIBLE_REPLICA: fenced"
        );
        assert_eq!(
            code(1, proposal(Uuid::from_u128(8), 4, 0, &[1])),
            Some(100),
            "UNKNOWN_TOPIC_ID"
        );
        let mut other = proposal(id, 4, 0, &[1]);
        other.partition = 5;
        assert_eq!(code(1, other), Some(3), "UNKNOWN_TOPIC_OR_PARTITION");
    }

    #[test]
    fn an_expansion_keeps_the_assignment_order_and_one_change_per_request() {
        let (mut image, id) = image();
        image.apply(&MetadataRecord::UnfenceBroker { node_id: 3 });
        let twice = [proposal(id, 4, 0, &[3, 1, 2]), proposal(id, 4, 0, &[1])];
        let (records, outcomes) = alter_partitions(&image, 1, &twice);
        assert_eq!(outcomes[0], Ok(()));
        assert_eq!(outcomes[1].as_ref().unwrap_err().code, 95);
        records.iter().for_each(|r| image.apply(r));
        assert_eq!(partition(&image).isr, vec![1, 2, 3]);
    }
}
