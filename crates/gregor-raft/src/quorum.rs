//! The metadata quorum as gregor uses it: [`MetadataQuorum`] is all the broker sees (append a
//! decision's records as the leader, check leadership, change the voters, describe the
//! quorum); [`RaftQuorum`] implements it with openraft, so the engine can be changed behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::MetadataRecord;
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Config, Raft, SnapshotPolicy};
use tokio::time::Instant;

use crate::network::{LongerLogs, Network};
use crate::{Applier, ControllerNode, LogStore, MetadataBatch, NodeId, StateMachine, TypeConfig};

/// Why the quorum did not take a request.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum QuorumError {
    /// This node does not lead; `leader` does, if one is known.
    #[error("this controller is not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// The quorum is stopping, or its storage failed.
    #[error("the metadata quorum is unavailable: {0}")]
    Unavailable(String),
    /// A membership change that cannot be made (a node that is not a voter, the last voter).
    #[error("{0}")]
    Refused(String),
}

/// One voter of the quorum and how far its log reached, as the leader sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct VoterState {
    pub node_id: NodeId,
    pub node: ControllerNode,
    /// The offset after the last entry it has (-1: unknown).
    pub log_end_offset: i64,
}

/// The quorum as this node sees it (what DescribeQuorum reports).
#[derive(Clone, Debug, PartialEq)]
pub struct QuorumStatus {
    pub leader: Option<NodeId>,
    pub term: u64,
    /// The offset after the last committed entry.
    pub high_watermark: i64,
    pub voters: Vec<VoterState>,
    /// Nodes that copy the log without voting (new controllers being added, brokers).
    pub learners: Vec<VoterState>,
}

/// What gregor asks of the metadata quorum.
pub trait MetadataQuorum: Send + Sync + 'static {
    /// Appends one decision's records if this node leads; resolves with their offset once they
    /// are committed and applied on this node.
    fn append(
        &self,
        records: Vec<MetadataRecord>,
    ) -> impl Future<Output = Result<i64, QuorumError>> + Send;
    /// Resolves once this node is known to lead with everything committed before applied: a
    /// deposed leader that has not heard of its successor gets NotLeader, not stale answers.
    fn ensure_leader(&self) -> impl Future<Output = Result<(), QuorumError>> + Send;
    /// The leader this node knows of.
    fn leader(&self) -> Option<NodeId>;
    /// This node's id.
    fn node_id(&self) -> NodeId;
    /// Adds a voter: it first copies the log as a learner, then joins the voters.
    fn add_voter(
        &self,
        node_id: NodeId,
        node: ControllerNode,
    ) -> impl Future<Output = Result<(), QuorumError>> + Send;
    /// Removes a voter; it stays a learner, still copying the log.
    fn remove_voter(&self, node_id: NodeId)
        -> impl Future<Output = Result<(), QuorumError>> + Send;
    /// Makes `node_id` a learner that copies the log at `node` (or moves it there); false when
    /// it already was one there.
    fn add_learner(
        &self,
        node_id: NodeId,
        node: ControllerNode,
    ) -> impl Future<Output = Result<bool, QuorumError>> + Send;
    /// Stops copying the log to a learner (a node gone for good).
    fn remove_learner(
        &self,
        node_id: NodeId,
    ) -> impl Future<Output = Result<(), QuorumError>> + Send;
    fn status(&self) -> QuorumStatus;
}

/// How a node takes part in the quorum.
pub struct QuorumConfig {
    pub node_id: NodeId,
    /// The metadata log's directory.
    pub dir: PathBuf,
    /// The voters of a new cluster (`controller.quorum.voters`); ignored once the log has
    /// its own membership.
    pub initial_voters: BTreeMap<NodeId, ControllerNode>,
    /// `controller.quorum.election.timeout.ms`: a follower that hears nothing from a leader
    /// for between 1.5 and 2 times this starts an election.
    pub election_timeout: Duration,
    pub snapshots: SnapshotTriggers,
}

/// When a node snapshots its metadata image (each node does, for its own restarts and for
/// followers too far behind), with Kafka's configs.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotTriggers {
    /// `metadata.log.max.record.bytes.between.snapshots`: bytes appended to the metadata log
    /// (since this node started or last snapshotted) that call for a snapshot.
    pub max_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms`: a snapshot at least this often while anything
    /// was appended (`None`: only by bytes).
    pub max_interval: Option<Duration>,
}

impl Default for SnapshotTriggers {
    /// Kafka's defaults: 20 MiB, one hour.
    fn default() -> SnapshotTriggers {
        SnapshotTriggers {
            max_bytes: 20 * 1024 * 1024,
            max_interval: Some(Duration::from_secs(3600)),
        }
    }
}

/// The quorum on openraft.
#[derive(Clone)]
pub struct RaftQuorum {
    raft: Raft<TypeConfig>,
    /// What other voters' answers to this node's vote requests showed (see `spawn_elector`).
    longer_logs: Arc<LongerLogs>,
}

fn unavailable(e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Unavailable(e.to_string())
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, ControllerNode>>) -> QuorumError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => QuorumError::NotLeader {
            leader: f.leader_id,
        },
        // Another change not yet committed: worth asking again (brokers only joining together).
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            e @ openraft::error::ChangeMembershipError::InProgress(_),
        )) => unavailable(e),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            QuorumError::Refused(e.to_string())
        }
        RaftError::Fatal(e) => unavailable(e),
    }
}

impl RaftQuorum {
    /// Opens the log and the state machine in `config.dir`, starts this node's Raft, and on a
    /// pristine log sets up the initial voters (every voter does, with the same voters, so any
    /// of them may win the first election).
    pub async fn start(
        config: QuorumConfig,
        applier: Arc<dyn Applier>,
    ) -> Result<RaftQuorum, QuorumError> {
        let election_ms = config.election_timeout.as_millis().max(10) as u64;
        // openraft's followers give up on a leader after its lease (election_timeout_max) plus
        // their election timeout: with these, between 1.5 and 2 election timeouts after the
        // last heartbeat, no later than Kafka's `controller.quorum.fetch.timeout.ms` (two
        // election timeouts by default) would. `spawn_elector` stands sooner (1.25 to 1.5).
        let raft_config = Config {
            cluster_name: "gregor-metadata".into(),
            // Also openraft's deadline for an AppendEntries answer (a follower's fsync):
            // shorter would fail slow disks' followers and, with them, `ensure_leader`.
            heartbeat_interval: election_ms / 5,
            election_timeout_min: election_ms / 2,
            election_timeout_max: election_ms,
            // Snapshots are taken by `spawn_snapshot_trigger`, by bytes and time as Kafka's.
            snapshot_policy: SnapshotPolicy::Never,
            ..Config::default()
        }
        .validate()
        .map_err(unavailable)?;
        let log = LogStore::open(&config.dir).map_err(unavailable)?;
        let appended = log.appended_bytes();
        let state_machine = StateMachine::open(&config.dir, applier).map_err(unavailable)?;
        let network = Network::default();
        let longer_logs = network.longer_logs.clone();
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            log,
            state_machine,
        )
        .await
        .map_err(unavailable)?;
        if config.initial_voters.contains_key(&config.node_id) {
            match raft.initialize(config.initial_voters).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        let quorum = RaftQuorum {
            raft,
            longer_logs: longer_logs.clone(),
        };
        spawn_elector(quorum.raft.clone(), election_ms, longer_logs);
        spawn_snapshot_trigger(quorum.raft.clone(), appended, config.snapshots);
        // The only voter has no one to wait for: it leads at once instead of after an election
        // timeout (a single node's start would otherwise take a second longer).
        let voters: Vec<NodeId> = {
            let metrics = quorum.raft.metrics();
            let metrics = metrics.borrow();
            metrics.membership_config.membership().voter_ids().collect()
        };
        if voters == [config.node_id] {
            quorum.raft.trigger().elect().await.map_err(unavailable)?;
        }
        Ok(quorum)
    }

    /// Whether, within `recently`, other voters answered this node's vote requests with logs
    /// longer than its own. While no leader is known, that is a voter the leader does not
    /// replicate to: another process with its node id at its address in the quorum (a
    /// duplicate), or a controller listener that is not that address.
    pub fn outpaced(&self, recently: Duration) -> bool {
        let ours = self.raft.data_metrics().borrow().last_log;
        self.longer_logs.longer_than(ours.as_ref(), recently)
    }

    /// The index of the last entry applied on this node (-1: none).
    pub fn applied_index(&self) -> i64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(-1, |id| id.index as i64)
    }

    /// Waits up to `timeout` until this node applied the entry at `index`.
    pub async fn wait_applied(&self, index: i64, timeout: Duration) -> Result<(), QuorumError> {
        if index < 0 {
            return Ok(());
        }
        self.raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index as u64), "caught up")
            .await
            .map(drop)
            .map_err(|_| unavailable(format!("entry {index} not applied here within {timeout:?}")))
    }

    /// Waits up to `timeout` for a leader to be known; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId, QuorumError> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader")
            .await
            .map_err(|_| unavailable(format!("no leader elected within {timeout:?}")))?
            .current_leader
            .ok_or_else(|| unavailable("no leader"))
    }

    /// Resolves once this node no longer takes `leader` for the leader (another is known, or
    /// none); never if the quorum stopped.
    pub async fn leader_changed(&self, leader: NodeId) {
        let mut metrics = self.raft.metrics();
        while metrics.borrow_and_update().current_leader == Some(leader) {
            if metrics.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Commits a membership change (`retain`: removed voters stay learners).
    async fn change_members(
        &self,
        change: ChangeMembers<NodeId, ControllerNode>,
        retain: bool,
    ) -> Result<(), QuorumError> {
        self.raft
            .change_membership(change, retain)
            .await
            .map(drop)
            .map_err(write_error)
    }

    /// Where a voter or learner of the current membership listens.
    pub fn address_of(&self, node_id: NodeId) -> Option<ControllerNode> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        metrics
            .membership_config
            .membership()
            .get_node(&node_id)
            .cloned()
    }

    /// The Raft node, for the listener that routes Raft's frames to it.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Answers the body of one of Raft's request frames from another controller: the
    /// response frame.
    pub async fn answer(&self, correlation_id: i32, body: &[u8]) -> Vec<u8> {
        crate::network::answer(&self.raft, correlation_id, body).await
    }

    /// Stops this node's Raft (its log and state machine are closed).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
        }
    }
}

impl MetadataQuorum for RaftQuorum {
    async fn append(&self, records: Vec<MetadataRecord>) -> Result<i64, QuorumError> {
        let written = self
            .raft
            .client_write(MetadataBatch {
                records,
                appended_ms: crate::now_ms(),
            })
            .await
            .map_err(write_error)?;
        Ok(written.data.offset)
    }

    async fn ensure_leader(&self) -> Result<(), QuorumError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(drop)
            .map_err(|e| match e {
                RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
                    QuorumError::NotLeader {
                        leader: f.leader_id,
                    }
                }
                // A leader that cannot reach a majority is not known to lead any more.
                RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)) => {
                    QuorumError::NotLeader { leader: None }
                }
                RaftError::Fatal(e) => unavailable(e),
            })
    }

    fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    fn node_id(&self) -> NodeId {
        self.raft.metrics().borrow().id
    }

    async fn add_voter(&self, node_id: NodeId, node: ControllerNode) -> Result<(), QuorumError> {
        self.raft
            .add_learner(node_id, node, true)
            .await
            .map_err(write_error)?;
        self.change_members(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])), false)
            .await
    }

    async fn remove_voter(&self, node_id: NodeId) -> Result<(), QuorumError> {
        self.change_members(ChangeMembers::RemoveVoters(BTreeSet::from([node_id])), true)
            .await
    }

    async fn add_learner(
        &self,
        node_id: NodeId,
        node: ControllerNode,
    ) -> Result<bool, QuorumError> {
        if self.address_of(node_id).as_ref() == Some(&node) {
            return Ok(false);
        }
        self.change_members(
            ChangeMembers::SetNodes(BTreeMap::from([(node_id, node)])),
            true,
        )
        .await
        .map(|()| true)
    }

    async fn remove_learner(&self, node_id: NodeId) -> Result<(), QuorumError> {
        self.change_members(ChangeMembers::RemoveNodes(BTreeSet::from([node_id])), false)
            .await
    }

    fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
        let end_of = |id: &NodeId| -> i64 {
            if *id == metrics.id {
                return metrics.last_log_index.map_or(0, |i| i as i64 + 1);
            }
            metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(id).copied().flatten())
                .map_or(-1, |log_id| log_id.index as i64 + 1)
        };
        let state = |(id, node): (&NodeId, &ControllerNode)| VoterState {
            node_id: *id,
            node: node.clone(),
            log_end_offset: end_of(id),
        };
        let (voters, learners): (Vec<_>, Vec<_>) = membership
            .nodes()
            .map(state)
            .partition(|v| voter_ids.contains(&v.node_id));
        QuorumStatus {
            leader: metrics.current_leader,
            term: metrics.current_term,
            high_watermark: metrics.last_applied.map_or(0, |id| id.index as i64 + 1),
            voters,
            learners,
        }
    }
}

/// A random number below `bound` (no RNG crate needed for jitter).
fn random_below(bound: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() % bound.max(1)
}

/// Takes a snapshot once `triggers` call for one: checked every second. The byte count starts
/// again when a snapshot is seen done (a trigger openraft ignores, one being built already,
/// is simply given again).
fn spawn_snapshot_trigger(
    raft: Raft<TypeConfig>,
    appended: Arc<AtomicU64>,
    triggers: SnapshotTriggers,
) {
    tokio::spawn(async move {
        let metrics = raft.metrics();
        let mut last = tokio::time::Instant::now();
        let mut snapshot = metrics.borrow().snapshot;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if metrics.has_changed().is_err() {
                return; // the node stopped
            }
            let (now, applied) = {
                let m = metrics.borrow();
                (m.snapshot, m.last_applied)
            };
            if now != snapshot {
                snapshot = now;
                appended.store(0, Ordering::Relaxed);
                last = tokio::time::Instant::now();
                continue;
            }
            let bytes = appended.load(Ordering::Relaxed);
            let timely = triggers
                .max_interval
                .is_some_and(|every| last.elapsed() >= every);
            // Nothing applied since the last snapshot (appends not committed yet): a new one
            // would be the same.
            let news = applied > snapshot;
            if news
                && (bytes >= triggers.max_bytes || (bytes > 0 && timely))
                && raft.trigger().snapshot().await.is_err()
            {
                return;
            }
        }
    });
}

/// How often the elector looks at the Raft state.
const ELECTOR_TICK: Duration = Duration::from_millis(20);

/// Starts the elections openraft's own timer would start late or in lockstep. openraft draws
/// a node's election timeout once, at start, and checks it on a coarse tick (1.5 heartbeat
/// intervals): two voters whose timeouts round to the same number of ticks, left without a
/// leader at the same instant, split their votes in lockstep (seen: the two survivors of three
/// voting for themselves within a millisecond every 907 ms, three rounds in a row, in one
/// failover of five). Raft wants each election's timeout drawn anew. This task does two things,
/// on a fine tick, with fresh random delays; openraft's timer stays as the fallback (it also
/// backs off a node that learned of a longer log than its own).
///
/// * A follower that has not heard from its leader for the lease (one election timeout, E),
///   in which the other voters still refuse to vote, plus a fresh delay of E/4 to E/2 stands.
///   Only this first election after the leader went silent: if it fails, openraft's timer and
///   the breaker below take over.
/// * When no leader has been established in the current term for E (an election on a working
///   network takes milliseconds; sooner, it would compete with openraft's own first election of
///   a new cluster), it starts one after a fresh delay of up to E/2.
///
/// Never for a learner (a broker only, a removed voter), and neither for a node that learned
/// of a longer log than its own in the last two election timeouts: it cannot win, and its
/// elections would only raise the term past the node that can, again and again (as openraft's
/// own timer, which waits two election timeouts longer then; a five-node partition test saw a
/// majority of three elect nobody for a minute when this task ignored it).
fn spawn_elector(raft: Raft<TypeConfig>, election_ms: u64, longer_logs: Arc<LongerLogs>) {
    tokio::spawn(async move {
        let metrics = raft.metrics();
        let log = raft.data_metrics();
        let cannot_win = || {
            let ours = log.borrow().last_log;
            longer_logs.longer_than(ours.as_ref(), Duration::from_millis(2 * election_ms))
        };
        let lease = Duration::from_millis(election_ms);
        let mut leaderless_since: Option<Instant> = None;
        // When the leader was last heard from, and how long after the lease this node waits.
        let mut heard: Option<(Instant, Duration)> = None;
        loop {
            tokio::time::sleep(ELECTOR_TICK).await;
            if metrics.has_changed().is_err() {
                return; // the node stopped
            }
            let (established, follower, voters, votes) = {
                let m = metrics.borrow();
                let membership = m.membership_config.membership();
                let votes = membership.voter_ids().any(|v| v == m.id);
                let follower = m.state == openraft::ServerState::Follower;
                (
                    m.vote.is_committed(),
                    follower,
                    membership.voter_ids().count(),
                    votes,
                )
            };
            if voters < 2 || !votes {
                (leaderless_since, heard) = (None, None);
                continue;
            }
            if established {
                leaderless_since = None;
                if !follower {
                    heard = None;
                    continue;
                }
                let Ok(Some(last)) = raft.with_raft_state(|s| s.vote_last_modified()).await else {
                    return;
                };
                let wait = match heard {
                    Some((at, wait)) if at == last => wait,
                    _ => {
                        let wait =
                            Duration::from_millis(election_ms / 4 + random_below(election_ms / 4));
                        heard = Some((last, wait));
                        wait
                    }
                };
                if last.elapsed() >= lease + wait && !cannot_win() {
                    let silent_ms = last.elapsed().as_millis() as u64;
                    tracing::info!(silent_ms, "the leader went silent: starting an election");
                    if raft.trigger().elect().await.is_err() {
                        return;
                    }
                }
                continue;
            }
            heard = None;
            let since = *leaderless_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= lease {
                let delay = random_below(election_ms / 2);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if metrics.borrow().vote.is_committed() || cannot_win() {
                    leaderless_since = None;
                    continue;
                }
                tracing::info!(delay_ms = delay, "no leader elected: starting an election");
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                leaderless_since = None;
            }
        }
    });
}
