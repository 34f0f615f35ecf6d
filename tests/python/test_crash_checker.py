"""Jepsen-style, one node: idempotent acks=all producers write while the broker is SIGKILLed and
restarted again and again; then every partition is read back and `checker.check` counts lost,
diverging, duplicated, reordered and unexpected records. Zero of each is the only pass.

CI runs it for GREGOR_CRASH_SECONDS (default 20 s); set it higher for a long run."""

import os
import random
import socket
import threading
import time

import pytest

from checker import check, problems, value
from clients import consumer_confluent, create_topic, producer, unique_topic, watermarks, TopicPartition

SECONDS = float(os.environ.get("GREGOR_CRASH_SECONDS", "20"))
PRODUCERS = 2
PARTITIONS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_all(bootstrap, topic):
    """Every record of every partition, up to each high watermark."""
    ends = {p: watermarks(bootstrap, topic, p, timeout=30)[1] for p in range(PARTITIONS)}
    c = consumer_confluent(bootstrap)
    out = []
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS) if ends[p] > 0])
        position = {p: 0 for p in range(PARTITIONS)}
        deadline = time.monotonic() + 120
        while any(position[p] < ends[p] for p in range(PARTITIONS)):
            assert time.monotonic() < deadline, f"read stalled at {position} of {ends}"
            for m in c.consume(num_messages=10000, timeout=0.5):
                assert not m.error(), m.error()
                out.append((m.partition(), m.offset(), m.value()))
                position[m.partition()] = m.offset() + 1
    finally:
        c.close()
    return out


# The faults, then joining the producers (flush up to 150 s) and reading back (up to 120 s):
# longer than the suite's default timeout once GREGOR_CRASH_SECONDS is raised.
# Once with segment files that grow with their writes (the default), once with files allocated
# ahead of them (preallocate: a crash leaves zeros after the batches); small segments, so that
# segments roll (and preallocated ones are trimmed) under the faults too.
@pytest.mark.timeout(SECONDS + 480)
@pytest.mark.parametrize("preallocate", ["false", "true"])
def test_acknowledged_records_survive_repeated_sigkill(broker_factory, preallocate):
    port = free_port()
    # A restarted process registers once the killed one's session is over (as in KRaft): a
    # short session gives more SIGKILLs per run.
    b = broker_factory(overrides={"listeners": f"PLAINTEXT://127.0.0.1:{port}",
                                  "log.preallocate": preallocate, "log.segment.bytes": str(8 << 20),
                                  "broker.session.timeout.ms": "2000", "broker.heartbeat.interval.ms": "300"})
    topic = create_topic(b.bootstrap, unique_topic("crash"), PARTITIONS)
    acked, sent, failed, unflushed = {}, [], [], []
    lock = threading.Lock()
    stop = threading.Event()

    def run(name):
        p = producer(b.bootstrap, **{"enable.idempotence": True, "acks": "all", "linger.ms": 2,
                                     "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 200})

        def report(err, msg):
            with lock:
                if err is None:
                    acked[msg.value()] = (msg.partition(), msg.offset())
                else:
                    failed.append((msg.value(), str(err)))

        sequence = 0
        while not stop.is_set():
            v = value(name, sequence)
            try:
                p.produce(topic, v, key=v, on_delivery=report)
            except BufferError:
                p.poll(0.05)
                continue
            with lock:
                sent.append(v)
            sequence += 1
            p.poll(0)
            if sequence % 200 == 0:
                time.sleep(0.01)
        # Asserted by the test's own thread (an assert here would only warn).
        unflushed.append(p.flush(150))

    # Daemons: a failed run must not keep the process alive.
    threads = [threading.Thread(target=run, args=(f"p{i}",), daemon=True) for i in range(PRODUCERS)]
    for t in threads:
        t.start()
    crashes = 0
    rng = random.Random(7)
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.5, 2.0))
        b.restart(crash=True)
        crashes += 1
    stop.set()
    for t in threads:
        t.join(200)
    assert not any(t.is_alive() for t in threads)
    assert unflushed == [0] * PRODUCERS, f"deliveries never reported: {unflushed}"

    read = read_all(b.bootstrap, topic)
    report = check(acked, read, sent=sent)
    print(f"crash checker: {crashes} SIGKILLs in {SECONDS:.0f} s, {len(sent)} sent, {len(acked)} acknowledged, "
          f"{len(read)} read; " + ", ".join(f"{k} {len(v)}" for k, v in report.items()))
    assert problems(report) == {}, problems(report)
    assert crashes >= 3 and len(acked) > 1000, (crashes, len(acked), failed[:5])
