"""The C++ bus demo (the README's main job until the embedded host lands)."""

import re


def test_demo_runs_and_loses_nothing(run_host):
    result = run_host("demo", "--duration", "1", "--rate", "20000", timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    published = int(re.search(r"ticks published\s+(\d+)", out).group(1))
    delivered = int(re.search(r"ticks delivered\s+(\d+)", out).group(1))
    signals = int(re.search(r"signals published\s+(\d+)", out).group(1))
    received = int(re.search(r"signals received\s+(\d+)", out).group(1))
    assert published > 10000
    assert delivered == published
    assert signals > 0
    assert received == signals
    assert "tick->sink latency p50" in out
