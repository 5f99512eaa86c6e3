"""What the process runtime keeps in ``state.json`` per Container, and words for an exit.

Stage: *act* (the runtime's memory between passes and across controller restarts). The
shared fields come from ``drivers/state_files.py``; the process runtime adds how each
replica's last process ended, since no engine remembers that for it.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Any

from driftmend.drivers.state_files import RuntimeState


@dataclass
class Exit:
    """How one replica's last process ended."""

    code: int | None  # None when unknown (an adopted process is not our child)
    at: float
    planned: bool  # driftmend stopped it (stop, restart, scale down): not a crash
    oom: bool = False

    def to_json(self) -> dict[str, Any]:
        """The exit as a JSON object."""
        return {"code": self.code, "at": self.at, "planned": self.planned, "oom": self.oom}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Exit:
        """An exit read leniently: a field that is missing or of the wrong type is defaulted."""
        code = raw.get("code")
        return cls(
            code=int(code) if isinstance(code, int) else None,
            at=float(raw.get("at", 0.0)),
            planned=bool(raw.get("planned", False)),
            oom=bool(raw.get("oom", False)),
        )


@dataclass
class ProcessState(RuntimeState):
    """What ``state.json`` holds for one Container: the shared fields, and the exits seen."""

    exits: dict[int, Exit] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``state.json``."""
        return super().to_json() | {
            "exits": {str(i): e.to_json() for i, e in sorted(self.exits.items())},
        }

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> ProcessState:
        """Read ``state.json``; a field that is missing or of the wrong type takes its default."""
        exits = raw.get("exits")
        return cls(
            key=key,
            **cls.shared_fields(raw),
            exits={int(i): Exit.from_json(e) for i, e in exits.items() if isinstance(e, dict)}
            if isinstance(exits, dict)
            else {},
        )


def exit_reason(e: Exit) -> str:
    """Words for how a process ended, for facts, stats and the LLM prompt."""
    who = "stopped by driftmend" if e.planned else "exited"
    if e.code is None:
        return f"{who} (exit code unknown: the process was adopted, not our child)"
    if e.code < 0:
        try:
            name = signal.Signals(-e.code).name
        except ValueError:
            name = f"signal {-e.code}"
        if e.code == -signal.SIGKILL and not e.planned:
            return f"killed by {name}, not by driftmend (the OOM killer or an operator)"
        return f"{who} by {name}"
    return f"{who} with code {e.code}"
