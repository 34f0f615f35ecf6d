"""Log compaction with real clients: a `cleanup.policy=compact` topic keeps only the latest value
per key (and drops tombstones `delete.retention.ms` after their first clean) in its inactive
segments; offsets and timestamps of the records that stay do not change; keyless records are
refused."""

import time

import pytest
from confluent_kafka import KafkaError

from clients import (consume_confluent, consume_kafka_python, create_topic, produce_confluent, unique_topic,
                     wait_until)

CLEANER = {"log.cleaner.backoff.ms": 100}
COMPACT = {"cleanup.policy": "compact", "segment.bytes": "1000", "min.cleanable.dirty.ratio": "0.01",
           "delete.retention.ms": "100", "min.compaction.lag.ms": "0"}


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_compaction_keeps_the_latest_value_per_key(broker_factory, codec):
    b = broker_factory(overrides=CLEANER)
    t = create_topic(b.bootstrap, unique_topic("compact"), 1, config=COMPACT)
    records = []
    for round_ in range(20):
        for k in range(10):
            records.append({"key": f"k{k}".encode(), "value": f"v{round_}".encode(), "partition": 0})
    records.append({"key": b"k0", "value": None, "partition": 0})  # tombstone for k0
    # Fillers push every k* record out of the active segment, so all of them are cleanable.
    records += [{"key": b"filler", "value": b"x" * 20, "partition": 0} for _ in range(60)]
    reports = produce_confluent(b.bootstrap, t, records, **{"compression.type": codec, "linger.ms": 5,
                                                            "batch.num.messages": 10})
    offsets = {}
    for r, (err, _p, off) in zip(records, reports):
        assert err is None
        offsets[r["key"]] = off  # the offset of each key's latest record

    fillers = [{"key": b"filler", "value": b"y" * 20, "partition": 0} for _ in range(20)]

    def latest_only():
        got = consume_confluent(b.bootstrap, t, [0], len(records), timeout=3)
        keyed = [r for r in got if r["key"] != b"filler"]
        if len(keyed) == 9:
            return keyed
        # A tombstone goes in a clean after delete.retention.ms; new writes make the log dirty
        # enough for the next clean (as in Kafka, a clean log is not re-read).
        produce_confluent(b.bootstrap, t, fillers)
        return None

    kept = wait_until(latest_only, timeout=60, msg="compaction to keep one record per key")
    assert sorted((r["key"], r["value"], r["offset"]) for r in kept) == \
        sorted((f"k{k}".encode(), b"v19", offsets[f"k{k}".encode()]) for k in range(1, 10))


def test_keyless_records_are_refused_by_compacted_topics(broker):
    """KIP-467: in one batch of 100 with 10 keyless records, exactly those 10 fail with
    INVALID_RECORD; librdkafka fails the other 90 as refused because of a different record; the
    batch is not stored, and a batch of keyed records after it is."""
    t = create_topic(broker.bootstrap, unique_topic("nokey"), 1, config={"cleanup.policy": "compact"})
    records = [{"key": None if i % 10 == 3 else f"k{i}".encode(), "value": b"v", "partition": 0}
               for i in range(100)]
    # The batch goes when its 100th record is queued; the long linger keeps a loaded machine
    # from sending the first records alone (seen once in a full run with linger.ms 1000).
    one_batch = {"retries": 0, "message.timeout.ms": 30000, "linger.ms": 10000, "batch.num.messages": 100}
    reports = produce_confluent(broker.bootstrap, t, records, **one_batch)
    codes = [err.code() if err else None for err, _p, _o in reports]
    keyless = [i for i, r in enumerate(records) if r["key"] is None]
    assert [i for i, c in enumerate(codes) if c == KafkaError.INVALID_RECORD] == keyless, codes
    assert [c for i, c in enumerate(codes) if i not in keyless] == [KafkaError._INVALID_DIFFERENT_RECORD] * 90
    keyed = [r for r in records if r["key"] is not None]
    reports = produce_confluent(broker.bootstrap, t, keyed, **one_batch)
    assert [(err, off) for err, _p, off in reports] == [(None, i) for i in range(90)]
    got = consume_confluent(broker.bootstrap, t, [0], 90, timeout=10)
    assert [r["key"] for r in got] == [r["key"] for r in keyed]


def test_old_tombstones_survive_their_first_clean_with_their_timestamps(broker_factory):
    """KIP-534: delete.retention.ms counts from a tombstone's first clean, whatever its timestamp;
    the cleaned batch (its first-timestamp field now the delete horizon) reads back with every
    record's own timestamp in librdkafka and kafka-python."""
    b = broker_factory(overrides=CLEANER)
    t = create_topic(b.bootstrap, unique_topic("horizon"), 1,
                     config={**COMPACT, "delete.retention.ms": "3600000"})
    hour_ago = int(time.time() * 1000) - 3_600_000 * 2
    records = [{"key": b"gone", "value": b"v", "partition": 0, "timestamp": hour_ago},
               {"key": b"gone", "value": None, "partition": 0, "timestamp": hour_ago + 1},
               {"key": b"kept", "value": b"v", "partition": 0, "timestamp": hour_ago + 2}]
    records += [{"key": b"filler", "value": b"x" * 40, "partition": 0} for _ in range(60)]
    produce_confluent(b.bootstrap, t, records, **{"linger.ms": 0, "batch.num.messages": 1})

    def cleaned():
        got = consume_confluent(b.bootstrap, t, [0], 2, timeout=3)
        keyed = [(r["key"], r["value"], r["timestamp"]) for r in got if r["key"] != b"filler"]
        return keyed if len(keyed) == 2 else None

    # The superseded value went; the two-hour-old tombstone stays for delete.retention.ms.
    kept = wait_until(cleaned, timeout=30, msg="the first clean")
    want = [(b"gone", None, hour_ago + 1), (b"kept", b"v", hour_ago + 2)]
    assert kept == want
    got = consume_kafka_python(b.bootstrap, t, [0], 62, timeout=10)
    assert [(r["key"], r["value"], r["timestamp"]) for r in got if r["key"] != b"filler"] == want
