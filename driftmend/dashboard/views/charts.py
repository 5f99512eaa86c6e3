"""Which signals are charted per kind, and chart series thinned for the page.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.dashboard.views.resources import up_state

__all__ = ["CHARTED_KINDS", "ChartSpec", "chart_signals", "charts_for", "downsample"]


@dataclass(frozen=True)
class ChartSpec:
    """One charted signal: its name, a short title and how its values read."""

    signal: str
    title: str
    unit: str  # a key of driftmend.formatting.UNITS: "%", "bytes", "ratio", "s", "/min"


_CHARTS: dict[str, tuple[ChartSpec, ...]] = {
    "Container": (
        ChartSpec("container.cpu_percent", "CPU", "%"),
        ChartSpec("container.memory_bytes", "Memory", "bytes"),
    ),
    "PostgresDatabase": (
        ChartSpec("postgres.connections_used_ratio", "Connections used", "ratio"),
        ChartSpec("postgres.longest_query_seconds", "Longest query", "s"),
    ),
    "RedisCache": (
        ChartSpec("redis.memory_used_ratio", "Memory used", "ratio"),
        ChartSpec("redis.memory_used_bytes", "Memory", "bytes"),
    ),
}
CHARTED_KINDS: tuple[str, ...] = tuple(_CHARTS)
"""The kinds whose tiles carry charts."""
_ERRORS_CHART = ChartSpec("logs.errors_per_minute", "Log errors", "/min")
# Booleans the availability strip reads, per kind.
_UP_SIGNALS: dict[str, tuple[str, ...]] = {
    "Container": ("container.running", "container.healthy"),
    "PostgresDatabase": ("postgres.up",),
    "RedisCache": ("redis.up",),
}


def charts_for(kind: str, *, with_errors: bool = False) -> tuple[ChartSpec, ...]:
    """The key signals charted for a resource of ``kind`` (CPU and memory for a Container)."""
    charts = _CHARTS.get(kind, ())
    return (*charts, _ERRORS_CHART) if with_errors else charts


def chart_signals(kind: str) -> list[str]:
    """Every signal the charts and the availability strip of ``kind`` need."""
    names = [c.signal for c in charts_for(kind, with_errors=True)]
    return names + list(_UP_SIGNALS.get(kind, ()))


def downsample(samples: Sequence[Mapping[str, Any]], kind: str, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` samples, evenly spread, always keeping the newest one and every
    sample where availability changed (an outage of one sample must not vanish from a chart).
    """
    if limit <= 0:
        return []
    if len(samples) <= limit:
        return [dict(s) for s in samples]
    keep: set[int] = {len(samples) - 1}
    previous: str | None = None
    for i, s in enumerate(samples):
        state = up_state(kind, s.get("signals") or {})
        if state != previous:
            keep.add(i)
            if i > 0:
                keep.add(i - 1)  # the last sample of the old state, so the edge is drawn
        previous = state
    budget = max(limit - len(keep), 0)
    if budget:
        stride = len(samples) / budget
        keep.update(min(int(j * stride), len(samples) - 1) for j in range(budget))
    chosen = sorted(keep)
    if len(chosen) > limit:  # more transitions than room: keep them evenly, newest included
        stride = len(chosen) / limit
        chosen = sorted({chosen[min(int(j * stride), len(chosen) - 1)] for j in range(limit)})
        if chosen[-1] != len(samples) - 1:
            chosen[-1] = len(samples) - 1
    return [dict(samples[i]) for i in chosen]
