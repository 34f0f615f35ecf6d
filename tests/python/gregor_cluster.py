"""A gregor cluster of separate processes on loopback: node ids 1..n, each a broker and a
controller of one Raft metadata quorum, client and controller listeners on free ports, log
dirs formatted with one cluster id (as `gregor storage format` does)."""

import random
import socket
import subprocess

from gregor_broker import GREGOR_BIN, Broker


_drawn = set()


def free_port():
    """A port free now, below Linux's ephemeral range (32768+): a node binds its client port only
    once its quorum has a leader, and a port the kernel gave an outgoing connection meanwhile
    would make that fail. Never the same port twice in one test run."""
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        if port in _drawn:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _drawn.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def gregor(*args):
    out = subprocess.run([GREGOR_BIN, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"gregor {args}: {out.stdout}{out.stderr}"
    return out.stdout.strip()


def start_cluster(root, nodes=3, overrides=None, node_overrides=None):
    """Formats and starts `nodes` nodes under `root`; returns their Brokers (index i is node
    i + 1) once every one listens. `overrides` apply to every node, `node_overrides(n)` (a
    dict) to node n. The caller stops them (see the `cluster` fixture)."""
    cluster_id = gregor("storage", "random-uuid")
    ports = [(free_port(), free_port()) for _ in range(nodes)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{controller}" for i, (_, controller) in enumerate(ports))
    brokers = []
    for i, (client, controller) in enumerate(ports):
        node = i + 1
        data = root / f"node-{node}" / "data"
        data.mkdir(parents=True, exist_ok=True)
        properties = root / f"node-{node}.properties"
        properties.write_text(f"node.id={node}\nlog.dirs={data}\n")
        gregor("storage", "format", "-t", cluster_id, "-c", str(properties))
        settings = {
            "node.id": str(node),
            "listeners": f"PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
            "controller.quorum.voters": voters,
        }
        settings.update(overrides or {})
        settings.update(node_overrides(node) if node_overrides else {})
        brokers.append(Broker(data_dir=data, overrides=settings, work_dir=root / f"node-{node}"))
    # A node listens only once the quorum has a leader: start all before waiting for any.
    for b in brokers:
        b.spawn()
    for b in brokers:
        b.wait_listening()
    return brokers


def bootstrap_of(brokers):
    return ",".join(b.bootstrap for b in brokers if b.alive())
