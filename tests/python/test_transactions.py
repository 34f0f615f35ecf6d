"""Transactions with confluent-kafka (librdkafka): commit and abort visibility under
read_committed, the last stable offset, consume-transform-produce with
send_offsets_to_transaction, zombie fencing, timeouts, recovery after a crash, the admin
transaction APIs, and refusals of bad requests."""

import struct
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

from clients import admin, consumer_confluent, create_topic, read_to_end, unique_topic, wait_until
from kafka_wire import (compact_string, connect, frame, header_v2, read_compact_string, read_uvarint,
                        recv_frame, uvarint)

TRANSACTIONAL_ID_NOT_FOUND = 105  # not among confluent-kafka's KafkaError constants
FAST_TIMERS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": 200,
               "offsets.topic.num.partitions": 3, "transaction.state.log.num.partitions": 3}


def txn_producer(bootstrap, txn_id, **conf):
    c = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5,
         "broker.address.family": "v4"}
    c.update(conf)
    p = Producer(c)
    p.init_transactions(20)
    return p


def in_txn(p, topic, values, commit=True, partition=0):
    """One transaction of `values`, delivered before it ends (so an abort really aborts data)."""
    p.begin_transaction()
    for v in values:
        p.produce(topic, v.encode(), partition=partition)
    assert p.flush(20) == 0
    (p.commit_transaction if commit else p.abort_transaction)(20)


def read_values(bootstrap, topic, isolation, expected, partition=0, timeout=15.0):
    """The values (as text) `read_to_end` finds."""
    return [v.decode() for _o, _k, v in read_to_end(bootstrap, topic, isolation, expected, partition, timeout)]


def stable_end(bootstrap, topic, partition=0):
    """The high watermark a read_committed consumer is told: the last stable offset."""
    c = consumer_confluent(bootstrap, **{"isolation.level": "read_committed"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)[1]
    finally:
        c.close()


def committed(bootstrap, group, topic, partition=0):
    c = consumer_confluent(bootstrap, **{"group.id": group, "isolation.level": "read_committed"})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def test_commit_and_abort_visibility(broker):
    t = create_topic(broker.bootstrap, unique_topic("txn"))
    p = txn_producer(broker.bootstrap, "tx-visibility")
    in_txn(p, t, ["c0", "c1", "c2"])
    in_txn(p, t, ["a0", "a1"], commit=False)
    in_txn(p, t, ["c3"])
    assert read_values(broker.bootstrap, t, "read_committed", 4) == ["c0", "c1", "c2", "c3"]
    assert read_values(broker.bootstrap, t, "read_uncommitted", 6) == ["c0", "c1", "c2", "a0", "a1", "c3"]
    # 6 records and 3 markers; nothing is open, so the stable end is the log end.
    assert stable_end(broker.bootstrap, t) == 9


def test_open_transaction_holds_back_read_committed(broker):
    t = create_topic(broker.bootstrap, unique_topic("lso"))
    plain = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"})
    plain.produce(t, b"before", partition=0)
    plain.flush(10)
    p = txn_producer(broker.bootstrap, "tx-open")
    p.begin_transaction()
    p.produce(t, b"pending", partition=0)
    assert p.flush(20) == 0
    # A plain record after the open transaction is not stable either.
    plain.produce(t, b"after", partition=0)
    plain.flush(10)
    assert stable_end(broker.bootstrap, t) == 1
    assert read_values(broker.bootstrap, t, "read_committed", 1) == ["before"]
    p.commit_transaction(20)
    wait_until(lambda: stable_end(broker.bootstrap, t) == 4, msg="LSO after commit")
    assert read_values(broker.bootstrap, t, "read_committed", 3) == ["before", "pending", "after"]


def test_consume_transform_produce(broker):
    src = create_topic(broker.bootstrap, unique_topic("src"))
    dst = create_topic(broker.bootstrap, unique_topic("dst"))
    plain = Producer({"bootstrap.servers": broker.bootstrap, "broker.address.family": "v4"})
    for i in range(5):
        plain.produce(src, f"m{i}".encode(), partition=0)
    plain.flush(10)
    group = "ctp-" + unique_topic("g")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                  "broker.address.family": "v4"})
    p = txn_producer(broker.bootstrap, "tx-ctp")
    try:
        c.subscribe([src])
        msgs = []
        deadline = time.monotonic() + 20
        while len(msgs) < 5 and time.monotonic() < deadline:
            msgs += [m for m in c.consume(10, timeout=0.5) if not m.error()]
        assert len(msgs) == 5
        p.begin_transaction()
        for m in msgs:
            p.produce(dst, m.value().upper(), partition=0)
        p.send_offsets_to_transaction([TopicPartition(src, 0, 5)], c.consumer_group_metadata(), 20)
        p.commit_transaction(20)
        assert committed(broker.bootstrap, group, src) == 5
        assert read_values(broker.bootstrap, dst, "read_committed", 5) == [f"M{i}" for i in range(5)]

        # An aborted transaction moves neither the output nor the group's offset.
        p.begin_transaction()
        p.produce(dst, b"X", partition=0)
        p.send_offsets_to_transaction([TopicPartition(src, 0, 3)], c.consumer_group_metadata(), 20)
        assert p.flush(20) == 0
        p.abort_transaction(20)
        assert committed(broker.bootstrap, group, src) == 5
        assert read_values(broker.bootstrap, dst, "read_committed", 5) == [f"M{i}" for i in range(5)]
    finally:
        c.close()


def test_zombie_producer_is_fenced(broker):
    t = create_topic(broker.bootstrap, unique_topic("zombie"))
    zombie = txn_producer(broker.bootstrap, "tx-zombie")
    zombie.begin_transaction()
    zombie.produce(t, b"zombie", partition=0)
    assert zombie.flush(20) == 0
    # A new instance with the same id aborts the zombie's transaction and fences it: the
    # zombie's records are refused, and so is its commit.
    fresh = txn_producer(broker.bootstrap, "tx-zombie")
    refused = []
    try:
        zombie.produce(t, b"zombie-2", partition=0, on_delivery=lambda err, _msg: refused.append(err))
        zombie.flush(20)
    except (KafkaException, SystemError):
        pass  # the fatal error the refusal causes (raised from within the callback: SystemError)
    assert [e.code() for e in refused] == [KafkaError.INVALID_PRODUCER_EPOCH], refused
    with pytest.raises(KafkaException) as info:
        zombie.commit_transaction(20)
    assert info.value.args[0].code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                         KafkaError.INVALID_PRODUCER_EPOCH), info.value
    in_txn(fresh, t, ["fresh"])
    assert read_values(broker.bootstrap, t, "read_committed", 1) == ["fresh"]


def test_timed_out_transaction_is_aborted(broker_factory):
    b = broker_factory(overrides=FAST_TIMERS)
    t = create_topic(b.bootstrap, unique_topic("timeout"))
    p = txn_producer(b.bootstrap, "tx-timeout", **{"transaction.timeout.ms": 1000})
    p.begin_transaction()
    p.produce(t, b"late", partition=0)
    assert p.flush(20) == 0
    assert stable_end(b.bootstrap, t) == 0
    # The coordinator aborts it: the abort marker (offset 1) makes the partition stable.
    wait_until(lambda: stable_end(b.bootstrap, t) == 2, timeout=15, msg="timed-out transaction aborted")
    assert read_values(b.bootstrap, t, "read_committed", 0) == []
    with pytest.raises(KafkaException):
        p.commit_transaction(20)


def test_transactions_survive_a_crash(broker_factory):
    b = broker_factory(overrides=FAST_TIMERS)
    t = create_topic(b.bootstrap, unique_topic("crash"))
    p = txn_producer(b.bootstrap, "tx-crash")
    in_txn(p, t, ["kept"])
    in_txn(p, t, ["dropped"], commit=False)
    p.begin_transaction()
    p.produce(t, b"open", partition=0)
    assert p.flush(20) == 0
    b.restart(crash=True)
    # Recovery rebuilds the open transaction (it still bounds the stable offset) and the abort.
    assert stable_end(b.bootstrap, t) == 4
    assert read_values(b.bootstrap, t, "read_committed", 1) == ["kept"]
    # A restarted producer with the same id aborts what its predecessor left open.
    p2 = txn_producer(b.bootstrap, "tx-crash")
    wait_until(lambda: stable_end(b.bootstrap, t) == 6, msg="open transaction aborted by the new producer")
    in_txn(p2, t, ["after"])
    assert read_values(b.bootstrap, t, "read_committed", 2) == ["kept", "after"]
    assert read_values(b.bootstrap, t, "read_uncommitted", 4) == ["kept", "dropped", "open", "after"]


def test_bad_transactional_requests(broker):
    with pytest.raises(KafkaException) as info:
        txn_producer(broker.bootstrap, "tx-too-long", **{"transaction.timeout.ms": 1_000_000})
    assert info.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, info.value
    # EndTxn for a transactional id the coordinator never saw (raw, flexible v3).
    body = compact_string("nobody") + struct.pack(">qh?", 1234, 0, True) + uvarint(0)
    with connect(broker) as s:
        s.sendall(frame(header_v2(26, 3, 5) + body))
        payload = recv_frame(s)
    corr, _tags, _throttle, err = struct.unpack_from(">ibih", payload, 0)
    assert (corr, err) == (5, KafkaError.INVALID_PRODUCER_ID_MAPPING)


def list_transactions(broker, states=()):
    """ListTransactions v0: [(transactional id, producer id, state)]."""
    body = uvarint(len(states) + 1) + b"".join(compact_string(s) for s in states) + uvarint(1) + uvarint(0)
    with connect(broker) as s:
        s.sendall(frame(header_v2(66, 0, 9) + body))
        payload = recv_frame(s)
    pos = 4 + 1 + 4  # correlation id, header tags, throttle
    (err,) = struct.unpack_from(">h", payload, pos)
    assert err == 0
    pos += 2
    n, pos = read_uvarint(payload, pos)  # unknown state filters
    for _ in range(n - 1):
        _, pos = read_compact_string(payload, pos)
    n, pos = read_uvarint(payload, pos)
    out = []
    for _ in range(n - 1):
        txn_id, pos = read_compact_string(payload, pos)
        (pid,) = struct.unpack_from(">q", payload, pos)
        state, pos = read_compact_string(payload, pos + 8)
        _, pos = read_uvarint(payload, pos)  # tags
        out.append((txn_id, pid, state))
    return out


def describe_transaction(broker, txn_id):
    """DescribeTransactions v0 of one id: (error, state, [(topic, [partitions])])."""
    body = uvarint(2) + compact_string(txn_id) + uvarint(0)
    with connect(broker) as s:
        s.sendall(frame(header_v2(65, 0, 8) + body))
        payload = recv_frame(s)
    pos = 4 + 1 + 4
    n, pos = read_uvarint(payload, pos)
    assert n == 2
    (err,) = struct.unpack_from(">h", payload, pos)
    got_id, pos = read_compact_string(payload, pos + 2)
    assert got_id == txn_id
    state, pos = read_compact_string(payload, pos)
    pos += 4 + 8 + 8 + 2  # timeout, start time, producer id, epoch
    n, pos = read_uvarint(payload, pos)
    topics = []
    for _ in range(n - 1):
        topic, pos = read_compact_string(payload, pos)
        m, pos = read_uvarint(payload, pos)
        parts = list(struct.unpack_from(f">{m - 1}i", payload, pos))
        pos += 4 * (m - 1)
        _, pos = read_uvarint(payload, pos)
        topics.append((topic, parts))
    return err, state, topics


def test_list_and_describe_transactions(broker):
    t = create_topic(broker.bootstrap, unique_topic("admin"), partitions=2)
    p = txn_producer(broker.bootstrap, "tx-admin")
    p.begin_transaction()
    p.produce(t, b"x", partition=1)
    assert p.flush(20) == 0
    err, state, topics = describe_transaction(broker, "tx-admin")
    assert (err, state, topics) == (0, "Ongoing", [(t, [1])])
    listed = list_transactions(broker)
    assert [(i, s) for i, _, s in listed] == [("tx-admin", "Ongoing")]
    assert list_transactions(broker, ["CompleteCommit"]) == []
    p.commit_transaction(20)
    assert [s for _, _, s in list_transactions(broker, ["CompleteCommit"])] == ["CompleteCommit"]
    assert describe_transaction(broker, "unknown-id")[0] == TRANSACTIONAL_ID_NOT_FOUND


def test_transactional_offsets_are_compacted_and_survive_restart(broker_factory):
    """Every send_offsets_to_transaction writes transactional records to __consumer_offsets; the
    cleaner must compact them (they would otherwise grow forever) without losing the latest."""
    b = broker_factory(overrides={**FAST_TIMERS, "offsets.topic.num.partitions": 1,
                                  "offsets.topic.segment.bytes": 2048, "log.cleaner.backoff.ms": 100})
    src = create_topic(b.bootstrap, unique_topic("src"))
    group = "compact-" + unique_topic("g")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "broker.address.family": "v4"})
    p = txn_producer(b.bootstrap, "tx-offsets")
    try:
        for i in range(1, 201):
            p.begin_transaction()
            p.send_offsets_to_transaction([TopicPartition(src, 0, i)], c.consumer_group_metadata(), 20)
            p.commit_transaction(20)
    finally:
        c.close()
    assert committed(b.bootstrap, group, src) == 200

    def offset_records():
        cons = consumer_confluent(b.bootstrap, **{"isolation.level": "read_uncommitted"})
        try:
            cons.assign([TopicPartition("__consumer_offsets", 0, OFFSET_BEGINNING)])
            _, end = cons.get_watermark_offsets(TopicPartition("__consumer_offsets", 0), timeout=10)
            n, last = 0, -1
            while last < end - 2:  # the last offset may be a marker, which is never delivered
                msgs = cons.consume(1000, timeout=1)
                if not msgs:
                    break
                n += sum(1 for m in msgs if not m.error())
                last = max([last] + [m.offset() for m in msgs if not m.error()])
            return n
        finally:
            cons.close()

    wait_until(lambda: offset_records() < 50, timeout=30, msg="__consumer_offsets compacted")
    b.restart()
    assert committed(b.bootstrap, group, src) == 200


def test_interleaved_transactions_in_one_partition(broker):
    """Two producers' transactions interleave in one partition; the aborted one's records are
    dropped by producer id, the committed one's kept, in offset order."""
    t = create_topic(broker.bootstrap, unique_topic("interleave"))
    a = txn_producer(broker.bootstrap, "tx-a")
    b = txn_producer(broker.bootstrap, "tx-b")
    a.begin_transaction()
    b.begin_transaction()
    for i in range(2):
        for p, name in ((a, "a"), (b, "b")):
            p.produce(t, f"{name}{i}".encode(), partition=0)
            assert p.flush(20) == 0
    a.abort_transaction(20)
    assert read_values(broker.bootstrap, t, "read_committed", 0) == [], "b is still open"
    b.commit_transaction(20)
    assert read_values(broker.bootstrap, t, "read_committed", 2) == ["b0", "b1"]
    assert read_values(broker.bootstrap, t, "read_uncommitted", 4) == ["a0", "b0", "a1", "b1"]


def test_offsets_for_times_stop_at_the_last_stable_offset(broker):
    t = create_topic(broker.bootstrap, unique_topic("times"))
    p = txn_producer(broker.bootstrap, "tx-times")
    p.begin_transaction()
    p.produce(t, b"open", partition=0, timestamp=5000)
    assert p.flush(20) == 0

    def lookup(isolation):
        c = consumer_confluent(broker.bootstrap, **{"isolation.level": isolation})
        try:
            return c.offsets_for_times([TopicPartition(t, 0, 4000)], timeout=10)[0].offset
        finally:
            c.close()

    assert lookup("read_uncommitted") == 0
    assert lookup("read_committed") == -1, "the record is past the last stable offset"
    p.commit_transaction(20)
    assert lookup("read_committed") == 0


def test_hanging_transaction_is_found_and_aborted(broker_factory):
    """A transaction no coordinator will end (its __transaction_state was lost) holds read_committed
    consumers back; kafka-transactions.sh's way out works: describe the partition's producers,
    find the hanging transaction (an ongoing one the coordinator knows is not reported), abort it
    with a marker written by the partition leader."""
    from kafka import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition
    import json
    import shutil
    import subprocess
    from gregor_broker import GREGOR_BIN

    b = broker_factory(overrides=FAST_TIMERS)
    t = create_topic(b.bootstrap, unique_topic("hang"), 2)
    lost = txn_producer(b.bootstrap, "tx-lost")
    lost.begin_transaction()
    for v in (b"h0", b"h1"):
        lost.produce(t, v, partition=0)
    assert lost.flush(20) == 0
    b.kill()
    for d in b.data_dir.glob("__transaction_state-*"):
        shutil.rmtree(d)
    b.start()
    bs = b.bootstrap
    live = txn_producer(bs, "tx-live")
    live.begin_transaction()
    live.produce(t, b"open", partition=1)
    assert live.flush(20) == 0
    plain = Producer({"bootstrap.servers": bs, "broker.address.family": "v4"})
    plain.produce(t, b"after", partition=0)
    assert plain.flush(20) == 0
    assert stable_end(bs, t) == 0, "the lost transaction holds the partition back"

    admin_client = KafkaAdminClient(bootstrap_servers=bs)
    try:
        states = admin_client.describe_producers([KTopicPartition(t, 0), KTopicPartition(t, 1)])
    finally:
        admin_client.close()
    [hanging] = [p for p in states[KTopicPartition(t, 0)].active_producers if p.current_transaction_start_offset >= 0]
    assert hanging.current_transaction_start_offset == 0
    [open_one] = states[KTopicPartition(t, 1)].active_producers
    assert open_one.current_transaction_start_offset == 0

    def gregor(*args):
        out = subprocess.run([GREGOR_BIN, "transactions", "--bootstrap-server", bs, *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    found = json.loads(gregor("--find-hanging", "--broker-id", "1", "--max-transaction-timeout", "0",
                              "--output", "json"))
    assert [(h["topic"], h["partition"], h["producer_id"], h["start_offset"]) for h in found] == \
        [(t, 0, hanging.producer_id, 0)]
    described = gregor("--describe-producers", "--topic", t, "--partition", "0")
    assert f"{hanging.producer_id} " in described and "CURRENT-TRANSACTION-START-OFFSET" in described

    assert "Aborted the transaction" in gregor("--abort", "--topic", t, "--partition", "0", "--start-offset", "0")
    # h0, h1, the abort marker, then "after": all stable now, and the aborted records invisible.
    wait_until(lambda: stable_end(bs, t) == 4, msg="the partition to become stable")
    assert read_values(bs, t, "read_committed", 1) == ["after"]
    assert json.loads(gregor("--find-hanging", "--broker-id", "1", "--max-transaction-timeout", "0",
                             "--output", "json")) == []
    live.commit_transaction(20)
    assert read_values(bs, t, "read_committed", 1, partition=1) == ["open"]
