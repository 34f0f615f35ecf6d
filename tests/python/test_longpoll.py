"""A fetch waiting on an empty partition is woken by the append, not by max.wait.ms."""

import threading
import time

from confluent_kafka import TopicPartition

from clients import consumer_confluent, create_topic, kp_consumer, producer, unique_topic

MAX_LATENCY = 1.0  # seconds from produce() to the consumer seeing the record; fetch wait is 10 s


def _warm_producer(bootstrap, topic):
    p = producer(bootstrap, **{"linger.ms": 0, "acks": "1"})
    p.produce(topic, value=b"warmup", partition=0)
    assert p.flush(15) == 0
    return p


def _produce_later(p, topic, delay, value, sent_at):
    def run():
        time.sleep(delay)
        sent_at.append(time.monotonic())
        p.produce(topic, value=value, partition=0)
        p.flush(15)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_long_poll_wakeup_confluent(broker):
    t = create_topic(broker.bootstrap, unique_topic("lp"), 1)
    p = _warm_producer(broker.bootstrap, t)
    c = consumer_confluent(broker.bootstrap, **{"fetch.wait.max.ms": 10000, "fetch.min.bytes": 1,
                                                "socket.timeout.ms": 30000})
    try:
        c.assign([TopicPartition(t, 0, 0)])
        # Read the warm-up record: the consumer is connected and its next fetch waits at offset 1.
        deadline = time.monotonic() + 30
        m = None
        while m is None and time.monotonic() < deadline:
            m = c.poll(0.5)
        assert m is not None and m.error() is None and m.value() == b"warmup"
        # Let the next fetch reach the broker and park there (an empty partition tail).
        assert c.poll(0.5) is None

        sent_at = []
        th = _produce_later(p, t, 0.5, b"wake-up", sent_at)
        m = None
        deadline = time.monotonic() + 15
        while m is None and time.monotonic() < deadline:
            m = c.poll(0.05)
        received_at = time.monotonic()
        th.join(15)
        assert m is not None, "record produced 0.5 s later was not received within 15 s"
        assert m.error() is None and m.value() == b"wake-up" and m.offset() == 1
        latency = received_at - sent_at[0]
        assert latency < MAX_LATENCY, f"produce->consume latency {latency:.3f}s: fetch not woken by the append"
    finally:
        c.close()


def test_long_poll_wakeup_kafka_python(broker):
    from kafka import TopicPartition as KTP
    t = create_topic(broker.bootstrap, unique_topic("lp"), 1)
    p = _warm_producer(broker.bootstrap, t)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=10000, fetch_min_bytes=1, request_timeout_ms=40000)
    try:
        tp = KTP(t, 0)
        c.assign([tp])
        c.seek(tp, 0)
        got = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = c.poll(timeout_ms=500).get(tp, [])
        assert [m.value for m in got] == [b"warmup"]
        assert c.poll(timeout_ms=500) == {}

        sent_at = []
        th = _produce_later(p, t, 0.5, b"wake-up", sent_at)
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            got = c.poll(timeout_ms=50).get(tp, [])
        received_at = time.monotonic()
        th.join(15)
        assert [(m.offset, m.value) for m in got] == [(1, b"wake-up")]
        latency = received_at - sent_at[0]
        assert latency < MAX_LATENCY, f"produce->consume latency {latency:.3f}s: fetch not woken by the append"
    finally:
        c.close()
