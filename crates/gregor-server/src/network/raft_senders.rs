//! Who may send Raft's frames to a broker only. Its client listener also carries the metadata
//! log, which the quorum's leader (always a voter) replicates to it as a learner; anyone else
//! who reaches the port could forge AppendEntries and disturb its image or its quorum. Frames are
//! taken only from the addresses of the voters: the current membership's, and the configured
//! `controller.quorum.voters` / `controller.quorum.bootstrap.servers` (a learner that has copied
//! nothing yet knows no membership). The check is by IP address, once per connection.

use std::net::IpAddr;

use gregor_raft::MetadataQuorum;

use crate::config::BrokerConfig;
use crate::metadata::ControllerChannel;

/// The configured voters and bootstrap servers, as `(host, port)`.
pub fn configured(config: &BrokerConfig) -> Vec<(String, u16)> {
    let cluster = &config.cluster;
    cluster
        .voters
        .values()
        .chain(&cluster.bootstrap_servers)
        .map(|v| (v.host.clone(), v.port))
        .collect()
}

/// Whether `peer` is the address of a voter of the metadata quorum (see the module's comment).
pub async fn from_a_voter(
    configured: &[(String, u16)],
    controller: &ControllerChannel,
    peer: IpAddr,
) -> bool {
    let members = controller.quorum().status().voters;
    let members = members.into_iter().map(|v| (v.node.host, v.node.port));
    is_among(members.chain(configured.iter().cloned()), peer).await
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
        if let Ok(mut resolved) = tokio::net::lookup_host((host.as_str(), port)).await {
            if resolved.any(|a| a.ip().to_canonical() == peer) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_voters_addresses_pass() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let voters = || vec![("127.0.0.1".to_string(), 9093), ("10.0.0.7".to_string(), 9093)];
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
