"""Acknowledged records survive SIGKILL (with a corrupted segment tail) and SIGTERM."""

import os
import random

from clients import consume_confluent, create_topic, produce_confluent, unique_topic, watermarks
from segments import log_files, read_batches, write_after_batches


def value_of(i):
    return f"crash-{i:06d}-".encode() + b"p" * (i % 37)


def test_sigkill_with_garbage_tail_recovers_acked_records(broker):
    t = create_topic(broker.bootstrap, unique_topic("crash"), 1)
    n = 20_000
    recs = [{"key": str(i).encode(), "value": value_of(i), "partition": 0} for i in range(n)]
    reports = produce_confluent(broker.bootstrap, t, recs, acks="all", **{"linger.ms": 5})
    acked = {}
    for i, (err, p, off) in enumerate(reports):
        if err is None:
            assert p == 0
            acked[off] = value_of(i)
    assert len(acked) == n, f"only {len(acked)} of {n} acknowledged before the crash"
    last_acked = max(acked)
    assert sorted(acked) == list(range(n))

    broker.kill()
    pdir = broker.data_dir / f"{t}-0"
    logs = log_files(pdir)
    assert logs, f"no .log files in {pdir}: {sorted(os.listdir(pdir)) if pdir.exists() else 'missing dir'}"
    newest = logs[-1]
    size_before = write_after_batches(newest, random.Random(42).randbytes(1000))

    broker.start()
    lo, hi = watermarks(broker.bootstrap, t, 0)
    assert (lo, hi) == (0, last_acked + 1), f"watermarks after recovery {(lo, hi)}, expected (0, {last_acked + 1})"
    got = consume_confluent(broker.bootstrap, t, [0], n, timeout=60)
    assert len(got) == n, f"{len(got)} records after recovery, expected {n}"
    for r in got:
        assert acked.get(r["offset"]) == r["value"], f"offset {r['offset']}: {r['value'][:40]!r}"
    assert [r["offset"] for r in got] == list(range(n))

    # The torn tail is cut off exactly where the last whole batch ends, and new records
    # continue at the next offset.
    assert newest.stat().st_size == size_before
    more = [{"key": b"new", "value": f"after-{i}".encode(), "partition": 0} for i in range(5)]
    reports = produce_confluent(broker.bootstrap, t, more, acks="all")
    assert [(e, o) for e, _p, o in reports] == [(None, n + i) for i in range(5)]
    got = consume_confluent(broker.bootstrap, t, [0], n + 5, timeout=60)
    assert [r["offset"] for r in got] == list(range(n + 5))
    assert [r["value"] for r in got[n:]] == [m["value"] for m in more]
    batches = read_batches(pdir)  # every file parses as v2 batches again
    assert batches[-1].last_offset == n + 4


def test_sigkill_immediately_after_ack_multiple_partitions(broker):
    t = create_topic(broker.bootstrap, unique_topic("crash4"), 4)
    recs = [{"value": f"m{i}".encode(), "partition": i % 4} for i in range(4000)]
    reports = produce_confluent(broker.bootstrap, t, recs, acks="all")
    assert all(e is None for e, _p, _o in reports)
    broker.kill()
    broker.start()
    got = consume_confluent(broker.bootstrap, t, [0, 1, 2, 3], len(recs), timeout=60)
    assert len(got) == len(recs)
    want = {(p, o): r["value"] for r, (_e, p, o) in zip(recs, reports)}
    assert {(r["partition"], r["offset"]): r["value"] for r in got} == want


def test_sigterm_clean_shutdown_and_restart(broker):
    t = create_topic(broker.bootstrap, unique_topic("term"), 2)
    recs = [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": i % 2,
             "headers": [("i", str(i).encode())]} for i in range(3000)]
    reports = produce_confluent(broker.bootstrap, t, recs, acks="all")
    assert all(e is None for e, _p, _o in reports)
    rc = broker.stop(timeout=10)
    assert rc == 0, f"SIGTERM: exit code {rc} (None = still running after 10 s)"

    broker.start()
    got = consume_confluent(broker.bootstrap, t, [0, 1], len(recs), timeout=60)
    assert len(got) == len(recs)
    want = {(p, o): (r["key"], r["value"]) for r, (_e, p, o) in zip(recs, reports)}
    assert {(r["partition"], r["offset"]): (r["key"], r["value"]) for r in got} == want
    # Topic metadata (partition count) survived too, and appends continue.
    assert watermarks(broker.bootstrap, t, 0) == (0, 1500)
    reports = produce_confluent(broker.bootstrap, t, [{"value": b"next", "partition": 1}])
    assert [(e, p, o) for e, p, o in reports] == [(None, 1, 1500)]

    rc = broker.stop(timeout=10)
    assert rc == 0


def test_topics_survive_restart_and_deleted_stays_deleted(broker):
    from clients import admin, topic_partitions, wait_until
    keep = create_topic(broker.bootstrap, unique_topic("keep"), 3)
    gone = create_topic(broker.bootstrap, unique_topic("gone"), 2)
    a = admin(broker.bootstrap)  # keep the client alive until its future resolves
    a.delete_topics([gone])[gone].result(30)
    wait_until(lambda: topic_partitions(broker.bootstrap, gone) is None, 30, msg="deleted topic gone")
    assert broker.stop(10) == 0
    broker.start()
    assert topic_partitions(broker.bootstrap, keep) == [0, 1, 2]
    assert topic_partitions(broker.bootstrap, gone) is None


def test_sigterm_right_after_listening(broker):
    """SIGTERM that arrives as soon as the broker says it listens is a clean
    shutdown too (the handler must be installed before the listener is up)."""
    codes = []
    for _ in range(5):
        codes.append(broker.stop(timeout=10))
        broker.start()
    codes.append(broker.stop(timeout=10))
    assert codes == [0] * 6, f"exit codes {codes} (-15 = killed by SIGTERM's default action)"
