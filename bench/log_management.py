#!/usr/bin/env python3
"""Log-management benchmarks: log cleaner throughput and memory, produce throughput while the
cleaner runs, and recovery time of a 1 GiB partition after SIGKILL.

    .venv/bin/python bench/log_management.py [cleaner] [produce] [recovery]   # default: all three

Uses target/release/gregor (build it with `cargo build --release -p gregor`). Prints one JSON line
per measurement on stdout; progress on stderr. Data lives in a temporary directory under $TMPDIR
(about 1.5 GB at peak), removed at the end; KEEP=1 keeps it.

Environment knobs (defaults in brackets): CLEANER_MB [500], CLEANER_KEYS [100000],
DEDUPE_MB [1,16,128], PRODUCE_RECORDS [3000000], ROUNDS [4], OVERWRITE_RPS [10000],
RECOVERY_RECORDS [1048576].
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from gregor_broker import GREGOR_BIN, Broker  # noqa: E402

MiB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
CLEANED_RE = re.compile(r"cleaned log.*")
FIELD_RE = re.compile(r"\b(bytes_read|bytes_written|ms|partition)=(\d+)")
PRODUCER_PROPS = {"linger.ms": 5, "batch.size": 1000000, "queue.buffering.max.kbytes": 1048576,
                  "queue.buffering.max.messages": 1000000}


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj), flush=True)


def env_int(name, default):
    return int(os.environ.get(name, default))


# ---- /proc helpers ----------------------------------------------------------------------------
def proc_status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def cleaner_tid(pid):
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "log-cleaner":
                return int(task.name)
        except OSError:
            pass
    return None


def thread_cpu_s(pid, tid):
    """utime+stime of one thread, seconds."""
    with open(f"/proc/{pid}/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK  # excl. idle, iowait


def loadavg():
    return float(Path("/proc/loadavg").read_text().split()[0])


def dir_bytes(path, suffix=".log"):
    return sum(p.stat().st_size for p in Path(path).rglob(f"*{suffix}") if p.is_file())


def cleaned_lines(broker):
    out = []
    for line in broker.log_text().splitlines():
        if "cleaned log" in line:
            f = dict((k, int(v)) for k, v in FIELD_RE.findall(line))
            out.append(f)
    return out


# ---- clients ----------------------------------------------------------------------------------
def create_topic(bootstrap, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result()


def produce_keyed(bootstrap, topic, records, keys, value, start=0):
    """Tight-loop keyed producer: record i gets key i % keys."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, **PRODUCER_PROPS})
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    keyb = [b"key-%07d" % k for k in range(keys)]
    for i in range(start, start + records):
        while True:
            try:
                p.produce(topic, value, keyb[i % keys], on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i & 1023 == 0:
            p.poll(0)
    remaining = p.flush(120)
    if errors or remaining:
        raise RuntimeError(f"keyed produce: {len(errors)} errors ({errors[:1]}), {remaining} undelivered")


class Overwriter:
    """Background keyed producer at a fixed modest rate (keeps a compacted topic dirty)."""

    def __init__(self, bootstrap, topic, rps, keys):
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 5})
        self.topic, self.rps, self.keys = topic, rps, keys
        self.value = os.urandom(1024)
        self.sent = 0
        self.errors = 0
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def _cb(self, err, _msg):
        if err is not None:
            self.errors += 1

    def loop(self):
        start = time.monotonic()
        while self.running:
            due = int((time.monotonic() - start) * self.rps)
            while self.sent < due:
                try:
                    self.p.produce(self.topic, self.value, b"key-%07d" % (self.sent % self.keys),
                                   on_delivery=self._cb)
                except BufferError:
                    break
                self.sent += 1
            self.p.poll(0.01)

    def stop(self):
        self.running = False
        self.thread.join()
        self.p.flush(30)
        del self.p  # destroy the client before the broker stops (no "Disconnected" noise)


def perf_produce(bootstrap, topic, records, size=1024):
    out = subprocess.run(
        [GREGOR_BIN, "perf", "produce", "--bootstrap-server", bootstrap, "--topic", topic,
         "--num-records", str(records), "--record-size", str(size), "--throughput", "-1",
         "--output", "json", "--producer-props", "acks=1", "linger.ms=5", "batch.size=1000000"],
        capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"perf produce failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def end_offset(bootstrap, topic, partition=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lm-bench-watermarks"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        c.close()


# ---- 1. cleaner throughput and memory ceiling ---------------------------------------------------
COMPACT_CONFIG = {"cleanup.policy": "compact", "segment.bytes": "16777216",
                  "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}


def wait_cleaner_idle(broker, tid, timeout, quiet_s=1.5):
    """Until the cleaner thread has logged at least one clean and then used no CPU for quiet_s.
    Returns (seconds waited, peak VmRSS kB seen by sampling)."""
    t0 = time.monotonic()
    last_cpu, last_change = thread_cpu_s(broker.pid, tid), time.monotonic()
    peak_rss = 0
    while time.monotonic() - t0 < timeout:
        time.sleep(0.1)
        peak_rss = max(peak_rss, proc_status_kb(broker.pid, "VmRSS") or 0)
        cpu = thread_cpu_s(broker.pid, tid)
        if cpu != last_cpu:
            last_cpu, last_change = cpu, time.monotonic()
        elif cleaned_lines(broker) and time.monotonic() - last_change > quiet_s:
            return time.monotonic() - t0, peak_rss
    raise TimeoutError(f"cleaner still busy (or never ran) after {timeout}s; "
                       f"{len(cleaned_lines(broker))} cleans logged")


def bench_cleaner(tmp):
    total_mb = env_int("CLEANER_MB", 500)
    keys = env_int("CLEANER_KEYS", 100000)
    dedupe_mbs = [int(x) for x in os.environ.get("DEDUPE_MB", "1,16,128").split(",")]
    records = total_mb * MiB // 1024
    seed = tmp / "cleaner-seed"
    # Produce with the cleaner off, stop cleanly, then clean copies of the same data dir so each
    # dedupe-buffer setting starts from identical dirty data and VmHWM "before" excludes produce.
    b = Broker(seed / "data", overrides={"log.cleaner.enable": "false"}, work_dir=seed)
    b.start()
    try:
        create_topic(b.bootstrap, "compacted", 1, COMPACT_CONFIG)
        log(f"cleaner: producing {records} keyed 1 KiB records over {keys} keys")
        t = time.monotonic()
        produce_keyed(b.bootstrap, "compacted", records, keys, os.urandom(1024))
        produce_s = time.monotonic() - t
    finally:
        b.stop()
    # Baseline memory: the same data opened by a broker with the cleaner off (the cleaner starts
    # the moment the broker listens, so VmHWM of the cleaning broker has no clean "before").
    b = Broker(seed / "data", overrides={"log.cleaner.enable": "false"}, work_dir=seed)
    b.start()
    time.sleep(2)
    hwm_baseline = proc_status_kb(b.pid, "VmHWM")
    rss_baseline = proc_status_kb(b.pid, "VmRSS")
    b.stop()
    data_before = dir_bytes(seed / "data")
    segs = len(list((seed / "data").rglob("*.log")))
    log(f"cleaner: {data_before / MiB:.0f} MiB in {segs} segments ({produce_s:.1f} s to produce)")
    for mb in dedupe_mbs:
        run = tmp / f"cleaner-{mb}"
        shutil.copytree(seed / "data", run / "data")
        b = Broker(run / "data", work_dir=run, overrides={
            "log.cleaner.backoff.ms": "100", "log.cleaner.dedupe.buffer.size": str(mb * MiB)})
        t_start = time.monotonic()
        b.start()
        try:
            startup_s = time.monotonic() - t_start
            hwm_before = proc_status_kb(b.pid, "VmHWM")
            rss_before = proc_status_kb(b.pid, "VmRSS")
            tid = None
            while tid is None:
                tid = cleaner_tid(b.pid)
            cpu0, m0 = proc_cpu_s(b.pid), machine_busy_s()
            cleaner_cpu0 = thread_cpu_s(b.pid, tid)
            la0 = loadavg()
            waited, peak_rss = wait_cleaner_idle(b, tid, timeout=600)
            hwm_after = proc_status_kb(b.pid, "VmHWM")
            cleaner_cpu = thread_cpu_s(b.pid, tid) - cleaner_cpu0
            broker_cpu = proc_cpu_s(b.pid) - cpu0
            machine = machine_busy_s() - m0
            cleans = cleaned_lines(b)
            bytes_read = sum(c.get("bytes_read", 0) for c in cleans)
            bytes_written = sum(c.get("bytes_written", 0) for c in cleans)
            ms = sum(c.get("ms", 0) for c in cleans)
            # Check the result: the log end offset is unchanged and the data shrank.
            low, high = end_offset(b.bootstrap, "compacted")
        finally:
            b.stop()
        data_after = dir_bytes(run / "data")
        emit({
            "name": f"cleaner-dedupe-{mb}MiB", "dedupe_buffer_bytes": mb * MiB,
            "records": records, "keys": keys, "segments_before": segs,
            "log_bytes_before": data_before, "log_bytes_after": data_after,
            "cleans": len(cleans), "clean_ms": [c.get("ms") for c in cleans],
            "bytes_read": bytes_read, "bytes_written": bytes_written, "clean_ms_total": ms,
            "mb_per_sec_read": round(bytes_read / MiB / (ms / 1000), 1) if ms else None,
            "dirty_mb_per_sec": round(data_before / MiB / (ms / 1000), 1) if ms else None,
            "cleaner_thread_cpu_s": round(cleaner_cpu, 2),
            "wall_until_idle_s": round(waited, 2),
            "vm_hwm_no_cleaner_kb": hwm_baseline, "vm_rss_no_cleaner_kb": rss_baseline,
            "vm_hwm_at_listen_kb": hwm_before, "vm_hwm_after_kb": hwm_after,
            "vm_hwm_growth_mb": round((hwm_after - hwm_baseline) / 1024, 1),
            "vm_rss_at_listen_kb": rss_before, "vm_rss_peak_sampled_kb": peak_rss,
            "startup_s": round(startup_s, 3), "high_watermark": high,
            "broker_cpu_pct": round(broker_cpu / waited * 100), "machine_cpu_pct": round(machine / waited * 100),
            "loadavg_1m_before": la0,
        })
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(seed, ignore_errors=True)


# ---- 2. produce throughput while the cleaner runs vs without ------------------------------------
def produce_round(tmp, cleaner_on, records, overwrite_rps, keys=100000):
    name = "on" if cleaner_on else "off"
    run = tmp / f"produce-{name}"
    b = Broker(run / "data", work_dir=run, overrides={
        "log.cleaner.enable": "true" if cleaner_on else "false", "log.cleaner.backoff.ms": "100"})
    b.start()
    try:
        create_topic(b.bootstrap, "compacted", 1, COMPACT_CONFIG)
        create_topic(b.bootstrap, "plain", 1)
        # Preload one value per key (100 MiB), then keep overwriting at a modest rate.
        produce_keyed(b.bootstrap, "compacted", keys, keys, os.urandom(1024))
        ow = Overwriter(b.bootstrap, "compacted", overwrite_rps, keys)
        time.sleep(3)
        tid = cleaner_tid(b.pid)
        cl0 = thread_cpu_s(b.pid, tid) if tid else 0.0
        n0 = len(cleaned_lines(b))
        cpu0, m0, t0 = proc_cpu_s(b.pid), machine_busy_s(), time.monotonic()
        res = perf_produce(b.bootstrap, "plain", records)
        wall = time.monotonic() - t0
        cl1 = thread_cpu_s(b.pid, tid) if tid else 0.0
        cleans_in_window = len(cleaned_lines(b)) - n0
        broker_cpu = (proc_cpu_s(b.pid) - cpu0) / wall * 100
        machine = (machine_busy_s() - m0) / wall * 100
        ow.stop()
        all_cleans = cleaned_lines(b)
    finally:
        b.stop()
        shutil.rmtree(run, ignore_errors=True)
    return {
        "cleaner": name, "records": res["records"], "errors": res["errors"],
        "elapsed_s": round(res["elapsed_s"], 2), "mb_per_sec": round(res["mb_per_sec"], 1),
        "p99_ms": res["p99_ms"], "cleaner_thread_cpu_pct": round((cl1 - cl0) / wall * 100),
        "cleans_in_window": cleans_in_window, "cleans_total": len(all_cleans),
        "overwrites_sent": ow.sent, "overwrite_errors": ow.errors,
        "broker_cpu_pct": round(broker_cpu), "machine_cpu_pct": round(machine),
    }


def bench_produce(tmp):
    records = env_int("PRODUCE_RECORDS", 3000000)
    rounds = env_int("ROUNDS", 4)
    rps = env_int("OVERWRITE_RPS", 10000)
    results = {"on": [], "off": []}
    for r in range(rounds):
        # Alternate the order: later runs pay for earlier runs' page-cache writeback.
        order = (True, False) if r % 2 == 0 else (False, True)
        for on in order:
            log(f"produce: round {r}, cleaner {'on' if on else 'off'}")
            res = produce_round(tmp, on, records, rps)
            res["round"] = r
            emit({"name": f"produce-1024B-cleaner-{res['cleaner']}", **res})
            results[res["cleaner"]].append(res["mb_per_sec"])
    # Medians: single runs on this shared 2-core machine swing by tens of percent.
    on = statistics.median(results["on"])
    off = statistics.median(results["off"])
    emit({"name": "produce-while-cleaning-summary", "median_mb_per_sec_cleaner_on": round(on, 1),
          "median_mb_per_sec_cleaner_off": round(off, 1), "ratio_on_off": round(on / off, 3),
          "runs_on": results["on"], "runs_off": results["off"],
          "target_within_10pct": on >= 0.9 * off})


# ---- 3. recovery time of a 1 GiB partition -----------------------------------------------------
def timed_start(broker):
    t = time.monotonic()
    broker.start(timeout=600)
    return time.monotonic() - t


def bench_recovery(tmp):
    records = env_int("RECOVERY_RECORDS", 1048576)
    run = tmp / "recovery"
    b = Broker(run / "data", work_dir=run)
    try:
        empty_s = timed_start(b)
        create_topic(b.bootstrap, "big", 1)
        log(f"recovery: producing {records} x 1 KiB")
        res = perf_produce(b.bootstrap, "big", records)
        _, high = end_offset(b.bootstrap, "big")
        data = dir_bytes(run / "data" / "big-0")
        segs = len(list((run / "data" / "big-0").glob("*.log")))
        out = {"name": "recovery-1GiB", "records": res["records"], "log_bytes": data, "segments": segs,
               "produce_mb_per_sec": round(res["mb_per_sec"], 1), "start_empty_s": round(empty_s, 3)}
        for label, crash in (("sigkill", True), ("sigterm", False), ("sigkill2", True)):
            if crash:
                b.kill()
            else:
                b.stop()
            out[f"start_after_{label}_s"] = round(timed_start(b), 3)
            low, h = end_offset(b.bootstrap, "big")
            out[f"end_offset_after_{label}"] = h
            lines = [l for l in b.log_text().splitlines() if "truncating" in l or "WARN" in l or "ERROR" in l]
            if lines:
                out[f"warnings_after_{label}"] = lines[:5]
        out["end_offset_before"] = high
        out["loadavg_1m"] = loadavg()
        emit(out)
    finally:
        b.shutdown_quietly()
        shutil.rmtree(run, ignore_errors=True)


def main():
    parts = sys.argv[1:] or ["cleaner", "produce", "recovery"]
    if not os.path.exists(GREGOR_BIN):
        sys.exit(f"{GREGOR_BIN} missing: cargo build --release -p gregor")
    emit({"name": "machine", "nproc": os.cpu_count(), "loadavg": Path("/proc/loadavg").read_text().split()[:3]})
    tmp = Path(tempfile.mkdtemp(prefix="gregor-lm-"))
    try:
        for part in parts:
            {"cleaner": bench_cleaner, "produce": bench_produce, "recovery": bench_recovery}[part](tmp)
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
