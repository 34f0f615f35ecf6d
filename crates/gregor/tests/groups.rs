//! Consumer groups (Kafka's classic protocol) with librdkafka's high-level consumer: assignment
//! across members, hand-over on a clean leave and on a crashed member's session expiry, committed
//! offsets that survive a broker crash, and a group that resumes after its committed offsets.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{send_ok, Gregor, Rec, DEADLINE};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// Broker settings that keep group tests fast: no initial rebalance delay, and short sessions
/// allowed.
const FAST_GROUPS: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
    "offsets.topic.num.partitions=5",
];

const SESSION_MS: u64 = 3000;

fn group_name(prefix: &str) -> String {
    common::topic_name(prefix)
}

/// A subscribed member of `group` (auto commit of the offsets it stores, every 100 ms).
fn member(g: &Gregor, group: &str, strategy: &str) -> BaseConsumer {
    let session = SESSION_MS.to_string();
    g.consumer(&[
        ("group.id", group),
        ("client.id", "gregor-it-member"),
        ("session.timeout.ms", &session),
        ("heartbeat.interval.ms", "300"),
        ("partition.assignment.strategy", strategy),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "100"),
        ("enable.auto.offset.store", "false"),
    ])
}

fn assigned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// One processed record: which consumer, in which phase of the test.
#[derive(Clone, Copy, Debug)]
struct Seen {
    phase: u32,
    partition: i32,
    offset: i64,
}

/// Polls `c` for up to `budget`, "processing" (recording, then storing the offset of) every
/// record it returns.
fn pump(c: &BaseConsumer, out: &mut Vec<Seen>, phase: u32, budget: Duration) {
    let end = Instant::now() + budget;
    loop {
        match c.poll(Duration::from_millis(20)) {
            Some(Ok(m)) => {
                out.push(Seen {
                    phase,
                    partition: m.partition(),
                    offset: m.offset(),
                });
                c.store_offset_from_message(&m)
                    .expect("store offset of a record just polled");
            }
            Some(Err(e)) => eprintln!("consumer error (ignored): {e}"),
            None => {}
        }
        if Instant::now() >= end {
            return;
        }
    }
}

/// A crash-able group member: `kcat -G` (librdkafka's balanced consumer with auto commit off; it
/// still commits what it consumed when an eager rebalance revokes its partitions).
/// Its stderr rebalance lines tell which partitions it holds; stdout lines are "partition offset".
struct KcatMember {
    child: Child,
    owned: Arc<Mutex<BTreeSet<i32>>>,
    consumed: Arc<Mutex<BTreeSet<(i32, i64)>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl KcatMember {
    fn spawn(g: &Gregor, group: &str, topic: &str, strategy: &str) -> KcatMember {
        let kcat = ["kcat", "kafkacat"]
            .into_iter()
            .find(|b| {
                Command::new(b)
                    .arg("-V")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok()
            })
            .expect("kcat is needed for the crashed-member test (scripts/test installs it)");
        let session = SESSION_MS.to_string();
        let mut child = Command::new(kcat)
            .args(["-b", &g.bootstrap(), "-G", group])
            .args(["-X", "broker.address.family=v4"])
            .args(["-X", &format!("session.timeout.ms={session}")])
            .args(["-X", "heartbeat.interval.ms=300"])
            .args(["-X", &format!("partition.assignment.strategy={strategy}")])
            .args(["-X", "enable.auto.commit=false"])
            .args(["-X", "auto.offset.reset=earliest"])
            .args(["-X", "client.id=gregor-it-kcat"])
            .args(["-f", "%p %o\n", "-u", topic])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kcat");
        let owned = Arc::new(Mutex::new(BTreeSet::new()));
        let consumed = Arc::new(Mutex::new(BTreeSet::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let out = child.stdout.take().unwrap();
            let consumed = consumed.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut it = line.split_whitespace();
                    if let (Some(p), Some(o)) = (it.next(), it.next()) {
                        if let (Ok(p), Ok(o)) = (p.parse::<i32>(), o.parse::<i64>()) {
                            consumed.lock().unwrap().insert((p, o));
                        }
                    }
                }
            });
        }
        {
            let err = child.stderr.take().unwrap();
            let owned = owned.clone();
            let log = stderr.clone();
            let topic = topic.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    // Eager: "% Group g rebalanced (memberid m): assigned: t [0], t [3]" (or
                    // "revoked: ..."); cooperative: "% Group g rebalanced: incremental assignment
                    // of 2 partition(s) (memberid m, COOPERATIVE rebalance protocol): t [0], t [3]"
                    // (or "incremental revoke").
                    let needle = format!("{topic} [");
                    let parts: Vec<i32> = line
                        .match_indices(&needle)
                        .filter_map(|(i, _)| {
                            let rest = &line[i + needle.len()..];
                            rest[..rest.find(']')?].parse().ok()
                        })
                        .collect();
                    if line.contains("assigned:") || line.contains("incremental assignment") {
                        owned.lock().unwrap().extend(parts);
                    } else if line.contains("revoked:") || line.contains("incremental revoke") {
                        let mut o = owned.lock().unwrap();
                        for p in parts {
                            o.remove(&p);
                        }
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        KcatMember {
            child,
            owned,
            consumed,
            stderr,
        }
    }

    fn owned(&self) -> BTreeSet<i32> {
        self.owned.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL kcat");
        self.child.wait().unwrap();
    }
}

impl Drop for KcatMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses a ConsumerProtocol assignment (version, [topic, [partition]], user data) into the
/// partitions it gives of `topic`.
fn decode_assignment(bytes: &[u8], topic: &str) -> Vec<i32> {
    let mut pos = 2usize; // version
    let i16_at = |p: usize| i16::from_be_bytes(bytes[p..p + 2].try_into().unwrap());
    let i32_at = |p: usize| i32::from_be_bytes(bytes[p..p + 4].try_into().unwrap());
    let mut out = vec![];
    let topics = i32_at(pos);
    pos += 4;
    for _ in 0..topics {
        let len = i16_at(pos) as usize;
        let name = std::str::from_utf8(&bytes[pos + 2..pos + 2 + len]).unwrap();
        pos += 2 + len;
        let n = i32_at(pos);
        pos += 4;
        for _ in 0..n {
            if name == topic {
                out.push(i32_at(pos));
            }
            pos += 4;
        }
    }
    out
}

/// Synchronously commits the stored offsets. "No offset stored" means the auto-commit already
/// committed every stored offset, which the callers check through OffsetFetch anyway.
fn commit_sync(c: &BaseConsumer) {
    match c.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => {}
        Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        )) => {}
        Err(e) => panic!("synchronous commit: {e}"),
    }
}

fn watermarks(c: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    (0..partitions)
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (p, high)
        })
        .collect()
}

fn committed_of(c: &BaseConsumer, topic: &str, partitions: i32) -> BTreeMap<i32, Offset> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let res = c
        .committed_offsets(tpl, Duration::from_secs(20))
        .expect("committed_offsets (OffsetFetch)");
    res.elements()
        .iter()
        .map(|e| {
            assert!(
                e.error().is_ok(),
                "partition {}: {:?}",
                e.partition(),
                e.error()
            );
            (e.partition(), e.offset())
        })
        .collect()
}

fn produce_round(g: &Gregor, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let producer = g.producer(&[]);
    let recs: Vec<Rec> = (0..partitions as usize * per_partition)
        .map(|i| Rec {
            partition: Some((i % partitions as usize) as i32),
            value: Some(format!("{tag}-{i}").into_bytes()),
            ..Rec::default()
        })
        .collect();
    send_ok(&producer, topic, &recs);
}

/// Three members (two rdkafka consumers A and B, one kcat K) share a 6-partition topic two
/// partitions each. B leaves cleanly (its close commits exactly what it processed), K is SIGKILLed
/// with uncommitted progress (A gets its partitions once K's session expires and resumes exactly
/// at the group's committed offsets). Records are produced before, during and after; in the end
/// every record was processed by some member and the committed offsets equal the log end offsets.
fn three_members_leave_and_crash(strategy: &str) {
    const PARTS: i32 = 6;
    let g = Gregor::start(FAST_GROUPS);
    let topic = common::topic_name("grp3");
    let group = group_name("g3");
    g.create_topic(&topic, PARTS);
    produce_round(&g, &topic, PARTS, 50, "before");

    let mut kcat = KcatMember::spawn(&g, &group, &topic, strategy);
    let a = member(&g, &group, strategy);
    let b = member(&g, &group, strategy);
    a.subscribe(&[&topic]).unwrap();
    b.subscribe(&[&topic]).unwrap();
    let (mut seen_a, mut seen_b) = (vec![], vec![]);

    // Phase 0: until the three members hold two partitions each.
    let deadline = Instant::now() + DEADLINE;
    loop {
        pump(&a, &mut seen_a, 0, Duration::from_millis(50));
        pump(&b, &mut seen_b, 0, Duration::from_millis(50));
        let (pa, pb, pk) = (assigned(&a), assigned(&b), kcat.owned());
        let all: BTreeSet<i32> = pa.iter().chain(&pb).chain(&pk).copied().collect();
        if pa.len() == 2 && pb.len() == 2 && pk.len() == 2 && all.len() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{strategy}] assignment never became 2/2/2: A {pa:?} B {pb:?} kcat {pk:?}\nkcat stderr:\n{}",
            kcat.stderr()
        );
    }
    // The broker's view (DescribeGroups) agrees: Stable, three members, two partitions each.
    let deadline = Instant::now() + DEADLINE;
    loop {
        pump(&a, &mut seen_a, 0, Duration::from_millis(50));
        pump(&b, &mut seen_b, 0, Duration::from_millis(50));
        let list = a
            .fetch_group_list(Some(&group), Duration::from_secs(10))
            .expect("DescribeGroups");
        let info = list.groups().iter().find(|i| i.name() == group);
        let summary = info.map(|i| {
            (
                i.state().to_string(),
                i.protocol_type().to_string(),
                i.protocol().to_string(),
                i.members()
                    .iter()
                    .map(|m| {
                        (
                            m.client_id().to_string(),
                            decode_assignment(
                                m.assignment().unwrap_or(&[0, 0, 0, 0, 0, 0]),
                                &topic,
                            ),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        });
        if let Some((state, ptype, proto, members)) = &summary {
            if state == "Stable" && members.len() == 3 && members.iter().all(|(_, p)| p.len() == 2)
            {
                assert_eq!(ptype, "consumer");
                assert_eq!(proto, strategy, "protocol chosen for the group");
                let mut clients: Vec<_> = members.iter().map(|(c, _)| c.as_str()).collect();
                clients.sort();
                assert_eq!(
                    clients,
                    ["gregor-it-kcat", "gregor-it-member", "gregor-it-member"]
                );
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "[{strategy}] DescribeGroups never showed a Stable group of 3 x 2 partitions: {summary:?}"
        );
    }

    // Phase 1: produce while the group is stable; wait until every member caught up (kcat read
    // all its records but committed none).
    produce_round(&g, &topic, PARTS, 50, "during");
    let probe = g.consumer(&[("group.id", &group)]);
    let high = watermarks(&probe, &topic, PARTS);
    let deadline = Instant::now() + DEADLINE;
    loop {
        pump(&a, &mut seen_a, 1, Duration::from_millis(50));
        pump(&b, &mut seen_b, 1, Duration::from_millis(50));
        let caught_up = |seen: &[Seen], parts: &BTreeSet<i32>| {
            parts.iter().all(|p| {
                seen.iter()
                    .any(|s| s.partition == *p && s.offset == high[p] - 1)
            })
        };
        let k = kcat.consumed.lock().unwrap().clone();
        let k_ok = kcat.owned().iter().all(|p| k.contains(&(*p, high[p] - 1)));
        if caught_up(&seen_a, &assigned(&a)) && caught_up(&seen_b, &assigned(&b)) && k_ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{strategy}] members never caught up to {high:?}; kcat holds {:?}",
            kcat.owned()
        );
    }

    // Phase 2: B leaves cleanly (close commits its stored offsets, then LeaveGroup).
    let b_parts = assigned(&b);
    let b_last: BTreeMap<i32, i64> = b_parts
        .iter()
        .map(|p| {
            let last = seen_b
                .iter()
                .filter(|s| s.partition == *p)
                .map(|s| s.offset)
                .max()
                .unwrap_or(-1);
            (*p, last)
        })
        .collect();
    drop(b);
    let committed = committed_of(&probe, &topic, PARTS);
    for (p, last) in &b_last {
        assert_eq!(
            committed[p],
            Offset::Offset(last + 1),
            "[{strategy}] partition {p}: B processed up to {last}, then closed (commit + LeaveGroup)"
        );
    }
    produce_round(&g, &topic, PARTS, 20, "after-leave");
    // Someone takes B's partitions: A (seen via assignment) or kcat.
    let deadline = Instant::now() + DEADLINE;
    loop {
        pump(&a, &mut seen_a, 2, Duration::from_millis(50));
        let held: BTreeSet<i32> = assigned(&a).union(&kcat.owned()).copied().collect();
        if held.len() == 6 && assigned(&a).len() + kcat.owned().len() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{strategy}] B's partitions {b_parts:?} never re-assigned after its LeaveGroup: A {:?} kcat {:?}",
            assigned(&a),
            kcat.owned()
        );
    }

    // Phase 3: SIGKILL kcat; its partitions must reach A once its session expires.
    let k_parts = kcat.owned();
    let committed_at_kill = committed_of(&probe, &topic, PARTS);
    let killed_at = Instant::now();
    kcat.sigkill();
    produce_round(&g, &topic, PARTS, 10, "after-crash");
    loop {
        pump(&a, &mut seen_a, 3, Duration::from_millis(50));
        if assigned(&a).len() == 6 {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_millis(SESSION_MS) + Duration::from_secs(15),
            "[{strategy}] the crashed member's partitions did not move to A within the session \
             timeout ({SESSION_MS} ms) + 15 s: A holds {:?}",
            assigned(&a)
        );
    }
    let moved_after = killed_at.elapsed();
    // Phase 4: A processes everything that is left.
    let high = watermarks(&probe, &topic, PARTS);
    let deadline = Instant::now() + DEADLINE;
    loop {
        pump(&a, &mut seen_a, 4, Duration::from_millis(100));
        let done = seen_a
            .iter()
            .chain(&seen_b)
            .filter(|s| s.offset == high[&s.partition] - 1)
            .map(|s| s.partition)
            .collect::<BTreeSet<_>>();
        if done.len() == PARTS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{strategy}] A never reached the log end {high:?}"
        );
    }
    commit_sync(&a);

    // Every record processed by the group (at least once).
    let mut got: HashMap<i32, BTreeSet<i64>> = HashMap::new();
    for s in seen_a.iter().chain(&seen_b) {
        got.entry(s.partition).or_default().insert(s.offset);
    }
    for (p, o) in kcat.consumed.lock().unwrap().iter() {
        got.entry(*p).or_default().insert(*o);
    }
    for p in 0..PARTS {
        let want: BTreeSet<i64> = (0..high[&p]).collect();
        let have = got.remove(&p).unwrap_or_default();
        let missing: Vec<_> = want.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "[{strategy}] partition {p}: records never processed: {missing:?}"
        );
    }
    // A took over the crashed member's partitions exactly at the group's committed offsets.
    for p in &k_parts {
        let first = seen_a
            .iter()
            .filter(|s| s.phase >= 3 && s.partition == *p)
            .map(|s| s.offset)
            .min();
        let want = match committed_at_kill[p] {
            Offset::Offset(o) => o,
            _ => 0,
        };
        assert_eq!(
            first,
            Some(want),
            "[{strategy}] partition {p} of the crashed member: committed {:?} when it died, A resumed at {first:?}",
            committed_at_kill[p]
        );
    }
    // The group's committed offsets are the log end offsets, as seen by the member and by an
    // outsider's OffsetFetch.
    let expected: BTreeMap<i32, Offset> =
        high.iter().map(|(p, h)| (*p, Offset::Offset(*h))).collect();
    let committed_a: BTreeMap<i32, Offset> = a
        .committed(Duration::from_secs(20))
        .expect("committed")
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(committed_a, expected, "[{strategy}] A's committed()");
    assert_eq!(
        committed_of(&probe, &topic, PARTS),
        expected,
        "[{strategy}] OffsetFetch"
    );
    eprintln!("[{strategy}] crashed member's partitions moved after {moved_after:?}");
}

#[test]
fn three_members_range() {
    three_members_leave_and_crash("range");
}

#[test]
fn three_members_cooperative_sticky() {
    three_members_leave_and_crash("cooperative-sticky");
}

/// Subscribes a fresh member and processes records until `want` arrived (then a short grace
/// period for extras); returns them as (partition, offset) in arrival order.
fn consume_as_group(g: &Gregor, group: &str, topic: &str, want: usize) -> Vec<(i32, i64, Vec<u8>)> {
    let c = member(g, group, "range");
    c.subscribe(&[topic]).unwrap();
    let mut out = vec![];
    let deadline = Instant::now() + DEADLINE;
    while out.len() < want {
        assert!(
            Instant::now() < deadline,
            "group {group} consumed only {} of {want}: {out:?}",
            out.len()
        );
        if let Some(r) = c.poll(Duration::from_millis(100)) {
            let m = r.expect("consumer error");
            out.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ));
            c.store_offset_from_message(&m).unwrap();
        }
    }
    let grace = Instant::now() + Duration::from_millis(500);
    while Instant::now() < grace {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            panic!(
                "group {group}: unexpected extra record {}/{}",
                m.partition(),
                m.offset()
            );
        }
    }
    commit_sync(&c);
    out
}

/// Offsets committed synchronously survive a SIGKILL of the broker; after the restart the group
/// sees the same committed offsets (and metadata) and resumes exactly after them.
#[test]
fn committed_offsets_survive_broker_crash() {
    let mut g = Gregor::start(FAST_GROUPS);
    let topic = common::topic_name("grpcrash");
    let group = group_name("gcrash");
    g.create_topic(&topic, 3);
    produce_round(&g, &topic, 3, 10, "r");

    let c = member(&g, &group, "range");
    c.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while assigned(&c).len() != 3 {
        c.poll(Duration::from_millis(100));
        assert!(
            Instant::now() < deadline,
            "never assigned 3 partitions: {:?}",
            assigned(&c)
        );
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset(&topic, 2, Offset::Offset(10))
        .unwrap();
    tpl.add_partition(&topic, 1).set_metadata("meta-p1");
    tpl.set_partition_offset(&topic, 1, Offset::Offset(7))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync)
        .expect("synchronous commit");
    let expected: BTreeMap<i32, Offset> = [
        (0, Offset::Offset(4)),
        (1, Offset::Offset(7)),
        (2, Offset::Offset(10)),
    ]
    .into();
    let before: BTreeMap<i32, Offset> = c
        .committed(Duration::from_secs(20))
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(before, expected, "committed() before the crash");
    // Close without committing anything else.
    c.unsubscribe();
    drop(c);

    g.kill();
    g.restart();

    let probe = g.consumer(&[("group.id", &group)]);
    assert_eq!(
        committed_of(&probe, &topic, 3),
        expected,
        "committed offsets after SIGKILL + restart"
    );
    let mut one = TopicPartitionList::new();
    one.add_partition(&topic, 1);
    let res = probe
        .committed_offsets(one, Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        res.find_partition(&topic, 1).unwrap().metadata(),
        "meta-p1",
        "commit metadata after SIGKILL + restart"
    );
    let got = consume_as_group(&g, &group, &topic, 6 + 3);
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in &got {
        firsts.entry(*p).or_insert(*o);
    }
    assert_eq!(
        firsts,
        [(0, 4), (1, 7)].into(),
        "the restarted group must start exactly at its committed offsets: {got:?}"
    );
    let mut offs: Vec<(i32, i64)> = got.iter().map(|(p, o, _)| (*p, *o)).collect();
    offs.sort();
    let want: Vec<(i32, i64)> = (4..10)
        .map(|o| (0, o))
        .chain((7..10).map(|o| (1, o)))
        .collect();
    assert_eq!(offs, want);
}

/// A group whose member closed resumes exactly after its committed offsets: a new member reads
/// only the records produced since.
#[test]
fn restarted_group_resumes_after_committed_offsets() {
    let g = Gregor::start(FAST_GROUPS);
    let topic = common::topic_name("grpresume");
    let group = group_name("gresume");
    g.create_topic(&topic, 2);
    produce_round(&g, &topic, 2, 10, "old");
    let first = consume_as_group(&g, &group, &topic, 20);
    assert!(first.iter().all(|(_, _, v)| v.starts_with(b"old-")));

    produce_round(&g, &topic, 2, 7, "new");
    let second = consume_as_group(&g, &group, &topic, 14);
    let mut values: Vec<String> = second
        .iter()
        .map(|(_, _, v)| String::from_utf8(v.clone()).unwrap())
        .collect();
    values.sort();
    let mut want: Vec<String> = (0..14).map(|i| format!("new-{i}")).collect();
    want.sort();
    assert_eq!(
        values, want,
        "the second member must read exactly the new records"
    );
    let mut offs: Vec<(i32, i64)> = second.iter().map(|(p, o, _)| (*p, *o)).collect();
    offs.sort();
    let want: Vec<(i32, i64)> = (0..2).flat_map(|p| (10..17).map(move |o| (p, o))).collect();
    assert_eq!(offs, want);

    let probe = g.consumer(&[("group.id", &group)]);
    assert_eq!(
        committed_of(&probe, &topic, 2),
        [(0, Offset::Offset(17)), (1, Offset::Offset(17))].into()
    );
}
