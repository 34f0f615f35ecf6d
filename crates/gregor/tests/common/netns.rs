//! Network namespaces for partition tests: each node gets its own namespace with a veth into a
//! bridge in the test's namespace, so the test (and its clients) reach every node while the
//! links between nodes can be cut and healed. A cut makes each side resolve the other's address
//! to a MAC address nobody has: packets vanish silently, as on a real partition (no reset, no
//! unreachable error), with nothing but `ip` needed (no tc or iptables modules). Everything is
//! removed on drop; the namespaces' processes must be stopped first (drop the nodes before the
//! network).

use std::process::Command;

/// A MAC address no interface has (locally administered).
const NOWHERE: &str = "02:00:00:00:de:ad";

pub struct Network {
    /// Unique per test process: names and the subnet derive from it.
    tag: u32,
    nodes: usize,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e} (the network tests need iproute2 and root)"));
    assert!(
        out.status.success(),
        "ip {args:?}: {} (the network tests need root)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Network {
    /// A bridge and `nodes` namespaces, node `i` (from 0) at [`Network::address`]`(i)`.
    pub fn create(nodes: usize) -> Network {
        static CREATED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
        let tag = std::process::id() % 10_000 * 10 + serial;
        let network = Network { tag, nodes };
        let bridge = network.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", network.subnet(254)),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..nodes {
            let ns = network.namespace(i);
            let veth = network.veth(i);
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", &bridge, "up"]);
            let address = format!("{}/24", network.address(i));
            ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        network
    }

    fn subnet(&self, host: usize) -> String {
        format!(
            "10.{}.{}.{host}",
            100 + self.tag / 256 % 100,
            self.tag % 256
        )
    }

    fn bridge(&self) -> String {
        format!("gbr{}", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("gv{}n{i}", self.tag)
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: usize) -> String {
        format!("gregor-{}-{i}", self.tag)
    }

    /// Node `i`'s address.
    pub fn address(&self, i: usize) -> String {
        self.subnet(i + 1)
    }

    /// Cuts the link between nodes `a` and `b`, both ways.
    pub fn cut(&self, a: usize, b: usize) {
        for (from, to) in [(a, b), (b, a)] {
            ip(&[
                "-n",
                &self.namespace(from),
                "neigh",
                "replace",
                &self.address(to),
                "lladdr",
                NOWHERE,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
        }
    }

    /// Cuts the nodes of `group` off from every other node (they still reach each other, and
    /// the test reaches all).
    pub fn split(&self, group: &[usize]) {
        for a in group {
            for b in (0..self.nodes).filter(|b| !group.contains(b)) {
                self.cut(*a, b);
            }
        }
    }

    /// Heals every cut: addresses are resolved afresh.
    pub fn heal(&self) {
        for i in 0..self.nodes {
            for other in (0..self.nodes).filter(|o| *o != i) {
                // Absent when the pair was never cut.
                let _ = Command::new("ip")
                    .args([
                        "-n",
                        &self.namespace(i),
                        "neigh",
                        "del",
                        &self.address(other),
                        "dev",
                        "eth0",
                    ])
                    .output();
            }
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.namespace(i)])
                .output();
            let _ = Command::new("ip")
                .args(["link", "del", &self.veth(i)])
                .output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .output();
    }
}
