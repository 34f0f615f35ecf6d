//! One classic group: its members, its generation, its timers and its committed offsets.
//!
//! The transitions follow Apache Kafka's classic group protocol (GroupCoordinator / ClassicGroup).
//! Methods take a [`Ctx`] that collects the records to append and the replies to release once
//! they are appended.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proto_kafka::messages::join_group_response::JoinGroupResponseMember;
use proto_kafka::messages::{JoinGroupResponse, SyncGroupResponse};
use proto_kafka::protocol::StrBytes;

use crate::consumer::ConsumerGroup;
use crate::consumer_protocol::{subscribed_topics, CONSUMER_PROTOCOL_TYPE};
use crate::coordinator::GroupConfig;
use crate::errors;
use crate::records::{GroupRecord, MemberRecord};
use crate::Responder;

/// How long a new member may wait in a JoinGroup before it is dropped (Kafka's NewMemberJoinTimeoutMs).
pub(crate) const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 5 * 60 * 1000;

pub(crate) type Reply = Box<dyn FnOnce() + Send>;

/// What one call produced: records to append, then replies to run.
pub(crate) struct Ctx {
    pub now: i64,
    pub config: GroupConfig,
    pub records: Vec<GroupRecord>,
    pub replies: Vec<Reply>,
}

impl Ctx {
    pub fn new(now: i64, config: GroupConfig) -> Self {
        Ctx {
            now,
            config,
            records: Vec::new(),
            replies: Vec::new(),
        }
    }

    pub fn reply<T: Send + 'static>(&mut self, tx: Responder<T>, response: T) {
        self.replies.push(Box::new(move || {
            let _ = tx.send(response);
        }));
    }
}

pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

pub(crate) struct JoinWaiter {
    pub version: i16,
    pub reply: Responder<JoinGroupResponse>,
}

pub(crate) struct SyncWaiter {
    pub version: i16,
    pub reply: Responder<SyncGroupResponse>,
}

pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub awaiting_join: Option<JoinWaiter>,
    pub awaiting_sync: Option<SyncWaiter>,
    pub is_new: bool,
    /// Session deadline; `None` for members loaded from the log until the first tick.
    pub deadline: Option<i64>,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|(name, _)| name == protocol)
    }

    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub fn touch(&mut self, now: i64) {
        self.deadline = Some(now + self.session_timeout_ms as i64);
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum JoinTimer {
    /// Kafka's InitialDelayedJoin: never completes early; extended while new members keep joining.
    Initial {
        deadline: i64,
        delay: i64,
        remaining: i64,
    },
    /// Kafka's DelayedJoin: completes when every member rejoined, or at the rebalance timeout.
    Normal { deadline: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Offset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_timestamp: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pub pending_members: BTreeMap<String, i64>,
    pub new_member_added: bool,
    pub rebalance_timeout_ms: i32,
    pub join_timer: Option<JoinTimer>,
    pub pending_sync: BTreeSet<String>,
    pub sync_deadline: Option<i64>,
    pub subscribed_topics: Option<BTreeSet<String>>,
    pub offsets: BTreeMap<(String, i32), Offset>,
    /// Set when this is a KIP-848 consumer group (the classic state then stays Empty).
    pub consumer: Option<ConsumerGroup>,
}

impl Group {
    pub fn new(id: &str, state_timestamp: Option<i64>) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending_members: BTreeMap::new(),
            new_member_added: false,
            rebalance_timeout_ms: 0,
            join_timer: None,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
            consumer: None,
        }
    }

    // ----- lookups -------------------------------------------------------------------------

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn has(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    pub fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    pub fn static_member_id(&self, instance_id: &str) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.clone())
    }

    /// A known instance id presented with another member id.
    pub fn is_static_member_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        match instance_id.and_then(|i| self.static_member_id(i)) {
            Some(current) => current != member_id,
            None => false,
        }
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.iter().all(|m| m.awaiting_join.is_some()) && self.pending_members.is_empty()
    }

    pub fn is_consumer_group(&self) -> bool {
        self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE)
    }

    /// Kafka's conservative isSubscribedToTopic: unknown subscriptions count as subscribed.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        match &self.subscribed_topics {
            Some(topics) => topics.contains(topic),
            None => true,
        }
    }

    pub fn accept_joining_member(&self, member_id: &str, max_size: i32) -> bool {
        let max = max_size.max(0) as usize;
        match self.state {
            GroupState::Empty => true,
            GroupState::PreparingRebalance => {
                self.member(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.has(member_id) || self.members.len() < max
            }
        }
    }

    pub fn supports_protocols(&self, protocol_type: &str, names: &[String]) -> bool {
        if self.state == GroupState::Empty {
            !protocol_type.is_empty() && !names.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && names
                    .iter()
                    .any(|n| self.members.iter().all(|m| m.supports(n)))
        }
    }

    /// Kafka's selectProtocol: among the protocols every member supports, each member votes for
    /// its most preferred one; the most votes win (ties: the first member's preference order).
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.iter().all(|m| m.supports(n)))
            .collect();
        if candidates.is_empty() {
            return first.protocols.first().map(|(n, _)| n.clone());
        }
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in &self.members {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, bv)| v > bv) {
                best = Some((c, v));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if !self.is_consumer_group() {
            return None;
        }
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        let protocol = self.protocol.as_deref()?;
        let mut all = BTreeSet::new();
        for m in &self.members {
            all.extend(subscribed_topics(&m.metadata(protocol))?);
        }
        Some(all)
    }

    pub fn transition(&mut self, state: GroupState, now: i64) {
        self.state = state;
        self.state_timestamp = Some(now);
    }

    // ----- records ------------------------------------------------------------------------------

    pub fn metadata_record(&self) -> GroupRecord {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupRecord::GroupMetadata {
            group: self.id.clone(),
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp.unwrap_or(0),
            members: self
                .members
                .iter()
                .map(|m| MemberRecord {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Replays a GroupMetadata record: the group comes back Stable with its members (Empty without).
    pub fn load_metadata(
        &mut self,
        protocol_type: Option<String>,
        generation: i32,
        protocol: Option<String>,
        leader: Option<String>,
        state_timestamp: i64,
        members: Vec<MemberRecord>,
    ) {
        let protocol_name = protocol.clone().unwrap_or_default();
        self.protocol_type = protocol_type;
        self.generation = generation;
        self.protocol = protocol;
        self.members = members
            .into_iter()
            .map(|m| Member {
                id: m.member_id,
                instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol_name.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                deadline: None,
            })
            .collect();
        self.leader = leader.filter(|l| self.has(l));
        if self.leader.is_none() {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.state_timestamp = Some(state_timestamp);
        self.pending_members.clear();
        self.new_member_added = false;
        self.join_timer = None;
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.rebalance_timeout_ms = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.subscribed_topics = self.compute_subscribed_topics();
    }

    /// Applies an offset record (the same path for replay and for live commits).
    pub fn apply_offset(&mut self, record: &GroupRecord) {
        match record {
            GroupRecord::OffsetCommit {
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
                commit_timestamp,
                ..
            } => {
                self.offsets.insert(
                    (topic.clone(), *partition),
                    Offset {
                        offset: *offset,
                        leader_epoch: *leader_epoch,
                        metadata: metadata.clone(),
                        commit_timestamp: *commit_timestamp,
                    },
                );
            }
            GroupRecord::OffsetRemoved {
                topic, partition, ..
            } => {
                self.offsets.remove(&(topic.clone(), *partition));
            }
            _ => {}
        }
    }

    // ----- membership ---------------------------------------------------------------------------

    /// Kafka's GroupMetadata.add.
    pub fn add(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member.id.clone());
        }
        self.pending_members.remove(&member.id);
        self.members.push(member);
    }

    /// Kafka's GroupMetadata.remove: no rebalance, no replies.
    pub fn remove(&mut self, member_id: &str) -> Option<Member> {
        let pos = self.members.iter().position(|m| m.id == member_id);
        let removed = pos.map(|p| self.members.remove(p));
        if self.is_leader(member_id) {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
        removed
    }

    pub fn update_member(
        &mut self,
        ctx: &mut Ctx,
        member_id: &str,
        protocols: Vec<(String, Bytes)>,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        waiter: JoinWaiter,
    ) {
        if let Some(m) = self.member_mut(member_id) {
            m.protocols = protocols;
            m.rebalance_timeout_ms = rebalance_timeout_ms;
            m.session_timeout_ms = session_timeout_ms;
            if let Some(old) = m.awaiting_join.replace(waiter) {
                // A newer JoinGroup of the same member supersedes the parked one.
                let resp = join_error(old.version, errors::REBALANCE_IN_PROGRESS, member_id);
                ctx.reply(old.reply, resp);
            }
        }
    }

    /// Kafka's removeMemberAndUpdateGroup.
    pub fn remove_member_and_update(&mut self, ctx: &mut Ctx, member_id: &str) {
        let Some(mut member) = self.remove(member_id) else {
            return;
        };
        if let Some(w) = member.awaiting_join.take() {
            ctx.reply(
                w.reply,
                join_error(w.version, errors::UNKNOWN_MEMBER_ID, ""),
            );
        }
        if let Some(w) = member.awaiting_sync.take() {
            ctx.reply(w.reply, sync_error(errors::UNKNOWN_MEMBER_ID));
        }
        match self.state {
            GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(ctx)
            }
            GroupState::PreparingRebalance => self.check_join(ctx),
        }
    }

    pub fn remove_pending_member_and_update(&mut self, ctx: &mut Ctx, member_id: &str) {
        self.pending_members.remove(member_id);
        if self.state == GroupState::PreparingRebalance {
            self.check_join(ctx);
        }
    }

    /// Kafka's addMemberAndRebalance.
    #[allow(clippy::too_many_arguments)]
    pub fn add_member_and_rebalance(
        &mut self,
        ctx: &mut Ctx,
        member_id: String,
        instance_id: Option<String>,
        client_id: &str,
        client_host: &str,
        rebalance_timeout_ms: i32,
        session_timeout_ms: i32,
        protocol_type: String,
        protocols: Vec<(String, Bytes)>,
        waiter: JoinWaiter,
    ) {
        let member = Member {
            id: member_id,
            instance_id,
            client_id: client_id.to_string(),
            client_host: client_host.to_string(),
            rebalance_timeout_ms,
            session_timeout_ms,
            protocol_type,
            protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(waiter),
            awaiting_sync: None,
            is_new: true,
            deadline: Some(ctx.now + NEW_MEMBER_JOIN_TIMEOUT_MS),
        };
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        self.add(member);
        self.maybe_prepare_rebalance(ctx);
    }

    /// Kafka's replaceStaticMember: the old member id is fenced, the member keeps its place,
    /// assignment and leadership under the new id.
    pub fn replace_static_member(&mut self, ctx: &mut Ctx, old_id: &str, new_id: &str) {
        if let Some(m) = self.member_mut(old_id) {
            let join = m.awaiting_join.take();
            let sync = m.awaiting_sync.take();
            m.id = new_id.to_string();
            if let Some(w) = join {
                ctx.reply(
                    w.reply,
                    join_error(w.version, errors::FENCED_INSTANCE_ID, old_id),
                );
            }
            if let Some(w) = sync {
                ctx.reply(w.reply, sync_error(errors::FENCED_INSTANCE_ID));
            }
        }
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_string());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_string());
        }
    }

    // ----- rebalancing ----------------------------------------------------------------------------

    pub fn maybe_prepare_rebalance(&mut self, ctx: &mut Ctx) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(ctx);
        }
    }

    pub fn prepare_rebalance(&mut self, ctx: &mut Ctx) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(ctx, errors::REBALANCE_IN_PROGRESS);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.rebalance_timeout_ms = self
            .members
            .iter()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        let rebalance_timeout = self.rebalance_timeout_ms.max(0) as i64;
        let initial = self.state == GroupState::Empty;
        self.join_timer = Some(if initial {
            let delay = ctx.config.initial_rebalance_delay_ms.max(0) as i64;
            JoinTimer::Initial {
                deadline: ctx.now + delay,
                delay,
                remaining: (rebalance_timeout - delay).max(0),
            }
        } else {
            JoinTimer::Normal {
                deadline: ctx.now + rebalance_timeout,
            }
        });
        self.transition(GroupState::PreparingRebalance, ctx.now);
        if !initial {
            self.check_join(ctx);
        }
    }

    /// Completes the join phase when its delayed operation is due (all members rejoined for a
    /// normal rebalance, or the timer expired).
    pub fn check_join(&mut self, ctx: &mut Ctx) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        match self.join_timer {
            Some(JoinTimer::Normal { deadline }) => {
                if self.has_all_members_joined() || ctx.now >= deadline {
                    self.complete_join(ctx);
                }
            }
            Some(JoinTimer::Initial {
                deadline,
                delay,
                remaining,
            }) => {
                if ctx.now >= deadline {
                    if self.new_member_added && remaining != 0 {
                        self.new_member_added = false;
                        let next_delay =
                            (ctx.config.initial_rebalance_delay_ms.max(0) as i64).min(remaining);
                        self.join_timer = Some(JoinTimer::Initial {
                            deadline: ctx.now + next_delay,
                            delay: next_delay,
                            remaining: (remaining - delay).max(0),
                        });
                    } else {
                        self.complete_join(ctx);
                    }
                }
            }
            None => self.complete_join(ctx),
        }
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .member(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Kafka's onCompleteJoin.
    fn complete_join(&mut self, ctx: &mut Ctx) {
        let not_rejoined: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in not_rejoined {
            self.remove(&id);
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Nobody rejoined: wait another rebalance timeout for session expiry to clean up.
            self.join_timer = Some(JoinTimer::Normal {
                deadline: ctx.now + self.rebalance_timeout_ms.max(0) as i64,
            });
            return;
        }
        self.join_timer = None;
        self.new_member_added = false;
        self.init_next_generation(ctx.now);
        if self.state == GroupState::Empty {
            ctx.records.push(self.metadata_record());
            return;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all_members: Vec<JoinGroupResponseMember> = self
            .members
            .iter()
            .map(|m| {
                let mut rm = JoinGroupResponseMember::default();
                rm.member_id = sb(&m.id);
                rm.group_instance_id = m.instance_id.as_deref().map(sb);
                rm.metadata = m.metadata(&protocol);
                rm
            })
            .collect();
        let generation = self.generation;
        let protocol_type = self.protocol_type.clone();
        let mut pending = BTreeSet::new();
        for m in self.members.iter_mut() {
            if let Some(w) = m.awaiting_join.take() {
                let members = if m.id == leader {
                    all_members.clone()
                } else {
                    Vec::new()
                };
                let resp = join_success(
                    w.version,
                    generation,
                    protocol_type.as_deref(),
                    Some(&protocol),
                    &leader,
                    &m.id,
                    members,
                );
                ctx.reply(w.reply, resp);
            }
            m.touch(ctx.now);
            m.is_new = false;
            pending.insert(m.id.clone());
        }
        self.pending_sync = pending;
        self.sync_deadline = Some(ctx.now + self.rebalance_timeout_ms.max(0) as i64);
    }

    fn init_next_generation(&mut self, now: i64) {
        self.generation += 1;
        if self.members.is_empty() {
            self.protocol = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, now);
        } else {
            self.protocol = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::CompletingRebalance, now);
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
    }

    pub fn reset_and_propagate_assignment_error(&mut self, ctx: &mut Ctx, error: i16) {
        for m in self.members.iter_mut() {
            m.assignment = Bytes::new();
            if let Some(w) = m.awaiting_sync.take() {
                ctx.reply(w.reply, sync_error(error));
                m.touch(ctx.now);
            }
        }
    }

    pub fn set_and_propagate_assignment(&mut self, ctx: &mut Ctx) {
        let protocol_type = self.protocol_type.clone();
        let protocol = self.protocol.clone();
        for m in self.members.iter_mut() {
            if let Some(w) = m.awaiting_sync.take() {
                let resp = sync_success(
                    w.version,
                    protocol_type.as_deref(),
                    protocol.as_deref(),
                    m.assignment.clone(),
                );
                ctx.reply(w.reply, resp);
                m.touch(ctx.now);
            }
        }
    }
}

// ----- response builders ------------------------------------------------------------------------

pub(crate) fn join_error(version: i16, error: i16, member_id: &str) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.error_code = error;
    r.generation_id = -1;
    r.member_id = sb(member_id);
    r.protocol_name = if version >= 7 { None } else { Some(sb("")) };
    r
}

pub(crate) fn join_success(
    version: i16,
    generation: i32,
    protocol_type: Option<&str>,
    protocol: Option<&str>,
    leader: &str,
    member_id: &str,
    members: Vec<JoinGroupResponseMember>,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default();
    r.generation_id = generation;
    if version >= 7 {
        r.protocol_type = protocol_type.map(sb);
    }
    r.protocol_name = Some(sb(protocol.unwrap_or("")));
    r.leader = sb(leader);
    r.member_id = sb(member_id);
    r.members = members;
    r
}

pub(crate) fn sync_error(error: i16) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    r.error_code = error;
    r
}

pub(crate) fn sync_success(
    version: i16,
    protocol_type: Option<&str>,
    protocol: Option<&str>,
    assignment: Bytes,
) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default();
    if version >= 5 {
        r.protocol_type = protocol_type.map(sb);
        r.protocol_name = protocol.map(sb);
    }
    r.assignment = assignment;
    r
}
