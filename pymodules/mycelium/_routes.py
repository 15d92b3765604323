"""Routes (internal): which subscribers receive an application frame of a type id, and
the decoding on the way to them.

Every channel (the socket reader, the ring readers) hands each application frame to
`Routes.deliver(type_id, payload)`; the connection asks `type_ids()` for the SUBSCRIBE of
each preamble. A frame is decoded once per subscribed class of its type, then pushed to
every sink (Subscriber, or the Runtime's dispatching sink) of that class. A frame that does
not decode is logged on the `mycelium` logger and skipped: nothing a frame contains ends a
reader.
"""

import logging

from ._classes import name_of, type_id_of

log = logging.getLogger("mycelium")

_DECODE_WARNINGS = 10  # decode errors logged at WARNING before thinning out to 1 in 1000
#: alone(sink) for a sink that shares its type: no frame may skip its queue.
NOT_ALONE = (-1, None, None)


class Routes:
    """The routes table of one transport.

    add() and remove() are called under the connection's subscription lock (one change at
    a time, in step with what is declared to the host); deliver() and alone() run on the
    reading threads without a lock: both tables are replaced whole, never changed in place.
    """

    def __init__(self, describe):
        self._describe = describe  # the transport's describe(), for the log
        # type id -> ((cls, cls.from_bytes, (sink._push, ...)), ...), one entry per class.
        self._table = {}
        # sink -> (type id, cls, cls.from_bytes) for a sink that alone receives its type
        # (one class, one sink): its own reading thread may take such a frame directly.
        self._alone = {}
        self._sinks = {}  # cls -> [sink, ...]
        self.decode_errors = 0

    def add(self, cls, sink):
        """Routes decoded `cls` messages to `sink` (`_push(msg)`, `_fail(exc)`); True when
        its type had no route before (the host must be told: SUBSCRIBE)."""
        first = type_id_of(cls) not in self._table
        self._sinks.setdefault(cls, []).append(sink)
        self._rebuild()
        return first

    def remove(self, cls, sink):
        """Stops routing to `sink`; True when its type has no route left (UNSUBSCRIBE)."""
        sinks = self._sinks.get(cls, [])
        if sink not in sinks:
            return False
        sinks.remove(sink)
        if not sinks:
            del self._sinks[cls]
        self._rebuild()
        return type_id_of(cls) not in self._table

    def type_ids(self):
        """The subscribed type ids (what a new connection declares)."""
        return list(self._table)

    def sinks(self):
        return [sink for group in self._sinks.values() for sink in group]

    def alone(self, sink):
        """(type id, cls, decode) when `sink` alone receives its type, else NOT_ALONE."""
        return self._alone.get(sink, NOT_ALONE)

    def deliver(self, type_id, payload):
        """Decodes an application frame once per subscribed class and hands it over; a
        type nobody subscribes to (any more) is dropped."""
        entries = self._table.get(type_id)
        if entries is None:
            return
        for cls, decode, pushes in entries:
            try:
                message = decode(payload)
            except Exception as e:  # noqa: BLE001 - a bad frame is skipped, never fatal
                self.decode_failed(cls, payload, e)
                continue
            for push in pushes:
                try:
                    push(message)
                except Exception:  # noqa: BLE001
                    log.exception("%s: delivering a %s failed", self._describe(), name_of(cls))

    def decode_failed(self, cls, payload, error):
        """Counts a frame of `cls` that did not decode; logs the first ones, then 1 in 1000."""
        self.decode_errors += 1
        count = self.decode_errors
        if count <= _DECODE_WARNINGS or count % 1000 == 0:
            log.warning("%s: skipped a %s frame of %d bytes that did not decode (%d so far): %s: %s",
                        self._describe(), name_of(cls), len(payload), count, type(error).__name__, error)

    def _rebuild(self):
        table = {}
        for cls, sinks in self._sinks.items():
            table.setdefault(type_id_of(cls), []).append((cls, cls.from_bytes, tuple(s._push for s in sinks)))
        alone = {}
        for type_id, entries in table.items():
            cls, decode, _ = entries[0]
            sinks = self._sinks[cls]
            if len(entries) == 1 and len(sinks) == 1:
                alone[sinks[0]] = (type_id, cls, decode)
        # Replaced before the table: a sink that stops being alone is never handed a frame
        # that the new table gives to another sink too.
        self._alone = alone
        self._table = {type_id: tuple(entries) for type_id, entries in table.items()}


__all__ = ["NOT_ALONE", "Routes"]
