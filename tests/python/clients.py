"""Client helpers shared by the tests: topic creation, produce and consume with
confluent-kafka, kafka-python and aiokafka, and a poll-until helper.

These consumers assign partitions by hand and start from explicit offsets, so
each test controls exactly what it reads; consumer groups are tested in
test_groups.py."""

import asyncio
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

DEFAULT_TIMEOUT = 30.0


def unique_topic(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(cond, timeout=DEFAULT_TIMEOUT, interval=0.05, msg="condition"):
    """Poll cond() until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {msg}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)


# ---------------------------------------------------------------- confluent-kafka

def admin(bootstrap, **conf):
    c = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    c.update(conf)
    return AdminClient(c)


def topic_partitions(bootstrap, topic, timeout=10.0):
    """Partition ids of topic as listed by a full-cluster metadata request
    (never asks for the topic by name, so it cannot auto-create it).
    None if the topic is not listed."""
    md = admin(bootstrap).list_topics(timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return None
    return sorted(t.partitions)


def create_topic(bootstrap, topic, partitions=1, config=None, timeout=30.0):
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                   config=config or {})], operation_timeout=timeout, request_timeout=timeout)
    fs[topic].result(timeout)
    wait_for_partitions(bootstrap, topic, partitions)
    return topic


def wait_for_partitions(bootstrap, topic, partitions, timeout=30.0):
    def ready():
        md = admin(bootstrap).list_topics(timeout=5)
        t = md.topics.get(topic)
        if t is None or t.error is not None or len(t.partitions) != partitions:
            return False
        return all(p.leader == 1 and p.error is None for p in t.partitions.values())
    wait_until(ready, timeout, interval=0.1, msg=f"topic {topic} with {partitions} partitions led by node 1")


def producer(bootstrap, **conf):
    c = {"bootstrap.servers": bootstrap, "linger.ms": 5, "message.timeout.ms": 30000,
         "socket.timeout.ms": 10000}
    c.update(conf)
    return Producer(c)


def produce_confluent(bootstrap, topic, records, timeout=60.0, **conf):
    """records: iterable of dicts with keys value, key, partition, headers, timestamp
    (all optional but value). Returns delivery reports in produce order as
    (error, partition, offset). Asserts that every report arrived."""
    p = producer(bootstrap, **conf)
    reports = []
    for i, r in enumerate(records):
        slot = len(reports)
        reports.append(None)

        def cb(err, msg, slot=slot):
            reports[slot] = (err, msg.partition(), msg.offset())

        kwargs = {"value": r.get("value")}
        for k in ("key", "partition", "headers", "timestamp"):
            if r.get(k) is not None:
                kwargs[k] = r[k]
        while True:
            try:
                p.produce(topic, on_delivery=cb, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still in the producer queue after {timeout}s"
    assert all(r is not None for r in reports), "missing delivery reports"
    return reports


def read_to_end(bootstrap, topic, isolation, expected=0, partition=0, timeout=15.0):
    """(offset, key, value) of every record a fresh confluent consumer with `isolation` reads from
    the start to the end it may see (the log end for read_uncommitted, the last stable offset for
    read_committed): it reads until the consumer reports that end with at least `expected`
    records, so a record visible below the end is always among them. Any consumer error fails."""
    c = consumer_confluent(bootstrap, **{"isolation.level": isolation, "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        got = []
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, \
                f"read {got}, then no end of partition with {expected} records or more in {timeout}s"
            for m in c.consume(500, timeout=0.2):
                if m.error() is None:
                    got.append((m.offset(), m.key(), m.value()))
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consumer error: {m.error()}")
                elif len(got) >= expected:
                    return got
    finally:
        c.close()


def consumer_confluent(bootstrap, **conf):
    c = {"bootstrap.servers": bootstrap, "group.id": "gregor-tests-" + uuid.uuid4().hex[:6],
         "enable.auto.commit": False, "enable.auto.offset.store": False,
         "enable.partition.eof": False, "socket.timeout.ms": 10000,
         "topic.metadata.refresh.interval.ms": 5000}
    c.update(conf)
    return Consumer(c)


def consume_confluent(bootstrap, topic, partitions, expected, timeout=DEFAULT_TIMEOUT, start=OFFSET_BEGINNING,
                      **conf):
    """Consume `expected` records from the given partitions; returns a list of
    dicts (partition, offset, key, value, headers, timestamp) in arrival order."""
    c = consumer_confluent(bootstrap, **conf)
    try:
        c.assign([TopicPartition(topic, p, start) for p in partitions])
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < expected and time.monotonic() < deadline:
            for m in c.consume(num_messages=min(10000, expected - len(out)), timeout=0.5):
                if m.error():
                    raise KafkaException(m.error())
                out.append({"partition": m.partition(), "offset": m.offset(), "key": m.key(),
                            "value": m.value(), "headers": list(m.headers() or []),
                            "timestamp": m.timestamp()[1]})
        # Make sure nothing extra is there: one more short poll.
        for m in c.consume(num_messages=100, timeout=0.3):
            if not m.error():
                out.append({"partition": m.partition(), "offset": m.offset(), "key": m.key(),
                            "value": m.value(), "headers": list(m.headers() or []),
                            "timestamp": m.timestamp()[1]})
        return out
    finally:
        c.close()


def watermarks(bootstrap, topic, partition=0, timeout=10.0):
    c = consumer_confluent(bootstrap)
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()


# ---------------------------------------------------------------- kafka-python

def kp_producer(bootstrap, **conf):
    from kafka import KafkaProducer
    c = {"bootstrap_servers": bootstrap, "request_timeout_ms": 15000, "max_block_ms": 30000,
         "linger_ms": 5}
    c.update(conf)
    return KafkaProducer(**c)


def produce_kafka_python(bootstrap, topic, records, timeout=60.0, **conf):
    """Like produce_confluent; returns [(partition, offset)] in produce order."""
    p = kp_producer(bootstrap, **conf)
    try:
        futs = []
        for r in records:
            futs.append(p.send(topic, value=r.get("value"), key=r.get("key"), partition=r.get("partition"),
                               headers=r.get("headers"), timestamp_ms=r.get("timestamp")))
        p.flush(timeout)
        out = []
        for f in futs:
            md = f.get(timeout=timeout)
            out.append((md.partition, md.offset))
        return out
    finally:
        p.close(timeout=10)


def kp_consumer(bootstrap, **conf):
    from kafka import KafkaConsumer
    c = {"bootstrap_servers": bootstrap, "group_id": None, "enable_auto_commit": False,
         "auto_offset_reset": "earliest", "request_timeout_ms": 15000, "consumer_timeout_ms": 1000}
    c.update(conf)
    return KafkaConsumer(**c)


def consume_kafka_python(bootstrap, topic, partitions, expected, timeout=DEFAULT_TIMEOUT, **conf):
    from kafka import TopicPartition as KTP
    c = kp_consumer(bootstrap, **conf)
    try:
        tps = [KTP(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = c.poll(timeout_ms=500)
            for _tp, msgs in batch.items():
                for m in msgs:
                    out.append({"partition": m.partition, "offset": m.offset, "key": m.key, "value": m.value,
                                "headers": [(k, v) for k, v in (m.headers or [])], "timestamp": m.timestamp})
            if len(out) >= expected and not batch:
                break
        return out
    finally:
        c.close()


# ---------------------------------------------------------------- aiokafka

def consume_aiokafka(bootstrap, topic, partitions, expected, timeout=DEFAULT_TIMEOUT, **conf):
    async def run():
        from aiokafka import AIOKafkaConsumer, TopicPartition as ATP
        c = AIOKafkaConsumer(**{"bootstrap_servers": bootstrap, "group_id": None, "enable_auto_commit": False,
                                "auto_offset_reset": "earliest", "request_timeout_ms": 15000, **conf})
        await c.start()
        try:
            tps = [ATP(topic, p) for p in partitions]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            out = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for _tp, msgs in batch.items():
                    for m in msgs:
                        out.append({"partition": m.partition, "offset": m.offset, "key": m.key,
                                    "value": m.value, "headers": [(k, v) for k, v in (m.headers or [])],
                                    "timestamp": m.timestamp})
                if len(out) >= expected and not batch:
                    break
            return out
        finally:
            await c.stop()
    return asyncio.run(run())


# ---------------------------------------------------------------- checks

def by_partition(records):
    out = {}
    for r in records:
        out.setdefault(r["partition"], []).append(r)
    return out


def assert_dense(records, partitions):
    """Every partition's offsets are exactly 0..n-1 in order, without duplicates."""
    parts = by_partition(records)
    for p in partitions:
        offs = [r["offset"] for r in parts.get(p, [])]
        assert offs == list(range(len(offs))), f"partition {p}: offsets not dense from 0: {offs[:20]}..."
    extra = set(parts) - set(partitions)
    assert not extra, f"records from unexpected partitions {extra}"


def norm_headers(h):
    return [(k if isinstance(k, str) else k.decode(), bytes(v) if v is not None else None) for k, v in (h or [])]


__all__ = [n for n in dir() if not n.startswith("_")] + ["KafkaError", "KafkaException", "TopicPartition",
                                                         "OFFSET_BEGINNING"]
