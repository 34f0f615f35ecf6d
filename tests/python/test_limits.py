"""message.max.bytes is enforced by the broker."""

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
