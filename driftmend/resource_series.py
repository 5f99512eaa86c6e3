"""The per-resource gauges, kept as exposition text that changes only when a value does.

Stage: *outputs* (``/metrics``). ``driftmend_resource_health{key,kind,health}`` and
``driftmend_resource_signal{key,signal}`` are 15 series a resource: 15,000 at 1,000
resources. As prometheus_client labelled gauges they cost about 80 µs a pass to set (a lock
and a child lookup per series) and about 100 ms a scrape to format (issue 15). Here a pass
compares its values with the last ones and, only when they differ, renders that resource's
lines; ``render`` (``metrics.render``) joins the kept text.

``collect`` still yields both families the ordinary way, so ``registry.get_sample_value``
and any other exporter of the registry see them; only ``render`` takes the short cut,
telling ``collect`` through ``_TEXT_WANTED`` to stand aside and hand over its text.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from driftmend.model import Health
from driftmend.signals import SignalValue

__all__ = ["HEALTH", "SIGNAL", "ResourceSeries", "wanting_text"]

HEALTH = "driftmend_resource_health"
SIGNAL = "driftmend_resource_signal"
_HEALTH_HELP = "1 for the current health of a resource, 0 for the other states (a state set)."
_SIGNAL_HELP = "Last observed value of a numeric or boolean signal."

# Set by ``wanting_text`` around one exposition: the collectors that stood aside join it.
_TEXT_WANTED: contextvars.ContextVar[list[ResourceSeries] | None] = contextvars.ContextVar(
    "driftmend_resource_series_text", default=None
)


def _label(value: str) -> str:
    """A label value escaped as the text format wants it."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """A sample value as prometheus_client writes it (``1.8e+06``, ``NaN``, ``+Inf``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class ResourceSeries(Collector):
    """Health and signals of every resource, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._health: dict[str, tuple[str, Health]] = {}
        self._signals: dict[str, dict[str, float]] = {}
        self._health_text: dict[str, str] = {}
        self._signal_text: dict[str, str] = {}

    def set_health(self, key: str, kind: str, health: Health) -> None:
        """1 for ``health`` and 0 for every other state of ``key``."""
        if self._health.get(key) == (kind, health):
            return
        k, c = _label(key), _label(kind)
        text = "".join(
            f'{HEALTH}{{key="{k}",kind="{c}",health="{state!s}"}} {1.0 if state == health else 0.0}\n'
            for state in Health
        )
        with self._lock:
            self._health[key] = (kind, health)
            self._health_text[key] = text

    def set_signals(self, key: str, signals: Mapping[str, SignalValue]) -> None:
        """The numeric and boolean signals of ``key`` (bools as 0/1); one that is None or
        missing has no series rather than a stale value: a flat line not being measured
        would lie on a dashboard."""
        values = {
            name: float(value)
            for name, value in signals.items()
            if isinstance(value, bool | int | float)
        }
        if self._signals.get(key) == values:
            return
        k = _label(key)
        text = "".join(
            f'{SIGNAL}{{key="{k}",signal="{_label(name)}"}} {_number(value)}\n'
            for name, value in values.items()
        )
        with self._lock:
            self._signals[key] = values
            self._signal_text[key] = text

    def forget(self, key: str) -> None:
        """Every series of ``key`` goes (the resource was deleted)."""
        with self._lock:
            for kept in (self._health, self._signals, self._health_text, self._signal_text):
                kept.pop(key, None)

    def text(self) -> str:
        """Both families in the text exposition format."""
        with self._lock:
            health, signals = list(self._health_text.values()), list(self._signal_text.values())
        return "".join([
            f"# HELP {HEALTH} {_HEALTH_HELP}\n# TYPE {HEALTH} gauge\n", *health,
            f"# HELP {SIGNAL} {_SIGNAL_HELP}\n# TYPE {SIGNAL} gauge\n", *signals,
        ])  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        """Both families, the ordinary way; nothing while ``wanting_text`` is in force."""
        wanted = _TEXT_WANTED.get()
        if wanted is not None:
            wanted.append(self)
            return
        with self._lock:
            health, signals = dict(self._health), {k: dict(v) for k, v in self._signals.items()}
        family = GaugeMetricFamily(HEALTH, _HEALTH_HELP, labels=["key", "kind", "health"])
        for key, (kind, current) in health.items():
            for state in Health:
                family.add_metric([key, kind, str(state)], 1.0 if state == current else 0.0)
        yield family
        family = GaugeMetricFamily(SIGNAL, _SIGNAL_HELP, labels=["key", "signal"])
        for key, values in signals.items():
            for name, value in values.items():
                family.add_metric([key, name], value)
        yield family


class wanting_text:
    """Within it, every ``ResourceSeries`` collected stands aside and joins ``series``."""

    def __init__(self) -> None:
        self.series: list[ResourceSeries] = []
        self._token: contextvars.Token[list[ResourceSeries] | None] | None = None

    def __enter__(self) -> wanting_text:
        self._token = _TEXT_WANTED.set(self.series)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _TEXT_WANTED.reset(self._token)
