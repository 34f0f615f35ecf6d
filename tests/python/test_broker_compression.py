"""Broker-side `compression.type`: a topic that names a codec stores every batch in it, whatever
the producer used, and every client still reads the records; `producer` keeps batches as sent."""

import pytest

from clients import consume_confluent, consume_kafka_python, create_topic, produce_confluent, \
    produce_kafka_python, unique_topic
from segments import COMPRESSION_CODECS, read_batches


def records(n):
    return [{"key": f"k{i}".encode(), "value": (f"value {i} " * 30).encode(), "partition": 0}
            for i in range(n)]


@pytest.mark.parametrize("topic_codec", ["zstd", "lz4", "snappy", "gzip", "uncompressed"])
def test_topic_codec_is_what_lands_on_disk(broker, topic_codec):
    t = create_topic(broker.bootstrap, unique_topic("bc"), 1, config={"compression.type": topic_codec})
    produce_confluent(broker.bootstrap, t, records(300), **{"compression.type": "gzip", "linger.ms": 50})
    batches = read_batches(broker.data_dir / f"{t}-0")
    expected = COMPRESSION_CODECS["none" if topic_codec == "uncompressed" else topic_codec]
    assert batches and {b.codec for b in batches} == {expected}, [b.codec for b in batches]
    assert sum(b.record_count for b in batches) == 300
    got = consume_confluent(broker.bootstrap, t, [0], 300)
    assert [(r["offset"], r["key"], r["value"]) for r in got] == \
        [(i, f"k{i}".encode(), (f"value {i} " * 30).encode()) for i in range(300)]


def test_kafka_python_gzip_into_a_zstd_topic(broker):
    t = create_topic(broker.bootstrap, unique_topic("kpz"), 1, config={"compression.type": "zstd"})
    produce_kafka_python(broker.bootstrap, t, records(100), compression_type="gzip")
    assert {b.codec for b in read_batches(broker.data_dir / f"{t}-0")} == {COMPRESSION_CODECS["zstd"]}
    got = consume_kafka_python(broker.bootstrap, t, [0], 100)
    assert sorted(r["value"] for r in got) == sorted(r["value"] for r in records(100))


def test_producer_codec_is_kept_by_default(broker):
    t = create_topic(broker.bootstrap, unique_topic("keep"), 1)
    produce_confluent(broker.bootstrap, t, records(100), **{"compression.type": "snappy", "linger.ms": 50})
    assert {b.codec for b in read_batches(broker.data_dir / f"{t}-0")} == {COMPRESSION_CODECS["snappy"]}


@pytest.mark.parametrize("codec,low,high", [("gzip", 1, 9), ("zstd", 1, 19), ("lz4", 1, 17)])
def test_topic_compression_level_is_used(broker, codec, low, high):
    """`compression.<codec>.level` (KIP-390) decides how hard the broker compresses: the same
    records take fewer bytes at the higher level, and read back the same."""
    text = [{"key": None, "partition": 0,
             "value": " ".join(f"{w}{(i * 7919 + j * 104729) % 1000}" for j, w in
                               enumerate(["alpha", "beta", "gamma", "delta"] * 20)).encode()}
            for i in range(2000)]
    stored = {}
    for level in (low, high):
        t = create_topic(broker.bootstrap, unique_topic(f"lvl-{codec}"), 1,
                         config={"compression.type": codec, f"compression.{codec}.level": str(level)})
        produce_confluent(broker.bootstrap, t, text, **{"compression.type": "none", "linger.ms": 50})
        batches = read_batches(broker.data_dir / f"{t}-0")
        assert {b.codec for b in batches} == {COMPRESSION_CODECS[codec]}
        stored[level] = sum(b.length for b in batches)
        got = consume_confluent(broker.bootstrap, t, [0], len(text))
        assert [r["value"] for r in got] == [r["value"] for r in text]
    # Far apart (2x to 9x here): how the producer happened to batch cannot explain it.
    assert stored[high] < 0.8 * stored[low], stored
