//! Followers' fetchers (Kafka's replica fetcher threads): for each broker that leads
//! partitions this broker follows, one task fetches all of them with one Fetch request at a
//! time on one connection, as a consumer would but with this broker's id, and appends what it
//! gets as it is. The leader answers a follower whose log diverged with where it diverged, and
//! the follower truncates there before it fetches again. Which partitions each task fetches
//! follows the metadata: a partition is fetched from the leader of its current leader epoch,
//! and what was fetched for an older epoch is dropped, not appended.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_metadata::{MetadataDelta, MetadataImage};
use gregor_protocol::kafka::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use gregor_protocol::kafka::messages::fetch_response::PartitionData;
use gregor_protocol::kafka::messages::{BrokerId, FetchRequest, FetchResponse};
use gregor_protocol::kafka::ResponseError;
use gregor_protocol::{decode_response, encode_request, ApiKey};
use gregor_raft::network::read_frame;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::partitions::{Partition, ReplicaManager};
use crate::services::{now_ms, Services};

/// Fetch v17: topic ids, the follower's id in ReplicaState, DivergingEpoch in answers.
const FETCH_VERSION: i16 = 17;

/// A partition a fetcher copies, in the leader epoch it was assigned in.
#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// Not fetched before then (after an error).
    paused_until: Option<Instant>,
}

/// The partitions one leader's fetcher copies.
#[derive(Default)]
struct Assignment {
    partitions: Mutex<HashMap<(Uuid, i32), Followed>>,
    changed: Notify,
}

#[derive(Default)]
pub struct ReplicaFetchers {
    by_leader: Mutex<HashMap<i32, Arc<Assignment>>>,
    /// A leader got its first partitions: [`ReplicaFetchers::run`] starts its fetcher.
    added: Notify,
}

impl ReplicaFetchers {
    /// Follows a metadata change (after the replica manager applied it): each changed
    /// partition hosted here that another broker leads is fetched from that leader, in its
    /// new leader epoch; every other changed or removed partition is fetched by no one.
    pub fn apply_delta(
        &self,
        delta: &MetadataDelta,
        image: &MetadataImage,
        replicas: &ReplicaManager,
        node_id: i32,
    ) {
        let mut by_leader = self.by_leader.lock();
        let unassign = |key: &(Uuid, i32)| {
            for assignment in by_leader.values() {
                if assignment.partitions.lock().remove(key).is_some() {
                    assignment.changed.notify_one();
                }
            }
        };
        for removed in &delta.removed_topics {
            for &index in &removed.partitions {
                unassign(&(removed.id, index));
            }
        }
        let mut assign = Vec::new();
        for key @ (topic_id, index) in &delta.changed_partitions {
            unassign(key);
            let Some(topic) = image.topic_by_id(topic_id) else {
                continue;
            };
            let Some(meta) = topic.partitions.get(index) else {
                continue;
            };
            let follows = meta.leader >= 0 && meta.leader != node_id;
            let hosted = replicas.get(&topic.name, *index);
            if let Some(partition) = hosted.filter(|_| follows) {
                let followed = Followed {
                    partition,
                    leader_epoch: meta.leader_epoch,
                    paused_until: None,
                };
                assign.push((meta.leader, *key, followed));
            }
        }
        for (leader, key, followed) in assign {
            let assignment = by_leader.entry(leader).or_insert_with(|| {
                self.added.notify_one();
                Arc::default()
            });
            assignment.partitions.lock().insert(key, followed);
            assignment.changed.notify_one();
        }
    }

    /// Starts a fetcher for each leader as it gets partitions, until the broker stops.
    pub async fn run(services: Arc<Services>) {
        let mut stop = services.shutdown_signal();
        let mut running: HashMap<i32, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let leaders: Vec<(i32, Arc<Assignment>)> = services
                .fetchers
                .by_leader
                .lock()
                .iter()
                .map(|(l, a)| (*l, a.clone()))
                .collect();
            for (leader, assignment) in leaders {
                running.entry(leader).or_insert_with(|| {
                    tokio::spawn(fetch_from(services.clone(), leader, assignment))
                });
            }
            tokio::select! {
                _ = services.fetchers.added.notified() => {}
                _ = stop.changed() => break,
            }
        }
        for (_, task) in running {
            task.abort();
        }
    }
}

/// The settings of a follower's fetches, from the broker config.
struct Settings {
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
    backoff: Duration,
    timeout: Duration,
}

impl Settings {
    fn of(services: &Services) -> Settings {
        let get = |name: &str| services.config.get_i64(name);
        Settings {
            max_wait_ms: get("replica.fetch.wait.max.ms") as i32,
            min_bytes: get("replica.fetch.min.bytes") as i32,
            max_bytes: get("replica.fetch.response.max.bytes") as i32,
            partition_max_bytes: get("replica.fetch.max.bytes") as i32,
            backoff: Duration::from_millis(get("replica.fetch.backoff.ms").max(0) as u64),
            timeout: Duration::from_millis(get("replica.socket.timeout.ms").max(1) as u64),
        }
    }
}

/// One leader's fetcher: fetches its partitions that are not paused, or waits for some.
async fn fetch_from(services: Arc<Services>, leader: i32, assignment: Arc<Assignment>) {
    let settings = Settings::of(&services);
    let mut stop = services.shutdown_signal();
    let mut connection: Option<TcpStream> = None;
    let mut correlation_id = 0i32;
    let mut last_error_logged: Option<std::time::Instant> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Instant::now();
        let (mut due, mut next_pause_end) = {
            let partitions = assignment.partitions.lock();
            let due: Vec<((Uuid, i32), Followed)> = partitions
                .iter()
                .filter(|(_, f)| f.paused_until.is_none_or(|t| t <= now))
                .map(|(k, f)| (*k, f.clone()))
                .collect();
            let next = partitions.values().filter_map(|f| f.paused_until).min();
            (due, next)
        };
        // Over the follower throttle's rate, the replicas it holds back are not asked for
        // (`throttle.rs`); they are looked at again after the backoff.
        if services.replicas.throttles.follower.exceeded(now_ms()) {
            let before = due.len();
            due.retain(|(_, f)| !f.partition.follower_throttles(services.node_id));
            if due.len() < before {
                // Not at once even without a backoff: the rate falls over seconds.
                let retry = now + settings.backoff.max(Duration::from_millis(100));
                next_pause_end = Some(next_pause_end.map_or(retry, |t| t.min(retry)));
            }
        }
        if due.is_empty() {
            let wake = next_pause_end.unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                _ = assignment.changed.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
                _ = stop.changed() => return,
            }
            continue;
        }
        correlation_id = correlation_id.wrapping_add(1);
        let request = fetch_request(&services, &settings, &due);
        let exchange =
            async { exchange(&services, leader, &mut connection, correlation_id, &request).await };
        let response = tokio::select! {
            r = tokio::time::timeout(settings.timeout, exchange) => {
                r.unwrap_or_else(|_| Err(format!("no answer from broker {leader} in time")))
            }
            _ = stop.changed() => return,
        };
        match response {
            Ok(response) => handle_response(&services, &settings, &assignment, &due, response),
            Err(error) => {
                connection = None;
                let quiet =
                    last_error_logged.is_some_and(|t| t.elapsed() < Duration::from_secs(10));
                if !quiet {
                    last_error_logged = Some(std::time::Instant::now());
                    tracing::warn!(leader, %error, partitions = due.len(), "replica fetch failed; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(settings.backoff) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

fn fetch_request(
    services: &Services,
    settings: &Settings,
    due: &[((Uuid, i32), Followed)],
) -> FetchRequest {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    for ((topic_id, index), followed) in due {
        let (fetch_offset, log_start, last_epoch) = followed.partition.with_log(|log| {
            let last_epoch = log.leader_epochs().last().map_or(-1, |&(e, _)| e);
            (log.log_end_offset(), log.log_start_offset(), last_epoch)
        });
        topics.entry(*topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(*index)
                .with_current_leader_epoch(followed.leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(settings.partition_max_bytes),
        );
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(services.node_id))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(settings.max_wait_ms)
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Sends `request` to the leader on the fetcher's connection (opened at the address the
/// leader registered if there is none) and reads its answer.
async fn exchange(
    services: &Services,
    leader: i32,
    connection: &mut Option<TcpStream>,
    correlation_id: i32,
    request: &FetchRequest,
) -> Result<FetchResponse, String> {
    let frame = encode_request(
        ApiKey::Fetch,
        FETCH_VERSION,
        correlation_id,
        "gregor-replica-fetcher",
        request,
    )
    .map_err(|e| format!("cannot encode a fetch: {e}"))?;
    if connection.is_none() {
        let image = services.metadata.image();
        let broker = image
            .brokers
            .get(&leader)
            .ok_or_else(|| format!("broker {leader} is not registered"))?;
        let address = format!("{}:{}", broker.host, broker.port);
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot connect to broker {leader} at {address}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        *connection = Some(stream);
    }
    let stream = connection.as_mut().expect("connected above");
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;
    let body = read_frame(stream).await.map_err(|e| e.to_string())?;
    let (answered, response) =
        decode_response::<FetchResponse>(ApiKey::Fetch, FETCH_VERSION, Bytes::from(body))
            .map_err(|e| format!("cannot decode a fetch response: {e}"))?;
    if answered != correlation_id {
        return Err(format!("answer {answered} to request {correlation_id}"));
    }
    Ok(response)
}

/// Applies each partition's answer: records appended, divergence truncated, errors paused.
fn handle_response(
    services: &Services,
    settings: &Settings,
    assignment: &Assignment,
    due: &[((Uuid, i32), Followed)],
    response: FetchResponse,
) {
    if response.error_code != 0 {
        tracing::warn!(code = response.error_code, "replica fetch refused");
        pause(
            assignment,
            due.iter().map(|(k, f)| (*k, f.leader_epoch)),
            settings.backoff,
        );
        return;
    }
    let followed: HashMap<(Uuid, i32), &Followed> = due.iter().map(|(k, f)| (*k, f)).collect();
    let mut paused = Vec::new();
    let mut throttled = 0;
    for topic in &response.responses {
        for data in &topic.partitions {
            let key = (topic.topic_id, data.partition_index);
            let Some(f) = followed.get(&key) else {
                continue;
            };
            if f.partition.follower_throttled() {
                throttled += data.records.as_ref().map_or(0, |r| r.len());
            }
            if let Err(error) = apply(&f.partition, f.leader_epoch, data, now_ms()) {
                let p = &f.partition;
                if error != ResponseError::NotLeaderOrFollower.code()
                    && error != ResponseError::FencedLeaderEpoch.code()
                {
                    tracing::info!(topic = %p.topic, partition = p.index, code = error, "replica fetch of a partition failed; paused");
                }
                paused.push((key, f.leader_epoch));
            }
        }
    }
    services
        .replicas
        .throttles
        .follower
        .record(throttled, now_ms());
    if !paused.is_empty() {
        pause(assignment, paused.into_iter(), settings.backoff);
    }
}

/// One partition's answer, to a fetch sent in `leader_epoch`, at `now_ms`; the error code that
/// pauses it.
pub(super) fn apply(
    p: &Partition,
    leader_epoch: i32,
    data: &PartitionData,
    now_ms: i64,
) -> Result<(), i16> {
    let storage = |e: gregor_storage::StorageError| {
        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "follower cannot write what it fetched");
        e.error_code()
    };
    match data.error_code {
        0 => {}
        code if code == ResponseError::OffsetOutOfRange.code() => {
            return p
                .reset_out_of_range(leader_epoch, data.log_start_offset, data.high_watermark)
                .map_err(storage);
        }
        code => return Err(code),
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        return p
            .truncate_to_leader(leader_epoch, diverging.epoch, diverging.end_offset)
            .map_err(storage);
    }
    let records = data.records.as_deref().unwrap_or_default();
    let (high_watermark, log_start) = (data.high_watermark, data.log_start_offset);
    p.append_from_leader(leader_epoch, records, high_watermark, log_start, now_ms)
        .map_err(storage)
}

/// No fetches of these partitions, by the leader epoch they were fetched in, for `backoff`;
/// one assigned afresh since (a metadata change) is fetched at once.
fn pause(
    assignment: &Assignment,
    keys: impl Iterator<Item = ((Uuid, i32), i32)>,
    backoff: Duration,
) {
    let until = Instant::now() + backoff;
    let mut partitions = assignment.partitions.lock();
    for (key, leader_epoch) in keys {
        if let Some(f) = partitions
            .get_mut(&key)
            .filter(|f| f.leader_epoch == leader_epoch)
        {
            f.paused_until = Some(until);
        }
    }
}
