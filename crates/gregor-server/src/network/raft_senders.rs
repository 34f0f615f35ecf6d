//! Who may send Raft's frames to a broker only. Its client listener also carries the metadata
//! log, which the quorum's leader (always a voter) replicates to it as a learner; anyone else
//! who reaches the port could forge AppendEntries and disturb its image or its quorum. Frames are
//! taken only from the IP addresses of the voters: the current membership's, the configured
//! `controller.quorum.voters` / `controller.quorum.bootstrap.servers` (a learner that has copied
//! nothing yet knows no membership), and the controllers that took part in this broker's join
//! (the leader may be a voter added after the config was written). Checked once per connection,
//! when its first Raft frame arrives.
//!
//! This is a check of addresses, not authentication (gregor speaks PLAINTEXT only, where any
//! client may also change metadata through the admin APIs). Controllers that reach a broker
//! through NAT (a published container port, a Kubernetes service per controller) arrive from
//! addresses it cannot match, and are refused with a log line that says so.

use std::net::IpAddr;
use std::time::Duration;

use gregor_raft::MetadataQuorum;
use parking_lot::RwLock;

use crate::config::BrokerConfig;
use crate::metadata::ControllerChannel;

/// How long resolving one voter's host name may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The addresses, besides the current membership's voters, whose IPs may send Raft's frames.
pub struct RaftSources {
    known: RwLock<Vec<(String, u16)>>,
}

impl RaftSources {
    /// The configured voters and bootstrap servers.
    pub fn configured(config: &BrokerConfig) -> RaftSources {
        let cluster = &config.cluster;
        let known = cluster
            .voters
            .values()
            .chain(&cluster.bootstrap_servers)
            .map(|v| (v.host.clone(), v.port))
            .collect();
        RaftSources {
            known: RwLock::new(known),
        }
    }

    /// A controller this broker learned of while joining the quorum.
    pub fn add(&self, host: &str, port: u16) {
        let mut known = self.known.write();
        if !known.iter().any(|(h, p)| h == host && *p == port) {
            known.push((host.to_string(), port));
        }
    }

    /// Whether `peer` is the address of a voter (see the module's comment).
    pub async fn admits(&self, controller: &ControllerChannel, peer: IpAddr) -> bool {
        let members = controller.quorum().status().voters;
        let members = members.into_iter().map(|v| (v.node.host, v.node.port));
        let known = self.known.read().clone();
        is_among(members.chain(known), peer).await
    }
}

/// Whether one of `addresses` (IPs, or host names resolved now) is `peer`'s.
async fn is_among(addresses: impl IntoIterator<Item = (String, u16)>, peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    for (host, port) in addresses {
        if let Ok(ip) = host.parse::<IpAddr>() {
            if ip.to_canonical() == peer {
                return true;
            }
            continue;
        }
        let lookup = tokio::net::lookup_host((host.as_str(), port));
        if let Ok(Ok(mut resolved)) = tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await {
            if resolved.any(|a| a.ip().to_canonical() == peer) {
                return true;
            }
        }
    }
    false
}

/// The log line of a refused peer.
pub fn refused(peer: std::net::SocketAddr) {
    tracing::warn!(%peer, "closing connection: Raft's frames come only from the metadata quorum's voters (a controller behind NAT arrives from an address that is none of theirs)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_voters_addresses_pass() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let voters = || {
            vec![
                ("127.0.0.1".to_string(), 9093),
                ("10.0.0.7".to_string(), 9093),
            ]
        };
        assert!(is_among(voters(), ip("127.0.0.1")).await);
        assert!(is_among(voters(), ip("10.0.0.7")).await);
        // A listener on [::] sees IPv4 peers as mapped addresses.
        assert!(is_among(voters(), ip("::ffff:10.0.0.7")).await);
        assert!(!is_among(voters(), ip("127.0.0.2")).await);
        assert!(!is_among(voters(), ip("10.0.0.8")).await);
        assert!(!is_among(Vec::new(), ip("127.0.0.1")).await);
        // Host names are resolved.
        assert!(is_among(vec![("localhost".to_string(), 9093)], ip("127.0.0.1")).await);
    }
}
