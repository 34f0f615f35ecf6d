"""message.max.bytes and message.timestamp.{before,after}.max.ms are enforced by the broker."""

import time

from confluent_kafka import KafkaError

from clients import consume_confluent, create_topic, produce_confluent, unique_topic


def test_message_max_bytes(broker_factory):
    b = broker_factory(overrides={"message.max.bytes": "100000"})
    t = create_topic(b.bootstrap, unique_topic("big"), 1)
    conf = {"message.max.bytes": 1000000, "compression.type": "none", "linger.ms": 0, "retries": 0}

    [(err, _p, _o)] = produce_confluent(b.bootstrap, t, [{"value": b"B" * 200_000, "partition": 0}], **conf)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err

    [(err, p, off)] = produce_confluent(b.bootstrap, t, [{"value": b"s" * 50_000, "partition": 0}], **conf)
    assert err is None and (p, off) == (0, 0)

    [r] = consume_confluent(b.bootstrap, t, [0], 1)
    assert (r["offset"], r["value"]) == (0, b"s" * 50_000)


def test_default_limit_accepts_900kb(broker):
    t = create_topic(broker.bootstrap, unique_topic("big"), 1)
    conf = {"message.max.bytes": 2000000, "batch.size": 2000000, "compression.type": "none", "linger.ms": 0}
    [(err, _p, off)] = produce_confluent(broker.bootstrap, t, [{"value": b"m" * 900_000, "partition": 0}], **conf)
    assert err is None and off == 0
    [(err, _p, _o)] = produce_confluent(broker.bootstrap, t, [{"value": b"L" * 1_200_000, "partition": 0}], **conf)
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    [r] = consume_confluent(broker.bootstrap, t, [0], 1, **{"fetch.max.bytes": 5_000_000,
                                                           "max.partition.fetch.bytes": 5_000_000})
    assert (r["offset"], len(r["value"])) == (0, 900_000)


def test_out_of_range_timestamps_fail_only_their_records(broker):
    """KIP-467: a batch with records older than message.timestamp.before.max.ms is refused naming
    exactly those records (INVALID_RECORD each in librdkafka); librdkafka fails the rest as
    refused because of a different record, and nothing of the batch is stored. With a single bad
    record librdkafka reports the partition's INVALID_TIMESTAMP for the whole batch."""
    t = create_topic(broker.bootstrap, unique_topic("ts"), 1, config={"message.timestamp.before.max.ms": "60000"})
    # One batch: it goes when its 20th record is queued, long before the linger ends.
    conf = {"retries": 0, "message.timeout.ms": 30000, "linger.ms": 10000, "batch.num.messages": 20}

    def produce_with_stale(stale):
        now = int(time.time() * 1000)
        records = [{"value": f"v{i}".encode(), "partition": 0,
                    "timestamp": now - 3_600_000 if i in stale else now} for i in range(20)]
        return [err.code() if err else None for err, _p, _o in produce_confluent(broker.bootstrap, t, records, **conf)]

    codes = produce_with_stale({4, 11, 12})
    assert [i for i, c in enumerate(codes) if c == KafkaError.INVALID_RECORD] == [4, 11, 12], codes
    assert [c for i, c in enumerate(codes) if i not in (4, 11, 12)] == [KafkaError._INVALID_DIFFERENT_RECORD] * 17
    assert produce_with_stale({7}) == [KafkaError.INVALID_TIMESTAMP] * 20
    [(err, _p, off)] = produce_confluent(broker.bootstrap, t, [{"value": b"fresh", "partition": 0}])
    assert err is None and off == 0, "the refused batches took no offsets"
