"""ListOffsets: by timestamp, earliest/latest, max timestamp."""

from confluent_kafka import TopicPartition
from confluent_kafka.admin import OffsetSpec

from clients import (admin, consumer_confluent, create_topic, kp_consumer, produce_confluent, unique_topic,
                     watermarks)


def produce_at(bootstrap, topic, timestamps):
    recs = [{"value": f"ts-{ts}".encode(), "partition": 0, "timestamp": ts} for ts in timestamps]
    reports = produce_confluent(bootstrap, topic, recs, **{"linger.ms": 0})
    assert [o for _e, _p, o in reports] == list(range(len(timestamps)))


def test_offsets_for_times_confluent(broker):
    t = create_topic(broker.bootstrap, unique_topic("lo"), 1)
    produce_at(broker.bootstrap, t, [1000, 2000, 3000])
    c = consumer_confluent(broker.bootstrap)
    try:
        def lookup(ts):
            [r] = c.offsets_for_times([TopicPartition(t, 0, ts)], timeout=10)
            assert r.error is None
            return r.offset
        assert lookup(0) == 0
        assert lookup(1000) == 0
        assert lookup(1500) == 1
        assert lookup(2000) == 1
        assert lookup(2001) == 2
        assert lookup(3000) == 2
        assert lookup(4000) == -1  # no such record: librdkafka reports OFFSET_END (-1)
        assert c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False) == (0, 3)
    finally:
        c.close()


def test_offsets_for_times_kafka_python(broker):
    from kafka import TopicPartition as KTP
    t = create_topic(broker.bootstrap, unique_topic("lo"), 1)
    produce_at(broker.bootstrap, t, [1000, 2000, 3000])
    c = kp_consumer(broker.bootstrap)
    try:
        tp = KTP(t, 0)
        got = c.offsets_for_times({tp: 1500})[tp]
        assert (got.offset, got.timestamp) == (1, 2000)
        got = c.offsets_for_times({tp: 0})[tp]
        assert (got.offset, got.timestamp) == (0, 1000)
        assert c.offsets_for_times({tp: 4000})[tp] is None
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 3}
    finally:
        c.close()


def test_list_offsets_admin_specs(broker):
    """earliest / latest / for_timestamp / max_timestamp through AdminClient.list_offsets,
    with out-of-order timestamps so that max timestamp is not simply the last record."""
    t = create_topic(broker.bootstrap, unique_topic("lo"), 1)
    produce_at(broker.bootstrap, t, [1000, 5000, 2000, 3000])
    a = admin(broker.bootstrap)
    tp = TopicPartition(t, 0)

    def one(spec):
        [f] = a.list_offsets({tp: spec}, request_timeout=10).values()
        r = f.result(30)
        return r.offset, r.timestamp

    assert one(OffsetSpec.earliest())[0] == 0
    assert one(OffsetSpec.latest())[0] == 4
    assert one(OffsetSpec.for_timestamp(1500)) == (1, 5000)
    assert one(OffsetSpec.for_timestamp(5000)) == (1, 5000)
    assert one(OffsetSpec.max_timestamp()) == (1, 5000)
    assert one(OffsetSpec.for_timestamp(6000))[0] == -1


def test_watermarks_empty_and_after_produce(broker):
    t = create_topic(broker.bootstrap, unique_topic("wm"), 2)
    assert watermarks(broker.bootstrap, t, 0) == (0, 0)
    produce_confluent(broker.bootstrap, t, [{"value": b"x", "partition": 1} for _ in range(7)])
    assert watermarks(broker.bootstrap, t, 0) == (0, 0)
    assert watermarks(broker.bootstrap, t, 1) == (0, 7)


def test_log_append_time(broker_factory):
    """log.message.timestamp.type=LogAppendTime: the broker stamps records with its clock."""
    import time
    b = broker_factory(overrides={"log.message.timestamp.type": "LogAppendTime"})
    t = create_topic(b.bootstrap, unique_topic("lat"), 1)
    before = int(time.time() * 1000)
    produce_confluent(b.bootstrap, t, [{"value": b"v", "partition": 0, "timestamp": 1000}])
    after = int(time.time() * 1000)
    from clients import consume_confluent
    [r] = consume_confluent(b.bootstrap, t, [0], 1)
    assert before - 1000 <= r["timestamp"] <= after + 1000, (before, r["timestamp"], after)
