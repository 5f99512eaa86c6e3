"""What the process runtime keeps in ``state.json`` per Container, and words for an exit.

Stage: *act* (the runtime's memory between passes and across controller restarts). The
shared fields come from ``drivers/state_files.py``; the process runtime adds how each
replica's last process ended, and why its last start failed, since no engine remembers
either for it.
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


# Why a start failed, as a bounded word: the ``reason`` label of
# ``driftmend_replica_start_failures_total``, so never free text.
START_REASONS = ("permission-denied", "not-found", "address-in-use", "exited-early", "other")


@dataclass
class StartError:
    """Why the last start of one replica failed: it could not be started, or it exited
    within its first moments (``message`` then ends with its last lines of output).

    Kept until a start of that replica succeeds (``runtime.py`` says when that is).
    """

    reason: str  # one of START_REASONS
    message: str  # one line for people: what failed, with the OS's words
    at: float
    command: str
    user: str | None = None  # the user it was started as, when not the controller's

    def to_json(self) -> dict[str, Any]:
        """The start error as a JSON object."""
        return {
            "reason": self.reason,
            "message": self.message,
            "at": self.at,
            "command": self.command,
            "user": self.user,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> StartError:
        """A start error read leniently: a field that is missing or wrong is defaulted."""
        reason = raw.get("reason")
        user = raw.get("user")
        return cls(
            reason=reason if reason in START_REASONS else "other",
            message=str(raw.get("message", "")),
            at=float(raw.get("at", 0.0)) if isinstance(raw.get("at"), int | float) else 0.0,
            command=str(raw.get("command", "")),
            user=user if isinstance(user, str) else None,
        )


@dataclass
class ProcessState(RuntimeState):
    """What ``state.json`` holds for one Container: the shared fields, the exits seen and
    the start errors not yet cleared by a successful start."""

    exits: dict[int, Exit] = field(default_factory=dict)
    start_errors: dict[int, StartError] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``state.json``."""
        return super().to_json() | {
            "exits": {str(i): e.to_json() for i, e in sorted(self.exits.items())},
            "start_errors": {str(i): e.to_json() for i, e in sorted(self.start_errors.items())},
        }

    @classmethod
    def from_json(cls, key: str, raw: dict[str, Any]) -> ProcessState:
        """Read ``state.json``; a field that is missing or of the wrong type takes its default."""
        return cls(
            key=key,
            **cls.shared_fields(raw),
            exits={i: Exit.from_json(e) for i, e in _indexed(raw.get("exits")).items()},
            start_errors={
                i: StartError.from_json(e) for i, e in _indexed(raw.get("start_errors")).items()
            },
        )


def _indexed(value: object) -> dict[int, dict[str, Any]]:
    """``{"0": {...}}`` as ``{0: {...}}``; entries that are not objects under a number go."""
    if not isinstance(value, dict):
        return {}
    out: dict[int, dict[str, Any]] = {}
    for i, e in value.items():
        if isinstance(e, dict) and str(i).isdigit():
            out[int(i)] = e
    return out


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
