//! Who this node is in a cluster, from Kafka's configs: its roles (`process.roles`), its named
//! listeners (`listeners`, `advertised.listeners`, `listener.security.protocol.map`,
//! `controller.listener.names`, `inter.broker.listener.name`) and the controller quorum's
//! voters (`controller.quorum.voters`). Every inconsistency is refused at start with a message
//! naming the config, as Kafka does.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::ConfigError;

/// A listener: its name, where it binds, and the address it advertises.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub name: String,
    pub bind: SocketAddr,
    /// Host and port given to clients (port 0: the port actually bound).
    pub advertised_host: String,
    pub advertised_port: u16,
}

/// A controller of the quorum: `id@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Voter {
    pub host: String,
    pub port: u16,
}

/// What the node configs say about the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    pub broker: bool,
    pub controller: bool,
    /// The listener clients (and other brokers) use; `None` on a controller-only node.
    pub client: Option<Listener>,
    /// The listener controllers talk to each other on; `None` on a single node that is its
    /// own quorum.
    pub controller_listener: Option<Listener>,
    /// `controller.quorum.voters` by node id; empty: this node is a quorum of one, or joins
    /// one through `bootstrap_servers`.
    pub voters: BTreeMap<i32, Voter>,
    /// `controller.quorum.bootstrap.servers` (KIP-853), without voters: this controller joins
    /// an existing quorum once a voter adds it (AddRaftVoter).
    pub bootstrap_servers: Vec<Voter>,
    pub rack: Option<String>,
}

fn bad(key: &str, value: &str, why: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!(
        "Invalid value {value} for configuration {key}: {why}"
    ))
}

/// `NAME://host:port` entries, in order.
fn parse_endpoints(key: &str, value: &str) -> Result<Vec<(String, String, u16)>, ConfigError> {
    let mut endpoints = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let expected = "expected NAME://host:port";
        let (name, rest) = entry
            .split_once("://")
            .ok_or_else(|| bad(key, value, expected))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad(key, value, expected))?;
        let port = port.parse::<u16>().map_err(|_| bad(key, value, expected))?;
        let name = name.to_ascii_uppercase();
        if name.is_empty() {
            return Err(bad(key, value, expected));
        }
        if endpoints.iter().any(|(n, _, _)| *n == name) {
            return Err(bad(
                key,
                value,
                format!("listener name {name} appears twice"),
            ));
        }
        endpoints.push((name, host.trim_matches(['[', ']']).to_string(), port));
    }
    Ok(endpoints)
}

fn names(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// `listener.security.protocol.map`; names of controller listeners that it does not map are
/// PLAINTEXT, as in Kafka when the map is left at its default.
fn protocol_of(map: &str, controller_names: &[String], name: &str) -> Option<String> {
    let explicit = map.split(',').filter_map(|pair| {
        let (n, p) = pair.split_once(':')?;
        Some((n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
    });
    let defaults = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
        .into_iter()
        .map(|p| (p.to_string(), p.to_string()));
    explicit
        .chain(defaults)
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .or_else(|| {
            controller_names
                .contains(&name.to_string())
                .then(|| "PLAINTEXT".into())
        })
}

/// `host:port`.
fn parse_address(address: &str) -> Option<Voter> {
    let (host, port) = address.trim().rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let host = host.trim_matches(['[', ']']);
    (!host.is_empty()).then(|| Voter {
        host: host.to_string(),
        port,
    })
}

/// `controller.quorum.bootstrap.servers`: `host:port,...`.
fn parse_bootstrap_servers(value: &str) -> Result<Vec<Voter>, ConfigError> {
    value
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|entry| {
            parse_address(entry).ok_or_else(|| {
                bad(
                    "controller.quorum.bootstrap.servers",
                    value,
                    "expected host:port",
                )
            })
        })
        .collect()
}

/// `controller.quorum.voters`: `id@host:port,...`.
fn parse_voters(value: &str) -> Result<BTreeMap<i32, Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut voters = BTreeMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let expected = "expected id@host:port";
        let (id, address) = entry
            .split_once('@')
            .ok_or_else(|| bad(key, value, expected))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| bad(key, value, expected))?;
        let voter = parse_address(address).ok_or_else(|| bad(key, value, expected))?;
        if voters.insert(id, voter).is_some() {
            return Err(bad(key, value, format!("node {id} appears twice")));
        }
    }
    Ok(voters)
}

fn bind_address(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| bad("listeners", host, "not an IP address"))
}

impl Cluster {
    /// Reads the cluster configs; `get` gives a config's value (its default if not set).
    pub fn from_configs(
        node_id: i32,
        get: impl Fn(&str) -> String,
    ) -> Result<Cluster, ConfigError> {
        let roles = names(&get("process.roles"));
        let broker = roles.iter().any(|r| r == "BROKER");
        let controller = roles.iter().any(|r| r == "CONTROLLER");
        let controller_names = names(&get("controller.listener.names"));
        let listeners_value = get("listeners");
        let endpoints = parse_endpoints("listeners", &listeners_value)?;
        let map = get("listener.security.protocol.map");
        for (name, _, _) in &endpoints {
            match protocol_of(&map, &controller_names, name) {
                Some(p) if p == "PLAINTEXT" => {}
                Some(p) => {
                    return Err(bad(
                        "listeners",
                        &listeners_value,
                        format!(
                        "listener {name} uses {p}, which gregor does not support (PLAINTEXT only)"
                    ),
                    ))
                }
                None => {
                    return Err(bad(
                        "listeners",
                        &listeners_value,
                        format!("no security protocol for listener {name} in listener.security.protocol.map"),
                    ))
                }
            }
        }
        let advertised_value = get("advertised.listeners");
        let advertised = parse_endpoints("advertised.listeners", &advertised_value)?;
        let listener =
            |(name, host, port): &(String, String, u16)| -> Result<Listener, ConfigError> {
                let (advertised_host, advertised_port) = advertised
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, h, p)| (h.clone(), *p))
                    .unwrap_or_else(|| {
                        let host = if host.is_empty() { "127.0.0.1" } else { host };
                        (host.to_string(), *port)
                    });
                Ok(Listener {
                    name: name.clone(),
                    bind: bind_address(host, *port)?,
                    advertised_host,
                    advertised_port,
                })
            };
        let client = endpoints
            .iter()
            .find(|(n, _, _)| !controller_names.contains(n))
            .map(listener)
            .transpose()?;
        let controller_listener = endpoints
            .iter()
            .find(|(n, _, _)| controller_names.contains(n))
            .map(listener)
            .transpose()?;
        let voters = parse_voters(&get("controller.quorum.voters"))?;
        let bootstrap_servers =
            parse_bootstrap_servers(&get("controller.quorum.bootstrap.servers"))?;
        let cluster = Cluster {
            broker,
            controller,
            client,
            controller_listener,
            voters,
            bootstrap_servers,
            rack: Some(get("broker.rack")).filter(|r| !r.is_empty()),
        };
        cluster.check(
            node_id,
            &get("inter.broker.listener.name"),
            &listeners_value,
        )?;
        Ok(cluster)
    }

    /// A quorum of one: neither voters nor a quorum to join are configured.
    pub fn single_node(&self) -> bool {
        self.voters.is_empty() && self.bootstrap_servers.is_empty()
    }

    /// A controller that joins the quorum of `bootstrap_servers` (it is no voter at first).
    pub fn joins_quorum(&self) -> bool {
        self.voters.is_empty() && !self.bootstrap_servers.is_empty()
    }

    fn check(&self, node_id: i32, inter_broker: &str, listeners: &str) -> Result<(), ConfigError> {
        let fail = |message: String| Err(ConfigError(message));
        if !self.broker && !self.controller {
            return fail("process.roles must contain broker, controller or both".into());
        }
        if self.broker && self.client.is_none() {
            return fail(format!(
                "listeners={listeners} has no listener for clients (one not in controller.listener.names), which process.roles=broker needs"
            ));
        }
        if self.single_node() {
            if !(self.broker && self.controller) {
                return fail("a node without controller.quorum.voters is a single node and needs process.roles=broker,controller".into());
            }
            return Ok(());
        }
        if !self.broker && self.client.is_some() {
            return fail(format!(
                "listeners={listeners} must contain only the controller listeners of controller.listener.names when process.roles=controller"
            ));
        }
        if !self.controller {
            // A broker only follows the metadata log as a learner of the quorum.
            if self.voters.contains_key(&node_id) {
                return fail(format!(
                    "If process.roles contains just the 'broker' role, the node id {node_id} must not be included in the set of voters controller.quorum.voters"
                ));
            }
            if self.controller_listener.is_some() {
                return fail(format!(
                    "controller.listener.names must not contain a value appearing in the 'listeners' configuration ({listeners}) when running KRaft with just the broker role"
                ));
            }
            return Ok(());
        }
        if !self.voters.is_empty() && !self.voters.contains_key(&node_id) {
            return fail(format!(
                "If process.roles contains controller, the node id {node_id} must be included in the set of voters controller.quorum.voters"
            ));
        }
        if self.controller_listener.is_none() {
            return fail(format!(
                "controller.listener.names must contain at least one value appearing in the 'listeners' configuration ({listeners}) when running the KRaft controller role"
            ));
        }
        let inter_broker = inter_broker.trim().to_ascii_uppercase();
        if self.broker
            && !inter_broker.is_empty()
            && self.client.as_ref().is_none_or(|c| c.name != inter_broker)
        {
            return fail(format!(
                "inter.broker.listener.name={inter_broker} must name the client listener of listeners={listeners}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(node_id: i32, configs: &[(&str, &str)]) -> Result<Cluster, ConfigError> {
        let defaults = [
            ("process.roles", "broker,controller"),
            ("listeners", "PLAINTEXT://127.0.0.1:9092"),
            ("controller.listener.names", "CONTROLLER"),
        ];
        Cluster::from_configs(node_id, |key| {
            configs
                .iter()
                .chain(&defaults)
                .find(|(k, _)| *k == key)
                .map_or_else(String::new, |(_, v)| v.to_string())
        })
    }

    #[test]
    fn a_single_node_needs_nothing_but_a_listener() {
        let single = cluster(1, &[]).unwrap();
        assert!(single.voters.is_empty());
        let client = single.client.unwrap();
        assert_eq!(client.bind.to_string(), "127.0.0.1:9092");
        assert_eq!(
            (client.advertised_host.as_str(), client.advertised_port),
            ("127.0.0.1", 9092)
        );
        assert!(single.controller_listener.is_none());
    }

    #[test]
    fn a_cluster_node_has_a_controller_listener_and_is_a_voter() {
        let node = cluster(
            2,
            &[
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                ),
                ("advertised.listeners", "PLAINTEXT://kafka-2:9092"),
                (
                    "controller.quorum.voters",
                    "1@h1:9093,2@127.0.0.1:9093,3@h3:9093",
                ),
                ("broker.rack", "r1"),
            ],
        )
        .unwrap();
        assert_eq!(node.voters.len(), 3);
        assert_eq!(node.client.as_ref().unwrap().advertised_host, "kafka-2");
        assert_eq!(node.controller_listener.unwrap().bind.port(), 9093);
        assert_eq!(node.rack.as_deref(), Some("r1"));
    }

    #[test]
    fn inconsistent_configs_are_refused_naming_the_config() {
        let voters = ("controller.quorum.voters", "1@h:9093,2@h:9094");
        let both = ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093");
        type Case<'a> = (i32, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (5, &[voters, both], "must be included in the set of voters"),
            (
                1,
                &[("controller.quorum.voters", "1@h:9093")],
                "controller.listener.names",
            ),
            (
                1,
                &[("controller.quorum.voters", "x@h:1")],
                "controller.quorum.voters",
            ),
            (
                1,
                &[("controller.quorum.voters", "1@h:1,1@h:2")],
                "appears twice",
            ),
            (1, &[("listeners", "SSL://:9092")], "PLAINTEXT only"),
            (
                1,
                &[("listeners", "INTERNAL://:9092")],
                "listener.security.protocol.map",
            ),
            (
                1,
                &[("listeners", "PLAINTEXT://:1,PLAINTEXT://:2")],
                "appears twice",
            ),
            (
                1,
                &[("listeners", "CONTROLLER://:9093")],
                "no listener for clients",
            ),
            (1, &[("process.roles", "broker")], "single node"),
            (1, &[("process.roles", "")], "process.roles"),
            (
                1,
                &[voters, both, ("process.roles", "controller")],
                "must contain only the controller listeners",
            ),
            (
                1,
                &[voters, both, ("process.roles", "broker")],
                "must not be included in the set of voters",
            ),
            (
                3,
                &[voters, both, ("process.roles", "broker")],
                "must not contain a value appearing in the 'listeners'",
            ),
            (
                1,
                &[voters, both, ("inter.broker.listener.name", "OTHER")],
                "inter.broker.listener.name",
            ),
        ];
        for (node, configs, needle) in cases {
            let err = cluster(*node, configs).unwrap_err();
            assert!(err.0.contains(needle), "{configs:?}: {err}");
        }
        let mapped = cluster(
            1,
            &[
                ("listeners", "INTERNAL://:9092"),
                ("listener.security.protocol.map", "INTERNAL:PLAINTEXT"),
            ],
        )
        .unwrap();
        assert_eq!(mapped.client.unwrap().name, "INTERNAL");
        let controller_only = cluster(
            1,
            &[
                voters,
                ("listeners", "CONTROLLER://:9093"),
                ("process.roles", "controller"),
            ],
        )
        .unwrap();
        assert!(controller_only.controller && !controller_only.broker);
        assert!(controller_only.client.is_none());
        let broker_only = cluster(
            3,
            &[
                voters,
                ("listeners", "PLAINTEXT://:9092"),
                ("process.roles", "broker"),
            ],
        )
        .unwrap();
        assert!(broker_only.broker && !broker_only.controller);
        assert!(broker_only.controller_listener.is_none());
    }
}
