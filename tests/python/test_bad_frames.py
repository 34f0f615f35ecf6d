"""Hostile and broken input on raw sockets: the broker answers with a Kafka error or
closes the connection, never hangs or dies, and other clients keep working."""

import random
import socket
import struct

import pytest

from clients import consume_confluent, create_topic, produce_confluent, unique_topic
from kafka_wire import (IO_TIMEOUT, connect, frame, header_v1, header_v2, parse_api_versions_v0,
                        parse_api_versions_v3, recv_frame, uvarint)


def closed_or_answered(s, timeout=IO_TIMEOUT):
    """Wait until the broker closes the connection (-> 'closed') or sends something
    (-> 'answered'); fail if it does neither within the timeout."""
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    except socket.timeout:
        pytest.fail(f"broker neither answered nor closed the connection within {timeout}s")
    return "answered" if data else "closed"


def assert_broker_healthy(broker):
    assert broker.alive(), f"broker died:\n{broker.log_tail()}"
    t = create_topic(broker.bootstrap, unique_topic("after"), 1)
    recs = [{"key": f"k{i}".encode(), "value": f"v{i}".encode(), "partition": 0} for i in range(10)]
    reports = produce_confluent(broker.bootstrap, t, recs)
    assert [(e, o) for e, _p, o in reports] == [(None, i) for i in range(10)]
    got = consume_confluent(broker.bootstrap, t, [0], 10)
    assert [(r["offset"], r["key"], r["value"]) for r in got] == [(i, r["key"], r["value"]) for i, r in enumerate(recs)]
    assert broker.alive()


# ---------------------------------------------------------------- well-formed

def test_api_versions_v3_raw(broker):
    body = uvarint(len(b"raw") + 1) + b"raw" + uvarint(len(b"1.0") + 1) + b"1.0" + uvarint(0)
    with connect(broker) as s:
        s.sendall(frame(header_v2(18, 3, 7) + body))
        payload = recv_frame(s)
    corr, err, keys, throttle, end = parse_api_versions_v3(payload)
    assert (corr, err) == (7, 0)
    assert throttle == 0
    # Supported APIs per the contract, and Produce advertised from v0 (librdkafka needs
    # that to enable compression, KAFKA-18659).
    for api in (0, 1, 2, 3, 18, 19, 20, 22, 32, 37, 60):
        assert api in keys, f"API key {api} not advertised: {sorted(keys)}"
    assert keys[0][0] == 0, f"Produce min version {keys[0][0]}"
    assert keys[18][0] == 0 and keys[18][1] >= 3


def test_api_versions_v0_raw(broker):
    with connect(broker) as s:
        s.sendall(frame(header_v1(18, 0, 11)))
        payload = recv_frame(s)
    corr, err, keys = parse_api_versions_v0(payload)
    assert (corr, err) == (11, 0)
    assert 18 in keys and 0 in keys


def test_api_versions_unsupported_version(broker):
    """KIP-511: an ApiVersions request newer than the broker knows gets a v0
    response with UNSUPPORTED_VERSION (35) and the broker's own version ranges."""
    body = uvarint(len(b"raw") + 1) + b"raw" + uvarint(len(b"1.0") + 1) + b"1.0" + uvarint(0)
    with connect(broker) as s:
        s.sendall(frame(header_v2(18, 99, 4242) + body))
        payload = recv_frame(s)
    corr, err, keys = parse_api_versions_v0(payload)
    assert corr == 4242
    assert err == 35
    assert 18 in keys and keys[18][0] == 0 and keys[18][1] >= 3, keys
    assert_broker_healthy(broker)


def test_pipelined_requests_answered_in_order(broker):
    """Several requests sent back to back on one connection: responses in request order."""
    reqs = b"".join(frame(header_v1(18, v, 100 + i)) for i, v in enumerate([0, 1, 2, 0, 1, 2]))
    with connect(broker) as s:
        s.sendall(reqs)
        corrs = [struct.unpack_from(">i", recv_frame(s))[0] for _ in range(6)]
    assert corrs == [100, 101, 102, 103, 104, 105]


# ---------------------------------------------------------------- broken

def _random_body(seed, n):
    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(n))


BAD_FRAMES = {
    "size_2^31-1": struct.pack(">i", 2**31 - 1),
    "size_negative": struct.pack(">i", -5) + b"\x00" * 16,
    "size_min_int": struct.pack(">i", -(2**31)),
    "garbage_seed1": frame(_random_body(1, 64)),
    "garbage_seed2": frame(_random_body(2, 300)),
    "garbage_seed3": frame(_random_body(3, 7)),
    "size_0": struct.pack(">i", 0),
    "unknown_api_key_9999": frame(header_v1(9999, 0, 1)),
    "produce_version_999": frame(header_v1(0, 999, 1)),
    "header_truncated": frame(struct.pack(">hh", 3, 1)),
    "client_id_len_too_big": frame(struct.pack(">hhih", 3, 1, 1, 30000) + b"abc"),
    # Array lengths that would make a naive decoder allocate gigabytes.
    "metadata_v1_huge_array": frame(header_v1(3, 1, 1) + struct.pack(">i", 0x7FFFFFF0)),
    "metadata_v12_huge_compact_array": frame(header_v2(3, 12, 1) + uvarint(0x7FFFFFFF)),
    "produce_v9_huge_array": frame(header_v2(0, 9, 1) + uvarint(1) + struct.pack(">hi", -1, 30000)
                                   + uvarint(0x7FFFFFF0)),
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame(broker, name):
    """A frame that cannot be read as a request of a known API version closes the connection
    (as Kafka does), without an answer: nothing a client could mistake for one."""
    with connect(broker) as s:
        s.sendall(BAD_FRAMES[name])
        assert closed_or_answered(s) == "closed"
    assert_broker_healthy(broker)


def test_truncated_request(broker):
    """Size says 100, 10 bytes come, then the client goes away mid-frame."""
    with connect(broker) as s:
        s.sendall(struct.pack(">i", 100) + header_v1(18, 0, 1)[:10])
        s.shutdown(socket.SHUT_WR)
        assert closed_or_answered(s) == "closed"
    assert_broker_healthy(broker)


def test_truncated_request_abortive_close(broker):
    with connect(broker) as s:
        s.sendall(struct.pack(">i", 100) + b"\x00" * 10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
    assert_broker_healthy(broker)


def test_bad_frame_does_not_disturb_other_connections(broker):
    t = create_topic(broker.bootstrap, unique_topic("iso"), 1)
    from clients import producer
    p = producer(broker.bootstrap, **{"linger.ms": 0})
    p.produce(t, value=b"before", partition=0)
    assert p.flush(15) == 0
    for name in ("size_2^31-1", "garbage_seed1", "metadata_v1_huge_array"):
        with connect(broker) as s:
            s.sendall(BAD_FRAMES[name])
            assert closed_or_answered(s) == "closed"
    p.produce(t, value=b"after", partition=0)  # same long-lived connection as before
    assert p.flush(15) == 0
    got = consume_confluent(broker.bootstrap, t, [0], 2)
    assert [r["value"] for r in got] == [b"before", b"after"]


def test_many_idle_connections_then_close(broker):
    socks = [connect(broker) for _ in range(200)]
    for s in socks:
        s.close()
    assert_broker_healthy(broker)
