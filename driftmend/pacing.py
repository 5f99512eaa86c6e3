"""When a quiet pass is worth writing down: on a change, else at a steady pace.

Stage: *record* in docs/ARCHITECTURE.md. A resource in sync is looked at every resync
period; writing its row and a signal sample each time cost three transactions a pass and
3.5 GB of samples a day at 100 resources and a 1 s resync (issue 15). A pass's record is
written when what it says changed (health, message, spec, a state signal such as
``container.running`` or ``container.restarts``), and otherwise once per ``interval``, so
that measurements (CPU, memory) still draw a chart. Pure: no I/O, the caller writes.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

from driftmend.signals import SIGNALS, SignalValue

__all__ = ["Pacer", "state_of"]


def _is_measurement(name: str) -> bool:
    """A signal that moves on its own (CPU, bytes, rates): its changes are paced, not
    written at once. Unknown names count as state: better one write too many."""
    info = SIGNALS.get(name)
    return info is not None and (info.type == "float" or bool(info.unit))


def state_of(signals: Mapping[str, SignalValue]) -> tuple[tuple[str, SignalValue], ...]:
    """The state signals of an observation, comparable between two passes."""
    return tuple(sorted((k, v) for k, v in signals.items() if not _is_measurement(k)))


@dataclass(frozen=True)
class _Written:
    signature: Hashable
    at: float


class Pacer:
    """Remembers, per resource, what was last written and when."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, _Written] = {}

    def due(self, key: str, signature: Hashable, now: float) -> bool:
        """True when ``signature`` differs from the last one written for ``key``, or the
        last write is ``interval`` old (or there was none)."""
        last = self._last.get(key)
        return last is None or last.signature != signature or now - last.at >= self.interval

    def written(self, key: str, signature: Hashable, now: float) -> None:
        """``signature`` was written for ``key`` at ``now`` (only once the write succeeded:
        a failed one is tried again at the next pass)."""
        self._last[key] = _Written(signature, now)

    def forget(self, key: str) -> None:
        """Write ``key``'s next pass whatever it says (removed, or changed by a fix)."""
        self._last.pop(key, None)
