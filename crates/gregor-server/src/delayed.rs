//! Delayed operations (Kafka's purgatory): a request that cannot complete yet — a fetch below
//! `min.bytes`, an `acks=all` produce or a coordinator's write waiting for the high watermark —
//! waits until one of its partitions changes or its deadline passes. No polling: appends,
//! followers' fetches and leadership changes wake the waiters.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::partitions::Partition;

/// How long a coordinator's write (group records, transaction state, markers) may take to be
/// replicated before its request fails and is retried (Kafka's `offsets.commit.timeout.ms`).
pub const COORDINATOR_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Records a leader wrote, in `leader_epoch`, ending before `end`: acknowledged only once on
/// every in-sync replica, which only that leadership can say.
#[derive(Clone)]
pub struct Written {
    pub partition: Arc<Partition>,
    pub leader_epoch: i32,
    pub end: i64,
}

impl Written {
    /// Everything in `partition`'s log, as loaded by a coordinator leading it in
    /// `leader_epoch`: a new leader's log may end past its high watermark.
    pub fn log_end(partition: Arc<Partition>, leader_epoch: i32) -> Written {
        let end = partition.log_end_offset();
        Written {
            partition,
            leader_epoch,
            end,
        }
    }

    /// `Some(true)`: replicated (the high watermark passed them in the leadership that wrote
    /// them); `Some(false)`: that leadership ended first, and they may be lost; `None`: not yet.
    /// The high watermark is read first: once the leadership ends, a follower's high
    /// watermark says nothing of these records.
    pub fn replicated(&self) -> Option<bool> {
        let high_watermark = self.partition.high_watermark();
        if !self.partition.leads_in(self.leader_epoch) {
            Some(false)
        } else {
            (high_watermark >= self.end).then_some(true)
        }
    }
}

/// A coordinator's writes not known to be replicated yet. An answer waits for all of them,
/// not only for its own decision's: the state it was decided on includes them, and a decision
/// that writes nothing (a retried request) or a read must not be answered before they are
/// (Kafka's coordinators wait for the last written offset, and read at the last committed
/// one). A write whose leadership ended stays until the coordinator forgets its partition's
/// state: until then every answer fails, since memory holds what the log may have lost.
#[derive(Default)]
pub struct Unreplicated(parking_lot::Mutex<Vec<Written>>);

impl Unreplicated {
    /// Adds `written`; returns every write not replicated (pending or lost).
    pub fn add(&self, written: Vec<Written>) -> Vec<Written> {
        let mut pending = self.0.lock();
        pending.extend(written);
        pending.retain(|w| w.replicated() != Some(true));
        pending.clone()
    }

    /// Every write not replicated.
    pub fn pending(&self) -> Vec<Written> {
        self.add(Vec::new())
    }

    /// Keeps only the writes to partitions the coordinator serves, in the leader epoch it
    /// serves them in (`led`: partition index → leader epoch): the state of the others was
    /// dropped (and is loaded from the log again when they are led again).
    pub fn retain_led(&self, led: &BTreeMap<i32, i32>) {
        self.0
            .lock()
            .retain(|w| led.get(&w.partition.index) == Some(&w.leader_epoch));
    }
}

/// `value`, read from a coordinator's memory while `pending` were not replicated, once they
/// are: a read never shows a decision a failover could take back. `None` if they cannot be
/// in time.
pub async fn once_replicated<T>(value: T, pending: Vec<Written>) -> Option<T> {
    if pending.is_empty() {
        return Some(value);
    }
    let deadline = Instant::now() + COORDINATOR_WRITE_TIMEOUT;
    replicated(&pending, deadline).await.then_some(value)
}

/// Waits until all of `written` are replicated or one cannot be, until `deadline`: whether
/// all are.
pub async fn replicated(written: &[Written], deadline: Instant) -> bool {
    let partitions: Vec<Arc<Partition>> = written.iter().map(|w| w.partition.clone()).collect();
    let settled = || written.iter().all(|w| w.replicated().is_some());
    wait_until(&partitions, deadline, settled).await;
    written.iter().all(|w| w.replicated() == Some(true))
}

/// Waits until `ready()` holds, re-checking whenever one of `partitions` changes. Returns whether
/// it held before `deadline`.
pub async fn wait_until(
    partitions: &[Arc<Partition>],
    deadline: Instant,
    mut ready: impl FnMut() -> bool,
) -> bool {
    let waiter = Arc::new(Notify::new());
    let outcome = loop {
        for p in partitions {
            p.watch(&waiter);
        }
        if ready() {
            break true;
        }
        if tokio::time::timeout_at(deadline, waiter.notified())
            .await
            .is_err()
        {
            break ready();
        }
    };
    for p in partitions {
        p.unwatch(&waiter);
    }
    outcome
}
