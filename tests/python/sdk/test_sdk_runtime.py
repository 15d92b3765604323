"""The in-host API out of process: one script runs under `mycelium-host --script` and as
`python3 script.py` beside a host, with the same output."""

import shutil
import signal
import subprocess
import sys
import time

import pytest

import mycelium
from sdk_helpers import write_script

EXAMPLE = "scripts/examples/sdk_echo.py"
EXAMPLE_OUTPUT = [
    "echo: alice says 'hello' at 1",
    "echo: alice says 'wörld' at 2",
    "echo: alice says 'bye' at 3",
    "echo: handled 3 messages: hello, wörld, bye",
]


@pytest.fixture
def msgs(sock_dir, messages):
    """The demo contracts' generated classes as msgs.py in the test's folder, for its scripts."""
    shutil.copy(messages.__file__, sock_dir / "msgs.py")


def probe_then_send(address, messages, digest, contents):
    """Drives an echo-style script: probes until it answers, then sends `contents` as
    alice's TextMessages and returns the CounterUpdates it got back."""
    t = mycelium.endpoint.transport_for_endpoint(address, digest, name="driver")
    sub = t.subscriber(messages.CounterUpdate)
    t.connect()
    pub = t.publisher(messages.TextMessage)
    deadline = time.monotonic() + 30
    while True:
        pub.publish(messages.TextMessage(sender="probe", content="?", timestamp=0))
        try:
            sub.recv(timeout=0.2)
            break
        except mycelium.Timeout:
            assert time.monotonic() < deadline, "the script never answered"
    time.sleep(0.2)  # late answers to earlier probes
    while True:
        try:
            sub.recv_nowait()
        except Exception:  # noqa: BLE001 - queue.Empty
            break
    replies = []
    for i, content in enumerate(contents):
        pub.publish(messages.TextMessage(sender="alice", content=content, timestamp=i + 1))
        replies.append(sub.recv(timeout=20))
    t.close()
    return replies


def script_lines(text, prefix):
    return [line for line in text.splitlines() if line.startswith(prefix)]


def run_in_host(start_host, sock_dir, script, drive, *host_args):
    address = f"unix:{sock_dir / 'in.sock'}"
    host = start_host("--script", script, "--listen", address, *host_args)
    result = drive(address)
    code, out, err = wait_exit(host)
    return code, out, err, result


def wait_exit(host, timeout=30):
    """Waits for a host that stops itself (the script calls stop()); SIGKILL after `timeout`."""
    try:
        host.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    return host.stop(timeout=5)


def run_outside(start_host, sock_dir, script, drive, env, extra_env=None):
    address = f"unix:{sock_dir / 'out.sock'}"
    start_host("--listen", address)
    env = dict(env, MYCELIUM_SOCKET=address, **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        result = drive(address)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err, result


def test_the_example_runs_in_and_out_of_the_host_with_the_same_output(start_host, sock_dir, repo, messages, digest,
                                                                       sdk_env):
    script = repo / EXAMPLE
    contents = ["hello", "wörld", "bye"]

    def drive(address):
        return probe_then_send(address, messages, digest, contents)

    code_in, out_in, err_in, replies_in = run_in_host(start_host, sock_dir, script, drive)
    code_out, out_out, err_out, replies_out = run_outside(start_host, sock_dir, script, drive, sdk_env)
    assert code_in == 0, err_in
    assert code_out == 0, err_out
    assert script_lines(out_in, "echo:") == EXAMPLE_OUTPUT, out_in + err_in
    assert script_lines(out_out, "echo:") == EXAMPLE_OUTPUT, out_out + err_out
    assert [(r.counter_id, r.value) for r in replies_in] == [(5, 2), (5, 4), (3, 6)]
    assert replies_out == replies_in


def test_the_example_joins_its_node_over_shared_memory_with_the_same_output(start_host, sock_dir, repo, messages,
                                                                             digest, sdk_env):
    """The same example beside a node that enables shared memory, found through the
    topology: the script's Runtime and the driver both move to the node's rings."""
    topology = sock_dir / "topology.toml"
    topology.write_text(f'socket_dir = "{sock_dir}"\n[[nodes]]\nname = "main"\nservices = ["sdk-echo"]\n'
                        '[nodes.shm]\nenabled = true\n')
    host = start_host("--topology", topology, "--node", "main")
    proc = subprocess.Popen([sys.executable, str(repo / EXAMPLE)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(sdk_env, MYCELIUM_TOPOLOGY=str(topology)))
    try:
        replies = probe_then_send(f"shm:{sock_dir / 'main.sock'}", messages, digest, ["hello", "wörld", "bye"])
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert script_lines(out, "echo:") == EXAMPLE_OUTPUT, out + err
    assert [(r.counter_id, r.value) for r in replies] == [(5, 2), (5, 4), (3, 6)]
    assert sum("frames go through shared memory now" in line for line in host.lines("stderr")) == 2


def test_the_example_messages_module_is_current(run_host, repo, tmp_path):
    fresh = tmp_path / "demo_messages.py"
    result = run_host("codegen", "--contracts", repo / "scripts" / "contracts.yaml", "--python", fresh)
    assert result.returncode == 0, result.stderr
    assert (repo / "scripts" / "examples" / "demo_messages.py").read_text() == fresh.read_text(), \
        "regenerate scripts/examples/demo_messages.py with mycelium-host codegen"


# One script in the host's style, using everything: module-level decorators, a Runtime
# subscribing to what it publishes itself, timers, hooks, stop() with an exit code.
FULL_SCRIPT = """
import mycelium
from msgs import CounterUpdate, TextMessage

rt = mycelium.Runtime(service_name="full")
seen = []
state = {"ticks": 0}

def on_text(msg):
    seen.append(msg.content)
    rt.publish(CounterUpdate(counter_id=1, value=len(seen)))

@mycelium.subscribe(CounterUpdate)
def on_counter(msg):
    if msg.counter_id == 1 and msg.value == 3:
        print("texts:", seen, flush=True)
        timer = mycelium.every(0.01, tick)

def tick():
    state["ticks"] += 1
    if state["ticks"] == 3:
        print("ticked 3 times", flush=True)
        mycelium.stop(EXIT_CODE)

@mycelium.on_start
def started():
    print("started", flush=True)
    for word in ("one", "two", "three"):
        rt.publish(TextMessage(sender="me", content=word, timestamp=1))

@mycelium.on_stop
def stopped():
    print("stopped after", state["ticks"], "ticks", flush=True)

rt.subscribe(TextMessage, on_text)
print("top level done", flush=True)
"""


@pytest.mark.parametrize("exit_code", [0, 3])
def test_one_script_with_hooks_timers_and_loopback_in_and_out(start_host, sock_dir, msgs, sdk_env,
                                                               exit_code):
    script = write_script(sock_dir, "full.py", FULL_SCRIPT.replace("EXIT_CODE", str(exit_code)))
    expected = ["top level done", "started", "texts: ['one', 'two', 'three']", "ticked 3 times",
                "stopped after 3 ticks"]

    code_in, out_in, err_in, _ = run_in_host(start_host, sock_dir, script, lambda address: None)
    code_out, out_out, err_out, _ = run_outside(start_host, sock_dir, script, lambda address: None, sdk_env)
    assert code_in == exit_code, err_in
    assert code_out == exit_code, err_out
    prefixes = ("top", "started", "texts", "ticked", "stopped")
    assert script_lines(out_in, prefixes) == expected, out_in + err_in
    assert script_lines(out_out, prefixes) == expected, out_out + err_out


def test_asyncio_stream_and_recv_out_of_process(start_host, sock_dir, sdk_env, msgs):
    script = write_script(sock_dir, "aio.py", """
        import asyncio
        import mycelium
        from msgs import CounterUpdate

        rt = mycelium.Runtime()

        async def main():
            try:
                await rt.recv(CounterUpdate, timeout=0.05)
            except TimeoutError:
                print("recv timed out", flush=True)
            got = []
            async def produce():
                for i in range(5):
                    rt.publish(CounterUpdate(counter_id=7, value=i))
                    await asyncio.sleep(0)
            with rt.stream(CounterUpdate) as stream:
                asyncio.get_running_loop().call_soon(asyncio.ensure_future, produce())
                async for msg in stream:
                    got.append(msg.value)
                    if len(got) == 5:
                        break
            print("streamed", got, flush=True)

        asyncio.run(main())
        rt.close()
        """)
    for mode in ("in", "out"):
        if mode == "in":
            code, out, err, _ = run_in_host(start_host, sock_dir, script, lambda a: None, "--duration", "3")
        else:
            code, out, err, _ = run_outside(start_host, sock_dir, script, lambda a: None, sdk_env)
        assert code == 0, err
        assert script_lines(out, ("recv", "streamed")) == ["recv timed out", "streamed [0, 1, 2, 3, 4]"], out + err


def run_python(script, env, timeout=30):
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=timeout)


def test_runtime_joins_the_node_named_by_the_topology(start_host, sock_dir, sdk_env, msgs, messages, digest):
    topology = sock_dir / "topology.toml"
    topology.write_text('socket_dir = "."\n[[nodes]]\nname = "main"\nservices = ["worker"]\n')
    host = start_host("--topology", topology, "--node", "main")
    assert host.addresses == [f"unix:{sock_dir / 'main.sock'}"]
    script = write_script(sock_dir, "worker.py", """
        import mycelium
        from msgs import CounterUpdate
        rt = mycelium.Runtime()  # MYCELIUM_TOPOLOGY, MYCELIUM_SERVICE, MYCELIUM_SCHEMA_DIGEST
        print("endpoint", rt.endpoint, "service", rt.service_name, flush=True)
        rt.publish(CounterUpdate(counter_id=42, value=1))
        rt.close()
        """)
    watcher = mycelium.UnixTransport(str(sock_dir / "main.sock"), digest)
    sub = watcher.subscriber(messages.CounterUpdate)
    watcher.connect()
    env = dict(sdk_env, MYCELIUM_TOPOLOGY=str(topology), MYCELIUM_SERVICE="worker",
               MYCELIUM_SCHEMA_DIGEST=digest.hex())
    result = run_python(script, env)
    assert result.returncode == 0, result.stderr
    assert f"endpoint unix:{sock_dir / 'main.sock'} service worker" in result.stdout
    assert sub.recv(timeout=10).counter_id == 42
    watcher.close()


def test_runtime_without_a_host_to_connect_to(sock_dir, sdk_env):
    script = write_script(sock_dir, "lost.py", """
        import mycelium
        rt = mycelium.Runtime()
        """)
    result = run_python(script, sdk_env)
    assert result.returncode == 1
    assert "nowhere to connect outside mycelium-host: set MYCELIUM_SOCKET" in result.stderr


def test_a_script_that_fails_at_top_level_exits_at_once(start_host, sock_dir, sdk_env, msgs):
    address = f"unix:{sock_dir / 'n.sock'}"
    start_host("--listen", address)
    script = write_script(sock_dir, "fails.py", """
        import mycelium
        from msgs import CounterUpdate
        mycelium.subscribe(CounterUpdate, print)
        raise RuntimeError("broken at import")
        """)
    result = run_python(script, dict(sdk_env, MYCELIUM_SOCKET=address))
    assert result.returncode == 1
    assert "RuntimeError: broken at import" in result.stderr


def test_sigterm_runs_the_stop_hooks_and_exits_0(start_host, sock_dir, sdk_env, msgs):
    address = f"unix:{sock_dir / 'n.sock'}"
    start_host("--listen", address)
    script = write_script(sock_dir, "served.py", """
        import mycelium
        from msgs import CounterUpdate

        @mycelium.subscribe(CounterUpdate)
        def on_counter(msg):
            pass

        @mycelium.on_start
        def ready():
            print("ready", flush=True)

        @mycelium.on_stop
        def bye():
            print("on_stop ran", flush=True)
        """)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(sdk_env, MYCELIUM_SOCKET=address))
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.strip() == "on_stop ran"


def test_digest_comes_from_the_message_module_and_is_checked(start_host, sock_dir, sdk_env, codegen):
    other = write_script(sock_dir, "other.yaml", """
        messages:
          Other:
            tlv_type: 1002
            fields:
              counter_id: u32
              value: u64
        """)
    module = codegen(other, "other_msgs")
    shutil.copy(module.__file__, sock_dir / "other_msgs.py")
    address = f"unix:{sock_dir / 'n.sock'}"
    start_host("--listen", address)
    script = write_script(sock_dir, "mismatch.py", """
        import mycelium
        from other_msgs import Other
        rt = mycelium.Runtime()  # no digest: taken from other_msgs.SCHEMA_DIGEST on first use
        try:
            rt.publish(Other(counter_id=1, value=2))
        except mycelium.SchemaMismatch as e:
            print("mismatch:", e, flush=True)
        """)
    result = run_python(script, dict(sdk_env, MYCELIUM_SOCKET=address))
    assert result.returncode == 0, result.stderr
    assert f"mismatch: {address}: the host refused the schema digest: schema digest {module.SCHEMA_DIGEST.hex()} " \
           f"does not match the host's" in result.stdout


def test_inside_the_host_mycelium_is_mycelium_native(run_host, sock_dir):
    script = write_script(sock_dir, "inside.py", """
        import mycelium, mycelium_native
        print("inside", mycelium.INSIDE_HOST)
        print("same Runtime", mycelium.Runtime is mycelium_native.Runtime)
        print("same publish", mycelium.publish is mycelium_native.publish)
        print("same errors", mycelium.SchemaMismatch is mycelium_native.SchemaMismatch,
              issubclass(mycelium.TransportError, mycelium_native.MyceliumError))
        # run() serves, as outside the host, until the host stops: here a timer's stop(3).
        mycelium.every(0.1, lambda: mycelium.stop(3))
        print("run returns", mycelium.run(), flush=True)
        """)
    result = run_host("--script", script, timeout=30)
    assert result.returncode == 3, result.stderr
    for line in ("inside True", "same Runtime True", "same publish True", "same errors True True", "run returns 3"):
        assert line in result.stdout, result.stdout


def test_outside_the_host_a_copy_of_mycelium_native_is_not_mistaken_for_the_host(sock_dir, sdk_env):
    fake = write_script(sock_dir, "mycelium_native.py", "raise AssertionError('imported the fake')\n")
    script = write_script(sock_dir, "check.py", """
        import mycelium
        print("inside", mycelium.INSIDE_HOST, mycelium.Runtime.__module__)
        """)
    assert fake.exists()
    result = run_python(script, sdk_env)
    assert result.returncode == 0, result.stderr
    assert "inside False mycelium._client_runtime" in result.stdout


def test_a_script_that_closes_its_runtime_exits_and_runs_on_stop(start_host, sock_dir, sdk_env, msgs):
    address = f"unix:{sock_dir / 'n.sock'}"
    start_host("--listen", address)
    script = write_script(sock_dir, "done.py", """
        import mycelium
        from msgs import CounterUpdate
        rt = mycelium.Runtime()
        got = []
        rt.subscribe(CounterUpdate, got.append)
        rt.publish(CounterUpdate(counter_id=1, value=2))  # delivered to itself (loopback)
        rt.flush()
        import time
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        print("got", got[0].value if got else None, flush=True)

        @mycelium.on_stop
        def bye():
            print("on_stop ran", flush=True)

        rt.close()  # nothing left to serve: the script ends here
        """)
    started = time.monotonic()
    result = run_python(script, dict(sdk_env, MYCELIUM_SOCKET=address))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["got", "2", "on_stop", "ran"]
    assert time.monotonic() - started < 15


def test_a_supervised_worker_uses_the_sdk_with_no_configuration(start_host, sock_dir, msgs, messages, digest):
    script = write_script(sock_dir, "worker.py", """
        import mycelium
        from msgs import CounterUpdate, TextMessage

        rt = mycelium.Runtime()  # MYCELIUM_SOCKET, MYCELIUM_SCHEMA_DIGEST, MYCELIUM_SERVICE from the host

        @rt.subscribe(TextMessage)
        def on_text(msg):
            rt.publish(CounterUpdate(counter_id=len(msg.content), value=msg.timestamp + 1))

        @mycelium.on_stop
        def bye():
            print("worker", rt.service_name, "stopping", flush=True)
        """)
    address = f"unix:{sock_dir / 'w.sock'}"
    host = start_host("--listen", address, "--worker", f"echo-worker={script}")
    host.wait_for(r"worker 'echo-worker' \(pid \d+\) is ready: connected as 'echo-worker'", stream="stderr")
    replies = probe_then_send(address, messages, digest, ["abcd"])
    assert (replies[0].counter_id, replies[0].value) == (4, 2)
    code, _, err = host.stop()
    assert code == 0, err
    assert "worker echo-worker stopping" in err
