//! Scenario tests of KIP-848 consumer groups: heartbeats and ticks in, responses and records out.

use std::collections::BTreeMap;

use bytes::Bytes;
use proto_kafka::messages::consumer_group_heartbeat_request::TopicPartitions;
use proto_kafka::messages::join_group_request::JoinGroupRequestProtocol;
use proto_kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use proto_kafka::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use proto_kafka::messages::*;
use proto_kafka::protocol::{Encodable, StrBytes};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::consumer::{TopicCatalog, TopicInfo};
use crate::consumer_protocol::encode_subscription;
use crate::errors::*;
use crate::{GroupConfig, GroupCoordinator, GroupOverrides, GroupRecord};

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[derive(Default)]
struct Catalog(BTreeMap<String, TopicInfo>);

impl Catalog {
    fn set(&mut self, name: &str, partitions: i32) -> Uuid {
        let next = self.0.len() as u128 + 1;
        let id = self.0.get(name).map_or(Uuid::from_u128(next), |t| t.id);
        self.0.insert(
            name.to_string(),
            TopicInfo {
                name: name.to_string(),
                id,
                partitions,
            },
        );
        id
    }
}

impl TopicCatalog for Catalog {
    fn by_name(&self, name: &str) -> Option<TopicInfo> {
        self.0.get(name).cloned()
    }
    fn by_id(&self, id: &Uuid) -> Option<TopicInfo> {
        self.0.values().find(|t| t.id == *id).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// Partitions by topic name.
type Parts = BTreeMap<String, Vec<i32>>;

struct C {
    c: GroupCoordinator,
    now: i64,
    log: Vec<GroupRecord>,
    topics: Catalog,
}

const REBALANCE: i32 = 30_000;
const SESSION: i64 = 45_000;

impl C {
    fn new() -> Self {
        let mut topics = Catalog::default();
        topics.set("t", 4);
        C {
            c: GroupCoordinator::new(GroupConfig::default()),
            now: 1_000_000,
            log: Vec::new(),
            topics,
        }
    }

    fn run(&mut self, records: Vec<GroupRecord>) -> Vec<GroupRecord> {
        self.log.extend(records.iter().cloned());
        for r in self.c.take_replies() {
            r();
        }
        records
    }

    fn advance(&mut self, ms: i64) -> Vec<GroupRecord> {
        self.now += ms;
        let recs = self.c.tick(self.now);
        self.run(recs)
    }

    fn send(&mut self, req: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
        let (tx, mut rx) = oneshot::channel();
        let recs = self.c.consumer_group_heartbeat_from(
            self.now,
            1,
            "client",
            "/10.0.0.1",
            req,
            &self.topics,
            tx,
        );
        self.run(recs);
        rx.try_recv().unwrap()
    }

    fn join_req(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.member_epoch = 0;
        req.rebalance_timeout_ms = REBALANCE;
        req.subscribed_topic_names = Some(topics.iter().map(|t| TopicName(sb(t))).collect());
        req.topic_partitions = Some(vec![]);
        req
    }

    fn join(
        &mut self,
        group: &str,
        member: &str,
        topics: &[&str],
    ) -> ConsumerGroupHeartbeatResponse {
        let r = self.send(Self::join_req(group, member, topics));
        assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
        r
    }

    fn owned(&self, parts: &[(&str, &[i32])]) -> Vec<TopicPartitions> {
        parts
            .iter()
            .map(|(t, ps)| {
                let mut tp = TopicPartitions::default();
                tp.topic_id = self.topics.0[*t].id;
                tp.partitions = ps.to_vec();
                tp
            })
            .collect()
    }

    fn hb(
        &mut self,
        group: &str,
        member: &str,
        epoch: i32,
        owned: Option<&[(&str, &[i32])]>,
    ) -> ConsumerGroupHeartbeatResponse {
        let mut req = ConsumerGroupHeartbeatRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.member_epoch = epoch;
        req.rebalance_timeout_ms = -1;
        req.topic_partitions = owned.map(|o| self.owned(o));
        self.send(req)
    }

    fn leave(&mut self, group: &str, member: &str) -> ConsumerGroupHeartbeatResponse {
        self.hb(group, member, -1, None)
    }

    fn parts(&self, r: &ConsumerGroupHeartbeatResponse) -> Option<Parts> {
        r.assignment.as_ref().map(|a| {
            a.topic_partitions
                .iter()
                .map(|tp| {
                    let name = self.topics.by_id(&tp.topic_id).unwrap().name;
                    (name, tp.partitions.clone())
                })
                .collect()
        })
    }

    fn describe(&self, group: &str) -> consumer_group_describe_response::DescribedGroup {
        let mut req = ConsumerGroupDescribeRequest::default();
        req.group_ids = vec![GroupId(sb(group))];
        self.c
            .consumer_group_describe(1, req, &self.topics)
            .groups
            .remove(0)
    }

    fn target(&self, group: &str, member: &str) -> Parts {
        let d = self.describe(group);
        let m = d
            .members
            .iter()
            .find(|m| m.member_id.as_str() == member)
            .unwrap();
        m.target_assignment
            .topic_partitions
            .iter()
            .map(|tp| (tp.topic_name.to_string(), tp.partitions.clone()))
            .collect()
    }

    fn commit(&mut self, version: i16, group: &str, member: &str, epoch: i32) -> i16 {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.generation_id_or_member_epoch = epoch;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(sb("t"));
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 42;
        t.partitions = vec![p];
        req.topics = vec![t];
        let (tx, mut rx) = oneshot::channel();
        let recs = self.c.offset_commit(self.now, version, req, tx);
        self.run(recs);
        rx.try_recv().unwrap().topics[0].partitions[0].error_code
    }

    /// m1 alone, then m2 joins and the revocation handshake completes: both at epoch 2.
    fn two_stable(&mut self, group: &str) {
        self.join(group, "m1", &["t"]);
        self.join(group, "m2", &["t"]);
        self.hb(group, "m1", 1, None);
        let r = self.hb(group, "m1", 1, Some(&[("t", &[0, 1])]));
        assert_eq!(r.member_epoch, 2);
        let r = self.hb(group, "m2", 2, Some(&[]));
        assert_eq!(self.parts(&r), Some(parts(&[("t", &[2, 3])])));
        assert_eq!(self.describe(group).group_state.as_str(), "Stable");
    }
}

fn parts(p: &[(&str, &[i32])]) -> Parts {
    p.iter()
        .map(|(t, ps)| (t.to_string(), ps.to_vec()))
        .collect()
}

#[test]
fn single_member_gets_everything() {
    let mut h = C::new();
    let r = h.join("g", "m1", &["t"]);
    assert_eq!(r.member_id.as_deref(), Some("m1"));
    assert_eq!(r.member_epoch, 1);
    assert_eq!(r.heartbeat_interval_ms, 5000);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1, 2, 3])])));
    assert!(
        matches!(h.log.last(), Some(GroupRecord::ConsumerGroup { state, .. }) if state.group_epoch == 1 && state.members.len() == 1)
    );
    // An unchanged heartbeat: no assignment, no record.
    let n = h.log.len();
    let r = h.hb("g", "m1", 1, None);
    assert_eq!((r.error_code, r.member_epoch), (NONE, 1));
    assert!(r.assignment.is_none());
    assert_eq!(h.log.len(), n);
    let d = h.describe("g");
    assert_eq!(d.group_state.as_str(), "Stable");
}

#[test]
fn v0_member_id_is_generated() {
    let mut h = C::new();
    let (tx, mut rx) = oneshot::channel();
    let recs =
        h.c.consumer_group_heartbeat(h.now, 0, C::join_req("g", "", &["t"]), &h.topics, tx);
    h.run(recs);
    let r = rx.try_recv().unwrap();
    assert_eq!(r.error_code, NONE);
    let id = r.member_id.unwrap().to_string();
    assert!(Uuid::parse_str(&id).is_ok(), "{id}");
    // A second member joining at the same moment gets another id.
    let (tx, mut rx) = oneshot::channel();
    let recs =
        h.c.consumer_group_heartbeat(h.now, 0, C::join_req("g", "", &["t"]), &h.topics, tx);
    h.run(recs);
    let other = rx.try_recv().unwrap().member_id.unwrap().to_string();
    assert_ne!(other, id, "two members, one id");
    // v1 requires the client's own id.
    assert_eq!(
        h.send(C::join_req("g", "", &["t"])).error_code,
        INVALID_REQUEST
    );
}

#[test]
fn second_member_waits_for_revocation() {
    let mut h = C::new();
    h.join("g", "m1", &["t"]);
    let r = h.join("g", "m2", &["t"]);
    // m2 is at the new epoch but its partitions are still owned by m1.
    assert_eq!(r.member_epoch, 2);
    assert_eq!(h.parts(&r), Some(Parts::new()));
    assert_eq!(h.describe("g").group_state.as_str(), "Reconciling");
    // m1 must revoke 2 and 3, and stays at epoch 1 until it does.
    let r = h.hb("g", "m1", 1, None);
    assert_eq!(r.member_epoch, 1);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1])])));
    let r = h.hb("g", "m2", 2, None);
    assert_eq!(r.member_epoch, 2);
    assert!(r.assignment.is_none(), "nothing released yet");
    // Still owning them: no progress.
    let r = h.hb("g", "m1", 1, Some(&[("t", &[0, 1, 2, 3])]));
    assert_eq!(r.member_epoch, 1);
    // Revoked: m1 moves to epoch 2, m2 gets the partitions.
    let r = h.hb("g", "m1", 1, Some(&[("t", &[0, 1])]));
    assert_eq!(r.member_epoch, 2);
    assert!(r.assignment.is_none());
    let r = h.hb("g", "m2", 2, Some(&[]));
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[2, 3])])));
    let d = h.describe("g");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!((d.group_epoch, d.assignment_epoch), (2, 2));
}

#[test]
fn uniform_and_range() {
    let mut h = C::new();
    h.topics.set("a", 3);
    h.topics.set("b", 3);
    h.join("u", "m1", &["a", "b"]);
    h.join("u", "m2", &["a", "b"]);
    let t1 = h.target("u", "m1");
    let t2 = h.target("u", "m2");
    let count = |p: &Parts| p.values().map(|v| v.len()).sum::<usize>();
    assert_eq!((count(&t1), count(&t2)), (3, 3));
    assert_eq!(h.describe("u").assignor_name.as_str(), "uniform");

    let mut req = C::join_req("r", "m1", &["a", "b"]);
    req.server_assignor = Some(sb("range"));
    assert_eq!(h.send(req).error_code, NONE);
    let mut req = C::join_req("r", "m2", &["a", "b"]);
    req.server_assignor = Some(sb("range"));
    assert_eq!(h.send(req).error_code, NONE);
    assert_eq!(h.describe("r").assignor_name.as_str(), "range");
    assert_eq!(
        h.target("r", "m1"),
        parts(&[("a", &[0, 1]), ("b", &[0, 1])])
    );
    assert_eq!(h.target("r", "m2"), parts(&[("a", &[2]), ("b", &[2])]));

    let mut req = C::join_req("x", "m1", &["a"]);
    req.server_assignor = Some(sb("sticky"));
    assert_eq!(h.send(req).error_code, UNSUPPORTED_ASSIGNOR);
}

#[test]
fn leave_reassigns() {
    let mut h = C::new();
    h.two_stable("g");
    let r = h.leave("g", "m2");
    assert_eq!((r.error_code, r.member_epoch), (NONE, -1));
    let r = h.hb("g", "m1", 2, None);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1, 2, 3])])));
    assert_eq!(h.leave("g", "m2").error_code, UNKNOWN_MEMBER_ID);
    h.leave("g", "m1");
    assert_eq!(h.describe("g").group_state.as_str(), "Empty");
}

#[test]
fn session_expiry() {
    let mut h = C::new();
    h.two_stable("g");
    h.advance(30_000);
    h.hb("g", "m1", 2, None);
    let recs = h.advance(SESSION - 30_000);
    assert!(
        matches!(recs.last(), Some(GroupRecord::ConsumerGroup { state, .. }) if state.members.len() == 1 && state.group_epoch == 3)
    );
    let r = h.hb("g", "m1", 2, None);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1, 2, 3])])));
    assert_eq!(h.hb("g", "m2", 2, None).error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn group_configs_override_session_and_heartbeat_from_the_next_heartbeat() {
    let mut h = C::new();
    assert_eq!(h.join("g", "m1", &["t"]).heartbeat_interval_ms, 5_000);
    assert_eq!(h.join("other", "m1", &["t"]).heartbeat_interval_ms, 5_000);
    let overrides = GroupOverrides {
        session_timeout_ms: Some(50_000),
        heartbeat_interval_ms: Some(8_000),
    };
    h.c.set_group_overrides(BTreeMap::from([("g".to_string(), overrides)]));
    assert_eq!(h.hb("g", "m1", 1, None).heartbeat_interval_ms, 8_000);
    assert_eq!(h.hb("other", "m1", 1, None).heartbeat_interval_ms, 5_000);
    // The default session (45 s) has passed: only the group without the override lost its member.
    h.advance(SESSION + 1);
    assert_eq!(h.hb("other", "m1", 1, None).error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(h.hb("g", "m1", 1, None).error_code, NONE);
    h.advance(50_001);
    assert_eq!(h.hb("g", "m1", 1, None).error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn revocation_timeout_fences() {
    let mut h = C::new();
    h.join("g", "m1", &["t"]);
    h.join("g", "m2", &["t"]);
    h.hb("g", "m1", 1, None); // asked to revoke, never does
    h.advance(REBALANCE as i64 - 1);
    h.hb("g", "m2", 2, None);
    h.hb("g", "m1", 1, Some(&[("t", &[0, 1, 2, 3])]));
    h.advance(1);
    assert_eq!(h.hb("g", "m1", 1, None).error_code, UNKNOWN_MEMBER_ID);
    let r = h.hb("g", "m2", 2, None);
    assert_eq!(r.member_epoch, 3);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1, 2, 3])])));
}

#[test]
fn epoch_fencing() {
    let mut h = C::new();
    h.join("g", "m1", &["t"]);
    let r = h.hb("g", "m1", 5, None);
    assert_eq!(r.error_code, FENCED_MEMBER_EPOCH);
    assert!(r.member_id.is_none());
    assert_eq!(h.hb("g", "nobody", 1, None).error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(h.hb("nope", "m1", 1, None).error_code, UNKNOWN_MEMBER_ID);
    h.join("g", "m2", &["t"]);
    h.hb("g", "m1", 1, None);
    h.hb("g", "m1", 1, Some(&[("t", &[0, 1])]));
    // The previous epoch with a subset of the assignment: the bumped response was lost.
    let r = h.hb("g", "m1", 1, Some(&[("t", &[0, 1])]));
    assert_eq!((r.error_code, r.member_epoch), (NONE, 2));
    // The previous epoch with partitions it does not own any more.
    let r = h.hb("g", "m1", 1, Some(&[("t", &[0, 1, 2])]));
    assert_eq!(r.error_code, FENCED_MEMBER_EPOCH);
    assert_eq!(h.hb("g", "m1", 1, None).error_code, FENCED_MEMBER_EPOCH);
    assert_eq!(h.hb("g", "m1", 0, None).error_code, INVALID_REQUEST);
}

#[test]
fn invalid_requests() {
    let mut h = C::new();
    let mut req = C::join_req("g", "m1", &["t"]);
    req.subscribed_topic_names = None;
    assert_eq!(h.send(req).error_code, INVALID_REQUEST);
    let mut req = C::join_req("g", "m1", &["t"]);
    req.rebalance_timeout_ms = -1;
    assert_eq!(h.send(req).error_code, INVALID_REQUEST);
    let mut req = C::join_req("g", "m1", &["t"]);
    req.topic_partitions = None;
    assert_eq!(h.send(req).error_code, INVALID_REQUEST);
    let req = C::join_req("", "m1", &["t"]);
    assert_eq!(h.send(req).error_code, INVALID_REQUEST);
    let mut req = C::join_req("g", "m1", &[]);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some(sb("t(("));
    assert_eq!(h.send(req).error_code, INVALID_REGULAR_EXPRESSION);
    assert_eq!(h.hb("g", "m1", -3, None).error_code, INVALID_REQUEST);
    assert_eq!(h.hb("g", "m1", -2, None).error_code, INVALID_REQUEST);
    assert!(h.log.is_empty());
}

#[test]
fn regex_subscription_follows_topics() {
    let mut h = C::new();
    h.topics.set("orders-1", 2);
    h.topics.set("other", 2);
    let mut req = C::join_req("g", "m1", &[]);
    req.subscribed_topic_names = None;
    req.subscribed_topic_regex = Some(sb("orders-.*"));
    let r = h.send(req);
    assert_eq!(h.parts(&r), Some(parts(&[("orders-1", &[0, 1])])));
    h.topics.set("orders-2", 1);
    let recs = h.c.on_metadata_change(h.now, &h.topics);
    assert_eq!(recs.len(), 1);
    let r = h.hb("g", "m1", 1, None);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(
        h.parts(&r),
        Some(parts(&[("orders-1", &[0, 1]), ("orders-2", &[0])]))
    );
}

#[test]
fn partitions_added() {
    let mut h = C::new();
    h.join("g", "m1", &["t"]);
    assert!(h.c.on_metadata_change(h.now, &h.topics).is_empty());
    h.topics.set("t", 6);
    let recs = h.c.on_metadata_change(h.now, &h.topics);
    assert!(
        matches!(&recs[..], [GroupRecord::ConsumerGroup { state, .. }] if state.group_epoch == 2)
    );
    let r = h.hb("g", "m1", 1, None);
    assert_eq!(r.member_epoch, 2);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1, 2, 3, 4, 5])])));
    // A subscribed topic that did not exist yet.
    h.join("g2", "m1", &["later"]);
    h.topics.set("later", 1);
    h.c.on_metadata_change(h.now, &h.topics);
    let r = h.hb("g2", "m1", 1, None);
    assert_eq!(h.parts(&r), Some(parts(&[("later", &[0])])));
}

#[test]
fn static_member_temporary_leave() {
    let mut h = C::new();
    let mut req = C::join_req("g", "a1", &["t"]);
    req.instance_id = Some(sb("inst"));
    h.send(req);
    h.join("g", "b", &["t"]);
    h.hb("g", "a1", 1, None);
    h.hb("g", "a1", 1, Some(&[("t", &[0, 1])]));
    let mut req = C::join_req("g", "a2", &["t"]);
    req.instance_id = Some(sb("inst"));
    assert_eq!(h.send(req.clone()).error_code, UNRELEASED_INSTANCE_ID);
    let mut leave = ConsumerGroupHeartbeatRequest::default();
    leave.group_id = GroupId(sb("g"));
    leave.member_id = sb("a1");
    leave.member_epoch = -2;
    leave.instance_id = Some(sb("inst"));
    let r = h.send(leave);
    assert_eq!((r.error_code, r.member_epoch), (NONE, -2));
    let epoch = h.describe("g").group_epoch;
    let r = h.send(req);
    assert_eq!(r.error_code, NONE);
    assert_eq!(h.parts(&r), Some(parts(&[("t", &[0, 1])])));
    assert_eq!(h.describe("g").group_epoch, epoch, "no rebalance");
}

#[test]
fn classic_and_consumer_reject_each_other() {
    let mut h = C::new();
    // A classic group with a member (v0 JoinGroup adds it at once).
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(sb("classic"));
    join.session_timeout_ms = 10_000;
    join.protocol_type = sb("consumer");
    let mut p = JoinGroupRequestProtocol::default();
    p.name = sb("range");
    p.metadata = Bytes::from(encode_subscription(&["t"]));
    join.protocols = vec![p];
    let (tx, _rx) = oneshot::channel();
    let recs = h.c.join_group(h.now, 0, "c", "/h", join.clone(), tx);
    h.run(recs);
    let r = h.send(C::join_req("classic", "m1", &["t"]));
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);

    h.join("cg", "m1", &["t"]);
    join.group_id = GroupId(sb("cg"));
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.join_group(h.now, 0, "c", "/h", join.clone(), tx);
    h.run(recs);
    assert_eq!(
        rx.try_recv().unwrap().error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );

    // Once empty, the consumer group may become a classic group.
    h.leave("cg", "m1");
    let (tx, _rx) = oneshot::channel();
    let recs = h.c.join_group(h.now, 0, "c", "/h", join, tx);
    let recs = h.run(recs);
    assert!(recs
        .iter()
        .any(|r| matches!(r, GroupRecord::ConsumerGroupRemoved { group } if group == "cg")));
    assert_eq!(h.describe("cg").error_code, GROUP_ID_NOT_FOUND);

    // An empty classic group (offsets only) may become a consumer group.
    assert_eq!(h.commit(8, "offsets-only", "", -1), NONE);
    h.join("offsets-only", "m1", &["t"]);
    assert_eq!(h.describe("offsets-only").error_code, NONE);
}

#[test]
fn commit_with_member_epochs() {
    let mut h = C::new();
    h.two_stable("g");
    assert_eq!(h.commit(9, "g", "m1", 2), NONE);
    assert_eq!(h.commit(9, "g", "m1", 1), STALE_MEMBER_EPOCH);
    assert_eq!(h.commit(9, "g", "m1", 3), FENCED_MEMBER_EPOCH);
    assert_eq!(h.commit(9, "g", "ghost", 2), UNKNOWN_MEMBER_ID);
    assert_eq!(h.commit(9, "g", "", -1), UNKNOWN_MEMBER_ID);
    assert_eq!(h.commit(8, "g", "m1", 2), UNSUPPORTED_VERSION);

    let fetch = |h: &mut C, epoch: i32| {
        let mut req = OffsetFetchRequest::default();
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = GroupId(sb("g"));
        g.member_id = Some(sb("m1"));
        g.member_epoch = epoch;
        let mut t = OffsetFetchRequestTopics::default();
        t.name = TopicName(sb("t"));
        t.partition_indexes = vec![0];
        g.topics = Some(vec![t]);
        req.groups = vec![g];
        h.c.offset_fetch(9, req).groups.remove(0)
    };
    let g = fetch(&mut h, 2);
    assert_eq!(g.error_code, NONE);
    assert_eq!(g.topics[0].partitions[0].committed_offset, 42);
    assert_eq!(fetch(&mut h, 1).error_code, STALE_MEMBER_EPOCH);
}

#[test]
fn describe_list_delete() {
    let mut h = C::new();
    h.two_stable("g");
    let d = h.describe("g");
    assert_eq!(d.error_code, NONE);
    assert_eq!((d.group_epoch, d.assignment_epoch), (2, 2));
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(d.members.len(), 2);
    let m1 = &d.members[0];
    assert_eq!(m1.member_id.as_str(), "m1");
    assert_eq!(m1.member_epoch, 2);
    assert_eq!(m1.client_id.as_str(), "client");
    assert_eq!(m1.client_host.as_str(), "/10.0.0.1");
    assert_eq!(m1.subscribed_topic_names[0].as_str(), "t");
    assert_eq!(m1.assignment.topic_partitions[0].topic_name.as_str(), "t");
    assert_eq!(m1.assignment.topic_partitions[0].partitions, vec![0, 1]);
    assert_eq!(
        m1.target_assignment.topic_partitions[0].partitions,
        vec![0, 1]
    );
    assert_eq!(h.describe("nope").error_code, GROUP_ID_NOT_FOUND);

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(sb("g"))];
    let dg = h.c.describe_groups(6, req).groups.remove(0);
    assert_eq!(dg.error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(dg.group_state.as_str(), "Dead");

    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![sb("consumer")];
    let l = h.c.list_groups(5, req);
    assert_eq!(l.groups.len(), 1);
    assert_eq!(l.groups[0].group_type.as_str(), "consumer");
    assert_eq!(l.groups[0].group_state.as_str(), "Stable");
    assert_eq!(l.groups[0].protocol_type.as_str(), "consumer");
    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![sb("classic")];
    assert!(h.c.list_groups(5, req).groups.is_empty());
    let mut req = ListGroupsRequest::default();
    req.states_filter = vec![sb("stable")];
    assert_eq!(h.c.list_groups(5, req).groups.len(), 1);

    let delete = |h: &mut C| {
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(sb("g"))];
        let (tx, mut rx) = oneshot::channel();
        let recs = h.c.delete_groups(h.now, 2, req, tx);
        let recs = h.run(recs);
        (rx.try_recv().unwrap().results[0].error_code, recs)
    };
    assert_eq!(delete(&mut h).0, NON_EMPTY_GROUP);
    h.leave("g", "m1");
    h.leave("g", "m2");
    let (e, recs) = delete(&mut h);
    assert_eq!(e, NONE);
    assert!(recs
        .iter()
        .any(|r| matches!(r, GroupRecord::ConsumerGroupRemoved { .. })));
    assert_eq!(h.describe("g").error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn responses_encode() {
    let mut h = C::new();
    h.two_stable("g");
    let r = h.hb("g", "m1", 2, None);
    for v in 0..=1 {
        let mut buf = bytes::BytesMut::new();
        r.encode(&mut buf, v).unwrap();
        let mut buf = bytes::BytesMut::new();
        h.describe("g").encode(&mut buf, v).unwrap();
    }
}

#[test]
fn replay_restores_the_group() {
    let mut h = C::new();
    h.two_stable("g");
    assert_eq!(h.commit(9, "g", "m1", 2), NONE);
    let before = h.describe("g");
    let mut fresh = GroupCoordinator::new(GroupConfig::default());
    for r in &h.log {
        let back = GroupRecord::decode(&r.key(), r.value().as_deref()).unwrap();
        fresh.replay(back);
    }
    h.c = fresh;
    let after = h.describe("g");
    assert_eq!(after, before);
    // Members keep heartbeating where they were.
    let r = h.hb("g", "m1", 2, None);
    assert_eq!((r.error_code, r.member_epoch), (NONE, 2));
    assert_eq!(h.commit(9, "g", "m2", 2), NONE);
    // Loaded members expire unless they heartbeat (sessions start at the first tick).
    h.advance(1);
    h.advance(30_000);
    h.hb("g", "m1", 2, None);
    h.advance(SESSION - 30_000);
    assert_eq!(h.describe("g").members.len(), 1);
    assert_eq!(h.hb("g", "m2", 2, None).error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn offsets_of_deleted_topics_are_removed() {
    let mut h = C::new();
    h.two_stable("g");
    assert_eq!(h.commit(9, "g", "m1", 2), NONE);
    // Partitions still there: nothing removed.
    let recs = h.c.on_metadata_change(h.now, &h.topics);
    assert!(!recs
        .iter()
        .any(|r| matches!(r, GroupRecord::OffsetRemoved { .. })));
    h.topics.0.remove("t");
    let recs = h.c.on_metadata_change(h.now, &h.topics);
    let recs = h.run(recs);
    assert!(recs.iter().any(|r| matches!(
        r,
        GroupRecord::OffsetRemoved { group, topic, partition: 0 } if group == "g" && topic == "t"
    )));
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb("g"));
    req.topics = None;
    let fetched = h.c.offset_fetch(7, req);
    assert!(fetched.topics.is_empty(), "{:?}", fetched.topics);
}

/// KIP-848 groups served by another broker's coordinator: NOT_COORDINATOR, nothing written.
#[test]
fn consumer_groups_served_elsewhere_get_not_coordinator() {
    let mut h = C::new();
    h.c.set_coordinated(|group| group != "theirs");
    h.join("mine", "m1", &["t"]);
    let before = h.log.len();
    let r = h.send(C::join_req("theirs", "m1", &["t"]));
    assert_eq!(r.error_code, NOT_COORDINATOR);
    assert_eq!(h.log.len(), before);
    assert_eq!(h.describe("theirs").error_code, NOT_COORDINATOR);
    assert_eq!(h.describe("mine").error_code, NONE);
}
