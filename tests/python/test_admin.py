"""Topic administration with confluent-kafka's AdminClient and kafka-python's KafkaAdminClient."""

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic, ResourceType

import kafka.errors as kerr
from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient

from clients import admin, create_topic, topic_partitions, unique_topic, wait_for_partitions, wait_until

INVALID_NAMES = ["", ".", "..", "a" * 250, "bad/name"]


def kafka_error_code(fut, timeout=30):
    """The KafkaError code a confluent-kafka admin future failed with, or None on success."""
    try:
        fut.result(timeout)
        return None
    except KafkaException as e:
        return e.args[0].code()


@pytest.fixture
def kadmin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    yield a
    a.close()


# ------------------------------------------------------------------ confluent-kafka

def test_confluent_create_list_delete(broker):
    a = admin(broker.bootstrap)
    t1, t2 = unique_topic("adm"), unique_topic("adm")
    fs = a.create_topics([NewTopic(t1, num_partitions=3, replication_factor=1),
                          NewTopic(t2, num_partitions=1, replication_factor=-1)])
    assert kafka_error_code(fs[t1]) is None
    assert kafka_error_code(fs[t2]) is None
    wait_for_partitions(broker.bootstrap, t1, 3)
    wait_for_partitions(broker.bootstrap, t2, 1)

    md = a.list_topics(timeout=10)
    assert md.topics[t1].error is None
    assert sorted(md.topics[t1].partitions) == [0, 1, 2]
    for p in md.topics[t1].partitions.values():
        assert p.leader == 1
        assert p.replicas == [1]
        assert p.isrs == [1]
    assert list(md.brokers) == [1]
    assert md.brokers[1].port == broker.port

    # again -> TOPIC_ALREADY_EXISTS, existing topic unchanged
    fs = a.create_topics([NewTopic(t1, num_partitions=5, replication_factor=1)])
    assert kafka_error_code(fs[t1]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert topic_partitions(broker.bootstrap, t1) == [0, 1, 2]

    fs = a.delete_topics([t1])
    assert kafka_error_code(fs[t1]) is None
    wait_until(lambda: topic_partitions(broker.bootstrap, t1) is None, 30, msg=f"{t1} gone from metadata")
    assert topic_partitions(broker.bootstrap, t2) == [0]


@pytest.mark.parametrize("name", INVALID_NAMES, ids=["empty", "dot", "dotdot", "250chars", "slash"])
def test_confluent_invalid_topic_name(broker, name):
    a = admin(broker.bootstrap)
    # librdkafka sends every one of these names: the broker refuses each.
    fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    assert kafka_error_code(fs[name]) == KafkaError.TOPIC_EXCEPTION
    md = a.list_topics(timeout=10)
    assert name not in md.topics


def test_confluent_invalid_partitions_and_replication(broker):
    a = admin(broker.bootstrap)
    t = unique_topic("adm")
    fs = a.create_topics([NewTopic(t, num_partitions=0, replication_factor=1)])
    assert kafka_error_code(fs[t]) == KafkaError.INVALID_PARTITIONS
    fs = a.create_topics([NewTopic(t, num_partitions=2, replication_factor=3)])
    assert kafka_error_code(fs[t]) == KafkaError.INVALID_REPLICATION_FACTOR
    assert topic_partitions(broker.bootstrap, t) is None


def test_confluent_create_partitions(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("adm"), 2)
    fs = a.create_partitions([NewPartitions(t, 5)])
    assert kafka_error_code(fs[t]) is None
    wait_for_partitions(broker.bootstrap, t, 5)
    fs = a.create_partitions([NewPartitions(t, 3)])
    assert kafka_error_code(fs[t]) == KafkaError.INVALID_PARTITIONS
    fs = a.create_partitions([NewPartitions(t, 5)])  # same count is not an increase
    assert kafka_error_code(fs[t]) == KafkaError.INVALID_PARTITIONS
    assert topic_partitions(broker.bootstrap, t) == [0, 1, 2, 3, 4]
    u = unique_topic("missing")
    fs = a.create_partitions([NewPartitions(u, 3)])
    assert kafka_error_code(fs[u]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_confluent_delete_unknown(broker):
    a = admin(broker.bootstrap)
    t = unique_topic("missing")
    fs = a.delete_topics([t])
    assert kafka_error_code(fs[t]) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_confluent_describe_configs(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("cfg"), 1, config={"retention.ms": "3600000"})
    u = create_topic(broker.bootstrap, unique_topic("cfg"), 1)
    res = {r: f.result(30) for r, f in a.describe_configs([ConfigResource(ResourceType.TOPIC, t),
                                                          ConfigResource(ResourceType.TOPIC, u),
                                                          ConfigResource(ResourceType.BROKER, "1")]).items()}
    by_name = {r.name: v for r, v in res.items()}
    assert by_name[t]["retention.ms"].value == "3600000"
    assert by_name[u]["retention.ms"].value == "604800000"
    assert by_name[u]["cleanup.policy"].value == "delete"
    assert by_name[t]["cleanup.policy"].value == "delete"
    brk = by_name["1"]
    retention = (brk["log.retention.ms"].value if "log.retention.ms" in brk else None,
                 brk["log.retention.hours"].value if "log.retention.hours" in brk else None)
    assert retention[0] == "604800000" or (retention[0] is None and retention[1] == "168"), retention
    assert brk["num.partitions"].value == "1"
    assert brk["message.max.bytes"].value == "1048588"


def test_confluent_describe_configs_unknown_topic(broker):
    a = admin(broker.bootstrap)
    t = unique_topic("missing")
    fut = list(a.describe_configs([ConfigResource(ResourceType.TOPIC, t)]).values())[0]
    assert kafka_error_code(fut) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_confluent_describe_cluster(broker):
    a = admin(broker.bootstrap)
    d = a.describe_cluster(request_timeout=10).result(30)
    assert [n.id for n in d.nodes] == [1]
    assert d.nodes[0].port == broker.port
    assert d.controller.id == 1
    assert d.cluster_id


# ------------------------------------------------------------------ kafka-python

def test_kafka_python_create_list_delete(broker, kadmin):
    t = unique_topic("kadm")
    r = kadmin.create_topics({t: {"num_partitions": 4, "replication_factor": 1}})
    assert [(x["name"], x["error_code"]) for x in r["topics"]] == [(t, 0)]
    wait_until(lambda: t in kadmin.list_topics(), 30, msg=f"{t} listed")
    desc = {d["name"]: d for d in kadmin.describe_topics([t])}
    assert sorted(p["partition_index"] for p in desc[t]["partitions"]) == [0, 1, 2, 3]
    assert all(p["leader_id"] == 1 for p in desc[t]["partitions"])

    with pytest.raises(kerr.TopicAlreadyExistsError):
        kadmin.create_topics({t: {"num_partitions": 4, "replication_factor": 1}})

    r = kadmin.delete_topics([t])
    assert [(x["name"], x["error_code"]) for x in r["topics"]] == [(t, 0)]
    wait_until(lambda: t not in kadmin.list_topics(), 30, msg=f"{t} gone")
    with pytest.raises(kerr.UnknownTopicOrPartitionError):
        kadmin.delete_topics([t])


@pytest.mark.parametrize("name", INVALID_NAMES, ids=["empty", "dot", "dotdot", "250chars", "slash"])
def test_kafka_python_invalid_topic_name(broker, kadmin, name):
    with pytest.raises(kerr.InvalidTopicError):
        kadmin.create_topics({name: {"num_partitions": 1, "replication_factor": 1}})
    assert name not in kadmin.list_topics()


@pytest.mark.parametrize("parts", [0, -5])
def test_kafka_python_invalid_partitions(broker, kadmin, parts):
    t = unique_topic("kadm")
    with pytest.raises(kerr.InvalidPartitionsError):
        kadmin.create_topics({t: {"num_partitions": parts, "replication_factor": 1}})
    assert t not in kadmin.list_topics()


def test_kafka_python_invalid_replication_factor(broker, kadmin):
    t = unique_topic("kadm")
    with pytest.raises(kerr.InvalidReplicationFactorError):
        kadmin.create_topics({t: {"num_partitions": 1, "replication_factor": 3}})
    assert t not in kadmin.list_topics()


def test_kafka_python_create_partitions(broker, kadmin):
    t = unique_topic("kadm")
    kadmin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}})
    wait_for_partitions(broker.bootstrap, t, 1)
    kadmin.create_partitions({t: 3})
    wait_for_partitions(broker.bootstrap, t, 3)
    with pytest.raises(kerr.InvalidPartitionsError):
        kadmin.create_partitions({t: 2})
    assert topic_partitions(broker.bootstrap, t) == [0, 1, 2]


def test_kafka_python_describe_configs(broker, kadmin):
    t = unique_topic("kcfg")
    kadmin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}})
    wait_for_partitions(broker.bootstrap, t, 1)
    res = kadmin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, t),
                                   KConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all")
    topic_cfg = res["topic"][t]
    assert topic_cfg["retention.ms"]["value"] == "604800000"
    assert topic_cfg["cleanup.policy"]["value"] == "delete"
    broker_cfg = res["broker"]["1"]
    assert broker_cfg["num.partitions"]["value"] == "1"
    assert broker_cfg["message.max.bytes"]["value"] == "1048588"
