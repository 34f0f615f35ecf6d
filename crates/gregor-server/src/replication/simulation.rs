//! Deterministic simulation of replication: three brokers' real replicas (`ReplicaManager`,
//! `Partition`, `LeaderState`, `PartitionLog` on disk) and the controller's real decisions
//! (`gregor_metadata::request::decide`: ISR changes, fencing, elections) run on a simulated
//! clock and network that one seed drives: messages are delayed, reordered and lost, brokers
//! are killed (their memory dropped, their files kept, as SIGKILL leaves them) and restarted,
//! and cut off from the controller, from each other or from everyone. Clients append with
//! `acks=all` semantics; at the end the network heals, the cluster settles, and a checker
//! looks for acknowledged records lost or moved, records duplicated or reordered, and
//! replicas whose logs differ.
//!
//! The glue a broker has around these pieces (the fetch handler's replica path, the fetcher's
//! request, the ISR-change sender, heartbeats) is mirrored here in a few lines each; what a
//! fetch answer does to a follower is the fetcher's own code. The controller is one reliable
//! decider (the Raft quorum under it is tested on its own). Everything runs on one thread and
//! every choice comes from the seed, so a failing seed fails again the same way:
//! `GREGOR_SIM_SEED=<n> cargo test -p gregor-server simulation`.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gregor_metadata::controller::{NewTopic, TopicDefaults};
use gregor_metadata::request::decide;
use gregor_metadata::{
    BrokerRegistration, ControllerReply, ControllerRequest, IsrProposal, MetadataImage,
    MetadataRecord,
};
use gregor_protocol::kafka::messages::fetch_response::{EpochEndOffset, PartitionData};
use gregor_protocol::kafka::ResponseError;
use gregor_storage::records::{decode_records, encode_batch, split_batches};
use uuid::Uuid;

use super::fetcher::apply;
use super::isr_changes::not_applied;
use crate::config::BrokerConfig;
use crate::delayed::Written;
use crate::partitions::{FollowerFetch, Partition, ReplicaManager};

const BROKERS: [i32; 3] = [1, 2, 3];
/// The controller's address on the simulated network.
const CONTROLLER: i32 = 0;
const TOPIC: &str = "t";
const PARTITIONS: i32 = 2;
const SESSION_TIMEOUT_MS: i64 = 600;
const HEARTBEAT_MS: i64 = 100;
const LAG_MS: i64 = 1_000;
const REQUEST_TIMEOUT_MS: i64 = 400;
const FETCH_MAX_BYTES: usize = 64 * 1024;

/// splitmix64: small, fast, and the same numbers on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `low..high`.
    fn range(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % (high - low) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u64_pair(self.next(), self.next())
    }
}

enum Message {
    Heartbeat {
        node: i32,
        incarnation: u64,
        applied: i64,
    },
    /// The heartbeat's answer: the metadata batches after the offset the broker had applied.
    Metadata {
        incarnation: u64,
        batches: Vec<(i64, Vec<MetadataRecord>)>,
    },
    AlterPartition {
        node: i32,
        incarnation: u64,
        proposals: Vec<IsrProposal>,
    },
    IsrOutcomes {
        incarnation: u64,
        outcomes: Vec<Result<(), i16>>,
    },
    Fetch {
        follower: i32,
        incarnation: u64,
        partition: i32,
        leader_epoch: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
    },
    FetchAnswer {
        partition: i32,
        leader_epoch: i32,
        incarnation: u64,
        data: Box<PartitionData>,
    },
}

struct Envelope {
    from: i32,
    to: i32,
    message: Message,
}

/// One broker: its log dir and, while it runs, its replicas and view of the metadata.
struct Broker {
    id: i32,
    config: BrokerConfig,
    running: Option<Running>,
    /// Counts starts: answers meant for an earlier process are dropped.
    incarnation: u64,
    down_until: i64,
}

/// An ISR change a leader proposes, with its partition.
type Proposed = (Arc<Partition>, IsrProposal);

struct Running {
    replicas: ReplicaManager,
    image: MetadataImage,
    /// ISR proposals not sent yet, and the ones sent and not answered.
    queued: Vec<Proposed>,
    in_flight: Option<(i64, Vec<Proposed>)>,
    /// Partitions with a fetch in flight, since when.
    fetching: BTreeMap<i32, i64>,
    last_heartbeat: i64,
    last_shrink_check: i64,
}

struct Controller {
    image: MetadataImage,
    /// Committed batches: (offset of the last record, records).
    log: Vec<(i64, Vec<MetadataRecord>)>,
    last_heartbeat: BTreeMap<i32, i64>,
    /// Each broker's newest process the controller heard of (its incarnation).
    processes: BTreeMap<i32, u64>,
}

impl Controller {
    fn commit(&mut self, request: &ControllerRequest) -> Option<ControllerReply> {
        let (records, reply) = decide(&self.image, request, false).ok()?;
        if !records.is_empty() {
            let offset = self.image.offset.max(0) + records.len() as i64;
            self.image.apply_committed(&records, offset);
            self.log.push((offset, records));
        }
        Some(reply)
    }

    fn batches_after(&self, applied: i64) -> Vec<(i64, Vec<MetadataRecord>)> {
        let start = self.log.partition_point(|(offset, _)| *offset <= applied);
        self.log[start..].to_vec()
    }
}

/// A record a client appended and waits to see acknowledged.
struct Pending {
    value: u64,
    broker: i32,
    incarnation: u64,
    written: Written,
    offset: i64,
}

struct Sim {
    rng: Rng,
    clock: Arc<AtomicI64>,
    controller: Controller,
    brokers: Vec<Broker>,
    /// Messages by delivery time, then sending order.
    queue: BinaryHeap<Reverse<(i64, u64)>>,
    messages: BTreeMap<u64, Envelope>,
    sent: u64,
    /// Pairs that cannot reach each other (both directions listed).
    cut: BTreeSet<(i32, i32)>,
    loss_percent: u64,
    next_value: u64,
    pending: Vec<Pending>,
    /// Acknowledged values: partition and offset, in the order they were appended.
    acknowledged: BTreeMap<u64, (i32, i64)>,
    /// By partition, the highest high watermark a replica showed (consumers read up to a
    /// follower's too, KIP-392): committed, never to be lost.
    committed: BTreeMap<i32, i64>,
    faults: Vec<String>,
}

impl Sim {
    fn new(seed: u64, root: &Path) -> Sim {
        let clock = Arc::new(AtomicI64::new(1_700_000_000_000));
        let mut rng = Rng(seed);
        let brokers = BROKERS
            .iter()
            .map(|&id| {
                let dir = root.join(format!("broker-{id}"));
                let pairs = [
                    ("log.dirs", dir.display().to_string()),
                    ("node.id", id.to_string()),
                    ("replica.lag.time.max.ms", LAG_MS.to_string()),
                ];
                let pairs = pairs.map(|(k, v)| (k.to_string(), v));
                Broker {
                    id,
                    config: BrokerConfig::from_pairs(pairs).unwrap(),
                    running: None,
                    incarnation: 0,
                    down_until: 0,
                }
            })
            .collect();
        let mut controller = Controller {
            image: MetadataImage::empty(),
            log: Vec::new(),
            last_heartbeat: BTreeMap::new(),
            processes: BTreeMap::new(),
        };
        // A new cluster's features: KIP-966's eligible leader replicas among them.
        let formatted = controller.commit(&ControllerRequest::Format {
            cluster_id: "sim".into(),
        });
        assert!(formatted.is_some(), "the cluster is formatted");
        let now = clock.load(Ordering::Relaxed);
        for &id in &BROKERS {
            let registration = BrokerRegistration {
                node_id: id,
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                rack: None,
                fenced: false,
                fenced_at: 0,
            };
            let incarnation = rng.uuid();
            controller.commit(&ControllerRequest::RegisterBroker {
                registration,
                incarnation,
                clean_shutdown: true,
            });
            controller.last_heartbeat.insert(id, now);
            controller.processes.insert(id, 1);
        }
        let topic = NewTopic {
            name: TOPIC.into(),
            num_partitions: PARTITIONS,
            replication_factor: 3,
            assignments: vec![],
            configs: vec![("min.insync.replicas".into(), Some("2".into()))],
        };
        let defaults = TopicDefaults {
            num_partitions: 1,
            replication_factor: 1,
        };
        let topic_id = rng.uuid();
        let created = controller.commit(&ControllerRequest::CreateTopic {
            topic,
            defaults,
            topic_id,
        });
        assert!(created.is_some(), "the topic is created");
        let mut sim = Sim {
            rng,
            clock,
            controller,
            brokers,
            queue: BinaryHeap::new(),
            messages: BTreeMap::new(),
            sent: 0,
            cut: BTreeSet::new(),
            loss_percent: 0,
            next_value: 0,
            pending: Vec::new(),
            acknowledged: BTreeMap::new(),
            committed: BTreeMap::new(),
            faults: Vec::new(),
        };
        for index in 0..sim.brokers.len() {
            sim.start(index);
        }
        sim
    }

    fn now(&self) -> i64 {
        self.clock.load(Ordering::Relaxed)
    }

    fn start(&mut self, index: usize) {
        let clock = self.clock.clone();
        let broker = &mut self.brokers[index];
        let replicas = ReplicaManager::with_clock(
            &broker.config,
            Arc::new(move || clock.load(Ordering::Relaxed)),
        );
        broker.incarnation += 1;
        broker.running = Some(Running {
            replicas,
            image: MetadataImage::empty(),
            queued: Vec::new(),
            in_flight: None,
            fetching: BTreeMap::new(),
            last_heartbeat: 0,
            last_shrink_check: self.clock.load(Ordering::Relaxed),
        });
    }

    /// SIGKILL: the process's memory is gone, its files stay as written.
    fn kill(&mut self, index: usize, down_for: i64) {
        let broker = &mut self.brokers[index];
        broker.running = None;
        broker.down_until = self.clock.load(Ordering::Relaxed) + down_for;
        let id = broker.id;
        self.pending.retain(|p| p.broker != id);
    }

    fn send(&mut self, from: i32, to: i32, message: Message) {
        if self.cut.contains(&(from, to)) || self.rng.chance(self.loss_percent) {
            return;
        }
        let at = self.now() + self.rng.range(1, 15);
        self.sent += 1;
        self.queue.push(Reverse((at, self.sent)));
        self.messages
            .insert(self.sent, Envelope { from, to, message });
    }

    fn broker_index(id: i32) -> usize {
        (id - 1) as usize
    }

    /// One millisecond or a few: messages due are delivered, brokers do what is due, and while
    /// `faults` a client may append and a fault may start or end.
    fn step(&mut self, faults: bool) {
        let now = self.now() + self.rng.range(1, 6);
        self.clock.store(now, Ordering::Relaxed);
        while let Some(&Reverse((at, id))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            let envelope = self.messages.remove(&id).expect("queued");
            // A cut made while the message was on its way drops it too.
            if !self.cut.contains(&(envelope.from, envelope.to)) {
                self.deliver(envelope);
                // As a parked acks=all produce wakes: at once, before the next message can
                // end the leadership.
                self.settle_pending();
            }
        }
        self.control();
        for index in 0..self.brokers.len() {
            self.tick(index);
        }
        if faults && self.rng.chance(30) {
            self.produce();
        }
        self.settle_pending();
        if faults {
            self.inject_fault();
        }
    }

    fn deliver(&mut self, envelope: Envelope) {
        let now = self.now();
        let Envelope { from, to, message } = envelope;
        if to == CONTROLLER {
            match message {
                Message::Heartbeat {
                    node,
                    incarnation,
                    applied,
                } => {
                    self.controller.last_heartbeat.insert(node, now);
                    // A restarted broker registers first; SIGKILLed, it did not stop cleanly.
                    let known = self.controller.processes.entry(node).or_insert(0);
                    if incarnation > *known {
                        *known = incarnation;
                        let registration = self.controller.image.brokers[&node].clone();
                        self.controller.commit(&ControllerRequest::RegisterBroker {
                            registration,
                            incarnation: Uuid::nil(),
                            clean_shutdown: false,
                        });
                    }
                    let registered = &self.controller.image.brokers[&node];
                    let heartbeat = ControllerRequest::BrokerHeartbeat {
                        node_id: node,
                        applied_offset: applied,
                        incarnation: Uuid::nil(),
                    };
                    if registered.fenced {
                        self.controller.commit(&heartbeat);
                    }
                    let batches = self.controller.batches_after(applied);
                    let answer = Message::Metadata {
                        incarnation,
                        batches,
                    };
                    self.send(CONTROLLER, from, answer);
                }
                Message::AlterPartition {
                    node,
                    incarnation,
                    proposals,
                } => {
                    let request = ControllerRequest::AlterPartition {
                        broker_id: node,
                        proposals,
                    };
                    let outcomes = match self.controller.commit(&request) {
                        Some(ControllerReply::IsrChanges(outcomes)) => outcomes
                            .into_iter()
                            .map(|o| o.map_err(|e| e.code))
                            .collect(),
                        _ => return,
                    };
                    let answer = Message::IsrOutcomes {
                        incarnation,
                        outcomes,
                    };
                    self.send(CONTROLLER, from, answer);
                }
                _ => unreachable!("brokers send the controller heartbeats and ISR changes"),
            }
            return;
        }
        let index = Sim::broker_index(to);
        let broker = &mut self.brokers[index];
        let (incarnation, config) = (broker.incarnation, &broker.config);
        let Some(running) = broker.running.as_mut() else {
            return;
        };
        match message {
            Message::Metadata {
                incarnation: sent_to,
                batches,
            } => {
                // Batches after what an earlier process of this broker had applied.
                if sent_to != incarnation {
                    return;
                }
                for (offset, records) in batches {
                    if offset <= running.image.offset {
                        continue;
                    }
                    let delta = running.image.apply_committed(&records, offset);
                    running
                        .replicas
                        .apply_delta(&delta, &running.image, config, to);
                }
            }
            Message::IsrOutcomes {
                incarnation: sent_by,
                outcomes,
            } => {
                if sent_by != incarnation {
                    return;
                }
                let Some((_, batch)) = running.in_flight.take() else {
                    return;
                };
                for ((partition, proposal), outcome) in batch.iter().zip(outcomes) {
                    if let Err(code) = outcome {
                        let refused = gregor_metadata::ControllerError {
                            code,
                            message: String::new(),
                        };
                        if not_applied(&refused) {
                            partition.proposal_failed(proposal);
                        }
                    }
                }
            }
            Message::Fetch {
                follower,
                incarnation: follower_incarnation,
                partition,
                leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            } => {
                let data = leader_answer(
                    running,
                    follower,
                    partition,
                    leader_epoch,
                    fetch_offset,
                    last_fetched_epoch,
                    now,
                );
                let answer = Message::FetchAnswer {
                    partition,
                    leader_epoch,
                    incarnation: follower_incarnation,
                    data: Box::new(data),
                };
                self.send(to, follower, answer);
            }
            Message::FetchAnswer {
                partition,
                leader_epoch,
                incarnation: sent_to,
                data,
            } => {
                if sent_to != incarnation {
                    return;
                }
                running.fetching.remove(&partition);
                if let Some(p) = running.replicas.get(TOPIC, partition) {
                    // Errors pause a real fetcher; here the next fetch waits for the next step.
                    let _ = apply(&p, leader_epoch, &data, now);
                }
            }
            Message::Heartbeat { .. } | Message::AlterPartition { .. } => {
                unreachable!("only the controller takes these")
            }
        }
    }

    /// The controller fences brokers whose heartbeats stopped.
    fn control(&mut self) {
        let now = self.now();
        let silent: Vec<i32> = self
            .controller
            .last_heartbeat
            .iter()
            .filter(|(_, &at)| now - at > SESSION_TIMEOUT_MS)
            .map(|(&id, _)| id)
            .collect();
        for node_id in silent {
            self.controller
                .commit(&ControllerRequest::FenceBroker { node_id });
        }
    }

    /// What a broker does when it is due: restart, heartbeat, ISR proposals, fetches.
    fn tick(&mut self, index: usize) {
        let now = self.now();
        let id = self.brokers[index].id;
        if self.brokers[index].running.is_none() {
            if now >= self.brokers[index].down_until {
                self.start(index);
            }
            return;
        }
        let incarnation = self.brokers[index].incarnation;
        let mut out: Vec<(i32, Message)> = Vec::new();
        let running = self.brokers[index].running.as_mut().expect("running");
        if now - running.last_heartbeat >= HEARTBEAT_MS {
            running.last_heartbeat = now;
            let applied = running.image.offset;
            let heartbeat = Message::Heartbeat {
                node: id,
                incarnation,
                applied,
            };
            out.push((CONTROLLER, heartbeat));
        }
        if now - running.last_shrink_check >= LAG_MS / 2 {
            running.last_shrink_check = now;
            // Restarts read these back.
            running.replicas.checkpoint_high_watermarks();
            let mut partitions = running.replicas.all();
            partitions.sort_by_key(|p| p.index);
            for partition in partitions {
                if let Some(proposal) = partition.shrink_proposal(now, LAG_MS) {
                    running.queued.push((partition, proposal));
                }
            }
        }
        // An unanswered AlterPartition is sent again, before anything queued since.
        if let Some((sent_at, batch)) = running.in_flight.take() {
            if now - sent_at < REQUEST_TIMEOUT_MS {
                running.in_flight = Some((sent_at, batch));
            } else {
                let newer = std::mem::replace(&mut running.queued, batch);
                running.queued.extend(newer);
            }
        }
        if running.in_flight.is_none() && !running.queued.is_empty() {
            let batch = std::mem::take(&mut running.queued);
            let proposals = batch.iter().map(|(_, p)| p.clone()).collect();
            running.in_flight = Some((now, batch));
            let message = Message::AlterPartition {
                node: id,
                incarnation,
                proposals,
            };
            out.push((CONTROLLER, message));
        }
        for index in 0..PARTITIONS {
            let Some(p) = running.replicas.get(TOPIC, index) else {
                continue;
            };
            let Some(meta) = running
                .image
                .topics
                .get(TOPIC)
                .and_then(|t| t.partitions.get(&index))
            else {
                continue;
            };
            let leader = meta.leader;
            if leader < 0 || leader == id || p.leader_epoch() != meta.leader_epoch {
                continue;
            }
            if running
                .fetching
                .get(&index)
                .is_some_and(|&since| now - since < REQUEST_TIMEOUT_MS)
            {
                continue;
            }
            running.fetching.insert(index, now);
            let (fetch_offset, last_fetched_epoch) = p.with_log(|log| {
                let last = log.leader_epochs().last().map_or(-1, |&(e, _)| e);
                (log.log_end_offset(), last)
            });
            let fetch = Message::Fetch {
                follower: id,
                incarnation,
                partition: index,
                leader_epoch: meta.leader_epoch,
                fetch_offset,
                last_fetched_epoch,
            };
            out.push((leader, fetch));
        }
        for (to, message) in out {
            self.send(id, to, message);
        }
    }

    /// A client appends one record to the leader it believes in (from a broker's metadata,
    /// which may be stale), refused below `min.insync.replicas` as Produce is.
    fn produce(&mut self) {
        let index = self.rng.range(0, PARTITIONS as i64) as i32;
        let viewer = Sim::broker_index(self.rng.pick(&BROKERS));
        let Some(view) = self.brokers[viewer].running.as_ref() else {
            return;
        };
        let Some(leader) = view
            .image
            .topics
            .get(TOPIC)
            .and_then(|t| t.partitions.get(&index))
            .map(|p| p.leader)
            .filter(|&l| l > 0)
        else {
            return;
        };
        // A client reaches a broker unless the broker is cut off from everyone.
        if BROKERS
            .iter()
            .chain(&[CONTROLLER])
            .filter(|&&other| other != leader)
            .all(|&other| self.cut.contains(&(leader, other)))
        {
            return;
        }
        let broker = &self.brokers[Sim::broker_index(leader)];
        let Some(running) = broker.running.as_ref() else {
            return;
        };
        let Ok(partition) = running.replicas.lookup(TOPIC, index) else {
            return;
        };
        if partition.is_under_min_isr() {
            return;
        }
        let value = self.next_value;
        self.next_value += 1;
        let now = self.now();
        let batch = encode_batch(&[(None, Some(Bytes::from(value.to_string())))], now);
        let Ok(appended) = partition.append(&batch, now) else {
            return;
        };
        self.pending.push(Pending {
            value,
            broker: leader,
            incarnation: broker.incarnation,
            written: Written {
                partition,
                leader_epoch: appended.leader_epoch,
                end: appended.last_offset + 1,
            },
            offset: appended.last_offset,
        });
    }

    /// `acks=all`: acknowledged once replicated in the leadership that appended it; never if
    /// that leadership ended first or its broker died.
    fn settle_pending(&mut self) {
        let incarnations: Vec<u64> = self.brokers.iter().map(|b| b.incarnation).collect();
        let mut acknowledged = Vec::new();
        self.pending.retain(|p| {
            if incarnations[Sim::broker_index(p.broker)] != p.incarnation {
                return false;
            }
            match p.written.replicated() {
                None => true,
                Some(true) => {
                    acknowledged.push((p.value, (p.written.partition.index, p.offset)));
                    false
                }
                Some(false) => false,
            }
        });
        self.acknowledged.extend(acknowledged);
        for running in self.brokers.iter().filter_map(|b| b.running.as_ref()) {
            for p in running.replicas.all() {
                let committed = self.committed.entry(p.index).or_insert(0);
                *committed = (*committed).max(p.high_watermark());
            }
        }
    }

    fn inject_fault(&mut self) {
        let now = self.now();
        // A fault starts about every second and a half (0.2 % of steps of about 3 ms).
        if !self.rng.chance(1) || !self.rng.chance(20) {
            return;
        }
        let index = self.rng.range(0, BROKERS.len() as i64) as usize;
        let id = BROKERS[index];
        match self.rng.range(0, 6) {
            0 if self.brokers[index].running.is_some() => {
                let down_for = self.rng.range(50, 1_500);
                self.faults
                    .push(format!("{now}: kill {id} for {down_for} ms"));
                self.kill(index, down_for);
            }
            1 => {
                self.faults.push(format!("{now}: cut {id} off"));
                for other in BROKERS.iter().chain(&[CONTROLLER]) {
                    self.cut_pair(id, *other);
                }
            }
            2 => {
                self.faults
                    .push(format!("{now}: cut {id} from the controller"));
                self.cut_pair(id, CONTROLLER);
            }
            3 => {
                let other = self.rng.pick(&BROKERS);
                self.faults.push(format!("{now}: cut {id} from {other}"));
                self.cut_pair(id, other);
            }
            4 => {
                self.faults.push(format!("{now}: heal"));
                self.cut.clear();
            }
            _ => {
                let loss = self.rng.range(0, 20) as u64;
                self.faults.push(format!("{now}: lose {loss}% of messages"));
                self.loss_percent = loss;
            }
        }
    }

    fn cut_pair(&mut self, a: i32, b: i32) {
        if a != b {
            self.cut.insert((a, b));
            self.cut.insert((b, a));
        }
    }

    /// Whether every broker runs, has the controller's metadata and every partition has a
    /// leader with every replica in sync and caught up.
    fn settled(&self) -> bool {
        let image = &self.controller.image;
        let Some(topic) = image.topics.get(TOPIC) else {
            return false;
        };
        let caught_up = |b: &Broker| {
            b.running
                .as_ref()
                .is_some_and(|r| r.image.offset == image.offset)
        };
        if !self.brokers.iter().all(caught_up) {
            return false;
        }
        topic.partitions.iter().all(|(&index, meta)| {
            let Some(leader) = self.hosted(meta.leader, index) else {
                return false;
            };
            let end = leader.log_end_offset();
            meta.isr.len() == BROKERS.len()
                && BROKERS.iter().all(|&b| {
                    self.hosted(b, index)
                        .is_some_and(|p| p.log_end_offset() == end && p.high_watermark() == end)
                })
        })
    }

    /// The replica of partition `index` on `broker`, if it runs and hosts it.
    fn hosted(&self, broker: i32, index: i32) -> Option<Arc<Partition>> {
        let running = self
            .brokers
            .get(Sim::broker_index(broker))?
            .running
            .as_ref();
        running.and_then(|r| r.replicas.get(TOPIC, index))
    }

    /// The replica of partition `index` on `broker`, once settled.
    fn partition(&self, broker: i32, index: i32) -> Arc<Partition> {
        self.hosted(broker, index)
            .expect("settled: every broker hosts every partition")
    }

    /// The faults' run: `faulty_ms` of faults, then healed until settled (at most a minute).
    fn run(&mut self, faulty_ms: i64) -> Result<(), String> {
        let end = self.now() + faulty_ms;
        while self.now() < end {
            self.step(true);
        }
        self.cut.clear();
        self.loss_percent = 0;
        self.faults.push(format!("{}: heal all", self.now()));
        let deadline = self.now() + 60_000;
        while !self.settled() {
            if self.now() > deadline {
                return Err("the cluster did not settle within a minute of healing".into());
            }
            self.step(false);
        }
        self.settle_pending();
        self.check()
    }

    /// Every acknowledged record at its offset, once, in the order acknowledged, and every
    /// replica's log the same batch for batch.
    fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let leaders = &self.controller.image.topics[TOPIC].partitions;
        for index in 0..PARTITIONS {
            let leader = self.partition(leaders[&index].leader, index);
            let batches = |p: &Partition| -> Vec<Bytes> {
                p.with_log(|log| {
                    // A slice is of one segment: read on from where each ends.
                    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
                    let mut batches = Vec::new();
                    while offset < end {
                        let slice = log.read_slice(offset, 1 << 30, end).expect("readable");
                        let Some(slice) = slice else { break };
                        let bytes = Bytes::from(slice.read().expect("readable"));
                        let split = split_batches(bytes).expect("whole batches");
                        batches.extend(split.into_iter().map(|(_, b)| b));
                        offset = slice.end_offset;
                    }
                    batches
                })
            };
            let on_leader = batches(&leader);
            let committed = self.committed.get(&index).copied().unwrap_or(0);
            if leader.log_end_offset() < committed {
                problems.push(format!(
                    "partition {index}: the log ends at {}, below the high watermark {committed} a replica showed",
                    leader.log_end_offset()
                ));
            }
            for &broker in &BROKERS {
                let on_broker = batches(&self.partition(broker, index));
                if on_broker != on_leader {
                    let first = on_broker.iter().zip(&on_leader).position(|(a, b)| a != b);
                    problems.push(format!(
                        "partition {index}: broker {broker}'s log differs from the leader's: {} and {} batches, the first different one at {first:?}",
                        on_broker.len(),
                        on_leader.len()
                    ));
                }
            }
            let mut found: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
            for batch in &on_leader {
                let (header, _) = split_batches(batch.clone()).expect("a batch").remove(0);
                for (offset, _, value) in decode_records(&header, batch.clone()).expect("records") {
                    let value = value.expect("a value");
                    let value: u64 = std::str::from_utf8(&value).unwrap().parse().unwrap();
                    found.entry(value).or_default().push(offset);
                }
            }
            for (value, offsets) in &found {
                if offsets.len() > 1 {
                    problems.push(format!(
                        "partition {index}: value {value} at offsets {offsets:?}"
                    ));
                }
            }
            let mut last = -1;
            for (value, &(p, offset)) in &self.acknowledged {
                if p != index {
                    continue;
                }
                match found.get(value) {
                    None => problems.push(format!("partition {index}: acknowledged value {value} (offset {offset}) lost")),
                    Some(at) if at[0] != offset => problems.push(format!(
                        "partition {index}: acknowledged value {value} at offset {offset}, found at {}",
                        at[0]
                    )),
                    Some(_) if offset < last => problems.push(format!(
                        "partition {index}: acknowledged value {value} at offset {offset}, before an earlier one at {last}"
                    )),
                    Some(_) => last = offset,
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// The leader's side of a follower's fetch, as the fetch handler's replica path does it.
fn leader_answer(
    running: &mut Running,
    follower: i32,
    index: i32,
    leader_epoch: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
    now: i64,
) -> PartitionData {
    let refused = |code: i16| {
        PartitionData::default()
            .with_partition_index(index)
            .with_error_code(code)
    };
    let Ok(p) = running.replicas.lookup(TOPIC, index) else {
        return refused(ResponseError::NotLeaderOrFollower.code());
    };
    // -1: the simulation has no retention, so no follower's log start to tell.
    let verdict = p.follower_fetch(
        follower,
        leader_epoch,
        fetch_offset,
        -1,
        last_fetched_epoch,
        now,
    );
    // Read after the verdict, as the handler does.
    let answer = PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(p.high_watermark())
        .with_log_start_offset(p.log_start_offset());
    match verdict {
        FollowerFetch::Refused(code) => refused(code),
        FollowerFetch::OutOfRange => answer.with_error_code(ResponseError::OffsetOutOfRange.code()),
        FollowerFetch::Diverging(epoch, end_offset) => answer.with_diverging_epoch(
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset),
        ),
        FollowerFetch::Accepted(proposal) => {
            // Sent with the broker's next tick, batched as `isr_changes.rs` does.
            if let Some(proposal) = proposal {
                running.queued.push((p.clone(), proposal));
            }
            let read = p.read_for_follower(fetch_offset, FETCH_MAX_BYTES);
            let records = match read.records {
                Ok(slice) => slice.map(|s| Bytes::from(s.read().expect("readable"))),
                Err(e) => return refused(e.error_code()),
            };
            answer
                .with_high_watermark(read.high_watermark)
                .with_log_start_offset(read.log_start)
                .with_records(records)
        }
    }
}

/// Seeds from `GREGOR_SIM_SEED` (one, to replay it) or `GREGOR_SIM_SEEDS` of them from a
/// fixed start (default 100, a few seconds), each with `GREGOR_SIM_MS` of faults (default
/// 10 s simulated). Long runs: `GREGOR_SIM_SEEDS=10000`.
#[test]
fn acknowledged_records_survive_simulated_faults() {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match env("GREGOR_SIM_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env("GREGOR_SIM_SEEDS").unwrap_or(100)).collect(),
    };
    let faulty_ms = env("GREGOR_SIM_MS").unwrap_or(10_000) as i64;
    let mut failed = Vec::new();
    let (mut acknowledged, mut faults) = (0, 0);
    for seed in seeds {
        let root = tempfile::tempdir().unwrap();
        // A panic (a broken invariant inside the broker's code) fails the seed, not the run.
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut sim = Sim::new(seed, root.path());
            let outcome = sim.run(faulty_ms);
            (outcome, sim.acknowledged.len(), sim.faults)
        }));
        let (outcome, acked, seed_faults) =
            run.unwrap_or_else(|_| (Err("panicked".into()), 0, vec![]));
        acknowledged += acked;
        faults += seed_faults.len();
        if let Err(problems) = outcome {
            eprintln!(
                "seed {seed} failed:\n{problems}\nfaults:\n{}",
                seed_faults.join("\n")
            );
            failed.push(seed);
        }
    }
    eprintln!("{acknowledged} records acknowledged, {faults} faults");
    assert!(
        failed.is_empty(),
        "failing seeds (GREGOR_SIM_SEED=n replays one): {failed:?}"
    );
}
