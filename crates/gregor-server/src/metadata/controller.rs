//! The channel to the active controller. This node's controller takes requests one at a time
//! in a task of its own: it makes sure the quorum still has it as leader with every committed
//! entry applied (so a deposed leader decides nothing, and each decision sees all before it),
//! decides on the newest image, has the quorum commit the records (whose fsyncs run on blocking
//! threads), and answers once they are applied on this node. On a node that does not lead, the
//! request is forwarded to the leader over the controller listener (gregor's own API key,
//! [`FORWARD_API_KEY`], JSON), and answered once this node has applied what the leader had when
//! it answered: a client sees its change in whatever node it asked. Forwards run beside the
//! task, each ended as soon as this node learns of another leader, so a leader cut off by the
//! network holds up nothing else. A forwarded request is never forwarded again; a node that lost
//! the lead meanwhile answers NOT_CONTROLLER (retriable).
//!
//! The active controller also keeps the brokers' liveness (in memory, as Kafka's does): when
//! each last heartbeat came, and a broker silent for `broker.session.timeout.ms` is fenced.
//! A controller that just took the lead, or whose own task was stalled longer than the
//! session (a paused process cannot tell who else was), starts every broker's clock afresh.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor_metadata::elections::MAX_ELECTIONS_PER_BALANCE;
use gregor_metadata::request::decide;
use gregor_metadata::{
    ControllerError, ControllerReply, ControllerRequest, MetadataImage, QuorumDescription,
    ReplicaProgress, VoterChange,
};
use gregor_protocol::kafka::ResponseError;
use gregor_raft::network::{read_frame, request_frame};
use gregor_raft::{ControllerNode, MetadataQuorum, NodeId, QuorumError, RaftQuorum};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::MetadataLoader;

/// The API key of a controller request forwarded to the leader (outside Kafka's range).
pub const FORWARD_API_KEY: i16 = 32001;
/// How long a forwarded request, and catching up with its answer, may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

type Answer = Result<ControllerReply, ControllerError>;

/// A request forwarded to the leader.
#[derive(Serialize, Deserialize)]
pub struct Forwarded {
    pub request: ControllerRequest,
    pub validate_only: bool,
}

/// The leader's answer, with the index of the last entry it had applied.
#[derive(Serialize, Deserialize)]
pub struct ForwardedAnswer {
    pub answer: Answer,
    pub applied: i64,
    /// The active controller's address as the answering node knows it: where a node that
    /// follows no metadata log yet asks next (a voter added since its config was written).
    #[serde(default)]
    pub leader: Option<ControllerNode>,
}

struct Call {
    request: ControllerRequest,
    validate_only: bool,
    /// Whether it may be forwarded (not when it was forwarded here).
    may_forward: bool,
    answer: oneshot::Sender<(Answer, i64)>,
}

struct Inner {
    calls: Mutex<Option<mpsc::UnboundedSender<Call>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    quorum: RaftQuorum,
}

/// This node's controller; clones share it.
#[derive(Clone)]
pub struct ControllerChannel {
    inner: Arc<Inner>,
}

fn failure(code: ResponseError, message: String) -> ControllerError {
    tracing::error!(error = %message, "metadata controller failure");
    ControllerError {
        code: code.code(),
        message,
    }
}

fn not_controller(leader: Option<NodeId>) -> ControllerError {
    ControllerError {
        code: ResponseError::NotController.code(),
        message: format!("this node is not the active controller (the leader is {leader:?})"),
    }
}

fn quorum_failure(e: QuorumError) -> ControllerError {
    match e {
        QuorumError::NotLeader { leader } => not_controller(leader),
        QuorumError::Unavailable(why) => failure(
            ResponseError::KafkaStorageError,
            format!("metadata log: {why}"),
        ),
        QuorumError::Refused(why) => ControllerError {
            code: ResponseError::InvalidRequest.code(),
            message: why,
        },
    }
}

impl ControllerChannel {
    /// Starts this node's controller on `quorum`, deciding on `loader`'s image; requests are
    /// forwarded to the leader when this node does not lead.
    /// `leader_balance`: how often the active controller moves leadership back to preferred
    /// replicas (`leader.imbalance.check.interval.seconds`; `None`: never).
    pub fn start(
        quorum: RaftQuorum,
        loader: Arc<MetadataLoader>,
        session_timeout: Duration,
        leader_balance: Option<Duration>,
    ) -> ControllerChannel {
        let (calls, inbox) = mpsc::unbounded_channel();
        let liveness = Liveness::new(session_timeout);
        let task = tokio::spawn(run(quorum.clone(), loader, inbox, liveness, leader_balance));
        ControllerChannel {
            inner: Arc::new(Inner {
                calls: Mutex::new(Some(calls)),
                task: Mutex::new(Some(task)),
                quorum,
            }),
        }
    }

    /// The quorum this controller decides through.
    pub fn quorum(&self) -> &RaftQuorum {
        &self.inner.quorum
    }

    /// Asks the controller for `request` (only checked when `validate_only`); the answer comes
    /// once its records are committed and this node's image includes them.
    pub async fn call(&self, request: ControllerRequest, validate_only: bool) -> Answer {
        self.send(request, validate_only, true).await.0
    }

    /// A request forwarded here by another node: decided here or refused, never forwarded.
    pub async fn answer_forwarded(&self, forwarded: Forwarded) -> ForwardedAnswer {
        let (answer, applied) = self
            .send(forwarded.request, forwarded.validate_only, false)
            .await;
        let quorum = self.quorum();
        let leader = quorum.leader().and_then(|id| quorum.address_of(id));
        ForwardedAnswer {
            answer,
            applied,
            leader,
        }
    }

    async fn send(
        &self,
        request: ControllerRequest,
        validate_only: bool,
        may_forward: bool,
    ) -> (Answer, i64) {
        let stopped = |why: &str| {
            (
                Err(failure(ResponseError::KafkaStorageError, why.to_string())),
                -1,
            )
        };
        let (answer, answered) = oneshot::channel();
        let call = Call {
            request,
            validate_only,
            may_forward,
            answer,
        };
        let sent = self
            .inner
            .calls
            .lock()
            .as_ref()
            .is_some_and(|calls| calls.send(call).is_ok());
        if !sent {
            return stopped("the metadata controller has stopped");
        }
        answered
            .await
            .unwrap_or_else(|_| stopped("the metadata controller stopped"))
    }

    /// Lets the requests already sent finish, then stops the controller and the quorum.
    pub async fn close(&self) {
        drop(self.inner.calls.lock().take());
        let task = self.inner.task.lock().take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the metadata controller task failed");
            }
        }
        self.inner.quorum.shutdown().await;
    }
}

/// When the active controller last heard from each broker.
struct Liveness {
    session_timeout: Duration,
    last_heartbeat: HashMap<i32, Instant>,
    /// The broker process each node id last heard from (its incarnation) and when. A
    /// controller that starts leading has heard from no process yet, but gives each broker
    /// registered and unfenced in the image a session from that moment (as Kafka does), whose
    /// process is the first that heartbeats (`None` until then).
    processes: HashMap<i32, (Option<uuid::Uuid>, Instant)>,
    /// The Raft term `processes` was heard in.
    processes_term: u64,
    /// Whether this node led at the last check, and when that check ran.
    leading: bool,
    last_check: Instant,
}

impl Liveness {
    fn new(session_timeout: Duration) -> Liveness {
        Liveness {
            session_timeout,
            last_heartbeat: HashMap::new(),
            processes: HashMap::new(),
            processes_term: 0,
            leading: false,
            last_check: Instant::now(),
        }
    }

    /// Refuses a request of another broker process than the live one of its node id, as
    /// Kafka's controller does: a registration (DUPLICATE_BROKER_REGISTRATION: two processes
    /// with one node id would serve one broker's partitions from two logs) or a heartbeat
    /// (STALE_BROKER_EPOCH: a process that was replaced). A process is live while this
    /// controller, leading in `term`, heard from it within the session timeout (or, for the
    /// registered processes of `image`, since it took over), until its controlled shutdown.
    fn refuse_other_process(
        &mut self,
        term: u64,
        image: &MetadataImage,
        request: &ControllerRequest,
    ) -> Option<ControllerError> {
        if self.processes_term != term {
            // What a controller heard in an earlier term may be stale: it starts from the
            // registrations in the log.
            let now = Instant::now();
            self.processes = image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .map(|b| (b.node_id, (None, now)))
                .collect();
            self.processes_term = term;
        }
        let (node_id, incarnation, code, what) = match request {
            ControllerRequest::FenceBroker { node_id } => {
                self.processes.remove(node_id);
                return None;
            }
            ControllerRequest::RegisterBroker {
                registration,
                incarnation,
                ..
            } => (
                registration.node_id,
                *incarnation,
                ResponseError::DuplicateBrokerRegistration,
                "registration",
            ),
            ControllerRequest::ChangeVoters(VoterChange::Observe {
                node_id,
                incarnation,
                ..
            }) => (
                *node_id,
                *incarnation,
                ResponseError::DuplicateBrokerRegistration,
                "registration",
            ),
            ControllerRequest::BrokerHeartbeat {
                node_id,
                incarnation,
                ..
            } => (
                *node_id,
                *incarnation,
                ResponseError::StaleBrokerEpoch,
                "heartbeat",
            ),
            _ => return None,
        };
        // The registered process a new controller has not heard from yet is the first to
        // heartbeat: it was registered before, where a registration is a process that starts.
        let claims = |live: &Option<uuid::Uuid>| {
            live.is_none() && matches!(request, ControllerRequest::BrokerHeartbeat { .. })
        };
        match self.processes.get(&node_id) {
            Some((live, heard))
                if *live != Some(incarnation)
                    && !claims(live)
                    && heard.elapsed() <= self.session_timeout =>
            {
                Some(failure(
                    code,
                    format!("the {what} of another process than the live broker {node_id} (a duplicate node.id, or a broker restarted less than broker.session.timeout.ms after it was killed)"),
                ))
            }
            _ => {
                self.processes
                    .insert(node_id, (Some(incarnation), Instant::now()));
                None
            }
        }
    }

    /// The registered, unfenced brokers to fence now. Every broker gets a full session from
    /// the moment this node starts leading, or resumes after a stall of its own.
    fn expired(&mut self, leading: bool, image: &gregor_metadata::MetadataImage) -> Vec<i32> {
        let now = Instant::now();
        let stalled = now.duration_since(self.last_check) > self.session_timeout;
        if !leading || !self.leading || stalled {
            self.last_heartbeat.clear();
        }
        self.leading = leading;
        self.last_check = now;
        if !leading {
            return Vec::new();
        }
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let seen = *self.last_heartbeat.entry(b.node_id).or_insert(now);
                now.duration_since(seen) > self.session_timeout
            })
            .map(|b| b.node_id)
            .collect()
    }
}

async fn run(
    quorum: RaftQuorum,
    loader: Arc<MetadataLoader>,
    mut inbox: mpsc::UnboundedReceiver<Call>,
    mut liveness: Liveness,
    leader_balance: Option<Duration>,
) {
    // Often enough that a broker is fenced within a tenth of a second of its session's end:
    // clients wait that long for its partitions' new leaders.
    let check_every =
        (liveness.session_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(100));
    let mut checks = tokio::time::interval(check_every);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut balances = leader_balance.map(|every| {
        let mut balances = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        balances.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        balances
    });
    loop {
        let call = tokio::select! {
            call = inbox.recv() => match call {
                Some(call) => call,
                None => return,
            },
            _ = checks.tick() => {
                fence_silent_brokers(&quorum, &loader, &mut liveness).await;
                continue;
            }
            _ = tick(&mut balances) => {
                balance_leaders(&quorum, &loader).await;
                continue;
            }
        };
        // Only the active controller knows which process of a node id is live (a follower
        // forwards the request to it).
        if quorum.leader() == Some(quorum.node_id()) {
            let term = quorum.status().term;
            let image = loader.image();
            if let Some(refused) = liveness.refuse_other_process(term, &image, &call.request) {
                reply(&quorum, call, Ok(Err(refused)));
                continue;
            }
        }
        if let ControllerRequest::BrokerHeartbeat { node_id, .. } = &call.request {
            liveness.last_heartbeat.insert(*node_id, Instant::now());
        }
        if let ControllerRequest::ChangeVoters(change) = &call.request {
            // A new voter first copies the log, which takes as long as it takes: beside the
            // task, as forwards are.
            let (quorum, change) = (quorum.clone(), change.clone());
            tokio::spawn(async move {
                let outcome = change_voters(&quorum, &change, call.validate_only).await;
                dispatch(&quorum, call, outcome);
            });
            continue;
        }
        let outcome = decide_and_commit(&quorum, &loader, &call.request, call.validate_only).await;
        if let (ControllerRequest::UnregisterBroker { node_id }, Ok(Ok(_)), false) =
            (&call.request, &outcome, call.validate_only)
        {
            forget_learner(&quorum, *node_id);
        }
        dispatch(&quorum, call, outcome);
    }
}

/// Answers a call, or forwards it when another node leads (and the call may be forwarded).
fn dispatch(quorum: &RaftQuorum, call: Call, outcome: Result<Answer, QuorumError>) {
    let leader = match outcome {
        Err(QuorumError::NotLeader {
            leader: Some(leader),
        }) if call.may_forward => leader,
        outcome => return reply(quorum, call, outcome),
    };
    // Forwarded from a task of its own: a leader that is cut off or slow holds up no other
    // request (this node's heartbeats among them), and the wait ends as soon as this node
    // learns of another leader.
    let quorum = quorum.clone();
    tokio::spawn(async move {
        let node = quorum.address_of(leader);
        let outcome = tokio::select! {
            forwarded = forward(&quorum, node.as_ref(), &call) => forwarded,
            () = quorum.leader_changed(leader) => Err(QuorumError::NotLeader {
                leader: quorum.leader(),
            }),
        };
        reply(&quorum, call, outcome);
    });
}

/// A broker gone for good that is a learner of the quorum (a removed voter) stops being sent
/// the log; a voter stays one (RemoveRaftVoter first).
fn forget_learner(quorum: &RaftQuorum, node_id: i32) {
    let id = node_id as NodeId;
    if !quorum.status().learners.iter().any(|l| l.node_id == id) {
        return;
    }
    let quorum = quorum.clone();
    tokio::spawn(async move {
        match quorum.remove_learner(id).await {
            Ok(()) => tracing::info!(
                node_id,
                "unregistered broker removed from the quorum's learners"
            ),
            Err(e) => {
                tracing::warn!(node_id, error = %e, "unregistered broker still a learner of the quorum")
            }
        }
    });
}

/// How long a new voter may take to copy the log before AddRaftVoter answers
/// REQUEST_TIMED_OUT: below the forward timeout, so that a forwarded request gets that answer.
/// As in Kafka, a timed-out change may still complete (the new node stays a learner at least).
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);

fn controller_node(host: &str, port: u16) -> ControllerNode {
    ControllerNode {
        host: host.to_string(),
        port,
    }
}

/// Carries out a change of the voters on the leader, with Kafka's error codes for a voter
/// that is already one (DUPLICATE_VOTER) or is none (VOTER_NOT_FOUND).
async fn change_voters(
    quorum: &RaftQuorum,
    change: &VoterChange,
    validate_only: bool,
) -> Result<Answer, QuorumError> {
    quorum.ensure_leader().await?;
    let voters: Vec<NodeId> = quorum.status().voters.iter().map(|v| v.node_id).collect();
    let refused = |code: ResponseError, message: String| {
        Ok(Err(ControllerError {
            code: code.code(),
            message,
        }))
    };
    match change {
        VoterChange::Add { node_id, .. } if voters.contains(&(*node_id as NodeId)) => refused(
            ResponseError::DuplicateVoter,
            format!("node {node_id} is already a voter"),
        ),
        VoterChange::Remove { node_id } if !voters.contains(&(*node_id as NodeId)) => refused(
            ResponseError::VoterNotFound,
            format!("node {node_id} is not a voter"),
        ),
        VoterChange::Observe { node_id, .. } if voters.contains(&(*node_id as NodeId)) => refused(
            ResponseError::InvalidRequest,
            format!("node {node_id} is a voter: it cannot run as a broker only"),
        ),
        VoterChange::Remove { node_id } if voters.len() == 1 => refused(
            ResponseError::InvalidRequest,
            format!("node {node_id} is the only voter"),
        ),
        _ if validate_only => Ok(Ok(ControllerReply::Done { changed: 0 })),
        VoterChange::Add {
            node_id,
            host,
            port,
        } => {
            let node = controller_node(host, *port);
            tracing::info!(node_id, %node, "adding a voter to the metadata quorum");
            match tokio::time::timeout(CATCH_UP_TIMEOUT, quorum.add_voter(*node_id as NodeId, node)).await {
                Ok(added) => added.map(|()| Ok(ControllerReply::Done { changed: 1 })),
                Err(_) => refused(
                    ResponseError::RequestTimedOut,
                    format!("node {node_id} did not catch up with the metadata log within {CATCH_UP_TIMEOUT:?}"),
                ),
            }
        }
        VoterChange::Observe {
            node_id,
            host,
            port,
            ..
        } => {
            let node = controller_node(host, *port);
            let added = quorum.add_learner(*node_id as NodeId, node.clone()).await?;
            if added {
                tracing::info!(node_id, %node, "a broker follows the metadata log");
            }
            Ok(Ok(ControllerReply::Done {
                changed: added as usize,
            }))
        }
        VoterChange::Remove { node_id } => {
            tracing::info!(node_id, "removing a voter from the metadata quorum");
            quorum
                .remove_voter(*node_id as NodeId)
                .await
                .map(|()| Ok(ControllerReply::Done { changed: 1 }))
        }
    }
}

/// Answers a call with its outcome and the index this node has applied.
fn reply(quorum: &RaftQuorum, call: Call, outcome: Result<Answer, QuorumError>) {
    let answer = outcome.map_err(|e| match e {
        QuorumError::NotLeader { leader } => not_controller(leader),
        e => quorum_failure(e),
    });
    let answer = answer.and_then(|decided| decided);
    // The caller may have gone (its connection closed): the change stands anyway.
    let _ = call.answer.send((answer, quorum.applied_index()));
}

/// Fences the brokers whose session expired, when this node is the active controller.
async fn fence_silent_brokers(
    quorum: &RaftQuorum,
    loader: &MetadataLoader,
    liveness: &mut Liveness,
) {
    let leading = quorum.leader() == Some(quorum.node_id());
    for node_id in liveness.expired(leading, &loader.image()) {
        tracing::warn!(node_id, timeout = ?liveness.session_timeout, "no heartbeat from broker: fencing it");
        let fence = ControllerRequest::FenceBroker { node_id };
        match decide_and_commit(quorum, loader, &fence, false).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(node_id, error = %e.message, "broker not fenced"),
            Err(e) => tracing::warn!(node_id, error = %e, "broker not fenced"),
        }
    }
}

/// The next tick of an optional interval (never, without one).
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Moves leadership back to preferred replicas that can lead, when this node is the active
/// controller: rounds of at most `MAX_ELECTIONS_PER_BALANCE` elections until none is left.
async fn balance_leaders(quorum: &RaftQuorum, loader: &MetadataLoader) {
    let mut moved = 0;
    while quorum.leader() == Some(quorum.node_id()) {
        match decide_and_commit(quorum, loader, &ControllerRequest::BalanceLeaders, false).await {
            Ok(Ok(ControllerReply::Done { changed })) => {
                moved += changed;
                if changed < MAX_ELECTIONS_PER_BALANCE {
                    break;
                }
            }
            Ok(outcome) => {
                tracing::error!(?outcome, "leader balancing refused");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader balancing not committed");
                break;
            }
        }
    }
    if moved > 0 {
        tracing::info!(
            partitions = moved,
            "moved leadership back to preferred replicas"
        );
    }
}

/// Decides and commits here (the outer error: the quorum's; the inner: the decision's).
async fn decide_and_commit(
    quorum: &RaftQuorum,
    loader: &MetadataLoader,
    request: &ControllerRequest,
    validate_only: bool,
) -> Result<Answer, QuorumError> {
    quorum.ensure_leader().await?;
    if let ControllerRequest::DescribeQuorum = request {
        return Ok(Ok(ControllerReply::Quorum(describe_quorum(quorum))));
    }
    let (records, reply) = match decide(&loader.image(), request, validate_only) {
        Ok(decided) => decided,
        Err(refused) => return Ok(Err(refused)),
    };
    if !records.is_empty() {
        quorum.append(records).await?;
    }
    Ok(Ok(reply))
}

/// The quorum as this node, its leader, sees it.
fn describe_quorum(quorum: &RaftQuorum) -> QuorumDescription {
    let status = quorum.status();
    let progress = |v: &gregor_raft::VoterState| ReplicaProgress {
        node_id: v.node_id as i32,
        host: v.node.host.clone(),
        port: v.node.port,
        log_end_offset: v.log_end_offset,
    };
    QuorumDescription {
        leader_id: status.leader.map_or(-1, |l| l as i32),
        leader_epoch: status.term as i32,
        high_watermark: status.high_watermark,
        voters: status.voters.iter().map(progress).collect(),
        observers: status.learners.iter().map(progress).collect(),
    }
}

/// Sends `forwarded` to the controller listener at `node` and reads its answer.
async fn exchange(
    node: &ControllerNode,
    forwarded: &Forwarded,
) -> std::io::Result<ForwardedAnswer> {
    let body = serde_json::to_vec(forwarded).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect((node.host.as_str(), node.port)).await?;
    stream
        .write_all(&request_frame(FORWARD_API_KEY, 1, &body))
        .await?;
    let response = read_frame(&mut stream).await?;
    serde_json::from_slice(response.get(4..).unwrap_or_default()).map_err(std::io::Error::other)
}

/// Asks the controller at `node` (a voter, which answers only if it is the active controller)
/// to carry out `request`: for a node that does not follow the metadata log yet, so cannot
/// know the leader. The answer comes with the leader `node` knows of.
pub async fn ask_voter(
    node: &ControllerNode,
    request: ControllerRequest,
) -> Result<ForwardedAnswer, String> {
    let forwarded = Forwarded {
        request,
        validate_only: false,
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, exchange(node, &forwarded)).await {
        Ok(Ok(answered)) => Ok(answered),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer".into()),
    }
}

/// Sends the call to the leader and waits until this node applied what the leader had.
async fn forward(
    quorum: &RaftQuorum,
    leader: Option<&ControllerNode>,
    call: &Call,
) -> Result<Answer, QuorumError> {
    let Some(leader) = leader else {
        return Err(QuorumError::NotLeader { leader: None });
    };
    let forwarded = Forwarded {
        request: call.request.clone(),
        validate_only: call.validate_only,
    };
    let answer = match tokio::time::timeout(FORWARD_TIMEOUT, exchange(leader, &forwarded)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::warn!(leader = %leader, error = %e, "cannot forward a request to the active controller");
            return Err(QuorumError::NotLeader { leader: None });
        }
        Err(_) => {
            return Err(QuorumError::Unavailable(
                "the active controller did not answer".into(),
            ))
        }
    };
    quorum.wait_applied(answer.applied, FORWARD_TIMEOUT).await?;
    Ok(answer.answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use gregor_metadata::controller::{NewTopic, TopicDefaults};
    use gregor_metadata::{BrokerRegistration, MetadataImage};
    use gregor_raft::{QuorumConfig, SnapshotTriggers};

    fn create(name: &str) -> ControllerRequest {
        ControllerRequest::CreateTopic {
            topic: NewTopic {
                name: name.into(),
                num_partitions: 3,
                replication_factor: 1,
                assignments: vec![],
                configs: vec![],
            },
            defaults: TopicDefaults {
                num_partitions: 1,
                replication_factor: 1,
            },
            topic_id: uuid::Uuid::new_v4(),
        }
    }

    async fn start(dir: &std::path::Path) -> (ControllerChannel, Arc<MetadataLoader>) {
        let loader = Arc::new(MetadataLoader::new(MetadataImage::empty()));
        let config = QuorumConfig {
            node_id: 1,
            dir: dir.to_path_buf(),
            initial_voters: BTreeMap::from([(1, ControllerNode::default())]),
            election_timeout: Duration::from_millis(1000),
            snapshots: SnapshotTriggers::default(),
        };
        let quorum = RaftQuorum::start(config, loader.clone()).await.unwrap();
        quorum
            .wait_for_leader(Duration::from_secs(10))
            .await
            .unwrap();
        (
            ControllerChannel::start(quorum, loader.clone(), Duration::from_secs(9), None),
            loader,
        )
    }

    /// Broker 1 on 127.0.0.1:9092, unfenced.
    fn broker_one() -> BrokerRegistration {
        BrokerRegistration {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            fenced: false,
            fenced_at: 0,
        }
    }

    /// One live process per node id: another's registration is DUPLICATE_BROKER_REGISTRATION
    /// and its heartbeats STALE_BROKER_EPOCH, until the live one's controlled shutdown or its
    /// session's end; a controller in a new term starts from the registered process.
    #[test]
    fn another_process_of_a_live_broker_is_refused() {
        let registration = broker_one();
        let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let register = |incarnation| ControllerRequest::RegisterBroker {
            registration: registration.clone(),
            incarnation,
            clean_shutdown: true,
        };
        let heartbeat = |incarnation| ControllerRequest::BrokerHeartbeat {
            node_id: 1,
            applied_offset: 0,
            incarnation,
        };
        let code = |refused: Option<ControllerError>| refused.map_or(0, |e| e.code);
        let mut liveness = Liveness::new(Duration::from_secs(60));
        let mut image = MetadataImage::empty();
        let mut ask = |term, image: &MetadataImage, request| {
            code(liveness.refuse_other_process(term, image, &request))
        };
        let empty = MetadataImage::empty();
        assert_eq!(ask(1, &empty, register(first)), 0);
        assert_eq!(ask(1, &empty, heartbeat(first)), 0);
        assert_eq!(ask(1, &empty, register(second)), 101);
        assert_eq!(ask(1, &empty, heartbeat(second)), 77);
        // A controlled shutdown ends the first: the second may come.
        assert_eq!(
            ask(1, &empty, ControllerRequest::FenceBroker { node_id: 1 }),
            0
        );
        assert_eq!(ask(1, &empty, register(second)), 0);
        assert_eq!(ask(1, &empty, heartbeat(first)), 77);
        // A controller leading in a new term gives the broker the log registers a session: no
        // process registers during it, the first to heartbeat is the live one.
        let (records, _) = decide(&image, &register(second), false).expect("registered");
        image.apply_committed(&records, 1);
        assert_eq!(ask(2, &image, register(first)), 101);
        assert_eq!(ask(2, &image, heartbeat(second)), 0);
        assert_eq!(ask(2, &image, heartbeat(first)), 77);
        assert_eq!(ask(2, &image, register(first)), 101);
        // A fenced broker has no session: any process may come.
        image.apply_committed(
            &[gregor_metadata::MetadataRecord::FenceBroker { node_id: 1 }],
            2,
        );
        assert_eq!(ask(3, &image, register(first)), 0);
        // A session that ran out ends a process too.
        let mut liveness = Liveness::new(Duration::ZERO);
        assert_eq!(
            code(liveness.refuse_other_process(1, &empty, &register(first))),
            0
        );
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(
            code(liveness.refuse_other_process(1, &empty, &register(second))),
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_come_after_the_records_are_committed_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let (controller, loader) = start(dir.path()).await;
        let broker = broker_one();
        controller
            .call(
                ControllerRequest::RegisterBroker {
                    registration: broker,
                    incarnation: uuid::Uuid::nil(),
                    clean_shutdown: true,
                },
                false,
            )
            .await
            .unwrap();
        // Concurrent requests for one name: exactly one wins, each sees the others' commits.
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let (controller, loader) = (controller.clone(), loader.clone());
                tokio::spawn(async move {
                    let answer = controller.call(create("t"), false).await;
                    // Whoever is answered sees the topic in this node's image at once.
                    assert!(loader.image().topics.contains_key("t"));
                    answer
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let created = answers.iter().filter(|a| a.is_ok()).count();
        assert_eq!(created, 1, "{answers:?}");
        assert!(answers
            .iter()
            .filter_map(|a| a.as_ref().err())
            .all(|e| e.code == ResponseError::TopicAlreadyExists.code()));
        assert_eq!(loader.image().topics["t"].partitions.len(), 3);
        let checked = controller.call(create("u"), true).await.unwrap();
        assert_eq!(checked, ControllerReply::Done { changed: 4 });
        assert!(!loader.image().topics.contains_key("u"), "validate only");

        controller.close().await;
        let stopped = controller.call(create("v"), false).await.unwrap_err();
        assert_eq!(stopped.code, ResponseError::KafkaStorageError.code());
        // What was answered is in the log: a restart replays it.
        let answered = loader.image();
        let (_, reloaded) = start(dir.path()).await;
        assert_eq!(reloaded.image().topics, answered.topics);
        assert_eq!(reloaded.image().brokers, answered.brokers);
    }
}
