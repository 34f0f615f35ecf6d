#!/usr/bin/env python3
"""Consumer group benchmark: rebalance time after a member leaves, and OffsetCommit throughput.

    .venv/bin/python bench/groups.py        # builds nothing: uses target/release/gregor (bench/run.sh builds it)

Prints one JSON line per measurement. Rebalance time is measured from the leaving member's
close() (LeaveGroup) until both survivors hold the leaver's partitions (3 of 6 each), i.e. until
the group is Stable again from the clients' point of view.
"""

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from gregor_broker import Broker  # noqa: E402


class Member:
    """A consumer polling in its own thread."""

    def __init__(self, bootstrap, group, topic, strategy):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "partition.assignment.strategy": strategy,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "enable.auto.commit": False,
        })
        self.consumer.subscribe([topic])
        self.owned = 0
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        # Only this thread touches the consumer: confluent-kafka handles are not safe to call from
        # two threads at once.
        while self.running:
            self.consumer.poll(0.01)
            self.owned = len(self.consumer.assignment())

    def partitions(self):
        return self.owned

    def close(self):
        self.running = False
        self.thread.join()
        self.consumer.close()


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.001)
    raise TimeoutError("condition not reached")


def rebalance_times(bootstrap, topic, strategy, rounds):
    times = []
    for r in range(rounds):
        group = f"rebalance-{strategy}-{r}"
        members = [Member(bootstrap, group, topic, strategy) for _ in range(3)]
        wait_for(lambda: [m.partitions() for m in members] == [2, 2, 2])
        leaver, survivors = members[0], members[1:]
        started = time.monotonic()
        leaver.close()
        done = wait_for(lambda: [m.partitions() for m in survivors] == [3, 3])
        times.append((done - started) * 1000)
        for m in survivors:
            m.close()
    return times


def commit_throughput(bootstrap, topic, asynchronous, count):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"commits-{asynchronous}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    started = time.monotonic()
    for i in range(count):
        consumer.commit(offsets=[TopicPartition(topic, i % 6, i)], asynchronous=asynchronous)
    if asynchronous:
        # A final synchronous commit returns once every earlier one has been answered.
        consumer.commit(offsets=[TopicPartition(topic, 0, count)], asynchronous=False)
    elapsed = time.monotonic() - started
    consumer.close()
    return count / elapsed


def main():
    rounds = int(os.environ.get("ROUNDS", "5"))
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "data", overrides={"group.initial.rebalance.delay.ms": "0"})
        broker.start()
        try:
            bootstrap = f"{broker.host}:{broker.port}"
            topic = "bench-groups"
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
            producer = Producer({"bootstrap.servers": bootstrap})
            for i in range(6000):
                producer.produce(topic, str(i).encode(), partition=i % 6)
            producer.flush()
            for strategy in ("range", "cooperative-sticky"):
                times = rebalance_times(bootstrap, topic, strategy, rounds)
                print(json.dumps({"name": f"rebalance-after-leave-{strategy}", "rounds": rounds,
                                  "median_ms": round(statistics.median(times), 1),
                                  "max_ms": round(max(times), 1)}))
            for asynchronous, count in ((False, 5000), (True, 50000)):
                rate = commit_throughput(bootstrap, topic, asynchronous, count)
                mode = "async" if asynchronous else "sync"
                print(json.dumps({"name": f"offset-commit-{mode}", "commits": count,
                                  "commits_per_sec": round(rate)}))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
