"""Counters, gauges and histograms, in prometheus_client's shape (docs/metrics.md).

    from mycelium import metrics
    jobs = metrics.counter("jobs_total", "Jobs done", labels=["queue"])
    jobs.labels(queue="fast").inc()

Inside mycelium-host these are `mycelium_native.metrics`'s own objects. Outside it, a
`mycelium.Runtime` sends a snapshot of every metric defined in the process to its host
in a METRICS frame (docs/wire-protocol.md) every `MYCELIUM_METRICS_INTERVAL` seconds
(default 5), and the host serves them with a `client` label. The rules match the host's:
the same definition again returns the same metric; a different one is a ValueError.
"""

import math
import re
import struct
import threading

try:
    from ._native import native as _host_module
except ImportError:
    _host_module = None

__all__ = ["counter", "gauge", "histogram"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_KINDS = {"counter": 0, "gauge": 1, "histogram": 2}


class _Series:
    __slots__ = ("_metric", "_lock", "value", "counts", "count", "sum")

    def __init__(self, metric):
        self._metric = metric
        self._lock = threading.Lock()
        self.value = 0.0
        self.counts = [0] * len(metric.buckets)  # per bucket, not cumulative
        self.count = 0
        self.sum = 0.0

    def inc(self, amount=1.0):
        kind = self._metric.kind
        if kind == "histogram":
            raise TypeError(f"{self._metric.name} is a histogram; inc() is for a counter or a gauge")
        if kind == "counter" and not amount >= 0:
            raise ValueError(f"{self._metric.name}: a counter only goes up, got inc({amount!r})")
        with self._lock:
            self.value += amount

    def dec(self, amount=1.0):
        self._require("gauge", "set/dec")
        with self._lock:
            self.value -= amount

    def set(self, value):
        self._require("gauge", "set/dec")
        with self._lock:
            self.value = float(value)

    def observe(self, value):
        self._require("histogram", "observe")
        if math.isnan(value):
            raise ValueError(f"{self._metric.name}: cannot observe NaN")
        with self._lock:
            for i, bound in enumerate(self._metric.buckets):
                if value <= bound:
                    self.counts[i] += 1
                    break
            self.count += 1
            self.sum += value

    def _require(self, kind, operation):
        if self._metric.kind != kind:
            raise TypeError(f"{self._metric.name} is a {self._metric.kind}; {operation}() is for a {kind}")


class Metric:
    """What counter()/gauge()/histogram() return; labels(**values) selects a series."""

    def __init__(self, kind, name, help, label_names, buckets):
        self.kind = kind
        self.name = name
        self.help = help
        self.label_names = tuple(label_names)
        self.buckets = tuple(buckets)
        self._series = {}
        self._lock = threading.Lock()

    def labels(self, **values):
        given = sorted(values)
        if given != sorted(self.label_names):
            raise ValueError(f"{self.name}: expected the labels {sorted(self.label_names)}, got {given}")
        key = tuple(str(values[name]) for name in self.label_names)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(self)
        return series

    def _unlabelled(self):
        if self.label_names:
            raise ValueError(f"{self.name} has the labels {list(self.label_names)}: call .labels(...) first")
        return self.labels()

    def inc(self, amount=1.0):
        self._unlabelled().inc(amount)

    def dec(self, amount=1.0):
        self._unlabelled().dec(amount)

    def set(self, value):
        self._unlabelled().set(value)

    def observe(self, value):
        self._unlabelled().observe(value)

    @property
    def value(self):
        if self.kind == "histogram":
            raise TypeError(f"{self.name} is a histogram; it has no single value")
        return self._unlabelled().value


class _Registry:
    def __init__(self):
        self._metrics = {}
        self._lock = threading.Lock()

    def define(self, kind, name, help, labels, buckets=()):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}: use letters, digits, '_' and ':', not starting with a digit")
        if name.startswith("mycelium_"):
            raise ValueError(f"bad metric name {name!r}: the 'mycelium_' prefix is the host's own")
        labels = tuple(labels)
        for label in labels:
            if not _LABEL.match(label) or label in ("le", "client") or label.startswith("__") \
                    or labels.count(label) > 1:
                raise ValueError(f"{name}: bad or repeated label name {label!r}")
        buckets = tuple(float(b) for b in buckets)
        if kind == "histogram" and (not buckets or any(b >= c for b, c in zip(buckets, buckets[1:]))):
            raise ValueError(f"{name}: buckets must be strictly increasing (and at least one)")
        with self._lock:
            old = self._metrics.get(name)
            if old is not None:
                if (old.kind, old.help, old.label_names, old.buckets) != (kind, help, labels, buckets):
                    raise ValueError(f"metric {name!r} is already defined as a {old.kind} "
                                     f"with other help, labels or buckets")
                return old
            metric = self._metrics[name] = Metric(kind, name, help, labels, buckets)
            return metric

    def empty(self):
        with self._lock:
            return not self._metrics

    def snapshot(self):
        """The METRICS payload of every metric defined (docs/wire-protocol.md)."""
        with self._lock:
            metrics = list(self._metrics.values())
        out = bytearray(struct.pack("<H", len(metrics)))

        def text(s):
            data = s.encode()
            out.extend(struct.pack("<H", len(data)))
            out.extend(data)

        for metric in metrics:
            out.append(_KINDS[metric.kind])
            text(metric.name)
            text(metric.help)
            out.extend(struct.pack("<H", len(metric.label_names)))
            for label in metric.label_names:
                text(label)
            with metric._lock:
                series = list(metric._series.items())
            out.extend(struct.pack("<I", len(series)))
            for key, s in series:
                for value in key:
                    text(value)
                with s._lock:
                    if metric.kind == "histogram":
                        out.extend(struct.pack("<H", len(metric.buckets)))
                        cumulative = 0
                        for bound, n in zip(metric.buckets, s.counts):
                            cumulative += n
                            out.extend(struct.pack("<dQ", bound, cumulative))
                        out.extend(struct.pack("<Qd", s.count, s.sum))
                    else:
                        out.extend(struct.pack("<d", s.value))
        return bytes(out)


_registry = _Registry()

if _host_module is not None:
    counter = _host_module.metrics.counter  # the host's own: served on its /metrics
    gauge = _host_module.metrics.gauge
    histogram = _host_module.metrics.histogram
else:
    def counter(name, help="", labels=()):
        """A counter (only goes up); conventionally named *_total."""
        return _registry.define("counter", name, help, labels)

    def gauge(name, help="", labels=()):
        """A gauge: set(), inc(), dec()."""
        return _registry.define("gauge", name, help, labels)

    def histogram(name, help="", labels=(), buckets=DEFAULT_BUCKETS):
        """A histogram: observe(value); buckets are upper bounds."""
        return _registry.define("histogram", name, help, labels, buckets)
