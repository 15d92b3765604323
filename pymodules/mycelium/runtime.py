"""The in-host API, wherever the script runs.

Inside mycelium-host these names are `mycelium_native`'s own objects (no wrapper: a
publish costs what it costs there); in any other process they come from
`mycelium._client_runtime`, which connects to a host as the environment says.

| name | inside the host | outside |
|---|---|---|
| `Runtime(schema_digest=None, topology_path=None, service_name=None)` | attaches to the host's bus | connects (MYCELIUM_SOCKET, or the topology) |
| `publish(msg)`, `subscribe(Cls, cb)`, `@subscribe(Cls)` | the default Runtime | the same |
| `every(s, fn)`, `@every(s)`, `on_start`, `on_stop`, `stop(code)` | the host's dispatcher thread | the SDK's dispatcher thread |
| `stream(Cls)`, `await recv(Cls, timeout)` | asyncio, on the default Runtime | the same |
| `run()` | serves until the host stops, returns its exit code | serves until stop() or SIGINT/SIGTERM |
| `INSIDE_HOST` | True | False |
"""

try:
    from ._native import native as _native
except ImportError:
    _native = None

if _native is not None:
    INSIDE_HOST = True
    Runtime = _native.Runtime
    Subscription = _native.Subscription
    Timer = _native.Timer
    Stream = _native.Stream
    publish = _native.publish
    subscribe = _native.subscribe
    every = _native.every
    on_start = _native.on_start
    on_stop = _native.on_stop
    stop = _native.stop

    def _default():
        # The same default Runtime the module-level functions of mycelium_native use.
        if not hasattr(_native, "_default_runtime"):
            _native._default_runtime = _native.Runtime()
        return _native._default_runtime

    def stream(message_cls, maxsize=65536):
        """An asyncio stream of `message_cls` on the default Runtime."""
        return _default().stream(message_cls, maxsize)

    async def recv(message_cls, timeout=None):
        """One message of `message_cls` on the default Runtime, or TimeoutError."""
        return await _default().recv(message_cls, timeout)

    def run():
        """Serves until the host stops (stop(), SIGINT/SIGTERM, --duration); returns its
        exit code. Callbacks run meanwhile on the host's dispatcher thread."""
        import time

        try:
            while True:  # the host interrupts the top level when it stops
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        return _native._exit_code()

else:
    INSIDE_HOST = False
    from ._client_runtime import (  # noqa: F401 - re-exported
        Runtime,
        Stream,
        Subscription,
        Timer,
        every,
        on_start,
        on_stop,
        publish,
        recv,
        run,
        stop,
        stream,
        subscribe,
    )

__all__ = ["INSIDE_HOST", "Runtime", "Stream", "Subscription", "Timer", "every", "on_start", "on_stop", "publish",
           "recv", "run", "stop", "stream", "subscribe"]
