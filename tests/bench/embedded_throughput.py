"""bench_embedded, case cpp_to_py_throughput: a C++ thread publishes N BenchPing per
repetition as fast as the Block policy lets it; this callback counts them.

Subject: M msg/s from the first to the last delivery of a repetition (time.monotonic_ns in
the callback). Floor, run on this thread between repetitions: the same callback (an
identical closure from the same factory) called N times from C++ with the GIL held on one
prebuilt message, i.e. what the callback itself costs without queue, handoff or decode.
"""

from time import monotonic_ns

import mycelium_bench as mb
import mycelium_native as mn
from mycelium_native.messages import BenchPing

REPS = mb.params["reps"]
N = mb.params["n"]
subject, floor_samples = [], []


def make_counter(target, done):
    count = 0
    first = 0

    def on_msg(msg):
        nonlocal count, first
        count += 1
        if count == 1:
            first = monotonic_ns()
        elif count == target:
            done(first, monotonic_ns())
            count = 0

    return on_msg


def rep_finished(first, last):
    subject.append((N - 1) / (last - first) * 1e3)  # M msg/s
    floor_cb = make_counter(-1, None)
    floor_samples.append(N / mb.call_n(floor_cb, BenchPing(seq=1, ts_ns=2, a=3, b=4), N) * 1e3)
    if len(subject) == REPS:
        mb.report("subject", subject)
        mb.report("floor", floor_samples)
        mn.stop()
    else:
        mb.rep_done()  # the C++ publisher starts the next repetition


mn.subscribe(BenchPing, make_counter(N, rep_finished))
