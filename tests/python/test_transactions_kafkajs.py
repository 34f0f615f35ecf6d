"""Transactions with kafkajs (Node.js), a client of the classic protocol, against a broker whose
cluster finalizes transaction.version 2: clients that never heard of KIP-890 part 2 keep their
behaviour (they add partitions themselves and keep one epoch across transactions).

The client side runs in tests/js/transactions.js (scripts/test installs kafkajs with npm ci);
the outcome is read back with confluent-kafka."""

import json
import os
import subprocess

from clients import consume_confluent, consumer_confluent, create_topic, unique_topic, TopicPartition

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js")


def test_kafkajs_commits_aborts_commits_offsets_and_is_fenced(broker):
    bs = broker.bootstrap
    topic = create_topic(bs, unique_topic("kjs"), 1)
    group = f"{topic}-group"
    run = subprocess.run(["node", os.path.join(JS, "transactions.js"), bs, topic, group],
                         capture_output=True, text=True, timeout=120, cwd=JS)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["done"]
    # Its next write is refused for its old epoch (commit is never reached).
    assert seen["zombie"] in ("INVALID_PRODUCER_EPOCH", "PRODUCER_FENCED"), seen

    # c2 and c3 come after the aborted a0 and the fenced z0: reading them proves both skipped.
    committed = consume_confluent(bs, topic, [0], 4, **{"isolation.level": "read_committed"})
    assert [r["value"] for r in committed] == [b"c0", b"c1", b"c2", b"c3"]
    # Everything stored, the fenced zombie's second record excepted (its epoch was refused).
    everything = consume_confluent(bs, topic, [0], 6, **{"isolation.level": "read_uncommitted"})
    assert [r["value"] for r in everything] == [b"c0", b"c1", b"a0", b"c2", b"z0", b"c3"]

    c = consumer_confluent(bs, **{"group.id": group})
    try:
        assert [tp.offset for tp in c.committed([TopicPartition(topic, 0)], timeout=20)] == [7]
    finally:
        c.close()
