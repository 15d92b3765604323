"""mycelium.metrics: the same API as mycelium_native.metrics; outside the host a
Runtime reports the process's metrics to its host (METRICS frames), which serves them
with a `client` label; inside the host they are the host's own."""

import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mycelium import metrics
from sdk_helpers import write_script

REPORTER = """
import sys, time
import mycelium
from mycelium import metrics
from demo_messages import SCHEMA_DIGEST

jobs = metrics.counter("sdk_jobs_total", "Jobs done", labels=["queue"])
depth = metrics.gauge("sdk_depth", "Queue depth")
step = metrics.histogram("sdk_step_seconds", "Step time", buckets=[0.01, 0.1])
rt = mycelium.Runtime(schema_digest=SCHEMA_DIGEST)
for _ in range(3):
    jobs.labels(queue="fast").inc()
depth.set(7)
step.observe(0.05)
print("ready", flush=True)
time.sleep(60)
"""

IN_HOST = """
from mycelium import metrics
import mycelium_native as mn
metrics.counter("sdk_in_host_total", "Defined through the SDK inside the host").inc(2)
"""


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def samples(text):
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wait_for_sample(url, name, labels, timeout=15.0):
    key = (name, frozenset(labels.items()))
    deadline = time.monotonic() + timeout
    while True:
        parsed = samples(scrape(url))
        if key in parsed or time.monotonic() > deadline:
            return parsed
        time.sleep(0.05)


def test_a_worker_outside_the_host_reports_its_metrics_with_a_client_label(start_host, sock_dir, sdk_env, repo):
    host = start_host("--listen", f"unix:{sock_dir / 'node.sock'}", "--metrics", "127.0.0.1:0")
    url = host.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
    script = write_script(sock_dir, "reporter.py", REPORTER)
    env = dict(sdk_env, MYCELIUM_SOCKET=f"unix:{sock_dir / 'node.sock'}", MYCELIUM_SERVICE="reporter",
               MYCELIUM_METRICS_INTERVAL="0.1",
               PYTHONPATH=sdk_env["PYTHONPATH"] + ":" + str(repo / "scripts" / "examples"))
    worker = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready"
        parsed = wait_for_sample(url, "sdk_jobs_total", {"client": "reporter", "queue": "fast"})
        assert parsed[("sdk_jobs_total", frozenset({("client", "reporter"), ("queue", "fast")}))] == 3
        assert parsed[("sdk_depth", frozenset({("client", "reporter")}))] == 7
        assert parsed[("sdk_step_seconds_count", frozenset({("client", "reporter")}))] == 1
        assert parsed[("sdk_step_seconds_bucket", frozenset({("client", "reporter"), ("le", "0.1")}))] == 1
        assert parsed[("sdk_step_seconds_bucket", frozenset({("client", "reporter"), ("le", "0.01")}))] == 0
    finally:
        worker.kill()
        worker.wait(timeout=10)
    # The worker's metrics go with its connection.
    deadline = time.monotonic() + 10
    while "sdk_jobs_total" in scrape(url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "sdk_jobs_total" not in scrape(url)


def test_inside_the_host_the_sdk_metrics_are_the_hosts_own(start_host, sock_dir):
    script = write_script(sock_dir, "in_host.py", IN_HOST)
    host = start_host("--script", script, "--listen", f"unix:{sock_dir / 'node.sock'}", "--metrics", "127.0.0.1:0")
    url = host.wait_for(r"^metrics on http://").split("metrics on ", 1)[1].strip()
    assert samples(scrape(url))[("sdk_in_host_total", frozenset())] == 2


def test_the_rules_match_the_hosts():
    jobs = metrics.counter("sdk_rules_total", "Rules", labels=["kind"])
    assert metrics.counter("sdk_rules_total", "Rules", labels=["kind"]) is jobs
    with pytest.raises(ValueError, match="already defined as a counter"):
        metrics.gauge("sdk_rules_total", "Rules", labels=["kind"])
    with pytest.raises(ValueError, match="the 'mycelium_' prefix is the host's own"):
        metrics.counter("mycelium_mine_total")
    with pytest.raises(ValueError, match="bad metric name"):
        metrics.counter("9lives")
    with pytest.raises(ValueError, match="bad or repeated label name 'client'"):
        metrics.counter("sdk_client_total", labels=["client"])
    with pytest.raises(ValueError, match=r"has the labels \['kind'\]: call .labels"):
        jobs.inc()
    with pytest.raises(ValueError, match="a counter only goes up"):
        jobs.labels(kind="x").inc(-1)
    with pytest.raises(TypeError, match="is a counter; set/dec"):
        jobs.labels(kind="x").set(3)
    jobs.labels(kind="x").inc(2)
    assert jobs.labels(kind="x").value == 2
