"""Hand-made Kafka wire protocol pieces for raw-socket tests."""

import socket
import struct

IO_TIMEOUT = 5.0


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_uvarint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def compact_string(s):
    """A flexible version's COMPACT_STRING (length + 1 as an unsigned varint)."""
    b = s.encode()
    return uvarint(len(b) + 1) + b


def read_compact_string(buf, pos):
    """(string or None for null, next position) of a COMPACT_(NULLABLE_)STRING at pos."""
    n, pos = read_uvarint(buf, pos)
    return (buf[pos:pos + n - 1].decode() if n else None), pos + max(n - 1, 0)


def header_v1(api_key, version, corr, client_id=b"gregor-raw-test"):
    return struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id


def header_v2(api_key, version, corr, client_id=b"gregor-raw-test"):
    return header_v1(api_key, version, corr, client_id) + uvarint(0)  # no tagged fields


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def connect(broker):
    s = socket.create_connection((broker.host, broker.port), timeout=IO_TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n, timeout=IO_TIMEOUT):
    s.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def recv_frame(s, timeout=IO_TIMEOUT):
    (size,) = struct.unpack(">i", recv_exact(s, 4, timeout))
    assert 0 <= size < 10_000_000, f"bad response size {size}"
    return recv_exact(s, size, timeout)


def parse_api_versions_v0(payload):
    corr, err, n = struct.unpack_from(">ihi", payload, 0)
    pos = 10
    keys = {}
    for _ in range(n):
        k, lo, hi = struct.unpack_from(">hhh", payload, pos)
        keys[k] = (lo, hi)
        pos += 6
    assert pos == len(payload), f"v0 ApiVersionsResponse has {len(payload) - pos} trailing bytes"
    return corr, err, keys


def parse_api_versions_v3(payload):
    corr, err = struct.unpack_from(">ih", payload, 0)
    n, pos = read_uvarint(payload, 6)
    keys = {}
    for _ in range(n - 1):
        k, lo, hi = struct.unpack_from(">hhh", payload, pos)
        pos += 6
        tags, pos = read_uvarint(payload, pos)
        assert tags == 0
        keys[k] = (lo, hi)
    (throttle,) = struct.unpack_from(">i", payload, pos)
    pos += 4
    _tags, pos = read_uvarint(payload, pos)
    return corr, err, keys, throttle, pos



def advertised_apis(broker):
    """{api_key: (min, max)} from a raw ApiVersions v0 request."""
    with connect(broker) as s:
        s.sendall(frame(header_v1(18, 0, 1)))
        _corr, err, keys = parse_api_versions_v0(recv_frame(s))
    assert err == 0
    return keys
