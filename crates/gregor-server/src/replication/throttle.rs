//! Replication throttles (KIP-73, Kafka's `ReplicationQuotaManager`): while a reassignment
//! copies a partition to a new replica, the copying can be held to a rate so that it does not
//! starve producers and consumers. A leader sends at most `leader.replication.throttled.rate`
//! bytes a second of the partitions whose `leader.replication.throttled.replicas` names it,
//! and a follower fetches at most `follower.replication.throttled.rate` of those whose
//! `follower.replication.throttled.replicas` names it (dynamic broker and topic configs, as
//! `reassign-partitions --throttle` sets them). As in Kafka, every byte of a throttled
//! partition counts towards the rate, but only a replica outside the ISR is held back: once
//! over the rate, it gets no records of the partition (leader) or does not ask for them
//! (follower) until the rate falls below it again; keeping up is never throttled.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;

/// Kafka's `replication.quota.window.num` and `replication.quota.window.size.seconds`.
const SAMPLES: i64 = 11;
const SAMPLE_MS: i64 = 1000;

/// One direction's rate: bytes over the last [`SAMPLES`] one-second samples.
#[derive(Debug)]
pub struct Quota {
    /// Bytes a second; `i64::MAX`: unthrottled (the default).
    rate: AtomicI64,
    /// (sample start in ms, bytes), oldest first.
    samples: Mutex<VecDeque<(i64, u64)>>,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            rate: AtomicI64::new(i64::MAX),
            samples: Mutex::new(VecDeque::new()),
        }
    }
}

impl Quota {
    pub fn set_rate(&self, bytes_per_second: i64) {
        self.rate.store(bytes_per_second, Ordering::Release);
    }

    /// Counts `bytes` of throttled partitions sent or fetched at `now_ms`.
    pub fn record(&self, bytes: usize, now_ms: i64) {
        if bytes == 0 {
            return;
        }
        let start = now_ms - now_ms.rem_euclid(SAMPLE_MS);
        let mut samples = self.samples.lock();
        match samples.back_mut() {
            Some((at, total)) if *at == start => *total += bytes as u64,
            _ => samples.push_back((start, bytes as u64)),
        }
        Self::expire(&mut samples, now_ms);
    }

    /// Whether the measured rate is above the configured one. As Kafka's `Rate`, the bytes are
    /// divided by the time the samples span, but by no less than all samples but one, so a
    /// burst after an idle spell is not taken for a high rate.
    pub fn exceeded(&self, now_ms: i64) -> bool {
        let rate = self.rate.load(Ordering::Acquire);
        if rate == i64::MAX {
            return false;
        }
        let mut samples = self.samples.lock();
        Self::expire(&mut samples, now_ms);
        let Some(&(oldest, _)) = samples.front() else {
            return false;
        };
        let bytes: u64 = samples.iter().map(|(_, b)| b).sum();
        let elapsed_ms = (now_ms - oldest).max((SAMPLES - 1) * SAMPLE_MS);
        bytes as f64 * 1000.0 / elapsed_ms as f64 > rate as f64
    }

    fn expire(samples: &mut VecDeque<(i64, u64)>, now_ms: i64) {
        while samples
            .front()
            .is_some_and(|(at, _)| *at <= now_ms - SAMPLES * SAMPLE_MS)
        {
            samples.pop_front();
        }
    }
}

/// A broker's two throttles.
#[derive(Debug, Default)]
pub struct Throttles {
    /// What this broker sends followers of partitions it leads.
    pub leader: Quota,
    /// What this broker fetches as a follower.
    pub follower: Quota,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_measured_over_the_window_and_forgets_old_samples() {
        let quota = Quota::default();
        quota.record(1 << 30, 0);
        assert!(!quota.exceeded(0), "unthrottled by default");
        // 10,000 bytes over at least ten seconds: 1,000 a second, not above.
        let quota = Quota::default();
        quota.set_rate(1000);
        quota.record(10_000, 500);
        assert!(!quota.exceeded(900));
        quota.record(1, 1500);
        assert!(quota.exceeded(1600));
        // Eleven seconds on, the samples have expired.
        assert!(!quota.exceeded(12_600));
        // The same bytes measured over a longer span are a lower rate.
        quota.record(10_500, 13_000);
        assert!(
            quota.exceeded(13_100),
            "1,050 bytes a second over the ten-second floor"
        );
        assert!(!quota.exceeded(23_900), "963 bytes a second over 10.9 s");
        assert!(!quota.exceeded(24_100));
    }
}
