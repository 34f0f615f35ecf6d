"""The KIP-848 consumer group protocol (librdkafka `group.protocol=consumer`): server-side
assignment, rebalancing by heartbeats, commits with member epochs, ConsumerGroupDescribe, and the
rule that a group of one protocol refuses members of the other."""

import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType, KafkaException, TopicPartition

from clients import admin, create_topic, produce_confluent, unique_topic, wait_until

FAST = {"group.consumer.heartbeat.interval.ms": 500, "group.consumer.session.timeout.ms": 6000,
        "group.consumer.min.heartbeat.interval.ms": 500, "group.consumer.min.session.timeout.ms": 6000,
        "group.initial.rebalance.delay.ms": 0, "offsets.topic.num.partitions": 5}


@pytest.fixture
def kbroker(broker_factory):
    return broker_factory(overrides=FAST)


def consumer(bootstrap, group, protocol="consumer", **conf):
    c = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": protocol,
         "auto.offset.reset": "earliest", "enable.auto.commit": False, "broker.address.family": "v4"}
    if protocol == "classic":
        c.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    c.update(conf)
    return Consumer(c)


def owned(c):
    return sorted(tp.partition for tp in c.assignment())


def pump(consumers, until, got=None, timeout=30.0):
    """Polls every consumer, appending (partition, offset) of records to `got`, until `until()`."""
    deadline = time.monotonic() + timeout
    got = [] if got is None else got
    while not until():
        assert time.monotonic() < deadline, [owned(c) for c in consumers]
        for c in consumers:
            m = c.poll(0.05)
            if m is not None and not m.error():
                got.append((m.partition(), m.offset()))
    return got


def test_server_side_assignment_rebalance_and_commits(kbroker):
    bs = kbroker.bootstrap
    t = create_topic(bs, unique_topic("k848"), 4)
    produce_confluent(bs, t, [{"value": f"{p}-{i}".encode(), "partition": p} for p in range(4) for i in range(5)])
    g = "k848-group"

    c1 = consumer(bs, g)
    c1.subscribe([t])
    got = pump([c1], lambda: owned(c1) == [0, 1, 2, 3])
    pump([c1], lambda: len(got) >= 20, got)
    assert sorted(got) == [(p, o) for p in range(4) for o in range(5)]
    c1.commit(asynchronous=False)

    # A second member: the server's uniform assignor splits the partitions 2/2 after c1 revokes.
    c2 = consumer(bs, g)
    c2.subscribe([t])
    pump([c1, c2], lambda: len(owned(c1)) == 2 and len(owned(c2)) == 2)
    assert sorted(owned(c1) + owned(c2)) == [0, 1, 2, 3]

    a = admin(bs)
    desc = a.describe_consumer_groups([g])[g].result()
    assert desc.type == ConsumerGroupType.CONSUMER
    assert desc.state == ConsumerGroupState.STABLE
    assert sorted(len(m.assignment.topic_partitions) for m in desc.members) == [2, 2]

    # Committed offsets (written under member epochs) are what a new member starts from.
    committed = c2.committed([TopicPartition(t, p) for p in range(4)], timeout=20)
    assert [tp.offset for tp in committed] == [5, 5, 5, 5]

    # c1 leaves: c2 gets everything.
    c1.close()
    pump([c2], lambda: owned(c2) == [0, 1, 2, 3])
    c2.close()
    wait_until(lambda: a.describe_consumer_groups([g])[g].result().state == ConsumerGroupState.EMPTY,
               timeout=20)


def test_protocols_do_not_mix(kbroker):
    bs = kbroker.bootstrap
    t = create_topic(bs, unique_topic("mix"), 2)
    g = "mixed-protocols"
    classic = consumer(bs, g, protocol="classic")
    classic.subscribe([t])
    pump([classic], lambda: owned(classic) == [0, 1])

    # A KIP-848 member cannot join a classic group that has members.
    modern = consumer(bs, g)
    modern.subscribe([t])
    errors = []
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        classic.poll(0.05)
        m = modern.poll(0.1)
        if m is not None and m.error():
            errors.append(m.error())
    assert errors, "the consumer-protocol member was not refused"
    assert owned(modern) == []
    assert owned(classic) == [0, 1]
    modern.close()
    classic.close()
