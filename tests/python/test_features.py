"""Feature levels (KIP-584) as Kafka 4 reports them: ApiVersions v3 carries the supported ranges
and finalized levels (read through kafka-python's describe_features), UpdateFeatures raises and
lowers them as metadata records that survive a restart, and the levels govern what the broker
serves: at group.version 0 the KIP-848 consumer protocol is gone from ApiVersions."""

import subprocess

import pytest
from kafka import KafkaAdminClient
from kafka.errors import InvalidUpdateVersionError

from gregor_broker import GREGOR_BIN
from kafka_wire import advertised_apis

CONSUMER_GROUP_HEARTBEAT = 68
CONSUMER_GROUP_DESCRIBE = 69
# What a new cluster finalizes (level 0 is not listed, as in Kafka).
NEW_CLUSTER = {"metadata.version": (27, 27), "group.version": (1, 1), "transaction.version": (2, 2),
               "eligible.leader.replicas.version": (1, 1)}


def describe(bootstrap):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.describe_features()
    finally:
        admin.close()


def update(bootstrap, updates, validate_only=False):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return admin.update_features(updates, validate_only=validate_only)
    finally:
        admin.close()


def finalized(features):
    return {name: f["finalized"] for name, f in features.items() if "finalized" in f}


def test_levels_are_reported_changed_and_kept(broker):
    bs = broker.bootstrap
    features = describe(bs)
    assert {name: f["supported"] for name, f in features.items()} == {
        "metadata.version": (27, 27), "kraft.version": (0, 0), "group.version": (0, 1),
        "transaction.version": (0, 2), "eligible.leader.replicas.version": (0, 1)}
    assert finalized(features) == NEW_CLUSTER
    epoch = features["group.version"]["finalized_epoch"]
    assert epoch >= 0
    assert {CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE} <= set(advertised_apis(broker))

    # Validation alone changes nothing.
    assert update(bs, {"group.version": ("SAFE_DOWNGRADE", 0)}, validate_only=True) == {"group.version": "OK"}
    assert finalized(describe(bs))["group.version"] == (1, 1)

    assert update(bs, {"group.version": ("SAFE_DOWNGRADE", 0)}) == {"group.version": "OK"}
    features = describe(bs)
    # Level 0 is not finalized, as in Kafka.
    assert "group.version" not in finalized(features)
    assert features["metadata.version"]["finalized_epoch"] > epoch
    assert not {CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE} & set(advertised_apis(broker))

    broker.stop()
    broker.start()
    assert "group.version" not in finalized(describe(bs := broker.bootstrap))
    assert update(bs, {"group.version": 1}) == {"group.version": "OK"}
    assert finalized(describe(bs))["group.version"] == (1, 1)
    assert {CONSUMER_GROUP_HEARTBEAT, CONSUMER_GROUP_DESCRIBE} <= set(advertised_apis(broker))


@pytest.mark.parametrize("updates", [
    {"group.version": 2},                            # above the supported range
    {"group.version": 0},                            # a downgrade sent as an upgrade
    {"metadata.version": ("SAFE_DOWNGRADE", 26)},    # below the supported range
    {"no.such.feature": 1},
    {"group.version": ("SAFE_DOWNGRADE", 0), "transaction.version": 3},  # all or nothing
])
def test_refused_updates_change_nothing(broker, updates):
    with pytest.raises(InvalidUpdateVersionError):
        update(broker.bootstrap, updates)
    assert finalized(describe(broker.bootstrap)) == NEW_CLUSTER


def test_cli_describes_and_changes_levels_like_kafka_features(broker):
    def gregor(*args):
        return subprocess.run([GREGOR_BIN, "features", "--bootstrap-server", broker.bootstrap, *args],
                              capture_output=True, text=True, timeout=60)

    out = gregor("describe")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Feature: eligible.leader.replicas.version\tSupportedMinVersion: 0\t"
                               "SupportedMaxVersion: 1\tFinalizedVersionLevel: 1\t"), lines
    assert lines[1].startswith("Feature: group.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\t"
                               "FinalizedVersionLevel: 1\tEpoch: "), lines
    assert "Feature: metadata.version\tSupportedMinVersion: 4.1-IV1\tSupportedMaxVersion: 4.1-IV1\t" \
           "FinalizedVersionLevel: 4.1-IV1" in out.stdout
    out = gregor("downgrade", "--feature", "group.version=0", "--dry-run")
    assert (out.returncode, out.stdout) == (0, "group.version can be downgraded to 0.\n"), out.stderr
    assert "FinalizedVersionLevel: 1" in gregor("describe").stdout.splitlines()[1]
    out = gregor("disable", "--feature", "group.version")
    assert (out.returncode, out.stdout) == (0, "group.version was downgraded to 0.\n"), out.stderr
    out = gregor("upgrade", "--feature", "group.version=5")
    assert out.returncode == 1
    assert out.stdout.startswith("Could not change group.version to 5. Invalid update version 5"), out.stdout
    out = gregor("upgrade", "--feature", "group.version=1", "--metadata", "4.1")
    assert (out.returncode, out.stdout) == (0, "group.version was upgraded to 1.\n"
                                               "metadata.version was upgraded to 4.1-IV1.\n"), out.stderr
