"""Client telemetry (KIP-714): subscriptions are CLIENT_METRICS configs set with `gregor
client-metrics` (like kafka-client-metrics.sh); librdkafka clients that match one push their
metrics, which the broker reads (OTLP) and logs; bad subscriptions are refused as Kafka does."""

import subprocess
import time

from confluent_kafka import Producer

from clients import create_topic, unique_topic, wait_until
from gregor_broker import GREGOR_BIN


def gregor(broker, *args):
    return subprocess.run([GREGOR_BIN, "client-metrics", "--bootstrap-server", broker.bootstrap, *args],
                          capture_output=True, text=True, timeout=60)


def test_a_matching_librdkafka_client_pushes_its_metrics(broker):
    out = gregor(broker, "--alter", "--name", "apps", "--metrics", "*", "--interval", "500",
                 "--match", "client_id=telemetry-.*,client_software_name=confluent-kafka-python")
    assert (out.returncode, out.stdout) == (0, "Altered client metrics config for apps.\n"), out.stderr
    assert gregor(broker, "--list").stdout == "apps\n"
    described = gregor(broker, "--describe", "--name", "apps").stdout
    assert described == ("Client metrics configs for apps are:\n  metrics=*\n  interval.ms=500\n"
                         "  match=client_id=telemetry-.*,client_software_name=confluent-kafka-python\n"), described

    t = create_topic(broker.bootstrap, unique_topic("telemetry"))
    matched = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "telemetry-app",
                        "broker.address.family": "v4"})
    other = Producer({"bootstrap.servers": broker.bootstrap, "client.id": "unmatched-app",
                      "broker.address.family": "v4"})

    def pushed():
        for p in (matched, other):
            p.produce(t, b"x")
            p.poll(0.1)
        return "client metrics received" in broker.log_text() and "telemetry-app" in broker.log_text()

    wait_until(pushed, timeout=60, msg="a metrics push from the matching client")
    lines = [line for line in broker.log_text().splitlines() if "client metrics received" in line]
    assert all("client_id=\"telemetry-app\"" in line or "client_id=telemetry-app" in line for line in lines), lines
    assert any("org.apache.kafka." in line for line in lines), lines
    for p in (matched, other):
        assert p.flush(10) == 0

    out = gregor(broker, "--delete", "--name", "apps")
    assert out.returncode == 0, out.stderr
    assert gregor(broker, "--list").stdout == ""


def test_bad_subscriptions_are_refused(broker):
    for args, message in [
        (["--interval", "50", "--metrics", "*"], "interval must be between 100 and 3600000"),
        (["--match", "host=x", "--metrics", "*"], "Illegal client matching pattern: host=x"),
        (["--match", "client_id=(", "--metrics", "*"], "Illegal client matching pattern: client_id=("),
    ]:
        out = gregor(broker, "--alter", "--name", "bad", *args)
        assert out.returncode == 1 and message in out.stderr, (args, out.stderr)
    assert gregor(broker, "--list").stdout == ""
