"""Records cross between different clients unchanged: keys, values, headers
(including repeated keys), partitions, dense offsets; compression codecs; acks;
idempotent producers."""

import pytest

from clients import (assert_dense, by_partition, consume_aiokafka, consume_confluent, consume_kafka_python,
                     create_topic, norm_headers, produce_confluent, produce_kafka_python, unique_topic)
from lossy_proxy import start_behind
from segments import COMPRESSION_CODECS, read_batches

PARTITIONS = [0, 1, 2, 3]


def keyed_records(n=200):
    recs = []
    for i in range(n):
        p = (i * 7) % 4
        headers = [("trace", f"t-{i}".encode()), ("dup", b"first"), ("dup", b"second")]
        if i % 5 == 0:
            headers.append(("empty", b""))
        if i % 11 == 0:
            headers = []
        value = (f"value-{i}-" + "x" * (i % 50)).encode()
        if i % 13 == 0:
            value = b""
        recs.append({"key": f"key-{i}".encode(), "value": value, "partition": p, "headers": headers})
    # a null key and a null value (tombstone-style) on partition 3
    recs.append({"key": None, "value": b"no-key", "partition": 3, "headers": [("h", b"1")]})
    recs.append({"key": b"tombstone", "value": None, "partition": 3, "headers": []})
    return recs


def expected_per_partition(recs):
    out = {p: [] for p in PARTITIONS}
    for r in recs:
        out[r["partition"]].append((r["key"], r["value"], norm_headers(r["headers"])))
    return out


def observed_per_partition(got):
    parts = by_partition(got)
    return {p: [(r["key"], r["value"], norm_headers(r["headers"])) for r in parts.get(p, [])] for p in PARTITIONS}


@pytest.fixture
def keyed_topic(broker):
    return create_topic(broker.bootstrap, unique_topic("keyed"), 4)


def test_confluent_to_kafka_python_and_aiokafka(broker, keyed_topic):
    recs = keyed_records()
    reports = produce_confluent(broker.bootstrap, keyed_topic, recs)
    assert all(err is None for err, _p, _o in reports), [r for r in reports if r[0]][:3]
    # Delivery reports: right partition, dense offsets per partition in send order.
    next_off = {p: 0 for p in PARTITIONS}
    for r, (_e, p, off) in zip(recs, reports):
        assert p == r["partition"]
        assert off == next_off[p]
        next_off[p] += 1

    want = expected_per_partition(recs)
    for consume in (consume_kafka_python, consume_aiokafka, consume_confluent):
        got = consume(broker.bootstrap, keyed_topic, PARTITIONS, len(recs))
        assert len(got) == len(recs), f"{consume.__name__}: got {len(got)} of {len(recs)} records"
        assert_dense(got, PARTITIONS)
        assert observed_per_partition(got) == want, consume.__name__


def test_kafka_python_to_confluent(broker, keyed_topic):
    recs = keyed_records(150)
    md = produce_kafka_python(broker.bootstrap, keyed_topic, recs)
    next_off = {p: 0 for p in PARTITIONS}
    for r, (p, off) in zip(recs, md):
        assert p == r["partition"]
        assert off == next_off[p]
        next_off[p] += 1
    got = consume_confluent(broker.bootstrap, keyed_topic, PARTITIONS, len(recs))
    assert len(got) == len(recs)
    assert_dense(got, PARTITIONS)
    assert observed_per_partition(got) == expected_per_partition(recs)


def test_timestamps_preserved(broker):
    t = create_topic(broker.bootstrap, unique_topic("ts"), 1)
    recs = [{"value": f"v{i}".encode(), "partition": 0, "timestamp": 1_700_000_000_000 + i * 1000}
            for i in range(20)]
    produce_confluent(broker.bootstrap, t, recs)
    got = consume_confluent(broker.bootstrap, t, [0], len(recs))
    assert [(r["value"], r["timestamp"]) for r in got] == [(r["value"], r["timestamp"]) for r in recs]
    got = consume_kafka_python(broker.bootstrap, t, [0], len(recs))
    assert [(r["value"], r["timestamp"]) for r in got] == [(r["value"], r["timestamp"]) for r in recs]


# ------------------------------------------------------------------ compression

def compressible_records(n, partition=0):
    return [{"key": f"k{i}".encode(), "value": (f"record-{i:06d}-" + "abcdefgh" * 40).encode(),
             "partition": partition, "headers": [("n", str(i).encode())]} for i in range(n)]


CODECS = ["gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_compression_roundtrip(broker, codec):
    t = create_topic(broker.bootstrap, unique_topic(f"c-{codec}"), 1)
    recs = compressible_records(2000)
    reports = produce_confluent(broker.bootstrap, t, recs, **{"compression.type": codec, "linger.ms": 20})
    assert [o for _e, _p, o in reports] == list(range(len(recs)))
    consumers = [consume_confluent] + ([consume_kafka_python, consume_aiokafka] if codec == "gzip" else [])
    for consume in consumers:
        got = consume(broker.bootstrap, t, [0], len(recs))
        assert [(r["offset"], r["key"], r["value"], norm_headers(r["headers"])) for r in got] == \
            [(i, r["key"], r["value"], norm_headers(r["headers"])) for i, r in enumerate(recs)], consume.__name__


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_compression_kept_on_disk(broker, codec):
    """The broker stores the producer's batches as they came: the batches in the
    segment files carry the codec (this also catches librdkafka silently turning
    compression off because of what ApiVersions advertised, KAFKA-18659)."""
    t = create_topic(broker.bootstrap, unique_topic(f"d-{codec}"), 1)
    recs = compressible_records(500)
    produce_confluent(broker.bootstrap, t, recs, **{"compression.type": codec, "linger.ms": 20})
    batches = read_batches(broker.data_dir / f"{t}-0")
    assert batches, "no batches found in the partition's .log files"
    codecs = {b.codec for b in batches}
    assert codecs == {COMPRESSION_CODECS[codec]}, f"on-disk batch codecs {codecs}, expected {codec}"
    assert sum(b.record_count for b in batches) == len(recs)
    assert batches[0].base_offset == 0 and batches[-1].last_offset == len(recs) - 1


def test_kafka_python_gzip_roundtrip(broker):
    t = create_topic(broker.bootstrap, unique_topic("kp-gzip"), 1)
    recs = compressible_records(1000)
    md = produce_kafka_python(broker.bootstrap, t, recs, compression_type="gzip", linger_ms=20)
    assert [o for _p, o in md] == list(range(len(recs)))
    for consume in (consume_confluent, consume_kafka_python):
        got = consume(broker.bootstrap, t, [0], len(recs))
        assert [(r["offset"], r["key"], r["value"], norm_headers(r["headers"])) for r in got] == \
            [(i, r["key"], r["value"], norm_headers(r["headers"])) for i, r in enumerate(recs)], consume.__name__
    batches = read_batches(broker.data_dir / f"{t}-0")
    assert {b.codec for b in batches} == {COMPRESSION_CODECS["gzip"]}


# ------------------------------------------------------------------ acks

@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_confluent_acks(broker, acks):
    t = create_topic(broker.bootstrap, unique_topic(f"acks{acks}"), 2)
    recs = [{"value": f"a{acks}-{i}".encode(), "partition": i % 2} for i in range(1000)]
    reports = produce_confluent(broker.bootstrap, t, recs, acks=acks)
    assert all(err is None for err, _p, _o in reports)
    if acks != "0":
        assert sorted(o for _e, p, o in reports if p == 0) == list(range(500))
    got = consume_confluent(broker.bootstrap, t, [0, 1], len(recs))
    assert len(got) == len(recs)
    assert_dense(got, [0, 1])
    for p in (0, 1):
        assert [r["value"] for r in by_partition(got)[p]] == [r["value"] for r in recs if r["partition"] == p]


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_kafka_python_acks(broker, acks):
    t = create_topic(broker.bootstrap, unique_topic("kacks"), 1)
    recs = [{"value": f"k{acks}-{i}".encode(), "partition": 0} for i in range(500)]
    produce_kafka_python(broker.bootstrap, t, recs, acks=acks, enable_idempotence=(acks == "all"))
    got = consume_confluent(broker.bootstrap, t, [0], len(recs))
    assert [(r["offset"], r["value"]) for r in got] == [(i, r["value"]) for i, r in enumerate(recs)]


# ------------------------------------------------------------------ idempotence

def test_confluent_idempotent_producer(broker_factory):
    # Every 7th answer is lost on the way back: the producer resends batches the broker has
    # already written, which it must recognise by their sequence numbers.
    proxy, broker = start_behind(broker_factory, every=7)
    t = create_topic(broker.bootstrap, unique_topic("idem"), 4)
    n = 10_000
    recs = [{"key": f"k{i}".encode(), "value": f"idem-{i}".encode(), "partition": i % 4} for i in range(n)]
    reports = produce_confluent(proxy.address, t, recs, **{"enable.idempotence": True, "linger.ms": 10,
                                                           "reconnect.backoff.max.ms": 100})
    assert proxy.cuts > 0, "no answer was lost"
    proxy.stop_cutting()
    assert all(err is None for err, _p, _o in reports), [r for r in reports if r[0]][:3]
    got = consume_confluent(broker.bootstrap, t, PARTITIONS, n, timeout=60)
    assert len(got) == n, f"got {len(got)} records, expected exactly {n}"
    assert_dense(got, PARTITIONS)
    for p in PARTITIONS:
        assert [r["value"] for r in by_partition(got)[p]] == [r["value"] for r in recs if r["partition"] == p]


def test_kafka_python_idempotent_producer(broker_factory):
    proxy, broker = start_behind(broker_factory, every=7)
    t = create_topic(broker.bootstrap, unique_topic("kidem"), 4)
    n = 10_000
    recs = [{"key": f"k{i}".encode(), "value": f"kidem-{i}".encode(), "partition": i % 4} for i in range(n)]
    md = produce_kafka_python(proxy.address, t, recs, enable_idempotence=True, acks="all", linger_ms=10,
                              reconnect_backoff_max_ms=100)
    assert proxy.cuts > 0, "no answer was lost"
    proxy.stop_cutting()
    assert sorted(o for p, o in md if p == 0) == list(range(n // 4))
    got = consume_confluent(broker.bootstrap, t, PARTITIONS, n, timeout=60)
    assert len(got) == n, f"got {len(got)} records, expected exactly {n}"
    assert_dense(got, PARTITIONS)
    for p in PARTITIONS:
        assert [r["value"] for r in by_partition(got)[p]] == [r["value"] for r in recs if r["partition"] == p]
