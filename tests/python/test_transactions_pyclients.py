"""Transactions with the pure-Python clients kafka-python and aiokafka: commit and abort seen
through read_committed / read_uncommitted consumers and the last stable offset,
consume-transform-produce with offsets committed inside the transaction, and zombie fencing.

Both clients support all of it (kafka-python 3.0.12 negotiates the transaction APIs' versions and
passes the consumer's group generation/member id to TxnOffsetCommit, KIP-447; aiokafka 0.14.0
sends every transaction API at v0 and its send_offsets_to_transaction takes a bare group id).
Each test runs once per client through a small synchronous facade (`Txn*` below); the broker
side is checked with confluent-kafka where an independent view helps (committed offsets)."""

import asyncio
import concurrent.futures
import time
import uuid

import pytest

from clients import (consume_aiokafka, consume_kafka_python, consumer_confluent, create_topic, produce_confluent,
                     unique_topic, TopicPartition)

OP_TIMEOUT = 20.0  # one transactional call (init/commit/abort/send offsets)
TXN_BROKER = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000,
              "offsets.topic.num.partitions": 5, "transaction.state.log.num.partitions": 5}
GROUP_CONF = {"auto_offset_reset": "earliest", "enable_auto_commit": False, "isolation_level": "read_committed",
              "session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "request_timeout_ms": 15000}
RC, RU = "read_committed", "read_uncommitted"


def _bounded(fn, *args, timeout=OP_TIMEOUT):
    """kafka-python's commit/abort/send_offsets wait without a limit; fail instead of hanging."""
    ex = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return ex.submit(fn, *args).result(timeout)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"{getattr(fn, '__name__', fn)} did not finish within {timeout}s") from None
    finally:
        ex.shutdown(wait=False)


# ------------------------------------------------------------------ kafka-python facade

class KafkaPythonTxn:
    name = "kafka-python"

    def __init__(self):
        from kafka.errors import ProducerFencedError
        self.fenced = ProducerFencedError
        self.opened = []

    def producer(self, bs, tid):
        """A transactional producer with init_transactions() done."""
        from clients import kp_producer
        p = kp_producer(bs, transactional_id=tid)
        self.opened.append(lambda: p.close(timeout=10))
        p.init_transactions()
        return KPProducer(p)

    def group_consumer(self, bs, group, topic):
        from kafka import KafkaConsumer
        c = KafkaConsumer(topic, bootstrap_servers=bs, group_id=group, **GROUP_CONF)
        self.opened.append(c.close)
        return KPGroupConsumer(c, group)

    def read(self, bs, topic, expected, isolation):
        return [r["value"] for r in consume_kafka_python(bs, topic, [0], expected, isolation_level=isolation)]

    def end_offset(self, bs, topic, isolation):
        from clients import kp_consumer
        from kafka import TopicPartition as KTP
        c = kp_consumer(bs, isolation_level=isolation)
        try:
            return c.end_offsets([KTP(topic, 0)])[KTP(topic, 0)]
        finally:
            c.close()

    def close(self):
        for close in reversed(self.opened):
            close()


class KPProducer:
    def __init__(self, p):
        self.p = p

    def begin(self):
        self.p.begin_transaction()

    def send_all(self, topic, values):
        """Sends to partition 0 and waits until the broker acknowledged every record; returns offsets."""
        futs = [self.p.send(topic, value=v, partition=0) for v in values]
        self.p.flush(OP_TIMEOUT)
        return [f.get(timeout=OP_TIMEOUT).offset for f in futs]

    def send_offsets(self, topic, positions, consumer):
        from kafka import TopicPartition as KTP
        from kafka.structs import OffsetAndMetadata
        offsets = {KTP(topic, p): OffsetAndMetadata(o, "", -1) for p, o in positions.items()}
        _bounded(self.p.send_offsets_to_transaction, offsets, consumer.c.group_metadata())

    def commit(self):
        _bounded(self.p.commit_transaction)

    def abort(self):
        _bounded(self.p.abort_transaction)


class KPGroupConsumer:
    def __init__(self, c, group):
        self.c, self.group = c, group

    def poll(self):
        return [(m.partition, m.offset, m.value) for msgs in self.c.poll(timeout_ms=200).values() for m in msgs]

    def positions(self):
        return {tp.partition: self.c.position(tp) for tp in self.c.assignment()}


# ------------------------------------------------------------------ aiokafka facade (one private event loop)

class AiokafkaTxn:
    name = "aiokafka"

    def __init__(self):
        from aiokafka.errors import ProducerFenced
        self.fenced = ProducerFenced
        self.loop = asyncio.new_event_loop()
        self.opened = []

    def run(self, coro, timeout=OP_TIMEOUT):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def _start(self, cls, *args, **kw):
        async def start():
            obj = cls(*args, **kw)  # aiokafka clients must be created inside the running loop
            self.opened.append(obj.stop)
            await obj.start()
            return obj
        return self.run(start())

    def producer(self, bs, tid):
        """start() of a transactional AIOKafkaProducer sends InitProducerId."""
        from aiokafka import AIOKafkaProducer
        return AIOProducer(self, self._start(AIOKafkaProducer, bootstrap_servers=bs, transactional_id=tid,
                                             request_timeout_ms=15000, linger_ms=5))

    def group_consumer(self, bs, group, topic):
        from aiokafka import AIOKafkaConsumer
        return AIOGroupConsumer(self, self._start(AIOKafkaConsumer, topic, bootstrap_servers=bs, group_id=group,
                                                  **GROUP_CONF), group)

    def read(self, bs, topic, expected, isolation):
        return [r["value"] for r in consume_aiokafka(bs, topic, [0], expected, isolation_level=isolation)]

    def end_offset(self, bs, topic, isolation):
        from aiokafka import AIOKafkaConsumer, TopicPartition as ATP

        async def end():
            c = AIOKafkaConsumer(bootstrap_servers=bs, isolation_level=isolation, request_timeout_ms=15000)
            await c.start()
            try:
                return (await c.end_offsets([ATP(topic, 0)]))[ATP(topic, 0)]
            finally:
                await c.stop()
        return self.run(end())

    def close(self):
        try:
            for stop in reversed(self.opened):
                self.run(stop())
        finally:
            self.loop.close()


class AIOProducer:
    def __init__(self, txn, p):
        self.txn, self.p = txn, p

    def begin(self):
        self.txn.run(self.p.begin_transaction())

    def send_all(self, topic, values):
        async def send():
            futs = [await self.p.send(topic, value=v, partition=0) for v in values]
            return [md.offset for md in await asyncio.gather(*futs)]
        return self.txn.run(send())

    def send_offsets(self, topic, positions, consumer):
        from aiokafka import TopicPartition as ATP
        self.txn.run(self.p.send_offsets_to_transaction({ATP(topic, p): o for p, o in positions.items()},
                                                        consumer.group))

    def commit(self):
        self.txn.run(self.p.commit_transaction())

    def abort(self):
        self.txn.run(self.p.abort_transaction())


class AIOGroupConsumer:
    def __init__(self, txn, c, group):
        self.txn, self.c, self.group = txn, c, group

    def poll(self):
        batch = self.txn.run(self.c.getmany(timeout_ms=200))
        return [(m.partition, m.offset, m.value) for msgs in batch.values() for m in msgs]

    def positions(self):
        return {tp.partition: self.txn.run(self.c.position(tp)) for tp in self.c.assignment()}


# ------------------------------------------------------------------ fixtures and helpers

@pytest.fixture
def tbroker(broker_factory):
    return broker_factory(overrides=TXN_BROKER)


@pytest.fixture(params=[KafkaPythonTxn, AiokafkaTxn], ids=lambda cls: cls.name)
def txc(request, tbroker):
    """The client under test; every producer and consumer it made is closed at teardown."""
    client = request.param()
    yield client
    client.close()


def tid():
    return "txn-" + uuid.uuid4().hex[:10]


def poll_exactly(consumer, n, timeout=20.0):
    """Polls a group consumer until n records came; more than n is an error."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"group consumer got only {len(got)} of {n} records: {got}"
        got.extend(consumer.poll())
    assert len(got) == n, f"expected {n} records, got {got}"
    return got


def committed(bs, group, topic, partitions):
    """{partition: committed offset} as another client (confluent-kafka, not in the group) sees them."""
    c = consumer_confluent(bs, **{"group.id": group})
    try:
        res = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        assert all(tp.error is None for tp in res), res
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


# ------------------------------------------------------------------ tests

def test_commit_and_abort(tbroker, txc):
    bs = tbroker.bootstrap
    t = create_topic(bs, unique_topic("txca"), 1)
    p = txc.producer(bs, tid())
    committed_vals = [b"c0", b"c1", b"c2"]

    p.begin()
    assert p.send_all(t, committed_vals) == [0, 1, 2]
    p.commit()  # commit marker at offset 3

    p.begin()
    assert p.send_all(t, [b"a0", b"a1"]) == [4, 5]
    # The open transaction holds the last stable offset at its first record; the high watermark
    # already covers the records, so they really are on the broker before the abort.
    assert txc.end_offset(bs, t, RU) == 6
    assert txc.end_offset(bs, t, RC) == 4
    assert txc.read(bs, t, 3, RC) == committed_vals
    p.abort()  # abort marker at offset 6

    p.begin()
    assert p.send_all(t, [b"c3"]) == [7]
    p.commit()  # commit marker at offset 8

    assert txc.end_offset(bs, t, RU) == txc.end_offset(bs, t, RC) == 9
    assert txc.read(bs, t, 4, RC) == committed_vals + [b"c3"]
    assert txc.read(bs, t, 6, RU) == committed_vals + [b"a0", b"a1", b"c3"]


def test_consume_transform_produce(tbroker, txc):
    bs = tbroker.bootstrap
    src = create_topic(bs, unique_topic("txin"), 2)
    dst = create_topic(bs, unique_topic("txout"), 1)
    group = "g-" + uuid.uuid4().hex[:10]

    def feed(tag, n):
        reports = produce_confluent(bs, src, [{"value": f"{tag}-{i}".encode(), "partition": i % 2}
                                              for i in range(n)])
        assert all(err is None for err, _p, _o in reports), reports

    consumer = txc.group_consumer(bs, group, src)
    p = txc.producer(bs, tid())

    def transform_in_transaction(n):
        """Reads n input records, writes them upper-cased and commits the consumer's positions, all
        in one transaction that the caller then ends; returns the values written."""
        out = [v.upper() for _p, _o, v in poll_exactly(consumer, n)]
        p.begin()
        p.send_all(dst, out)
        p.send_offsets(src, consumer.positions(), consumer)
        return out

    feed("one", 10)
    first = transform_in_transaction(10)
    assert sorted(first) == sorted(f"ONE-{i}".encode() for i in range(10))
    p.commit()
    assert committed(bs, group, src, [0, 1]) == {0: 5, 1: 5}
    assert txc.read(bs, dst, 10, RC) == first

    feed("two", 4)
    second = transform_in_transaction(4)
    assert consumer.positions() == {0: 7, 1: 7}
    p.abort()
    assert committed(bs, group, src, [0, 1]) == {0: 5, 1: 5}
    assert txc.read(bs, dst, 10, RC) == first
    assert txc.read(bs, dst, 14, RU) == first + second


def test_zombie_producer_is_fenced(tbroker, txc):
    bs = tbroker.bootstrap
    t = create_topic(bs, unique_topic("txfence"), 1)
    tx_id = tid()
    zombie = txc.producer(bs, tx_id)
    zombie.begin()
    assert zombie.send_all(t, [b"zombie"]) == [0]

    # A new instance with the same transactional id bumps the epoch and aborts the open transaction.
    successor = txc.producer(bs, tx_id)
    with pytest.raises(txc.fenced):
        zombie.commit()

    successor.begin()
    successor.send_all(t, [b"successor"])
    successor.commit()
    assert txc.read(bs, t, 1, RC) == [b"successor"]
    assert txc.read(bs, t, 2, RU) == [b"zombie", b"successor"]
