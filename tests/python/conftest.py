"""pytest fixtures: start the real `gregor` binary on an ephemeral port in a temp dir.

The binary is taken from $GREGOR_BIN, default <repo>/target/debug/gregor
(built by `cargo build -p gregor`; scripts/test does that before running pytest).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gregor_broker import Broker, GREGOR_BIN  # noqa: E402


def pytest_report_header(config):
    return f"gregor binary: {GREGOR_BIN}"


@pytest.fixture
def broker_factory(tmp_path):
    """Returns start(name='b', overrides=None) -> running Broker. All brokers it
    started are stopped at teardown (SIGKILL if SIGTERM does not end them), and
    teardown fails if a broker panicked or died on its own."""
    started = []

    def start(name="broker", overrides=None, data_dir=None):
        data_dir = data_dir or (tmp_path / name / "data")
        b = Broker(data_dir=data_dir, overrides=overrides or {}, work_dir=tmp_path / name)
        started.append(b)
        b.start()
        return b

    yield start

    problems = []
    for b in started:
        problems.extend(b.post_mortem())
        b.shutdown_quietly()
    if problems:
        pytest.fail("broker problems:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    """A fresh single-node broker with default settings."""
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        # Attach the tail of every broker log written by this test to the report.
        tmp = getattr(item, "funcargs", {}).get("tmp_path")
        if tmp is not None and os.path.isdir(tmp):
            for root, _dirs, files in os.walk(tmp):
                for f in files:
                    if f.startswith("broker-") and f.endswith(".stderr.log"):
                        p = os.path.join(root, f)
                        try:
                            with open(p, "r", errors="replace") as fh:
                                tail = fh.readlines()[-40:]
                        except OSError:
                            continue
                        rep.sections.append((f"broker log tail {p}", "".join(tail)))
