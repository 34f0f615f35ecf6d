"""Real clients against a three-node gregor cluster (separate processes, one Raft metadata
quorum), bootstrapped from node 1 only: partitions led by every node take records from
librdkafka, kafka-python and aiokafka producers and are read back by each client; a consumer
group whose coordinator is another broker than the bootstrap and the partitions' leaders
rebalances and commits; a transaction spanning partitions led by three brokers, with offsets
committed in it, commits and aborts as read_committed consumers see it; kafka-python moves a
partition to other brokers (AlterPartitionReassignments) and follows the move."""

import asyncio
import time

import pytest
from confluent_kafka import (ConsumerGroupTopicPartitions, ElectionType, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import NewTopic

from clients import (admin, consume_aiokafka, consume_confluent, consume_kafka_python,
                     consumer_confluent, produce_confluent, produce_kafka_python, read_to_end,
                     unique_topic, wait_until)
from gregor_cluster import start_cluster

OFFSETS_PARTITIONS = 50


@pytest.fixture
def cluster(tmp_path):
    """Three nodes; stopped at teardown, which fails on a panic or a node that died on its own."""
    nodes = []
    try:
        nodes.extend(start_cluster(tmp_path, 3))
        yield nodes
    finally:
        problems = [p for b in nodes for p in b.post_mortem()]
        for b in nodes:
            b.shutdown_quietly()
        if problems:
            pytest.fail("broker problems:\n" + "\n".join(problems), pytrace=False)


def leaders(bootstrap, topic):
    """{partition: leader} as the cluster's metadata has it, once every partition has a leader."""
    def known():
        md = admin(bootstrap).list_topics(timeout=5)
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return None
        found = {p.id: p.leader for p in t.partitions.values()}
        return found if all(leader > 0 for leader in found.values()) else None
    return wait_until(known, 30, interval=0.1, msg=f"leaders of {topic}")


def create(bootstrap, topic, partitions):
    a = admin(bootstrap)  # held: a client that is gone fails its futures
    futures = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=30, request_timeout=30)
    futures[topic].result(30)
    found = leaders(bootstrap, topic)
    assert len(found) == partitions
    return found


def java_hash(s):
    h = 0
    for unit in s.encode("utf-16-be").hex(" ", 2).split():
        h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group):
    """Where Kafka (and gregor) keeps a group: its partition of __consumer_offsets."""
    return (java_hash(group) & 0x7FFFFFFF) % OFFSETS_PARTITIONS


def test_java_hash_matches_kafka():
    # Java: "my-group".hashCode() == -1906497762, on partition 36 of 50.
    assert java_hash("my-group") == -1906497762
    assert offsets_partition("my-group") == 36


def group_coordinated_by(bootstrap, node, prefix):
    """A group id whose coordinator, by placement, is `node`."""
    # The first FindCoordinator creates __consumer_offsets.
    a = admin(bootstrap)
    a.describe_consumer_groups(["warm-up"])["warm-up"].result(30)
    by_partition = leaders(bootstrap, "__consumer_offsets")
    assert set(by_partition.values()) == {1, 2, 3}, by_partition
    for i in range(1000):
        group = f"{prefix}-{i}"
        if by_partition[offsets_partition(group)] == node:
            return group
    raise AssertionError(f"no group of node {node}")


def test_every_client_produces_and_consumes_partitions_led_by_every_node(cluster):
    bootstrap = cluster[0].bootstrap
    topic = unique_topic("spread")
    found = create(bootstrap, topic, 6)
    assert set(found.values()) == {1, 2, 3}, f"leaders not spread: {found}"

    per_client = 60
    confluent = [{"key": f"c{i}".encode(), "value": f"confluent-{i}".encode(), "partition": i % 6}
                 for i in range(per_client)]
    reports = produce_confluent(bootstrap, topic, confluent)
    assert all(err is None for err, _, _ in reports), reports
    kp = [{"key": f"k{i}".encode(), "value": f"kafka-python-{i}".encode(), "partition": i % 6}
          for i in range(per_client)]
    assert len(produce_kafka_python(bootstrap, topic, kp)) == per_client

    async def produce_aiokafka():
        from aiokafka import AIOKafkaProducer
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=15000)
        await p.start()
        try:
            for i in range(per_client):
                await p.send_and_wait(topic, value=f"aiokafka-{i}".encode(), key=f"a{i}".encode(),
                                      partition=i % 6)
        finally:
            await p.stop()
    asyncio.run(produce_aiokafka())

    expected = sorted([r["value"] for r in confluent + kp]
                      + [f"aiokafka-{i}".encode() for i in range(per_client)])
    partitions = list(range(6))
    for consume in (consume_confluent, consume_kafka_python, consume_aiokafka):
        got = consume(bootstrap, topic, partitions, len(expected))
        assert sorted(r["value"] for r in got) == expected, consume.__name__
        for p in partitions:
            offsets = [r["offset"] for r in got if r["partition"] == p]
            assert sorted(offsets) == list(range(3 * per_client // 6)), (consume.__name__, p)


def test_a_group_coordinated_by_another_broker_rebalances_and_commits(cluster):
    bootstrap = cluster[0].bootstrap
    topic = unique_topic("grouped")
    create(bootstrap, topic, 6)
    group = group_coordinated_by(bootstrap, 2, "group")
    a = admin(bootstrap)
    described = a.describe_consumer_groups([group])[group].result(30)
    assert described.coordinator.id == 2, "FindCoordinator names the leader of the group's partition"

    produce_confluent(bootstrap, topic, [{"value": f"v{i}".encode(), "partition": i % 6} for i in range(120)])

    def member():
        c = consumer_confluent(bootstrap, **{"group.id": group, "auto.offset.reset": "earliest",
                                             "session.timeout.ms": 10000, "enable.auto.offset.store": True,
                                             "partition.assignment.strategy": "range"})
        c.subscribe([topic])
        return c

    first = member()
    seen = []
    try:
        # Alone, the first member gets all six partitions.
        def consumed(c, want):
            for m in c.consume(100, timeout=0.2):
                assert m.error() is None, m.error()
                seen.append((m.partition(), m.offset()))
            return len(seen) >= want
        wait_until(lambda: consumed(first, 60) or None, 30, interval=0, msg="first member's records")
        first.commit(asynchronous=False)
        second = member()
        try:
            # The second member's join rebalances the group: each ends up with three partitions.
            def split():
                for c in (first, second):
                    consumed(c, 0)
                a, b = first.assignment(), second.assignment()
                return len(a) == 3 and len(b) == 3 and not {p.partition for p in a} & {p.partition for p in b}
            wait_until(split, 60, interval=0, msg="a rebalance to 3 + 3 partitions")
            def everything():
                for c in (first, second):
                    consumed(c, 0)
                return len(set(seen)) >= 120
            wait_until(everything, 30, interval=0, msg="every record, between the two members")
            # Each member commits what it consumed since its last commit (_NO_OFFSET: nothing new).
            for c in (first, second):
                try:
                    c.commit(asynchronous=False)
                except KafkaException as e:
                    assert e.args[0].code() == KafkaError._NO_OFFSET, e
        finally:
            second.close()
    finally:
        first.close()
    assert sorted(set(seen)) == sorted({(i % 6, i // 6) for i in range(120)})

    # The commits are held by the coordinator on node 2, whichever node is asked.
    for node in cluster:
        request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(6)])
        a = admin(node.bootstrap)
        result = a.list_consumer_group_offsets([request])[group].result(30)
        assert {tp.partition: tp.offset for tp in result.topic_partitions} == {p: 20 for p in range(6)}


def test_a_transaction_over_three_brokers_commits_and_aborts(cluster):
    bootstrap = cluster[0].bootstrap
    source = unique_topic("txn-in")
    create(bootstrap, source, 1)
    topic = unique_topic("txn-out")
    found = create(bootstrap, topic, 3)
    assert sorted(found.values()) == [1, 2, 3], f"one partition per node: {found}"
    produce_confluent(bootstrap, source, [{"value": b"in"} for _ in range(4)])
    group = group_coordinated_by(bootstrap, 3, "txn-group")

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": unique_topic("tx"),
                  "transaction.timeout.ms": 30000, "socket.timeout.ms": 10000})
    p.init_transactions(30)
    group_member = consumer_confluent(bootstrap, **{"group.id": group})

    def transaction(tag, commit, consumed_to):
        p.begin_transaction()
        for partition in range(3):
            for i in range(5):
                p.produce(topic, value=f"{tag}-{partition}-{i}".encode(), partition=partition)
        # Sent before the transaction ends: abort_transaction drops what is still queued, and the
        # aborted records must be in the log for read_committed to be seen hiding them.
        assert p.flush(30) == 0
        # Offsets in the same transaction, held by the group's coordinator on node 3.
        metadata = group_member.consumer_group_metadata()
        p.send_offsets_to_transaction([TopicPartition(source, 0, consumed_to)], metadata, 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)

    transaction("committed", True, 2)
    transaction("aborted", False, 4)
    transaction("again", True, 3)
    group_member.close()

    for partition in range(3):
        committed = [v for _, _, v in read_to_end(bootstrap, topic, "read_committed", 10, partition)]
        assert committed == ([f"committed-{partition}-{i}".encode() for i in range(5)]
                             + [f"again-{partition}-{i}".encode() for i in range(5)]), partition
        everything = read_to_end(bootstrap, topic, "read_uncommitted", 15, partition)
        assert len(everything) == 15, partition

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(source, 0)])
    a = admin(bootstrap)
    offsets = a.list_consumer_group_offsets([request], require_stable=True)[group].result(30)
    assert offsets.topic_partitions[0].offset == 3, "the aborted transaction's offset 4 does not count"


def test_confluent_elect_leaders_through_every_node(cluster):
    """librdkafka's ElectLeaders, sent to each node (the active controller decides, the others
    forward): partitions led by their preferred replica need no election, a partition that does
    not exist is refused, and an election of all partitions answers with none of them. (No
    timeout arguments: confluent-kafka 2.16's elect_leaders raises SystemError on them.)"""
    create(cluster[0].bootstrap, "elect", 3)
    for node in cluster:
        a = admin(node.bootstrap)
        partitions = [TopicPartition("elect", p) for p in range(3)] + [TopicPartition("elect", 7)]
        for election in ElectionType:
            result = a.elect_leaders(election, partitions).result(30)
            codes = {(tp.topic, tp.partition): (e.code() if e else None) for tp, e in result.items()}
            assert codes == {("elect", 0): KafkaError.ELECTION_NOT_NEEDED,
                             ("elect", 1): KafkaError.ELECTION_NOT_NEEDED,
                             ("elect", 2): KafkaError.ELECTION_NOT_NEEDED,
                             ("elect", 7): KafkaError.UNKNOWN_TOPIC_OR_PART}, (node.bootstrap, election)
        assert a.elect_leaders(ElectionType.PREFERRED, None).result(30) == {}


def test_kafka_python_moves_a_partition_and_lists_the_move(cluster):
    """kafka-python's alter_partition_reassignments moves a one-replica partition onto the two
    other brokers (the records go with it, the old replica's copy is deleted), and
    list_partition_reassignments shows the move until it completes; cancelling with nothing to
    cancel, or moving a partition that does not exist, is refused with Kafka's errors."""
    from kafka import KafkaAdminClient, TopicPartition as KTP
    from kafka.errors import NoReassignmentInProgressError, UnknownTopicOrPartitionError

    bootstrap = cluster[0].bootstrap
    (old,) = create(bootstrap, "moving", 1).values()
    produce_kafka_python(bootstrap, "moving", [{"value": f"v{i}".encode()} for i in range(100)], acks="all")
    target = [n for n in (1, 2, 3) if n != old]
    a = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        tp = KTP("moving", 0)
        assert a.alter_partition_reassignments({tp: target}) == {tp: None}

        def moved():
            ongoing = a.list_partition_reassignments()
            assert set(ongoing) <= {tp}, ongoing
            if tp in ongoing:
                assert ongoing[tp]["adding_replicas"] == target, ongoing
                assert ongoing[tp]["removing_replicas"] == [old], ongoing
                return None
            md = admin(bootstrap).list_topics("moving", timeout=5).topics["moving"].partitions[0]
            return md if md.replicas == target else None
        md = wait_until(moved, 60, interval=0.2, msg="the move completed")
        assert sorted(md.isrs) == sorted(target) and md.leader in target
        assert a.list_partition_reassignments() == {}
        assert a.alter_partition_reassignments({tp: None}) == {tp: NoReassignmentInProgressError}
        assert a.alter_partition_reassignments({KTP("moving", 5): target}) == \
            {KTP("moving", 5): UnknownTopicOrPartitionError}
    finally:
        a.close()
    values = [m["value"] for m in consume_kafka_python(bootstrap, "moving", [0], 100)]
    assert values == [f"v{i}".encode() for i in range(100)]
    old_copy = cluster[old - 1].data_dir / "moving-0"
    wait_until(lambda: not old_copy.exists(), 30, interval=0.2, msg="the old replica's copy deleted")
