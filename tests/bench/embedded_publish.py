"""bench_embedded, case py_publish: Python mn.publish(msg) to a C++ inline subscriber.

Each repetition times N calls of the floor (a bare pybind11 function taking the message's
32 bytes) and then N calls of mn.publish(BenchPing) with time.perf_counter_ns around the
loop; both loops have the same shape, so both include the Python for-loop (~10 ns).
Reports ns per call. Repetition 0 warms up and is dropped.
"""

from time import perf_counter_ns

import mycelium_bench as mb
import mycelium_native as mn
from mycelium_native.messages import BenchPing

REPS = mb.params["reps"]
N = mb.params["n"]

msg = BenchPing(seq=1, ts_ns=2, a=3, b=4)
raw = msg.to_bytes()
publish = mn.publish
floor = mb.floor_bytes
subject, floor_samples = [], []
for rep in range(REPS + 1):
    t0 = perf_counter_ns()
    for _ in range(N):
        floor(raw)
    t1 = perf_counter_ns()
    for _ in range(N):
        publish(msg)
    t2 = perf_counter_ns()
    if rep:
        floor_samples.append((t1 - t0) / N)
        subject.append((t2 - t1) / N)

mb.report("floor", floor_samples)
mb.report("subject", subject)
mn.stop()
