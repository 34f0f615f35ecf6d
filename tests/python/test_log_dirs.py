"""Several `log.dirs`: partitions are spread across them, stay where they are across restarts, and
a directory that cannot be used takes only its own partitions offline. DescribeLogDirs (through
kafka-python's admin client) reports where each partition is and how big it is."""

import json
import subprocess
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient

from clients import consume_confluent, create_topic, produce_confluent, unique_topic, wait_until
from gregor_broker import GREGOR_BIN
from segments import LOG_OVERHEAD, read_batches

KAFKA_STORAGE_ERROR = 56


def hosted(dirs, topic):
    """{partition: index of the log dir holding it}"""
    out = {}
    for i, d in enumerate(dirs):
        for p in Path(d).glob(f"{topic}-*"):
            out[int(p.name.rsplit("-", 1)[1])] = i
    return out


def test_partitions_spread_and_a_bad_dir_takes_only_its_partitions_offline(broker_factory, tmp_path):
    dirs = [tmp_path / "disk-a", tmp_path / "disk-b"]
    b = broker_factory(overrides={"log.dirs": ",".join(str(d) for d in dirs)})
    t = create_topic(b.bootstrap, unique_topic("dirs"), 4)
    placement = hosted(dirs, t)
    assert sorted(placement) == [0, 1, 2, 3]
    assert sorted(placement.values()) == [0, 0, 1, 1], placement
    produce_confluent(b.bootstrap, t, [{"value": f"v{p}".encode() * (p + 1), "partition": p} for p in range(4)])
    described = describe_log_dirs(b.bootstrap)
    assert sorted(described) == sorted(str(d) for d in dirs)
    for i, d in enumerate(dirs):
        error, total, usable, partitions = described[str(d)]
        assert error == 0 and total >= usable > 0
        mine = {p: size for (topic, p), (size, _lag, _future) in partitions.items() if topic == t}
        assert sorted(mine) == sorted(p for p, at in placement.items() if at == i)
        for p, size in mine.items():
            assert size == segment_bytes(d / f"{t}-{p}") > 0
        assert all(lag == 0 and not future for size, lag, future in partitions.values())
    # Only the partitions asked for.
    [(_, _, _, partitions)] = [v for v in describe_log_dirs(b.bootstrap, {t: [2]}).values() if v[3]]
    assert list(partitions) == [(t, 2)]

    # Restart: every partition is found where it was, with its data.
    b.stop()
    b.start()
    assert hosted(dirs, t) == placement
    got = consume_confluent(b.bootstrap, t, range(4), 4)
    assert sorted((r["partition"], r["value"]) for r in got) == [(p, f"v{p}".encode() * (p + 1)) for p in range(4)]

    # The second disk fails: replace it with a file so it cannot be read.
    b.stop()
    moved = tmp_path / "disk-b.lost"
    dirs[1].rename(moved)
    dirs[1].write_text("not a directory")
    b.start()
    on_a = sorted(p for p, d in placement.items() if d == 0)
    on_b = sorted(p for p, d in placement.items() if d == 1)
    reports = produce_confluent(b.bootstrap, t, [{"value": b"after", "partition": p} for p in range(4)],
                                **{"message.timeout.ms": 5000, "retries": 0})
    # Metadata shows the partitions of the failed dir without a leader (as Kafka shows those of
    # a leader whose log dir failed), so the producer keeps them until its timeout.
    errors = {p: err and err.code() for err, p, _o in reports}
    assert errors == {p: None if p in on_a else KafkaError._MSG_TIMED_OUT for p in range(4)}, errors
    described = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(t, timeout=30).topics[t]
    shown = {p: (m.leader, m.error and m.error.code()) for p, m in described.partitions.items()}
    assert shown == {p: (1, None) if p in on_a else (-1, KafkaError.LEADER_NOT_AVAILABLE)
                     for p in range(4)}, shown
    assert "log dir is offline" in b.log_text()
    described = describe_log_dirs(b.bootstrap)
    assert described[str(dirs[1])][0] == KAFKA_STORAGE_ERROR
    assert described[str(dirs[0])][0] == 0
    # The CLI shows the same, in kafka-log-dirs.sh's JSON.
    out = subprocess.run([GREGOR_BIN, "log-dirs", "--describe", "--bootstrap-server", b.bootstrap,
                          "--topic-list", t, "--output", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    [broker] = json.loads(out.stdout)["brokers"]
    by_dir = {d["logDir"]: d for d in broker["logDirs"]}
    assert by_dir[str(dirs[1])]["error"] == "KafkaStorageError"
    assert sorted(p["partition"] for p in by_dir[str(dirs[0])]["partitions"]) == [f"{t}-{p}" for p in on_a]
    got = consume_confluent(b.bootstrap, t, on_a, 2 * len(on_a))
    assert sorted(r["value"] for r in got) == sorted([b"after"] * len(on_a) + [f"v{p}".encode() * (p + 1) for p in on_a])


def segment_bytes(partition_dir):
    """The batches' bytes in a partition directory (files may hold preallocated zeros too)."""
    return sum(LOG_OVERHEAD + b.length for b in read_batches(partition_dir))


def describe_log_dirs(bootstrap, topic_partitions=None):
    """{log dir: (error code, total bytes, usable bytes, {(topic, partition): (size, lag, future)})}"""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [answer] = admin.describe_log_dirs(topic_partitions)
    finally:
        admin.close()
    return {d["log_dir"]: (d["error_code"], d["total_bytes"], d["usable_bytes"],
                           {(t["name"], p["partition_index"]): (p["partition_size"], p["offset_lag"], p["is_future_key"])
                            for t in d["topics"] for p in t["partitions"]})
            for d in answer["log_dirs"]}


def test_a_partition_moves_to_another_log_dir_while_it_is_written(broker_factory, tmp_path):
    """AlterReplicaLogDirs through kafka-python: the partition is copied to the other directory
    and swapped in while a producer keeps writing; every acknowledged record is there once, in
    order, afterwards and after a restart, and the old directory is gone."""
    import threading

    from confluent_kafka import Producer
    from kafka.errors import LogDirNotFoundError, NoError, UnknownTopicOrPartitionError

    b, t, dirs, src, dest = one_partition_on_two_dirs(broker_factory, tmp_path, "move", 65536)
    src_dir = dirs[src]
    before = [{"value": f"before-{i}".encode() * 50, "partition": 0} for i in range(2000)]
    assert all(err is None for err, _p, _o in produce_confluent(b.bootstrap, t, before))

    acked, stop = [], threading.Event()

    def keep_writing():
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 2, "broker.address.family": "v4"})
        i = 0
        while not stop.is_set():
            value = f"live-{i}".encode()
            p.produce(t, value, partition=0,
                      on_delivery=lambda err, msg, v=value: acked.append(v) if err is None else None)
            p.poll(0.001)
            i += 1
        assert p.flush(30) == 0

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        wait_until(lambda: len(acked) > 100, msg="the writer to get going")
        admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
        try:
            result = admin.alter_replica_log_dirs({(t, 0, 1): str(dest)})
            assert list(result.values()) == [NoError], result
            refused = admin.alter_replica_log_dirs({(t, 0, 1): str(tmp_path / "not-a-log-dir")})
            assert list(refused.values()) == [LogDirNotFoundError], refused
            unknown = admin.alter_replica_log_dirs({(t, 5, 1): str(dest)})
            assert list(unknown.values()) == [UnknownTopicOrPartitionError], unknown
        finally:
            admin.close()

        def moved():
            d = describe_log_dirs(b.bootstrap)
            return (t, 0) in d[str(dest)][3] and (t, 0) not in d[str(src_dir)][3] and \
                not d[str(dest)][3][(t, 0)][2]

        wait_until(moved, timeout=60, msg="the partition to be in the other log dir")
        at_swap = len(acked)
        wait_until(lambda: len(acked) > at_swap + 100, msg="writes to the moved partition")
    finally:
        stop.set()
        writer.join()
    assert not (src_dir / f"{t}-0").exists()
    assert [p.name for p in src_dir.iterdir() if p.name.startswith(t)] == []
    want = [r["value"] for r in before] + acked
    got = consume_confluent(b.bootstrap, t, [0], len(want), timeout=60)
    assert [r["value"] for r in got] == want
    b.stop()
    b.start()
    assert hosted(dirs, t) == {0: 1 - src}
    assert [r["value"] for r in consume_confluent(b.bootstrap, t, [0], len(want), timeout=60)] == want


def test_a_move_killed_midway_leaves_the_partition_whole(broker_factory, tmp_path):
    """SIGKILL while a partition is being copied to another log dir: after the restart the
    partition is in exactly one place with every acknowledged record, and no copy is left over."""
    b, t, dirs, src, dest = one_partition_on_two_dirs(broker_factory, tmp_path, "kill", 1048576)
    records = [{"value": f"{i:08d}".encode() * 1000, "partition": 0} for i in range(30_000)]
    reports = produce_confluent(b.bootstrap, t, records, **{"linger.ms": 20, "compression.type": "none"})
    assert all(err is None for err, _p, _o in reports)

    admin = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        admin.alter_replica_log_dirs({(t, 0, 1): str(dest)})
    finally:
        admin.close()
    # Kill as soon as the copy has started (it takes a while for 240 MB).
    wait_until(lambda: any(p.name.endswith("-future") for p in dest.iterdir()), timeout=30, interval=0.005,
               msg="the copy to start")
    b.kill()
    b.start()
    placement = hosted(dirs, t)
    assert list(placement) == [0]
    leftovers = [p.name for d in dirs for p in d.iterdir() if p.name.endswith(("-future", "-delete"))]
    assert leftovers == []
    got = consume_confluent(b.bootstrap, t, [0], len(records), timeout=120)
    assert [r["value"] for r in got] == [r["value"] for r in records]


def one_partition_on_two_dirs(broker_factory, tmp_path, prefix, segment_bytes):
    """A broker with two log dirs and a one-partition topic: (broker, topic, dirs, index of the
    dir holding the partition, the other dir)."""
    dirs = [tmp_path / "disk-a", tmp_path / "disk-b"]
    b = broker_factory(overrides={"log.dirs": ",".join(str(d) for d in dirs), "log.segment.bytes": str(segment_bytes)})
    t = create_topic(b.bootstrap, unique_topic(prefix), 1)
    [src] = hosted(dirs, t).values()
    return b, t, dirs, src, dirs[1 - src]
