//! Log lines caused by what a client sends (bad frames, undecodable requests, dropped
//! connections) are rate-limited per peer address, so unauthenticated input cannot flood the
//! broker's log: a few lines per address per minute, then one line saying how many were
//! suppressed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Lines per peer address per window.
const LINES_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct NoisyPeers {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl NoisyPeers {
    /// Whether a line about `ip` may be logged now; when a new window opens after lines were
    /// suppressed, logs how many.
    pub fn may_log(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock();
        // Forget quiet peers, so the map does not grow with every address ever seen.
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            if *count > LINES_PER_WINDOW {
                tracing::warn!(peer = %ip, suppressed = *count - LINES_PER_WINDOW, "log lines about this peer were suppressed");
            }
            (*start, *count) = (now, 0);
        }
        *count += 1;
        *count <= LINES_PER_WINDOW
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_gets_a_few_lines_a_minute() {
        let noisy = NoisyPeers::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let allowed = (0..100).filter(|_| noisy.may_log(a)).count();
        assert_eq!(allowed, LINES_PER_WINDOW as usize);
        assert!(noisy.may_log(b), "another peer has its own allowance");
        // A window that has passed starts afresh.
        noisy.windows.lock().get_mut(&a).unwrap().0 -= WINDOW;
        assert!(noisy.may_log(a));
    }
}
