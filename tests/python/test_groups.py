"""Consumer groups (classic protocol) with confluent-kafka, kafka-python and aiokafka: subscribe,
consume and commit; the admin APIs (list/describe/offsets/delete/alter); __consumer_offsets is an
internal topic clients cannot produce to."""

import asyncio
import time
import uuid

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, \
    KafkaException, TopicCollection, TopicPartition

from clients import admin, create_topic, produce_confluent, topic_partitions, unique_topic, wait_until

FAST_GROUPS = {"group.initial.rebalance.delay.ms": 0, "group.min.session.timeout.ms": 1000,
               "offsets.topic.num.partitions": 5}
OFFSETS_TOPIC = "__consumer_offsets"


@pytest.fixture
def gbroker(broker_factory):
    """A broker whose groups form without the initial rebalance delay."""
    return broker_factory(overrides=FAST_GROUPS)


def unique_group(prefix="g"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def produce_per_partition(bootstrap, topic, partitions, per_partition, tag="v"):
    recs = [{"value": f"{tag}-{p}-{i}".encode(), "partition": p}
            for i in range(per_partition) for p in range(partitions)]
    reports = produce_confluent(bootstrap, topic, recs)
    assert all(err is None for err, _p, _o in reports), reports
    return recs


def group_consumer(bootstrap, group, **conf):
    c = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
         "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
         "socket.timeout.ms": 10000, "enable.partition.eof": False, "broker.address.family": "v4"}
    c.update(conf)
    return Consumer(c)


def poll_records(c, expected, timeout=30.0, grace=0.5):
    """Polls a subscribed confluent consumer until `expected` records arrived, then `grace`
    seconds more (nothing else should come); returns (partition, offset, value) tuples."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < expected:
        assert time.monotonic() < deadline, f"consumed only {len(out)} of {expected}: {out[-5:]}"
        for m in c.consume(num_messages=100, timeout=0.2):
            if m.error():
                raise KafkaException(m.error())
            out.append((m.partition(), m.offset(), m.value()))
    end = time.monotonic() + grace
    while time.monotonic() < end:
        for m in c.consume(num_messages=100, timeout=0.1):
            raise AssertionError(f"unexpected extra record {m.partition()}/{m.offset()} ({m.error()})")
    return out


def committed_confluent(bootstrap, group, topic, partitions):
    """{partition: committed offset} through a consumer that does not join the group."""
    c = group_consumer(bootstrap, group)
    try:
        res = c.committed([TopicPartition(topic, p) for p in partitions], timeout=20)
        assert all(tp.error is None for tp in res), res
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


# ------------------------------------------------------------------ consume + commit per client

def test_confluent_group_consume_commit(gbroker):
    bs = gbroker.bootstrap
    t = create_topic(bs, unique_topic("gcf"), 3)
    g = unique_group()
    produce_per_partition(bs, t, 3, 10, "old")

    assigned = []
    c = group_consumer(bs, g)
    c.subscribe([t], on_assign=lambda _c, parts: assigned.extend(p.partition for p in parts))
    got = poll_records(c, 30)
    assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in range(3) for o in range(10)]
    assert sorted(assigned) == [0, 1, 2]
    res = c.commit(asynchronous=False)
    assert sorted((tp.partition, tp.offset, tp.error) for tp in res) == [(p, 10, None) for p in range(3)]
    assert {tp.partition: tp.offset for tp in c.committed([TopicPartition(t, p) for p in range(3)], timeout=20)} \
        == {0: 10, 1: 10, 2: 10}
    c.close()

    # The group resumes exactly after its commits.
    produce_per_partition(bs, t, 3, 2, "new")
    c = group_consumer(bs, g)
    c.subscribe([t])
    got = poll_records(c, 6)
    assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in range(3) for o in (10, 11)]
    assert all(v.startswith(b"new-") for _, _, v in got)
    c.commit(asynchronous=False)
    c.close()
    assert committed_confluent(bs, g, t, range(3)) == {0: 12, 1: 12, 2: 12}


def test_kafka_python_group_consume_commit(gbroker):
    from kafka import KafkaConsumer, TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    bs = gbroker.bootstrap
    t = create_topic(bs, unique_topic("gkp"), 3)
    g = unique_group()
    produce_per_partition(bs, t, 3, 10)
    c = KafkaConsumer(t, bootstrap_servers=bs, group_id=g, auto_offset_reset="earliest",
                      enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                      request_timeout_ms=15000)
    try:
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 30:
            assert time.monotonic() < deadline, f"kafka-python group consumer got only {len(got)} of 30"
            for _tp, msgs in c.poll(timeout_ms=200).items():
                got.extend((m.partition, m.offset) for m in msgs)
        assert sorted(got) == [(p, o) for p in range(3) for o in range(10)]
        assert {tp.partition for tp in c.assignment()} == {0, 1, 2}
        c.commit()
        for p in range(3):
            assert c.committed(KTP(t, p)) == 10
        # Explicit offsets with metadata.
        c.commit({KTP(t, 0): OffsetAndMetadata(4, "kp-meta", -1)})
        assert c.committed(KTP(t, 0)) == 4
        assert c.committed(KTP(t, 0), metadata=True).metadata == "kp-meta"
    finally:
        c.close()
    # Another client sees the same commits.
    assert committed_confluent(bs, g, t, range(3)) == {0: 4, 1: 10, 2: 10}


def test_aiokafka_group_consume_commit(gbroker):
    from aiokafka import AIOKafkaConsumer, TopicPartition as ATP

    bs = gbroker.bootstrap
    t = create_topic(bs, unique_topic("gaio"), 3)
    g = unique_group()
    produce_per_partition(bs, t, 3, 10)

    async def run():
        c = AIOKafkaConsumer(t, bootstrap_servers=bs, group_id=g, auto_offset_reset="earliest",
                             enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                             request_timeout_ms=15000)
        await c.start()
        try:
            got = []
            deadline = time.monotonic() + 30
            while len(got) < 30:
                assert time.monotonic() < deadline, f"aiokafka group consumer got only {len(got)} of 30"
                for _tp, msgs in (await c.getmany(timeout_ms=200)).items():
                    got.extend((m.partition, m.offset) for m in msgs)
            assert sorted(got) == [(p, o) for p in range(3) for o in range(10)]
            assert {tp.partition for tp in c.assignment()} == {0, 1, 2}
            await c.commit()
            committed = {p: await c.committed(ATP(t, p)) for p in range(3)}
            assert committed == {0: 10, 1: 10, 2: 10}
            await c.commit({ATP(t, 2): 7})
            assert await c.committed(ATP(t, 2)) == 7
        finally:
            await c.stop()

    asyncio.run(run())
    assert committed_confluent(bs, g, t, range(3)) == {0: 10, 1: 10, 2: 7}


def test_mixed_clients_share_a_group(gbroker):
    """A confluent-kafka and a kafka-python member of one group split 4 partitions 2/2 (range)."""
    from kafka import KafkaConsumer

    bs = gbroker.bootstrap
    t = create_topic(bs, unique_topic("gmix"), 4)
    g = unique_group()
    produce_per_partition(bs, t, 4, 5)
    cf = group_consumer(bs, g, **{"partition.assignment.strategy": "range"})
    cf.subscribe([t])
    kp = KafkaConsumer(t, bootstrap_servers=bs, group_id=g, auto_offset_reset="earliest",
                       enable_auto_commit=False, session_timeout_ms=6000, heartbeat_interval_ms=500,
                       request_timeout_ms=15000)
    try:
        seen = set()
        deadline = time.monotonic() + 40
        while True:
            for m in cf.consume(num_messages=100, timeout=0.1):
                assert m.error() is None, m.error()
                seen.add((m.partition(), m.offset()))
            for _tp, msgs in kp.poll(timeout_ms=100).items():
                seen.update((m.partition, m.offset) for m in msgs)
            a_cf = {tp.partition for tp in cf.assignment()}
            a_kp = {tp.partition for tp in kp.assignment()}
            if len(a_cf) == 2 and len(a_kp) == 2 and a_cf | a_kp == {0, 1, 2, 3} and len(seen) == 20:
                break
            assert time.monotonic() < deadline, f"no 2/2 split: confluent {a_cf} kafka-python {a_kp}, seen {len(seen)}"
    finally:
        kp.close()
        cf.close()


# ------------------------------------------------------------------ admin: confluent-kafka

def _listed(a, states=None):
    kw = {"request_timeout": 20}
    if states is not None:
        kw["states"] = states
    res = a.list_consumer_groups(**kw).result()
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def test_confluent_admin_groups(gbroker):
    bs = gbroker.bootstrap
    a = admin(bs)
    t = create_topic(bs, unique_topic("gadm"), 2)
    g = unique_group("adm")
    produce_per_partition(bs, t, 2, 5)

    c = group_consumer(bs, g, **{"client.id": "adm-member", "partition.assignment.strategy": "range"})
    c.subscribe([t])
    poll_records(c, 10, grace=0)
    c.commit(asynchronous=False)

    # list (with and without a state filter)
    listing = wait_until(lambda: (lambda l: l if g in l and l[g].state == ConsumerGroupState.STABLE else None)(
        _listed(a)), 20, msg="group listed as Stable")
    assert listing[g].is_simple_consumer_group is False
    assert g in _listed(a, {ConsumerGroupState.STABLE})
    assert g not in _listed(a, {ConsumerGroupState.EMPTY})

    # describe
    d = a.describe_consumer_groups([g], request_timeout=20)[g].result()
    assert d.group_id == g
    assert d.state == ConsumerGroupState.STABLE
    assert d.partition_assignor == "range"
    assert d.is_simple_consumer_group is False
    assert d.coordinator.id == 1
    assert len(d.members) == 1
    m = d.members[0]
    assert m.client_id == "adm-member"
    assert m.member_id
    assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == [(t, 0), (t, 1)]

    # offsets
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=20)[g].result()
    assert offs.group_id == g
    assert sorted((tp.topic, tp.partition, tp.offset) for tp in offs.topic_partitions) == [(t, 0, 5), (t, 1, 5)]
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g, [TopicPartition(t, 1)])],
                                         request_timeout=20)[g].result()
    assert [(tp.partition, tp.offset) for tp in offs.topic_partitions] == [(1, 5)]

    # delete refused while a member is active
    with pytest.raises(KafkaException) as ei:
        a.delete_consumer_groups([g], request_timeout=20)[g].result()
    assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value

    c.close()
    wait_until(lambda: g in _listed(a, {ConsumerGroupState.EMPTY}), 20, msg="group Empty after its member left")
    d = a.describe_consumer_groups([g], request_timeout=20)[g].result()
    assert d.state == ConsumerGroupState.EMPTY and d.members == []

    # alter offsets of the empty group (OffsetCommit without a generation)
    res = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(g, [TopicPartition(t, 0, 2)])],
                                         request_timeout=20)[g].result()
    assert [(tp.partition, tp.offset, tp.error) for tp in res.topic_partitions] == [(0, 2, None)]
    assert committed_confluent(bs, g, t, [0, 1]) == {0: 2, 1: 5}

    # delete once empty: gone from the list, offsets gone
    assert a.delete_consumer_groups([g], request_timeout=20)[g].result() is None
    assert g not in _listed(a)
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=20)[g].result()
    assert offs.topic_partitions == [] or all(tp.offset < 0 for tp in offs.topic_partitions), offs.topic_partitions
    assert committed_confluent(bs, g, t, [0, 1]) == {0: -1001, 1: -1001}
    # A new member of the same group id starts from auto.offset.reset again.
    c = group_consumer(bs, g)
    c.subscribe([t])
    got = poll_records(c, 10)
    assert sorted((p, o) for p, o, _ in got) == [(p, o) for p in range(2) for o in range(5)]
    c.close()


def test_confluent_delete_unknown_group(gbroker):
    a = admin(gbroker.bootstrap)
    g = unique_group("nope")
    with pytest.raises(KafkaException) as ei:
        a.delete_consumer_groups([g], request_timeout=20)[g].result()
    assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value


# ------------------------------------------------------------------ admin: kafka-python

def test_kafka_python_admin_groups(gbroker):
    from kafka import KafkaAdminClient, TopicPartition as KTP
    from kafka.errors import GroupIdNotFoundError, NoError, NonEmptyGroupError
    from kafka.structs import OffsetAndMetadata

    bs = gbroker.bootstrap
    t = create_topic(bs, unique_topic("gkadm"), 2)
    g = unique_group("kadm")
    produce_per_partition(bs, t, 2, 5)
    c = group_consumer(bs, g, **{"client.id": "kadm-member"})
    c.subscribe([t])
    poll_records(c, 10, grace=0)
    c.commit(asynchronous=False)

    ka = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=20000)
    try:
        def listed(**kw):
            return {x["group_id"]: x for x in ka.list_groups(**kw)}

        groups = wait_until(lambda: (lambda l: l if l.get(g, {}).get("group_state") == "Stable" else None)(listed()),
                            20, msg="kafka-python list_groups shows the group Stable")
        assert groups[g]["protocol_type"] == "consumer"
        assert g in listed(states_filter=["Stable"])
        assert g not in listed(states_filter=["Empty"])

        d = ka.describe_groups([g])[g]
        assert d["error"] is None
        assert d["group_state"] == "Stable"
        assert d["protocol_type"] == "consumer"
        assert d["protocol_data"] == "range"
        assert len(d["members"]) == 1
        member = d["members"][0]
        assert member["client_id"] == "kadm-member"
        assignment = member["member_assignment"]
        parts = sorted(p for a in assignment["assigned_partitions"] for p in a["partitions"])
        assert parts == [0, 1], assignment

        offs = ka.list_group_offsets({g: None})[g]
        assert {tp: o.offset for tp, o in offs.items()} == {KTP(t, 0): 5, KTP(t, 1): 5}

        assert ka.delete_groups([g]) == {g: NonEmptyGroupError.__name__}

        c.close()
        wait_until(lambda: listed().get(g, {}).get("group_state") == "Empty", 20, msg="group Empty")

        res = ka.alter_group_offsets(g, {KTP(t, 1): OffsetAndMetadata(3, "kp", -1)})
        assert res == {KTP(t, 1): NoError}, res
        offs = ka.list_group_offsets({g: None})[g]
        assert {tp: o.offset for tp, o in offs.items()} == {KTP(t, 0): 5, KTP(t, 1): 3}
        assert offs[KTP(t, 1)].metadata == "kp"

        # OffsetDelete of one partition of an empty group
        res = ka.delete_group_offsets(g, [KTP(t, 0)])
        assert res == {KTP(t, 0): NoError}, res
        assert {tp: o.offset for tp, o in ka.list_group_offsets({g: None})[g].items()} == {KTP(t, 1): 3}

        assert ka.delete_groups([g]) == {g: "OK"}
        assert g not in listed()
        assert ka.list_group_offsets({g: None})[g] == {}
        assert ka.describe_groups([g])[g]["group_state"] == "Dead"
        assert ka.delete_groups([g]) == {g: GroupIdNotFoundError.__name__}
    finally:
        ka.close()


# ------------------------------------------------------------------ __consumer_offsets

def test_consumer_offsets_is_internal_and_read_only(broker):
    """Default config: __consumer_offsets appears (50 partitions) on the first FindCoordinator, is
    internal in Metadata, and a client's produce to it fails."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError as KPError

    bs = broker.bootstrap
    t = create_topic(bs, unique_topic("gint"), 1)
    assert topic_partitions(bs, OFFSETS_TOPIC) is None, "created before any group request"
    a = admin(bs)
    g = unique_group("int")
    # list_consumer_group_offsets looks the coordinator up (FindCoordinator) first.
    a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=30)[g].result()
    wait_until(lambda: topic_partitions(bs, OFFSETS_TOPIC) == list(range(50)), 30,
               msg=f"{OFFSETS_TOPIC} with 50 partitions")

    # Metadata: internal (confluent describe_topics and kafka-python describe_topics).
    descs = a.describe_topics(TopicCollection([OFFSETS_TOPIC, t]), request_timeout=20)
    assert descs[OFFSETS_TOPIC].result().is_internal is True
    assert descs[t].result().is_internal is False
    ka = KafkaAdminClient(bootstrap_servers=bs, request_timeout_ms=20000)
    try:
        d = {x.get("name", x.get("topic")): x for x in ka.describe_topics([OFFSETS_TOPIC, t])}
        assert d[OFFSETS_TOPIC]["is_internal"] is True
        assert d[t]["is_internal"] is False
    finally:
        ka.close()

    # Produce is refused, without retries forever.
    reports = produce_confluent(bs, OFFSETS_TOPIC, [{"value": b"evil", "key": b"k", "partition": 0}],
                                **{"message.timeout.ms": 20000})
    err, _p, _o = reports[0]
    assert err is not None, "produce to __consumer_offsets succeeded"
    assert err.code() in (KafkaError.TOPIC_EXCEPTION, KafkaError.TOPIC_AUTHORIZATION_FAILED), err

    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=bs, retries=0, request_timeout_ms=15000, max_block_ms=20000)
    try:
        # kafka-python refuses locally (ValueError: its metadata drops topics flagged internal),
        # otherwise the broker's error comes back through the future.
        with pytest.raises((KPError, ValueError)):
            p.send(OFFSETS_TOPIC, value=b"evil", partition=0).get(timeout=20)
    finally:
        p.close(timeout=5)


# ------------------------------------------------------------------ restart, limits

def test_groups_and_deletions_survive_restart(broker_factory):
    """Committed offsets, an OffsetDelete and a DeleteGroups are all replayed from
    __consumer_offsets after a SIGKILL: the kept group is listed (Empty) with its offsets, the
    deleted offsets and the deleted group stay deleted."""
    from kafka import KafkaAdminClient, TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    b = broker_factory(overrides=FAST_GROUPS)
    t = create_topic(b.bootstrap, unique_topic("grst"), 2)
    keep, gone = unique_group("keep"), unique_group("gone")
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=20000)
    try:
        for g in (keep, gone):
            res = ka.alter_group_offsets(g, {KTP(t, 0): OffsetAndMetadata(3, f"m-{g}", -1),
                                             KTP(t, 1): OffsetAndMetadata(4, "", -1)})
            assert set(res.values()) == {ka_no_error()}, res
        res = ka.delete_group_offsets(keep, [KTP(t, 1)])
        assert set(res.values()) == {ka_no_error()}, res
        assert ka.delete_groups([gone]) == {gone: "OK"}
    finally:
        ka.close()

    b.restart(crash=True)
    ka = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=20000)
    try:
        offs = ka.list_group_offsets({keep: None, gone: None})
        assert {tp: (o.offset, o.metadata) for tp, o in offs[keep].items()} == {KTP(t, 0): (3, f"m-{keep}")}
        assert offs[gone] == {}
        groups = {x["group_id"]: x for x in ka.list_groups()}
        assert gone not in groups, groups
        assert keep in groups and groups[keep]["group_state"] == "Empty", groups
    finally:
        ka.close()
    assert committed_confluent(b.bootstrap, keep, t, [0, 1]) == {0: 3, 1: -1001}


def ka_no_error():
    from kafka.errors import NoError
    return NoError


def test_session_timeout_below_broker_minimum_is_refused(broker):
    """Default group.min.session.timeout.ms=6000: a member asking for 1000 ms gets
    INVALID_SESSION_TIMEOUT and never an assignment."""
    t = create_topic(broker.bootstrap, unique_topic("gst"), 1)
    c = group_consumer(broker.bootstrap, unique_group("short"), **{"session.timeout.ms": 1000,
                                                                    "heartbeat.interval.ms": 300})
    try:
        c.subscribe([t])
        errors = []
        deadline = time.monotonic() + 15
        while not errors and time.monotonic() < deadline:
            for m in c.consume(num_messages=10, timeout=0.2):
                if m.error():
                    errors.append(m.error())
        assert errors, "no error for a session timeout below the broker's minimum"
        assert errors[0].code() == KafkaError.INVALID_SESSION_TIMEOUT, errors
        assert c.assignment() == []
    finally:
        c.close()


def test_commit_to_unknown_topic_or_partition_is_refused(gbroker):
    """Kafka's OffsetCommit answers UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist
    and for a partition the topic does not have (and stores nothing for them)."""
    a = admin(gbroker.bootstrap)
    t = create_topic(gbroker.bootstrap, unique_topic("gunk"), 2)
    g = unique_group("unk")
    missing = unique_topic("nosuch")
    res = a.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(g, [TopicPartition(t, 0, 5), TopicPartition(t, 7, 5),
                                          TopicPartition(missing, 0, 5)])], request_timeout=20)[g]
    try:
        parts = {(tp.topic, tp.partition): tp.error for tp in res.result().topic_partitions}
    except KafkaException as e:  # some clients raise on the first partition error
        parts = {"raised": e.args[0]}
    assert parts.get((t, 0)) is None, parts
    for key in ((t, 7), (missing, 0)):
        assert key in parts and parts[key] is not None \
            and parts[key].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, parts
    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=20)[g].result()
    assert [(tp.topic, tp.partition, tp.offset) for tp in offs.topic_partitions] == [(t, 0, 5)]


def test_offsets_of_a_deleted_topic_are_removed(gbroker):
    """Kafka drops a group's committed offsets for the partitions of a deleted topic, so a topic
    re-created with the same name does not inherit them."""
    bs = gbroker.bootstrap
    a = admin(bs)
    t = create_topic(bs, unique_topic("gdel"), 2)
    g = unique_group("del")
    res = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(g, [TopicPartition(t, 0, 5)])],
                                         request_timeout=20)[g].result()
    assert res.topic_partitions[0].error is None
    a.delete_topics([t], operation_timeout=20)[t].result()
    wait_until(lambda: topic_partitions(bs, t) is None, 20, msg=f"{t} deleted")

    def offsets():
        r = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)], request_timeout=20)[g].result()
        return [(tp.topic, tp.partition, tp.offset) for tp in r.topic_partitions]
    try:
        wait_until(lambda: offsets() == [], 5, msg="offsets of the deleted topic removed")
    except AssertionError:
        raise AssertionError(f"group {g} still has offsets for deleted topic {t}: {offsets()}") from None
