#!/usr/bin/env python3
"""Cluster benchmark (issue 13): controller failover and bulk topic creation on three nodes.

    .venv/bin/python bench/cluster.py [--runs 10] [--topics 1000] [--partitions 10] [--replication N]
                                      [--data-failover RUNS] [--catch-up MIB] [--reassign MIB]
                                      [--follower-read MIB]

Uses target/release/gregor (bench/run.sh builds it). Prints one JSON line per measurement.

* failover: a fresh three-node cluster per run; the active controller (the quorum leader the
  nodes logged) is SIGKILLed, and the time is taken from the kill to the first CreateTopics a
  survivor answers successfully (retried every 50 ms through the survivor, as a client would).
* bulk creation: `--topics` topics of `--partitions` partitions created through one node in
  CreateTopics requests of 100 topics, until Metadata on another node shows them all.
* scale (`--scale N`, off by default): N partitions (topics of 10) on three nodes; then each
  node's resident memory, the size of its metadata log directory, and the time from starting
  one node again (after a SIGTERM) until another node lists it as an unfenced broker.
* replication (`--replication RECORDS`, off by default): on one three-node cluster, `gregor perf
  produce` of RECORDS 1 KiB records with acks=all to a 3-partition topic with replication factor
  1, then 3 (throughput, latency, and the brokers' CPU seconds per GB produced, from /proc);
  then each again at half its peak rate for the p99 there.
* data failover (`--data-failover RUNS`, off by default): a fresh three-node cluster per run,
  a topic of one partition with replication factor 3 and min.insync.replicas=2, an idempotent
  acks=all producer sending a record every millisecond; the partition's leader (not the active
  controller's node) is SIGKILLed (with broker.session.timeout.ms at its default, 9000, and at
  3000 with heartbeats every 1000 ms) or stopped with SIGTERM (controlled shutdown), and the
  time is taken from the signal to the first acknowledgement of a record sent after it; for
  SIGTERM also until the process has exited. Last, the leader on the active controller's node
  is SIGKILLed (session 3000): a controller failover comes first, and the new controller gives
  every broker a whole session from its start.
* replica catch-up (`--catch-up MIB`, off by default): MIB mebibytes produced to a partition
  with replication factor 3; a follower is stopped, its copy of the partition deleted, and it
  is started again: the time from its start until the ISR has it again, and the rate it copied
  at.
* reassignment (`--reassign MIB`, off by default): MIB mebibytes produced to a partition on
  brokers 1 and 2; `gregor reassign-partitions --execute` moves it to brokers 3 and 2 (the leader
  leaves), and the time is taken until `--verify` reports the move completed (the new replica
  copied everything, joined the ISR, the leadership moved and broker 1 deleted its copy).
* fetch from follower (`--follower-read MIB`, off by default): three nodes in three racks with
  Kafka's RackAwareReplicaSelector, MIB mebibytes in a partition with replication factor 3; then
  `gregor perf consume` of the whole partition as a consumer with no rack (it reads from the
  leader) and as one in a follower's rack (sent to that follower, KIP-392): throughput and each
  broker's CPU seconds per GB consumed; then `gregor perf e2e` (acks=all) both ways for the
  latency a follower adds, as it learns the high watermark from its next fetch.

The data directories are under $TMPDIR: on this machine's ext4 disk, creating and deleting
tens of thousands of partition directories makes the inode allocator the bottleneck, and its
cost depends on what the previous run deleted; TMPDIR=/dev/shm measures gregor itself.
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from gregor_cluster import start_cluster  # noqa: E402

LEADER_RE = re.compile(r"the metadata quorum has a leader leader=(\d+)")


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000})


def create(client, topics, partitions, timeout=30):
    futures = client.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1)
                                    for t in topics], operation_timeout=timeout, request_timeout=timeout)
    for f in futures.values():
        f.result(timeout)


def stop_all(nodes):
    for node in nodes:
        node.shutdown_quietly()


def failover_once(root):
    nodes = start_cluster(root, 3)
    try:
        create(admin(nodes[0].bootstrap), ["warm-up"], 1)
        leader = int(LEADER_RE.findall(nodes[0].log_text())[-1])
        survivor = nodes[leader % 3]
        client = admin(survivor.bootstrap)
        killed = time.monotonic()
        nodes[leader - 1].kill()
        attempt = 0
        while True:
            attempt += 1
            try:
                create(client, [f"after-{attempt}"], 1, timeout=5)
                return time.monotonic() - killed
            except Exception:  # noqa: BLE001 - retried until the new controller answers
                time.sleep(0.05)
    finally:
        stop_all(nodes)


def data_failover_once(root, how, session_ms=None, on_controller=False):
    overrides = {}
    if session_ms:
        overrides = {"broker.session.timeout.ms": str(session_ms),
                     "broker.heartbeat.interval.ms": str(session_ms // 3)}
    nodes = start_cluster(root, 3, overrides)
    try:
        bootstrap = ",".join(n.bootstrap for n in nodes)
        client = admin(bootstrap)
        # The partition's leader is the active controller's node or, by default, another one
        # (killing the controller's node adds a controller failover before the session starts).
        controller = int(LEADER_RE.findall(nodes[0].log_text())[-1])
        first = controller if on_controller else controller % 3 + 1
        replicas = [first] + [n for n in (1, 2, 3) if n != first]
        topic = NewTopic("fo", num_partitions=1, replica_assignment=[replicas], config={"min.insync.replicas": "2"})
        client.create_topics([topic], operation_timeout=30)["fo"].result(30)
        while len(client.list_topics("fo", timeout=10).topics["fo"].partitions[0].isrs) < 3:
            time.sleep(0.05)
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 1, "delivery.timeout.ms": 120000})
        acked = []

        def send(seq):
            producer.produce("fo", value=str(seq).encode(),
                             on_delivery=lambda err, _msg: err is None and acked.append((seq, time.monotonic())))
            producer.poll(0)

        seq = 0
        warm = time.monotonic() + 1.0
        while time.monotonic() < warm or not acked:
            seq += 1
            send(seq)
            time.sleep(0.001)
        leader = client.list_topics("fo", timeout=10).topics["fo"].partitions[0].leader
        assert leader == first, f"the partition is led by {leader}, not {first}"
        node = nodes[leader - 1]
        signalled = time.monotonic()
        if how == "kill":
            node.kill()
        else:
            node.expected_exits.add(node.pid)
            node.proc.send_signal(signal.SIGTERM)
        first_after = seq + 1
        exited = None
        deadline = signalled + 120
        while not any(s >= first_after for s, _ in acked):
            if exited is None and not node.alive():
                exited = time.monotonic() - signalled
            assert time.monotonic() < deadline, "no acknowledgement within 120 s of the failover"
            seq += 1
            send(seq)
            time.sleep(0.001)
        failover = min(t for s, t in acked if s >= first_after) - signalled
        if how != "kill":
            node.proc.wait(60)
            exited = exited if exited is not None else time.monotonic() - signalled
        producer.flush(30)
        return failover, exited
    finally:
        stop_all(nodes)


def data_failover(runs):
    cases = (("kill", None, False), ("kill", 3000, False), ("shutdown", None, False), ("kill", 3000, True))
    for how, session_ms, on_controller in cases:
        times, exits = [], []
        for run in range(runs):
            with tempfile.TemporaryDirectory() as root:
                failover, exited = data_failover_once(Path(root), how, session_ms, on_controller)
            times.append(failover)
            line = {"bench": "data_failover", "how": how, "session_ms": session_ms or 9000, "run": run,
                    "leader_is_controller": on_controller, "seconds": round(failover, 3)}
            if how != "kill":
                exits.append(exited)
                line["exited_s"] = round(exited, 3)
            print(json.dumps(line), flush=True)
        summary = {"bench": "data_failover", "how": how, "session_ms": session_ms or 9000, "runs": runs,
                   "leader_is_controller": on_controller,
                   "p50_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}
        if exits:
            summary["exited_p50_s"] = round(statistics.median(exits), 3)
        print(json.dumps(summary), flush=True)


def catch_up(root, mib):
    nodes = start_cluster(root, 3)
    try:
        bootstrap = ",".join(n.bootstrap for n in nodes)
        client = admin(bootstrap)
        client.create_topics([NewTopic("cu", num_partitions=1, replication_factor=3)],
                             operation_timeout=30)["cu"].result(30)
        records = mib * 1024
        perf_produce(bootstrap, "cu", records, 1024, -1)

        def isr():
            return set(client.list_topics("cu", timeout=10).topics["cu"].partitions[0].isrs)

        while isr() != {1, 2, 3}:
            time.sleep(0.05)
        leader = client.list_topics("cu", timeout=10).topics["cu"].partitions[0].leader
        follower = nodes[leader % 3]
        follower_id = leader % 3 + 1
        follower.stop()
        while follower_id in isr():
            time.sleep(0.05)
        shutil.rmtree(follower.data_dir / "cu-0")
        started = time.monotonic()
        follower.start()
        while follower_id not in isr():
            time.sleep(0.05)
        seconds = time.monotonic() - started
        copied = sum(f.stat().st_size for f in (follower.data_dir / "cu-0").glob("*.log")) / 2**20
        return {"bench": "replica_catch_up", "mib": mib, "copied_mib": round(copied, 1),
                "seconds": round(seconds, 3), "mib_per_sec": round(copied / seconds, 1)}
    finally:
        stop_all(nodes)


def reassign(root, mib):
    nodes = start_cluster(root, 3)
    try:
        bootstrap = ",".join(n.bootstrap for n in nodes)
        client = admin(bootstrap)
        client.create_topics([NewTopic("ra", num_partitions=1, replica_assignment=[[1, 2]])],
                             operation_timeout=30)["ra"].result(30)
        perf_produce(bootstrap, "ra", mib * 1024, 1024, -1)
        plan = root / "plan.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": "ra", "partition": 0, "replicas": [3, 2]}]}))

        def tool(action):
            return subprocess.run([os.environ["GREGOR_BIN"], "reassign-partitions", "--bootstrap-server",
                                   nodes[0].bootstrap, "--reassignment-json-file", str(plan), action],
                                  capture_output=True, text=True, check=True).stdout

        started = time.monotonic()
        tool("--execute")
        while "is completed" not in tool("--verify"):
            time.sleep(0.05)
        seconds = time.monotonic() - started
        copied = sum(f.stat().st_size for f in (nodes[2].data_dir / "ra-0").glob("*.log")) / 2**20
        return {"bench": "reassignment", "mib": mib, "copied_mib": round(copied, 1),
                "seconds": round(seconds, 3), "mib_per_sec": round(copied / seconds, 1)}
    finally:
        stop_all(nodes)


def follower_read(root, mib):
    nodes = start_cluster(root, 3, overrides={
        "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector"},
        node_overrides=lambda n: {"broker.rack": f"rack-{n}"})
    try:
        bootstrap = ",".join(n.bootstrap for n in nodes)
        client = admin(bootstrap)
        client.create_topics([NewTopic("fr", num_partitions=1, replication_factor=3)],
                             operation_timeout=30)["fr"].result(30)
        records = mib * 1024
        perf_produce(bootstrap, "fr", records, 1024, -1)
        leader = client.list_topics("fr", timeout=10).topics["fr"].partitions[0].leader
        follower = leader % 3 + 1
        results = []
        for reader, props in (("leader", []), ("follower", [f"client.rack=rack-{follower}"])):
            before = [cpu_seconds(n.proc.pid) for n in nodes]
            out = subprocess.run([os.environ["GREGOR_BIN"], "perf", "consume", "--bootstrap-server", bootstrap,
                                  "--topic", "fr", "--messages", str(records), "--output", "json",
                                  "--consumer-props", *props, "fetch.wait.max.ms=100"],
                                 capture_output=True, text=True, check=True)
            consumed = json.loads(out.stdout.strip().splitlines()[-1])
            gb = consumed["records"] * 1024 / 1e9
            cpu = [cpu_seconds(n.proc.pid) - b for n, b in zip(nodes, before)]
            e2e = subprocess.run([os.environ["GREGOR_BIN"], "perf", "e2e", "--bootstrap-server", bootstrap,
                                  "--topic", "fr", "--num-records", "300", "--record-size", "100",
                                  "--acks", "all", "--output", "json",
                                  "--consumer-props", *props, "fetch.wait.max.ms=100"],
                                 capture_output=True, text=True, check=True)
            latency = json.loads(e2e.stdout.strip().splitlines()[-1])
            results.append({"bench": "fetch_from_follower", "read_from": reader, "mib": mib,
                            "mb_per_sec": round(consumed["mb_per_sec"], 1),
                            "leader_cpu_s_per_gb": round(cpu[leader - 1] / gb, 3),
                            "follower_cpu_s_per_gb": round(cpu[follower - 1] / gb, 3),
                            "e2e_acks_all_p50_ms": latency["p50_ms"], "e2e_acks_all_p99_ms": latency["p99_ms"]})
            print(json.dumps(results[-1]), flush=True)
        return results
    finally:
        stop_all(nodes)


def bulk_create(root, topics, partitions):
    nodes = start_cluster(root, 3)
    try:
        client = admin(nodes[0].bootstrap)
        names = [f"bulk-{i}" for i in range(topics)]
        started = time.monotonic()
        for i in range(0, topics, 100):
            create(client, names[i:i + 100], partitions, timeout=120)
        created = time.monotonic() - started
        other = admin(nodes[1].bootstrap)
        while len([t for t in other.list_topics(timeout=30).topics if t.startswith("bulk-")]) < topics:
            time.sleep(0.05)
        seen = time.monotonic() - started
        return created, seen
    finally:
        stop_all(nodes)


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def dir_mib(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20


SNAPSHOT_RE = re.compile(r"metadata snapshot (written|loaded).*?bytes=(\d+) took_ms=(\d+)")


def snapshots(node, kind):
    """(bytes, ms) of each snapshot `node` logged as `kind` (written or loaded)."""
    return [(int(b), int(ms)) for k, b, ms in SNAPSHOT_RE.findall(node.log_text()) if k == kind]


def scale(root, partitions):
    # A snapshot every 4 MiB of metadata log, so that one covers most of the partitions.
    nodes = start_cluster(root, 3, {"metadata.log.max.record.bytes.between.snapshots": str(4 << 20)})
    try:
        client = admin(nodes[0].bootstrap)
        names = [f"scale-{i}" for i in range(partitions // 10)]
        started = time.monotonic()
        for i in range(0, len(names), 100):
            create(client, names[i:i + 100], 10, timeout=300)
        created = time.monotonic() - started
        rss = [round(rss_mib(n.pid), 1) for n in nodes]
        metadata = [round(dir_mib(n.data_dir / "__cluster_metadata-0"), 1) for n in nodes]
        written = snapshots(nodes[2], "written")
        nodes[2].stop()
        restarted = time.monotonic()
        nodes[2].start()
        listening = time.monotonic() - restarted
        while len(client.describe_cluster().result(30).nodes) < 3:
            time.sleep(0.05)
        unfenced = time.monotonic() - restarted
        loaded = snapshots(nodes[2], "loaded")
        return {"created_s": round(created, 3), "rss_mib": rss, "metadata_log_mib": metadata,
                "last_snapshot_written": {"mib": round(written[-1][0] / 2**20, 1), "ms": written[-1][1]} if written else None,
                "snapshot_loaded_at_restart": {"mib": round(loaded[-1][0] / 2**20, 1), "ms": loaded[-1][1]} if loaded else None,
                "restart_to_listening_s": round(listening, 3), "restart_to_unfenced_s": round(unfenced, 3),
                "rss_after_restart_mib": round(rss_mib(nodes[2].pid), 1)}
    finally:
        stop_all(nodes)


def cpu_seconds(pid):
    """User and system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def perf_produce(bootstrap, topic, records, size, throughput):
    out = subprocess.run([os.environ["GREGOR_BIN"], "perf", "produce", "--bootstrap-server", bootstrap,
                          "--topic", topic, "--num-records", str(records), "--record-size", str(size),
                          "--throughput", str(throughput), "--output", "json",
                          "--producer-props", "acks=all", "linger.ms=5"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def replication(root, records, size=1024):
    nodes = start_cluster(root, 3)
    try:
        bootstrap = ",".join(n.bootstrap for n in nodes)
        client = admin(bootstrap)
        results = []
        for rf in (1, 3):
            topic = f"rf{rf}"
            futures = client.create_topics([NewTopic(topic, num_partitions=3, replication_factor=rf)],
                                           operation_timeout=30)
            futures[topic].result(30)
            before = sum(cpu_seconds(n.proc.pid) for n in nodes)
            peak = perf_produce(bootstrap, topic, records, size, -1)
            cpu = sum(cpu_seconds(n.proc.pid) for n in nodes) - before
            half_rate = int(peak["records_per_sec"] / 2)
            half = perf_produce(bootstrap, topic, min(records, half_rate * 30), size, half_rate)
            results.append({"bench": "replication", "replication_factor": rf, "acks": "all",
                            "records": peak["records"], "mb_per_sec": round(peak["mb_per_sec"], 1),
                            "records_per_sec": round(peak["records_per_sec"]),
                            "p99_ms": peak["p99_ms"], "p999_ms": peak["p999_ms"],
                            "broker_cpu_s_per_gb": round(cpu / (peak["records"] * size / 1e9), 2),
                            "half_rate_records_per_sec": half_rate, "half_rate_p50_ms": half["p50_ms"],
                            "half_rate_p99_ms": half["p99_ms"], "half_rate_p999_ms": half["p999_ms"]})
            print(json.dumps(results[-1]), flush=True)
        return results
    finally:
        stop_all(nodes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=10)
    parser.add_argument("--scale", type=int, default=0, help="partitions of the scale run (0: none)")
    parser.add_argument("--replication", type=int, default=0,
                        help="records of the replication run (0: none)")
    parser.add_argument("--data-failover", type=int, default=0,
                        help="runs of each partition leader failover (0: none)")
    parser.add_argument("--catch-up", type=int, default=0,
                        help="MiB a new replica copies to join the ISR (0: none)")
    parser.add_argument("--reassign", type=int, default=0,
                        help="MiB a reassignment moves to a new replica (0: none)")
    parser.add_argument("--follower-read", type=int, default=0,
                        help="MiB consumed from the leader, then from a follower (0: none)")
    args = parser.parse_args()
    if args.follower_read:
        with tempfile.TemporaryDirectory() as root:
            follower_read(Path(root), args.follower_read)
        return
    if args.reassign:
        with tempfile.TemporaryDirectory() as root:
            print(json.dumps(reassign(Path(root), args.reassign)), flush=True)
        return
    if args.catch_up:
        with tempfile.TemporaryDirectory() as root:
            print(json.dumps(catch_up(Path(root), args.catch_up)), flush=True)
        return
    if args.data_failover:
        data_failover(args.data_failover)
        return
    if args.replication:
        with tempfile.TemporaryDirectory() as root:
            replication(Path(root), args.replication)
        return
    times = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as root:
            times.append(failover_once(Path(root)))
            print(json.dumps({"bench": "failover", "run": run, "seconds": round(times[-1], 3)}), flush=True)
    if times:
        print(json.dumps({"bench": "failover", "runs": len(times), "p50_s": round(statistics.median(times), 3),
                          "max_s": round(max(times), 3)}), flush=True)
    with tempfile.TemporaryDirectory() as root:
        created, seen = bulk_create(Path(root), args.topics, args.partitions)
    print(json.dumps({"bench": "bulk_create", "topics": args.topics, "partitions": args.partitions,
                      "created_s": round(created, 3), "seen_on_another_node_s": round(seen, 3)}), flush=True)
    if args.scale:
        with tempfile.TemporaryDirectory() as root:
            print(json.dumps({"bench": "scale", "partitions": args.scale, **scale(Path(root), args.scale)}), flush=True)


if __name__ == "__main__":
    main()
