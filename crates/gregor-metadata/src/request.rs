//! Controller requests as values. A broker that needs a metadata change hands one of these to the
//! active controller, which decides it on the newest image and answers once the records carrying
//! it are committed. Unlike a closure, a value can be queued, logged and sent to a controller on
//! another node, as the Kafka request it stands for (CreateTopics, AllocateProducerIds,
//! BrokerRegistration, ...).

use std::collections::{BTreeMap, BTreeSet};

use proto_kafka::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::configs::GroupConfigBounds;
use crate::controller::{
    allocate_producer_ids, alter_configs, config_resource, create_partitions, create_topic,
    delete_topic, incremental_alter_configs, ConfigChange, ControllerError, NewTopic,
    TopicDefaults,
};
use crate::elections::{balance_leaders, elect_leaders, ElectionType, TopicElections};
use crate::features::{bootstrap_records, update_features, FeatureUpdate, ELR_VERSION};
use crate::image::{BrokerRegistration, MetadataImage};
use crate::isr::{alter_partitions, IsrProposal};
use crate::partition_change::{unclean_election_enabled, without, Change};
use crate::reassignment::{alter_reassignments, ReassignmentOutcomes, TopicReassignments};
use crate::records::MetadataRecord;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// CreateTopics, one topic; `topic_id` is chosen by the caller so a retry is recognisable.
    CreateTopic {
        topic: NewTopic,
        defaults: TopicDefaults,
        topic_id: Uuid,
    },
    /// CreateTopics with several topics: decided in order on the image as the earlier ones leave
    /// it, and committed as one entry; each topic succeeds or fails on its own.
    CreateTopics {
        topics: Vec<(NewTopic, Uuid)>,
        defaults: TopicDefaults,
    },
    DeleteTopic {
        name: String,
    },
    /// CreatePartitions: grow `name` to `count` partitions.
    CreatePartitions {
        name: String,
        count: i32,
        assignments: Vec<Vec<i32>>,
    },
    /// AlterConfigs of one resource: the given configs replace its dynamic ones.
    AlterConfigs {
        resource_type: i8,
        name: String,
        configs: Vec<(String, Option<String>)>,
        group_bounds: GroupConfigBounds,
    },
    /// IncrementalAlterConfigs of one resource.
    IncrementalAlterConfigs {
        resource_type: i8,
        name: String,
        changes: Vec<ConfigChange>,
        group_bounds: GroupConfigBounds,
    },
    UpdateFeatures {
        updates: Vec<FeatureUpdate>,
    },
    /// A block of `block` producer ids for `node_id`, none below `floor`.
    AllocateProducerIds {
        node_id: i32,
        block: i64,
        floor: i64,
    },
    /// A broker's endpoint; nothing is written when the registration is the recorded one.
    /// `incarnation` names the broker process (new at each start): the active controller
    /// refuses a second process for a node id whose broker is alive (DUPLICATE_BROKER_REGISTRATION).
    /// A broker back from an unclean shutdown is fenced and leaves every ISR and ELR.
    RegisterBroker {
        registration: BrokerRegistration,
        incarnation: Uuid,
        /// Whether the broker's last process stopped cleanly (every log dir had its
        /// clean-shutdown marker): one that did not may have lost records it acknowledged.
        #[serde(default)]
        clean_shutdown: bool,
    },
    /// BrokerHeartbeat: a broker is alive and has applied the metadata log up to
    /// `applied_offset`. A fenced broker that has caught up with the image is unfenced, and
    /// takes back the leadership of the partitions it is the only in-sync replica of.
    BrokerHeartbeat {
        node_id: i32,
        applied_offset: i64,
        /// The broker process (see `RegisterBroker`): a heartbeat of another process than the
        /// live one is refused (STALE_BROKER_EPOCH).
        incarnation: Uuid,
    },
    /// No heartbeat from the broker for broker.session.timeout.ms, or the broker's own
    /// controlled shutdown: it is fenced, and each partition it leads moves to another unfenced
    /// in-sync replica, or has no leader.
    FenceBroker {
        node_id: i32,
    },
    /// UnregisterBroker: a broker gone for good leaves the cluster (fenced first, with the
    /// leadership moves that brings, then its registration removed).
    UnregisterBroker {
        node_id: i32,
    },
    /// AlterPartition (56): partition leader `broker_id` proposes new in-sync replica sets.
    AlterPartition {
        broker_id: i32,
        proposals: Vec<IsrProposal>,
    },
    /// ElectLeaders: partitions by topic (`None`: all of them).
    ElectLeaders {
        election: ElectionType,
        partitions: Option<BTreeMap<String, BTreeSet<i32>>>,
    },
    /// AlterPartitionReassignments: new target replicas per partition (`None` cancels);
    /// `allow_rf_change` false refuses targets that change a partition's size (KIP-860).
    AlterPartitionReassignments {
        topics: Vec<TopicReassignments>,
        allow_rf_change: bool,
    },
    /// The controller's own leader balancing (`auto.leader.rebalance.enable`): preferred
    /// elections where the preferred replica can lead and does not; the reply counts them.
    BalanceLeaders,
    /// DescribeQuorum: the active controller's view of the quorum. Answered by the controller
    /// from the Raft state, not decided on the image.
    DescribeQuorum,
    /// AddRaftVoter / RemoveRaftVoter (KIP-853): a change of the quorum's voters, carried out
    /// by the Raft engine on the leader, not decided on the image.
    ChangeVoters(VoterChange),
    /// A node's start: a new metadata log takes `cluster_id` and the bootstrap feature levels
    /// (features never set are set); a log of another cluster refuses it.
    Format {
        cluster_id: String,
    },
}

/// What the controller answers to a request it carried out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ControllerReply {
    /// Done (or, when validating only, acceptable); `changed` counts the records it took (0:
    /// nothing to change).
    Done {
        changed: usize,
    },
    /// The first id of the allocated block.
    ProducerIds {
        start: i64,
    },
    /// A heartbeat's answer: whether the broker is (still) fenced.
    Heartbeat {
        fenced: bool,
    },
    Quorum(QuorumDescription),
    /// Each topic of a CreateTopics, in order: created (or, validating only, acceptable) or not.
    Created(Vec<Result<(), ControllerError>>),
    /// ElectLeaders' outcome per partition.
    Elections(Vec<TopicElections>),
    /// Each proposal of an AlterPartition, in order: accepted or not.
    IsrChanges(Vec<Result<(), ControllerError>>),
    /// AlterPartitionReassignments' outcome per partition.
    Reassignments(ReassignmentOutcomes),
}

/// A change of the quorum's voters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum VoterChange {
    /// A controller, reached on its controller listener at `host:port`, copies the log and
    /// then votes.
    Add {
        node_id: i32,
        host: String,
        port: u16,
    },
    /// A voter stops voting; it goes on copying the log (an observer), so that its broker
    /// still follows the metadata.
    Remove { node_id: i32 },
    /// A broker only (no voter) copies the log from `host:port`, its client listener; sent
    /// again at each start (the address may have changed).
    Observe {
        node_id: i32,
        host: String,
        port: u16,
        incarnation: Uuid,
    },
}

/// The metadata quorum as its leader sees it (DescribeQuorum).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuorumDescription {
    pub leader_id: i32,
    /// The Raft term, which is KRaft's leader epoch.
    pub leader_epoch: i32,
    /// The offset after the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<ReplicaProgress>,
    /// Nodes that copy the log without voting.
    pub observers: Vec<ReplicaProgress>,
}

/// One replica of the metadata log: where its controller listener is and how far its log
/// reaches (-1: not known to the leader).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaProgress {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub log_end_offset: i64,
}

/// Decides `request` on `image`: the records that carry it out (none when `validate_only`) and
/// the reply, or the Kafka error that refuses it. Pure, like the decisions it dispatches to.
pub fn decide(
    image: &MetadataImage,
    request: &ControllerRequest,
    validate_only: bool,
) -> Result<(Vec<MetadataRecord>, ControllerReply), ControllerError> {
    let records = match request {
        ControllerRequest::CreateTopic {
            topic,
            defaults,
            topic_id,
        } => create_topic(image, topic, defaults, *topic_id)?,
        ControllerRequest::CreateTopics { topics, defaults } => {
            let mut after = image.clone();
            let mut records = Vec::new();
            let outcomes = topics
                .iter()
                .map(|(topic, topic_id)| {
                    let created = create_topic(&after, topic, defaults, *topic_id)?;
                    created.iter().for_each(|record| after.apply(record));
                    records.extend(created);
                    Ok(())
                })
                .collect();
            let records = if validate_only { vec![] } else { records };
            return Ok((records, ControllerReply::Created(outcomes)));
        }
        ControllerRequest::DeleteTopic { name } => delete_topic(image, name)?,
        ControllerRequest::CreatePartitions {
            name,
            count,
            assignments,
        } => create_partitions(image, name, *count, assignments.clone())?,
        ControllerRequest::AlterConfigs {
            resource_type,
            name,
            configs,
            group_bounds,
        } => {
            let resource = config_resource(image, *resource_type, name)?;
            alter_configs(image, &resource, configs, group_bounds)?
        }
        ControllerRequest::IncrementalAlterConfigs {
            resource_type,
            name,
            changes,
            group_bounds,
        } => {
            let resource = config_resource(image, *resource_type, name)?;
            incremental_alter_configs(image, &resource, changes, group_bounds)?
        }
        ControllerRequest::UpdateFeatures { updates } => {
            update_features(image, updates, validate_only)?
        }
        ControllerRequest::AllocateProducerIds {
            node_id,
            block,
            floor,
        } => {
            let (start, record) = allocate_producer_ids(image, *node_id, *block, *floor);
            let records = if validate_only { vec![] } else { vec![record] };
            return Ok((records, ControllerReply::ProducerIds { start }));
        }
        ControllerRequest::RegisterBroker {
            registration,
            clean_shutdown,
            ..
        } => {
            let node_id = registration.node_id;
            let known = image.brokers.get(&node_id);
            let mut records = Vec::new();
            if !known.is_some_and(|b| b.same_endpoint(registration)) {
                records.push(MetadataRecord::RegisterBroker {
                    node_id,
                    host: registration.host.clone(),
                    port: registration.port,
                    rack: registration.rack.clone(),
                });
            }
            // With ELR, a broker back from an unclean shutdown may have lost records it
            // acknowledged, and one unregistered and back may be an empty disk: it starts
            // fenced and out of every ISR and ELR (KIP-966, Kafka's handleBrokerUncleanShutdown).
            // Without, only one unregistered and back starts fenced (unfencing gives it back
            // what it leads).
            let elr = image.feature_level(ELR_VERSION) >= 1;
            let named = image
                .topics
                .values()
                .flat_map(|t| t.partitions.values())
                .any(|p| {
                    let eligible = p.elr.contains(&node_id) || p.last_known_elr.contains(&node_id);
                    p.isr.contains(&node_id) || eligible
                });
            let lost = elr && !clean_shutdown;
            if named && (lost || known.is_none()) {
                if !known.is_some_and(|b| b.fenced) {
                    records.push(MetadataRecord::FenceBroker { node_id });
                }
                if elr {
                    records.extend(partition_changes(image, node_id, BrokerEvent::Lost));
                }
            }
            records
        }
        ControllerRequest::BrokerHeartbeat {
            node_id,
            applied_offset,
            ..
        } => {
            let broker = registered(image, *node_id)?;
            let unfence = broker.fenced && *applied_offset >= broker.fenced_at;
            let records = if unfence && !validate_only {
                fencing(image, *node_id, false)
            } else {
                vec![]
            };
            let fenced = broker.fenced && !unfence;
            return Ok((records, ControllerReply::Heartbeat { fenced }));
        }
        ControllerRequest::UnregisterBroker { node_id } => {
            let fenced = registered(image, *node_id)?.fenced;
            let mut records = if image.feature_level(ELR_VERSION) >= 1 {
                // Whatever comes back under its id may be an empty disk: out of every ELR too.
                let mut records = Vec::new();
                if !fenced {
                    records.push(MetadataRecord::FenceBroker { node_id: *node_id });
                }
                records.extend(partition_changes(image, *node_id, BrokerEvent::Lost));
                records
            } else if fenced {
                vec![]
            } else {
                fencing(image, *node_id, true)
            };
            records.push(MetadataRecord::UnregisterBroker { node_id: *node_id });
            records
        }
        ControllerRequest::FenceBroker { node_id } => match image.brokers.get(node_id) {
            Some(broker) if !broker.fenced => fencing(image, *node_id, true),
            _ => vec![],
        },
        ControllerRequest::ElectLeaders {
            election,
            partitions,
        } => {
            let (records, elections) = elect_leaders(image, *election, partitions.as_ref());
            let records = if validate_only { vec![] } else { records };
            return Ok((records, ControllerReply::Elections(elections)));
        }
        ControllerRequest::AlterPartition {
            broker_id,
            proposals,
        } => {
            registered(image, *broker_id)?;
            let (records, outcomes) = alter_partitions(image, *broker_id, proposals);
            let records = if validate_only { vec![] } else { records };
            return Ok((records, ControllerReply::IsrChanges(outcomes)));
        }
        ControllerRequest::AlterPartitionReassignments {
            topics,
            allow_rf_change,
        } => {
            let (records, outcomes) = alter_reassignments(image, topics, *allow_rf_change);
            let records = if validate_only { vec![] } else { records };
            return Ok((records, ControllerReply::Reassignments(outcomes)));
        }
        ControllerRequest::BalanceLeaders => balance_leaders(image),
        ControllerRequest::DescribeQuorum | ControllerRequest::ChangeVoters(_) => {
            return Err(ControllerError {
                code: ResponseError::InvalidRequest.code(),
                message: "the quorum's own requests are answered by the quorum, not decided".into(),
            });
        }
        ControllerRequest::Format { cluster_id } => {
            let mut records = Vec::new();
            if image.cluster_id.is_empty() {
                records.push(MetadataRecord::Cluster {
                    cluster_id: cluster_id.clone(),
                });
            } else if image.cluster_id != *cluster_id {
                return Err(ControllerError {
                    code: ResponseError::InconsistentClusterId.code(),
                    message: format!(
                        "the metadata log is of cluster {}, not {cluster_id}",
                        image.cluster_id
                    ),
                });
            }
            records.extend(bootstrap_records(image));
            records
        }
    };
    let changed = records.len();
    let records = if validate_only { vec![] } else { records };
    Ok((records, ControllerReply::Done { changed }))
}

/// The registration of broker `node_id`, or BROKER_ID_NOT_REGISTERED.
fn registered(image: &MetadataImage, node_id: i32) -> Result<&BrokerRegistration, ControllerError> {
    image.brokers.get(&node_id).ok_or_else(|| ControllerError {
        code: ResponseError::BrokerIdNotRegistered.code(),
        message: format!("broker {node_id} is not registered"),
    })
}

/// Fences (`fence`) or unfences a broker, with the ISR and leadership changes that follow
/// (Kafka's, `partition_change.rs`): a fenced broker leaves the ISR of every partition, and
/// those it led go to the first other unfenced in-sync replica, else to an unfenced eligible
/// one (KIP-966), else to no leader (-1). An unfenced broker takes the leaderless partitions it
/// may lead: in their ISR, or eligible with the ISR empty, or their last leader with neither
/// left. Topics with
/// `unclean.leader.election.enable` give a leaderless partition to any live replica. A leader
/// move bumps the leader epoch.
pub(crate) fn fencing(image: &MetadataImage, node_id: i32, fence: bool) -> Vec<MetadataRecord> {
    let mut records = vec![if fence {
        MetadataRecord::FenceBroker { node_id }
    } else {
        MetadataRecord::UnfenceBroker { node_id }
    }];
    let event = if fence {
        BrokerEvent::Fenced
    } else {
        BrokerEvent::Unfenced
    };
    records.extend(partition_changes(image, node_id, event));
    records
}

/// What happened to a broker, for its partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BrokerEvent {
    Fenced,
    Unfenced,
    /// Back from an unclean shutdown, or unregistered: it may have lost records.
    Lost,
}

/// The partition changes that follow `event` of broker `node_id` (`partition_change.rs`).
fn partition_changes(
    image: &MetadataImage,
    node_id: i32,
    event: BrokerEvent,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_election_enabled(image, &topic.name);
        for (&partition, p) in &topic.partitions {
            let in_isr = p.isr.contains(&node_id);
            let affected = match event {
                BrokerEvent::Fenced => in_isr || p.leader == node_id,
                BrokerEvent::Lost => in_isr || p.leader == node_id || p.elr.contains(&node_id),
                BrokerEvent::Unfenced => {
                    let eligible = p.isr.is_empty() && p.elr.contains(&node_id);
                    let last =
                        p.isr.is_empty() && p.elr.is_empty() && p.last_known_elr == [node_id];
                    let replica = unclean && p.replicas.contains(&node_id);
                    p.leader == -1 && (in_isr || eligible || last || replica)
                }
            };
            if !affected {
                continue;
            }
            let isr = match event {
                BrokerEvent::Unfenced => p.isr.clone(),
                BrokerEvent::Fenced | BrokerEvent::Lost => without(&p.isr, &[node_id]),
            };
            let change = Change {
                broker: Some((node_id, event == BrokerEvent::Unfenced)),
                lost: (event == BrokerEvent::Lost).then_some(node_id),
                unclean,
                ..Change::isr(p, isr)
            };
            records.extend(change.record(image, topic, partition, p));
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tests::{image_with_broker as image, new_topic, DEFAULTS};

    /// A two-partition topic whose id (a multiple of 6, unique per short name) starts its
    /// placement at the first broker of one, two or three.
    fn create(name: &str) -> ControllerRequest {
        let id = name
            .bytes()
            .fold(0u128, |h, b| h.wrapping_mul(257) ^ u128::from(b));
        let id = id % (u128::MAX / 6) * 6;
        ControllerRequest::CreateTopic {
            topic: new_topic(name, 2, -1),
            defaults: DEFAULTS,
            topic_id: Uuid::from_u128(id),
        }
    }

    #[test]
    fn validating_only_writes_nothing_but_answers_the_same() {
        let image = image();
        let (records, reply) = decide(&image, &create("t"), false).unwrap();
        assert_eq!(records.len(), 3, "a topic and two partitions");
        assert_eq!(reply, ControllerReply::Done { changed: 3 });
        let (records, reply) = decide(&image, &create("t"), true).unwrap();
        assert!(records.is_empty());
        assert_eq!(reply, ControllerReply::Done { changed: 3 });
        let refused = decide(&image, &create("bad name!"), true).unwrap_err();
        assert_eq!(refused.code, 17, "INVALID_TOPIC_EXCEPTION");
    }

    #[test]
    fn a_known_registration_writes_nothing() {
        let image = image();
        let register = |registration| ControllerRequest::RegisterBroker {
            registration,
            incarnation: Uuid::nil(),
            clean_shutdown: true,
        };
        let same = register(image.brokers[&1].clone());
        assert_eq!(decide(&image, &same, false).unwrap().0, vec![]);
        let mut moved = image.brokers[&1].clone();
        moved.port = 9093;
        let (records, _) = decide(&image, &register(moved), false).unwrap();
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn producer_id_blocks_start_at_the_floor_or_after_the_last() {
        let mut image = image();
        let allocate = |floor| ControllerRequest::AllocateProducerIds {
            node_id: 1,
            block: 1000,
            floor,
        };
        let (records, reply) = decide(&image, &allocate(0), false).unwrap();
        assert_eq!(reply, ControllerReply::ProducerIds { start: 0 });
        image.apply(&records[0]);
        let (_, reply) = decide(&image, &allocate(0), false).unwrap();
        assert_eq!(reply, ControllerReply::ProducerIds { start: 1000 });
        let (_, reply) = decide(&image, &allocate(5000), false).unwrap();
        assert_eq!(reply, ControllerReply::ProducerIds { start: 5000 });
    }

    #[test]
    fn format_sets_the_cluster_once_and_refuses_another() {
        let mut image = image();
        let format = |id: &str| ControllerRequest::Format {
            cluster_id: id.into(),
        };
        let (records, _) = decide(&image, &format("abc"), false).unwrap();
        assert!(records.len() > 1, "the cluster id and the feature levels");
        for record in &records {
            image.apply(record);
        }
        assert_eq!(image.cluster_id, "abc");
        assert_eq!(decide(&image, &format("abc"), false).unwrap().0, vec![]);
        let refused = decide(&image, &format("xyz"), false).unwrap_err();
        assert_eq!(refused.code, 104, "INCONSISTENT_CLUSTER_ID");
    }

    /// Decides `request` on `image` and applies its records, as the quorum would.
    fn commit(image: &mut MetadataImage, request: &ControllerRequest) -> ControllerReply {
        let (records, reply) = decide(image, request, false).unwrap();
        let last = image.offset + records.len() as i64;
        image.apply_committed(&records, last);
        reply
    }

    /// Fencing a broker takes the leadership of its partitions from it (no other in-sync
    /// replica: no leader, epoch bumped); it gets no new replicas meanwhile; a heartbeat that is
    /// behind the image keeps it fenced, a caught-up one unfences it and gives the leadership
    /// back (once it has applied its own fencing, however far the log went on since), and an
    /// unknown broker's heartbeat is refused.
    #[test]
    fn a_fenced_broker_leads_nothing_until_a_caught_up_heartbeat() {
        let mut image = image();
        image.apply(&MetadataRecord::RegisterBroker {
            node_id: 2,
            host: "127.0.0.1".into(),
            port: 9093,
            rack: None,
        });
        commit(&mut image, &create("t"));
        let leaders = |image: &MetadataImage| {
            let t = &image.topics["t"];
            t.partitions
                .values()
                .map(|p| (p.leader, p.leader_epoch))
                .collect::<Vec<_>>()
        };
        assert_eq!(leaders(&image), vec![(1, 0), (2, 0)]);

        let fence = ControllerRequest::FenceBroker { node_id: 2 };
        commit(&mut image, &fence);
        assert!(image.brokers[&2].fenced);
        assert_eq!(leaders(&image), vec![(1, 0), (-1, 1)]);
        assert_eq!(
            image.topics["t"].partitions[&1].isr,
            vec![2],
            "the ISR is kept"
        );
        assert_eq!(
            decide(&image, &fence, false).unwrap().0,
            vec![],
            "already fenced"
        );
        assert_eq!(image.unfenced_brokers(), vec![1]);
        commit(&mut image, &create("u"));
        let placed: Vec<i32> = image.topics["u"]
            .partitions
            .values()
            .map(|p| p.leader)
            .collect();
        assert_eq!(placed, vec![1, 1], "no new replica on a fenced broker");

        let fenced_at = image.brokers[&2].fenced_at;
        assert!(
            fenced_at < image.offset,
            "the log went on after the fencing"
        );
        let behind = ControllerRequest::BrokerHeartbeat {
            node_id: 2,
            applied_offset: fenced_at - 1,
            incarnation: Uuid::nil(),
        };
        assert_eq!(
            commit(&mut image, &behind),
            ControllerReply::Heartbeat { fenced: true }
        );
        let caught_up = ControllerRequest::BrokerHeartbeat {
            node_id: 2,
            applied_offset: fenced_at,
            incarnation: Uuid::nil(),
        };
        assert_eq!(
            commit(&mut image, &caught_up),
            ControllerReply::Heartbeat { fenced: false }
        );
        assert!(!image.brokers[&2].fenced);
        assert_eq!(leaders(&image), vec![(1, 0), (2, 2)]);
        let again = decide(&image, &caught_up, false).unwrap();
        assert_eq!(
            again,
            (vec![], ControllerReply::Heartbeat { fenced: false })
        );

        let unknown = ControllerRequest::BrokerHeartbeat {
            node_id: 9,
            applied_offset: 0,
            incarnation: Uuid::nil(),
        };
        assert_eq!(decide(&image, &unknown, false).unwrap_err().code, 102);
        // A broker gone for good is unregistered: fenced (its partition loses its leader), then
        // forgotten; twice is BROKER_ID_NOT_REGISTERED.
        let mut gone = image.clone();
        let unregister = ControllerRequest::UnregisterBroker { node_id: 2 };
        commit(&mut gone, &unregister);
        assert!(!gone.brokers.contains_key(&2));
        assert_eq!(leaders(&gone), vec![(1, 0), (-1, 3)]);
        assert_eq!(
            gone.topics["t"].partitions[&1].replicas,
            vec![2],
            "replicas kept"
        );
        assert_eq!(decide(&gone, &unregister, false).unwrap_err().code, 102);
        // Back, it registers fenced, and its first caught-up heartbeat gives its partition back.
        let back = ControllerRequest::RegisterBroker {
            registration: BrokerRegistration {
                node_id: 2,
                host: "127.0.0.1".into(),
                port: 9093,
                rack: None,
                fenced: false,
                fenced_at: 0,
            },
            incarnation: Uuid::nil(),
            clean_shutdown: true,
        };
        commit(&mut gone, &back);
        assert!(gone.brokers[&2].fenced);
        let heartbeat = ControllerRequest::BrokerHeartbeat {
            node_id: 2,
            applied_offset: gone.offset,
            incarnation: Uuid::nil(),
        };
        commit(&mut gone, &heartbeat);
        assert_eq!(leaders(&gone), vec![(1, 0), (2, 4)]);
        // A fenced broker survives a snapshot of the image.
        commit(&mut image, &fence);
        let mut rebuilt = MetadataImage::default();
        for record in image.to_records() {
            rebuilt.apply(&record);
        }
        assert!(rebuilt.brokers[&2].fenced);
    }

    /// Topics of one CreateTopics are decided as if one after the other (a name taken by an
    /// earlier one is refused, the others go on) and committed in one entry.
    #[test]
    fn topics_of_one_request_are_decided_in_order_and_committed_together() {
        let mut image = image();
        let topics = vec![
            (new_topic("a", 2, -1), Uuid::new_v4()),
            (new_topic("a", 1, -1), Uuid::new_v4()),
            (new_topic("bad name!", 1, -1), Uuid::new_v4()),
            (new_topic("b", 1, -1), Uuid::new_v4()),
        ];
        let request = ControllerRequest::CreateTopics {
            topics,
            defaults: DEFAULTS,
        };
        let (checked, reply) = decide(&image, &request, true).unwrap();
        assert!(checked.is_empty(), "validating only writes nothing");
        let ControllerReply::Created(outcomes) = reply else {
            panic!("{reply:?}");
        };
        let codes: Vec<i16> = outcomes
            .iter()
            .map(|o| o.as_ref().map_or_else(|e| e.code, |()| 0))
            .collect();
        assert_eq!(
            codes,
            vec![0, 36, 17, 0],
            "TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION"
        );
        commit(&mut image, &request);
        assert_eq!(image.topics["a"].partitions.len(), 2);
        assert_eq!(image.topics["b"].partitions.len(), 1);
    }
}
