"""Broker settings end to end: `gregor server --config` / `--override`, refused configurations
(bad values, busy port, unusable metadata log dir), a log dir unusable from the start,
`connections.max.idle.ms`, `socket.request.max.bytes`, the broker's `fetch.max.bytes` cap,
`log.cleaner.enable=false` and `retention.bytes` with a short `log.retention.check.interval.ms`."""

import contextlib
import os
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import ConfigResource, ConfigSource

from clients import (OFFSET_BEGINNING, admin, consume_confluent, create_topic, produce_confluent, topic_partitions,
                     unique_topic, wait_until, watermarks)
from gregor_broker import ANSI_RE, GREGOR_BIN, LISTEN_RE
from kafka_wire import connect, frame, header_v1, parse_api_versions_v0, recv_frame
from segments import LOG_OVERHEAD, log_files, read_batches

KAFKA_STORAGE_ERROR = 56


# ------------------------------------------------------------------ running the binary by hand

def server_env():
    env = dict(os.environ)
    env["RUST_LOG"] = os.environ.get("GREGOR_RUST_LOG", "info")
    env["NO_COLOR"] = "1"
    env.setdefault("RUST_BACKTRACE", "1")
    return env


@contextlib.contextmanager
def running_server(args, cwd, timeout=30.0):
    """Runs `gregor server ARGS` until it logs its port; yields (bootstrap, log lines). The
    process is always ended (SIGTERM, then SIGKILL) and must not have panicked."""
    proc = subprocess.Popen([GREGOR_BIN, "server", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=server_env(), cwd=str(cwd))
    lines, addr = [], {}
    listening = threading.Event()

    def drain():
        for raw in proc.stdout:
            line = ANSI_RE.sub("", raw.decode("utf-8", "replace"))
            lines.append(line)
            m = LISTEN_RE.search(line)
            if m and not listening.is_set():
                addr["bootstrap"] = f"{m.group(1)}:{m.group(2)}"
                listening.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_until(lambda: listening.is_set() or proc.poll() is not None, timeout=timeout,
                   msg="the server to listen")
        assert listening.is_set(), f"gregor exited with {proc.returncode} before listening:\n{''.join(lines)}"
        yield addr["bootstrap"], lines
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        reader.join(5)
    assert "panicked at" not in "".join(lines), "".join(lines)


def refused_start(args, cwd, timeout=20.0):
    """Runs `gregor server ARGS`, which must exit on its own within `timeout`, with a non-zero code
    and without ever listening. Returns (exit code, stderr, seconds it took)."""
    started = time.monotonic()
    try:
        p = subprocess.run([GREGOR_BIN, "server", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           env=server_env(), cwd=str(cwd), timeout=timeout)
    except subprocess.TimeoutExpired as e:  # run() has killed it
        raise AssertionError(f"gregor server {args} still running after {timeout}s; output:\n{e.stderr}") from None
    took = time.monotonic() - started
    stderr = ANSI_RE.sub("", p.stderr)
    assert p.returncode != 0, f"gregor server {args} exited with 0:\n{stderr}"
    assert not LISTEN_RE.search(stderr + p.stdout), f"it listened before it exited:\n{stderr}"
    assert "panicked at" not in stderr, stderr
    return p.returncode, stderr, took


def broker_config(bootstrap, name):
    """(value, source) of a broker config, from DescribeConfigs of broker 1."""
    res = ConfigResource(ConfigResource.Type.BROKER, "1")
    a = admin(bootstrap)  # keep the client alive until the answer is in
    entries = a.describe_configs([res])[res].result(30)
    e = entries[name]
    return e.value, e.source


def topic_dirs(log_dir, topic):
    return sorted(p.name for p in Path(log_dir).glob(f"{topic}-*"))


# ------------------------------------------------------------------ 1. --config and --override

def write_properties(path, log_dir, extra=""):
    path.write_text(
        "# server.properties for a test broker\n"
        "\n"
        f"log.dirs={log_dir}\n"
        "listeners = PLAINTEXT://\\\n"
        "             127.0.0.1:0\n"
        "! a comment in the other style\n"
        "num.partitions 3\n"
        "auto.create.topics.enable: TRUE\n" + extra)
    return path


def test_config_file_settings_take_effect(tmp_path):
    """`gregor server --config server.properties`, read as Java's Properties (`#`/`!` comments;
    `=`, `:` and blank separators; a line continued with a backslash; a boolean in upper case),
    sets log.dirs, listeners, num.partitions and auto.create.topics.enable: it listens on an
    ephemeral 127.0.0.1 port, an auto-created topic (a producer naming an unknown topic) gets 3
    partitions whose data lands in that log dir, and DescribeConfigs shows num.partitions=3 as a
    static broker config."""
    log_dir = tmp_path / "from-file"
    props = write_properties(tmp_path / "server.properties", log_dir)
    with running_server(["--config", str(props)], cwd=tmp_path) as (bootstrap, _lines):
        assert bootstrap.startswith("127.0.0.1:") and not bootstrap.endswith(":0")
        t = unique_topic("auto")
        reports = produce_confluent(bootstrap, t, [{"value": f"v{p}".encode(), "partition": p} for p in range(3)])
        assert [(err, p, off) for err, p, off in reports] == [(None, p, 0) for p in range(3)]
        assert topic_partitions(bootstrap, t) == [0, 1, 2]
        assert topic_dirs(log_dir, t) == [f"{t}-{p}" for p in range(3)]
        assert (log_dir / "meta.properties").is_file()
        got = consume_confluent(bootstrap, t, range(3), 3)
        assert sorted((r["partition"], r["value"]) for r in got) == [(p, f"v{p}".encode()) for p in range(3)]
        assert broker_config(bootstrap, "num.partitions") == ("3", ConfigSource.STATIC_BROKER_CONFIG.value)
    # Nothing was written to the default ./gregor-data of the working directory.
    assert not (tmp_path / "gregor-data").exists()


def test_override_wins_over_the_config_file(tmp_path):
    """`--override` is applied after the file: num.partitions=5 and another log.dirs given as
    overrides beat the file's num.partitions=3 and log.dirs (Kafka's kafka-server-start
    --override semantics)."""
    file_dir, override_dir = tmp_path / "file-dir", tmp_path / "override-dir"
    props = write_properties(tmp_path / "server.properties", file_dir)
    args = ["--config", str(props), "--override", "num.partitions=5", "--override", f"log.dirs={override_dir}"]
    with running_server(args, cwd=tmp_path) as (bootstrap, _lines):
        t = unique_topic("auto")
        [(err, p, off)] = produce_confluent(bootstrap, t, [{"value": b"x", "partition": 4}])
        assert (err, p, off) == (None, 4, 0)
        assert topic_partitions(bootstrap, t) == [0, 1, 2, 3, 4]
        assert topic_dirs(override_dir, t) == [f"{t}-{p}" for p in range(5)]
        assert broker_config(bootstrap, "num.partitions") == ("5", ConfigSource.STATIC_BROKER_CONFIG.value)
    assert not file_dir.exists(), "the file's log.dirs was used although --override replaced it"


# ------------------------------------------------------------------ 2. refused configurations

def test_bad_override_values_stop_the_broker_naming_the_key(tmp_path):
    """A known key with a value Kafka would refuse (num.partitions=abc, num.partitions=0), a
    malformed listener and an --override without '=' each end the process quickly with a
    non-zero code and one stderr message naming the key (or the malformed pair), before it
    listens or creates its log dir."""
    data = tmp_path / "data"
    base = ["--override", f"log.dirs={data}", "--override", "listeners=PLAINTEXT://127.0.0.1:0"]
    cases = {
        "num.partitions=abc": ["num.partitions", "abc"],
        "num.partitions=0": ["num.partitions", "at least 1"],
        "listeners=http://127.0.0.1:0": ["listeners", "http://127.0.0.1:0"],
        "message.max.bytes=lots": ["message.max.bytes", "lots"],
        "num.partitions": ["num.partitions", "KEY=VALUE"],
    }
    for override, named in cases.items():
        code, stderr, took = refused_start(base + ["--override", override], cwd=tmp_path)
        assert took < 15, f"{override}: took {took:.1f}s to exit"
        for word in named:
            assert word in stderr, f"--override {override}: {word!r} not in stderr:\n{stderr}"
        assert not data.exists(), f"--override {override}: the log dir was created before the config was checked"


def test_bad_value_in_the_config_file_or_a_missing_file_is_refused(tmp_path):
    """The same validation applies to the file: num.partitions=abc in server.properties is refused
    naming the key; a --config file that does not exist is refused naming the file."""
    data = tmp_path / "data"
    props = write_properties(tmp_path / "bad.properties", data, extra="num.partitions=abc\n")
    _code, stderr, _took = refused_start(["--config", str(props)], cwd=tmp_path)
    assert "num.partitions" in stderr and "abc" in stderr, stderr
    missing = tmp_path / "no-such.properties"
    _code, stderr, _took = refused_start(["--config", str(missing)], cwd=tmp_path)
    assert str(missing) in stderr, stderr
    assert not data.exists()


def test_unknown_key_is_ignored_with_a_warning_naming_it(tmp_path):
    """As in Kafka ("supplied but isn't a known config"), an unknown key does not stop the
    broker: it starts, serves, and its log warns naming the key."""
    args = ["--override", f"log.dirs={tmp_path / 'data'}", "--override", "listeners=PLAINTEXT://127.0.0.1:0",
            "--override", "no.such.setting.anywhere=1"]
    with running_server(args, cwd=tmp_path) as (bootstrap, lines):
        warnings = [line for line in lines if "no.such.setting.anywhere" in line]
        assert warnings and all("WARN" in w and "unknown config" in w for w in warnings), "".join(lines)
        t = create_topic(bootstrap, unique_topic("ok"), 1)
        assert produce_confluent(bootstrap, t, [{"value": b"v", "partition": 0}]) == [(None, 0, 0)]


# ------------------------------------------------------------------ 3. a log dir unusable from the start

def describe_log_dirs(bootstrap):
    """{log dir: (error code, {(topic, partition)})} through kafka-python's DescribeLogDirs."""
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        [answer] = a.describe_log_dirs()
    finally:
        a.close()
    return {d["log_dir"]: (d["error_code"], {(t["name"], p["partition_index"]) for t in d["topics"]
                                             for p in t["partitions"]})
            for d in answer["log_dirs"]}


def test_a_second_log_dir_unusable_from_the_start_goes_offline(broker_factory, tmp_path):
    """log.dirs=<good>,<a file>: on a fresh broker the file cannot be a log dir. The broker
    starts, logs that directory as offline (naming it), DescribeLogDirs answers
    KAFKA_STORAGE_ERROR for it, and new topics are all placed in the good dir and work."""
    good, bad = tmp_path / "good", tmp_path / "not-a-dir"
    bad.write_text("a file, not a directory")
    b = broker_factory(overrides={"log.dirs": f"{good},{bad}"})
    offline = [line for line in b.log_text().splitlines() if "offline" in line]
    assert any(str(bad) in line for line in offline), b.log_text()
    assert not any(str(good) in line for line in offline)
    t = create_topic(b.bootstrap, unique_topic("one-dir"), 4)
    assert topic_dirs(good, t) == [f"{t}-{p}" for p in range(4)]
    assert bad.read_text() == "a file, not a directory"
    reports = produce_confluent(b.bootstrap, t, [{"value": f"v{p}".encode(), "partition": p} for p in range(4)])
    assert all(err is None for err, _p, _o in reports), reports
    got = consume_confluent(b.bootstrap, t, range(4), 4)
    assert sorted((r["partition"], r["value"]) for r in got) == [(p, f"v{p}".encode()) for p in range(4)]
    described = describe_log_dirs(b.bootstrap)
    assert described[str(bad)] == (KAFKA_STORAGE_ERROR, set())
    assert described[str(good)][0] == 0
    assert {(t, p) for p in range(4)} <= described[str(good)][1]


def test_an_unusable_first_log_dir_stops_the_broker(tmp_path):
    """The first of log.dirs holds the metadata log (Kafka's metadata.log.dir default). Kafka
    refuses to start when that directory cannot be used ("Encountered I/O error in metadata log
    directory ... Cannot continue"); gregor exits non-zero quickly, naming it, without listening,
    and leaves the file as it was."""
    bad, good = tmp_path / "not-a-dir", tmp_path / "good"
    bad.write_text("a file, not a directory")
    _code, stderr, took = refused_start(["--override", f"log.dirs={bad},{good}",
                                         "--override", "listeners=PLAINTEXT://127.0.0.1:0"], cwd=tmp_path)
    assert took < 15
    assert str(bad) in stderr, stderr
    assert bad.read_text() == "a file, not a directory"


# ------------------------------------------------------------------ 4. listener port in use

def test_listener_port_in_use_stops_the_broker(broker_factory, tmp_path):
    """listeners=PLAINTEXT://127.0.0.1:<a port another socket listens on>: the process exits
    non-zero quickly, saying the address is in use and naming it, instead of hanging; the same
    log dir then starts normally on a free port (nothing left locked or half-written)."""
    data = tmp_path / "data"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        _code, stderr, took = refused_start(["--override", f"log.dirs={data}",
                                             "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}"], cwd=tmp_path)
    assert took < 15
    assert "Address already in use" in stderr and f"127.0.0.1:{port}" in stderr, stderr
    b = broker_factory(data_dir=data)
    t = create_topic(b.bootstrap, unique_topic("after"), 1)
    assert produce_confluent(b.bootstrap, t, [{"value": b"v", "partition": 0}]) == [(None, 0, 0)]


# ------------------------------------------------------------------ 5. connections.max.idle.ms

def api_versions(s, corr):
    s.sendall(frame(header_v1(18, 0, corr)))
    got_corr, err, keys = parse_api_versions_v0(recv_frame(s))
    assert (got_corr, err) == (corr, 0) and 18 in keys


def closed_by_peer(s, timeout):
    """Seconds until the peer closes s (EOF or reset), reading nothing else; fails after timeout."""
    started = time.monotonic()
    s.settimeout(timeout)
    try:
        data = s.recv(1)
    except ConnectionResetError:
        data = b""
    except socket.timeout:
        raise AssertionError(f"connection still open after {timeout}s") from None
    assert data == b"", f"unexpected bytes from the broker: {data!r}"
    return time.monotonic() - started


def test_idle_connections_are_closed_after_connections_max_idle_ms(broker_factory):
    """connections.max.idle.ms=1000: a raw connection that never sends anything is closed by the
    broker no sooner than 1 s and well within 10 s; one that sends an ApiVersions request every
    250 ms for 3 s (three idle periods) stays open and is answered throughout, and is closed in
    turn, again no sooner than 1 s, once it falls silent."""
    b = broker_factory(overrides={"connections.max.idle.ms": "1000"})
    with connect(b) as idle:
        assert closed_by_peer(idle, 10) >= 0.95
    with connect(b) as busy:
        started, corr = time.monotonic(), 0
        while time.monotonic() - started < 3.0:
            corr += 1
            api_versions(busy, corr)
            time.sleep(0.25)  # the client's pace between requests, not a wait for a condition
        api_versions(busy, corr + 1)
        assert closed_by_peer(busy, 10) >= 0.95


# ------------------------------------------------------------------ 6. socket.request.max.bytes

def kafka_string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def record_batch(value):
    """One uncompressed v2 batch holding one record with this value (kafka-python's builder)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    builder.append(0, timestamp=int(time.time() * 1000), key=None, value=value, headers=[])
    return bytes(builder.build())


def produce_v3(topic, partition, batch, corr):
    """A Produce v3 request payload (acks=1) carrying one batch for one partition."""
    body = (struct.pack(">hhi", -1, 1, 30000)  # null transactional id, acks, timeout
            + struct.pack(">i", 1) + kafka_string(topic)
            + struct.pack(">i", 1) + struct.pack(">ii", partition, len(batch)) + batch)
    return header_v1(0, 3, corr) + body


def parse_produce_v3(payload):
    """(correlation id, partition, error code, base offset) of a one-partition Produce v3 answer."""
    corr, n_topics = struct.unpack_from(">ii", payload, 0)
    assert n_topics == 1
    (name_len,) = struct.unpack_from(">h", payload, 8)
    pos = 10 + name_len
    n_parts, partition, error, base = struct.unpack_from(">iihq", payload, pos)
    assert n_parts == 1
    return corr, partition, error, base


def produce_request_of_size(topic, size, corr):
    """A valid Produce v3 request payload of exactly `size` bytes (the frame's announced size)."""
    value_len = size - len(produce_v3(topic, 0, record_batch(b""), corr))
    for _ in range(10):  # the record's varint lengths grow with the value: settle the size
        payload = produce_v3(topic, 0, record_batch(b"r" * value_len), corr)
        if len(payload) == size:
            return payload
        value_len += size - len(payload)
    raise AssertionError(f"cannot build a request of exactly {size} bytes")


def test_socket_request_max_bytes_closes_connections_with_larger_frames(broker_factory):
    """socket.request.max.bytes=100000: a Produce request of exactly 100000 bytes is served; a
    frame announcing 100001 bytes is refused by closing the connection at once (the broker does
    not wait for the body, nor for request.timeout.ms), which is logged; other connections and
    the broker keep working."""
    b = broker_factory(overrides={"socket.request.max.bytes": "100000"})
    t = create_topic(b.bootstrap, unique_topic("frame"), 1)
    with connect(b) as s:
        s.sendall(frame(produce_request_of_size(t, 100_000, 7)))
        assert parse_produce_v3(recv_frame(s)) == (7, 0, 0, 0)
    with connect(b) as s:
        s.sendall(struct.pack(">i", 100_001) + header_v1(18, 0, 8))
        assert closed_by_peer(s, 10) < 10
    wait_until(lambda: "socket.request.max.bytes" in b.log_text(), timeout=10, msg="the refusal logged")
    with connect(b) as s:
        try:
            s.sendall(frame(produce_request_of_size(t, 100_001, 9)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: refused all the same
        else:
            closed_by_peer(s, 10)
    with connect(b) as s:
        api_versions(s, 10)
    [r] = consume_confluent(b.bootstrap, t, [0], 1)
    assert r["offset"] == 0 and len(r["value"]) > 99_000


def test_a_producer_batch_over_socket_request_max_bytes_fails_instead_of_hanging(broker_factory):
    """A confluent-kafka producer whose request is over socket.request.max.bytes (but whose record
    is under message.max.bytes) sees its connection closed, as with Kafka: with retries=0 the
    record fails at once with _TRANSPORT; with retries it fails with _MSG_TIMED_OUT at
    message.timeout.ms. Nothing is stored, and a smaller record afterwards is stored at offset 0."""
    b = broker_factory(overrides={"socket.request.max.bytes": "100000"})
    t = create_topic(b.bootstrap, unique_topic("big"), 1)
    big = [{"value": b"x" * 150_000, "partition": 0}]
    conf = {"compression.type": "none", "linger.ms": 0, "message.max.bytes": 1_000_000}
    started = time.monotonic()
    [(err, _p, _o)] = produce_confluent(b.bootstrap, t, big, timeout=20, retries=0, **conf)
    assert err is not None and err.code() == KafkaError._TRANSPORT, err
    [(err, _p, _o)] = produce_confluent(b.bootstrap, t, big, timeout=20, **{**conf, "message.timeout.ms": 3000})
    assert err is not None and err.code() == KafkaError._MSG_TIMED_OUT, err
    assert time.monotonic() - started < 20
    assert produce_confluent(b.bootstrap, t, [{"value": b"y" * 50_000, "partition": 0}], **conf) == [(None, 0, 0)]
    assert watermarks(b.bootstrap, t) == (0, 1)


# ------------------------------------------------------------------ 7. the broker's fetch.max.bytes

def fetch_v4(topic, wanted, max_bytes, corr, partition_max_bytes=50 << 20):
    """A Fetch v4 request payload (read_uncommitted, no wait) for [(partition, offset)]."""
    body = struct.pack(">iiiib", -1, 0, 0, max_bytes, 0) + struct.pack(">i", 1) + kafka_string(topic)
    body += struct.pack(">i", len(wanted))
    for partition, offset in wanted:
        body += struct.pack(">iqi", partition, offset, partition_max_bytes)
    return header_v1(1, 4, corr) + body


def parse_fetch_v4(payload):
    """{partition: (error code, high watermark, records bytes)} of a one-topic Fetch v4 answer."""
    pos = 0

    def take(fmt):
        nonlocal pos
        out = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        return out

    _corr, _throttle, n_topics = take(">iii")
    out = {}
    for _ in range(n_topics):
        (name_len,) = take(">h")
        pos += name_len
        (n_parts,) = take(">i")
        for _ in range(n_parts):
            partition, error, hw, _lso, n_aborted = take(">ihqqi")
            pos += max(n_aborted, 0) * 16
            (size,) = take(">i")
            records = payload[pos:pos + max(size, 0)]
            pos += max(size, 0)
            out[partition] = (error, hw, records)
    assert pos == len(payload), f"{len(payload) - pos} bytes after the Fetch response"
    return out


def whole_batches(records):
    """[(base offset, size on the wire)] of the complete batches at the start of `records`."""
    out, pos = [], 0
    while pos + LOG_OVERHEAD <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        if pos + LOG_OVERHEAD + length > len(records):
            break  # a partial batch at the end, as Kafka may send
        out.append((base, LOG_OVERHEAD + length))
        pos += LOG_OVERHEAD + length
    return out


def fetch(b, topic, wanted, max_bytes, corr):
    with connect(b) as s:
        s.sendall(frame(fetch_v4(topic, wanted, max_bytes, corr)))
        answer = parse_fetch_v4(recv_frame(s))
    assert all(error == 0 for error, _hw, _r in answer.values()), answer
    return {p: records for p, (_e, _hw, records) in answer.items()}


def test_broker_fetch_max_bytes_caps_responses_but_returns_a_first_larger_batch(broker_factory):
    """fetch.max.bytes=10000 on the broker (a client asks for 50 MiB): a Fetch response carries
    at most 10000 bytes of records over all partitions, starting at the offset asked for, with as
    many whole batches as fit in 10000 bytes (Kafka may add part of the next batch, which clients
    drop); a request's own smaller max_bytes is honoured too. As in Kafka, a first batch larger
    than the cap (30 kB) is returned whole, alone. A consumer reads every record through the cap."""
    cap = 10_000
    b = broker_factory(overrides={"fetch.max.bytes": str(cap)})
    t = create_topic(b.bootstrap, unique_topic("cap"), 2)
    one_per_batch = {"compression.type": "none", "linger.ms": 0, "batch.num.messages": 1,
                     "max.in.flight.requests.per.connection": 1}
    small = [{"value": f"{i:04d}".encode() * 500, "partition": p} for p in (0, 1) for i in range(12)]
    assert all(err is None for err, _p, _o in produce_confluent(b.bootstrap, t, small, **one_per_batch))
    assert produce_confluent(b.bootstrap, t, [{"value": b"B" * 30_000, "partition": 0}],
                             **one_per_batch) == [(None, 0, 12)]
    [segment] = log_files(b.data_dir / f"{t}-0")
    on_disk = segment.read_bytes()
    batches = read_batches(b.data_dir / f"{t}-0")
    assert [x.base_offset for x in batches] == list(range(13)), "one batch per record"
    ends = [x.position + LOG_OVERHEAD + x.length for x in batches]
    fitting = sum(1 for end in ends if end <= cap)
    assert 3 <= fitting < 12, ends  # the cap cuts the small batches short

    # From offset 0: a prefix of the log, capped.
    records = fetch(b, t, [(0, 0)], 50 << 20, 1)[0]
    assert 0 < len(records) <= cap, len(records)
    assert records == on_disk[:len(records)]
    assert [base for base, _size in whole_batches(records)] == list(range(fitting))

    # The request's own smaller limit applies as well.
    records = fetch(b, t, [(0, 0)], 5_000, 2)[0]
    assert len(records) <= 5_000 and records == on_disk[:len(records)]
    assert len(whole_batches(records)) == sum(1 for end in ends if end <= 5_000)

    # The oversized batch, first in the response: whole and alone.
    big = batches[12]
    records = fetch(b, t, [(0, 12)], 50 << 20, 3)[0]
    assert records == on_disk[big.position:big.position + LOG_OVERHEAD + big.length]
    assert len(records) > 30_000
    # Not first: the small batch before it comes alone (whole), the big one does not fit.
    records = fetch(b, t, [(0, 11)], 50 << 20, 4)[0]
    assert len(records) <= cap and records == on_disk[batches[11].position:batches[11].position + len(records)]
    assert [base for base, _size in whole_batches(records)] == [11]

    # Two partitions share the cap: at most 10000 bytes in all, each a prefix of its log.
    answer = fetch(b, t, [(0, 0), (1, 0)], 50 << 20, 5)
    assert sum(len(r) for r in answer.values()) <= cap, {p: len(r) for p, r in answer.items()}
    assert answer[0] == on_disk[:len(answer[0])]
    assert len(whole_batches(answer[0])) == fitting
    [segment1] = log_files(b.data_dir / f"{t}-1")
    assert answer[1] == segment1.read_bytes()[:len(answer[1])]

    got = consume_confluent(b.bootstrap, t, [0], 13, **{"fetch.max.bytes": 50_000_000})
    assert [r["offset"] for r in got] == list(range(13))
    assert got[12]["value"] == b"B" * 30_000


# ------------------------------------------------------------------ 8. log.cleaner.enable=false

COMPACT = {"cleanup.policy": "compact", "segment.bytes": "1000", "segment.ms": "200",
           "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}


def compactable_records():
    """20 values for each of 10 keys, then fillers that push them all out of the active segment."""
    records = [{"key": f"k{k}".encode(), "value": f"v{r}".encode(), "partition": 0}
               for r in range(20) for k in range(10)]
    return records + [{"key": b"filler", "value": b"x" * 20, "partition": 0} for _ in range(60)]


def segment_state(partition_dir):
    return {p.name: p.stat().st_size for p in Path(partition_dir).iterdir() if p.suffix == ".log"}


def test_log_cleaner_disabled_never_compacts(broker_factory):
    """Two brokers get the same compacted topic (small segments, min.cleanable.dirty.ratio=0.01)
    and the same 260 records, the one with log.cleaner.enable=false first. Once the broker with
    the cleaner on has compacted (one record per k* key left), the one with it off still serves
    every record at its offset and its segment files are as they were written."""
    cleaner = {"log.cleaner.backoff.ms": "100"}
    off = broker_factory("cleaner-off", overrides={**cleaner, "log.cleaner.enable": "false"})
    on = broker_factory("cleaner-on", overrides=cleaner)
    records = compactable_records()
    topics = {}
    for b in (off, on):
        t = topics[b] = create_topic(b.bootstrap, unique_topic("compact"), 1, config=COMPACT)
        reports = produce_confluent(b.bootstrap, t, records, **{"linger.ms": 5, "batch.num.messages": 10})
        assert [(err, off_) for err, _p, off_ in reports] == [(None, i) for i in range(len(records))]
    written = segment_state(off.data_dir / f"{topics[off]}-0")
    assert len(written) > 3, written

    def compacted():
        got = consume_confluent(on.bootstrap, topics[on], [0], len(records), timeout=3)
        keyed = [r for r in got if r["key"] != b"filler"]
        return keyed if len(keyed) == 10 else None

    kept = wait_until(compacted, timeout=60, msg="the broker with the cleaner on to compact")
    assert sorted((r["key"], r["value"]) for r in kept) == [(f"k{k}".encode(), b"v19") for k in range(10)]

    got = consume_confluent(off.bootstrap, topics[off], [0], len(records), timeout=30)
    assert [(r["offset"], r["key"], r["value"]) for r in got] == \
        [(i, r["key"], r["value"]) for i, r in enumerate(records)]
    assert segment_state(off.data_dir / f"{topics[off]}-0") == written
    assert "cleaned log" not in off.log_text()


# ------------------------------------------------------------------ 9. retention.bytes

def test_retention_bytes_trims_the_oldest_segments(broker_factory):
    """retention.bytes=3000 with segment.bytes=1000 and log.retention.check.interval.ms=200: after
    writing ~17 kB in ~170-byte batches, whole oldest segments are deleted until the log is
    between 3000 bytes and 3000 plus one segment (Kafka deletes a segment only while what remains
    is still at least retention.bytes). The low watermark moves to the first remaining segment's
    base offset, a consumer from the beginning starts there, and every newer record is there."""
    b = broker_factory(overrides={"log.retention.check.interval.ms": "200"})
    retention, segment = 3000, 1000
    t = create_topic(b.bootstrap, unique_topic("retain"), 1,
                     config={"retention.bytes": str(retention), "segment.bytes": str(segment),
                             "file.delete.delay.ms": "0"})
    records = [{"value": f"{i:05d}".encode() * 20, "partition": 0} for i in range(100)]
    reports = produce_confluent(b.bootstrap, t, records, **{"linger.ms": 0, "batch.num.messages": 1,
                                                            "compression.type": "none",
                                                            "max.in.flight.requests.per.connection": 1})
    assert [(err, off) for err, _p, off in reports] == [(None, i) for i in range(100)]
    pdir = b.data_dir / f"{t}-0"

    def trimmed():
        sizes = segment_state(pdir)
        total = sum(sizes.values())
        return sizes if total < retention + segment else None

    sizes = wait_until(trimmed, timeout=30, msg="retention to trim the log to about retention.bytes")
    assert sum(sizes.values()) >= retention, sizes
    first_base = min(int(name.split(".")[0]) for name in sizes)
    assert first_base > 0
    low, high = watermarks(b.bootstrap, t)
    assert (low, high) == (first_base, 100)
    assert read_batches(pdir)[0].base_offset == first_base
    got = consume_confluent(b.bootstrap, t, [0], 100 - low, start=OFFSET_BEGINNING)
    assert [r["offset"] for r in got] == list(range(low, 100))
    assert [r["value"] for r in got] == [r["value"] for r in records[low:]]
    # Several retention checks later, nothing more was deleted.
    assert segment_state(pdir) == sizes
    assert watermarks(b.bootstrap, t) == (low, 100)
