"""Process control for the gregor broker under test."""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GREGOR_BIN = os.environ.get("GREGOR_BIN", str(REPO / "target" / "debug" / "gregor"))
START_TIMEOUT = float(os.environ.get("GREGOR_START_TIMEOUT", "30"))

LISTEN_RE = re.compile(r"listening on PLAINTEXT://([0-9.]+):(\d+)")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
PANIC_RE = re.compile(r"panicked at")


class BrokerStartError(RuntimeError):
    pass


class Broker:
    """One gregor process on a given log dir. start() / stop() / kill() / restart()
    can be called repeatedly on the same data dir; every start gets a new
    ephemeral port (read from the `listening on` log line)."""

    def __init__(self, data_dir, overrides=None, work_dir=None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = Path(work_dir or self.data_dir.parent)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.overrides = dict(overrides or {})
        self.proc = None
        self.host = None
        self.port = None
        self.generation = 0
        self.log_path = None
        self._lines = []
        self._lock = threading.Lock()
        self._reader = None
        self._listening = threading.Event()
        self.expected_exits = set()  # pids we killed/stopped on purpose
        self.unexpected_exit = None

    # ---- lifecycle -------------------------------------------------------
    def argv(self):
        args = [GREGOR_BIN, "server",
                "--override", f"log.dirs={self.data_dir}",
                "--override", "listeners=PLAINTEXT://127.0.0.1:0"]
        for k, v in self.overrides.items():
            args += ["--override", f"{k}={v}"]
        return args

    def start(self, timeout=START_TIMEOUT):
        self.spawn()
        return self.wait_listening(timeout)

    def spawn(self):
        """Starts the process without waiting for it to listen (a cluster node listens only
        once its quorum has a leader, so all nodes are spawned before any is waited for)."""
        if not os.path.exists(GREGOR_BIN):
            raise BrokerStartError(
                f"gregor binary not found at {GREGOR_BIN} (run `cargo build -p gregor` or set GREGOR_BIN)")
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        self.generation += 1
        self.log_path = self.work_dir / f"broker-{self.generation}.stderr.log"
        self._listening.clear()
        with self._lock:
            self._lines = []
        env = dict(os.environ)
        env["RUST_LOG"] = os.environ.get("GREGOR_RUST_LOG", "info,openraft=error,openraft::replication=off")
        env.setdefault("RUST_BACKTRACE", "1")
        env["NO_COLOR"] = "1"
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=str(self.work_dir))
        self._reader = threading.Thread(target=self._drain, args=(self.proc, self.log_path), daemon=True)
        self._reader.start()
        return self

    def wait_listening(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._listening.wait(0.05):
                return self
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise BrokerStartError(
                    f"gregor exited with {self.proc.returncode} before listening:\n{self.log_tail()}")
        self.kill()
        raise BrokerStartError(f"gregor did not log 'listening on' within {timeout}s:\n{self.log_tail()}")

    def _drain(self, proc, log_path):
        with open(log_path, "w", errors="replace") as out:
            for raw in proc.stdout:
                line = ANSI_RE.sub("", raw.decode("utf-8", "replace"))
                out.write(line)
                out.flush()
                with self._lock:
                    self._lines.append(line)
                if not self._listening.is_set():
                    m = LISTEN_RE.search(line)
                    if m:
                        self.host, self.port = m.group(1), int(m.group(2))
                        self._listening.set()

    @property
    def bootstrap(self):
        return f"{self.host}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.expected_exits.add(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None
        finally:
            if self._reader:
                self._reader.join(5)
        return rc

    def kill(self):
        """SIGKILL (crash)."""
        if self.alive():
            self.expected_exits.add(self.proc.pid)
            self.proc.kill()
            self.proc.wait(10)
            if self._reader:
                self._reader.join(5)

    def restart(self, crash=False):
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start()

    def shutdown_quietly(self):
        try:
            if self.alive():
                self.stop(timeout=10)
        finally:
            if self.alive():
                self.proc.kill()
                self.proc.wait(10)

    # ---- diagnostics -----------------------------------------------------
    def log_text(self):
        with self._lock:
            return "".join(self._lines)

    def log_tail(self, n=40):
        with self._lock:
            return "".join(self._lines[-n:])

    def post_mortem(self):
        """Problems to report at teardown: a panic in any log, or a process that
        died without being told to."""
        problems = []
        for p in sorted(self.work_dir.glob("broker-*.stderr.log")):
            try:
                text = p.read_text(errors="replace")
            except OSError:
                continue
            m = PANIC_RE.search(text)
            if m:
                start = max(0, m.start() - 300)
                problems.append(f"{p}: panic in broker log:\n{text[start:m.start() + 1200]}")
        if self.proc is not None and self.proc.poll() is not None and self.proc.pid not in self.expected_exits:
            problems.append(f"broker pid {self.proc.pid} exited on its own with {self.proc.returncode}:\n"
                            f"{self.log_tail()}")
        return problems
