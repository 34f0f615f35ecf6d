"""kcat (Debian's, librdkafka 2.0.2) against the broker."""

import shutil
import subprocess

import pytest

from clients import consume_confluent, create_topic, unique_topic
from segments import COMPRESSION_CODECS, read_batches

KCAT = shutil.which("kcat") or shutil.which("kafkacat")


def kcat(broker, *args, input=None, timeout=60):
    assert KCAT, "kcat not installed (scripts/test installs it)"
    p = subprocess.run([KCAT, "-b", broker.bootstrap, *args], input=input, capture_output=True, timeout=timeout)
    assert p.returncode == 0, f"kcat {' '.join(args)} exited {p.returncode}: {p.stderr.decode(errors='replace')}"
    return p.stdout.decode()


def test_kcat_metadata(broker):
    t = create_topic(broker.bootstrap, unique_topic("kc"), 3)
    out = kcat(broker, "-L")
    assert f'topic "{t}" with 3 partitions:' in out, out
    assert f"broker 1 at 127.0.0.1:{broker.port}" in out, out
    for p in range(3):
        assert f"partition {p}, leader 1, replicas: 1, isrs: 1" in out, out


def test_kcat_produce_consume_keyed(broker):
    t = create_topic(broker.bootstrap, unique_topic("kc"), 1)
    lines = [f"key{i}:value {i} with spaces" for i in range(100)]
    kcat(broker, "-P", "-t", t, "-p", "0", "-K:", input=("\n".join(lines) + "\n").encode())
    out = kcat(broker, "-C", "-t", t, "-o", "beginning", "-e", "-q", "-f", "%k=%s\n")
    assert out.splitlines() == [ln.replace(":", "=", 1) for ln in lines]
    out = kcat(broker, "-C", "-t", t, "-p", "0", "-o", "95", "-e", "-q", "-f", "%o %k\n")
    assert out.splitlines() == [f"{i} key{i}" for i in range(95, 100)]
    # and a different client sees the same
    got = consume_confluent(broker.bootstrap, t, [0], 100)
    assert [(r["key"], r["value"]) for r in got] == [(f"key{i}".encode(), f"value {i} with spaces".encode())
                                                     for i in range(100)]


def test_kcat_auto_creates_topic(broker):
    t = unique_topic("kcauto")
    kcat(broker, "-P", "-t", t, input=b"one\ntwo\nthree\n")
    out = kcat(broker, "-C", "-t", t, "-o", "beginning", "-e", "-q", "-f", "%p:%o:%s\n")
    assert out.splitlines() == ["0:0:one", "0:1:two", "0:2:three"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_kcat_compression(broker, codec):
    t = create_topic(broker.bootstrap, unique_topic(f"kcz-{codec}"), 1)
    lines = [f"k{i}:{codec} payload {i} " + "zz" * 40 for i in range(500)]
    kcat(broker, "-P", "-t", t, "-p", "0", "-K:", "-z", codec, "-X", "linger.ms=50",
         input=("\n".join(lines) + "\n").encode())
    out = kcat(broker, "-C", "-t", t, "-o", "beginning", "-e", "-q", "-f", "%k:%s\n")
    assert out.splitlines() == lines
    codecs = {b.codec for b in read_batches(broker.data_dir / f"{t}-0")}
    assert codecs == {COMPRESSION_CODECS[codec]}, f"kcat -z {codec}: on-disk batch codecs {codecs}"
