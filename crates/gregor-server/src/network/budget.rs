//! The memory all connections may hold in requests being read or handled (Kafka's
//! `queued.max.request.bytes`, but finite by default): a connection takes the announced size of
//! a request from the budget before it reads the request's body, and gives it back once the
//! request is answered. When the budget is spent, connections wait before reading more: memory
//! stays bounded whatever many slow or hostile clients announce.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget is counted in units of this many bytes (a semaphore counts in `u32`).
const UNIT: usize = 1024;

pub struct RequestBudget {
    permits: Arc<Semaphore>,
    units: u32,
}

/// A request's share of the budget, given back when dropped.
pub type Reserved = OwnedSemaphorePermit;

impl RequestBudget {
    pub fn new(bytes: usize) -> RequestBudget {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize)) as u32;
        RequestBudget {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    /// Waits until `bytes` fit in the budget, and takes them. A request larger than the whole
    /// budget takes all of it (it is alone then, but it is not refused).
    pub async fn reserve(&self, bytes: usize) -> Reserved {
        let units = (bytes.div_ceil(UNIT) as u64).clamp(1, u64::from(self.units)) as u32;
        self.permits
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

/// The default budget when `queued.max.request.bytes` is -1: a quarter of the memory the
/// broker may use (the machine's, or its cgroup's limit if lower), at most 1 GiB (Kafka's -1
/// means no bound at all).
pub fn default_bytes() -> usize {
    const CAP: usize = 1 << 30;
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        })
        .map(|kib| kib * 1024);
    // cgroup v2 ("max" when unlimited), then v1 (a huge number when unlimited).
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<usize>()
            .ok()
    });
    let usable = match (machine, cgroup) {
        (Some(m), Some(c)) => Some(m.min(c)),
        (m, c) => m.or(c),
    };
    usable.map_or(CAP, |bytes| (bytes / 4).min(CAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RequestBudget {
        fn available(&self) -> usize {
            self.permits.available_permits() * UNIT
        }
    }

    #[tokio::test]
    async fn reservations_wait_for_room_and_give_it_back() {
        let budget = RequestBudget::new(10 * UNIT);
        let a = budget.reserve(6 * UNIT).await;
        let b = budget.reserve(4 * UNIT - 100).await;
        assert_eq!(budget.available(), 0);
        let waiting = budget.reserve(UNIT);
        tokio::pin!(waiting);
        assert!(
            ready_soon(waiting.as_mut()).await.is_none(),
            "no room: it waits"
        );
        drop(a);
        let c = waiting.await;
        assert_eq!(budget.available(), 5 * UNIT);
        // Larger than the whole budget: it takes all of it, once the rest is back.
        drop((b, c));
        let all = budget.reserve(100 * UNIT).await;
        assert_eq!(budget.available(), 0);
        drop(all);
        assert!(default_bytes() >= UNIT);
    }

    /// The future's output if it is ready within a moment (a future that cannot complete never is).
    async fn ready_soon<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::time::timeout(std::time::Duration::from_millis(20), f)
            .await
            .ok()
    }
}
