//! Consumer groups of the KIP-848 protocol (ConsumerGroupHeartbeat): members, the group epoch,
//! the target assignment computed by a server-side assignor, and each member's reconciliation
//! toward its target (Kafka's ConsumerGroup and CurrentAssignmentBuilder).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::records::{
    ConsumerGroupValue, ConsumerMemberRecord, TopicMetadataRecord, TopicPartitionsRecord,
};
use crate::regex::Regex;

/// What the coordinator needs to know of a topic (from the broker's metadata image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
}

/// The topics of the cluster, as the coordinator sees them.
pub trait TopicCatalog {
    fn by_name(&self, name: &str) -> Option<TopicInfo>;
    fn by_id(&self, id: &Uuid) -> Option<TopicInfo>;
    fn names(&self) -> Vec<String>;
}

/// Partitions by topic id; never holds an empty set.
pub(crate) type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

pub(crate) const UNIFORM: &str = "uniform";
pub(crate) const RANGE: &str = "range";
/// The server-side assignors, the default first.
pub(crate) const ASSIGNORS: [&str; 2] = [UNIFORM, RANGE];

/// Member epoch of a static member that left temporarily.
pub(crate) const LEAVE_STATIC_EPOCH: i32 = -2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MemberState {
    Stable,
    /// Waits for the member to acknowledge the revocation of `pending_revocation`.
    UnrevokedPartitions,
    /// At the target epoch, but some target partitions are still owned by other members.
    UnreleasedPartitions,
}

impl MemberState {
    fn code(self) -> u8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: BTreeSet<String>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    /// Partitions the member may use now.
    pub assigned: Assignment,
    /// Partitions the member must give up before it may advance.
    pub pending_revocation: Assignment,
    /// Session deadline; `None` for members loaded from the log until the first tick.
    pub session_deadline: Option<i64>,
    /// When a member in `UnrevokedPartitions` is fenced for not revoking.
    pub revocation_deadline: Option<i64>,
}

impl ConsumerMember {
    pub fn new(id: String) -> Self {
        ConsumerMember {
            id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: None,
            revocation_deadline: None,
        }
    }

    pub fn subscribes_to(&self, topic: &str) -> bool {
        self.subscribed_topic_names.contains(topic)
            || self
                .subscribed_topic_regex
                .as_deref()
                .and_then(Regex::new)
                .is_some_and(|r| r.is_match(topic) && !is_internal(topic))
    }
}

fn is_internal(topic: &str) -> bool {
    topic == "__consumer_offsets" || topic == "__transaction_state"
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The subscribed topics that exist: name → (id, partitions).
    pub topics: BTreeMap<String, (Uuid, i32)>,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
}

impl ConsumerGroup {
    /// KIP-848's group states.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor most members ask for (the default one without any preference).
    pub fn preferred_assignor(&self) -> &'static str {
        let mut votes = [0usize; ASSIGNORS.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .server_assignor
                .as_deref()
                .and_then(|a| ASSIGNORS.iter().position(|x| *x == a))
            {
                votes[i] += 1;
            }
        }
        let mut best = 0;
        for (i, v) in votes.iter().enumerate() {
            if *v > votes[best] {
                best = i;
            }
        }
        ASSIGNORS[best]
    }

    pub fn static_member_id(&self, instance_id: &str) -> Option<String> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
            .map(|m| m.id.clone())
    }

    /// Every topic some member subscribes to by name, and those a regex resolved to.
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.topics.keys().cloned().collect();
        for m in self.members.values() {
            all.extend(m.subscribed_topic_names.iter().cloned());
        }
        all
    }

    /// The existing topics the members subscribe to, from the catalog.
    fn resolve_topics(&self, catalog: &dyn TopicCatalog) -> BTreeMap<String, (Uuid, i32)> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        let mut regexes = Vec::new();
        for m in self.members.values() {
            names.extend(m.subscribed_topic_names.iter().cloned());
            if let Some(r) = m.subscribed_topic_regex.as_deref().and_then(Regex::new) {
                regexes.push(r);
            }
        }
        if !regexes.is_empty() {
            for n in catalog.names() {
                if !is_internal(&n) && regexes.iter().any(|r| r.is_match(&n)) {
                    names.insert(n);
                }
            }
        }
        names
            .into_iter()
            .filter_map(|n| {
                catalog
                    .by_name(&n)
                    .map(|t| (n, (t.id, t.partitions.max(0))))
            })
            .collect()
    }

    /// Refreshes the subscribed topics' metadata; true when it changed.
    pub fn refresh_topics(&mut self, catalog: &dyn TopicCatalog) -> bool {
        let fresh = self.resolve_topics(catalog);
        if fresh != self.topics {
            self.topics = fresh;
            true
        } else {
            false
        }
    }

    /// A new group epoch with its target assignment.
    pub fn bump_and_assign(&mut self) {
        self.group_epoch += 1;
        self.target = self.compute_target();
        self.assignment_epoch = self.group_epoch;
    }

    fn compute_target(&self) -> BTreeMap<String, Assignment> {
        let members: Vec<(String, BTreeSet<Uuid>)> = self
            .members
            .values()
            .map(|m| {
                let topics = self
                    .topics
                    .iter()
                    .filter(|(name, _)| m.subscribes_to(name))
                    .map(|(_, (id, _))| *id)
                    .collect();
                (m.id.clone(), topics)
            })
            .collect();
        let partitions: BTreeMap<Uuid, (String, i32)> = self
            .topics
            .iter()
            .map(|(name, (id, n))| (*id, (name.clone(), *n)))
            .collect();
        match self.preferred_assignor() {
            RANGE => assign_range(&members, &partitions),
            _ => assign_uniform(&members, &partitions, &self.target),
        }
    }

    /// Removes a member and its target; its partitions become free.
    pub fn remove_member(&mut self, id: &str) -> Option<ConsumerMember> {
        self.target.remove(id);
        self.members.remove(id)
    }

    /// Partitions owned (assigned or pending revocation) by members other than `except`.
    fn owned_by_others(&self, except: &str) -> BTreeSet<(Uuid, i32)> {
        let mut out = BTreeSet::new();
        for m in self.members.values().filter(|m| m.id != except) {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    out.extend(ps.iter().map(|p| (*t, *p)));
                }
            }
        }
        out
    }

    /// Kafka's CurrentAssignmentBuilder: moves one member toward its target assignment.
    /// `owned` is what the member reported (`None`: not reported, so assumed unchanged).
    pub fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        let proceed = match m.state {
            MemberState::Stable => m.member_epoch != self.assignment_epoch,
            MemberState::UnrevokedPartitions => !owns_any(owned, &m.pending_revocation),
            MemberState::UnreleasedPartitions => true,
        };
        if !proceed {
            return;
        }
        let others = self.owned_by_others(member_id);
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let target_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        let mut free = Assignment::new();
        let mut unreleased = false;
        let topics: BTreeSet<Uuid> = target.keys().chain(m.assigned.keys()).copied().collect();
        let empty = BTreeSet::new();
        for t in topics {
            let tp = target.get(&t).unwrap_or(&empty);
            let cur = m.assigned.get(&t).unwrap_or(&empty);
            for p in cur {
                if tp.contains(p) {
                    keep.entry(t).or_default().insert(*p);
                } else {
                    revoke.entry(t).or_default().insert(*p);
                }
            }
            for p in tp.difference(cur) {
                if others.contains(&(t, *p)) {
                    unreleased = true;
                } else {
                    free.entry(t).or_default().insert(*p);
                }
            }
        }
        if !revoke.is_empty() && owns_any(owned, &revoke) {
            // Revoke first, in the current epoch.
            m.state = MemberState::UnrevokedPartitions;
            m.assigned = keep;
            m.pending_revocation = revoke;
            m.revocation_deadline = Some(now + m.rebalance_timeout_ms.max(0) as i64);
        } else {
            for (t, ps) in free {
                keep.entry(t).or_default().extend(ps);
            }
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = target_epoch;
            m.assigned = keep;
            m.pending_revocation = Assignment::new();
            m.revocation_deadline = None;
            m.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
        }
    }

    // ----- records ------------------------------------------------------------------------------

    pub fn to_value(&self) -> ConsumerGroupValue {
        ConsumerGroupValue {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            topics: self
                .topics
                .iter()
                .map(|(name, (id, n))| TopicMetadataRecord {
                    name: name.clone(),
                    id: *id,
                    partitions: *n,
                })
                .collect(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberRecord {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    server_assignor: m.server_assignor.clone(),
                    member_epoch: m.member_epoch,
                    previous_member_epoch: m.previous_member_epoch,
                    state: m.state.code(),
                    assigned: to_records(&m.assigned),
                    pending_revocation: to_records(&m.pending_revocation),
                    target: to_records(self.target.get(&m.id).unwrap_or(&Assignment::new())),
                })
                .collect(),
        }
    }

    pub fn from_value(v: ConsumerGroupValue) -> Self {
        let mut g = ConsumerGroup {
            group_epoch: v.group_epoch,
            assignment_epoch: v.assignment_epoch,
            topics: v
                .topics
                .into_iter()
                .map(|t| (t.name, (t.id, t.partitions)))
                .collect(),
            ..Default::default()
        };
        for r in v.members {
            let target = from_records(&r.target);
            if !target.is_empty() {
                g.target.insert(r.member_id.clone(), target);
            }
            let m = ConsumerMember {
                id: r.member_id,
                instance_id: r.instance_id,
                rack_id: r.rack_id,
                client_id: r.client_id,
                client_host: r.client_host,
                rebalance_timeout_ms: r.rebalance_timeout_ms,
                subscribed_topic_names: r.subscribed_topic_names.into_iter().collect(),
                subscribed_topic_regex: r.subscribed_topic_regex,
                server_assignor: r.server_assignor,
                member_epoch: r.member_epoch,
                previous_member_epoch: r.previous_member_epoch,
                state: MemberState::from_code(r.state),
                assigned: from_records(&r.assigned),
                pending_revocation: from_records(&r.pending_revocation),
                session_deadline: None,
                revocation_deadline: None,
            };
            g.members.insert(m.id.clone(), m);
        }
        g
    }
}

fn owns_any(owned: Option<&Assignment>, partitions: &Assignment) -> bool {
    match owned {
        None => !partitions.is_empty(),
        Some(o) => partitions
            .iter()
            .any(|(t, ps)| o.get(t).is_some_and(|os| !os.is_disjoint(ps))),
    }
}

fn to_records(a: &Assignment) -> Vec<TopicPartitionsRecord> {
    a.iter()
        .map(|(t, ps)| TopicPartitionsRecord {
            topic_id: *t,
            partitions: ps.iter().copied().collect(),
        })
        .collect()
}

fn from_records(r: &[TopicPartitionsRecord]) -> Assignment {
    let mut a = Assignment::new();
    for t in r {
        if !t.partitions.is_empty() {
            a.entry(t.topic_id)
                .or_default()
                .extend(t.partitions.iter().copied());
        }
    }
    a
}

// ----- assignors ----------------------------------------------------------------------------------

/// Range: per topic, the subscribed members in member id order get contiguous ranges, the first
/// ones one partition more when it does not divide evenly.
fn assign_range(
    members: &[(String, BTreeSet<Uuid>)],
    topics: &BTreeMap<Uuid, (String, i32)>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    for (tid, (_, n)) in topics {
        let subs: Vec<&String> = members
            .iter()
            .filter(|(_, ts)| ts.contains(tid))
            .map(|(id, _)| id)
            .collect();
        if subs.is_empty() || *n <= 0 {
            continue;
        }
        let k = subs.len() as i32;
        let (per, extra) = (n / k, n % k);
        let mut start = 0;
        for (j, id) in subs.iter().enumerate() {
            let count = per + i32::from((j as i32) < extra);
            if count > 0 {
                out.entry((*id).clone())
                    .or_default()
                    .entry(*tid)
                    .or_default()
                    .extend(start..start + count);
            }
            start += count;
        }
    }
    out
}

/// Uniform: balanced across the members subscribed to each partition's topic, sticky to the
/// previous target. Keeps what it can, places the rest on the least loaded subscribers, then
/// moves partitions from a member to a subscriber holding two or more fewer until none can move.
fn assign_uniform(
    members: &[(String, BTreeSet<Uuid>)],
    topics: &BTreeMap<Uuid, (String, i32)>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut load = vec![0usize; members.len()];
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let subscribers: BTreeMap<Uuid, Vec<usize>> = topics
        .keys()
        .map(|t| {
            let subs = members
                .iter()
                .enumerate()
                .filter(|(_, (_, ts))| ts.contains(t))
                .map(|(i, _)| i)
                .collect();
            (*t, subs)
        })
        .collect();
    // Sticky: keep previous partitions that are still valid.
    for (i, (id, ts)) in members.iter().enumerate() {
        let Some(prev) = previous.get(id) else {
            continue;
        };
        for (t, ps) in prev {
            let Some((_, n)) = topics.get(t) else {
                continue;
            };
            if !ts.contains(t) {
                continue;
            }
            for p in ps.iter().filter(|p| **p < *n) {
                if let std::collections::btree_map::Entry::Vacant(e) = owner.entry((*t, *p)) {
                    e.insert(i);
                    load[i] += 1;
                }
            }
        }
    }
    // The rest: topics with the fewest subscribers first, each partition to the least loaded.
    let mut order: Vec<(&Uuid, &(String, i32))> = topics.iter().collect();
    order.sort_by_key(|(t, (name, _))| (subscribers.get(*t).map_or(0, |s| s.len()), name.clone()));
    for (t, (_, n)) in order {
        let subs = &subscribers[t];
        if subs.is_empty() {
            continue;
        }
        for p in 0..*n {
            if owner.contains_key(&(*t, p)) {
                continue;
            }
            if let Some(&best) = subs.iter().min_by_key(|i| (load[**i], **i)) {
                owner.insert((*t, p), best);
                load[best] += 1;
            }
        }
    }
    // Balance: every move lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().rev().copied().collect();
        for tp in keys {
            let a = owner[&tp];
            let candidate = subscribers[&tp.0]
                .iter()
                .copied()
                .filter(|b| load[a] > load[*b] + 1)
                .min_by_key(|b| (load[*b], *b));
            if let Some(b) = candidate {
                owner.insert(tp, b);
                load[a] -= 1;
                load[b] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Assignment> = BTreeMap::new();
    for ((t, p), i) in owner {
        out.entry(members[i].0.clone())
            .or_default()
            .entry(t)
            .or_default()
            .insert(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics: BTreeMap<Uuid, (String, i32)> =
            [(t1, ("a".into(), 5)), (t2, ("b".into(), 2))].into();
        let both: BTreeSet<Uuid> = [t1, t2].into();
        let members = vec![("m1".to_string(), both.clone())];
        let one = assign_uniform(&members, &topics, &BTreeMap::new());
        assert_eq!(parts(&one["m1"]), 7);
        let members = vec![
            ("m1".to_string(), both.clone()),
            ("m2".to_string(), both.clone()),
            ("m3".to_string(), both),
        ];
        let three = assign_uniform(&members, &topics, &one);
        let loads: Vec<usize> = three.values().map(parts).collect();
        assert_eq!(loads.iter().sum::<usize>(), 7);
        assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1);
        // m1 kept only partitions it had (it had all of them).
        // Sticky: recomputing with the same members changes nothing.
        assert_eq!(assign_uniform(&members, &topics, &three), three);
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let t1 = Uuid::from_u128(1);
        let t2 = Uuid::from_u128(2);
        let topics: BTreeMap<Uuid, (String, i32)> =
            [(t1, ("a".into(), 4)), (t2, ("b".into(), 4))].into();
        let members = vec![
            ("m1".to_string(), [t1].into()),
            ("m2".to_string(), [t1, t2].into()),
        ];
        let a = assign_uniform(&members, &topics, &BTreeMap::new());
        assert!(!a["m1"].contains_key(&t2));
        assert_eq!(parts(&a["m1"]), 4);
        assert_eq!(parts(&a["m2"]), 4);
    }

    /// Members with their subscriptions, topics by id, and a previous target.
    type Case = (
        Vec<(String, BTreeSet<Uuid>)>,
        BTreeMap<Uuid, (String, i32)>,
        BTreeMap<String, Assignment>,
    );

    /// Members (each subscribed to some of three topics), the topics' partition counts, and a
    /// previous target that may name partitions the topics no longer have.
    fn cases() -> impl proptest::strategy::Strategy<Value = Case> {
        use proptest::prelude::*;
        let ids = [Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3)];
        (
            prop::collection::vec(prop::collection::btree_set(0..3usize, 0..=3), 1..6),
            prop::collection::vec(0..9i32, 3),
            prop::collection::vec(prop::collection::btree_set((0..3usize, 0..12i32), 0..8), 6),
        )
            .prop_map(move |(subs, counts, previous)| {
                let members: Vec<(String, BTreeSet<Uuid>)> = subs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("m{i}"), s.iter().map(|&t| ids[t]).collect()))
                    .collect();
                let topics = (0..3)
                    .map(|t| (ids[t], (format!("t{t}"), counts[t])))
                    .collect();
                let previous = previous
                    .iter()
                    .take(members.len())
                    .enumerate()
                    .map(|(i, owned)| {
                        let mut a = Assignment::new();
                        for &(t, p) in owned {
                            a.entry(ids[t]).or_default().insert(p);
                        }
                        (format!("m{i}"), a)
                    })
                    .collect();
                (members, topics, previous)
            })
    }

    /// Every partition of a topic someone subscribes to is assigned once, to a subscriber;
    /// nothing else is assigned, and no member gets an empty set for a topic.
    fn assigns_each_partition_once(
        members: &[(String, BTreeSet<Uuid>)],
        topics: &BTreeMap<Uuid, (String, i32)>,
        out: &BTreeMap<String, Assignment>,
    ) {
        let mut owners: BTreeMap<(Uuid, i32), Vec<&String>> = BTreeMap::new();
        for (member, a) in out {
            let subscribed = &members.iter().find(|(id, _)| id == member).unwrap().1;
            for (t, ps) in a {
                assert!(!ps.is_empty(), "{member} has an empty set for {t}");
                assert!(
                    subscribed.contains(t),
                    "{member} got {t} without subscribing"
                );
                for &p in ps {
                    owners.entry((*t, p)).or_default().push(member);
                }
            }
        }
        for (t, (_, n)) in topics {
            let subscribed = members.iter().any(|(_, ts)| ts.contains(t));
            for p in 0..*n {
                let count = owners.remove(&(*t, p)).map_or(0, |o| o.len());
                assert_eq!(count, usize::from(subscribed), "{t} partition {p}");
            }
        }
        assert!(
            owners.is_empty(),
            "partitions that do not exist: {owners:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn range_assigns_in_order_and_evenly((members, topics, _) in cases()) {
            let out = assign_range(&members, &topics);
            assigns_each_partition_once(&members, &topics, &out);
            for (t, (_, n)) in &topics {
                let subs: Vec<&String> =
                    members.iter().filter(|(_, ts)| ts.contains(t)).map(|(id, _)| id).collect();
                let mut next = 0;
                for (j, id) in subs.iter().enumerate() {
                    let k = subs.len() as i32;
                    let want = n / k + i32::from((j as i32) < n % k);
                    let got: Vec<i32> = out
                        .get(*id)
                        .and_then(|a| a.get(t))
                        .map_or_else(Vec::new, |ps| ps.iter().copied().collect());
                    assert_eq!(got, (next..next + want).collect::<Vec<_>>(), "{id} of {t}");
                    next += want;
                }
            }
        }

        #[test]
        fn uniform_is_balanced_and_stable((members, topics, previous) in cases()) {
            let out = assign_uniform(&members, &topics, &previous);
            assigns_each_partition_once(&members, &topics, &out);
            let load = |id: &String| out.get(id).map_or(0, parts);
            // No partition could move to one of its topic's subscribers holding two fewer.
            for (owner, a) in &out {
                for t in a.keys() {
                    for (other, ts) in &members {
                        if ts.contains(t) {
                            assert!(load(owner) <= load(other) + 1, "{owner} vs {other}");
                        }
                    }
                }
            }
            assert_eq!(assign_uniform(&members, &topics, &out), out, "not stable");
        }
    }

    #[test]
    fn range_is_contiguous_per_topic() {
        let t1 = Uuid::from_u128(1);
        let topics: BTreeMap<Uuid, (String, i32)> = [(t1, ("a".into(), 5))].into();
        let members = vec![
            ("b".to_string(), [t1].into()),
            ("a".to_string(), [t1].into()),
        ];
        let mut members = members;
        members.sort();
        let a = assign_range(&members, &topics);
        assert_eq!(
            a["a"][&t1].iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(a["b"][&t1].iter().copied().collect::<Vec<_>>(), vec![3, 4]);
    }
}
