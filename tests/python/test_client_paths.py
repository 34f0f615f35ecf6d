"""Client paths no other module covers, with real clients: compaction of a transactional topic,
SIGTERM with parked fetches and open transactions, deleting and re-creating a topic in use, a
torn tail in the internal topics, static group membership, and producing to partitions added by
CreatePartitions."""

import socket
import struct
import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewPartitions

from clients import (admin, consume_confluent, consume_kafka_python, consumer_confluent, create_topic, kp_consumer,
                     kp_producer, produce_confluent, producer, read_to_end, topic_partitions, unique_topic, wait_for_partitions,
                     wait_until)
from kafka_wire import connect, frame, header_v1
from segments import log_files, read_batches, write_after_batches
from test_groups import FAST_GROUPS, committed_confluent, group_consumer, poll_records
from test_transactions import (FAST_TIMERS, describe_transaction, in_txn, list_transactions, read_values, stable_end,
                               txn_producer)


def _deliver(p, topic, value, partition, key=None, timeout=30.0):
    """Produces one record with a confluent producer, retrying produce() while the producer
    does not know the partition yet; returns the delivery report (err, partition, offset)."""
    report = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            p.produce(topic, value=value, key=key, partition=partition,
                      on_delivery=lambda err, msg: report.append((err, msg.partition(), msg.offset())))
            break
        except KafkaException as e:
            assert e.args[0].code() == KafkaError._UNKNOWN_PARTITION, e
            assert time.monotonic() < deadline, f"partition {partition} still unknown to the producer: {e}"
            p.poll(0.2)
    assert p.flush(timeout) == 0, "delivery report missing"
    return report[0]


# ------------------------------------------------------------------ 6. CreatePartitions

def test_produce_to_partitions_added_by_create_partitions(broker):
    """After CreatePartitions grows a topic from 2 to 5 partitions, confluent-kafka and kafka-python
    producers, both ones created before the change (after a metadata refresh) and new ones,
    produce explicitly to partitions 2..4, and consumers read the records back from exactly those
    partitions at offsets 0..3; partitions 0 and 1 keep their data."""
    bs = broker.bootstrap
    t = create_topic(bs, unique_topic("grow"), 2)
    old_cf = producer(bs, **{"topic.metadata.refresh.interval.ms": 1000, "linger.ms": 0})
    old_kp = kp_producer(bs, metadata_max_age_ms=1000, linger_ms=0)
    try:
        for p in (0, 1):
            assert _deliver(old_cf, t, f"cf-old-{p}".encode(), p) == (None, p, 0)
            md = old_kp.send(t, value=f"kp-old-{p}".encode(), partition=p).get(timeout=20)
            assert (md.partition, md.offset) == (p, 1)

        a = admin(bs)
        assert a.create_partitions([NewPartitions(t, 5)], operation_timeout=20,
                                   request_timeout=20)[t].result(20) is None
        wait_for_partitions(bs, t, 5)

        # The producers made before the change learn of the new partitions by a metadata refresh.
        for p in (2, 3, 4):
            assert _deliver(old_cf, t, f"cf-old-{p}".encode(), p) == (None, p, 0)

        def kp_send(prod, value, p):
            try:
                return prod.send(t, value=value, partition=p)
            except ValueError as e:  # kafka-python: "Unrecognized partition" until its metadata has it
                assert "Unrecognized partition" in str(e), e
                return None

        for p in (2, 3, 4):
            fut = wait_until(lambda p=p: kp_send(old_kp, f"kp-old-{p}".encode(), p), timeout=30, interval=0.2,
                             msg=f"the old kafka-python producer to know partition {p}")
            md = fut.get(timeout=20)
            assert (md.partition, md.offset) == (p, 1)

        new_cf = producer(bs, **{"linger.ms": 0})
        for p in (2, 3, 4):
            assert _deliver(new_cf, t, f"cf-new-{p}".encode(), p) == (None, p, 2)
        new_kp = kp_producer(bs, linger_ms=0)
        try:
            for p in (2, 3, 4):
                md = new_kp.send(t, value=f"kp-new-{p}".encode(), partition=p).get(timeout=20)
                assert (md.partition, md.offset) == (p, 3)
        finally:
            new_kp.close(timeout=10)
    finally:
        old_kp.close(timeout=10)

    want = {(p, o, f"{who}-{p}".encode()) for p in (2, 3, 4)
            for o, who in enumerate(("cf-old", "kp-old", "cf-new", "kp-new"))}
    got = consume_confluent(bs, t, [2, 3, 4], 12, timeout=20)
    assert {(r["partition"], r["offset"], r["value"]) for r in got} == want and len(got) == 12
    got = consume_kafka_python(bs, t, [2, 3, 4], 12, timeout=20)
    assert {(r["partition"], r["offset"], r["value"]) for r in got} == want and len(got) == 12
    got = consume_confluent(bs, t, [0, 1], 4, timeout=20)
    assert sorted((r["partition"], r["offset"], r["value"]) for r in got) == \
        [(p, o, f"{who}-old-{p}".encode()) for p in (0, 1) for o, who in enumerate(("cf", "kp"))]


# ------------------------------------------------------------------ 3. delete + re-create

def _partition_dirs(b, topic):
    """{partition: topic id in partition.metadata} of the topic's directories on disk (including
    any `-delete`/`-stray` leftovers, as partition -1)."""
    out = {}
    for d in b.data_dir.iterdir():
        if not d.is_dir() or not d.name.startswith(topic + "-"):
            continue
        rest = d.name[len(topic) + 1:]
        meta = d / "partition.metadata"
        ident = meta.read_text() if meta.exists() else None
        out[int(rest) if rest.isdigit() else -1] = ident
    return out


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_delete_and_recreate_topic_in_use(broker_factory, idempotent):
    """A topic with data is deleted and re-created (3 partitions, then 1) while a producer and a
    consumer use it: the old directories leave the disk, the new topic starts at offset 0 with a
    new topic id, a fresh consumer from the beginning sees only new records, the old producer's
    acknowledged records are all in the new topic at their reported offsets (nothing goes to the
    old data), its record for partition 2 (gone) fails, and the old consumer resumes on new records
    only; new clients work. The producer is plain or idempotent. (Auto-creation is off: the
    producer's metadata requests would otherwise re-create the topic with the default partition
    count first, as in Kafka.)"""
    broker = broker_factory(overrides={"auto.create.topics.enable": "false"})
    bs = broker.bootstrap
    a = admin(bs)
    t = create_topic(bs, unique_topic("recreate"), 3)
    old_ids = _partition_dirs(broker, t)
    assert sorted(old_ids) == [0, 1, 2] and all(old_ids.values())

    p = producer(bs, **{"enable.idempotence": idempotent, "topic.metadata.refresh.interval.ms": 500,
                        "linger.ms": 0, "message.timeout.ms": 20000})
    acked, failed = [], []

    def report(err, msg):
        (failed if err else acked).append((msg.value(), msg.partition(), msg.offset(), err))

    for i in range(30):
        p.produce(t, value=f"old-{i}".encode(), partition=i % 3, on_delivery=report)
    assert p.flush(20) == 0 and not failed and len(acked) == 30

    c = consumer_confluent(bs, **{"auto.offset.reset": "earliest", "topic.metadata.refresh.interval.ms": 500})
    c.assign([TopicPartition(t, 0, 0)])
    seen = []

    def drain(until, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, f"old consumer got {seen}"
            for m in c.consume(100, timeout=0.2):
                if m.error() is None:
                    seen.append((m.offset(), m.value()))
    try:
        drain(lambda: len(seen) >= 10)
        assert seen == [(i, f"old-{3 * i}".encode()) for i in range(10)]
        seen.clear()

        assert a.delete_topics([t], operation_timeout=20)[t].result(20) is None
        wait_until(lambda: topic_partitions(bs, t) is None, 20, msg=f"{t} gone from metadata")
        wait_until(lambda: _partition_dirs(broker, t) == {}, 20, msg=f"the directories of {t} removed")
        acked.clear()
        # The producer keeps producing while the topic does not exist.
        refused = []

        def produce(value, partition):
            try:
                p.produce(t, value=value, partition=partition, on_delivery=report)
            except KafkaException as e:
                refused.append((value, e.args[0].code()))
        produce(b"gap-0", 0)
        produce(b"gap-p2", 2)
        p.poll(0.3)

        create_topic(bs, t, 1)
        new_ids = _partition_dirs(broker, t)
        assert list(new_ids) == [0] and new_ids[0] and new_ids[0] != old_ids[0], (old_ids, new_ids)

        for i in range(2):
            produce(f"new-{i}".encode(), 0)
        produce(b"new-p2", 2)
        assert p.flush(30) == 0
        outcomes = {v: "acked" for v, *_ in acked}
        outcomes.update({v: e.code() for v, _p, _o, e in failed})
        outcomes.update(dict(refused))
        assert set(outcomes) == {b"gap-0", b"gap-p2", b"new-0", b"new-1", b"new-p2"}, (acked, failed, refused)
        # Every record the old producer got acknowledged is in the new topic at its offset.
        assert all(part == 0 for _v, part, _o, _e in acked), acked
        assert sorted(o for _v, _p, o, _e in acked) == list(range(len(acked))), acked
        assert {v for v, *_ in acked} >= {b"new-0", b"new-1"}, (acked, failed)
        # Partition 2 no longer exists: those records fail (librdkafka reports _UNKNOWN_PARTITION,
        # or _DESTROY when it drops the partition while the record waits in its queue).
        assert outcomes[b"gap-p2"] != "acked" and outcomes[b"new-p2"] != "acked", (outcomes, failed)

        got = consume_confluent(bs, t, [0], len(acked), timeout=20)
        assert sorted((r["offset"], r["value"]) for r in got) == sorted((o, v) for v, _p, o, _e in acked)

        # The old consumer (at offset 10 of the old topic, past the new topic's end) is reset to the
        # new topic's start.
        want = sorted((o, v) for v, _p, o, _e in acked)
        drain(lambda: sorted(seen) == want or len(seen) > len(want))
        assert sorted(seen) == want
    finally:
        c.close()

    # New clients work.
    assert _deliver(producer(bs), t, b"fresh", 0) == (None, 0, len(acked))
    got = consume_confluent(bs, t, [0], len(acked) + 1, timeout=20)
    assert [r["value"] for r in got][-1] == b"fresh" and [r["offset"] for r in got] == list(range(len(acked) + 1))
    assert not any(v.startswith(b"old-") for v in (r["value"] for r in got))


# ------------------------------------------------------------------ 1. compaction + transactions

CLEANER = {"log.cleaner.backoff.ms": 100}
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "1000", "min.cleanable.dirty.ratio": "0.01",
           "delete.retention.ms": "100", "min.compaction.lag.ms": "0", "segment.ms": "200"}


def _transactional_compaction(b, delete_retention_ms, until_markers_gone=False):
    """Committed and aborted transactions of one producer write keys k0..k5 (and `ghost`, only in
    aborted ones) of a compacted topic; commits filler transactions until the cleaner has left one
    record per key (and, with until_markers_gone, removed the abort markers too). Returns (topic,
    the expected records (offset, key, value) of the keys)."""
    bs = b.bootstrap
    t = create_topic(bs, unique_topic("txcompact"), 1,
                     config={**COMPACT, "delete.retention.ms": str(delete_retention_ms)})
    p = txn_producer(bs, "tx-compact-" + uuid.uuid4().hex[:6])
    offsets = {}
    abort_markers = set()

    def txn(records, commit):
        p.begin_transaction()
        for k, v in records:
            p.produce(t, key=k.encode(), value=v.encode(), partition=0,
                      on_delivery=lambda err, msg: offsets.__setitem__(msg.value(), msg.offset()))
        assert p.flush(20) == 0
        (p.commit_transaction if commit else p.abort_transaction)(20)
        if not commit:  # the marker follows the transaction's last record
            abort_markers.add(max(offsets[v.encode()] for _k, v in records) + 1)

    keys = [f"k{i}" for i in range(6)]
    for r in range(5):
        txn([(k, f"c{r}-{k}") for k in keys], True)
        txn([(k, f"a{r}-{k}") for k in keys] + [("ghost", f"a{r}-ghost")], False)
    txn([(k, f"c5-{k}") for k in keys[:3]], True)
    txn([(k, f"a5-{k}") for k in keys] + [("ghost", "a5-ghost")], False)
    want = {k.encode(): f"{'c5' if i < 3 else 'c4'}-{k}".encode() for i, k in enumerate(keys)}
    want_records = sorted((offsets[v], k, v) for k, v in want.items())
    partition_dir = b.data_dir / f"{t}-0"
    rounds = [0]

    def cleaned():
        # Committed filler transactions push the keyed records out of the active segment (only
        # inactive segments are cleaned) and keep the log dirty enough for the next clean.
        done = keyed(read_to_end(bs, t, "read_uncommitted")) == want_records \
            and f"cleaned log topic={t}" in b.log_text()
        if done and until_markers_gone:
            done = not abort_markers & {x.base_offset for x in read_batches(partition_dir, strict=False)}
        if done:
            return True
        rounds[0] += 1
        txn([("filler", "x" * 100) for _ in range(3)], True)
        return False

    wait_until(cleaned, timeout=60, interval=0.2, msg="the cleaner to leave one committed record per key")
    assert rounds[0] >= 1
    return t, want_records


def keyed(records):
    return sorted(r for r in records if r[1] != b"filler")


def read_committed_kafka_python(bootstrap, topic):
    from kafka import TopicPartition as KTP
    end = stable_end(bootstrap, topic)
    kc = kp_consumer(bootstrap, isolation_level="read_committed")
    try:
        kc.assign([KTP(topic, 0)])
        kc.seek_to_beginning()
        got = []
        deadline = time.monotonic() + 20
        while kc.position(KTP(topic, 0)) < end:
            assert time.monotonic() < deadline, f"kafka-python read {got} below {end}"
            for msgs in kc.poll(timeout_ms=300).values():
                got += [(m.offset, m.key, m.value) for m in msgs]
        return got
    finally:
        kc.close()


def test_compaction_of_a_transactional_topic(broker_factory):
    """Committed and aborted transactions write the same keys of a compacted topic; once the
    cleaner has cleaned the segments (its `cleaned log` line), read_committed and read_uncommitted
    consumers (confluent-kafka, and kafka-python read_committed) from the beginning see exactly the
    latest committed record per key at its original offset: never an aborted value, nothing for a
    key written only by aborted transactions, and a key whose last write was aborted keeps its last
    committed value (an aborted record must not supersede a committed one); the same after a
    restart. The markers stay (delete.retention.ms is long)."""
    b = broker_factory(overrides={**CLEANER, **FAST_TIMERS})
    t, want = _transactional_compaction(b, 600_000)
    committed = read_to_end(b.bootstrap, t, "read_committed")
    assert keyed(committed) == want
    assert not [r for r in committed if r[2].startswith(b"a")], committed
    assert keyed(read_to_end(b.bootstrap, t, "read_uncommitted")) == want
    assert keyed(read_committed_kafka_python(b.bootstrap, t)) == want
    # The same after a restart, which rebuilds the producer and transaction state from the
    # cleaned log.
    b.restart()
    assert keyed(read_to_end(b.bootstrap, t, "read_committed")) == want
    assert keyed(read_to_end(b.bootstrap, t, "read_uncommitted")) == want


def test_compaction_removing_abort_markers_keeps_committed_data_visible(broker_factory):
    """As above with delete.retention.ms=100: the cleaner removes the aborted data and then the
    abort markers themselves. Kafka drops an aborted transaction from the transaction index together
    with its marker, so read_committed consumers still see the same producer's committed records;
    a broker that keeps listing the aborted transaction (first offset below a committed batch of the
    producer, with no abort marker left to end it) makes clients skip them all."""
    b = broker_factory(overrides={**CLEANER, **FAST_TIMERS})
    t, want = _transactional_compaction(b, 100, until_markers_gone=True)
    assert keyed(read_to_end(b.bootstrap, t, "read_uncommitted")) == want
    assert keyed(read_to_end(b.bootstrap, t, "read_committed")) == want
    assert keyed(read_committed_kafka_python(b.bootstrap, t)) == want


# ------------------------------------------------------------------ 2. SIGTERM, parked fetches, open txns

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def park_raw_fetch(b, topic, wait_ms=60_000):
    """Sends a Fetch v4 (read_uncommitted) for partition 0 at offset 0 of an empty topic, waiting up
    to wait_ms for 1 byte, and checks that the broker holds it (no answer within 0.5 s); returns
    the socket."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, wait_ms, 1, 1 << 20, 0) + struct.pack(">ih", 1, len(name)) + name \
        + struct.pack(">iiqi", 1, 0, 0, 1 << 20)
    s = connect(b)
    s.sendall(frame(header_v1(1, 4, 41) + body))
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(1)
    return s


def test_sigterm_with_parked_fetches_and_open_transactions(broker_factory):
    """SIGTERM while fetches (librdkafka consumers and a raw Fetch, max wait 60 s) are parked on
    an empty partition and two transactions are open: the broker exits 0 within a few seconds,
    logging a clean stop, and the parked fetch's connection is answered or closed at once. After a
    start on the same port: nothing acknowledged is lost; the open transaction of the live producer
    is still Ongoing (it bounds the last stable offset) and that producer can still add to it and
    commit it; the other one (transaction.timeout.ms=4000) is aborted by the coordinator and its
    producer can no longer commit; a new producer with its id works; the parked consumers resume
    and get a new record; read_committed readers see only committed data."""
    port = free_port()
    b = broker_factory(overrides={**FAST_TIMERS, "listeners": f"PLAINTEXT://127.0.0.1:{port}"})
    bs = b.bootstrap
    t = create_topic(bs, unique_topic("term-txn"), 3)
    empty = create_topic(bs, unique_topic("term-empty"), 1)

    plain = [{"value": f"plain-{i}".encode(), "partition": 1} for i in range(50)]
    reports = produce_confluent(bs, t, plain, acks="all", **{"enable.idempotence": True})
    assert [(e, o) for e, _p, o in reports] == [(None, i) for i in range(50)]

    stay_id, expire_id = "tx-stay-" + uuid.uuid4().hex[:6], "tx-expire-" + uuid.uuid4().hex[:6]
    stay = txn_producer(bs, stay_id, **{"reconnect.backoff.max.ms": 200})
    in_txn(stay, t, ["c0"])
    stay.begin_transaction()
    stay.produce(t, b"open-1", partition=0)
    assert stay.flush(20) == 0
    expire = txn_producer(bs, expire_id, **{"transaction.timeout.ms": 4000, "reconnect.backoff.max.ms": 200})
    expire.begin_transaction()
    expire.produce(t, b"open-2", partition=2)
    assert expire.flush(20) == 0

    consumers = [consumer_confluent(bs, **{"fetch.wait.max.ms": 60_000, "socket.timeout.ms": 180_000,
                                           "reconnect.backoff.max.ms": 200})
                 for _ in range(2)]
    for c in consumers:
        c.assign([TopicPartition(empty, 0, 0)])
        assert c.poll(0.5) is None  # connected; its fetch waits on the empty partition
    raw = park_raw_fetch(b, empty)
    try:
        started = time.monotonic()
        rc = b.stop(timeout=20)
        took = time.monotonic() - started
        assert rc == 0, f"SIGTERM: exit code {rc} (None = still running after 20 s)"
        assert took < 8, f"SIGTERM took {took:.1f}s with parked fetches"
        log = b.log_text()
        assert "SIGTERM received, shutting down" in log and "gregor stopped cleanly" in log, log[-2000:]
        raw.settimeout(5)
        try:
            tail = raw.recv(1 << 16)
        except ConnectionResetError:
            tail = b""
        # The parked fetch's connection is closed, or the fetch answered (correlation id 41).
        assert tail == b"" or (len(tail) >= 8 and struct.unpack_from(">i", tail, 4)[0] == 41), tail[:64]
    finally:
        raw.close()

    b.start()
    assert b.bootstrap == bs
    # The live producer's transaction survived the restart: still open, still bounding the LSO.
    err, state, topics = describe_transaction(b, stay_id)
    assert (err, state, topics) == (0, "Ongoing", [(t, [0])])
    assert stable_end(bs, t, 0) == 2
    assert read_values(bs, t, "read_committed", 1) == ["c0"]
    stay.produce(t, b"open-1b", partition=0)
    assert stay.flush(20) == 0
    stay.commit_transaction(30)
    assert read_values(bs, t, "read_committed", 3) == ["c0", "open-1", "open-1b"]

    # The other one times out and is aborted (open-2 at 0, the abort marker at 1).
    wait_until(lambda: stable_end(bs, t, 2) == 2, timeout=30, msg="the timed-out transaction aborted")
    assert read_values(bs, t, "read_committed", 0, partition=2) == []
    assert read_values(bs, t, "read_uncommitted", 1, partition=2) == ["open-2"]
    with pytest.raises(KafkaException):
        expire.commit_transaction(20)
    again = txn_producer(bs, expire_id)
    in_txn(again, t, ["after"], partition=2)
    assert read_values(bs, t, "read_committed", 1, partition=2) == ["after"]

    got = consume_confluent(bs, t, [1], 50, timeout=20)
    assert [(r["offset"], r["value"]) for r in got] == [(i, f"plain-{i}".encode()) for i in range(50)]

    # The consumers that were parked reconnect and get the next record of the empty partition.
    assert _deliver(producer(bs), empty, b"wake", 0) == (None, 0, 0)
    try:
        for c in consumers:
            m = wait_until(lambda c=c: (lambda m: m if m is not None and m.error() is None else None)(c.poll(0.2)),
                           timeout=30, interval=0, msg="a parked consumer to resume")
            assert (m.offset(), m.value()) == (0, b"wake")
    finally:
        for c in consumers:
            c.close()


# ------------------------------------------------------------------ 4. torn tails in internal topics

def _tear_internal_tails(b, topic, garbage):
    """Writes half of a copy of the last batch, renumbered as the next batch (a write torn by the
    crash), plus `garbage`, after the batches of the newest .log segment of every partition of an
    internal topic that holds data; returns {segment: where its batches end}."""
    torn = {}
    for d in sorted(b.data_dir.glob(f"{topic}-*")):
        batches = read_batches(d)
        if not batches:
            continue
        last = batches[-1]
        newest = log_files(d)[-1]
        assert newest.name == last.file.rsplit("/", 1)[-1], (newest, last.file)
        whole = newest.read_bytes()
        copy = struct.pack(">q", last.last_offset + 1) + whole[last.position + 8:last.position + 12 + last.length]
        torn[newest] = write_after_batches(newest, copy[:len(copy) // 2] + garbage)
    return torn


def test_torn_tails_of_consumer_offsets_and_transaction_state(broker_factory):
    """A consumer group commits offsets (plainly and through a transaction) and a transactional id
    commits and aborts transactions; after a SIGKILL, the newest segment of every
    __consumer_offsets and __transaction_state partition with data gets a torn tail (half of a next
    batch; for __transaction_state followed by garbage). The broker starts, cuts each tail back to
    the last whole batch, keeps the committed offsets (the group resumes exactly after them) and
    the transactional id's state (same producer id, CompleteAbort), and a new producer with that
    id initialises (same producer id) and commits."""
    import random

    b = broker_factory(overrides={**FAST_TIMERS, **FAST_GROUPS, "offsets.topic.num.partitions": 3})
    bs = b.bootstrap
    t = create_topic(bs, unique_topic("torn"), 2)
    out = create_topic(bs, unique_topic("torn-out"), 1)
    reports = produce_confluent(bs, t, [{"value": f"v{p}-{i}".encode(), "partition": p}
                                        for i in range(10) for p in (0, 1)])
    assert all(e is None for e, _p, _o in reports)

    g = "torn-" + uuid.uuid4().hex[:8]
    c = group_consumer(bs, g)
    c.subscribe([t])
    poll_records(c, 20, grace=0)
    c.commit(offsets=[TopicPartition(t, 0, 4), TopicPartition(t, 1, 9)], asynchronous=False)
    c.commit(offsets=[TopicPartition(t, 0, 7), TopicPartition(t, 1, 5)], asynchronous=False)

    txn_id = "tx-torn-" + uuid.uuid4().hex[:6]
    p = txn_producer(bs, txn_id)
    p.begin_transaction()
    p.produce(out, b"kept", partition=0)
    p.send_offsets_to_transaction([TopicPartition(t, 0, 8)], c.consumer_group_metadata(), 20)
    p.commit_transaction(20)
    in_txn(p, out, ["dropped"], commit=False)
    c.close()
    assert committed_confluent(bs, g, t, [0, 1]) == {0: 8, 1: 5}
    [(_, pid, state)] = [x for x in list_transactions(b) if x[0] == txn_id]
    assert state == "CompleteAbort"

    b.kill()
    torn = {**_tear_internal_tails(b, "__consumer_offsets", b""),
            **_tear_internal_tails(b, "__transaction_state", random.Random(7).randbytes(700))}
    assert any("__consumer_offsets" in str(f) for f in torn) and any("__transaction_state" in str(f) for f in torn)
    b.start()
    bs = b.bootstrap

    for f, size in torn.items():
        assert f.stat().st_size == size, f"{f}: torn tail not cut back to the last whole batch"
    assert committed_confluent(bs, g, t, [0, 1]) == {0: 8, 1: 5}
    assert [x for x in list_transactions(b) if x[0] == txn_id] == [(txn_id, pid, "CompleteAbort")]

    c = group_consumer(bs, g)
    try:
        c.subscribe([t])
        got = poll_records(c, 7)
        assert sorted((pt, o) for pt, o, _v in got) == [(0, 8), (0, 9)] + [(1, o) for o in range(5, 10)]
    finally:
        c.close()

    again = txn_producer(bs, txn_id)
    in_txn(again, out, ["again"])
    assert read_values(bs, out, "read_committed", 2) == ["kept", "again"]
    [(_, pid2, state)] = [x for x in list_transactions(b) if x[0] == txn_id]
    assert (pid2, state) == (pid, "CompleteCommit")


# ------------------------------------------------------------------ 5. static membership

def test_static_membership_restart_and_fencing(broker_factory):
    """Static members (group.instance.id) of one group: confluent-kafka `a` and `b`, kafka-python
    `k`, 6 partitions, range. `b` closes (a static member does not leave) and a new `b` joins
    within session.timeout.ms: it gets the same partitions, `a` and `k` see no revoke/assign (the
    generation stays the same), and after the old session would have expired the group is still
    Stable with the new member id under `b`; same for a restart of the kafka-python member. A
    second consumer with a live member's instance id takes its place and partitions with no
    rebalance of the others, and the old one is fenced: FENCED_INSTANCE_ID (librdkafka: fatal
    error, kafka-python: FencedInstanceIdError). A static member that closes and does not come
    back is removed after session.timeout.ms."""
    from kafka import KafkaConsumer
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.errors import FencedInstanceIdError
    from confluent_kafka import ConsumerGroupState

    session_ms = 5000
    b = broker_factory(overrides=FAST_GROUPS)
    bs = b.bootstrap
    t = create_topic(bs, unique_topic("static"), 6)
    g = "static-" + uuid.uuid4().hex[:8]
    a = admin(bs)
    events = []  # (instance, incarnation, what, partitions or error)
    members = {}  # incarnation -> (instance, client)
    fenced = []

    def confluent_member(instance, incarnation):
        c = group_consumer(bs, g, **{"group.instance.id": instance, "session.timeout.ms": session_ms,
                                     "partition.assignment.strategy": "range", "client.id": incarnation})
        c.subscribe([t], on_assign=lambda _c, ps: events.append((instance, incarnation, "assign",
                                                                  sorted(p.partition for p in ps))),
                    on_revoke=lambda _c, ps: events.append((instance, incarnation, "revoke",
                                                             sorted(p.partition for p in ps))))
        members[incarnation] = (instance, c)
        return c

    class Listener(ConsumerRebalanceListener):
        def __init__(self, incarnation):
            self.incarnation = incarnation

        def on_partitions_assigned(self, assigned):
            events.append(("k", self.incarnation, "assign", sorted(p.partition for p in assigned)))

        def on_partitions_revoked(self, revoked):
            events.append(("k", self.incarnation, "revoke", sorted(p.partition for p in revoked)))

    def kp_member(incarnation):
        c = KafkaConsumer(bootstrap_servers=bs, group_id=g, group_instance_id="k", session_timeout_ms=session_ms,
                          heartbeat_interval_ms=500, auto_offset_reset="earliest", enable_auto_commit=False,
                          request_timeout_ms=15000, client_id=incarnation)
        assert c.partitions_for_topic(t) == set(range(6))  # metadata first: it may lead a rebalance
        c.subscribe([t], listener=Listener(incarnation))
        members[incarnation] = ("k", c)
        return c

    def pump(until=None, seconds=None, timeout=30.0):
        """Polls every live member (they must poll to heartbeat) until until() or for `seconds`."""
        deadline = time.monotonic() + (seconds if seconds is not None else timeout)
        while True:
            for incarnation, (instance, c) in list(members.items()):
                if isinstance(c, KafkaConsumer):
                    c.poll(timeout_ms=20)
                else:
                    for m in c.consume(10, timeout=0.02):
                        if m.error():
                            events.append((instance, incarnation, "error", m.error()))
                            if m.error().code() == KafkaError._FATAL:
                                del members[incarnation]
            if until is not None and until():
                return
            if time.monotonic() >= deadline:
                assert seconds is not None, f"timed out; events {events}"
                return

    def assignment(incarnation):
        c = members[incarnation][1]
        return sorted(tp.partition for tp in c.assignment())

    def described():
        d = a.describe_consumer_groups([g], request_timeout=10)[g].result()
        return d.state, {m.group_instance_id: (m.member_id, sorted(p.partition for p in m.assignment.topic_partitions))
                         for m in d.members}

    def member_id(incarnation):
        c = members[incarnation][1]
        return c._coordinator._generation.member_id if isinstance(c, KafkaConsumer) else c.memberid()

    def generation(incarnation):
        """The group generation a kafka-python member is in (no public accessor)."""
        return members[incarnation][1]._coordinator._generation.generation_id

    def others(instance):
        return [e for e in events if e[0] != instance]

    confluent_member("a", "a1")
    pump(lambda: assignment("a1") == list(range(6)))  # a leads the group
    kp_member("k1")
    confluent_member("b", "b1")
    pump(lambda: all(len(assignment(i)) == 2 for i in ("a1", "k1", "b1"))
         and sorted(assignment("a1") + assignment("k1") + assignment("b1")) == list(range(6))
         and described()[0] == ConsumerGroupState.STABLE)
    owned = {"a": assignment("a1"), "k": assignment("k1"), "b": assignment("b1")}
    gen = generation("k1")
    events.clear()

    # b restarts within the session timeout: same partitions back, nobody else rebalances.
    members.pop("b1")[1].close()
    confluent_member("b", "b2")
    pump(lambda: assignment("b2") == owned["b"])
    assert others("b") == [], events
    # Past the old incarnation's session timeout: still no rebalance, b2 holds b's place.
    pump(seconds=session_ms / 1000 + 1)
    assert others("b") == [] and [e[2:] for e in events if e[1] == "b2"] == [("assign", owned["b"])], events
    state, by_instance = described()
    assert state == ConsumerGroupState.STABLE
    assert by_instance == {i: (member_id(inc), owned[i]) for i, inc in (("a", "a1"), ("k", "k1"), ("b", "b2"))}
    assert generation("k1") == gen
    events.clear()

    # The kafka-python member restarts the same way.
    members.pop("k1")[1].close()
    kp_member("k2")
    pump(lambda: assignment("k2") == owned["k"] and described()[1]["k"][0] == member_id("k2"))
    assert others("k") == [], events
    assert generation("k2") == gen  # rejoined into the current generation, no new one
    events.clear()

    # A second live `b`: it takes b2's place and partitions, b2 is fenced, nobody else rebalances.
    b2 = members["b2"][1]
    confluent_member("b", "b3")
    pump(lambda: "b2" not in members and assignment("b3") == owned["b"])
    fenced.append(b2)
    [(_, _, _, err)] = [e for e in events if e[1] == "b2"]
    assert err.code() == KafkaError._FATAL and "Static consumer fenced by other consumer with same " \
        "group.instance.id" in err.str(), err  # librdkafka's text for FENCED_INSTANCE_ID
    assert others("b") == [], events
    state, by_instance = described()
    assert state == ConsumerGroupState.STABLE and by_instance["b"] == (member_id("b3"), owned["b"])
    assert generation("k2") == gen
    events.clear()

    # A second live `k` (kafka-python): it takes k2's place; k2 is fenced (kafka-python only logs
    # the heartbeat's error, so its commit shows it: FencedInstanceIdError).
    from kafka import TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata
    kp_member("k3")
    pump(lambda: assignment("k3") == owned["k"] and described()[1]["k"][0] == member_id("k3"))
    assert others("k") == [], events
    assert generation("k3") == gen
    k2 = members.pop("k2")[1]
    with pytest.raises(FencedInstanceIdError):
        k2.commit({KTP(t, owned["k"][0]): OffsetAndMetadata(1, "", -1)})
    k2.close(autocommit=False)
    assert described() == (ConsumerGroupState.STABLE,
                           {i: (member_id(inc), owned[i]) for i, inc in (("a", "a1"), ("k", "k3"), ("b", "b3"))})

    # A static member that goes away for good is removed when its session times out: the others
    # then share its partitions.
    events.clear()
    members.pop("b3")[1].close()
    pump(lambda: sorted(assignment("a1") + assignment("k3")) == list(range(6)),
         timeout=session_ms / 1000 + 20)
    state, by_instance = described()
    assert state == ConsumerGroupState.STABLE and sorted(by_instance) == ["a", "k"]

    for _i, c in members.values():
        c.close()
    for c in fenced:
        try:
            c.close()
        except KafkaException:
            pass  # a fenced consumer's close reports the fatal error
