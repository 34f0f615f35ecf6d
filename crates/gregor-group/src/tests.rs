//! Scenario tests of the coordinator: requests and ticks in, responses and records out.

use bytes::Bytes;
use proto_kafka::messages::join_group_request::JoinGroupRequestProtocol;
use proto_kafka::messages::leave_group_request::MemberIdentity;
use proto_kafka::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use proto_kafka::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use proto_kafka::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use proto_kafka::messages::sync_group_request::SyncGroupRequestAssignment;
use proto_kafka::messages::*;
use proto_kafka::protocol::{Encodable, StrBytes};
use tokio::sync::oneshot::{self, Receiver};

use crate::consumer_protocol::encode_subscription;
use crate::errors::*;
use crate::{GroupConfig, GroupCoordinator, GroupRecord};

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
const DELAY: i64 = 3_000;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

struct H {
    c: GroupCoordinator,
    now: i64,
    log: Vec<GroupRecord>,
}

fn sub(topics: &[&str]) -> Bytes {
    Bytes::from(encode_subscription(topics))
}

impl H {
    fn new() -> Self {
        H {
            c: GroupCoordinator::new(GroupConfig::default()),
            now: 1_000_000,
            log: Vec::new(),
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

    fn join_req(
        group: &str,
        member: &str,
        instance: Option<&str>,
        protocols: &[(&str, Bytes)],
    ) -> JoinGroupRequest {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.group_instance_id = instance.map(sb);
        req.session_timeout_ms = SESSION;
        req.rebalance_timeout_ms = REBALANCE;
        req.protocol_type = sb("consumer");
        req.protocols = protocols
            .iter()
            .map(|(n, m)| {
                let mut p = JoinGroupRequestProtocol::default();
                p.name = sb(n);
                p.metadata = m.clone();
                p
            })
            .collect();
        req
    }

    fn join_with(&mut self, version: i16, req: JoinGroupRequest) -> Receiver<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        let recs = self
            .c
            .join_group(self.now, version, "client", "/127.0.0.1", req, tx);
        self.run(recs);
        rx
    }

    fn join(
        &mut self,
        version: i16,
        group: &str,
        member: &str,
        instance: Option<&str>,
        topics: &[&str],
    ) -> Receiver<JoinGroupResponse> {
        let req = Self::join_req(group, member, instance, &[("range", sub(topics))]);
        self.join_with(version, req)
    }

    /// v5 dynamic join including the MEMBER_ID_REQUIRED round trip; returns the parked receiver.
    fn join_new(&mut self, group: &str, topics: &[&str]) -> (String, Receiver<JoinGroupResponse>) {
        let r = self.join(5, group, "", None, topics).try_recv().unwrap();
        assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
        let id = r.member_id.to_string();
        assert!(id.starts_with("client-"), "{id}");
        let rx = self.join(5, group, &id, None, topics);
        (id, rx)
    }

    fn sync(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> Receiver<SyncGroupResponse> {
        let mut req = SyncGroupRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.generation_id = generation;
        req.protocol_type = Some(sb("consumer"));
        req.protocol_name = Some(sb("range"));
        req.assignments = assignments
            .iter()
            .map(|(m, a)| {
                let mut x = SyncGroupRequestAssignment::default();
                x.member_id = sb(m);
                x.assignment = Bytes::copy_from_slice(a);
                x
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        let recs = self.c.sync_group(self.now, 5, req, tx);
        self.run(recs);
        rx
    }

    fn heartbeat_inst(
        &mut self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.group_instance_id = instance.map(sb);
        req.generation_id = generation;
        let (tx, mut rx) = oneshot::channel();
        let recs = self.c.heartbeat(self.now, 4, req, tx);
        self.run(recs);
        rx.try_recv().unwrap().error_code
    }

    fn heartbeat(&mut self, group: &str, member: &str, generation: i32) -> i16 {
        self.heartbeat_inst(group, member, None, generation)
    }

    fn leave(&mut self, group: &str, member: &str) -> LeaveGroupResponse {
        let mut req = LeaveGroupRequest::default();
        req.group_id = GroupId(sb(group));
        let mut m = MemberIdentity::default();
        m.member_id = sb(member);
        req.members = vec![m];
        let (tx, mut rx) = oneshot::channel();
        let recs = self.c.leave_group(self.now, 5, req, tx);
        self.run(recs);
        rx.try_recv().unwrap()
    }

    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        topic: &str,
        partition: i32,
        offset: i64,
        metadata: Option<&str>,
    ) -> (i16, Vec<GroupRecord>) {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb(group));
        req.member_id = sb(member);
        req.generation_id_or_member_epoch = generation;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(sb(topic));
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = partition;
        p.committed_offset = offset;
        p.committed_leader_epoch = 5;
        p.committed_metadata = metadata.map(sb);
        t.partitions = vec![p];
        req.topics = vec![t];
        let (tx, mut rx) = oneshot::channel();
        let recs = self.c.offset_commit(self.now, 8, req, tx);
        let recs = self.run(recs);
        (
            rx.try_recv().unwrap().topics[0].partitions[0].error_code,
            recs,
        )
    }

    fn fetch(&mut self, group: &str, topic: &str, partition: i32) -> (i64, i32, String) {
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(sb(group));
        let mut t = OffsetFetchRequestTopic::default();
        t.name = TopicName(sb(topic));
        t.partition_indexes = vec![partition];
        req.topics = Some(vec![t]);
        let resp = self.c.offset_fetch(7, req);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, NONE);
        (
            p.committed_offset,
            p.committed_leader_epoch,
            p.metadata.as_deref().unwrap_or("").to_string(),
        )
    }

    fn describe(&self, group: &str) -> DescribedGroup {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(sb(group))];
        self.c.describe_groups(5, req).groups.remove(0)
    }

    fn state(&self, group: &str) -> String {
        self.describe(group).group_state.to_string()
    }

    /// One member, joined and synced: (member id, generation).
    fn stable_single(&mut self, group: &str, topics: &[&str]) -> (String, i32) {
        let (id, mut rx) = self.join_new(group, topics);
        self.advance(DELAY);
        let r = rx.try_recv().unwrap();
        let gen = r.generation_id;
        let mut s = self.sync(group, &id, gen, &[(&id, b"A")]);
        assert_eq!(s.try_recv().unwrap().error_code, NONE);
        (id, gen)
    }
}

use proto_kafka::messages::describe_groups_response::DescribedGroup;

#[test]
fn single_member_join_sync_stable() {
    let mut h = H::new();
    let (id, mut rx) = h.join_new("g", &["t"]);
    assert!(rx.try_recv().is_err(), "parked during the initial delay");
    assert_eq!(h.state("g"), "PreparingRebalance");
    h.advance(DELAY - 1);
    assert!(rx.try_recv().is_err());
    let recs = h.advance(1);
    assert!(recs.is_empty());
    let r = rx.try_recv().unwrap();
    assert_eq!(r.error_code, NONE);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader.as_str(), id);
    assert_eq!(r.member_id.as_str(), id);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, sub(&["t"]));
    assert_eq!(h.state("g"), "CompletingRebalance");

    let mut s = h.sync("g", &id, 1, &[(&id, b"assign")]);
    let s = s.try_recv().unwrap();
    assert_eq!(s.error_code, NONE);
    assert_eq!(&s.assignment[..], b"assign");
    assert_eq!(s.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.state("g"), "Stable");
    assert!(
        matches!(h.log.last(), Some(GroupRecord::GroupMetadata { generation: 1, members, .. }) if members.len() == 1 && &members[0].assignment[..] == b"assign")
    );
    assert_eq!(h.heartbeat("g", &id, 1), NONE);
    let d = h.describe("g");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(&d.members[0].member_assignment[..], b"assign");
}

#[test]
fn join_errors() {
    let mut h = H::new();
    let mut req = H::join_req("g", "", None, &[("range", sub(&["t"]))]);
    req.session_timeout_ms = 10;
    assert_eq!(
        h.join_with(5, req).try_recv().unwrap().error_code,
        INVALID_SESSION_TIMEOUT
    );
    let req = H::join_req("", "", None, &[("range", sub(&["t"]))]);
    assert_eq!(
        h.join_with(5, req).try_recv().unwrap().error_code,
        INVALID_GROUP_ID
    );
    assert_eq!(
        h.join(5, "nope", "m-1", None, &["t"])
            .try_recv()
            .unwrap()
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    // A joiner sharing no protocol with the group.
    let (_id, _rx) = h.join_new("g", &["t"]);
    let req = H::join_req("g", "", None, &[("roundrobin", sub(&["t"]))]);
    assert_eq!(
        h.join_with(5, req).try_recv().unwrap().error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut req = H::join_req("g", "", None, &[("range", sub(&["t"]))]);
    req.protocol_type = sb("connect");
    assert_eq!(
        h.join_with(5, req).try_recv().unwrap().error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
}

#[test]
fn group_max_size() {
    let mut h = H::new();
    h.c = GroupCoordinator::new(GroupConfig {
        max_size: 1,
        ..GroupConfig::default()
    });
    let (_a, _rx) = h.join_new("g", &["t"]);
    let r = h.join(3, "g", "", None, &["t"]).try_recv().unwrap();
    assert_eq!(r.error_code, GROUP_MAX_SIZE_REACHED);
}

#[test]
fn three_members_one_generation_with_delay_extension() {
    let mut h = H::new();
    let (a, mut ra) = h.join_new("g", &["t1"]);
    h.advance(2000);
    let (b, mut rb) = h.join_new("g", &["t2"]);
    let (c, mut rc) = h.join_new("g", &["t1", "t3"]);
    h.advance(1000); // the initial delay expired, but members joined meanwhile: extended
    assert!(ra.try_recv().is_err());
    h.advance(DELAY);
    let (ja, jb, jc) = (
        ra.try_recv().unwrap(),
        rb.try_recv().unwrap(),
        rc.try_recv().unwrap(),
    );
    for r in [&ja, &jb, &jc] {
        assert_eq!(r.error_code, NONE);
        assert_eq!(r.generation_id, 1);
        assert_eq!(r.leader.as_str(), a);
    }
    assert_eq!(ja.members.len(), 3);
    assert!(jb.members.is_empty() && jc.members.is_empty());
    let leader_view: Vec<_> = ja
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.metadata.clone()))
        .collect();
    assert!(leader_view.contains(&(c.clone(), sub(&["t1", "t3"]))));

    // Followers wait for the leader's assignment.
    let mut sb_ = h.sync("g", &b, 1, &[]);
    assert!(sb_.try_recv().is_err());
    let mut sa = h.sync("g", &a, 1, &[(&a, b"A"), (&b, b"B"), (&c, b"C")]);
    assert_eq!(&sa.try_recv().unwrap().assignment[..], b"A");
    assert_eq!(&sb_.try_recv().unwrap().assignment[..], b"B");
    let mut sc = h.sync("g", &c, 1, &[]);
    assert_eq!(&sc.try_recv().unwrap().assignment[..], b"C");
    assert_eq!(h.state("g"), "Stable");
}

#[test]
fn protocol_selection_by_votes() {
    let mut h = H::new();
    let p = |names: &[&str]| -> Vec<(&'static str, Bytes)> {
        names
            .iter()
            .map(|n| {
                (
                    if *n == "range" {
                        "range"
                    } else if *n == "rr" {
                        "rr"
                    } else {
                        "sticky"
                    },
                    Bytes::new(),
                )
            })
            .collect()
    };
    let mut r1 = h.join_with(3, H::join_req("g", "", None, &p(&["range", "rr"])));
    let _r2 = h.join_with(3, H::join_req("g", "", None, &p(&["rr", "range"])));
    let _r3 = h.join_with(
        3,
        H::join_req("g", "", None, &p(&["rr", "sticky", "range"])),
    );
    h.advance(DELAY);
    h.advance(DELAY);
    let r = r1.try_recv().unwrap();
    assert_eq!(r.protocol_name.as_deref(), Some("rr"));
}

/// Three members, stable at generation 1: (ids, leader).
fn stable_three(h: &mut H) -> Vec<String> {
    let (a, mut ra) = h.join_new("g", &["t"]);
    let (b, mut rb) = h.join_new("g", &["t"]);
    let (c, mut rc) = h.join_new("g", &["t"]);
    h.advance(DELAY);
    h.advance(DELAY);
    for r in [&mut ra, &mut rb, &mut rc] {
        assert_eq!(r.try_recv().unwrap().generation_id, 1);
    }
    let mut s = h.sync("g", &a, 1, &[(&a, b"A"), (&b, b"B"), (&c, b"C")]);
    assert_eq!(s.try_recv().unwrap().error_code, NONE);
    assert_eq!(h.sync("g", &b, 1, &[]).try_recv().unwrap().error_code, NONE);
    assert_eq!(h.sync("g", &c, 1, &[]).try_recv().unwrap().error_code, NONE);
    vec![a, b, c]
}

#[test]
fn leave_triggers_rebalance_and_new_generation() {
    let mut h = H::new();
    let ids = stable_three(&mut h);
    let resp = h.leave("g", &ids[2]);
    assert_eq!(resp.members[0].error_code, NONE);
    assert_eq!(h.state("g"), "PreparingRebalance");
    assert_eq!(h.heartbeat("g", &ids[1], 1), REBALANCE_IN_PROGRESS);
    assert_eq!(h.heartbeat("g", &ids[2], 1), UNKNOWN_MEMBER_ID);
    // Sync during the rebalance is refused.
    assert_eq!(
        h.sync("g", &ids[1], 1, &[]).try_recv().unwrap().error_code,
        REBALANCE_IN_PROGRESS
    );
    let mut r1 = h.join(5, "g", &ids[1], None, &["t"]);
    assert!(r1.try_recv().is_err());
    let mut r0 = h.join(5, "g", &ids[0], None, &["t"]);
    let (j0, j1) = (r0.try_recv().unwrap(), r1.try_recv().unwrap());
    assert_eq!(j0.generation_id, 2);
    assert_eq!(j1.generation_id, 2);
    assert_eq!(j0.leader.as_str(), ids[0]);
    assert_eq!(j0.members.len(), 2);
    assert_eq!(h.heartbeat("g", &ids[1], 1), ILLEGAL_GENERATION);
    assert_eq!(h.heartbeat("g", &ids[1], 2), NONE);
    // Unknown member leaving.
    assert_eq!(
        h.leave("g", "ghost").members[0].error_code,
        UNKNOWN_MEMBER_ID
    );
}

#[test]
fn leave_v0_and_last_member_empties_group() {
    let mut h = H::new();
    let (id, _) = h.stable_single("g", &["t"]);
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(sb("g"));
    req.member_id = sb(&id);
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.leave_group(h.now, 1, req, tx);
    let recs = h.run(recs);
    assert_eq!(rx.try_recv().unwrap().error_code, NONE);
    assert_eq!(h.state("g"), "Empty");
    assert!(
        matches!(&recs[..], [GroupRecord::GroupMetadata { generation: 2, members, .. }] if members.is_empty())
    );
}

#[test]
fn session_expiry_removes_member() {
    let mut h = H::new();
    let ids = stable_three(&mut h);
    for _ in 0..2 {
        h.advance(SESSION as i64 / 2 - 100);
        assert_eq!(h.heartbeat("g", &ids[0], 1), NONE);
        assert_eq!(h.heartbeat("g", &ids[1], 1), NONE);
    }
    assert_eq!(h.state("g"), "Stable");
    h.advance(200);
    assert_eq!(h.state("g"), "PreparingRebalance");
    assert_eq!(h.describe("g").members.len(), 2);
    assert_eq!(h.heartbeat("g", &ids[2], 1), UNKNOWN_MEMBER_ID);
    assert_eq!(h.heartbeat("g", &ids[0], 1), REBALANCE_IN_PROGRESS);
    let mut r0 = h.join(5, "g", &ids[0], None, &["t"]);
    let mut r1 = h.join(5, "g", &ids[1], None, &["t"]);
    assert_eq!(r0.try_recv().unwrap().generation_id, 2);
    assert_eq!(r1.try_recv().unwrap().generation_id, 2);
}

#[test]
fn rebalance_timeout_drops_non_rejoining_member() {
    let mut h = H::new();
    let ids = stable_three(&mut h);
    // The leader rejoins: a rebalance.
    let mut r0 = h.join(5, "g", &ids[0], None, &["t"]);
    assert_eq!(h.state("g"), "PreparingRebalance");
    let mut r1 = h.join(5, "g", &ids[1], None, &["t"]);
    // ids[2] keeps heartbeating but never rejoins.
    let mut elapsed = 0;
    while elapsed < REBALANCE as i64 - 1000 {
        h.advance(1000);
        elapsed += 1000;
        assert_eq!(h.heartbeat("g", &ids[2], 1), REBALANCE_IN_PROGRESS);
        assert!(r0.try_recv().is_err());
    }
    h.advance(1000);
    let j0 = r0.try_recv().unwrap();
    assert_eq!(j0.generation_id, 2);
    assert_eq!(j0.members.len(), 2);
    assert_eq!(r1.try_recv().unwrap().generation_id, 2);
    assert_eq!(h.heartbeat("g", &ids[2], 1), UNKNOWN_MEMBER_ID);
}

#[test]
fn sync_errors() {
    let mut h = H::new();
    let (id, gen) = h.stable_single("g", &["t"]);
    assert_eq!(
        h.sync("g", "ghost", gen, &[])
            .try_recv()
            .unwrap()
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        h.sync("g", &id, gen + 1, &[])
            .try_recv()
            .unwrap()
            .error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        h.sync("nope", &id, gen, &[]).try_recv().unwrap().error_code,
        UNKNOWN_MEMBER_ID
    );
    let mut req = SyncGroupRequest::default();
    req.group_id = GroupId(sb("g"));
    req.member_id = sb(&id);
    req.generation_id = gen;
    req.protocol_name = Some(sb("roundrobin"));
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.sync_group(h.now, 5, req, tx);
    h.run(recs);
    assert_eq!(
        rx.try_recv().unwrap().error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    // In Stable a sync returns the current assignment.
    assert_eq!(
        &h.sync("g", &id, gen, &[]).try_recv().unwrap().assignment[..],
        b"A"
    );
}

#[test]
fn static_member_restart_without_rebalance() {
    let mut h = H::new();
    let mut ra = h.join(5, "g", "", Some("ia"), &["t"]);
    let mut rb = h.join(5, "g", "", Some("ib"), &["t"]);
    h.advance(DELAY);
    h.advance(DELAY);
    let (ja, jb) = (ra.try_recv().unwrap(), rb.try_recv().unwrap());
    let (a, b) = (ja.member_id.to_string(), jb.member_id.to_string());
    assert!(a.starts_with("ia-"));
    assert_eq!(ja.leader.as_str(), a);
    h.sync("g", &b, 1, &[]);
    h.sync("g", &a, 1, &[(&a, b"A"), (&b, b"B")]);
    assert_eq!(h.state("g"), "Stable");
    let records_before = h.log.len();

    // The leader restarts with the same instance id.
    let mut r = h.join(5, "g", "", Some("ia"), &["t"]);
    let j = r.try_recv().expect("answered at once");
    assert_eq!(j.error_code, NONE);
    let a2 = j.member_id.to_string();
    assert_ne!(a2, a);
    assert_eq!(j.generation_id, 1);
    assert_eq!(
        j.leader.as_str(),
        a,
        "old leader id, so the new member does not reassign"
    );
    assert!(j.members.is_empty());
    assert_eq!(h.state("g"), "Stable");
    assert!(
        matches!(&h.log[records_before..], [GroupRecord::GroupMetadata { generation: 1, members, .. }] if members.iter().any(|m| m.member_id == a2))
    );

    // The old incarnation is fenced.
    assert_eq!(h.heartbeat_inst("g", &a, Some("ia"), 1), FENCED_INSTANCE_ID);
    let (e, _) = {
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(sb("g"));
        req.member_id = sb(&a);
        req.group_instance_id = Some(sb("ia"));
        req.generation_id_or_member_epoch = 1;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(sb("t"));
        t.partitions = vec![OffsetCommitRequestPartition::default()];
        req.topics = vec![t];
        let (tx, mut rx) = oneshot::channel();
        let recs = h.c.offset_commit(h.now, 8, req, tx);
        let recs = h.run(recs);
        (
            rx.try_recv().unwrap().topics[0].partitions[0].error_code,
            recs,
        )
    };
    assert_eq!(e, FENCED_INSTANCE_ID);
    // The new one syncs and keeps its assignment; the other member saw nothing.
    assert_eq!(
        &h.sync("g", &a2, 1, &[]).try_recv().unwrap().assignment[..],
        b"A"
    );
    assert_eq!(h.heartbeat_inst("g", &a2, Some("ia"), 1), NONE);
    assert_eq!(h.heartbeat("g", &b, 1), NONE);
    // Static leave by instance id.
    let mut req = LeaveGroupRequest::default();
    req.group_id = GroupId(sb("g"));
    let mut m = MemberIdentity::default();
    m.group_instance_id = Some(sb("ib"));
    req.members = vec![m];
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.leave_group(h.now, 4, req, tx);
    h.run(recs);
    assert_eq!(rx.try_recv().unwrap().members[0].error_code, NONE);
    assert_eq!(h.state("g"), "PreparingRebalance");
}

#[test]
fn commit_generation_fencing() {
    let mut h = H::new();
    let (id, gen) = h.stable_single("g", &["t"]);
    assert_eq!(
        h.commit("g", &id, gen + 1, "t", 0, 1, None).0,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        h.commit("g", "ghost", gen, "t", 0, 1, None).0,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        h.commit("g", "", -1, "t", 0, 1, None).0,
        UNKNOWN_MEMBER_ID,
        "admin commit into a live group"
    );
    assert_eq!(
        h.commit("nope", "m", 3, "t", 0, 1, None).0,
        ILLEGAL_GENERATION
    );
    let (e, recs) = h.commit("g", &id, gen, "t", 0, 7, None);
    assert_eq!(e, NONE);
    assert_eq!(recs.len(), 1);
    // During CompletingRebalance: REBALANCE_IN_PROGRESS.
    let mut r = h.join(5, "g", &id, None, &["t"]); // leader rejoin, completes at once (sole member)
    let j = r.try_recv().unwrap();
    assert_eq!(j.generation_id, gen + 1);
    assert_eq!(
        h.commit("g", &id, gen + 1, "t", 0, 8, None).0,
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        h.commit("g", &id, gen, "t", 0, 8, None).0,
        ILLEGAL_GENERATION
    );
}

#[test]
fn commit_fetch_round_trip() {
    let mut h = H::new();
    let (e, recs) = h.commit("simple", "", -1, "t", 3, 42, Some("hello"));
    assert_eq!(e, NONE);
    assert!(
        matches!(&recs[..], [GroupRecord::OffsetCommit { offset: 42, leader_epoch: 5, metadata: Some(m), .. }] if m == "hello")
    );
    assert_eq!(h.fetch("simple", "t", 3), (42, 5, "hello".to_string()));
    assert_eq!(h.fetch("simple", "t", 4), (-1, -1, String::new()));
    assert_eq!(h.fetch("unknown", "t", 0), (-1, -1, String::new()));
    let big = "x".repeat(4097);
    let (e, recs) = h.commit("simple", "", -1, "t", 3, 43, Some(&big));
    assert_eq!(e, OFFSET_METADATA_TOO_LARGE);
    assert!(recs.is_empty());
    assert_eq!(h.fetch("simple", "t", 3).0, 42);
    h.commit("simple", "", -1, "u", 0, 9, None);

    // Null topics: everything.
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb("simple"));
    req.topics = None;
    let resp = h.c.offset_fetch(7, req);
    let names: Vec<_> = resp.topics.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, vec!["t", "u"]);

    // v8 multi-group.
    let mut req = OffsetFetchRequest::default();
    let mut g1 = OffsetFetchRequestGroup::default();
    g1.group_id = GroupId(sb("simple"));
    let mut t = OffsetFetchRequestTopics::default();
    t.name = TopicName(sb("t"));
    t.partition_indexes = vec![3];
    g1.topics = Some(vec![t]);
    let mut g2 = OffsetFetchRequestGroup::default();
    g2.group_id = GroupId(sb("missing"));
    g2.topics = None;
    req.groups = vec![g1, g2];
    let resp = h.c.offset_fetch(8, req);
    assert_eq!(resp.groups.len(), 2);
    assert_eq!(resp.groups[0].topics[0].partitions[0].committed_offset, 42);
    assert_eq!(
        resp.groups[0].topics[0].partitions[0].metadata.as_deref(),
        Some("hello")
    );
    assert_eq!(resp.groups[1].error_code, NONE);
    assert!(resp.groups[1].topics.is_empty());
    assert_eq!(h.state("simple"), "Empty");
}

#[test]
fn replay_restores_offsets_and_group() {
    let mut h = H::new();
    let ids = stable_three(&mut h);
    h.commit("g", &ids[0], 1, "t", 0, 100, Some("m0"));
    h.commit("g", &ids[1], 1, "t", 1, 200, None);
    h.commit("g", &ids[1], 1, "t", 1, 201, None);
    h.commit("other", "", -1, "x", 0, 5, None);
    assert!(h
        .log
        .iter()
        .any(|r| matches!(r, GroupRecord::GroupMetadata { .. })));

    let mut fresh = GroupCoordinator::new(GroupConfig::default());
    for r in &h.log {
        let key = r.key();
        let value = r.value();
        fresh.replay(GroupRecord::decode(&key, value.as_deref()).unwrap());
    }
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(sb("g")), GroupId(sb("other"))];
    assert_eq!(
        fresh.describe_groups(5, req.clone()),
        h.c.describe_groups(5, req)
    );
    let mut h2 = H {
        c: fresh,
        now: h.now,
        log: Vec::new(),
    };
    assert_eq!(h2.fetch("g", "t", 0), (100, 5, "m0".to_string()));
    assert_eq!(h2.fetch("g", "t", 1).0, 201);
    assert_eq!(h2.fetch("other", "x", 0).0, 5);
    // Loaded members keep their generation; their sessions start at the first tick.
    assert_eq!(h2.heartbeat("g", &ids[0], 1), NONE);
    h2.advance(100);
    for _ in 0..2 {
        h2.advance(SESSION as i64 / 2 - 100);
        assert_eq!(h2.heartbeat("g", &ids[0], 1), NONE);
        assert_eq!(h2.heartbeat("g", &ids[1], 1), NONE);
    }
    assert_eq!(h2.state("g"), "Stable");
    h2.advance(200);
    assert_eq!(h2.state("g"), "PreparingRebalance");
    assert_eq!(h2.describe("g").members.len(), 2);
}

#[test]
fn delete_groups() {
    let mut h = H::new();
    let (id, gen) = h.stable_single("live", &["t"]);
    h.commit("live", &id, gen, "t", 0, 1, None);
    h.commit("empty", "", -1, "t", 0, 1, None);
    h.commit("empty", "", -1, "t", 1, 1, None);
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![
        GroupId(sb("live")),
        GroupId(sb("empty")),
        GroupId(sb("none")),
    ];
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.delete_groups(h.now, 2, req, tx);
    let recs = h.run(recs);
    let resp = rx.try_recv().unwrap();
    let errs: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
    assert_eq!(errs, vec![NON_EMPTY_GROUP, NONE, GROUP_ID_NOT_FOUND]);
    assert_eq!(recs.len(), 3);
    assert!(matches!(recs[2], GroupRecord::GroupRemoved { .. }));
    assert!(recs[..2]
        .iter()
        .all(|r| matches!(r, GroupRecord::OffsetRemoved { .. }) && r.value().is_none()));
    assert_eq!(h.fetch("empty", "t", 0).0, -1);
    assert_eq!(h.state("empty"), "Dead");
    assert_eq!(h.fetch("live", "t", 0).0, 1);
}

#[test]
fn offset_delete() {
    let mut h = H::new();
    let (id, gen) = h.stable_single("g", &["t1"]);
    h.commit("g", &id, gen, "t1", 0, 1, None);
    h.commit("g", &id, gen, "t2", 0, 1, None);
    let mut req = OffsetDeleteRequest::default();
    req.group_id = GroupId(sb("g"));
    for t in ["t1", "t2"] {
        let mut rt = OffsetDeleteRequestTopic::default();
        rt.name = TopicName(sb(t));
        let mut p = OffsetDeleteRequestPartition::default();
        p.partition_index = 0;
        rt.partitions = vec![p];
        req.topics.push(rt);
    }
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.offset_delete(h.now, 0, req.clone(), tx);
    let recs = h.run(recs);
    let resp = rx.try_recv().unwrap();
    assert_eq!(resp.error_code, NONE);
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(resp.topics[1].partitions[0].error_code, NONE);
    assert!(matches!(&recs[..], [GroupRecord::OffsetRemoved { topic, .. }] if topic == "t2"));
    assert_eq!(h.fetch("g", "t2", 0).0, -1);
    assert_eq!(h.fetch("g", "t1", 0).0, 1);

    let (tx, mut rx) = oneshot::channel();
    req.group_id = GroupId(sb("none"));
    let recs = h.c.offset_delete(h.now, 0, req, tx);
    h.run(recs);
    assert_eq!(rx.try_recv().unwrap().error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn offsets_retention_of_empty_groups() {
    let mut h = H::new();
    let retention = GroupConfig::default().offsets_retention_ms;
    h.advance(0); // first retention check happens now
    h.commit("simple", "", -1, "t", 0, 1, None);
    let (id, gen) = h.stable_single("g", &["t"]);
    h.commit("g", &id, gen, "t", 0, 1, None);
    h.leave("g", &id);
    assert_eq!(h.state("g"), "Empty");
    h.advance(retention - 120_000);
    assert_eq!(h.fetch("simple", "t", 0).0, 1);
    // A group that is not empty keeps its (subscribed) offsets.
    let (id2, gen2) = h.stable_single("live", &["t"]);
    h.commit("live", &id2, gen2, "t", 0, 1, None);
    let mut recs = Vec::new();
    for _ in 0..200 {
        recs.extend(h.advance(1000));
        h.heartbeat("live", &id2, gen2);
    }
    assert!(recs.contains(&GroupRecord::OffsetRemoved {
        group: "simple".into(),
        topic: "t".into(),
        partition: 0
    }));
    assert!(recs.contains(&GroupRecord::GroupRemoved {
        group: "simple".into()
    }));
    assert!(recs.contains(&GroupRecord::OffsetRemoved {
        group: "g".into(),
        topic: "t".into(),
        partition: 0
    }));
    assert!(recs.contains(&GroupRecord::GroupRemoved { group: "g".into() }));
    assert_eq!(h.state("simple"), "Dead");
    assert_eq!(h.state("g"), "Dead");
    assert_eq!(h.state("live"), "Stable");
    assert_eq!(h.fetch("live", "t", 0).0, 1);
}

#[test]
fn list_groups_with_filters() {
    let mut h = H::new();
    h.stable_single("stable", &["t"]);
    h.commit("simple", "", -1, "t", 0, 1, None);
    let list = |h: &H, version: i16, states: &[&str], types: &[&str]| -> Vec<(String, String)> {
        let mut req = ListGroupsRequest::default();
        req.states_filter = states.iter().map(|s| sb(s)).collect();
        req.types_filter = types.iter().map(|s| sb(s)).collect();
        h.c.list_groups(version, req)
            .groups
            .iter()
            .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
            .collect()
    };
    assert_eq!(list(&h, 4, &[], &[]).len(), 2);
    assert_eq!(
        list(&h, 4, &["Stable"], &[]),
        vec![("stable".to_string(), "Stable".to_string())]
    );
    assert_eq!(
        list(&h, 4, &["empty"], &[]),
        vec![("simple".to_string(), "Empty".to_string())]
    );
    assert_eq!(list(&h, 5, &[], &["classic"]).len(), 2);
    assert!(list(&h, 5, &[], &["consumer"]).is_empty());
    let mut req = ListGroupsRequest::default();
    req.states_filter = vec![];
    let all = h.c.list_groups(5, req);
    let st = all
        .groups
        .iter()
        .find(|g| g.group_id.as_str() == "stable")
        .unwrap();
    assert_eq!(st.protocol_type.as_str(), "consumer");
    assert_eq!(st.group_type.as_str(), "classic");
}

#[test]
fn describe_unknown_group() {
    let h = H::new();
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(sb("x"))];
    let d = h.c.describe_groups(5, req.clone()).groups.remove(0);
    assert_eq!((d.error_code, d.group_state.as_str()), (NONE, "Dead"));
    let d = h.c.describe_groups(6, req).groups.remove(0);
    assert_eq!(d.error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn v0_join_creates_member_directly_and_new_member_timeout() {
    let mut h = H::new();
    let mut r = h.join(0, "g", "", None, &["t"]);
    h.advance(DELAY);
    let j = r.try_recv().unwrap();
    assert_eq!(j.error_code, NONE);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
}

#[test]
fn pending_member_expires() {
    let mut h = H::new();
    let (a, gen) = h.stable_single("g", &["t"]);
    let r = h.join(5, "g", "", None, &["t"]).try_recv().unwrap();
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    h.advance(SESSION as i64 / 2);
    h.heartbeat("g", &a, gen);
    h.advance(SESSION as i64 / 2 + 1);
    assert_eq!(
        h.join(5, "g", r.member_id.as_str(), None, &["t"])
            .try_recv()
            .unwrap()
            .error_code,
        UNKNOWN_MEMBER_ID
    );
}

/// Every response we build must encode at every version the server may negotiate.
#[test]
fn responses_encode_at_all_versions() {
    fn enc<T: Encodable>(m: &T, v: i16) {
        let mut buf = Vec::new();
        m.encode(&mut buf, v)
            .unwrap_or_else(|e| panic!("v{v}: {e:?}"));
    }
    for v in 0..=9i16 {
        let mut h = H::new();
        let mut r = h.join(v, "g", "", Some("i"), &["t"]);
        let first = if v == 4 {
            let x = r.try_recv().unwrap();
            enc(&x, v);
            let mut rx = h.join(v, "g", x.member_id.as_str(), None, &["t"]);
            h.advance(DELAY);
            rx.try_recv().unwrap()
        } else {
            h.advance(DELAY);
            r.try_recv().unwrap()
        };
        enc(&first, v);
        let (tx, mut rx) = oneshot::channel();
        h.c.join_group(h.now, v, "c", "h", H::join_req("", "", None, &[]), tx);
        h.run(vec![]);
        enc(&rx.try_recv().unwrap(), v);
    }
    let mut h = H::new();
    let (id, gen) = h.stable_single("g", &["t"]);
    h.commit("g", &id, gen, "t", 0, 1, Some("m"));
    for v in 0..=5i16 {
        let mut req = SyncGroupRequest::default();
        req.group_id = GroupId(sb("g"));
        req.member_id = sb(&id);
        req.generation_id = gen;
        let (tx, mut rx) = oneshot::channel();
        h.c.sync_group(h.now, v, req, tx);
        h.run(vec![]);
        enc(&rx.try_recv().unwrap(), v);
    }
    for v in 0..=5i16 {
        let mut req = LeaveGroupRequest::default();
        req.group_id = GroupId(sb("g"));
        req.member_id = sb("ghost");
        let mut m = MemberIdentity::default();
        m.member_id = sb("ghost");
        req.members = vec![m];
        let (tx, mut rx) = oneshot::channel();
        h.c.leave_group(h.now, v, req, tx);
        h.run(vec![]);
        enc(&rx.try_recv().unwrap(), v);
    }
    for v in 1..=9i16 {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            let mut g = OffsetFetchRequestGroup::default();
            g.group_id = GroupId(sb("g"));
            g.topics = None;
            req.groups = vec![g];
        } else {
            req.group_id = GroupId(sb("g"));
            let mut t = OffsetFetchRequestTopic::default();
            t.name = TopicName(sb("t"));
            t.partition_indexes = vec![0, 1];
            req.topics = Some(vec![t]);
        }
        enc(&h.c.offset_fetch(v, req), v);
    }
    for v in 0..=6i16 {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(sb("g")), GroupId(sb("x"))];
        enc(&h.c.describe_groups(v, req), v);
    }
    for v in 0..=5i16 {
        enc(&h.c.list_groups(v, ListGroupsRequest::default()), v);
    }
}

/// A TxnOffsetCommit of partition `partition` of topic "t" outside any generation.
fn txn_req(group: &str, partition: i32, offset: i64) -> TxnOffsetCommitRequest {
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = TransactionalId(sb("tx"));
    req.group_id = GroupId(sb(group));
    req.generation_id = -1;
    let mut t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    t.name = TopicName(sb("t"));
    let mut p = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    t.partitions = vec![p];
    req.topics = vec![t];
    req
}

/// Sends a TxnOffsetCommit: (the partition's error, the records to append).
fn send_txn(h: &mut H, req: TxnOffsetCommitRequest) -> (i16, Vec<GroupRecord>) {
    let (tx, mut rx) = oneshot::channel();
    let recs = h.c.txn_offset_commit(h.now, req, tx);
    let recs = h.run(recs);
    (
        rx.try_recv().unwrap().topics[0].partitions[0].error_code,
        recs,
    )
}

fn txn_commit(
    h: &mut H,
    group: &str,
    producer_id: i64,
    partition: i32,
    offset: i64,
) -> (i16, Vec<GroupRecord>) {
    let mut req = txn_req(group, partition, offset);
    req.producer_id = ProducerId(producer_id);
    send_txn(h, req)
}

fn fetch_stable(h: &mut H, group: &str, partition: i32) -> (i16, i64) {
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(sb(group));
    req.require_stable = true;
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(sb("t"));
    t.partition_indexes = vec![partition];
    req.topics = Some(vec![t]);
    let p = &h.c.offset_fetch(7, req).topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[test]
fn txn_offsets_count_only_when_their_transaction_commits() {
    let mut h = H::new();
    h.commit("g", "", -1, "t", 0, 5, None);
    let (e, recs) = txn_commit(&mut h, "g", 7, 0, 10);
    assert_eq!(e, NONE);
    assert!(matches!(
        &recs[..],
        [GroupRecord::OffsetCommit { offset: 10, .. }]
    ));
    // Pending: plain fetches see the old offset, stable ones are told to retry.
    assert_eq!(h.fetch("g", "t", 0).0, 5);
    assert_eq!(fetch_stable(&mut h, "g", 0), (UNSTABLE_OFFSET_COMMIT, -1));
    assert_eq!(fetch_stable(&mut h, "g", 1), (NONE, -1));
    h.c.end_txn(7, false);
    assert_eq!(
        fetch_stable(&mut h, "g", 0),
        (NONE, 5),
        "aborted offsets dropped"
    );

    txn_commit(&mut h, "g", 7, 0, 11);
    txn_commit(&mut h, "fresh", 7, 2, 3);
    h.c.end_txn(7, true);
    assert_eq!(fetch_stable(&mut h, "g", 0), (NONE, 11));
    assert_eq!(
        fetch_stable(&mut h, "fresh", 2),
        (NONE, 3),
        "a new group is created"
    );
    // Ending an unknown transaction is harmless.
    h.c.end_txn(99, true);

    // Replay: pending records, then the marker, rebuild the same state.
    let mut r = GroupCoordinator::new(GroupConfig::default());
    r.replay_pending(
        8,
        GroupRecord::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            offset: 20,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 1,
        },
    );
    let mut h2 = H {
        c: r,
        now: h.now,
        log: vec![],
    };
    assert_eq!(fetch_stable(&mut h2, "g", 0), (UNSTABLE_OFFSET_COMMIT, -1));
    h2.c.end_txn(8, true);
    assert_eq!(fetch_stable(&mut h2, "g", 0), (NONE, 20));
}

#[test]
fn txn_offset_commit_checks_the_generation_but_not_the_group_state() {
    let mut h = H::new();
    let send = |h: &mut H, group: &str, member: &str, generation: i32| {
        let mut req = txn_req(group, 0, 0);
        req.member_id = sb(member);
        req.generation_id = generation;
        send_txn(h, req).0
    };
    assert_eq!(send(&mut h, "absent", "", 3), ILLEGAL_GENERATION);
    let (member, generation) = h.stable_single("live", &["t"]);
    assert_eq!(send(&mut h, "live", &member, generation), NONE);
    assert_eq!(
        send(&mut h, "live", &member, generation + 1),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        send(&mut h, "live", "stranger", generation),
        UNKNOWN_MEMBER_ID
    );
    // Old transactional clients send no member: accepted although the group is not Empty.
    assert_eq!(send(&mut h, "live", "", -1), NONE);
}

#[test]
fn commits_too_large_for_one_batch_are_refused() {
    let mut h = H::new();
    h.c = GroupCoordinator::new(GroupConfig {
        offsets_max_message_bytes: 2000,
        ..GroupConfig::default()
    });
    let (e, recs) = h.commit("g", "", -1, "t", 0, 7, Some(&"m".repeat(2000)));
    assert_eq!(e, INVALID_COMMIT_OFFSET_SIZE);
    assert!(recs.is_empty());
    assert!(h.c.groups.is_empty(), "no simple group left behind");
    assert_eq!(h.commit("g", "", -1, "t", 0, 7, Some("small")).0, NONE);
    let mut req = txn_req("g", 0, 7);
    req.topics[0].partitions[0].committed_metadata = Some(sb(&"m".repeat(2000)));
    assert_eq!(send_txn(&mut h, req), (INVALID_COMMIT_OFFSET_SIZE, vec![]));
    // At the bound: group id, topic name and metadata together (1 + 1 + 1998) fit, one more
    // byte does not, in either kind of commit.
    assert_eq!(
        h.commit("g", "", -1, "t", 0, 7, Some(&"m".repeat(1998))).0,
        NONE
    );
    let (e, _) = h.commit("g", "", -1, "t", 0, 7, Some(&"m".repeat(1999)));
    assert_eq!(e, INVALID_COMMIT_OFFSET_SIZE);
    for (metadata, expected) in [(1998, NONE), (1999, INVALID_COMMIT_OFFSET_SIZE)] {
        let mut req = txn_req("g", 0, 7);
        req.topics[0].partitions[0].committed_metadata = Some(sb(&"m".repeat(metadata)));
        assert_eq!(
            send_txn(&mut h, req).0,
            expected,
            "{metadata} bytes of metadata"
        );
    }
}

/// A group whose `__consumer_offsets` partition another broker leads gets NOT_COORDINATOR from
/// every group API, and no record is written for it; groups this coordinator serves are untouched.
#[test]
fn groups_served_elsewhere_get_not_coordinator() {
    let mut h = H::new();
    h.c.set_coordinated(|group| group != "theirs");
    let (id, gen) = h.stable_single("mine", &["t"]);
    assert_eq!(h.commit("mine", &id, gen, "t", 0, 4, None).0, NONE);

    let join = h.join(5, "theirs", "", None, &["t"]).try_recv().unwrap();
    assert_eq!(join.error_code, NOT_COORDINATOR);
    let sync = h.sync("theirs", "m", 1, &[]).try_recv().unwrap();
    assert_eq!(sync.error_code, NOT_COORDINATOR);
    assert_eq!(h.heartbeat("theirs", "m", 1), NOT_COORDINATOR);
    assert_eq!(h.leave("theirs", "m").error_code, NOT_COORDINATOR);
    let (commit, records) = h.commit("theirs", "", -1, "t", 0, 1, None);
    assert_eq!(commit, NOT_COORDINATOR);
    assert!(records.is_empty());
    let (txn_commit, records) = send_txn(&mut h, txn_req("theirs", 0, 1));
    assert_eq!(txn_commit, NOT_COORDINATOR);
    assert!(records.is_empty());
    assert_eq!(h.describe("theirs").error_code, NOT_COORDINATOR);

    // OffsetFetch: v7 at the top level (and on each partition asked for), v8 per group.
    let mut old = OffsetFetchRequest::default();
    old.group_id = GroupId(sb("theirs"));
    let mut t = OffsetFetchRequestTopic::default();
    t.name = TopicName(sb("t"));
    t.partition_indexes = vec![0];
    old.topics = Some(vec![t]);
    let answer = h.c.offset_fetch(7, old);
    assert_eq!(answer.error_code, NOT_COORDINATOR);
    assert_eq!(answer.topics[0].partitions[0].error_code, NOT_COORDINATOR);
    let mut new = OffsetFetchRequest::default();
    new.groups = ["mine", "theirs"]
        .iter()
        .map(|g| {
            let mut group = OffsetFetchRequestGroup::default();
            group.group_id = GroupId(sb(g));
            group.topics = None;
            group
        })
        .collect();
    let answer = h.c.offset_fetch(8, new);
    let codes: Vec<i16> = answer.groups.iter().map(|g| g.error_code).collect();
    assert_eq!(codes, vec![NONE, NOT_COORDINATOR]);
    assert_eq!(answer.groups[0].topics[0].partitions[0].committed_offset, 4);

    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![GroupId(sb("theirs"))];
    let (tx, mut rx) = oneshot::channel();
    let records = h.c.delete_groups(h.now, 2, delete, tx);
    assert!(h.run(records).is_empty());
    assert_eq!(
        rx.try_recv().unwrap().results[0].error_code,
        NOT_COORDINATOR
    );
    let mut offset_delete = OffsetDeleteRequest::default();
    offset_delete.group_id = GroupId(sb("theirs"));
    let (tx, mut rx) = oneshot::channel();
    let records = h.c.offset_delete(h.now, 0, offset_delete, tx);
    assert!(h.run(records).is_empty());
    assert_eq!(rx.try_recv().unwrap().error_code, NOT_COORDINATOR);
    assert_eq!(h.state("mine"), "Stable");
}
