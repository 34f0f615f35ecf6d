//! The coordinator's KIP-848 handlers: ConsumerGroupHeartbeat, ConsumerGroupDescribe, metadata
//! changes and the consumer groups' timers (Kafka's GroupMetadataManager, simplified).

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use proto_kafka::messages::consumer_group_describe_response as cgd;
use proto_kafka::messages::consumer_group_heartbeat_response as cgh;
use proto_kafka::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, TopicName,
};

use crate::consumer::{
    Assignment, ConsumerGroup, ConsumerMember, MemberState, TopicCatalog, ASSIGNORS,
    LEAVE_STATIC_EPOCH,
};
use crate::coordinator::{s, GroupCoordinator};
use crate::errors;
use crate::group::{sb, Ctx, Group, GroupState};
use crate::records::GroupRecord;
use crate::regex::Regex;
use crate::Responder;

type HbResult = Result<ConsumerGroupHeartbeatResponse, (i16, Option<String>)>;

fn err(code: i16, message: impl Into<String>) -> HbResult {
    Err((code, Some(message.into())))
}

fn snapshot(group: &str, cg: &ConsumerGroup) -> GroupRecord {
    GroupRecord::ConsumerGroup {
        group: group.to_string(),
        state: cg.to_value(),
    }
}

fn to_assignment(
    tps: &[proto_kafka::messages::consumer_group_heartbeat_request::TopicPartitions],
) -> Assignment {
    let mut a = Assignment::new();
    for t in tps {
        if !t.partitions.is_empty() {
            a.entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
    }
    a
}

fn is_subset(small: &Assignment, big: &Assignment) -> bool {
    small
        .iter()
        .all(|(t, ps)| big.get(t).is_some_and(|b| ps.is_subset(b)))
}

fn response_assignment(a: &Assignment) -> cgh::Assignment {
    let mut out = cgh::Assignment::default();
    out.topic_partitions = a
        .iter()
        .map(|(t, ps)| {
            let mut tp = cgh::TopicPartitions::default();
            tp.topic_id = *t;
            tp.partitions = ps.iter().copied().collect();
            tp
        })
        .collect();
    out
}

fn describe_assignment(a: &Assignment, topics: &dyn TopicCatalog) -> cgd::Assignment {
    let mut out = cgd::Assignment::default();
    out.topic_partitions = a
        .iter()
        .map(|(t, ps)| {
            let mut tp = cgd::TopicPartitions::default();
            tp.topic_id = *t;
            tp.topic_name = TopicName(sb(&topics.by_id(t).map(|i| i.name).unwrap_or_default()));
            tp.partitions = ps.iter().copied().collect();
            tp
        })
        .collect();
    out
}

impl GroupCoordinator {
    /// ConsumerGroupHeartbeat (KIP-848) without the client's id and host (described as empty).
    pub fn consumer_group_heartbeat(
        &mut self,
        now_ms: i64,
        version: i16,
        req: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicCatalog,
        reply: Responder<ConsumerGroupHeartbeatResponse>,
    ) -> Vec<GroupRecord> {
        self.consumer_group_heartbeat_from(now_ms, version, "", "", req, topics, reply)
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, heartbeats, reconciles and leaves.
    #[allow(clippy::too_many_arguments)]
    pub fn consumer_group_heartbeat_from(
        &mut self,
        now_ms: i64,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicCatalog,
        reply: Responder<ConsumerGroupHeartbeatResponse>,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        let resp = match self.do_consumer_heartbeat(
            &mut ctx,
            version,
            client_id,
            client_host,
            req,
            topics,
        ) {
            Ok(r) => r,
            Err((code, message)) => {
                let mut r = ConsumerGroupHeartbeatResponse::default();
                r.error_code = code;
                r.error_message = message.as_deref().map(sb);
                r
            }
        };
        ctx.reply(reply, resp);
        self.finish(ctx)
    }

    fn new_consumer_member_id(&mut self, group: &str, now: i64) -> String {
        self.member_counter += 1;
        let mut h = DefaultHasher::new();
        (group, now, self.member_counter, "consumer").hash(&mut h);
        let a = h.finish();
        let mut h2 = DefaultHasher::new();
        (a, self.member_counter).hash(&mut h2);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&h2.finish().to_be_bytes());
        // A version 4 UUID, as Kafka's Uuid.randomUuid().
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    #[allow(clippy::too_many_arguments)]
    fn do_consumer_heartbeat(
        &mut self,
        ctx: &mut Ctx,
        version: i16,
        client_id: &str,
        client_host: &str,
        req: ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicCatalog,
    ) -> HbResult {
        let group_id = s(&req.group_id);
        let mut member_id = s(&req.member_id);
        let epoch = req.member_epoch;
        let instance_id = req.instance_id.as_deref().map(s);
        let regex = if version >= 1 {
            req.subscribed_topic_regex.as_deref().map(s)
        } else {
            None
        };
        let owned = req.topic_partitions.as_deref().map(to_assignment);

        // Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid.
        let invalid = errors::INVALID_REQUEST;
        if group_id.is_empty() {
            return err(invalid, "GroupId can't be empty.");
        }
        if (version >= 1 || epoch != 0) && member_id.is_empty() {
            return err(invalid, "MemberId can't be empty.");
        }
        if instance_id.as_deref() == Some("") {
            return err(invalid, "InstanceId can't be empty.");
        }
        if req.rack_id.as_deref() == Some("") {
            return err(invalid, "RackId can't be empty.");
        }
        match epoch {
            0 => {
                if req.rebalance_timeout_ms == -1 {
                    return err(
                        invalid,
                        "RebalanceTimeoutMs must be provided in first request.",
                    );
                }
                if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                    return err(invalid, "TopicPartitions must be empty when (re-)joining.");
                }
                if req.subscribed_topic_names.is_none() && regex.is_none() {
                    return err(
                        invalid,
                        "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                    );
                }
            }
            LEAVE_STATIC_EPOCH if instance_id.is_none() => {
                return err(invalid, "InstanceId can't be null.");
            }
            e if e < LEAVE_STATIC_EPOCH => return err(invalid, "MemberEpoch is invalid."),
            _ => {}
        }
        if let Some(a) = req.server_assignor.as_deref() {
            if !ASSIGNORS.contains(&a) {
                return err(
                    errors::UNSUPPORTED_ASSIGNOR,
                    format!(
                        "ServerAssignor {a} is not supported. Supported assignors: {}.",
                        ASSIGNORS.join(", ")
                    ),
                );
            }
        }
        if let Some(error) = self.not_coordinator(&group_id) {
            return err(
                error,
                format!("This is not the coordinator of group {group_id}."),
            );
        }
        if let Some(r) = regex.as_deref().filter(|r| !r.is_empty()) {
            if Regex::new(r).is_none() {
                return err(
                    errors::INVALID_REGULAR_EXPRESSION,
                    format!("SubscribedTopicRegex `{r}` is not a valid regular expression."),
                );
            }
        }

        if epoch < 0 {
            return self.consumer_leave(ctx, &group_id, &member_id, instance_id, epoch, topics);
        }

        // The group: created on a first join; an empty classic group is converted.
        match self.groups.get(&group_id) {
            None if epoch == 0 => {
                let mut g = Group::new(&group_id, Some(ctx.now));
                g.consumer = Some(ConsumerGroup::default());
                self.groups.insert(group_id.clone(), g);
            }
            None => {
                return err(
                    errors::UNKNOWN_MEMBER_ID,
                    format!("Group {group_id} not found."),
                )
            }
            Some(g) if g.consumer.is_none() => {
                if !g.members.is_empty()
                    || !g.pending_members.is_empty()
                    || g.state != GroupState::Empty
                {
                    return err(
                        errors::GROUP_ID_NOT_FOUND,
                        format!("Group {group_id} is not a consumer group."),
                    );
                }
                if epoch != 0 {
                    return err(
                        errors::UNKNOWN_MEMBER_ID,
                        format!("Member {member_id} is not a member of group {group_id}."),
                    );
                }
                if let Some(g) = self.groups.get_mut(&group_id) {
                    g.consumer = Some(ConsumerGroup::default());
                }
            }
            Some(_) => {}
        }
        if member_id.is_empty() {
            member_id = self.new_consumer_member_id(&group_id, ctx.now);
        }
        let (session_ms, heartbeat_ms) =
            self.config.consumer_timings(self.overrides.get(&group_id));
        let Some(cg) = self
            .groups
            .get_mut(&group_id)
            .and_then(|g| g.consumer.as_mut())
        else {
            return err(errors::UNKNOWN_MEMBER_ID, "Group vanished.");
        };
        let before = cg.to_value();
        let mut bump = false;

        if epoch == 0 {
            let existing_static = instance_id.as_deref().and_then(|i| cg.static_member_id(i));
            match existing_static {
                Some(old) if old != member_id => {
                    let released = cg
                        .members
                        .get(&old)
                        .is_some_and(|m| m.member_epoch == LEAVE_STATIC_EPOCH);
                    if !released {
                        return err(
                            errors::UNRELEASED_INSTANCE_ID,
                            format!(
                                "Static member {member_id} with instance id {} cannot join the group because the instance id is owned by member {old}.",
                                instance_id.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                    // The static member comes back under a new member id, with its assignment.
                    if let Some(mut m) = cg.members.remove(&old) {
                        m.id = member_id.clone();
                        cg.members.insert(member_id.clone(), m);
                    }
                    if let Some(t) = cg.target.remove(&old) {
                        cg.target.insert(member_id.clone(), t);
                    }
                }
                _ => match cg.members.get_mut(&member_id) {
                    Some(m) => {
                        // A rejoin: the member lost its partitions; it starts over.
                        m.assigned.clear();
                        m.pending_revocation.clear();
                        m.state = MemberState::Stable;
                        m.member_epoch = 0;
                        m.previous_member_epoch = 0;
                    }
                    None => {
                        let mut m = ConsumerMember::new(member_id.clone());
                        m.instance_id = instance_id.clone();
                        cg.members.insert(member_id.clone(), m);
                        bump = true;
                    }
                },
            }
        } else {
            if let Some(iid) = instance_id.as_deref() {
                if cg.static_member_id(iid).is_some_and(|id| id != member_id) {
                    return err(
                        errors::FENCED_INSTANCE_ID,
                        format!("Instance id {iid} is owned by another member."),
                    );
                }
            }
            let Some(m) = cg.members.get(&member_id) else {
                return err(
                    errors::UNKNOWN_MEMBER_ID,
                    format!("Member {member_id} is not a member of group {group_id}."),
                );
            };
            // Kafka's throwIfMemberEpochIsInvalid.
            if epoch > m.member_epoch {
                return err(
                    errors::FENCED_MEMBER_EPOCH,
                    format!(
                        "The consumer group member has a greater epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        m.member_epoch
                    ),
                );
            }
            if epoch < m.member_epoch
                && (epoch != m.previous_member_epoch
                    || !owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned)))
            {
                return err(
                    errors::FENCED_MEMBER_EPOCH,
                    format!(
                        "The consumer group member has a smaller epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        m.member_epoch
                    ),
                );
            }
        }

        // Fields are sent only when they changed.
        let Some(m) = cg.members.get_mut(&member_id) else {
            return err(errors::UNKNOWN_MEMBER_ID, "Member vanished.");
        };
        if !client_id.is_empty() || m.client_id.is_empty() {
            m.client_id = client_id.to_string();
        }
        if !client_host.is_empty() || m.client_host.is_empty() {
            m.client_host = client_host.to_string();
        }
        if let Some(r) = req.rack_id.as_deref() {
            m.rack_id = Some(s(r));
        }
        if req.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(names) = &req.subscribed_topic_names {
            let names: BTreeSet<String> = names.iter().map(|n| s(n)).collect();
            if names != m.subscribed_topic_names {
                m.subscribed_topic_names = names;
                bump = true;
            }
        }
        if let Some(r) = regex {
            let r = Some(r).filter(|r| !r.is_empty());
            if r != m.subscribed_topic_regex {
                m.subscribed_topic_regex = r;
                bump = true;
            }
        }
        if let Some(a) = req.server_assignor.as_deref() {
            if m.server_assignor.as_deref() != Some(a) {
                m.server_assignor = Some(s(a));
                bump = true;
            }
        }
        m.session_deadline = Some(ctx.now + session_ms.max(0) as i64);
        let old_assigned = m.assigned.clone();

        if cg.refresh_topics(topics) {
            bump = true;
        }
        if bump {
            cg.bump_and_assign();
        }
        cg.reconcile(&member_id, owned.as_ref(), ctx.now);

        let Some(m) = cg.members.get(&member_id) else {
            return err(errors::UNKNOWN_MEMBER_ID, "Member vanished.");
        };
        let full_request = req.rebalance_timeout_ms != -1
            && req.subscribed_topic_names.is_some()
            && req.topic_partitions.is_some();
        let mut resp = ConsumerGroupHeartbeatResponse::default();
        resp.member_id = Some(sb(&member_id));
        resp.member_epoch = m.member_epoch;
        resp.heartbeat_interval_ms = heartbeat_ms;
        if epoch == 0 || full_request || m.assigned != old_assigned {
            resp.assignment = Some(response_assignment(&m.assigned));
        }
        if cg.to_value() != before {
            ctx.records.push(snapshot(&group_id, cg));
        }
        Ok(resp)
    }

    /// Member epoch -1 (leave) or -2 (a static member leaves for a while, keeping its partitions).
    fn consumer_leave(
        &mut self,
        ctx: &mut Ctx,
        group_id: &str,
        member_id: &str,
        instance_id: Option<String>,
        epoch: i32,
        topics: &dyn TopicCatalog,
    ) -> HbResult {
        let Some(g) = self.groups.get_mut(group_id) else {
            return err(
                errors::UNKNOWN_MEMBER_ID,
                format!("Group {group_id} not found."),
            );
        };
        let Some(cg) = g.consumer.as_mut() else {
            return err(
                errors::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} is not a consumer group."),
            );
        };
        let id = match instance_id.as_deref() {
            Some(iid) => match cg.static_member_id(iid) {
                None => {
                    return err(
                        errors::UNKNOWN_MEMBER_ID,
                        format!("Instance id {iid} is unknown."),
                    )
                }
                Some(id) if id != member_id => {
                    return err(
                        errors::FENCED_INSTANCE_ID,
                        format!("Instance id {iid} is owned by another member."),
                    )
                }
                Some(id) => id,
            },
            None if cg.members.contains_key(member_id) => member_id.to_string(),
            None => {
                return err(
                    errors::UNKNOWN_MEMBER_ID,
                    format!("Member {member_id} is not a member of group {group_id}."),
                )
            }
        };
        if epoch == LEAVE_STATIC_EPOCH {
            if let Some(m) = cg.members.get_mut(&id) {
                m.member_epoch = LEAVE_STATIC_EPOCH;
                m.pending_revocation.clear();
                m.state = MemberState::Stable;
                m.revocation_deadline = None;
            }
        } else {
            cg.remove_member(&id);
            cg.refresh_topics(topics);
            cg.bump_and_assign();
        }
        ctx.records.push(snapshot(group_id, cg));
        let mut resp = ConsumerGroupHeartbeatResponse::default();
        resp.member_id = Some(sb(member_id));
        resp.member_epoch = epoch;
        Ok(resp)
    }

    /// ConsumerGroupDescribe.
    pub fn consumer_group_describe(
        &self,
        version: i16,
        req: ConsumerGroupDescribeRequest,
        topics: &dyn TopicCatalog,
    ) -> ConsumerGroupDescribeResponse {
        let mut resp = ConsumerGroupDescribeResponse::default();
        for id in &req.group_ids {
            let mut d = cgd::DescribedGroup::default();
            d.group_id = id.clone();
            if let Some(error) = self.not_coordinator(id) {
                d.error_code = error;
                resp.groups.push(d);
                continue;
            }
            match self.groups.get(id.as_str()).map(|g| g.consumer.as_ref()) {
                None => {
                    d.error_code = errors::GROUP_ID_NOT_FOUND;
                    d.error_message = Some(sb(&format!("Group {} not found.", &**id)));
                }
                Some(None) => {
                    d.error_code = errors::GROUP_ID_NOT_FOUND;
                    d.error_message =
                        Some(sb(&format!("Group {} is not a consumer group.", &**id)));
                }
                Some(Some(cg)) => {
                    d.group_state = sb(cg.state_name());
                    d.group_epoch = cg.group_epoch;
                    d.assignment_epoch = cg.assignment_epoch;
                    d.assignor_name = sb(cg.preferred_assignor());
                    let empty = Assignment::new();
                    d.members = cg
                        .members
                        .values()
                        .map(|m| {
                            let mut dm = cgd::Member::default();
                            dm.member_id = sb(&m.id);
                            dm.instance_id = m.instance_id.as_deref().map(sb);
                            dm.rack_id = m.rack_id.as_deref().map(sb);
                            dm.member_epoch = m.member_epoch;
                            dm.client_id = sb(&m.client_id);
                            dm.client_host = sb(&m.client_host);
                            dm.subscribed_topic_names = m
                                .subscribed_topic_names
                                .iter()
                                .map(|n| TopicName(sb(n)))
                                .collect();
                            dm.subscribed_topic_regex = m.subscribed_topic_regex.as_deref().map(sb);
                            dm.assignment = describe_assignment(&m.assigned, topics);
                            dm.target_assignment =
                                describe_assignment(cg.target.get(&m.id).unwrap_or(&empty), topics);
                            if version >= 1 {
                                dm.member_type = 1;
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

    /// After a metadata change: committed offsets of deleted topics (or partitions) are removed,
    /// as Kafka does, so a topic re-created under the same name starts without them; consumer
    /// groups whose subscribed topics changed (created, deleted, partitions added, regex now
    /// matching) get a new epoch and target assignment.
    pub fn on_metadata_change(
        &mut self,
        now_ms: i64,
        topics: &dyn TopicCatalog,
    ) -> Vec<GroupRecord> {
        let mut ctx = Ctx::new(now_ms, self.config);
        for g in self.groups.values_mut() {
            let gone: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, p)| topics.by_name(t).is_none_or(|info| *p >= info.partitions))
                .cloned()
                .collect();
            for (topic, partition) in gone {
                let record = GroupRecord::OffsetRemoved {
                    group: g.id.clone(),
                    topic,
                    partition,
                };
                g.apply_offset(&record);
                ctx.records.push(record);
            }
        }
        for g in self.groups.values_mut() {
            let Some(cg) = g.consumer.as_mut() else {
                continue;
            };
            if cg.members.is_empty() {
                continue;
            }
            if cg.refresh_topics(topics) {
                cg.bump_and_assign();
                ctx.records.push(snapshot(&g.id, cg));
            }
        }
        self.finish(ctx)
    }

    /// Session expiry and revocation (rebalance) timeouts of consumer group members.
    pub(crate) fn tick_consumer_groups(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        for g in self.groups.values_mut() {
            let Some(cg) = g.consumer.as_mut() else {
                continue;
            };
            let session = self
                .config
                .consumer_timings(self.overrides.get(&g.id))
                .0
                .max(0) as i64;
            let mut expired = Vec::new();
            for m in cg.members.values_mut() {
                // Members loaded from the log: their sessions start now.
                let deadline = *m.session_deadline.get_or_insert(now + session);
                let revocation_overdue = m.state == MemberState::UnrevokedPartitions
                    && m.revocation_deadline.is_some_and(|d| d <= now);
                if deadline <= now || revocation_overdue {
                    expired.push(m.id.clone());
                }
            }
            if expired.is_empty() {
                continue;
            }
            for id in &expired {
                tracing::info!(group = %g.id, member = %id, "consumer group member fenced (session or rebalance timeout)");
                cg.remove_member(id);
            }
            let still: BTreeSet<String> = cg
                .topics
                .keys()
                .filter(|t| cg.members.values().any(|m| m.subscribes_to(t)))
                .cloned()
                .collect();
            cg.topics.retain(|t, _| still.contains(t));
            cg.bump_and_assign();
            ctx.records.push(snapshot(&g.id, cg));
        }
    }

    /// OffsetFetch v9+ from a member of a consumer group: its epoch must be current.
    pub(crate) fn validate_consumer_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Option<i16> {
        let member_id = member_id?;
        let cg = self.groups.get(group_id)?.consumer.as_ref()?;
        if member_epoch < 0 && member_id.is_empty() {
            return None;
        }
        match cg.members.get(member_id) {
            None => Some(errors::UNKNOWN_MEMBER_ID),
            Some(m) if m.member_epoch != member_epoch => Some(errors::STALE_MEMBER_EPOCH),
            Some(_) => None,
        }
    }
}
