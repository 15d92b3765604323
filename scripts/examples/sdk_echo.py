"""One script, two ways to run it, the same output (docs/python-sdk.md).

Inside the host:

    mycelium-host --script scripts/examples/sdk_echo.py --listen unix:/tmp/echo.sock

As its own process, beside a host:

    mycelium-host --listen unix:/tmp/echo.sock &
    MYCELIUM_SOCKET=unix:/tmp/echo.sock python3 scripts/examples/sdk_echo.py

(with `pymodules/` on PYTHONPATH, or the SDK installed), or beside a node of a topology,
over the node's shared-memory rings when it enables them (`[nodes.shm] enabled = true`,
and `sdk-echo` among its services):

    MYCELIUM_TOPOLOGY=topology.toml python3 scripts/examples/sdk_echo.py

Inside the host `mycelium` hands everything to the built-in `mycelium_native`; outside it
connects where MYCELIUM_SOCKET or the topology says, runs the callbacks on its own thread, and keeps serving after the top level returns, as the
host does.

It answers every TextMessage with a CounterUpdate (counter_id = the content's length,
value = timestamp * 2), prints each message it handled, and stops after "bye". Senders
named "probe" are answered but not printed: a client can probe until the script is up.

The message classes are `mycelium-host codegen --python` output for scripts/contracts.yaml
(demo_messages.py, next to this script); they work in both places.
"""

import mycelium
from demo_messages import SCHEMA_DIGEST, CounterUpdate, TextMessage

rt = mycelium.Runtime(schema_digest=SCHEMA_DIGEST, service_name="sdk-echo")
handled = []


@rt.subscribe(TextMessage)
def on_text(msg):
    rt.publish(CounterUpdate(counter_id=len(msg.content), value=msg.timestamp * 2))
    if msg.sender == "probe":
        return
    handled.append(msg.content)
    print(f"echo: {msg.sender} says {msg.content!r} at {msg.timestamp}", flush=True)
    if msg.content == "bye":
        mycelium.stop()


@mycelium.on_stop
def report():
    print(f"echo: handled {len(handled)} messages: {', '.join(handled)}", flush=True)
