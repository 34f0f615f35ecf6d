"""A fetch waiting on an empty partition is woken by the append, not by max.wait.ms.

The consumers wait up to 60 s in a fetch (`fetch.wait.max.ms`) and the test gives the record 30 s
to arrive: it can only arrive in time if the append wakes the parked fetch. No latency is
measured (that is for bench/), so a loaded machine cannot fail the test."""

import threading
import time

from confluent_kafka import TopicPartition

from clients import consumer_confluent, create_topic, kp_consumer, producer, unique_topic

FETCH_WAIT_MS = 60_000
DEADLINE = FETCH_WAIT_MS / 1000 / 2


def _warm_producer(bootstrap, topic):
    p = producer(bootstrap, **{"linger.ms": 0, "acks": "1"})
    p.produce(topic, value=b"warmup", partition=0)
    assert p.flush(15) == 0
    return p


def _produce_later(p, topic, delay, value):
    """Produces `value` after `delay` s: time for the consumer's next fetch to park."""
    def run():
        time.sleep(delay)
        p.produce(topic, value=value, partition=0)
        p.flush(15)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_long_poll_wakeup_confluent(broker):
    t = create_topic(broker.bootstrap, unique_topic("lp"), 1)
    p = _warm_producer(broker.bootstrap, t)
    c = consumer_confluent(broker.bootstrap, **{"fetch.wait.max.ms": FETCH_WAIT_MS, "fetch.min.bytes": 1,
                                                "socket.timeout.ms": 3 * FETCH_WAIT_MS})
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

        th = _produce_later(p, t, 0.5, b"wake-up")
        m = None
        deadline = time.monotonic() + DEADLINE
        while m is None and time.monotonic() < deadline:
            m = c.poll(0.05)
        th.join(15)
        assert m is not None, f"record not received within {DEADLINE} s: the fetch was not woken by the append"
        assert m.error() is None and m.value() == b"wake-up" and m.offset() == 1
    finally:
        c.close()


def test_long_poll_wakeup_kafka_python(broker):
    from kafka import TopicPartition as KTP
    t = create_topic(broker.bootstrap, unique_topic("lp"), 1)
    p = _warm_producer(broker.bootstrap, t)
    c = kp_consumer(broker.bootstrap, fetch_max_wait_ms=FETCH_WAIT_MS, fetch_min_bytes=1,
                    request_timeout_ms=3 * FETCH_WAIT_MS)
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

        th = _produce_later(p, t, 0.5, b"wake-up")
        got = []
        deadline = time.monotonic() + DEADLINE
        while not got and time.monotonic() < deadline:
            got = c.poll(timeout_ms=50).get(tp, [])
        th.join(15)
        assert [(m.offset, m.value) for m in got] == [(1, b"wake-up")], \
            f"record not received within {DEADLINE} s: the fetch was not woken by the append"
    finally:
        c.close()
