//! What a partition's leader knows of its followers, and the decisions it takes from that: the
//! high watermark (the lowest log end offset in the ISR, never a majority's) and the ISR changes
//! it proposes to the controller (Kafka's `Partition` and `Replica` state). Pure: the caller
//! passes the leader's log end offset and the time, so every rule is tested without sockets.

use std::collections::BTreeMap;

use gregor_metadata::PartitionImage;

use super::read_replica::ReadCandidate;

/// A follower as its leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Follower {
    /// Its log end offset: the offset of its last fetch (-1: none in this leadership).
    log_end_offset: i64,
    /// Its log start offset, as its last fetch gave it (-1: unknown).
    log_start_offset: i64,
    /// When it last had everything the leader had (Kafka's `lastCaughtUpTimeMs`).
    last_caught_up_ms: i64,
    /// The leader's log end offset and the time of its previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

impl Follower {
    /// Not heard from in this leadership; counted as caught up at `caught_up_ms`.
    fn new(caught_up_ms: i64) -> Follower {
        Follower {
            log_end_offset: -1,
            log_start_offset: -1,
            last_caught_up_ms: caught_up_ms,
            last_fetch_leader_end: -1,
            last_fetch_ms: 0,
        }
    }

    /// Kafka's `isCaughtUp`: it has the leader's log, or had it within `max_lag_ms`.
    fn caught_up(&self, leader_end: i64, now_ms: i64, max_lag_ms: i64) -> bool {
        self.log_end_offset == leader_end || now_ms - self.last_caught_up_ms <= max_lag_ms
    }
}

/// A partition led by this broker.
#[derive(Debug)]
pub struct LeaderState {
    node_id: i32,
    replicas: Vec<i32>,
    /// The ISR as committed in the metadata.
    isr: Vec<i32>,
    partition_epoch: i32,
    /// An ISR proposed to the controller and not decided yet: one at a time.
    pending: Option<Vec<i32>>,
    followers: BTreeMap<i32, Follower>,
    /// The log end offset when this leadership began: a follower joins the ISR only once it
    /// has every record of earlier epochs (Kafka's `leaderEpochStartOffset`).
    epoch_start_offset: i64,
}

impl LeaderState {
    /// A leadership beginning now, with the leader's log ending at `log_end_offset`. Followers
    /// in the ISR count as caught up now (they get `replica.lag.time.max.ms` to fetch); none
    /// has a known log end yet, so the high watermark waits for their first fetch.
    pub fn new(node_id: i32, meta: &PartitionImage, log_end_offset: i64, now_ms: i64) -> Self {
        let followers = meta
            .replicas
            .iter()
            .filter(|&&r| r != node_id)
            .map(|&r| {
                let caught_up = if meta.isr.contains(&r) { now_ms } else { 0 };
                (r, Follower::new(caught_up))
            })
            .collect();
        LeaderState {
            node_id,
            replicas: meta.replicas.clone(),
            isr: meta.isr.clone(),
            partition_epoch: meta.partition_epoch,
            pending: None,
            followers,
            epoch_start_offset: log_end_offset,
        }
    }

    /// A change of the partition within the same leadership (an ISR change committed): the
    /// proposal in flight, if any, is decided.
    pub fn update(&mut self, meta: &PartitionImage, now_ms: i64) {
        self.replicas.clone_from(&meta.replicas);
        self.isr.clone_from(&meta.isr);
        self.partition_epoch = meta.partition_epoch;
        self.pending = None;
        self.followers.retain(|r, _| meta.replicas.contains(r));
        for &r in meta.replicas.iter().filter(|&&r| r != self.node_id) {
            // A replica new to the assignment has fetched nothing: not caught up (Kafka's
            // empty replica state), or the high watermark would wait for it.
            let caught_up = if meta.isr.contains(&r) { now_ms } else { 0 };
            self.followers.entry(r).or_insert(Follower::new(caught_up));
        }
    }

    #[cfg(test)]
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn is_follower(&self, replica: i32) -> bool {
        self.followers.contains_key(&replica)
    }

    /// Follower `replica` fetched from `fetch_offset` (it has every record below) while the
    /// leader's log ended at `leader_end` (Kafka's `Replica.updateFetchState`): it is caught
    /// up if it asked from the leader's end, or at least from where the leader's log ended at
    /// its previous fetch (then it was caught up at that fetch's time).
    pub fn follower_fetched(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        let Some(f) = self.followers.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_end = leader_end;
        f.last_fetch_ms = now_ms;
    }

    /// Follower `replica`'s log starts at `log_start_offset` (its fetch says so, Fetch v5+).
    pub fn follower_log_start(&mut self, replica: i32, log_start_offset: i64) {
        if let Some(f) = self.followers.get_mut(&replica) {
            f.log_start_offset = log_start_offset;
        }
    }

    /// KIP-392: the followers a consumer fetching from `fetch_offset` could read from: in the
    /// ISR (as Kafka: one out of it may lag without end, and its consumers with it), holding
    /// the offset in their log's range, and alive (`rack_of` gives their rack, `None` for a
    /// broker that is fenced or unknown).
    pub fn read_candidates(
        &self,
        fetch_offset: i64,
        now_ms: i64,
        rack_of: &dyn Fn(i32) -> Option<Option<String>>,
    ) -> Vec<ReadCandidate> {
        self.followers
            .iter()
            .filter(|(r, f)| {
                self.isr.contains(r)
                    && f.log_end_offset >= fetch_offset
                    && f.log_start_offset <= fetch_offset
            })
            .filter_map(|(&id, f)| {
                Some(ReadCandidate {
                    id,
                    rack: rack_of(id)?,
                    log_end_offset: f.log_end_offset,
                    since_caught_up_ms: now_ms - f.last_caught_up_ms,
                })
            })
            .collect()
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The ISR the high watermark waits for: the committed one, plus a replica being added
    /// (KIP-841: records acknowledged after the proposal must be on it, since it may lead once
    /// the change commits); a replica being removed still counts until the removal commits.
    fn maximal_isr(&self) -> impl Iterator<Item = i32> + '_ {
        let pending = self.pending.iter().flatten();
        self.isr
            .iter()
            .chain(pending.filter(|r| !self.isr.contains(r)))
            .copied()
    }

    /// The high watermark the ISR allows with the leader's log ending at `leader_end`: the
    /// lowest log end offset over it (a follower not heard from yet holds it at -1), and over
    /// the followers about to join it, caught up within `max_lag_ms` and `eligible` (Kafka's
    /// `shouldWaitForReplicaToJoinIsr`: without them, a follower of a partition whose ISR is
    /// its leader alone could never reach a high watermark that moves with every append).
    /// The caller only ever moves the high watermark forward.
    pub fn high_watermark(
        &self,
        leader_end: i64,
        now_ms: i64,
        max_lag_ms: i64,
        eligible: &dyn Fn(i32) -> bool,
    ) -> i64 {
        let maximal: Vec<i32> = self.maximal_isr().collect();
        self.followers
            .iter()
            .filter(|(r, f)| {
                maximal.contains(r)
                    || (f.log_end_offset >= 0
                        && f.caught_up(leader_end, now_ms, max_lag_ms)
                        && eligible(**r))
            })
            .map(|(_, f)| f.log_end_offset)
            .fold(leader_end, i64::min)
    }

    /// The ISR to propose now that `replica` fetched, if it should join: it is not in the ISR,
    /// has reached the high watermark and the start of this leadership, and `eligible` (its
    /// broker is registered and unfenced). `None` while another proposal is in flight.
    pub fn expansion(&self, replica: i32, high_watermark: i64, eligible: bool) -> Option<Vec<i32>> {
        let f = self.followers.get(&replica)?;
        let joins = self.pending.is_none()
            && !self.isr.contains(&replica)
            && eligible
            && f.log_end_offset >= high_watermark
            && f.log_end_offset >= self.epoch_start_offset;
        joins.then(|| self.ordered(|r| self.isr.contains(&r) || r == replica))
    }

    /// The ISR to propose without the followers that have not caught up for `max_lag_ms`
    /// (`replica.lag.time.max.ms`), if any has not. `None` while a proposal is in flight.
    pub fn shrink(&self, leader_end: i64, now_ms: i64, max_lag_ms: i64) -> Option<Vec<i32>> {
        if self.pending.is_some() {
            return None;
        }
        let lagging = |r: i32| {
            self.followers
                .get(&r)
                .is_some_and(|f| !f.caught_up(leader_end, now_ms, max_lag_ms))
        };
        let out: Vec<i32> = self.isr.iter().copied().filter(|&r| lagging(r)).collect();
        (!out.is_empty()).then(|| self.ordered(|r| self.isr.contains(&r) && !out.contains(&r)))
    }

    /// The replicas, in assignment order, that `keep` keeps.
    fn ordered(&self, keep: impl Fn(i32) -> bool) -> Vec<i32> {
        self.replicas.iter().copied().filter(|&r| keep(r)).collect()
    }

    /// `isr` was sent to the controller.
    pub fn proposed(&mut self, isr: Vec<i32>) {
        self.pending = Some(isr);
    }

    /// The controller refused or did not answer the proposal made in `partition_epoch`: the
    /// next fetch or check proposes again. A proposal already overtaken by a committed change
    /// (a later partition epoch) is left alone.
    pub fn proposal_failed(&mut self, partition_epoch: i32) {
        if self.partition_epoch == partition_epoch {
            self.pending = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;
    /// Times start here, as wall-clock times do: far from the zero of a follower never heard of.
    const T: i64 = 1_000_000;

    fn meta(replicas: &[i32], isr: &[i32]) -> PartitionImage {
        PartitionImage {
            leader_epoch: 3,
            partition_epoch: 7,
            ..PartitionImage::new(replicas.to_vec(), isr.to_vec(), 1)
        }
    }

    fn hw(leader: &LeaderState, end: i64, now: i64) -> i64 {
        leader.high_watermark(end, now, LAG, &|_| true)
    }

    #[test]
    fn the_high_watermark_is_the_lowest_end_in_the_isr() {
        let mut leader = LeaderState::new(1, &meta(&[1, 2, 3], &[1, 2, 3]), 10, T);
        assert_eq!(hw(&leader, 20, T), -1, "no follower fetched yet");
        leader.follower_fetched(2, 20, 20, T + 5);
        assert_eq!(hw(&leader, 20, T + 5), -1, "3 has not");
        leader.follower_fetched(3, 12, 20, T + 5);
        assert_eq!(hw(&leader, 20, T + 5), 12);
        leader.follower_fetched(3, 20, 20, T + 6);
        assert_eq!(hw(&leader, 25, T + 6), 20, "the leader's own end counts");
        assert_eq!(hw(&leader, 15, T + 6), 15);

        // A replica outside the ISR that is behind is not waited for.
        let mut lone = LeaderState::new(1, &meta(&[1, 2], &[1]), 10, T);
        assert_eq!(hw(&lone, 10, T), 10);
        lone.follower_fetched(2, 3, 10, T + 1);
        assert_eq!(hw(&lone, 10, T + 1), 10);
        // Once it has reached the leader's end it is, while caught up and eligible: it is
        // about to join, and records it lacks would be acknowledged without it otherwise.
        lone.follower_fetched(2, 10, 10, T + 2);
        assert_eq!(hw(&lone, 14, T + 3), 10);
        assert_eq!(
            lone.high_watermark(14, T + 3, LAG, &|_| false),
            14,
            "fenced"
        );
        assert_eq!(
            hw(&lone, 14, T + 3 + LAG),
            14,
            "fell behind for the lag time"
        );
    }

    #[test]
    fn a_follower_joins_at_the_high_watermark_of_this_leadership_once_eligible() {
        let mut leader = LeaderState::new(1, &meta(&[1, 2, 3], &[1, 2]), 10, T);
        leader.follower_fetched(2, 10, 10, T + 1);
        leader.follower_fetched(3, 8, 10, T + 1);
        let high = hw(&leader, 10, T + 1);
        assert_eq!(high, 10);
        assert_eq!(
            leader.expansion(3, high, true),
            None,
            "below the high watermark"
        );
        leader.follower_fetched(3, 10, 10, T + 2);
        assert_eq!(leader.expansion(3, high, false), None, "fenced: KIP-841");
        assert_eq!(leader.expansion(3, high, true), Some(vec![1, 2, 3]));
        assert_eq!(leader.expansion(2, high, true), None, "already in");

        // Once proposed, the high watermark waits for it (even fenced), and nothing else is
        // proposed.
        leader.proposed(vec![1, 2, 3]);
        leader.follower_fetched(2, 15, 15, T + 3);
        assert_eq!(
            leader.high_watermark(15, T + 3 + 2 * LAG, LAG, &|_| false),
            10
        );
        assert_eq!(leader.expansion(3, 10, true), None);
        assert_eq!(leader.shrink(15, T + 3 + 2 * LAG, LAG), None);
        leader.proposal_failed(7);
        assert!(leader.expansion(3, 10, true).is_some(), "proposed again");

        // A follower behind the start of the leadership cannot join even at the high watermark.
        let mut leader = LeaderState::new(1, &meta(&[1, 2], &[1]), 50, T);
        leader.follower_fetched(2, 40, 50, T + 1);
        assert_eq!(leader.expansion(2, 40, true), None);
    }

    #[test]
    fn a_follower_leaves_after_the_lag_time_without_catching_up() {
        let mut leader = LeaderState::new(1, &meta(&[1, 2, 3], &[1, 2, 3]), 100, T);
        // 2 keeps up; 3 fetches but never reaches the end of a growing log.
        let mut end = 100;
        for t in (T..=T + LAG + 2_000).step_by(500) {
            leader.follower_fetched(2, end, end, t);
            leader.follower_fetched(3, 90, end, t);
            end += 1;
        }
        let now = T + LAG + 2_000;
        assert_eq!(leader.shrink(end, now, LAG), Some(vec![1, 2]));
        // One that reached the end it saw at its previous fetch counts as caught up then.
        let mut leader = LeaderState::new(1, &meta(&[1, 2], &[1, 2]), 100, T);
        leader.follower_fetched(2, 100, 110, T + LAG);
        leader.follower_fetched(2, 110, 120, T + LAG + 500);
        assert_eq!(leader.shrink(120, T + 2 * LAG, LAG), None);
        assert_eq!(leader.shrink(120, T + 2 * LAG + 501, LAG), Some(vec![1]));
        // The leader never leaves; an ISR change decided clears what was pending.
        leader.proposed(vec![1]);
        leader.update(&meta(&[1, 2], &[1]), T + 3 * LAG);
        assert_eq!(leader.isr(), &[1]);
        assert_eq!(leader.shrink(120, T + 10 * LAG, LAG), None);
    }

    /// KIP-392: consumers are sent only to in-sync followers that hold their fetch offset and
    /// whose broker is alive, with how far along each is.
    #[test]
    fn consumers_may_read_from_in_sync_followers_that_hold_the_offset() {
        let mut leader = LeaderState::new(1, &meta(&[1, 2, 3, 4, 5], &[1, 2, 3, 4]), 100, T);
        leader.follower_fetched(2, 100, 100, T + 10);
        leader.follower_log_start(2, 0);
        leader.follower_fetched(3, 60, 100, T + 10);
        leader.follower_log_start(3, 0);
        // 4's retention deleted below 50; 5 is not in the ISR.
        leader.follower_fetched(4, 100, 100, T + 5);
        leader.follower_log_start(4, 50);
        leader.follower_fetched(5, 100, 100, T + 10);
        let alive = |r: i32| (r != 9).then(|| Some(format!("rack-{r}")));
        let ids = |offset| -> Vec<(i32, i64, i64)> {
            leader
                .read_candidates(offset, T + 20, &alive)
                .into_iter()
                .map(|c| (c.id, c.log_end_offset, c.since_caught_up_ms))
                .collect()
        };
        assert_eq!(ids(40), vec![(2, 100, 10), (3, 60, 20)]);
        assert_eq!(ids(70), vec![(2, 100, 10), (4, 100, 15)]);
        assert_eq!(ids(101), vec![], "no follower has it yet");
        assert_eq!(
            leader.read_candidates(70, T + 20, &alive)[0]
                .rack
                .as_deref(),
            Some("rack-2")
        );
        // A fenced broker is no candidate.
        let fenced_2 = |r: i32| (r != 2).then_some(None);
        let left: Vec<i32> = leader
            .read_candidates(70, T + 20, &fenced_2)
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(left, vec![4]);
    }
}
