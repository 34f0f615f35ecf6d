//! Connection quotas: Kafka's `max.connections` and `max.connections.per.ip` (with
//! `max.connections.per.ip.overrides`). A connection over a quota is closed as soon as it is
//! accepted, as Kafka does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{BrokerConfig, ConfigError};

pub struct ConnectionQuotas {
    max_total: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// An open connection's place in the quotas, given back when it is dropped.
pub struct Admitted {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.quotas.open.lock();
        open.0 -= 1;
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum OverQuota {
    Total(usize),
    PerIp(usize),
}

/// `host:count` pairs, comma-separated (Kafka's `max.connections.per.ip.overrides`).
pub fn parse_overrides(text: &str) -> Result<HashMap<IpAddr, usize>, ConfigError> {
    let bad = |entry: &str| {
        ConfigError(format!(
            "max.connections.per.ip.overrides: '{entry}' is not an IP address and a count (ip:count)"
        ))
    };
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (host, count) = entry.rsplit_once(':').ok_or_else(|| bad(entry))?;
            let ip = host
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| bad(entry))?;
            Ok((ip, count.parse().map_err(|_| bad(entry))?))
        })
        .collect()
}

impl ConnectionQuotas {
    pub fn new(config: &BrokerConfig) -> ConnectionQuotas {
        let overrides = config.get("max.connections.per.ip.overrides");
        ConnectionQuotas {
            max_total: config.get_i64("max.connections") as usize,
            max_per_ip: config.get_i64("max.connections.per.ip") as usize,
            // Validated when the config was read.
            overrides: parse_overrides(&overrides).unwrap_or_default(),
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// Counts a new connection from `ip`, or says which quota it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, OverQuota> {
        let mut open = self.open.lock();
        if open.0 >= self.max_total {
            return Err(OverQuota::Total(self.max_total));
        }
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip);
        let from_ip = open.1.entry(ip).or_insert(0);
        if *from_ip >= limit {
            return Err(OverQuota::PerIp(limit));
        }
        *from_ip += 1;
        open.0 += 1;
        Ok(Admitted {
            quotas: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(total: usize, per_ip: usize, overrides: &str) -> Arc<ConnectionQuotas> {
        Arc::new(ConnectionQuotas {
            max_total: total,
            max_per_ip: per_ip,
            overrides: parse_overrides(overrides).unwrap(),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    #[test]
    fn quotas_count_open_connections_per_ip_and_in_all() {
        let q = quotas(3, 2, "10.0.0.9:0, [::1]:5");
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = q.admit(a).unwrap();
        let _second = q.admit(a).unwrap();
        assert_eq!(q.admit(a).err(), Some(OverQuota::PerIp(2)));
        let _third = q.admit(b).unwrap();
        assert_eq!(q.admit(b).err(), Some(OverQuota::Total(3)));
        drop(first);
        let _again = q.admit(a).expect("a closed connection frees its place");
        assert_eq!(
            q.admit("10.0.0.9".parse().unwrap()).err(),
            Some(OverQuota::Total(3))
        );
        let q = quotas(10, 2, "10.0.0.9:0, [::1]:5");
        assert_eq!(
            q.admit("10.0.0.9".parse().unwrap()).err(),
            Some(OverQuota::PerIp(0))
        );
        let local: Vec<_> = (0..5).map(|_| q.admit("::1".parse().unwrap())).collect();
        assert!(local.iter().all(Result::is_ok));
        assert!(parse_overrides("nonsense").is_err());
        assert!(parse_overrides("1.2.3.4:x").is_err());
    }
}
