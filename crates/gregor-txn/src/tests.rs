//! Scenario tests of the coordinator: requests and ticks in, responses, records and markers out;
//! and the records' encoding.

use std::collections::BTreeSet;

use crate::errors::*;
use crate::{
    Decision, Markers, ProducerResult, TxnConfig, TxnCoordinator, TxnMetadata, TxnRecord, TxnState,
    TxnVersion,
};

const TIMEOUT: i32 = 60_000;
const FIRST_PID: i64 = 1000;

fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_string(), partition)
}

/// A coordinator, a clock, a producer id allocator, the log of every record appended, and the
/// transaction version of the cluster (for fencing) and of its clients' requests.
struct H {
    c: TxnCoordinator,
    now: i64,
    next_pid: i64,
    log: Vec<TxnRecord>,
    version: TxnVersion,
}

impl H {
    fn new() -> Self {
        H {
            c: TxnCoordinator::new(TxnConfig::default()),
            now: 1_000_000,
            next_pid: FIRST_PID,
            log: Vec::new(),
            version: TxnVersion::V0,
        }
    }

    /// A harness whose cluster and clients speak transaction version 2.
    fn v2() -> Self {
        H {
            version: TxnVersion::V2,
            ..H::new()
        }
    }

    /// The producer id allocator the coordinator is handed.
    fn allocator(next_pid: &mut i64) -> impl FnMut() -> Result<i64, i16> + '_ {
        || {
            *next_pid += 1;
            Ok(*next_pid - 1)
        }
    }

    fn append<R>(&mut self, d: Decision<R>) -> Decision<R> {
        self.log.extend(d.records.iter().cloned());
        d
    }

    fn init_with(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Decision<ProducerResult> {
        let mut allocate = H::allocator(&mut self.next_pid);
        let d = self.c.init_producer_id(
            id,
            timeout_ms,
            expected,
            self.version,
            self.now,
            &mut allocate,
        );
        drop(allocate);
        self.append(d)
    }

    fn init(&mut self, id: &str) -> ProducerResult {
        self.init_with(id, TIMEOUT, None).response
    }

    fn add(
        &mut self,
        id: &str,
        (pid, epoch): (i64, i16),
        parts: &[(String, i32)],
    ) -> Decision<i16> {
        let d = self
            .c
            .add_partitions(id, (pid, epoch), parts, self.version, self.now);
        self.append(d)
    }

    /// EndTxn as the harness's clients send it.
    fn end_txn(
        &mut self,
        id: &str,
        producer: (i64, i16),
        commit: bool,
    ) -> Decision<ProducerResult> {
        let mut allocate = H::allocator(&mut self.next_pid);
        let d = self
            .c
            .end_txn(id, producer, commit, self.version, self.now, &mut allocate);
        drop(allocate);
        self.append(d)
    }

    /// EndTxn of a classic client: an error code alone.
    fn end(&mut self, id: &str, producer: (i64, i16), commit: bool) -> Decision<i16> {
        let d = self.end_txn(id, producer, commit);
        assert_eq!(
            (d.response.producer_id, d.response.producer_epoch),
            (-1, -1),
            "no producer in a version 0 answer"
        );
        Decision {
            records: d.records,
            markers: d.markers,
            response: d.response.error,
        }
    }

    fn markers_written(&mut self, id: &str) -> Vec<TxnRecord> {
        let records = self.c.markers_written(id, self.now);
        self.log.extend(records.iter().cloned());
        records
    }

    fn tick(&mut self) -> Vec<Decision<()>> {
        let decisions = self.c.tick(self.now, self.version);
        for d in &decisions {
            self.log.extend(d.records.iter().cloned());
        }
        decisions
    }

    /// Initialises `id` and opens a transaction on `parts`; returns the producer.
    fn begin(&mut self, id: &str, parts: &[(String, i32)]) -> (i64, i16) {
        let r = self.init(id);
        assert_eq!(r.error, NONE);
        let producer = (r.producer_id, r.producer_epoch);
        assert_eq!(self.add(id, producer, parts).response, NONE);
        producer
    }

    fn state(&self, id: &str) -> TxnState {
        self.c.describe(id).expect("known id").state
    }

    /// Loads a metadata as if replayed from the log.
    fn load(&mut self, id: &str, metadata: TxnMetadata) {
        self.c.replay(TxnRecord {
            transactional_id: id.to_string(),
            metadata: Some(metadata),
        });
    }
}

fn ok(producer_id: i64, producer_epoch: i16) -> ProducerResult {
    ProducerResult {
        error: NONE,
        producer_id,
        producer_epoch,
    }
}

fn init_error(error: i16) -> ProducerResult {
    ProducerResult {
        error,
        producer_id: -1,
        producer_epoch: -1,
    }
}

/// The metadata a record carries (panics on tombstones).
fn meta(record: &TxnRecord) -> &TxnMetadata {
    record.metadata.as_ref().expect("not a tombstone")
}

fn idle_metadata(producer_id: i64, producer_epoch: i16, now: i64) -> TxnMetadata {
    TxnMetadata {
        producer_id,
        producer_epoch,
        last_producer_id: -1,
        last_producer_epoch: -1,
        next_producer_id: -1,
        transaction_version: TxnVersion::V0,
        timeout_ms: TIMEOUT,
        state: TxnState::CompleteCommit,
        partitions: BTreeSet::new(),
        start_ms: -1,
        last_update_ms: now,
    }
}

impl TxnMetadata {
    fn with_state(mut self, state: TxnState) -> Self {
        self.state = state;
        self
    }
}

#[test]
fn commit_flow() {
    let mut h = H::new();
    let t0 = h.now;

    let d = h.init_with("tx", TIMEOUT, None);
    assert_eq!(d.response, ok(FIRST_PID, 0));
    assert_eq!(d.markers, None);
    assert_eq!(d.records.len(), 1);
    assert_eq!(d.records[0].transactional_id, "tx");
    assert_eq!(
        meta(&d.records[0]),
        &idle_metadata(FIRST_PID, 0, t0).with_state(TxnState::Empty)
    );
    let p = (FIRST_PID, 0);

    h.now += 10;
    let d = h.add("tx", p, &[tp("a", 0), tp("b", 1)]);
    assert_eq!(d.response, NONE);
    let m = meta(&d.records[0]);
    assert_eq!(m.state, TxnState::Ongoing);
    assert_eq!(m.start_ms, t0 + 10);
    assert_eq!(m.partitions, BTreeSet::from([tp("a", 0), tp("b", 1)]));

    // Partitions already in the transaction: nothing to persist.
    h.now += 10;
    let d = h.add("tx", p, &[tp("b", 1)]);
    assert_eq!((d.response, d.records.len()), (NONE, 0));

    // A new partition keeps the start time.
    let d = h.add("tx", p, &[tp("a", 0), tp("c", 2)]);
    let m = meta(&d.records[0]);
    assert_eq!(m.start_ms, t0 + 10);
    assert_eq!(m.last_update_ms, t0 + 20);
    assert_eq!(m.partitions.len(), 3);

    let d = h.end("tx", p, true);
    assert_eq!(d.response, NONE);
    assert_eq!(meta(&d.records[0]).state, TxnState::PrepareCommit);
    // Prepared, the transaction keeps its start time (DescribeTransactions shows it).
    assert_eq!(meta(&d.records[0]).start_ms, t0 + 10);
    assert_eq!(
        d.markers,
        Some(Markers {
            transactional_id: "tx".into(),
            producer_id: FIRST_PID,
            producer_epoch: 0,
            commit: true,
            partitions: vec![tp("a", 0), tp("b", 1), tp("c", 2)],
        })
    );

    h.now += 5;
    let records = h.markers_written("tx");
    assert_eq!(records.len(), 1);
    let m = meta(&records[0]);
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    assert_eq!((m.start_ms, m.last_update_ms), (-1, t0 + 25));
    // Already complete: nothing more to do.
    assert!(h.markers_written("tx").is_empty());

    // The next InitProducerId bumps the epoch of the same producer id.
    let d = h.init_with("tx", TIMEOUT, None);
    assert_eq!(d.response, ok(FIRST_PID, 1));
    assert_eq!(meta(&d.records[0]).state, TxnState::Empty);
    assert_eq!(
        meta(&d.records[0]).start_ms,
        -1,
        "no transaction: no start time"
    );
    // The old epoch is fenced.
    assert_eq!(h.add("tx", p, &[tp("a", 0)]).response, PRODUCER_FENCED);
}

/// The ids a restart must not hand out again: every transactional id's current, next (after
/// epoch exhaustion) and last producer id count.
#[test]
fn max_producer_id_covers_current_next_and_last_ids() {
    let mut h = H::v2();
    assert_eq!(h.c.max_producer_id(), None);
    h.init("a");
    h.init("b");
    assert_eq!(h.c.max_producer_id(), Some(FIRST_PID + 1));
    let mut moving = idle_metadata(7, 5, h.now);
    moving.next_producer_id = FIRST_PID + 500;
    h.load("c", moving);
    assert_eq!(h.c.max_producer_id(), Some(FIRST_PID + 500));
    let mut moved = idle_metadata(8, 0, h.now);
    moved.last_producer_id = FIRST_PID + 900;
    h.load("d", moved);
    assert_eq!(h.c.max_producer_id(), Some(FIRST_PID + 900));
}

#[test]
fn abort_flow_then_next_transaction() {
    let mut h = H::new();
    let p = h.begin("tx", &[tp("a", 0)]);
    let d = h.end("tx", p, false);
    assert_eq!(d.response, NONE);
    assert_eq!(meta(&d.records[0]).state, TxnState::PrepareAbort);
    let markers = d.markers.unwrap();
    assert!(!markers.commit);
    assert_eq!((markers.producer_id, markers.producer_epoch), p);
    assert_eq!(markers.partitions, vec![tp("a", 0)]);
    h.markers_written("tx");
    assert_eq!(h.state("tx"), TxnState::CompleteAbort);

    // The same producer starts another transaction: a new start time.
    h.now += 1000;
    let d = h.add("tx", p, &[tp("b", 0)]);
    assert_eq!(d.response, NONE);
    let m = meta(&d.records[0]);
    assert_eq!((m.state, m.start_ms), (TxnState::Ongoing, h.now));
    assert_eq!(m.partitions, BTreeSet::from([tp("b", 0)]));

    let d = h.end("tx", p, true);
    assert!(d.markers.unwrap().commit);
    h.markers_written("tx");
    assert_eq!(h.init("tx"), ok(FIRST_PID, 1));
}

#[test]
fn zombie_is_fenced_by_a_new_instance() {
    let mut h = H::new();
    let old = h.begin("tx", &[tp("a", 0), tp("a", 1)]);

    // A new instance of the producer while the old one's transaction is ongoing.
    let d = h.init_with("tx", TIMEOUT, None);
    assert_eq!(d.response, init_error(CONCURRENT_TRANSACTIONS));
    let m = meta(&d.records[0]);
    assert_eq!(m.state, TxnState::PrepareAbort);
    assert_eq!((m.producer_id, m.producer_epoch), (FIRST_PID, 1));
    assert_eq!((m.last_producer_id, m.last_producer_epoch), (-1, -1));
    let markers = d.markers.unwrap();
    assert!(!markers.commit);
    assert_eq!(
        (markers.producer_id, markers.producer_epoch),
        (FIRST_PID, 1)
    );
    assert_eq!(markers.partitions, vec![tp("a", 0), tp("a", 1)]);

    // While the abort markers are written, the new instance must wait; so must any addition
    // (as in Kafka, before the producer is checked); the zombie's EndTxn is fenced.
    assert_eq!(h.init("tx"), init_error(CONCURRENT_TRANSACTIONS));
    assert_eq!(
        h.add("tx", old, &[tp("a", 2)]).response,
        CONCURRENT_TRANSACTIONS
    );
    assert_eq!(h.end("tx", old, true).response, PRODUCER_FENCED);

    h.markers_written("tx");
    assert_eq!(h.add("tx", old, &[tp("a", 2)]).response, PRODUCER_FENCED);
    assert_eq!(h.state("tx"), TxnState::CompleteAbort);
    // The retry gets a second bump: the fencing epoch is never handed out.
    let new = h.init("tx");
    assert_eq!(new, ok(FIRST_PID, 2));
    assert_eq!(h.add("tx", old, &[tp("a", 2)]).response, PRODUCER_FENCED);
    assert_eq!(h.end("tx", old, false).response, PRODUCER_FENCED);
    assert_eq!(h.c.verify("tx", old, &tp("a", 0)), PRODUCER_FENCED);
    assert_eq!(h.add("tx", (FIRST_PID, 2), &[tp("a", 2)]).response, NONE);
}

#[test]
fn end_txn_retries_and_invalid_states() {
    let mut h = H::new();
    let p = (FIRST_PID, 0);
    assert_eq!(h.init("tx"), ok(p.0, p.1));
    // Nothing to end yet.
    assert_eq!(h.end("tx", p, true).response, INVALID_TXN_STATE);
    assert_eq!(h.end("tx", p, false).response, INVALID_TXN_STATE);

    h.add("tx", p, &[tp("a", 0)]);
    h.end("tx", p, true);
    h.markers_written("tx");
    let before = h.log.len();
    let d = h.end("tx", p, true);
    assert_eq!((d.response, d.records.len(), d.markers), (NONE, 0, None));
    assert_eq!(h.end("tx", p, false).response, INVALID_TXN_STATE);
    assert_eq!(h.log.len(), before);

    h.add("tx", p, &[tp("a", 0)]);
    h.end("tx", p, false);
    h.markers_written("tx");
    assert_eq!(h.end("tx", p, false).response, NONE);
    assert_eq!(h.end("tx", p, true).response, INVALID_TXN_STATE);
}

#[test]
fn requests_from_unknown_or_other_producers() {
    let mut h = H::new();
    let p = h.begin("tx", &[tp("a", 0)]);
    let parts = [tp("a", 1)];

    assert_eq!(
        h.add("nope", p, &parts).response,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(h.end("nope", p, true).response, INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(
        h.add("tx", (p.0 + 1, p.1), &parts).response,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.end("tx", (p.0 + 1, p.1), true).response,
        INVALID_PRODUCER_ID_MAPPING
    );
    // A newer epoch than the coordinator's is as wrong as an older one.
    assert_eq!(
        h.add("tx", (p.0, p.1 + 1), &parts).response,
        PRODUCER_FENCED
    );
    assert_eq!(h.end("tx", (p.0, p.1 + 1), true).response, PRODUCER_FENCED);
    assert_eq!(h.add("", p, &parts).response, INVALID_REQUEST);
    assert_eq!(h.end("", p, true).response, INVALID_REQUEST);

    // None of that changed anything.
    assert_eq!(h.log.len(), 2);
    assert_eq!(h.c.describe("tx").unwrap().partitions, vec![tp("a", 0)]);
    assert!(h.c.describe("nope").is_none());
}

#[test]
fn concurrent_transactions_while_markers_are_written() {
    let mut h = H::new();
    let p = h.begin("tx", &[tp("a", 0)]);
    h.end("tx", p, true);
    let before = h.log.len();

    assert_eq!(
        h.add("tx", p, &[tp("a", 0)]).response,
        CONCURRENT_TRANSACTIONS
    );
    assert_eq!(
        h.add("tx", p, &[tp("b", 0)]).response,
        CONCURRENT_TRANSACTIONS
    );
    assert_eq!(h.end("tx", p, true).response, CONCURRENT_TRANSACTIONS);
    assert_eq!(h.end("tx", p, false).response, CONCURRENT_TRANSACTIONS);
    assert_eq!(h.init("tx"), init_error(CONCURRENT_TRANSACTIONS));
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some(p)).response,
        init_error(CONCURRENT_TRANSACTIONS)
    );
    // Neither a tick (nothing Ongoing, nothing idle) nor the wrong id completes it.
    h.now += TxnConfig::default().id_expiration_ms;
    assert!(h.tick().is_empty());
    assert!(h.markers_written("other").is_empty());
    assert_eq!(h.log.len(), before);

    h.markers_written("tx");
    assert_eq!(h.end("tx", p, true).response, NONE);

    // PrepareAbort the same way.
    h.add("tx", p, &[tp("a", 0)]);
    h.end("tx", p, false);
    assert_eq!(h.end("tx", p, false).response, CONCURRENT_TRANSACTIONS);
    assert_eq!(h.end("tx", p, true).response, CONCURRENT_TRANSACTIONS);
}

#[test]
fn timed_out_transaction_is_aborted_and_its_producer_fenced() {
    let mut h = H::new();
    let p = h.begin("tx", &[tp("a", 0)]);
    let p2 = h.begin("other", &[tp("b", 0)]);
    let start = h.now;

    h.now = start + i64::from(TIMEOUT) - 1;
    assert!(h.tick().is_empty());
    // Keeping the transaction busy does not extend its deadline.
    h.add("tx", p, &[tp("a", 1)]);

    h.now = start + i64::from(TIMEOUT);
    let decisions = h.tick();
    assert_eq!(decisions.len(), 2);
    let d = decisions
        .iter()
        .find(|d| d.records[0].transactional_id == "tx")
        .unwrap();
    let m = meta(&d.records[0]);
    assert_eq!(m.state, TxnState::PrepareAbort);
    assert_eq!((m.producer_id, m.producer_epoch), (p.0, p.1 + 1));
    assert_eq!((m.last_producer_id, m.last_producer_epoch), (-1, -1));
    assert_eq!(
        d.markers,
        Some(Markers {
            transactional_id: "tx".into(),
            producer_id: p.0,
            producer_epoch: p.1 + 1,
            commit: false,
            partitions: vec![tp("a", 0), tp("a", 1)],
        })
    );
    assert_eq!(decisions[0].records[0].transactional_id, "other");
    assert_eq!(
        decisions[0].markers.as_ref().unwrap().producer_epoch,
        p2.1 + 1
    );

    // Already aborting: the next tick leaves it alone.
    assert!(h.tick().is_empty());

    // The timed-out producer's EndTxn (and its retry after the abort) is fenced.
    assert_eq!(h.end("tx", p, true).response, PRODUCER_FENCED);
    h.markers_written("tx");
    assert_eq!(h.end("tx", p, true).response, PRODUCER_FENCED);
    assert_eq!(h.end("tx", p, false).response, PRODUCER_FENCED);
    assert_eq!(h.add("tx", p, &[tp("a", 0)]).response, PRODUCER_FENCED);
    // So is its KIP-360 attempt to recover: the fencing bump is not a retryable bump.
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some(p)).response,
        init_error(PRODUCER_FENCED)
    );
    // A new instance gets the next epoch.
    assert_eq!(h.init("tx"), ok(p.0, p.1 + 2));
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut h = H::new();
    let expiration = TxnConfig::default().id_expiration_ms;
    let p = h.begin("committed", &[tp("a", 0)]);
    h.end("committed", p, true);
    h.markers_written("committed");
    h.init("empty");
    let q = h.begin("pending", &[tp("a", 0)]);
    h.end("pending", q, true); // its markers are never written
    let t0 = h.now;

    h.now = t0 + expiration - 1;
    assert!(h.tick().is_empty());

    h.now = t0 + expiration;
    let decisions = h.tick();
    let tombstones: Vec<_> = decisions
        .iter()
        .map(|d| {
            assert_eq!((d.records.len(), &d.markers), (1, &None));
            d.records[0].clone()
        })
        .collect();
    assert_eq!(
        tombstones,
        vec![
            TxnRecord {
                transactional_id: "committed".into(),
                metadata: None,
            },
            TxnRecord {
                transactional_id: "empty".into(),
                metadata: None,
            },
        ]
    );
    assert!(h.c.describe("committed").is_none());
    assert!(h.c.describe("empty").is_none());
    assert_eq!(h.state("pending"), TxnState::PrepareCommit);
    assert_eq!(
        h.add("committed", p, &[tp("a", 0)]).response,
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        h.c.verify("committed", p, &tp("a", 0)),
        INVALID_PRODUCER_ID_MAPPING
    );

    // The id comes back with a new producer id.
    let r = h.init("committed");
    assert_eq!(r.error, NONE);
    assert_ne!(r.producer_id, p.0);
    assert_eq!(r.producer_epoch, 0);
}

#[test]
fn activity_postpones_expiration() {
    let mut h = H::new();
    let expiration = TxnConfig::default().id_expiration_ms;
    h.init("tx");
    h.now += expiration - 1;
    h.init("tx");
    h.now += expiration - 1;
    assert!(h.tick().is_empty());
    h.now += 1;
    assert_eq!(h.tick().len(), 1);
}

#[test]
fn kip360_bump_retry_and_fencing() {
    let mut h = H::new();
    let pid = h.init("tx").producer_id;

    // The producer asks to bump its own epoch (e.g. after an abortable error).
    let d = h.init_with("tx", TIMEOUT, Some((pid, 0)));
    assert_eq!(d.response, ok(pid, 1));
    let m = meta(&d.records[0]);
    assert_eq!((m.last_producer_id, m.last_producer_epoch), (pid, 0));

    // It missed the answer and retries: same answer, nothing new to persist.
    let d = h.init_with("tx", TIMEOUT, Some((pid, 0)));
    assert_eq!((d.response, d.records.len()), (ok(pid, 1), 0));

    // The current epoch bumps again and moves the retry point along.
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((pid, 1))).response,
        ok(pid, 2)
    );
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((pid, 0))).response,
        init_error(PRODUCER_FENCED)
    );
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((pid, 1))).response,
        ok(pid, 2)
    );

    // Epochs it never had, or another producer id: fenced.
    for expected in [(pid, 7), (pid + 1, 2), (pid - 1, 1)] {
        let d = h.init_with("tx", TIMEOUT, Some(expected));
        assert_eq!(
            (d.response, d.records.len()),
            (init_error(PRODUCER_FENCED), 0)
        );
    }

    // A new instance (no expected producer) fences it for good: no retry point left.
    let d = h.init_with("tx", TIMEOUT, None);
    assert_eq!(d.response, ok(pid, 3));
    let m = meta(&d.records[0]);
    assert_eq!((m.last_producer_id, m.last_producer_epoch), (-1, -1));
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((pid, 1))).response,
        init_error(PRODUCER_FENCED)
    );
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((pid, 2))).response,
        init_error(PRODUCER_FENCED)
    );

    // With a transaction ongoing, another producer id cannot abort it.
    h.add("tx", (pid, 3), &[tp("a", 0)]);
    let d = h.init_with("tx", TIMEOUT, Some((pid + 1, 3)));
    assert_eq!(
        (d.response, d.records.len()),
        (init_error(PRODUCER_FENCED), 0)
    );
    assert_eq!(h.state("tx"), TxnState::Ongoing);

    // A fence after a KIP-360 bump drops the retry point, in the record too.
    let k = h.init("k").producer_id;
    h.init_with("k", TIMEOUT, Some((k, 0)));
    h.add("k", (k, 1), &[tp("a", 0)]);
    let d = h.init_with("k", TIMEOUT, None);
    let m = meta(&d.records[0]);
    assert_eq!(
        (m.producer_epoch, m.last_producer_id, m.last_producer_epoch),
        (2, -1, -1)
    );
    h.markers_written("k");
    for expected in [(k, 0), (k, 1)] {
        let d = h.init_with("k", TIMEOUT, Some(expected));
        assert_eq!(d.response, init_error(PRODUCER_FENCED));
    }

    // An unknown id with an expected producer (recovering from UNKNOWN_PRODUCER_ID) starts anew.
    let d = h.init_with("fresh", TIMEOUT, Some((42, 5)));
    assert_eq!(d.response.producer_epoch, 0);
    assert_eq!(d.response.error, NONE);
}

#[test]
fn epoch_exhaustion_rotates_the_producer_id() {
    let mut h = H::new();
    h.load("tx", idle_metadata(7, i16::MAX - 2, h.now));

    // 32765 -> 32766 still fits; the next bump would hand out 32767, so the id rotates.
    assert_eq!(h.init("tx"), ok(7, i16::MAX - 1));
    let d = h.init_with("tx", TIMEOUT, Some((7, i16::MAX - 1)));
    assert_eq!(d.response, ok(FIRST_PID, 0));
    let m = meta(&d.records[0]);
    assert_eq!(
        (m.last_producer_id, m.last_producer_epoch),
        (7, i16::MAX - 1)
    );

    // A retry of the rotating bump gets the new producer id again.
    let d = h.init_with("tx", TIMEOUT, Some((7, i16::MAX - 1)));
    assert_eq!((d.response, d.records.len()), (ok(FIRST_PID, 0), 0));
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((FIRST_PID, 0))).response,
        ok(FIRST_PID, 1)
    );

    // Without an expected producer the rotation also happens, with no retry point.
    h.load("other", idle_metadata(8, i16::MAX - 1, h.now));
    let d = h.init_with("other", TIMEOUT, None);
    assert_eq!(d.response, ok(FIRST_PID + 1, 0));
    assert_eq!(meta(&d.records[0]).last_producer_id, -1);
}

#[test]
fn fencing_at_the_last_epoch_then_rotation() {
    let mut h = H::new();
    let last = i16::MAX - 1;
    h.load("tx", idle_metadata(7, last, h.now));
    assert_eq!(h.add("tx", (7, last), &[tp("a", 0)]).response, NONE);

    // The fencing bump may use i16::MAX, which is never handed out.
    h.now += i64::from(TIMEOUT);
    let d = h.tick().pop().unwrap();
    assert_eq!(d.markers.unwrap().producer_epoch, i16::MAX);
    h.markers_written("tx");
    assert_eq!(h.init("tx"), ok(FIRST_PID, 0));
}

#[test]
fn invalid_init_requests() {
    let mut h = H::new();
    let max = TxnConfig::default().max_timeout_ms;
    for (id, timeout, error) in [
        ("", TIMEOUT, INVALID_REQUEST),
        ("tx", 0, INVALID_TRANSACTION_TIMEOUT),
        ("tx", -1, INVALID_TRANSACTION_TIMEOUT),
        ("tx", max + 1, INVALID_TRANSACTION_TIMEOUT),
        ("tx", i32::MIN, INVALID_TRANSACTION_TIMEOUT),
    ] {
        let d = h.init_with(id, timeout, None);
        assert_eq!(d, Decision::reply(init_error(error)));
    }
    assert!(h.c.describe("tx").is_none());
    assert_eq!(h.next_pid, FIRST_PID, "no producer id was allocated");

    // The maximum itself is allowed, and a re-init takes the new timeout.
    assert_eq!(h.init_with("tx", max, None).response, ok(FIRST_PID, 0));
    assert_eq!(h.c.describe("tx").unwrap().timeout_ms, max);
    h.init_with("tx", 1, None);
    assert_eq!(h.c.describe("tx").unwrap().timeout_ms, 1);
    // A bad timeout for a known id changes nothing either.
    let d = h.init_with("tx", max + 1, None);
    assert_eq!(d.response, init_error(INVALID_TRANSACTION_TIMEOUT));
    assert_eq!(h.c.describe("tx").unwrap().producer_epoch, 1);

    let mut small = TxnCoordinator::new(TxnConfig {
        max_timeout_ms: 100,
        ..TxnConfig::default()
    });
    let d = small.init_producer_id("tx", 101, None, TxnVersion::V0, 0, &mut || Ok(1));
    assert_eq!(d.response, init_error(INVALID_TRANSACTION_TIMEOUT));
}

#[test]
fn describe_and_list() {
    let mut h = H::new();
    let t0 = h.now;
    let a = h.begin("a", &[tp("t", 1), tp("s", 0)]);
    h.now += 100;
    let b = h.begin("b", &[tp("t", 0)]);
    h.end("b", b, true);
    h.init("c");

    assert_eq!(
        h.c.describe("a"),
        Some(crate::TxnDescription {
            transactional_id: "a".into(),
            state: TxnState::Ongoing,
            producer_id: a.0,
            producer_epoch: a.1,
            timeout_ms: TIMEOUT,
            start_ms: t0,
            partitions: vec![tp("s", 0), tp("t", 1)],
        })
    );
    assert_eq!(TxnState::PrepareCommit.name(), "PrepareCommit");
    assert_eq!(TxnState::CompleteAbort as u8, 5);

    let ids = |list: Vec<crate::TxnDescription>| -> Vec<String> {
        list.into_iter().map(|d| d.transactional_id).collect()
    };
    let now = h.now;
    assert_eq!(ids(h.c.list(&[], &[], -1, now)), ["a", "b", "c"]);
    let states = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(h.c.list(&states(&["Ongoing"]), &[], -1, now)), ["a"]);
    assert_eq!(
        ids(h.c.list(&states(&["Empty", "PrepareCommit"]), &[], -1, now)),
        ["b", "c"]
    );
    assert!(h.c.list(&states(&["Bogus"]), &[], -1, now).is_empty());
    assert_eq!(ids(h.c.list(&[], &[b.0], -1, now)), ["b"]);
    assert!(h.c.list(&states(&["Ongoing"]), &[b.0], -1, now).is_empty());
    // Duration: strictly longer than the filter; ids without a transaction never match.
    assert_eq!(ids(h.c.list(&[], &[], 0, now)), ["a"]);
    assert_eq!(ids(h.c.list(&[], &[], 99, now)), ["a"]);
    assert!(h.c.list(&[], &[], 100, now).is_empty());
    assert_eq!(ids(h.c.list(&[], &[], 0, now + 1)), ["a", "b"]);
}

#[test]
fn records_round_trip() {
    let mut metadata = idle_metadata(5, 3, 77).with_state(TxnState::Ongoing);
    metadata.partitions = BTreeSet::from([tp("t", 0), tp("u\"\\é", 9)]);
    metadata.start_ms = 70;
    metadata.last_producer_id = 5;
    metadata.last_producer_epoch = 2;
    let records = [
        TxnRecord {
            transactional_id: "tx".into(),
            metadata: Some(metadata),
        },
        TxnRecord {
            transactional_id: "tx".into(),
            metadata: None,
        },
        TxnRecord {
            transactional_id: String::new(),
            metadata: Some(idle_metadata(-1, -1, 0).with_state(TxnState::Dead)),
        },
    ];
    for r in &records {
        let key = r.key();
        assert_eq!(&key[..2], &[0, 0]);
        let value = r.value();
        if let Some(v) = &value {
            assert_eq!(&v[..2], &[0, 0]);
        }
        assert_eq!(&TxnRecord::decode(&key, value.as_deref()).unwrap(), r);
    }
    // A value and its tombstone share the compaction key.
    assert_eq!(records[0].key(), records[1].key());
    assert_ne!(records[0].key(), records[2].key());
    assert!(records[1].value().is_none());
    // The JSON is what the brief says it is.
    assert_eq!(&records[0].key()[2..], br#"{"transactional_id":"tx"}"#);
}

#[test]
fn decoding_garbage_is_an_error() {
    use crate::DecodeError;
    let good = TxnRecord {
        transactional_id: "tx".into(),
        metadata: Some(idle_metadata(1, 2, 3)),
    };
    let (key, value) = (good.key(), good.value().unwrap());

    assert_eq!(TxnRecord::decode(&[], None), Err(DecodeError::ShortKey));
    assert_eq!(TxnRecord::decode(&[0], None), Err(DecodeError::ShortKey));
    assert!(matches!(
        TxnRecord::decode(&[0, 0], None),
        Err(DecodeError::Malformed(_))
    ));
    let mut wrong = key.clone();
    wrong[1] = 1;
    assert_eq!(
        TxnRecord::decode(&wrong, None),
        Err(DecodeError::UnknownKeyVersion(1))
    );
    assert_eq!(
        TxnRecord::decode(&key, Some(&[0])),
        Err(DecodeError::ShortValue)
    );
    let mut wrong = value.clone();
    wrong[0] = 0xff;
    assert_eq!(
        TxnRecord::decode(&key, Some(&wrong)),
        Err(DecodeError::UnknownValueVersion(0xff00))
    );
    let bad_state = String::from_utf8(value[2..].to_vec())
        .unwrap()
        .replace("CompleteCommit", "Limbo");
    let mut wrong = vec![0, 0];
    wrong.extend(bad_state.as_bytes());
    assert!(matches!(
        TxnRecord::decode(&key, Some(&wrong)),
        Err(DecodeError::Malformed(_))
    ));
    let overflow = String::from_utf8(value[2..].to_vec())
        .unwrap()
        .replace("\"producer_epoch\":2", "\"producer_epoch\":40000");
    assert!(overflow.contains("40000"));
    let mut wrong = vec![0, 0];
    wrong.extend(overflow.as_bytes());
    assert!(matches!(
        TxnRecord::decode(&key, Some(&wrong)),
        Err(DecodeError::Malformed(_))
    ));

    // Every truncation of a good record fails (and does not panic).
    for cut in 0..key.len() {
        assert!(TxnRecord::decode(&key[..cut], Some(&value)).is_err());
    }
    for cut in 0..value.len() {
        assert!(TxnRecord::decode(&key, Some(&value[..cut])).is_err());
    }

    // Random and mutated bytes never panic (a fixed xorshift sequence keeps it reproducible).
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..5_000 {
        let random: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
        let _ = TxnRecord::decode(&random, Some(&random));
        let _ = TxnRecord::decode(&random, None);
        let mut k = key.clone();
        let mut v = value.clone();
        let kp = (next() as usize) % k.len();
        k[kp] = next() as u8;
        let vp = (next() as usize) % v.len();
        v[vp] = next() as u8;
        v.truncate((next() as usize) % (v.len() + 1));
        let _ = TxnRecord::decode(&k, Some(&v));
        let _ = TxnRecord::decode(&key, Some(&v));
    }
}

/// Replays `log` (through its encoding) into a fresh coordinator.
fn replayed(log: &[TxnRecord]) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(TxnConfig::default());
    for r in log {
        let value = r.value();
        c.replay(TxnRecord::decode(&r.key(), value.as_deref()).unwrap());
    }
    c
}

#[test]
fn replaying_the_log_rebuilds_the_state() {
    let mut h = H::new();
    let expiration = TxnConfig::default().id_expiration_ms;
    // An id that expires, then comes back.
    h.init("expired");
    h.now += expiration;
    assert_eq!(h.tick().len(), 1);
    h.init("expired");
    // Committed, then a second transaction ongoing.
    let p = h.begin("committed", &[tp("a", 0)]);
    h.end("committed", p, true);
    h.markers_written("committed");
    h.add("committed", p, &[tp("b", 1), tp("b", 2)]);
    // Fenced by a new instance, mid-abort.
    h.begin("fenced", &[tp("a", 1)]);
    h.init("fenced");
    // Timed out and aborted.
    h.begin("timed-out", &[tp("c", 0)]);
    h.now += i64::from(TIMEOUT);
    assert!(!h.tick().is_empty());
    h.markers_written("timed-out");
    // KIP-360 bumped.
    let r = h.init("kip360");
    h.init_with("kip360", TIMEOUT, Some((r.producer_id, r.producer_epoch)));

    let c = replayed(&h.log);
    let all = h.c.list(&[], &[], -1, h.now);
    assert_eq!(all.len(), 5);
    assert_eq!(c.list(&[], &[], -1, h.now), all);
    for d in &all {
        assert_eq!(c.describe(&d.transactional_id).as_ref(), Some(d));
    }
    assert_eq!(c.pending_markers(), h.c.pending_markers());

    // The rebuilt coordinator behaves the same, including the KIP-360 retry point.
    let mut h2 = H {
        c,
        now: h.now,
        next_pid: h.next_pid,
        log: Vec::new(),
        version: h.version,
    };
    let retry = Some((r.producer_id, r.producer_epoch));
    assert_eq!(
        h2.init_with("kip360", TIMEOUT, retry).response,
        h.init_with("kip360", TIMEOUT, retry).response
    );
}

#[test]
fn pending_markers_after_replaying_a_prepare() {
    let mut h = H::new();
    let p = h.begin("commit", &[tp("a", 0), tp("b", 0)]);
    h.end("commit", p, true);
    let q = h.begin("abort", &[tp("c", 0)]);
    h.end("abort", q, false);
    let r = h.begin("done", &[tp("d", 0)]);
    h.end("done", r, true);
    h.markers_written("done");
    h.begin("ongoing", &[tp("e", 0)]);

    let c = replayed(&h.log);
    assert_eq!(
        c.pending_markers(),
        vec![
            Markers {
                transactional_id: "abort".into(),
                producer_id: q.0,
                producer_epoch: q.1,
                commit: false,
                partitions: vec![tp("c", 0)],
            },
            Markers {
                transactional_id: "commit".into(),
                producer_id: p.0,
                producer_epoch: p.1,
                commit: true,
                partitions: vec![tp("a", 0), tp("b", 0)],
            },
        ]
    );

    // The runtime resumes the markers, then completes the transactions.
    let mut h2 = H {
        c,
        now: h.now + 1,
        next_pid: h.next_pid,
        log: Vec::new(),
        version: h.version,
    };
    assert_eq!(h2.end("commit", p, true).response, CONCURRENT_TRANSACTIONS);
    let records = h2.markers_written("commit");
    assert_eq!(meta(&records[0]).state, TxnState::CompleteCommit);
    assert_eq!(h2.end("commit", p, true).response, NONE);
    h2.markers_written("abort");
    assert!(h2.c.pending_markers().is_empty());
}

#[test]
fn replaying_a_dead_value_forgets_the_id() {
    let mut c = TxnCoordinator::new(TxnConfig::default());
    c.replay(TxnRecord {
        transactional_id: "tx".into(),
        metadata: Some(idle_metadata(1, 0, 0)),
    });
    assert!(c.describe("tx").is_some());
    c.replay(TxnRecord {
        transactional_id: "tx".into(),
        metadata: Some(idle_metadata(1, 0, 0).with_state(TxnState::Dead)),
    });
    assert!(c.describe("tx").is_none());
}

#[test]
fn produce_verification_needs_the_partition_in_the_ongoing_transaction() {
    let mut h = H::new();
    let (a, b) = (tp("t", 0), tp("t", 1));
    assert_eq!(h.c.verify("tx", (1, 0), &a), INVALID_PRODUCER_ID_MAPPING);
    assert_eq!(h.c.verify("", (1, 0), &a), INVALID_REQUEST);
    let producer = h.begin("tx", std::slice::from_ref(&a));
    let (pid, epoch) = producer;
    assert_eq!(h.c.verify("tx", (pid, epoch), &a), NONE);
    assert_eq!(
        h.c.verify("tx", (pid, epoch), &b),
        TRANSACTION_ABORTABLE,
        "not added"
    );
    assert_eq!(
        h.c.verify("tx", (pid + 1, epoch), &a),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(h.c.verify("tx", (pid, epoch + 1), &a), PRODUCER_FENCED);
    assert_eq!(h.end("tx", producer, true).response, NONE);
    assert_eq!(
        h.c.verify("tx", (pid, epoch), &a),
        CONCURRENT_TRANSACTIONS,
        "preparing"
    );
    h.markers_written("tx");
    assert_eq!(
        h.c.verify("tx", (pid, epoch), &a),
        TRANSACTION_ABORTABLE,
        "a late batch"
    );
}

#[test]
fn a_decision_that_was_not_appended_can_be_undone() {
    let mut h = H::new();
    let producer = h.begin("tx", &[tp("t", 0)]);
    let before = h.c.snapshot("tx");
    assert_eq!(h.end("tx", producer, true).response, NONE);
    assert_eq!(h.state("tx"), TxnState::PrepareCommit);
    h.c.restore("tx", before);
    assert_eq!(h.state("tx"), TxnState::Ongoing);
    assert_eq!(h.c.snapshot("new"), None);
    h.init("new");
    h.c.restore("new", None);
    assert!(h.c.describe("new").is_none());
}

#[test]
fn due_names_what_tick_changes() {
    let mut h = H::new();
    h.begin("slow", &[tp("t", 0)]);
    h.init("idle");
    assert!(h.c.due(h.now).is_empty());
    h.now += i64::from(TIMEOUT);
    assert_eq!(h.c.due(h.now), vec!["slow".to_string()]);
    h.now += TxnConfig::default().id_expiration_ms;
    let due = h.c.due(h.now);
    let changed: Vec<String> = h
        .tick()
        .iter()
        .map(|d| d.records[0].transactional_id.clone())
        .collect();
    assert_eq!(due, changed);
}

// Transaction version 2 (KIP-890 part 2): the epoch is bumped at every transaction end.

#[test]
fn v2_commit_bumps_the_epoch_and_answers_with_it() {
    let mut h = H::v2();
    let (pid, epoch) = h.begin("tx", &[tp("a", 0), tp("b", 1)]);
    let d = h.end_txn("tx", (pid, epoch), true);
    assert_eq!(d.response, ok(pid, epoch + 1));
    let prepared = meta(&d.records[0]);
    assert_eq!(prepared.state, TxnState::PrepareCommit);
    assert_eq!(prepared.producer_epoch, epoch + 1);
    assert_eq!(
        (prepared.last_producer_id, prepared.last_producer_epoch),
        (pid, epoch)
    );
    assert_eq!(prepared.transaction_version, TxnVersion::V2);
    // The markers carry the new epoch, so the log fences any late batch of the old one.
    let markers = d.markers.expect("markers");
    assert_eq!(
        (markers.producer_id, markers.producer_epoch),
        (pid, epoch + 1)
    );
    assert_eq!(markers.partitions, vec![tp("a", 0), tp("b", 1)]);

    // While the markers are written, any EndTxn waits (CONCURRENT_TRANSACTIONS).
    for asked in [epoch, epoch + 1] {
        assert_eq!(
            h.end_txn("tx", (pid, asked), true).response,
            init_error(CONCURRENT_TRANSACTIONS)
        );
    }
    let done = h.markers_written("tx");
    assert_eq!(meta(&done[0]).state, TxnState::CompleteCommit);
    assert_eq!(meta(&done[0]).producer_epoch, epoch + 1);

    // Retried after: the same answer, nothing written.
    let retry = h.end_txn("tx", (pid, epoch), true);
    assert_eq!(retry.response, ok(pid, epoch + 1));
    assert!(retry.records.is_empty() && retry.markers.is_none());

    // The next transaction runs on the new epoch; the old one is fenced.
    assert_eq!(
        h.add("tx", (pid, epoch), &[tp("a", 0)]).response,
        PRODUCER_FENCED
    );
    assert_eq!(h.add("tx", (pid, epoch + 1), &[tp("a", 0)]).response, NONE);
    assert_eq!(
        h.end_txn("tx", (pid, epoch + 1), false).response,
        ok(pid, epoch + 2)
    );
}

/// Kafka's table for EndTxn v5 on an id with no transaction (a retry holds the epoch before
/// the last bump; PF: PRODUCER_FENCED, ITS: INVALID_TXN_STATE, EB: epoch bumped).
#[test]
fn v2_end_without_a_transaction_follows_kafkas_table() {
    #[derive(Debug, PartialEq)]
    enum Outcome {
        Pf,
        Its,
        Eb,
        Same,
    }
    fn outcome(state: TxnState, commit: bool, retry: bool) -> Outcome {
        let mut h = H::v2();
        let (pid, epoch) = (7, 5);
        let metadata = TxnMetadata {
            last_producer_id: pid,
            last_producer_epoch: epoch - 1,
            transaction_version: TxnVersion::V2,
            ..idle_metadata(pid, epoch, h.now).with_state(state)
        };
        h.load("tx", metadata);
        let asked = if retry { epoch - 1 } else { epoch };
        let d = h.end_txn("tx", (pid, asked), commit);
        match d.response.error {
            PRODUCER_FENCED => Outcome::Pf,
            INVALID_TXN_STATE => Outcome::Its,
            NONE if d.response == ok(pid, epoch + 1) => {
                let markers = d.markers.expect("an abort of nothing still completes");
                assert!(markers.partitions.is_empty() && !markers.commit);
                h.markers_written("tx");
                assert_eq!(h.state("tx"), TxnState::CompleteAbort);
                Outcome::Eb
            }
            NONE if d.response == ok(pid, epoch) && d.records.is_empty() => Outcome::Same,
            other => panic!("{state:?} commit={commit} retry={retry}: {other} {d:?}"),
        }
    }
    use Outcome::*;
    // (state, [abort retry, abort current, commit retry, commit current])
    let table = [
        (TxnState::Empty, [Pf, Eb, Pf, Its]),
        (TxnState::CompleteAbort, [Same, Eb, Its, Its]),
        (TxnState::CompleteCommit, [Its, Eb, Same, Its]),
    ];
    for (state, expected) in table {
        let got = [
            outcome(state, false, true),
            outcome(state, false, false),
            outcome(state, true, true),
            outcome(state, true, false),
        ];
        assert_eq!(got, expected, "{state:?}");
    }
}

#[test]
fn v2_end_on_the_last_epoch_moves_the_producer_to_a_new_id() {
    let mut h = H::v2();
    let last = i16::MAX - 1;
    let metadata = TxnMetadata {
        partitions: [tp("a", 0)].into(),
        start_ms: h.now,
        ..idle_metadata(7, last, h.now).with_state(TxnState::Ongoing)
    };
    h.load("tx", metadata);
    let fresh = h.next_pid;
    let d = h.end_txn("tx", (7, last), true);
    assert_eq!(d.response, ok(fresh, 0));
    // The markers close the transaction under the old id with the one epoch kept for it.
    let markers = d.markers.expect("markers");
    assert_eq!((markers.producer_id, markers.producer_epoch), (7, i16::MAX));
    assert_eq!(meta(&d.records[0]).next_producer_id, fresh);
    // A coordinator that starts from the log (a crash before the markers) owes the same
    // markers and completes to the same new id.
    let mut reloaded = TxnCoordinator::new(TxnConfig::default());
    for record in d.records.iter().cloned() {
        reloaded.replay(record);
    }
    assert_eq!(reloaded.pending_markers(), vec![markers.clone()]);
    let completed = reloaded.markers_written("tx", h.now);
    assert_eq!(meta(&completed[0]).current(), (fresh, 0));
    // While the markers are pending, a producer already on the new id is told to wait, not
    // that its id is unknown (which would be fatal to it).
    assert_eq!(
        h.end_txn("tx", (fresh, 0), true).response,
        init_error(CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        h.add("tx", (fresh, 0), &[tp("a", 0)]).response,
        CONCURRENT_TRANSACTIONS
    );
    let done = h.markers_written("tx");
    let completed = meta(&done[0]);
    assert_eq!(
        (completed.producer_id, completed.producer_epoch),
        (fresh, 0)
    );
    assert_eq!(completed.next_producer_id, -1);

    // A retry from the old id gets the new one, by EndTxn or by InitProducerId (KIP-360).
    assert_eq!(h.end_txn("tx", (7, last), true).response, ok(fresh, 0));
    assert_eq!(
        h.init_with("tx", TIMEOUT, Some((7, last))).response,
        ok(fresh, 0)
    );
    assert_eq!(h.add("tx", (fresh, 0), &[tp("a", 0)]).response, NONE);
    // Once the new id's transaction started, the old id is just unknown.
    assert_eq!(
        h.end_txn("tx", (7, last), true).response,
        init_error(INVALID_PRODUCER_ID_MAPPING)
    );
}

#[test]
fn v2_end_that_needs_a_new_id_fails_whole_when_none_can_be_allocated() {
    let mut h = H::v2();
    let metadata = TxnMetadata {
        partitions: [tp("a", 0)].into(),
        ..idle_metadata(7, i16::MAX - 1, h.now).with_state(TxnState::Ongoing)
    };
    h.load("tx", metadata.clone());
    let d = h.c.end_txn(
        "tx",
        (7, i16::MAX - 1),
        true,
        TxnVersion::V2,
        h.now,
        &mut || Err(COORDINATOR_NOT_AVAILABLE),
    );
    assert_eq!(d.response, init_error(COORDINATOR_NOT_AVAILABLE));
    assert!(d.records.is_empty() && d.markers.is_none());
    assert_eq!(h.c.snapshot("tx"), Some(metadata));
}

#[test]
fn v2_timeout_abort_bumps_once_and_the_producer_carries_on() {
    let mut h = H::v2();
    let (pid, epoch) = h.begin("tx", &[tp("a", 0)]);
    h.now += i64::from(TIMEOUT);
    let d = h.tick().pop().expect("aborted");
    let markers = d.markers.expect("markers");
    assert_eq!(markers.producer_epoch, epoch + 1);
    assert!(!markers.commit);
    h.markers_written("tx");
    // The producer's writes fail on the old epoch; its abort is taken as the retry of the
    // bump, and it carries on with the new epoch (under version 0 it would be fenced).
    assert_eq!(
        h.add("tx", (pid, epoch), &[tp("a", 0)]).response,
        PRODUCER_FENCED
    );
    assert_eq!(
        h.end_txn("tx", (pid, epoch), false).response,
        ok(pid, epoch + 1)
    );
    assert_eq!(
        h.end_txn("tx", (pid, epoch), true).response,
        init_error(INVALID_TXN_STATE)
    );
    assert_eq!(h.add("tx", (pid, epoch + 1), &[tp("a", 0)]).response, NONE);
}

#[test]
fn v2_records_of_older_versions_still_load() {
    // A value written before `next_producer_id` and `transaction_version` existed.
    let json = br#"{"producer_id":5,"producer_epoch":2,"last_producer_id":-1,"last_producer_epoch":-1,"timeout_ms":60000,"state":"Ongoing","partitions":[["a",0]],"start_ms":1,"last_update_ms":1}"#;
    let key = TxnRecord {
        transactional_id: "tx".into(),
        metadata: None,
    }
    .key();
    let value = [&[0u8, 0][..], json].concat();
    let record = TxnRecord::decode(&key, Some(&value)).unwrap();
    let metadata = record.metadata.unwrap();
    assert_eq!(metadata.next_producer_id, -1);
    assert_eq!(metadata.transaction_version, TxnVersion::V0);
}

/// Transactional ids whose `__transaction_state` partition another broker leads: every
/// transactional API answers NOT_COORDINATOR and writes nothing; an id that stops being served
/// here is forgotten (its new coordinator replays it from the log).
#[test]
fn ids_served_elsewhere_get_not_coordinator() {
    let mut h = H::new();
    let mine = h.begin("mine", &[tp("t", 0)]);
    let theirs = h.begin("theirs", &[tp("t", 1)]);
    let written = h.log.len();
    h.c.set_coordinated(|id| id != "theirs");
    assert_eq!(h.c.unload(|id| id == "theirs"), 1, "theirs forgotten");
    assert!(h.c.describe("theirs").is_none());
    assert!(h.c.describe("mine").is_some());
    assert!(!h.c.coordinates("theirs") && h.c.coordinates("mine"));

    assert_eq!(h.init("theirs").error, NOT_COORDINATOR);
    assert_eq!(
        h.add("theirs", theirs, &[tp("t", 2)]).response,
        NOT_COORDINATOR
    );
    let ended = h.end("theirs", theirs, true);
    assert_eq!(ended.response, NOT_COORDINATOR);
    assert!(ended.markers.is_none());
    assert_eq!(h.c.verify("theirs", theirs, &tp("t", 1)), NOT_COORDINATOR);
    assert_eq!(
        h.log.len(),
        written,
        "nothing written for ids served elsewhere"
    );

    assert_eq!(h.c.verify("mine", mine, &tp("t", 0)), NONE);
    assert_eq!(h.end("mine", mine, true).response, NONE);
}
