"""bench_embedded, case py_to_py_one_way: Python -> bus -> Python in one host.

Two subscriptions ping-pong: on BenchPing publish BenchPong, on BenchPong publish
BenchPing. A sample is BATCH round trips timed with perf_counter_ns, halved (one way).
Peer, run on this same Python thread right after each sample: pyzmq PAIR sockets over
inproc, send/recv of a 32-byte bytes object, BATCH round trips in one thread (so neither
side ever blocks, as in the bus ping-pong).
"""

from time import perf_counter_ns

import zmq

import mycelium_bench as mb
import mycelium_native as mn
from mycelium_native.messages import BenchPing, BenchPong

REPS = mb.params["reps"]
BATCH = mb.params["batch"]

ctx = zmq.Context()
za = ctx.socket(zmq.PAIR)
za.bind("inproc://bench-embedded")
zb = ctx.socket(zmq.PAIR)
zb.connect("inproc://bench-embedded")
payload = bytes(32)


def zmq_sample():
    a_send, a_recv, b_send, b_recv = za.send, za.recv, zb.send, zb.recv
    t0 = perf_counter_ns()
    for _ in range(BATCH):
        a_send(payload)
        b_recv()
        b_send(payload)
        a_recv()
    return (perf_counter_ns() - t0) / (2 * BATCH)


publish = mn.publish
ping = BenchPing(seq=1, ts_ns=2, a=3, b=4)
pong = BenchPong(seq=1, ts_ns=2, a=3, b=4)
subject, floor_samples = [], []
count = 0
t0 = 0
zmq_sample()  # warm up


def on_ping(msg):
    publish(pong)


def on_pong(msg):
    global count, t0
    count += 1
    if count < BATCH:
        publish(ping)
        return
    t1 = perf_counter_ns()
    subject.append((t1 - t0) / (2 * BATCH))
    floor_samples.append(zmq_sample())
    if len(subject) == REPS:
        mb.report("subject", subject)
        mb.report("floor", floor_samples)
        za.close(0)
        zb.close(0)
        ctx.term()
        mn.stop()
        return
    count = 0
    t0 = perf_counter_ns()
    publish(ping)


mn.subscribe(BenchPing, on_ping)
mn.subscribe(BenchPong, on_pong)


@mn.on_start
def start():
    global t0
    t0 = perf_counter_ns()
    publish(ping)
