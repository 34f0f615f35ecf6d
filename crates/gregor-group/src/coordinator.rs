//! The group coordinator: request handlers and timers over all groups.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use bytes::Bytes;
use proto_kafka::messages::delete_groups_response::DeletableGroupResult;
use proto_kafka::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use proto_kafka::messages::leave_group_response::MemberResponse;
use proto_kafka::messages::list_groups_response::ListedGroup;
use proto_kafka::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use proto_kafka::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use proto_kafka::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use proto_kafka::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};

use crate::consumer::ConsumerGroup;
use crate::errors;
use crate::group::{
    join_error, join_success, sb, sync_error, sync_success, Ctx, Group, GroupState, JoinWaiter,
    Reply, SyncWaiter,
};
use crate::records::GroupRecord;
use crate::Responder;

/// Which request commits offsets: OffsetCommit of a version, or TxnOffsetCommit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommitKind {
    Plain { version: i16 },
    Transactional,
}

/// One partition's answer to OffsetFetch.
struct Fetched {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    error: i16,
}

/// Maximum size of committed offset metadata (offset.metadata.max.bytes).
const MAX_METADATA_BYTES: usize = 4096;
/// How often the offsets retention check runs at most.
const RETENTION_CHECK_INTERVAL_MS: i64 = 60_000;

/// The coordinator's settings, with Kafka's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i32,
    /// group.max.size
    pub max_size: i32,
    /// offsets.retention.minutes, in milliseconds
    pub offsets_retention_ms: i64,
    /// group.consumer.session.timeout.ms (KIP-848 consumer groups)
    pub consumer_session_timeout_ms: i32,
    /// group.consumer.heartbeat.interval.ms (KIP-848 consumer groups)
    pub consumer_heartbeat_interval_ms: i32,
    /// The largest record batch `__consumer_offsets` takes (its max.message.bytes).
    pub offsets_max_message_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3000,
            max_size: i32::MAX,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
            offsets_max_message_bytes: 1_048_588,
        }
    }
}

/// A group's own settings (Kafka's group configs `consumer.session.timeout.ms` and
/// `consumer.heartbeat.interval.ms`); `None` keeps the coordinator's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupOverrides {
    pub session_timeout_ms: Option<i32>,
    pub heartbeat_interval_ms: Option<i32>,
}

impl GroupConfig {
    /// The KIP-848 session timeout and heartbeat interval of a group with these overrides.
    pub(crate) fn consumer_timings(&self, overrides: Option<&GroupOverrides>) -> (i32, i32) {
        let o = overrides.copied().unwrap_or_default();
        (
            o.session_timeout_ms
                .unwrap_or(self.consumer_session_timeout_ms),
            o.heartbeat_interval_ms
                .unwrap_or(self.consumer_heartbeat_interval_ms),
        )
    }
}

/// The classic consumer group coordinator for all groups of `__consumer_offsets`.
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    /// Group configs by group id; applied from the next heartbeat on, as in Kafka.
    pub(crate) overrides: BTreeMap<String, GroupOverrides>,
    /// Offsets committed in open transactions, by producer id (see txn_offsets.rs).
    pub(crate) pending_txn_offsets: BTreeMap<i64, Vec<GroupRecord>>,
    pub(crate) groups: BTreeMap<String, Group>,
    replies: Vec<Reply>,
    pub(crate) member_counter: u64,
    last_retention_check: Option<i64>,
    /// Which group ids this coordinator serves (those whose `__consumer_offsets` partition this
    /// broker leads); the others are answered NOT_COORDINATOR, so a client asks FindCoordinator
    /// again. Every group until the runtime says otherwise.
    coordinates: Box<dyn Fn(&str) -> bool + Send>,
}

/// The record of one committed offset (partition, offset, leader epoch), or
/// OFFSET_METADATA_TOO_LARGE (`offset.metadata.max.bytes`).
pub(crate) fn offset_record(
    group: &str,
    topic: &str,
    (partition, offset, leader_epoch): (i32, i64, i32),
    metadata: Option<&str>,
    now: i64,
) -> Result<GroupRecord, i16> {
    if metadata.is_some_and(|m| m.len() > MAX_METADATA_BYTES) {
        return Err(errors::OFFSET_METADATA_TOO_LARGE);
    }
    Ok(GroupRecord::OffsetCommit {
        group: s(group),
        topic: s(topic),
        partition,
        offset,
        leader_epoch,
        metadata: metadata.map(s),
        commit_timestamp: now,
    })
}

pub(crate) fn s(v: &str) -> String {
    v.to_string()
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            overrides: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
            groups: BTreeMap::new(),
            replies: Vec::new(),
            member_counter: 0,
            last_retention_check: None,
            coordinates: Box::new(|_| true),
        }
    }

    /// Sets which group ids this coordinator serves. Groups it no longer serves must be
    /// [`GroupCoordinator::unload`]ed by the caller.
    pub fn set_coordinated(&mut self, coordinates: impl Fn(&str) -> bool + Send + 'static) {
        self.coordinates = Box::new(coordinates);
    }

    /// Whether this coordinator serves `group`.
    pub fn coordinates(&self, group: &str) -> bool {
        (self.coordinates)(group)
    }

    /// NOT_COORDINATOR for a group another broker's coordinator serves.
    pub(crate) fn not_coordinator(&self, group: &str) -> Option<i16> {
        (!self.coordinates(group)).then_some(errors::NOT_COORDINATOR)
    }

    /// Forgets every group `owned` names, with its transactional offsets and parked replies (the
    /// waiting requests fail and their clients retry), so they can be replayed from the log
    /// again: after records could not be appended, memory must not stay ahead of the log.
    /// Returns how many groups were dropped.
    pub fn unload(&mut self, owned: impl Fn(&str) -> bool) -> usize {
        let before = self.groups.len();
        self.groups.retain(|id, _| !owned(id));
        self.pending_txn_offsets.retain(|_, records| {
            records.retain(|r| !owned(r.group()));
            !records.is_empty()
        });
        before - self.groups.len()
    }

    /// Replaces the group configs (the metadata image's, after each change).
    pub fn set_group_overrides(&mut self, overrides: BTreeMap<String, GroupOverrides>) {
        self.overrides = overrides;
    }

    /// Rebuilds state at start-up from one record of `__consumer_offsets` (called in log order).
    pub fn replay(&mut self, record: GroupRecord) {
        let group_id = record.group().to_string();
        match record {
            GroupRecord::OffsetCommit { .. } => {
                self.groups
                    .entry(group_id.clone())
                    .or_insert_with(|| Group::new(&group_id, None))
                    .apply_offset(&record);
            }
            GroupRecord::OffsetRemoved { .. } => {
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.apply_offset(&record);
                }
            }
            GroupRecord::GroupMetadata {
                protocol_type,
                generation,
                protocol,
                leader,
                state_timestamp,
                members,
                ..
            } => {
                self.groups
                    .entry(group_id.clone())
                    .or_insert_with(|| Group::new(&group_id, None))
                    .load_metadata(
                        protocol_type,
                        generation,
                        protocol,
                        leader,
                        state_timestamp,
                        members,
                    );
            }
            GroupRecord::ConsumerGroup { state, .. } => {
                self.groups
                    .entry(group_id.clone())
                    .or_insert_with(|| Group::new(&group_id, None))
                    .consumer = Some(ConsumerGroup::from_value(state));
            }
            GroupRecord::ConsumerGroupRemoved { .. } => {
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.consumer = None;
                    if g.offsets.is_empty()
                        && g.members.is_empty()
                        && g.generation == 0
                        && g.protocol_type.is_none()
                    {
                        self.groups.remove(&group_id);
                    }
                }
            }
            GroupRecord::GroupRemoved { .. } => {
                if let Some(g) = self.groups.get(&group_id) {
                    if g.offsets.is_empty() {
                        self.groups.remove(&group_id);
                    } else {
                        // Offsets committed after the deletion keep a fresh, empty group alive.
                        let offsets = g.offsets.clone();
                        let mut fresh = Group::new(&group_id, None);
                        fresh.offsets = offsets;
                        self.groups.insert(group_id, fresh);
                    }
                }
            }
        }
    }

    /// Responses ready to send, in order.
    pub fn take_replies(&mut self) -> Vec<Box<dyn FnOnce() + Send>> {
        std::mem::take(&mut self.replies)
    }

    pub(crate) fn finish(&mut self, ctx: Ctx) -> Vec<GroupRecord> {
        self.replies.extend(ctx.replies);
        ctx.records
    }

    fn new_member_id(&mut self, prefix: &str, group: &str, now: i64) -> String {
        self.member_counter += 1;
        let mut h = DefaultHasher::new();
        (group, prefix, now, self.member_counter).hash(&mut h);
        let a = splitmix(h.finish());
        let b = splitmix(a ^ self.member_counter.rotate_left(17) ^ now as u64);
        format!(
            "{}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            prefix,
            (a >> 32) as u32,
            (a >> 16) as u16,
            a as u16,
            (b >> 48) as u16,
            b & 0xffff_ffff_ffff
        )
    }

    // ----- JoinGroup ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn join_group(
        &mut self,
        now_ms: i64,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: JoinGroupRequest,
        reply: Responder<JoinGroupResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        self.do_join(&mut ctx, version, client_id, client_host, req, reply);
        self.finish(ctx)
    }

    fn do_join(
        &mut self,
        ctx: &mut Ctx,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: JoinGroupRequest,
        reply: Responder<JoinGroupResponse>,
    ) {
        let group_id = s(&req.group_id);
        let member_id = s(&req.member_id);
        let instance_id = if version >= 5 {
            req.group_instance_id.as_deref().map(s)
        } else {
            None
        };
        let session_timeout = req.session_timeout_ms;
        let rebalance_timeout = if version == 0 {
            session_timeout
        } else {
            req.rebalance_timeout_ms
        };
        let protocol_type = s(&req.protocol_type);
        let mut protocols: Vec<(String, Bytes)> = Vec::new();
        for p in &req.protocols {
            if !protocols.iter().any(|(n, _)| n.as_str() == &*p.name) {
                protocols.push((s(&p.name), p.metadata.clone()));
            }
        }
        let names: Vec<String> = protocols.iter().map(|(n, _)| n.clone()).collect();

        if group_id.is_empty() {
            ctx.reply(
                reply,
                join_error(version, errors::INVALID_GROUP_ID, &member_id),
            );
            return;
        }
        if let Some(error) = self.not_coordinator(&group_id) {
            ctx.reply(reply, join_error(version, error, &member_id));
            return;
        }
        if session_timeout < self.config.min_session_timeout_ms
            || session_timeout > self.config.max_session_timeout_ms
        {
            ctx.reply(
                reply,
                join_error(version, errors::INVALID_SESSION_TIMEOUT, &member_id),
            );
            return;
        }
        if let Some(g) = self.groups.get_mut(&group_id) {
            if let Some(cg) = &g.consumer {
                if !cg.members.is_empty() {
                    // KIP-848's online downgrade is not supported.
                    ctx.reply(
                        reply,
                        join_error(version, errors::INCONSISTENT_GROUP_PROTOCOL, &member_id),
                    );
                    return;
                }
                // An empty consumer group becomes a classic group.
                g.consumer = None;
                ctx.records.push(GroupRecord::ConsumerGroupRemoved {
                    group: group_id.clone(),
                });
            }
        }
        let is_unknown = member_id.is_empty();
        if !self.groups.contains_key(&group_id) {
            if !is_unknown {
                ctx.reply(
                    reply,
                    join_error(version, errors::UNKNOWN_MEMBER_ID, &member_id),
                );
                return;
            }
            self.groups
                .insert(group_id.clone(), Group::new(&group_id, Some(ctx.now)));
        }
        let new_id = if is_unknown {
            let prefix = instance_id.clone().unwrap_or_else(|| s(client_id));
            self.new_member_id(&prefix, &group_id, ctx.now)
        } else {
            String::new()
        };
        let Some(group) = self.groups.get_mut(&group_id) else {
            return;
        };
        let waiter = JoinWaiter { version, reply };
        // The one way a joiner becomes a member; every branch below that admits one uses it.
        macro_rules! add_member {
            ($id:expr, $instance:expr) => {
                group.add_member_and_rebalance(
                    ctx,
                    $id,
                    $instance,
                    client_id,
                    client_host,
                    rebalance_timeout,
                    session_timeout,
                    protocol_type,
                    protocols,
                    waiter,
                )
            };
        }

        // A known static member restarting takes its own slot back, even in a full group.
        let known_static = instance_id
            .as_deref()
            .is_some_and(|i| group.static_member_id(i).is_some());
        if !known_static && !group.accept_joining_member(&member_id, ctx.config.max_size) {
            group.remove(&member_id);
            ctx.reply(
                waiter.reply,
                join_error(version, errors::GROUP_MAX_SIZE_REACHED, ""),
            );
        } else if is_unknown {
            // Kafka's doNewMemberJoinGroup.
            if !group.supports_protocols(&protocol_type, &names) {
                ctx.reply(
                    waiter.reply,
                    join_error(version, errors::INCONSISTENT_GROUP_PROTOCOL, ""),
                );
            } else if let Some(iid) = instance_id.clone() {
                match group.static_member_id(&iid) {
                    Some(old_id) => update_static_member_and_rebalance(
                        group,
                        ctx,
                        &old_id,
                        &new_id,
                        protocols,
                        rebalance_timeout,
                        session_timeout,
                        waiter,
                    ),
                    None => add_member!(new_id, Some(iid)),
                }
            } else if version >= 4 {
                group
                    .pending_members
                    .insert(new_id.clone(), ctx.now + session_timeout as i64);
                ctx.reply(
                    waiter.reply,
                    join_error(version, errors::MEMBER_ID_REQUIRED, &new_id),
                );
            } else {
                add_member!(new_id, None);
            }
        } else {
            // Kafka's doCurrentMemberJoinGroup.
            if !group.supports_protocols(&protocol_type, &names) {
                ctx.reply(
                    waiter.reply,
                    join_error(version, errors::INCONSISTENT_GROUP_PROTOCOL, &member_id),
                );
            } else if group.pending_members.contains_key(&member_id) {
                if instance_id.is_some() {
                    ctx.reply(
                        waiter.reply,
                        join_error(version, errors::UNKNOWN_MEMBER_ID, &member_id),
                    );
                } else {
                    add_member!(member_id, None);
                }
            } else if group.is_static_member_fenced(instance_id.as_deref(), &member_id) {
                ctx.reply(
                    waiter.reply,
                    join_error(version, errors::FENCED_INSTANCE_ID, &member_id),
                );
            } else if !group.has(&member_id)
                || instance_id
                    .as_deref()
                    .is_some_and(|i| group.static_member_id(i).is_none())
            {
                ctx.reply(
                    waiter.reply,
                    join_error(version, errors::UNKNOWN_MEMBER_ID, &member_id),
                );
            } else {
                let matches = group
                    .member(&member_id)
                    .is_some_and(|m| m.matches(&protocols));
                match group.state {
                    GroupState::PreparingRebalance => {
                        group.update_member(
                            ctx,
                            &member_id,
                            protocols,
                            rebalance_timeout,
                            session_timeout,
                            waiter,
                        );
                        group.maybe_prepare_rebalance(ctx);
                    }
                    GroupState::CompletingRebalance if matches => {
                        // Lost the JoinGroup response: resend this generation's.
                        let resp = current_generation_join(
                            group,
                            version,
                            &member_id,
                            group.is_leader(&member_id),
                            group.leader.clone().unwrap_or_default(),
                        );
                        ctx.reply(waiter.reply, resp);
                    }
                    GroupState::Stable if matches && !group.is_leader(&member_id) => {
                        let resp = current_generation_join(
                            group,
                            version,
                            &member_id,
                            false,
                            group.leader.clone().unwrap_or_default(),
                        );
                        ctx.reply(waiter.reply, resp);
                    }
                    GroupState::CompletingRebalance | GroupState::Stable => {
                        // Changed metadata, or the leader asks for a rebalance.
                        group.update_member(
                            ctx,
                            &member_id,
                            protocols,
                            rebalance_timeout,
                            session_timeout,
                            waiter,
                        );
                        group.maybe_prepare_rebalance(ctx);
                    }
                    GroupState::Empty => {
                        ctx.reply(
                            waiter.reply,
                            join_error(version, errors::UNKNOWN_MEMBER_ID, &member_id),
                        );
                    }
                }
            }
        }
        if group.state == GroupState::PreparingRebalance {
            group.check_join(ctx);
        }
    }

    // ----- SyncGroup ----------------------------------------------------------------------------

    pub fn sync_group(
        &mut self,
        now_ms: i64,
        version: i16,
        req: SyncGroupRequest,
        reply: Responder<SyncGroupResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let group_id = s(&req.group_id);
        let member_id = s(&req.member_id);
        let instance_id = if version >= 3 {
            req.group_instance_id.as_deref().map(s)
        } else {
            None
        };
        if group_id.is_empty() {
            ctx.reply(reply, sync_error(errors::INVALID_GROUP_ID));
            return self.finish(ctx);
        }
        if let Some(error) = self.not_coordinator(&group_id) {
            ctx.reply(reply, sync_error(error));
            return self.finish(ctx);
        }
        let Some(group) = self.groups.get_mut(&group_id) else {
            ctx.reply(reply, sync_error(errors::UNKNOWN_MEMBER_ID));
            return self.finish(ctx);
        };
        let protocol_type = if version >= 5 {
            req.protocol_type.as_deref().map(s)
        } else {
            None
        };
        let protocol_name = if version >= 5 {
            req.protocol_name.as_deref().map(s)
        } else {
            None
        };
        let error = if group.is_static_member_fenced(instance_id.as_deref(), &member_id) {
            Some(errors::FENCED_INSTANCE_ID)
        } else if !group.has(&member_id) {
            Some(errors::UNKNOWN_MEMBER_ID)
        } else if req.generation_id != group.generation {
            Some(errors::ILLEGAL_GENERATION)
        } else if (protocol_type.is_some() && protocol_type != group.protocol_type)
            || (protocol_name.is_some() && protocol_name != group.protocol)
        {
            Some(errors::INCONSISTENT_GROUP_PROTOCOL)
        } else {
            match group.state {
                GroupState::Empty => Some(errors::UNKNOWN_MEMBER_ID),
                GroupState::PreparingRebalance => Some(errors::REBALANCE_IN_PROGRESS),
                _ => None,
            }
        };
        if let Some(e) = error {
            ctx.reply(reply, sync_error(e));
            return self.finish(ctx);
        }
        match group.state {
            GroupState::CompletingRebalance => {
                if let Some(m) = group.member_mut(&member_id) {
                    if let Some(old) = m.awaiting_sync.replace(SyncWaiter { version, reply }) {
                        ctx.reply(old.reply, sync_error(errors::REBALANCE_IN_PROGRESS));
                    }
                }
                group.pending_sync.remove(&member_id);
                if group.pending_sync.is_empty() {
                    group.sync_deadline = None;
                }
                if group.is_leader(&member_id) {
                    let assignments: BTreeMap<String, Bytes> = req
                        .assignments
                        .iter()
                        .map(|a| (s(&a.member_id), a.assignment.clone()))
                        .collect();
                    for m in group.members.iter_mut() {
                        m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
                    }
                    group.transition(GroupState::Stable, ctx.now);
                    ctx.records.push(group.metadata_record());
                    group.set_and_propagate_assignment(&mut ctx);
                }
            }
            GroupState::Stable => {
                group.pending_sync.remove(&member_id);
                if group.pending_sync.is_empty() {
                    group.sync_deadline = None;
                }
                let pt = group.protocol_type.clone();
                let pn = group.protocol.clone();
                if let Some(m) = group.member_mut(&member_id) {
                    m.touch(ctx.now);
                    let resp =
                        sync_success(version, pt.as_deref(), pn.as_deref(), m.assignment.clone());
                    ctx.reply(reply, resp);
                }
            }
            _ => {}
        }
        self.finish(ctx)
    }

    // ----- Heartbeat ----------------------------------------------------------------------------

    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        version: i16,
        req: HeartbeatRequest,
        reply: Responder<HeartbeatResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let group_id = s(&req.group_id);
        let member_id = s(&req.member_id);
        let instance_id = if version >= 3 {
            req.group_instance_id.as_deref().map(s)
        } else {
            None
        };
        let error = if group_id.is_empty() {
            errors::INVALID_GROUP_ID
        } else if let Some(error) = self.not_coordinator(&group_id) {
            error
        } else {
            match self.groups.get_mut(&group_id) {
                None => errors::UNKNOWN_MEMBER_ID,
                Some(group) => {
                    if group.is_static_member_fenced(instance_id.as_deref(), &member_id) {
                        errors::FENCED_INSTANCE_ID
                    } else if !group.has(&member_id) {
                        errors::UNKNOWN_MEMBER_ID
                    } else if req.generation_id != group.generation {
                        errors::ILLEGAL_GENERATION
                    } else {
                        let state = group.state;
                        match state {
                            GroupState::Empty => errors::UNKNOWN_MEMBER_ID,
                            _ => {
                                if let Some(m) = group.member_mut(&member_id) {
                                    m.touch(ctx.now);
                                }
                                if state == GroupState::PreparingRebalance {
                                    errors::REBALANCE_IN_PROGRESS
                                } else {
                                    errors::NONE
                                }
                            }
                        }
                    }
                }
            }
        };
        let mut resp = HeartbeatResponse::default();
        resp.error_code = error;
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    // ----- LeaveGroup ---------------------------------------------------------------------------

    pub fn leave_group(
        &mut self,
        now_ms: i64,
        version: i16,
        req: LeaveGroupRequest,
        reply: Responder<LeaveGroupResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let group_id = s(&req.group_id);
        let leaving: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| (s(&m.member_id), m.group_instance_id.as_deref().map(s)))
                .collect()
        } else {
            vec![(s(&req.member_id), None)]
        };
        let mut top_error = errors::NONE;
        let mut results: Vec<(String, Option<String>, i16)> = Vec::new();
        if group_id.is_empty() {
            top_error = errors::INVALID_GROUP_ID;
        } else if let Some(error) = self.not_coordinator(&group_id) {
            top_error = error;
        } else {
            match self.groups.get_mut(&group_id) {
                None => {
                    for (mid, iid) in leaving {
                        results.push((mid, iid, errors::UNKNOWN_MEMBER_ID));
                    }
                }
                Some(group) => {
                    for (mid, iid) in leaving {
                        let error = if mid.is_empty() {
                            match iid.as_deref().and_then(|i| group.static_member_id(i)) {
                                Some(current) => {
                                    group.remove_member_and_update(&mut ctx, &current);
                                    errors::NONE
                                }
                                None => errors::UNKNOWN_MEMBER_ID,
                            }
                        } else if group.pending_members.contains_key(&mid) {
                            group.remove_pending_member_and_update(&mut ctx, &mid);
                            errors::NONE
                        } else if group.is_static_member_fenced(iid.as_deref(), &mid) {
                            errors::FENCED_INSTANCE_ID
                        } else if group.has(&mid) {
                            group.remove_member_and_update(&mut ctx, &mid);
                            errors::NONE
                        } else {
                            errors::UNKNOWN_MEMBER_ID
                        };
                        results.push((mid, iid, error));
                    }
                }
            }
        }
        let mut resp = LeaveGroupResponse::default();
        if version >= 3 {
            resp.error_code = top_error;
            resp.members = results
                .into_iter()
                .map(|(mid, iid, e)| {
                    let mut r = MemberResponse::default();
                    r.member_id = sb(&mid);
                    r.group_instance_id = iid.as_deref().map(sb);
                    r.error_code = e;
                    r
                })
                .collect();
        } else {
            resp.error_code = if top_error != errors::NONE {
                top_error
            } else {
                results
                    .iter()
                    .map(|r| r.2)
                    .find(|e| *e != errors::NONE)
                    .unwrap_or(errors::NONE)
            };
        }
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    // ----- OffsetCommit -------------------------------------------------------------------------

    /// Kafka's checks of an offset commit against the group (generation or member epoch, member,
    /// static instance). A commit outside any generation to an unknown group creates a simple
    /// group; the bool says so (the caller removes it again if nothing was stored).
    pub(crate) fn validate_offset_commit(
        &mut self,
        now: i64,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        kind: CommitKind,
    ) -> (Option<i16>, bool) {
        if let Some(error) = self.not_coordinator(group_id) {
            return (Some(error), false);
        }
        let mut created = false;
        let group_error: Option<i16> = if !self.groups.contains_key(group_id) {
            if generation < 0 {
                self.groups
                    .insert(group_id.to_string(), Group::new(group_id, Some(now)));
                created = true;
                None
            } else if matches!(kind, CommitKind::Plain { version } if version >= 9) {
                Some(errors::GROUP_ID_NOT_FOUND)
            } else {
                Some(errors::ILLEGAL_GENERATION)
            }
        } else {
            None
        };
        let group_error = group_error.or_else(|| {
            let group = self.groups.get_mut(group_id)?;
            if let Some(cg) = &group.consumer {
                // Kafka's ConsumerGroup.validateOffsetCommit.
                return match cg.members.get(member_id) {
                    None if generation < 0 && cg.members.is_empty() => None,
                    None => Some(errors::UNKNOWN_MEMBER_ID),
                    Some(_) if matches!(kind, CommitKind::Plain { version } if version < 9) => {
                        Some(errors::UNSUPPORTED_VERSION)
                    }
                    Some(m) if generation > m.member_epoch => Some(errors::FENCED_MEMBER_EPOCH),
                    Some(m) if generation < m.member_epoch => Some(errors::STALE_MEMBER_EPOCH),
                    Some(_) => None,
                };
            }
            let e = if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
                if group.is_static_member_fenced(instance_id, member_id) {
                    Some(errors::FENCED_INSTANCE_ID)
                } else if !group.has(member_id) {
                    Some(errors::UNKNOWN_MEMBER_ID)
                } else if generation != group.generation {
                    Some(errors::ILLEGAL_GENERATION)
                } else {
                    None
                }
            } else if group.state != GroupState::Empty && kind != CommitKind::Transactional {
                // Old transactional clients send no member: only plain commits need an Empty group.
                Some(errors::UNKNOWN_MEMBER_ID)
            } else {
                None
            };
            if e.is_some() {
                return e;
            }
            match group.state {
                // The group's state is not enforced for transactional commits.
                GroupState::CompletingRebalance if kind != CommitKind::Transactional => {
                    Some(errors::REBALANCE_IN_PROGRESS)
                }
                GroupState::CompletingRebalance => None,
                GroupState::Stable | GroupState::PreparingRebalance => {
                    if let Some(m) = group.member_mut(member_id) {
                        m.touch(now);
                    }
                    None
                }
                GroupState::Empty => None,
            }
        });
        (group_error, created)
    }

    /// INVALID_COMMIT_OFFSET_SIZE if a commit's records cannot fit one batch of the offsets
    /// topic, judged by a lower bound of their size (group, topic and metadata bytes of each):
    /// what passes may still fail to append, which the runtime handles by reloading.
    pub(crate) fn commit_too_large(
        &self,
        group_id: &str,
        partitions: impl Iterator<Item = usize>,
    ) -> Option<i16> {
        let bytes: usize = partitions
            .map(|topic_and_metadata| group_id.len() + topic_and_metadata)
            .sum();
        (bytes > self.config.offsets_max_message_bytes)
            .then_some(errors::INVALID_COMMIT_OFFSET_SIZE)
    }

    pub fn offset_commit(
        &mut self,
        now_ms: i64,
        version: i16,
        req: OffsetCommitRequest,
        reply: Responder<OffsetCommitResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let group_id = s(&req.group_id);
        let member_id = s(&req.member_id);
        let instance_id = if version >= 7 {
            req.group_instance_id.as_deref().map(s)
        } else {
            None
        };
        let generation = req.generation_id_or_member_epoch;

        let (group_error, created) = self.validate_offset_commit(
            ctx.now,
            &group_id,
            &member_id,
            instance_id.as_deref(),
            generation,
            CommitKind::Plain { version },
        );
        let group_error = group_error.or_else(|| {
            let sizes = req.topics.iter().flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| t.name.len() + p.committed_metadata.as_ref().map_or(0, |m| m.len()))
            });
            self.commit_too_large(&group_id, sizes)
        });

        let mut resp = OffsetCommitResponse::default();
        let mut stored = false;
        for t in &req.topics {
            let mut rt = OffsetCommitResponseTopic::default();
            rt.name = t.name.clone();
            rt.topic_id = t.topic_id;
            for p in &t.partitions {
                let error = match group_error {
                    Some(e) => e,
                    None => match offset_record(
                        &group_id,
                        &t.name,
                        (
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                        ),
                        p.committed_metadata.as_deref(),
                        ctx.now,
                    ) {
                        Ok(record) => {
                            if let Some(g) = self.groups.get_mut(&group_id) {
                                g.apply_offset(&record);
                            }
                            ctx.records.push(record);
                            stored = true;
                            errors::NONE
                        }
                        Err(error) => error,
                    },
                };
                let mut rp = OffsetCommitResponsePartition::default();
                rp.partition_index = p.partition_index;
                rp.error_code = error;
                rt.partitions.push(rp);
            }
            resp.topics.push(rt);
        }
        if created && !stored {
            self.groups.remove(&group_id);
        }
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    // ----- OffsetFetch --------------------------------------------------------------------------

    /// The committed offsets of `topics` (all of the group's if `None`). With `require_stable`,
    /// a partition with an offset in an open transaction answers UNSTABLE_OFFSET_COMMIT.
    fn fetch_group(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
        require_stable: bool,
    ) -> Vec<(String, Vec<Fetched>)> {
        let group = self.groups.get(group_id);
        let fetched = |topic: &str, partition: i32| {
            if require_stable && self.has_pending_offset(group_id, topic, partition) {
                return Fetched {
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    error: errors::UNSTABLE_OFFSET_COMMIT,
                };
            }
            let committed = group.and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
            Fetched {
                partition,
                offset: committed.map_or(-1, |o| o.offset),
                leader_epoch: committed.map_or(-1, |o| o.leader_epoch),
                metadata: committed
                    .and_then(|o| o.metadata.clone())
                    .unwrap_or_default(),
                error: errors::NONE,
            }
        };
        let topics = topics.unwrap_or_else(|| {
            let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (topic, p) in group.iter().flat_map(|g| g.offsets.keys()) {
                by_topic.entry(topic.clone()).or_default().push(*p);
            }
            by_topic.into_iter().collect()
        });
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                let parts = partitions.into_iter().map(|p| fetched(&topic, p)).collect();
                (topic, parts)
            })
            .collect()
    }

    /// Committed offsets; unknown groups and partitions answer offset -1 without error. With
    /// `require_stable` (v7+), a partition with an offset in an open transaction answers
    /// UNSTABLE_OFFSET_COMMIT (the client retries).
    pub fn offset_fetch(&mut self, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
        let mut resp = OffsetFetchResponse::default();
        if version >= 8 {
            for g in &req.groups {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (s(&t.name), t.partition_indexes.clone()))
                        .collect()
                });
                let mut rg = OffsetFetchResponseGroup::default();
                rg.group_id = g.group_id.clone();
                if let Some(error) = self.not_coordinator(&g.group_id) {
                    rg.error_code = error;
                    resp.groups.push(rg);
                    continue;
                }
                if version >= 9 {
                    if let Some(error) = self.validate_consumer_fetch(
                        &g.group_id,
                        g.member_id.as_deref(),
                        g.member_epoch,
                    ) {
                        rg.error_code = error;
                        resp.groups.push(rg);
                        continue;
                    }
                }
                rg.topics = self
                    .fetch_group(&g.group_id, topics, req.require_stable)
                    .into_iter()
                    .map(|(topic, parts)| {
                        let mut rt = OffsetFetchResponseTopics::default();
                        rt.name = TopicName(sb(&topic));
                        rt.partitions = parts
                            .into_iter()
                            .map(|f| {
                                let mut rp = OffsetFetchResponsePartitions::default();
                                rp.partition_index = f.partition;
                                rp.committed_offset = f.offset;
                                rp.committed_leader_epoch = f.leader_epoch;
                                rp.metadata = Some(sb(&f.metadata));
                                rp.error_code = f.error;
                                rp
                            })
                            .collect();
                        rt
                    })
                    .collect();
                resp.groups.push(rg);
            }
        } else if let Some(error) = self.not_coordinator(&req.group_id) {
            // v0 and v1 have no top-level error: the partitions asked for carry it.
            resp.error_code = error;
            resp.topics = req
                .topics
                .iter()
                .flatten()
                .map(|t| {
                    let mut rt = OffsetFetchResponseTopic::default();
                    rt.name = t.name.clone();
                    rt.partitions = t
                        .partition_indexes
                        .iter()
                        .map(|&index| {
                            let mut rp = OffsetFetchResponsePartition::default();
                            rp.partition_index = index;
                            rp.committed_offset = -1;
                            rp.error_code = error;
                            rp
                        })
                        .collect();
                    rt
                })
                .collect();
        } else {
            let topics = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (s(&t.name), t.partition_indexes.clone()))
                    .collect()
            });
            resp.topics = self
                .fetch_group(&req.group_id, topics, req.require_stable)
                .into_iter()
                .map(|(topic, parts)| {
                    let mut rt = OffsetFetchResponseTopic::default();
                    rt.name = TopicName(sb(&topic));
                    rt.partitions = parts
                        .into_iter()
                        .map(|f| {
                            let mut rp = OffsetFetchResponsePartition::default();
                            rp.partition_index = f.partition;
                            rp.committed_offset = f.offset;
                            if version >= 5 {
                                rp.committed_leader_epoch = f.leader_epoch;
                            }
                            rp.metadata = Some(sb(&f.metadata));
                            rp.error_code = f.error;
                            rp
                        })
                        .collect();
                    rt
                })
                .collect();
        }
        resp
    }

    // ----- DescribeGroups / ListGroups ------------------------------------------------------------

    pub fn describe_groups(
        &self,
        version: i16,
        req: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let mut resp = DescribeGroupsResponse::default();
        for id in &req.groups {
            let mut d = DescribedGroup::default();
            d.group_id = id.clone();
            if let Some(error) = self.not_coordinator(id) {
                d.error_code = error;
                resp.groups.push(d);
                continue;
            }
            match self.groups.get(id.as_str()) {
                None => {
                    d.group_state = sb("Dead");
                    if version >= 6 {
                        d.error_code = errors::GROUP_ID_NOT_FOUND;
                        d.error_message = Some(sb(&format!("Group {} not found.", &**id)));
                    }
                }
                Some(g) if g.consumer.is_some() => {
                    d.group_state = sb("Dead");
                    if version >= 6 {
                        d.error_code = errors::GROUP_ID_NOT_FOUND;
                        d.error_message =
                            Some(sb(&format!("Group {} is not a classic group.", &**id)));
                    }
                }
                Some(g) => {
                    d.group_state = sb(g.state.name());
                    d.protocol_type = sb(g.protocol_type.as_deref().unwrap_or(""));
                    let stable = g.state == GroupState::Stable;
                    let protocol = g.protocol.clone().unwrap_or_default();
                    if stable {
                        d.protocol_data = sb(&protocol);
                    }
                    d.members = g
                        .members
                        .iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default();
                            dm.member_id = sb(&m.id);
                            if version >= 4 {
                                dm.group_instance_id = m.instance_id.as_deref().map(sb);
                            }
                            dm.client_id = sb(&m.client_id);
                            dm.client_host = sb(&m.client_host);
                            if stable {
                                dm.member_metadata = m.metadata(&protocol);
                                dm.member_assignment = m.assignment.clone();
                            }
                            dm
                        })
                        .collect();
                }
            }
            resp.groups.push(d);
        }
        resp
    }

    pub fn list_groups(&self, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(|x| x.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter.iter().map(|x| x.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let mut resp = ListGroupsResponse::default();
        for g in self.groups.values() {
            let (group_type, state, protocol_type) = match &g.consumer {
                Some(cg) => ("consumer", cg.state_name(), "consumer"),
                None => (
                    "classic",
                    g.state.name(),
                    g.protocol_type.as_deref().unwrap_or(""),
                ),
            };
            if !types.is_empty() && !types.iter().any(|t| t == group_type) {
                continue;
            }
            if !states.is_empty() && !states.contains(&state.to_lowercase()) {
                continue;
            }
            let mut l = ListedGroup::default();
            l.group_id = GroupId(sb(&g.id));
            l.protocol_type = sb(protocol_type);
            if version >= 4 {
                l.group_state = sb(state);
            }
            if version >= 5 {
                l.group_type = sb(group_type);
            }
            resp.groups.push(l);
        }
        resp
    }

    // ----- DeleteGroups / OffsetDelete ------------------------------------------------------------

    /// Tombstones every offset of the group, then the group; removes it.
    fn delete_group(&mut self, ctx: &mut Ctx, group_id: &str) {
        if let Some(g) = self.groups.remove(group_id) {
            if g.consumer.is_some() {
                ctx.records
                    .push(GroupRecord::ConsumerGroupRemoved { group: s(group_id) });
            }
            for (topic, partition) in g.offsets.keys() {
                ctx.records.push(GroupRecord::OffsetRemoved {
                    group: s(group_id),
                    topic: topic.clone(),
                    partition: *partition,
                });
            }
            ctx.records
                .push(GroupRecord::GroupRemoved { group: s(group_id) });
        }
    }

    pub fn delete_groups(
        &mut self,
        now_ms: i64,
        _version: i16,
        req: DeleteGroupsRequest,
        reply: Responder<DeleteGroupsResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let mut resp = DeleteGroupsResponse::default();
        for id in &req.groups_names {
            let error = match self.groups.get(id.as_str()) {
                _ if !self.coordinates(id) => errors::NOT_COORDINATOR,
                None => errors::GROUP_ID_NOT_FOUND,
                Some(g) if g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) => {
                    errors::NON_EMPTY_GROUP
                }
                Some(g) if g.state == GroupState::Empty => {
                    self.delete_group(&mut ctx, id);
                    errors::NONE
                }
                Some(_) => errors::NON_EMPTY_GROUP,
            };
            let mut r = DeletableGroupResult::default();
            r.group_id = id.clone();
            r.error_code = error;
            resp.results.push(r);
        }
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    pub fn offset_delete(
        &mut self,
        now_ms: i64,
        _version: i16,
        req: OffsetDeleteRequest,
        reply: Responder<OffsetDeleteResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let group_id = s(&req.group_id);
        let mut resp = OffsetDeleteResponse::default();
        let coordinated = self.coordinates(&group_id);
        match self.groups.get_mut(&group_id) {
            _ if !coordinated => resp.error_code = errors::NOT_COORDINATOR,
            None => resp.error_code = errors::GROUP_ID_NOT_FOUND,
            Some(group) => {
                let consumer_topics = group.consumer.as_ref().map(|c| c.subscribed_topic_names());
                let check_subscription = match group.state {
                    _ if group.consumer.is_some() => Some(
                        group
                            .consumer
                            .as_ref()
                            .is_some_and(|c| !c.members.is_empty()),
                    ),
                    GroupState::Empty => Some(false),
                    _ if group.is_consumer_group() => Some(true),
                    _ => None,
                };
                match check_subscription {
                    None => resp.error_code = errors::NON_EMPTY_GROUP,
                    Some(check) => {
                        for t in &req.topics {
                            let topic = s(&t.name);
                            let subscribed = check
                                && match &consumer_topics {
                                    Some(ts) => ts.contains(&topic),
                                    None => group.is_subscribed_to_topic(&topic),
                                };
                            let mut rt = OffsetDeleteResponseTopic::default();
                            rt.name = t.name.clone();
                            for p in &t.partitions {
                                let error = if subscribed {
                                    errors::GROUP_SUBSCRIBED_TO_TOPIC
                                } else {
                                    if group
                                        .offsets
                                        .contains_key(&(topic.clone(), p.partition_index))
                                    {
                                        let record = GroupRecord::OffsetRemoved {
                                            group: group_id.clone(),
                                            topic: topic.clone(),
                                            partition: p.partition_index,
                                        };
                                        group.apply_offset(&record);
                                        ctx.records.push(record);
                                    }
                                    errors::NONE
                                };
                                let mut rp = OffsetDeleteResponsePartition::default();
                                rp.partition_index = p.partition_index;
                                rp.error_code = error;
                                rt.partitions.push(rp);
                            }
                            resp.topics.push(rt);
                        }
                    }
                }
            }
        }
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    // ----- timers -------------------------------------------------------------------------------

    /// Session expiry, rebalance and sync timeouts, the initial rebalance delay, and (at most once
    /// a minute) offsets retention. Call often.
    pub fn tick(&mut self, now_ms: i64) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let now = now_ms;
        self.tick_consumer_groups(&mut ctx);
        for group in self.groups.values_mut() {
            // Members loaded from the log: their sessions start now.
            for m in group.members.iter_mut() {
                if m.deadline.is_none() {
                    m.touch(now);
                }
            }
            // MEMBER_ID_REQUIRED ids that never came back.
            let expired_pending: Vec<String> = group
                .pending_members
                .iter()
                .filter(|(_, d)| **d <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired_pending {
                group.remove_pending_member_and_update(&mut ctx, &id);
            }
            // Session expiry (Kafka's hasSatisfiedHeartbeat: members parked in a join or a sync
            // do not expire, except new members that never completed a join).
            loop {
                let expired = group
                    .members
                    .iter()
                    .find(|m| {
                        m.deadline.is_some_and(|d| d <= now)
                            && (m.is_new
                                || (m.awaiting_join.is_none() && m.awaiting_sync.is_none()))
                    })
                    .map(|m| m.id.clone());
                match expired {
                    Some(id) => {
                        tracing::info!(group = %group.id, member = %id, "member session expired");
                        group.remove_member_and_update(&mut ctx, &id);
                    }
                    None => break,
                }
            }
            // Join phase timers.
            group.check_join(&mut ctx);
            // Members that never sent SyncGroup after the join completed.
            if matches!(
                group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && group.sync_deadline.is_some_and(|d| d <= now)
            {
                group.sync_deadline = None;
                let pending: Vec<String> = group.pending_sync.iter().cloned().collect();
                if !pending.is_empty() {
                    for id in &pending {
                        group.remove(id);
                    }
                    group.prepare_rebalance(&mut ctx);
                }
            }
        }
        let due = self
            .last_retention_check
            .is_none_or(|last| now - last >= RETENTION_CHECK_INTERVAL_MS);
        if due {
            self.last_retention_check = Some(now);
            self.expire_offsets(&mut ctx);
        }
        self.finish(ctx)
    }

    /// Kafka's cleanupGroupMetadata with its offset expiration conditions.
    fn expire_offsets(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        let retention = self.config.offsets_retention_ms;
        let mut deletable = Vec::new();
        for group in self.groups.values_mut() {
            // Base timestamp per offset, or no expiry at all.
            enum Base {
                Commit,
                StateOrCommit(Option<i64>),
            }
            let rule: Option<(Base, Option<BTreeSet<String>>)> = if let Some(cg) = &group.consumer {
                // KIP-848 groups: by commit time, never for subscribed topics of a live group.
                if cg.members.is_empty() {
                    Some((Base::Commit, None))
                } else {
                    Some((Base::Commit, Some(cg.subscribed_topic_names())))
                }
            } else if group.protocol_type.is_none() {
                Some((Base::Commit, None))
            } else if group.state == GroupState::Empty {
                Some((Base::StateOrCommit(group.state_timestamp), None))
            } else if group.is_consumer_group()
                && group.state == GroupState::Stable
                && group.subscribed_topics.is_some()
            {
                Some((Base::Commit, group.subscribed_topics.clone()))
            } else {
                None
            };
            if let Some((base, subscribed)) = rule {
                let expired: Vec<(String, i32)> = group
                    .offsets
                    .iter()
                    .filter(|((topic, _), o)| {
                        if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
                            return false;
                        }
                        let base_ts = match base {
                            Base::Commit => o.commit_timestamp,
                            Base::StateOrCommit(ts) => ts.unwrap_or(o.commit_timestamp),
                        };
                        now - base_ts >= retention
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for (topic, partition) in expired {
                    let record = GroupRecord::OffsetRemoved {
                        group: group.id.clone(),
                        topic,
                        partition,
                    };
                    group.apply_offset(&record);
                    ctx.records.push(record);
                }
            }
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
                && group.consumer.as_ref().is_none_or(|c| c.members.is_empty())
            {
                deletable.push(group.id.clone());
            }
        }
        for id in deletable {
            self.delete_group(ctx, &id);
        }
    }
}

/// Kafka's updateStaticMemberAndRebalance: a known instance id joins with an unknown member id.
#[allow(clippy::too_many_arguments)]
fn update_static_member_and_rebalance(
    group: &mut Group,
    ctx: &mut Ctx,
    old_id: &str,
    new_id: &str,
    protocols: Vec<(String, Bytes)>,
    rebalance_timeout: i32,
    session_timeout: i32,
    waiter: JoinWaiter,
) {
    let current_leader = group.leader.clone().unwrap_or_default();
    group.replace_static_member(ctx, old_id, new_id);
    let version = waiter.version;
    group.update_member(
        ctx,
        new_id,
        protocols,
        rebalance_timeout,
        session_timeout,
        waiter,
    );
    if let Some(m) = group.member_mut(new_id) {
        m.touch(ctx.now);
    }
    match group.state {
        GroupState::Stable => {
            let selected = group.select_protocol();
            if selected.is_some() && selected == group.protocol {
                // Same protocol: persist the new member id, no rebalance. The old leader id is
                // returned so that a restarted leader does not compute a useless assignment.
                ctx.records.push(group.metadata_record());
                let resp = current_generation_join(group, version, new_id, false, current_leader);
                if let Some(w) = group
                    .member_mut(new_id)
                    .and_then(|m| m.awaiting_join.take())
                {
                    ctx.reply(w.reply, resp);
                }
            } else {
                group.maybe_prepare_rebalance(ctx);
            }
        }
        GroupState::CompletingRebalance => group.prepare_rebalance(ctx),
        GroupState::PreparingRebalance => {}
        GroupState::Empty => group.maybe_prepare_rebalance(ctx),
    }
}

fn current_generation_join(
    group: &Group,
    version: i16,
    member_id: &str,
    with_members: bool,
    leader: String,
) -> JoinGroupResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if with_members {
        group
            .members
            .iter()
            .map(|m| {
                let mut rm =
                    proto_kafka::messages::join_group_response::JoinGroupResponseMember::default();
                rm.member_id = sb(&m.id);
                rm.group_instance_id = m.instance_id.as_deref().map(sb);
                rm.metadata = m.metadata(&protocol);
                rm
            })
            .collect()
    } else {
        Vec::new()
    };
    join_success(
        version,
        group.generation,
        group.protocol_type.as_deref(),
        group.protocol.as_deref(),
        &leader,
        member_id,
        members,
    )
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
