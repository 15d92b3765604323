"""bench_embedded, case cpp_to_py_one_way_sleeping: embedded_latency.py's callback, in a
script shaped the way Mycelium documents one: subscribe, then keep the top level alive
with a sleep loop. The host's dispatcher thread delivers while the top level sleeps.
"""

import time
from time import monotonic_ns

import mycelium_bench as mb
import mycelium_native as mn
from mycelium_native.messages import BenchPing

latencies = []
append = latencies.append


def on_ping(msg):
    append(monotonic_ns() - msg.ts_ns)


rt = mn.Runtime()
rt.subscribe(BenchPing, on_ping)
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:  # the host's stop
    pass
finally:
    mb.report("subject", latencies)
