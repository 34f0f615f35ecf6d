"""Dynamic topic and broker configs (DescribeConfigs, AlterConfigs, IncrementalAlterConfigs),
their effect on live partitions, DeleteRecords, and CreateTopics returning configs; with
confluent-kafka's AdminClient and kafka-python's KafkaAdminClient."""

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource,
                                   ResourceType)

import kafka.errors as kerr
from kafka import TopicPartition as KTopicPartition
from kafka.admin import ConfigResource as KConfigResource, ConfigResourceType, KafkaAdminClient

import struct

from kafka_wire import (compact_string, connect, frame, header_v1, header_v2, read_compact_string, recv_frame,
                        uvarint)
from clients import (admin, consume_confluent, create_topic, produce_confluent, unique_topic,
                     wait_until, watermarks)

DEFAULT_RETENTION = "604800000"


def error_code(fut, timeout=30):
    try:
        fut.result(timeout)
        return None
    except KafkaException as e:
        return e.args[0].code()


def describe(a, rtype, name):
    """librdkafka always asks for synonyms."""
    fut = list(a.describe_configs([ConfigResource(rtype, name)]).values())[0]
    return fut.result(30)


def incremental(a, rtype, name, *entries, validate_only=False):
    res = ConfigResource(rtype, name, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=op) for k, op, v in entries])
    return list(a.incremental_alter_configs([res], validate_only=validate_only).values())[0]


def set_op(k, v):
    return (k, AlterConfigOpType.SET, v)


def delete_op(k):
    return (k, AlterConfigOpType.DELETE, None)


def produce_n(bootstrap, topic, n, prefix="v"):
    produce_confluent(bootstrap, topic, [{"partition": 0, "value": f"{prefix}{i}".encode()} for i in range(n)])


@pytest.fixture
def kadmin(broker):
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    yield a
    a.close()


# ------------------------------------------------------------------ confluent-kafka: topics

def test_topic_set_describe_delete(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("cfg"))
    assert error_code(incremental(a, ResourceType.TOPIC, t, set_op("retention.ms", "3600000"))) is None
    cfg = describe(a, ResourceType.TOPIC, t)
    entry = cfg["retention.ms"]
    assert entry.value == "3600000"
    assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not entry.is_read_only
    syn = [(s.name, s.value, s.source) for s in entry.synonyms.values()] if isinstance(entry.synonyms, dict) \
        else [(s.name, s.value, s.source) for s in entry.synonyms]
    assert ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value) in syn, syn
    assert ("log.retention.ms", DEFAULT_RETENTION, ConfigSource.DEFAULT_CONFIG.value) in syn, syn
    # New config kinds are described with their defaults.
    assert cfg["min.cleanable.dirty.ratio"].value == "0.5"
    assert cfg["delete.retention.ms"].value == "86400000"
    assert cfg["message.timestamp.after.max.ms"].value == "3600000"
    assert cfg["preallocate"].value == "false"

    # validate_only changes nothing.
    assert error_code(incremental(a, ResourceType.TOPIC, t, set_op("retention.ms", "1"),
                                  validate_only=True)) is None
    assert describe(a, ResourceType.TOPIC, t)["retention.ms"].value == "3600000"

    assert error_code(incremental(a, ResourceType.TOPIC, t, delete_op("retention.ms"))) is None
    entry = describe(a, ResourceType.TOPIC, t)["retention.ms"]
    assert entry.value == DEFAULT_RETENTION
    assert entry.source == ConfigSource.DEFAULT_CONFIG.value


def test_append_subtract_cleanup_policy(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("cfg"))
    assert error_code(incremental(a, ResourceType.TOPIC, t,
                                  ("cleanup.policy", AlterConfigOpType.APPEND, "compact"))) is None
    assert describe(a, ResourceType.TOPIC, t)["cleanup.policy"].value == "delete,compact"
    assert error_code(incremental(a, ResourceType.TOPIC, t,
                                  ("cleanup.policy", AlterConfigOpType.SUBTRACT, "delete"))) is None
    assert describe(a, ResourceType.TOPIC, t)["cleanup.policy"].value == "compact"
    # APPEND on a non-list config is refused.
    assert error_code(incremental(a, ResourceType.TOPIC, t,
                                  ("retention.ms", AlterConfigOpType.APPEND, "1"))) == KafkaError.INVALID_CONFIG


def test_invalid_values_and_unknown_topic(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("cfg"))
    for key, value in [("retention.ms", "soon"), ("min.cleanable.dirty.ratio", "1.5"),
                       ("cleanup.policy", "forever"), ("no.such.config", "1")]:
        fut = incremental(a, ResourceType.TOPIC, t, set_op(key, value))
        with pytest.raises(KafkaException) as info:
            fut.result(30)
        assert info.value.args[0].code() == KafkaError.INVALID_CONFIG, (key, info.value)
        assert key in info.value.args[0].str(), info.value
    assert describe(a, ResourceType.TOPIC, t)["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    u = unique_topic("missing")
    assert error_code(incremental(a, ResourceType.TOPIC, u, set_op("retention.ms", "1"))) \
        == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_legacy_alter_configs_replaces_the_set(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("cfg"), config={"retention.ms": "1000", "segment.ms": "2000"})
    res = ConfigResource(ResourceType.TOPIC, t, set_config={"segment.ms": "3000"})
    assert error_code(list(a.alter_configs([res]).values())[0]) is None
    cfg = describe(a, ResourceType.TOPIC, t)
    assert cfg["segment.ms"].value == "3000"
    assert cfg["retention.ms"].value == DEFAULT_RETENTION  # not in the new set: back to default
    bad = ConfigResource(ResourceType.TOPIC, t, set_config={"retention.ms": "x"})
    assert error_code(list(a.alter_configs([bad]).values())[0]) == KafkaError.INVALID_CONFIG


# ------------------------------------------------------------------ confluent-kafka: brokers

def _string(v):
    if v is None:
        return struct.pack(">h", -1)
    b = v.encode()
    return struct.pack(">h", len(b)) + b


def _read_string(buf, pos):
    (n,) = struct.unpack_from(">h", buf, pos)
    pos += 2
    if n < 0:
        return None, pos
    return buf[pos:pos + n].decode(), pos + n


def raw_incremental_alter(broker, rtype, name, changes, validate_only=False):
    """IncrementalAlterConfigs v0 by hand: neither client sends the empty broker name of the
    cluster-wide default (kafka-configs.sh --entity-default does). Returns (code, message)."""
    body = struct.pack(">i", 1) + struct.pack(">b", rtype) + _string(name) + struct.pack(">i", len(changes))
    for key, op, value in changes:
        body += _string(key) + struct.pack(">b", op) + _string(value)
    body += struct.pack(">?", validate_only)
    s = connect(broker)
    try:
        s.sendall(frame(header_v1(44, 0, 7) + body))
        resp = recv_frame(s)
    finally:
        s.close()
    corr, _throttle, count = struct.unpack_from(">iii", resp, 0)
    assert corr == 7 and count == 1
    (code,) = struct.unpack_from(">h", resp, 12)
    message, _ = _read_string(resp, 14)
    return code, message


def set_cluster_default(broker, key, value):
    code, message = raw_incremental_alter(broker, 4, "", [(key, 0 if value is not None else 1, value)])
    assert code == 0, (code, message)


def raw_delete_records(broker, topic, partition, offset):
    """DeleteRecords v0 by hand (clients fail unknown topics locally). Returns (low, code)."""
    body = (struct.pack(">i", 1) + _string(topic) + struct.pack(">i", 1)
            + struct.pack(">iq", partition, offset) + struct.pack(">i", 1000))
    s = connect(broker)
    try:
        s.sendall(frame(header_v1(21, 0, 9) + body))
        resp = recv_frame(s)
    finally:
        s.close()
    pos = 4 + 4 + 4  # correlation id, throttle, topic count
    _name, pos = _read_string(resp, pos)
    pos += 4  # partition count
    _index, low, code = struct.unpack_from(">iqh", resp, pos)
    return low, code


def test_broker_dynamic_configs_layer_under_topic(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("cfg"))
    set_cluster_default(broker, "log.retention.ms", "5000")
    entry = describe(a, ResourceType.TOPIC, t)["retention.ms"]
    assert (entry.value, entry.source) == ("5000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    # Refusals of the cluster default name the key; validate_only commits nothing.
    code, message = raw_incremental_alter(broker, 4, "", [("log.dirs", 0, "/tmp")])
    assert code == KafkaError.INVALID_CONFIG and "log.dirs" in message, (code, message)
    code, message = raw_incremental_alter(broker, 4, "", [("log.retention.ms", 0, "x")])
    assert code == KafkaError.INVALID_CONFIG and "log.retention.ms" in message, (code, message)
    assert raw_incremental_alter(broker, 4, "", [("log.retention.ms", 0, "1")], validate_only=True) == (0, None)

    assert error_code(incremental(a, ResourceType.BROKER, "1", set_op("log.retention.ms", "6000"))) is None
    entry = describe(a, ResourceType.TOPIC, t)["retention.ms"]
    assert (entry.value, entry.source) == ("6000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    brk = describe(a, ResourceType.BROKER, "1")
    assert (brk["log.retention.ms"].value, brk["log.retention.ms"].source) == \
        ("6000", ConfigSource.DYNAMIC_BROKER_CONFIG.value)
    assert brk["log.dirs"].is_read_only and not brk["log.retention.ms"].is_read_only

    # Read-only broker configs are refused, naming the key.
    for key in ["log.dirs", "log.retention.check.interval.ms"]:
        fut = incremental(a, ResourceType.BROKER, "1", set_op(key, "100"))
        with pytest.raises(KafkaException) as info:
            fut.result(30)
        assert info.value.args[0].code() == KafkaError.INVALID_CONFIG
        assert key in info.value.args[0].str()

    assert error_code(incremental(a, ResourceType.BROKER, "1", delete_op("log.retention.ms"))) is None
    set_cluster_default(broker, "log.retention.ms", None)
    entry = describe(a, ResourceType.TOPIC, t)["retention.ms"]
    assert (entry.value, entry.source) == (DEFAULT_RETENTION, ConfigSource.DEFAULT_CONFIG.value)


# ------------------------------------------------------------------ effects

def segment_files(broker, topic):
    return sorted((broker.data_dir / f"{topic}-0").glob("*.log"))


def test_lowered_retention_applies_to_live_partitions(broker_factory):
    b = broker_factory(overrides={"log.retention.check.interval.ms": "200"})
    a = admin(b.bootstrap)
    t = create_topic(b.bootstrap, unique_topic("ret"), config={"segment.ms": "100"})
    sent = [0]

    def rolled():
        produce_n(b.bootstrap, t, 1, prefix=f"r{sent[0]}-")
        sent[0] += 1
        return len(segment_files(b, t)) >= 3
    wait_until(rolled, 60, interval=0.15, msg="three segments")
    assert watermarks(b.bootstrap, t)[0] == 0
    assert error_code(incremental(a, ResourceType.TOPIC, t, set_op("retention.ms", "1"))) is None
    low = wait_until(lambda: watermarks(b.bootstrap, t)[0] or None, 30, msg="low watermark advances")
    assert 0 < low <= sent[0]


def test_broker_default_retention_applies_to_live_partitions(broker_factory):
    b = broker_factory(overrides={"log.retention.check.interval.ms": "200"})
    a = admin(b.bootstrap)
    t = create_topic(b.bootstrap, unique_topic("ret"), config={"segment.bytes": "200"})
    for i in range(6):  # one batch per call: a batch never spans segments
        produce_n(b.bootstrap, t, 1, prefix=f"b{i}-")
    assert len(segment_files(b, t)) >= 3
    assert watermarks(b.bootstrap, t)[0] == 0
    set_cluster_default(b, "log.retention.ms", "1")
    wait_until(lambda: watermarks(b.bootstrap, t)[0] > 0, 30, msg="low watermark advances")
    set_cluster_default(b, "log.retention.ms", None)


def test_delete_records_confluent(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("del"))
    produce_n(broker.bootstrap, t, 10)
    res = list(a.delete_records([TopicPartition(t, 0, 4)]).values())[0].result(30)
    assert res.low_watermark == 4
    assert watermarks(broker.bootstrap, t) == (4, 10)
    got = consume_confluent(broker.bootstrap, t, [0], 6, start=OFFSET_BEGINNING)
    assert [m["offset"] for m in got] == list(range(4, 10))
    assert got[0]["value"] == b"v4"
    # Below the low watermark: nothing changes. Beyond the high watermark: OFFSET_OUT_OF_RANGE.
    assert list(a.delete_records([TopicPartition(t, 0, 2)]).values())[0].result(30).low_watermark == 4
    fut = list(a.delete_records([TopicPartition(t, 0, 11)]).values())[0]
    assert error_code(fut) == KafkaError.OFFSET_OUT_OF_RANGE
    # -1 (OFFSET_END) means the high watermark.
    assert list(a.delete_records([TopicPartition(t, 0, -1)]).values())[0].result(30).low_watermark == 10
    assert watermarks(broker.bootstrap, t) == (10, 10)
    # librdkafka finds no leader for an unknown topic and fails it locally.
    fut = list(a.delete_records([TopicPartition(unique_topic("missing"), 0, 1)]).values())[0]
    assert error_code(fut) in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION, KafkaError._NOENT)
    assert raw_delete_records(broker, unique_topic("missing"), 0, 1) == (-1, KafkaError.UNKNOWN_TOPIC_OR_PART)
    assert raw_delete_records(broker, t, 1, 1) == (-1, KafkaError.UNKNOWN_TOPIC_OR_PART)
    assert raw_delete_records(broker, t, 0, -2) == (-1, KafkaError.OFFSET_OUT_OF_RANGE)


def test_configs_and_low_watermark_survive_restart(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("rst"))
    produce_n(broker.bootstrap, t, 5)
    assert error_code(incremental(a, ResourceType.TOPIC, t, set_op("retention.ms", "123456"))) is None
    set_cluster_default(broker, "log.segment.bytes", "1048576")
    assert list(a.delete_records([TopicPartition(t, 0, 3)]).values())[0].result(30).low_watermark == 3
    broker.restart()
    a = admin(broker.bootstrap)
    cfg = describe(a, ResourceType.TOPIC, t)
    assert (cfg["retention.ms"].value, cfg["retention.ms"].source) == \
        ("123456", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert (cfg["segment.bytes"].value, cfg["segment.bytes"].source) == \
        ("1048576", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert wait_until(lambda: watermarks(broker.bootstrap, t), 30) == (3, 5)


# ------------------------------------------------------------------ kafka-python

def test_kafka_python_alter_describe(broker, kadmin):
    t = unique_topic("kcfg")
    kadmin.create_topics({t: {"num_partitions": 1, "replication_factor": 1}})
    wait_until(lambda: t in kadmin.list_topics(), 30)
    for incremental_api in (True, False):
        value = "7200000" if incremental_api else "7300000"
        kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": value})],
                             incremental=incremental_api)
        res = kadmin.describe_configs([KConfigResource(ConfigResourceType.TOPIC, t)], config_filter="all")
        assert res["topic"][t]["retention.ms"]["value"] == value
    res = kadmin.alter_configs([KConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": "x"})])
    outcome = res["topic"][t]
    assert isinstance(outcome, kerr.InvalidConfigurationError) or "Error 40" in str(outcome), outcome
    assert "retention.ms" in str(outcome)


def test_kafka_python_delete_records(broker, kadmin):
    t = create_topic(broker.bootstrap, unique_topic("kdel"))
    produce_n(broker.bootstrap, t, 8)
    res = kadmin.delete_records({KTopicPartition(t, 0): 5})
    (meta,) = res.values()
    low = meta["low_watermark"] if isinstance(meta, dict) else getattr(meta, "low_watermark", meta)
    assert low == 5, res
    assert watermarks(broker.bootstrap, t) == (5, 8)
    got = consume_confluent(broker.bootstrap, t, [0], 3, start=OFFSET_BEGINNING)
    assert [m["offset"] for m in got] == [5, 6, 7]


def test_kafka_python_create_topics_returns_configs(broker, kadmin):
    t = unique_topic("kcreate")
    res = kadmin.create_topics({t: {"num_partitions": 1, "replication_factor": 1,
                                    "configs": {"retention.ms": "1234"}}}, validate_only=True)
    (topic,) = res["topics"]
    assert topic["error_code"] == 0
    configs = topic["configs"]
    assert configs["retention.ms"] == {"value": "1234", "read_only": False,
                                       "config_source": "DYNAMIC_TOPIC_CONFIG", "is_sensitive": False}
    assert configs["min.cleanable.dirty.ratio"]["value"] == "0.5"
    assert configs["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert t not in kadmin.list_topics()  # validate_only
    # Every new config validates at creation too.
    res = kadmin.create_topics({t: {"num_partitions": 1, "replication_factor": 1,
                                    "configs": {"min.cleanable.dirty.ratio": "2"}}},
                               validate_only=True, raise_errors=False)
    assert res["topics"][0]["error_code"] == kerr.InvalidConfigurationError.errno, res
    assert "min.cleanable.dirty.ratio" in res["topics"][0]["error_message"]


# ------------------------------------------------------------------ group configs (Kafka 4)

def raw_consumer_group_heartbeat(broker, group, topic):
    """A first ConsumerGroupHeartbeat v0 (a member joining) over a raw socket; returns
    (error code, heartbeat interval) of the response."""
    body = (compact_string(group) + compact_string("")      # group, no member id yet
            + struct.pack(">i", 0)                              # member epoch 0: joining
            + uvarint(0) + uvarint(0)                           # no instance id, no rack
            + struct.pack(">i", 30000)                          # rebalance timeout
            + uvarint(2) + compact_string(topic)                # subscribed topics
            + uvarint(0) + uvarint(1)                           # no server assignor, no owned
            + uvarint(0))                                       # tagged fields
    with connect(broker) as s:
        s.sendall(frame(header_v2(68, 0, 11) + body))
        payload = recv_frame(s)
    corr, _tags, _throttle, err = struct.unpack_from(">ibih", payload, 0)
    assert corr == 11
    pos = 11
    _message, pos = read_compact_string(payload, pos)
    _member_id, pos = read_compact_string(payload, pos)
    _epoch, interval = struct.unpack_from(">ii", payload, pos)
    return err, interval


def test_group_configs_describe_alter_and_apply(broker):
    a = admin(broker.bootstrap)
    t = create_topic(broker.bootstrap, unique_topic("grpcfg"))
    # A group may have configs before it exists; unset ones show the broker default.
    entries = describe(a, ResourceType.GROUP, "tuned")
    assert entries["consumer.heartbeat.interval.ms"].value == "5000"
    assert entries["consumer.heartbeat.interval.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert error_code(incremental(a, ResourceType.GROUP, "tuned",
                                  set_op("consumer.heartbeat.interval.ms", "8000"))) is None
    entries = describe(a, ResourceType.GROUP, "tuned")
    assert entries["consumer.heartbeat.interval.ms"].value == "8000"
    assert entries["consumer.heartbeat.interval.ms"].source == ConfigSource.GROUP_CONFIG.value
    assert entries["consumer.session.timeout.ms"].value == "45000"
    # Kafka's bounds (group.consumer.min/max.*) and names are enforced.
    for key, value in [("consumer.session.timeout.ms", "1000"), ("consumer.heartbeat.interval.ms", "0"),
                       ("consumer.heartbeat.interval.ms", "20000"), ("share.session.timeout.ms", "50000")]:
        assert error_code(incremental(a, ResourceType.GROUP, "tuned", set_op(key, value))) \
            == KafkaError.INVALID_CONFIG, (key, value)
    # The coordinator applies the group's value: new members are told the tuned interval.
    assert raw_consumer_group_heartbeat(broker, "tuned", t) == (0, 8000)
    assert raw_consumer_group_heartbeat(broker, "untuned", t) == (0, 5000)
    assert error_code(incremental(a, ResourceType.GROUP, "tuned",
                                  delete_op("consumer.heartbeat.interval.ms"))) is None
    assert raw_consumer_group_heartbeat(broker, "tuned", t) == (0, 5000)
