"""The embedded host: real mycelium-host processes running real scripts."""

import json
import re
import signal
import subprocess
import textwrap
import time



def write_script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def summary_value(stdout, label):
    match = re.search(rf"{label}\s+(\d+)", stdout)
    assert match, f"no '{label}' in:\n{stdout}"
    return int(match.group(1))


def test_python_to_python_through_the_bus(run_host, tmp_path):
    script = write_script(tmp_path, "pingpong.py", """
        import mycelium_native as mn
        from mycelium_native.messages import TextMessage, CounterUpdate

        rt = mn.Runtime()
        seen = []

        def on_text(msg):
            seen.append(msg.content)
            rt.publish(CounterUpdate(counter_id=1, value=len(seen)))

        def on_counter(msg):
            if msg.value == 3:
                print("texts:", seen, flush=True)
                mn.stop()

        rt.subscribe(TextMessage, on_text)
        rt.subscribe(CounterUpdate, on_counter)
        for word in ("one", "two", "three"):
            rt.publish(TextMessage(sender="me", content=word, timestamp=1))
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "texts: ['one', 'two', 'three']" in result.stdout


def test_two_scripts_in_one_host(run_host, tmp_path):
    producer = write_script(tmp_path, "producer.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate

        @mn.on_start
        def go():
            for i in range(100):
                mn.publish(CounterUpdate(counter_id=7, value=i))
        """)
    consumer = write_script(tmp_path, "consumer.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate
        values = []

        @mn.subscribe(CounterUpdate)
        def on_counter(msg):
            values.append(msg.value)
            if len(values) == 100:
                print("in order:", values == list(range(100)), flush=True)
                mn.stop()
        """)
    result = run_host("--script", producer, "--script", consumer, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "in order: True" in result.stdout


def test_cpp_feed_to_python_and_python_to_cpp_sink(run_host, repo):
    result = run_host("--script", repo / "scripts" / "examples" / "model.py", "--demo-feed", "20000",
                      "--duration", "1.5", timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    published = summary_value(out, "feed ticks published")
    model = re.search(r"model: (\d+) ticks in, (\d+) signals out", out)
    assert model, out
    ticks_in, signals_out = int(model.group(1)), int(model.group(2))
    assert published > 10000
    assert ticks_in == published                      # block policy: nothing lost
    assert signals_out > 0
    assert summary_value(out, "signals to the C\\+\\+ sink") == signals_out
    assert "callback latency" in out


def test_scripts_run_as_main_with_the_system_interpreter(run_host, tmp_path):
    script = write_script(tmp_path, "main.py", """
        import sys
        import mycelium_native as mn
        print("executable", sys.executable, flush=True)
        print("folder on path", sys.path[0], flush=True)
        if __name__ == "__main__":
            print("ran as main", flush=True)
            mn.stop()
        """)
    result = run_host("--script", script, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "executable /usr/bin/python3" in result.stdout
    assert f"folder on path {tmp_path}" in result.stdout
    assert "ran as main" in result.stdout


def test_upstream_runtime_api_with_codegen_classes(run_host, tmp_path, repo):
    generated = tmp_path / "messages.py"
    gen = run_host("codegen", "--contracts", repo / "scripts" / "contracts.yaml", "--python", generated)
    assert gen.returncode == 0, gen.stderr
    script = write_script(tmp_path, "upstream.py", """
        import mycelium_native
        from messages import SCHEMA_DIGEST, TextMessage

        rt = mycelium_native.Runtime(schema_digest=SCHEMA_DIGEST, topology_path=None, service_name="upstream")
        received = []
        sub = rt.subscribe(TextMessage, received.append)
        rt.publish(TextMessage(sender="codegen", content="hello", timestamp=42))

        @mycelium_native.every(0.05)
        def check():
            if received:
                msg = received[0]
                print("got", type(msg).__module__, msg.sender, msg.content, msg.timestamp, flush=True)
                sub.close()
                rt.close()
                try:
                    rt.publish(TextMessage(sender="x", content="y", timestamp=0))
                except mycelium_native.ClosedError as e:
                    print("closed:", e, flush=True)
                mycelium_native.stop()
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "got messages codegen hello 42" in result.stdout
    assert "closed: Runtime.publish: the Runtime is closed" in result.stdout


def test_wrong_schema_digest_raises(run_host, tmp_path):
    script = write_script(tmp_path, "digest.py", """
        import mycelium_native as mn
        try:
            mn.Runtime(schema_digest=bytes(32))
        except mn.SchemaMismatch as e:
            print("mismatch:", e, flush=True)
        mn.stop()
        """)
    result = run_host("--script", script, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "mismatch: schema digest mismatch: the script expects 0000" in result.stdout


def test_message_classes_from_the_contracts(run_host, tmp_path):
    script = write_script(tmp_path, "classes.py", """
        import mycelium_native as mn
        from mycelium_native.messages import TradeTick
        t = TradeTick(symbol="AAPL", price=189.5, size=100, seq=7, ts_ns=123)
        print(repr(t))
        print(TradeTick.TYPE_ID, TradeTick.TOPIC, TradeTick.SIZE, TradeTick.FIELDS)
        back = TradeTick.from_bytes(t.to_bytes())
        print("equal", back == t, back != TradeTick(), len(t.to_bytes()))
        try:
            TradeTick(bogus=1)
        except TypeError as e:
            print("TypeError:", e)
        mn.stop()
        """)
    result = run_host("--script", script, timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "TradeTick(symbol='AAPL', price=189.5, size=100, seq=7, ts_ns=123)" in out
    assert "1100 market_data 56 ('symbol', 'price', 'size', 'seq', 'ts_ns')" in out
    assert "equal True True 56" in out
    assert "TypeError: TradeTick() got an unexpected keyword argument 'bogus'" in out


def test_numpy_views_share_the_message_bytes(run_host, tmp_path):
    script = write_script(tmp_path, "views.py", """
        import numpy as np
        import mycelium_native as mn
        from mycelium_native.messages import FeatureVector

        @mn.subscribe(FeatureVector)
        def on_features(msg):
            v, w = msg.values, msg.weights
            print("types", type(v).__name__, v.dtype, w.dtype, flush=True)
            print("values", v.tolist(), "weights", w.tolist(), flush=True)
            print("read-only", not v.flags.writeable, not w.flags.writeable, flush=True)
            print("one buffer", v.base is w.base, type(v.base).__name__, flush=True)
            print("shares", np.shares_memory(v, w.base), flush=True)
            mn.stop()

        raw = FeatureVector(model_id=3, weights=[1, 2, 3, 4, 5, 6, 7, 8], values=[0.5, 1.5], tag=b"abcd").to_bytes()
        decoded = FeatureVector.from_bytes(raw)
        print("from_bytes view of the same bytes", decoded.values.base is raw, flush=True)
        mn.publish(decoded)
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "from_bytes view of the same bytes True" in out
    assert "types ndarray float64 float32" in out
    assert "values [0.5, 1.5] weights [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]" in out
    assert "read-only True True" in out
    assert "one buffer True bytes" in out


def test_callback_exception_is_logged_and_the_host_keeps_running(run_host, tmp_path):
    script = write_script(tmp_path, "raises.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate
        count = 0

        @mn.subscribe(CounterUpdate)
        def on_counter(msg):
            global count
            count += 1
            if msg.value == 1:
                raise ValueError("bad value one")
            if count == 3:
                print("still running after the exception", flush=True)
                mn.stop()

        for i in range(3):
            mn.publish(CounterUpdate(counter_id=1, value=i))
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "still running after the exception" in result.stdout
    assert "for CounterUpdate raised" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert "ValueError: bad value one" in result.stderr
    assert "errors 1" in result.stdout


def test_fail_fast_exits_1_on_a_callback_exception(run_host, tmp_path):
    script = write_script(tmp_path, "raises.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate
        mn.subscribe(CounterUpdate, lambda msg: 1 / 0)
        mn.publish(CounterUpdate(counter_id=1, value=1))
        """)
    result = run_host("--script", script, "--fail-fast", "--duration", "10", timeout=30)
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr
    assert "--fail-fast: stopping the host" in result.stderr


def test_import_failure_exits_1_with_the_traceback(run_host, tmp_path):
    script = write_script(tmp_path, "broken.py", """
        import mycelium_native as mn

        def helper():
            raise RuntimeError("cannot start")

        helper()
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 1
    assert "broken.py failed at import" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert 'broken.py", line 5, in helper' in result.stderr
    assert "RuntimeError: cannot start" in result.stderr


def test_missing_script_is_a_one_line_error(run_host, tmp_path):
    result = run_host("--script", tmp_path / "absent.py", timeout=30)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "absent.py" in result.stderr


def test_nothing_to_run_is_an_error(run_host):
    result = run_host(timeout=30)
    assert result.returncode == 2
    assert "nothing to run" in result.stderr


def test_publish_errors_name_the_message_field_and_rule(run_host, tmp_path):
    script = write_script(tmp_path, "errors.py", """
        import mycelium_native as mn
        from mycelium_native.messages import TextMessage, TradeTick
        cases = [
            lambda: mn.publish("not a message"),
            lambda: mn.publish(TextMessage(sender="", content="x", timestamp=1)),
            lambda: mn.publish(TextMessage(sender="x" * 33, content="x", timestamp=1)),
            lambda: mn.publish(TradeTick(symbol="A", price="cheap")),
            lambda: mn.publish(TradeTick(symbol="A", seq=-1)),
        ]
        for case in cases:
            try:
                case()
                print("no error")
            except Exception as e:
                print(type(e).__name__ + ":", e)
        mn.stop()
        """)
    result = run_host("--script", script, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "NotAMessageError: publish: expected a message with TYPE_ID and to_bytes(), got str"
    assert lines[1] == "ValidationError: TextMessage.sender: not_empty: must not be empty"
    assert lines[2] == "ValidationError: TextMessage.sender: max_length: length 33 is above 32"
    assert lines[3] == "ValidationError: TradeTick.price: type: expected a number, got str"
    assert lines[4] == "ValidationError: TradeTick.seq: range: -1 is outside the range of u64"


def test_python_logging_lands_in_the_host_log_as_json(run_host, tmp_path):
    script = write_script(tmp_path, "logs.py", """
        import logging
        import mycelium_native as mn
        logging.getLogger("risk").warning("limit %d reached", 5)
        logging.warning("from the root logger")
        mn.stop()
        """)
    result = run_host("--log-format", "json", "--script", script, timeout=30)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert records, result.stderr
    for record in records:
        assert set(record) >= {"time", "level", "component", "message"}
    risk = [r for r in records if r["component"] == "py.risk"]
    assert risk and risk[0]["message"] == "limit 5 reached" and risk[0]["level"] == "warning"
    assert risk[0]["script"] == "logs.py"
    # The root logger's records go under the script's own name.
    root = [r for r in records if r["component"] == "py.logs"]
    assert root and root[0]["message"] == "from the root logger" and root[0]["script"] == "logs.py"


def test_a_callback_exception_logs_its_message_type_as_a_json_field(run_host, tmp_path):
    script = write_script(tmp_path, "raises.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate

        @mn.subscribe(CounterUpdate)
        def on_update(msg):
            mn.stop()
            raise RuntimeError("bad update")

        mn.publish(CounterUpdate(counter_id=1, value=2))
        """)
    result = run_host("--log-format", "json", "--script", script, timeout=30)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    raised = [r for r in records if "raised" in r["message"]]
    assert raised, result.stderr
    assert raised[0]["component"] == "python"
    assert raised[0]["type"] == "CounterUpdate"
    assert "RuntimeError: bad update" in raised[0]["message"]


def test_timers_run_on_the_dispatcher_thread_with_the_callbacks(run_host, tmp_path):
    script = write_script(tmp_path, "timers.py", """
        import threading, time
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate
        main = threading.get_ident()
        callback_thread = []
        mn.subscribe(CounterUpdate, lambda m: callback_thread.append(threading.get_ident()))
        mn.publish(CounterUpdate(counter_id=1, value=1))
        ticks = []

        @mn.every(0.02)
        def tick():
            ticks.append(time.monotonic())
            if len(ticks) == 5:
                same = callback_thread == [threading.get_ident()] and main != callback_thread[0]
                spacing = min(b - a for a, b in zip(ticks, ticks[1:]))
                print("same thread", same, "spacing ok", spacing > 0.015, flush=True)
                timer.cancel()
                mn.stop()
        timer = mn.every(10, lambda: None)
        """)
    result = run_host("--script", script, "--duration", "10", timeout=30)
    assert result.returncode == 0, result.stderr
    assert "same thread True spacing ok True" in result.stdout


def test_asyncio_stream_and_recv(run_host, tmp_path):
    script = write_script(tmp_path, "streams.py", """
        import asyncio
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate, TextMessage

        async def main():
            rt = mn.Runtime()
            got = []
            stream = rt.stream(CounterUpdate)

            async def produce():
                for i in range(5):
                    rt.publish(CounterUpdate(counter_id=2, value=i))
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(produce())
            async for msg in stream:
                got.append(msg.value)
                if len(got) == 5:
                    break
            stream.close()
            await task
            print("stream", got, flush=True)
            try:
                await rt.recv(TextMessage, timeout=0.1)
            except TimeoutError:
                print("recv timed out", flush=True)
            asyncio.get_running_loop().call_later(0.02, rt.publish, TextMessage(sender="a", content="late", timestamp=1))
            msg = await rt.recv(TextMessage, timeout=5)
            print("recv", msg.content, flush=True)

        asyncio.run(main())
        mn.stop()
        """)
    result = run_host("--script", script, "--duration", "20", timeout=40)
    assert result.returncode == 0, result.stderr
    assert "stream [0, 1, 2, 3, 4]" in result.stdout
    assert "recv timed out" in result.stdout
    assert "recv late" in result.stdout


def test_top_level_publish_loop_to_own_subscription_does_not_deadlock(run_host, tmp_path):
    script = write_script(tmp_path, "loop.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate
        seen = []
        mn.subscribe(CounterUpdate, lambda m: seen.append(m.value))
        for i in range(20000):      # far more than the queue holds
            mn.publish(CounterUpdate(counter_id=1, value=i))

        @mn.on_start
        def check():
            pass

        @mn.every(0.05)
        def done():
            if len(seen) == 20000:
                print("all delivered in order", seen == list(range(20000)), flush=True)
                mn.stop()
        """)
    result = run_host("--script", script, "--queue-capacity", "64", "--duration", "20", timeout=40)
    assert result.returncode == 0, result.stderr
    assert "all delivered in order True" in result.stdout


def test_sigterm_under_load_drains_runs_on_stop_and_exits_0(host_binary, tmp_path, repo):
    script = write_script(tmp_path, "counter.py", """
        import mycelium_native as mn
        from mycelium_native.messages import TradeTick
        state = {"count": 0, "next_seq": 0, "gaps": 0}

        @mn.subscribe(TradeTick)
        def on_tick(tick):
            if tick.seq != state["next_seq"]:
                state["gaps"] += 1
            state["next_seq"] = tick.seq + 1
            state["count"] += 1

        @mn.on_stop
        def report():
            print(f"on_stop: {state['count']} ticks, {state['gaps']} gaps", flush=True)
        """)
    proc = subprocess.Popen([str(host_binary), "--script", str(script), "--demo-feed", "200000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    match = re.search(r"on_stop: (\d+) ticks, (\d+) gaps", out)
    assert match, out
    assert int(match.group(2)) == 0
    assert int(match.group(1)) == summary_value(out, "feed ticks published") > 1000
    assert "received SIGTERM" in err


def test_a_stuck_callback_is_interrupted_at_shutdown(host_binary, tmp_path):
    script = write_script(tmp_path, "stuck.py", """
        import mycelium_native as mn
        from mycelium_native.messages import CounterUpdate

        @mn.subscribe(CounterUpdate)
        def spin(msg):
            print("spinning", flush=True)
            while True:
                pass

        @mn.on_stop
        def bye():
            print("on_stop ran", flush=True)

        mn.publish(CounterUpdate(counter_id=1, value=1))
        """)
    proc = subprocess.Popen([str(host_binary), "--script", str(script), "--shutdown-timeout", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "spinning"
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert elapsed < 2.5
    assert "on_stop ran" in out
    assert "interrupting it" in err


def test_a_script_thread_that_never_ends_does_not_hang_the_exit(run_host, tmp_path):
    script = write_script(tmp_path, "thread.py", """
        import threading, time
        import mycelium_native as mn

        def forever():
            while True:
                time.sleep(0.01)

        threading.Thread(target=forever, name="forever").start()
        mn.stop()
        """)
    started = time.monotonic()
    result = run_host("--script", script, "--shutdown-timeout", "2", timeout=30)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 5
    assert "thread 'forever' is still running at shutdown" in result.stderr


def test_a_non_message_is_a_value_error_and_a_type_error(run_host, tmp_path):
    # Mycelium's mycelium_native raised ValueError for an object that is not a message;
    # scripts written against it catch ValueError, ours catch TypeError: both must work.
    script = write_script(tmp_path, "not_a_message.py", """
        import mycelium_native as mn
        rt = mn.Runtime()
        for name, case in [("publish", lambda: rt.publish(object())),
                           ("module publish", lambda: mn.publish(42)),
                           ("subscribe", lambda: rt.subscribe(int, print))]:
            for kind in (ValueError, TypeError, mn.MyceliumError):
                try:
                    case()
                    print(name, "no error")
                except kind as e:
                    print(name, kind.__name__, type(e).__name__)
        mn.stop()
        """)
    result = run_host("--script", script, timeout=30)
    assert result.returncode == 0, result.stderr
    expected = [f"{name} {kind} NotAMessageError" for name in ("publish", "module publish", "subscribe")
                for kind in ("ValueError", "TypeError", "MyceliumError")]
    assert result.stdout.splitlines()[:len(expected)] == expected
