//! The log cleaner: compacts `cleanup.policy=compact` partitions in the background on its own
//! thread. Each pass plans under the partition's read lock (cheap), rewrites segments with no lock
//! held, and installs the result under the write lock (renames only), so produce and fetch are never
//! blocked for the length of a clean.

use std::time::{Duration, Instant};

use crate::services::{now_ms, Services};

/// Cleaner settings, from `log.cleaner.*`.
struct Settings {
    dedupe_buffer_bytes: usize,
    max_bytes_per_second: f64,
    backoff: Duration,
}

/// Runs until the broker shuts down.
pub fn run(services: &Services) {
    if !services.config.get_bool("log.cleaner.enable") {
        tracing::info!("log cleaner disabled (log.cleaner.enable=false)");
        return;
    }
    let settings = Settings {
        dedupe_buffer_bytes: services
            .config
            .get_i64("log.cleaner.dedupe.buffer.size")
            .max(1 << 20) as usize,
        max_bytes_per_second: services
            .config
            .get("log.cleaner.io.max.bytes.per.second")
            .parse()
            .unwrap_or(f64::MAX),
        backoff: Duration::from_millis(
            services.config.get_i64("log.cleaner.backoff.ms").max(1) as u64
        ),
    };
    let stop = services.shutdown_signal();
    // Stopped, or the broker is gone (its stop signal with it).
    let stopping = || *stop.borrow() || stop.has_changed().is_err();
    while !stopping() {
        // Every partition gets its turn each round (no short-circuit).
        let mut cleaned_any = false;
        for partition in services.replicas.all() {
            if stopping() {
                break;
            }
            cleaned_any |= clean_once(&partition, &settings);
        }
        if !cleaned_any {
            // Sleep in short steps so shutdown is not held up.
            let until = Instant::now() + settings.backoff;
            while Instant::now() < until && !stopping() {
                std::thread::sleep(Duration::from_millis(50).min(settings.backoff));
            }
        }
    }
}

/// One clean of one partition, if it needs one. Returns whether anything was cleaned.
fn clean_once(partition: &crate::partitions::Partition, settings: &Settings) -> bool {
    let Some(plan) = partition.with_log(|log| log.cleaning_plan(now_ms())) else {
        return false;
    };
    let started = Instant::now();
    let mut processed = 0usize;
    // Throttle: sleep whenever the cleaner is ahead of log.cleaner.io.max.bytes.per.second.
    let mut throttle = |bytes: usize| {
        processed += bytes;
        let allowed = settings.max_bytes_per_second * started.elapsed().as_secs_f64();
        if (processed as f64) > allowed && settings.max_bytes_per_second.is_finite() {
            let ahead = (processed as f64 - allowed) / settings.max_bytes_per_second;
            std::thread::sleep(Duration::from_secs_f64(ahead.min(1.0)));
        }
    };
    let outcome = plan
        .execute(now_ms(), settings.dedupe_buffer_bytes, &mut throttle)
        .and_then(|cleaned| partition.with_log_mut(|log| log.install_cleaned(cleaned)));
    match outcome {
        Ok(stats) => {
            tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                bytes_read = stats.bytes_read,
                bytes_written = stats.bytes_written,
                ms = started.elapsed().as_millis() as u64,
                "cleaned log"
            );
            true
        }
        Err(e) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "log clean failed; will retry");
            false
        }
    }
}
