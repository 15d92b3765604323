"""bench_embedded, case cpp_to_py_one_way: a C++ thread publishes one BenchPing carrying
its steady_clock timestamp (ts_ns) every ~20 us; the callback records
time.monotonic_ns() - ts_ns (both read CLOCK_MONOTONIC). The C++ side drops each round's
warm-up messages and runs the floor; this side only records, in arrival order.
"""

from time import monotonic_ns

import mycelium_bench as mb
import mycelium_native as mn
from mycelium_native.messages import BenchPing

latencies = []
append = latencies.append


def on_ping(msg):
    append(monotonic_ns() - msg.ts_ns)


mn.subscribe(BenchPing, on_ping)


@mn.on_stop
def report():
    mb.report("subject", latencies)
