//! Delayed operations (Kafka's purgatory): a request that cannot complete yet — a fetch below
//! `min.bytes`, an `acks=all` produce waiting for the high watermark — waits until one of its
//! partitions changes or its deadline passes. No polling: appends wake the waiters.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::partitions::Partition;

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
