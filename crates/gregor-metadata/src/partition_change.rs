//! A partition's next state (Kafka's `PartitionChangeBuilder`). Every change of a partition's
//! replicas, ISR or leader that follows a broker's fencing or return, a leader's AlterPartition,
//! a reassignment or an unclean election goes through [`Change::record`], which completes a
//! reassignment the ISR allows, keeps the eligible leader replicas, elects a leader if the
//! current one cannot stay, and takes a new leader epoch when the leader changes or a replica
//! leaves.
//!
//! Eligible leader replicas (KIP-966, `eligible.leader.replicas.version` 1, on for new
//! clusters): while the ISR is at least the topic's `min.insync.replicas` (at most the
//! replication factor), the ELR is empty. A change that leaves it smaller puts every replica it
//! removed from the ISR, and keeps every earlier ELR member that did not rejoin, in the ELR: the
//! high watermark stops below `min.insync.replicas`, so each of them holds every committed
//! record. The ISR may then empty (the last in-sync replica fenced), and a live ELR member leads
//! as the whole ISR, a clean election. Without ELR the last in-sync replica stays in the ISR
//! and the partition waits for it. Only an unclean election (the topic's
//! `unclean.leader.election.enable`, or ElectLeaders UNCLEAN) gives the partition to a replica
//! that may lack committed records; it is logged as losing them.

use crate::features::ELR_VERSION;
use crate::image::{MetadataImage, PartitionImage, TopicImage};
use crate::records::{ConfigResource, MetadataRecord};

const MIN_ISR: &str = "min.insync.replicas";

/// A partition's next replicas, ISR and reassignment, and how its leader may be chosen.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    /// A broker being fenced (`false`) or unfenced (`true`) by the records this change goes
    /// with: the image does not say so yet.
    pub broker: Option<(i32, bool)>,
    /// A replica that may have lost records (back from an unclean shutdown, or unregistered):
    /// it leaves the ISR and the ELR, as Kafka's `uncleanShutdownReplicas`.
    pub lost: Option<i32>,
    /// Without an in-sync or eligible replica that can lead, any live replica leads as the
    /// whole ISR (the records it lacks are lost).
    pub unclean: bool,
}

impl Change {
    /// The partition as it is, with `isr`.
    pub fn isr(meta: &PartitionImage, isr: Vec<i32>) -> Change {
        Change {
            replicas: meta.replicas.clone(),
            isr,
            adding: meta.adding_replicas.clone(),
            removing: meta.removing_replicas.clone(),
            broker: None,
            lost: None,
            unclean: false,
        }
    }

    /// Every target replica in sync, once the removed ones are left out: the reassignment is
    /// done (then the ISR is exactly the target replicas).
    fn complete_if_in_sync(&mut self) {
        if self.adding.is_empty() && self.removing.is_empty() {
            return;
        }
        let isr = without(&self.isr, &self.removing);
        let replicas = without(&self.replicas, &self.removing);
        if isr.is_empty() || !replicas.iter().all(|r| isr.contains(r)) {
            return;
        }
        self.isr = replicas.clone();
        self.replicas = replicas;
        self.adding.clear();
        self.removing.clear();
    }

    /// The record of this change to partition `partition` of `topic`, now `meta` (`None`: it
    /// changes nothing).
    pub fn record(
        mut self,
        image: &MetadataImage,
        topic: &TopicImage,
        partition: i32,
        meta: &PartitionImage,
    ) -> Option<MetadataRecord> {
        self.complete_if_in_sync();
        let elr_enabled = image.feature_level(ELR_VERSION) >= 1;
        if self.isr.is_empty() && !elr_enabled {
            // The last in-sync replica stays: its data is the partition's (or, ELR turned off,
            // the eligible replicas, who hold every committed record).
            let kept = [&meta.isr, &meta.elr, &meta.last_known_elr]
                .into_iter()
                .find(|kept| !kept.is_empty())
                .unwrap_or(&meta.isr);
            self.isr = self
                .replicas
                .iter()
                .copied()
                .filter(|r| kept.contains(r))
                .collect();
        }
        let mut elr = Vec::new();
        let min_isr = min_insync_replicas(image, &topic.name).min(self.replicas.len().max(1));
        if elr_enabled && self.isr.len() < min_isr {
            let was = |r: &i32| meta.isr.contains(r) || meta.elr.contains(r);
            elr = self
                .replicas
                .iter()
                .copied()
                .filter(|r| was(r) && !self.isr.contains(r) && self.lost != Some(*r))
                .collect();
        }
        let live = |r: i32| match self.broker {
            Some((id, unfenced)) if id == r => unfenced,
            _ => image.brokers.get(&r).is_some_and(|b| !b.fenced),
        };
        let can_lead = |r: i32| self.isr.contains(&r) && live(r);
        let mut leader = if can_lead(meta.leader) {
            meta.leader
        } else {
            let in_sync = self.replicas.iter().copied().find(|&r| can_lead(r));
            in_sync.unwrap_or(-1)
        };
        if leader == -1 && self.isr.is_empty() {
            let eligible = self
                .replicas
                .iter()
                .copied()
                .find(|r| elr.contains(r) && live(*r));
            if let Some(eligible) = eligible {
                leader = eligible;
                self.isr = vec![eligible];
                elr.retain(|&r| r != eligible);
            }
        }
        // KIP-966's balanced recovery: with no replica in sync or eligible left (each back from
        // an unclean shutdown), the last leader, the likeliest to hold the most, leads again.
        let last_known = match meta.last_known_elr[..] {
            [last] if elr_enabled && self.isr.is_empty() && elr.is_empty() => Some(last),
            _ => None,
        };
        let last_known = last_known.filter(|r| self.replicas.contains(r));
        if let Some(last) = last_known.filter(|&r| leader == -1 && live(r)) {
            tracing::warn!(topic = %topic.name, partition, leader = last, "no in-sync or eligible replica left: the last leader leads again; records it lost in an unclean shutdown are lost");
            leader = last;
            self.isr = vec![last];
        }
        if leader == -1 && self.unclean {
            if let Some(any) = self.replicas.iter().copied().find(|&r| live(r)) {
                tracing::warn!(topic = %topic.name, partition, leader = any, isr = ?meta.isr, elr = ?meta.elr, "unclean leader election: a replica that was neither in sync nor eligible leads; records acknowledged after it fell behind are lost");
                leader = any;
                self.isr = vec![any];
                elr.clear();
            }
        }
        // Eligible replicas exist only below min.insync.replicas: at it, the high watermark
        // moves without them (a lowered min.insync.replicas, say).
        if self.isr.len() >= min_isr {
            elr.clear();
        }
        // Who led last, else (a partition that had no leader when its ISR emptied: created on
        // fenced brokers, or from before ELR) the first replica that was in sync.
        let last_known_elr = if !elr_enabled || leader != -1 {
            Vec::new()
        } else if meta.leader != -1 {
            vec![meta.leader]
        } else if meta.last_known_elr.is_empty() {
            meta.isr.iter().copied().take(1).collect()
        } else {
            meta.last_known_elr.clone()
        };
        let replica_left = meta.replicas.iter().any(|r| !self.replicas.contains(r));
        let state = PartitionImage {
            replicas: self.replicas,
            isr: self.isr,
            leader,
            leader_epoch: meta.leader_epoch + i32::from(leader != meta.leader || replica_left),
            partition_epoch: meta.partition_epoch + 1,
            adding_replicas: self.adding,
            removing_replicas: self.removing,
            elr,
            last_known_elr,
        };
        let same = PartitionImage {
            leader_epoch: meta.leader_epoch,
            partition_epoch: meta.partition_epoch,
            ..state.clone()
        } == *meta;
        (!same).then(|| state.record(topic.id, partition))
    }
}

/// A topic config as set on the topic or as the cluster-wide dynamic default (the controller
/// does not see the brokers' static configs).
pub(crate) fn topic_config<'a>(
    image: &'a MetadataImage,
    topic: &str,
    name: &str,
) -> Option<&'a str> {
    let layers = image.topic_configs(topic);
    let value = layers.topic.and_then(|c| c.get(name));
    value
        .or_else(|| layers.broker(None).and_then(|c| c.get(name)))
        .map(String::as_str)
}

/// The topic's `unclean.leader.election.enable`.
pub(crate) fn unclean_election_enabled(image: &MetadataImage, topic: &str) -> bool {
    let value = topic_config(image, topic, "unclean.leader.election.enable");
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The topic's `min.insync.replicas` as the controller can know it: the topic's own, else the
/// lowest of the cluster-wide dynamic default (else Kafka's default, 1) and every broker's
/// dynamic one. Never above what a leader enforces, which freezes the high watermark below it:
/// an eligible replica must hold every committed record. (A broker's static default is not
/// in the metadata log; it only ever makes its leaders stricter than this.)
fn min_insync_replicas(image: &MetadataImage, topic: &str) -> usize {
    let parse = |v: &String| v.trim().parse::<usize>().ok();
    if let Some(own) = image.topic_overrides(topic).and_then(|c| c.get(MIN_ISR)) {
        return parse(own).unwrap_or(1);
    }
    let cluster = image.configs.get(&ConfigResource::Broker(None));
    let cluster = cluster.and_then(|c| c.get(MIN_ISR)).and_then(parse);
    let brokers = image
        .configs
        .iter()
        .filter_map(|(resource, configs)| match resource {
            ConfigResource::Broker(Some(_)) => configs.get(MIN_ISR).and_then(parse),
            _ => None,
        });
    brokers.fold(cluster.unwrap_or(1), usize::min).max(1)
}

/// The records that clear the eligible replicas of `topic`'s partitions that have an ISR (a
/// leader, or a replica that can become one): after its `min.insync.replicas` changed (the
/// topic's, the cluster's or a broker's), the high watermark may move with fewer replicas, so
/// they may miss committed records (Kafka 4.1 clears them too). Those of a partition without
/// an ISR stay: nothing moves until one leads, and the change that gives it a leader clears
/// them if its ISR is then at the new minimum.
pub(crate) fn clear_elr(topic: &TopicImage) -> Vec<MetadataRecord> {
    topic
        .partitions
        .iter()
        .filter(|(_, p)| !p.elr.is_empty() && !p.isr.is_empty())
        .map(|(&partition, p)| {
            let state = PartitionImage {
                elr: Vec::new(),
                partition_epoch: p.partition_epoch + 1,
                ..p.clone()
            };
            state.record(topic.id, partition)
        })
        .collect()
}

pub(crate) fn without(list: &[i32], taken: &[i32]) -> Vec<i32> {
    list.iter()
        .copied()
        .filter(|r| !taken.contains(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{incremental_alter_configs, ConfigChange, ConfigOp};
    use crate::elections::tests::image;
    use crate::isr::{alter_partitions, IsrProposal};
    use crate::records::ConfigResource;
    use crate::request::fencing;
    use crate::GroupConfigBounds;

    /// Brokers 1-4 and topic `t` with `partitions` as (replicas, isr, leader), every broker
    /// unfenced, ELR at level `elr` and the topic's configs `configs`.
    fn cluster(
        elr: i16,
        configs: &[(&str, &str)],
        partitions: &[(&[i32], &[i32], i32)],
    ) -> MetadataImage {
        let mut image = image(&[], partitions);
        image.apply(&MetadataRecord::FeatureLevel {
            name: ELR_VERSION.into(),
            level: elr,
        });
        for (name, value) in configs {
            image.apply(&MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: name.to_string(),
                value: Some(value.to_string()),
            });
        }
        image
    }

    fn fence(image: &mut MetadataImage, node_id: i32, fenced: bool) {
        for record in fencing(image, node_id, fenced) {
            image.apply(&record);
        }
    }

    /// A process of broker `node_id` registers (after a clean shutdown or not); the number of
    /// records that follow.
    fn register(image: &mut MetadataImage, node_id: i32, clean_shutdown: bool) -> usize {
        let request = crate::ControllerRequest::RegisterBroker {
            registration: image.brokers[&node_id].clone(),
            incarnation: uuid::Uuid::nil(),
            clean_shutdown,
        };
        let (records, _) = crate::request::decide(image, &request, false).unwrap();
        records.iter().for_each(|r| image.apply(r));
        records.len()
    }

    /// (isr, elr, leader, last known leader) of partition `p`.
    fn state(image: &MetadataImage, p: i32) -> (Vec<i32>, Vec<i32>, i32, Vec<i32>) {
        let p = &image.topics["t"].partitions[&p];
        (
            p.isr.clone(),
            p.elr.clone(),
            p.leader,
            p.last_known_elr.clone(),
        )
    }

    /// KIP-966: replicas that leave an ISR below min.insync.replicas become eligible; the ISR
    /// empties with its last member fenced, and the first eligible replica to come back leads
    /// (a clean election, new leader epoch); the ISR back at min.insync.replicas clears them.
    #[test]
    fn eligible_replicas_lead_once_the_isr_is_empty() {
        let mut image = cluster(
            1,
            &[("min.insync.replicas", "2")],
            &[(&[1, 2, 3], &[1, 2, 3], 1)],
        );
        fence(&mut image, 3, true);
        assert_eq!(
            state(&image, 0),
            (vec![1, 2], vec![], 1, vec![]),
            "at min ISR"
        );
        fence(&mut image, 2, true);
        assert_eq!(state(&image, 0), (vec![1], vec![2], 1, vec![]), "below it");
        fence(&mut image, 1, true);
        assert_eq!(state(&image, 0), (vec![], vec![1, 2], -1, vec![1]), "empty");
        fence(&mut image, 3, false);
        assert_eq!(
            state(&image, 0),
            (vec![], vec![1, 2], -1, vec![1]),
            "3 is not eligible"
        );
        let epoch = image.topics["t"].partitions[&0].leader_epoch;
        fence(&mut image, 2, false);
        assert_eq!(state(&image, 0), (vec![2], vec![1], 2, vec![]), "2 leads");
        let p = &image.topics["t"].partitions[&0];
        assert_eq!(p.leader_epoch, epoch + 1);
        let expand = IsrProposal {
            topic_id: image.topics["t"].id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![2, 3],
        };
        let (records, outcomes) = alter_partitions(&image, 2, &[expand]);
        assert_eq!(outcomes, vec![Ok(())]);
        records.iter().for_each(|r| image.apply(r));
        assert_eq!(
            state(&image, 0),
            (vec![2, 3], vec![], 2, vec![]),
            "at min ISR again"
        );
    }

    /// Without ELR the last in-sync replica stays in the ISR and the partition waits for it.
    #[test]
    fn without_elr_the_last_in_sync_replica_stays() {
        let mut image = cluster(
            0,
            &[("min.insync.replicas", "2")],
            &[(&[1, 2, 3], &[1, 2], 1)],
        );
        fence(&mut image, 2, true);
        fence(&mut image, 1, true);
        assert_eq!(state(&image, 0), (vec![1], vec![], -1, vec![]));
        fence(&mut image, 2, false);
        assert_eq!(
            state(&image, 0),
            (vec![1], vec![], -1, vec![]),
            "2 is not in sync"
        );
        fence(&mut image, 1, false);
        assert_eq!(state(&image, 0), (vec![1], vec![], 1, vec![]));
    }

    /// With unclean.leader.election.enable a live eligible replica still comes first (a clean
    /// election); only without one does any live replica lead, as the whole ISR.
    #[test]
    fn unclean_elections_come_after_eligible_replicas() {
        let mut image = cluster(
            1,
            &[
                ("min.insync.replicas", "2"),
                ("unclean.leader.election.enable", "true"),
            ],
            &[(&[1, 2, 3], &[1, 2], 1), (&[1, 3], &[1], 1)],
        );
        fence(&mut image, 2, true);
        fence(&mut image, 2, false);
        assert_eq!(state(&image, 0), (vec![1], vec![2], 1, vec![]));
        fence(&mut image, 1, true);
        assert_eq!(
            state(&image, 0),
            (vec![2], vec![1], 2, vec![]),
            "eligible 2 leads"
        );
        assert_eq!(
            state(&image, 1),
            (vec![3], vec![], 3, vec![]),
            "unclean: 3 leads"
        );
    }

    /// A change of min.insync.replicas clears the eligible replicas of partitions with an ISR
    /// (the high watermark may now move without them), not of those without one; there the
    /// leader elected next, at the new minimum, clears the others, so a replica that missed
    /// what that leader committed is never elected as eligible.
    #[test]
    fn a_min_isr_change_clears_eligible_replicas_that_may_miss_records() {
        let mut image = cluster(
            1,
            &[("min.insync.replicas", "3")],
            &[(&[1, 2, 3], &[1, 2, 3], 1), (&[2, 3, 4], &[2, 3, 4], 4)],
        );
        for node in [3, 2, 4] {
            fence(&mut image, node, true);
        }
        assert_eq!(state(&image, 0), (vec![1], vec![2, 3], 1, vec![]));
        assert_eq!(state(&image, 1), (vec![], vec![2, 3, 4], -1, vec![4]));
        let topic = ConfigResource::Topic("t".into());
        let lowered = ConfigChange {
            name: "min.insync.replicas".into(),
            op: ConfigOp::Set,
            value: Some("1".into()),
        };
        let bounds = GroupConfigBounds::default();
        let records = incremental_alter_configs(&image, &topic, &[lowered], &bounds).unwrap();
        records.iter().for_each(|r| image.apply(r));
        assert_eq!(state(&image, 0), (vec![1], vec![], 1, vec![]));
        assert_eq!(state(&image, 1), (vec![], vec![2, 3, 4], -1, vec![4]));
        fence(&mut image, 2, false);
        assert_eq!(
            state(&image, 1),
            (vec![2], vec![], 2, vec![]),
            "at the new min"
        );
        fence(&mut image, 2, true);
        assert_eq!(state(&image, 1), (vec![], vec![2], -1, vec![2]));
        fence(&mut image, 3, false);
        assert_eq!(
            state(&image, 1),
            (vec![], vec![2], -1, vec![2]),
            "3 missed records"
        );
    }

    /// The controller counts the lowest min.insync.replicas a leader may enforce: a broker's
    /// own dynamic value under the cluster-wide one.
    #[test]
    fn the_lowest_min_isr_a_broker_enforces_counts() {
        let mut image = cluster(1, &[], &[(&[1, 2, 3], &[1, 2], 1)]);
        for (node, value) in [(None, "2"), (Some(1), "1")] {
            image.apply(&MetadataRecord::Config {
                resource: ConfigResource::Broker(node),
                name: "min.insync.replicas".into(),
                value: Some(value.into()),
            });
        }
        fence(&mut image, 2, true);
        assert_eq!(state(&image, 0), (vec![1], vec![], 1, vec![]));
    }

    /// KIP-966's unclean shutdown: a broker back from one may have lost records it had
    /// acknowledged, so it starts fenced and out of every ISR and ELR; the partition waits for
    /// an eligible replica, and only with none left does the last leader lead again (a single
    /// replica's partition after a crash, say). A clean restart changes nothing.
    #[test]
    fn a_broker_back_from_an_unclean_shutdown_leaves_the_isr_and_elr() {
        let mut image = cluster(
            1,
            &[("min.insync.replicas", "2")],
            &[(&[1, 2, 3], &[1, 2, 3], 1), (&[4], &[4], 4)],
        );
        for node in [3, 2, 1] {
            fence(&mut image, node, true);
        }
        assert_eq!(state(&image, 0), (vec![], vec![1, 2], -1, vec![1]));
        register(&mut image, 2, true);
        assert_eq!(state(&image, 0), (vec![], vec![1, 2], -1, vec![1]), "clean");
        register(&mut image, 2, false);
        assert_eq!(state(&image, 0), (vec![], vec![1], -1, vec![1]));
        fence(&mut image, 2, false);
        assert_eq!(
            state(&image, 0),
            (vec![], vec![1], -1, vec![1]),
            "2 may lack records"
        );
        register(&mut image, 1, false);
        fence(&mut image, 1, false);
        assert_eq!(
            state(&image, 0),
            (vec![1], vec![], 1, vec![]),
            "the last leader"
        );

        register(&mut image, 4, false);
        assert!(image.brokers[&4].fenced);
        assert_eq!(state(&image, 1), (vec![], vec![], -1, vec![4]));
        fence(&mut image, 4, false);
        assert_eq!(state(&image, 1), (vec![4], vec![], 4, vec![]));
    }

    /// A partition that had no leader when its last in-sync replica crashed (created on fenced
    /// brokers, or from before ELR) still comes back with that replica, and so does one whose
    /// last leader returns after ELR was turned off. Without ELR a crash changes nothing.
    #[test]
    fn partitions_waiting_for_their_last_replica_come_back() {
        let mut image = cluster(1, &[], &[(&[1], &[1], -1), (&[2], &[2], 2)]);
        image.apply(&MetadataRecord::FenceBroker { node_id: 1 });
        register(&mut image, 1, false);
        assert_eq!(state(&image, 0), (vec![], vec![], -1, vec![1]));
        fence(&mut image, 1, false);
        assert_eq!(state(&image, 0), (vec![1], vec![], 1, vec![]));

        register(&mut image, 2, false);
        assert_eq!(state(&image, 1), (vec![], vec![], -1, vec![2]));
        image.apply(&MetadataRecord::FeatureLevel {
            name: ELR_VERSION.into(),
            level: 0,
        });
        fence(&mut image, 2, false);
        assert_eq!(state(&image, 1), (vec![2], vec![], 2, vec![]));
        assert_eq!(register(&mut image, 2, false), 0, "without ELR");
    }
}
