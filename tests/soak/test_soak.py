"""The short soak (docs/reliability.md, "Soak and faults"): SOAK_CLIENTS clients (3) over
unix, tcp and shm, SOAK_RATE (2,000) msg/s each, SOAK_SECONDS (5) s, through a node whose
in-host script checks every sequence; soak.py says what is checked. Run the long one by
hand with soak.py's command line."""

import json
import os

import pytest

from soak import run_soak

CLIENTS = int(os.environ.get("SOAK_CLIENTS", 3))
RATE = float(os.environ.get("SOAK_RATE", 2000))
SECONDS = float(os.environ.get("SOAK_SECONDS", 5))


@pytest.mark.parametrize("policy", ["block", "drop_oldest"])
def test_soak_checks_every_sequence_and_stays_bounded(policy, host_binary, digest, messages, sock_dir):
    summary = run_soak(host_binary, sock_dir, CLIENTS, RATE, SECONDS, policy, sample=0.5, digest=digest,
                       messages=messages)
    print("soak " + json.dumps(summary))
    assert summary["failures"] == []
    assert summary["messages_sent"] > 0 and summary["script_received"] == summary["messages_sent"]
    if policy == "block":
        assert summary["consumer_received"] == summary["messages_sent"]
    else:
        assert summary["consumer_dropped_per_metrics"] > 0
        assert summary["consumer_received"] + summary["consumer_dropped_per_metrics"] == summary["messages_sent"]
