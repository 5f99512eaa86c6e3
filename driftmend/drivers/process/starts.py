"""Why a replica did not start: recorded, reported, and cleared once a start succeeds.

Stage: *observe*. A start fails in one of two ways: the process cannot be created (the OS
refuses: the command is missing, not executable, out of the user's reach), or it is created
and exits within its first moments (a port already taken, a bad configuration), saying why
on its output. Either way the runtime keeps a ``StartError`` per replica in ``state.json``,
logs one warning line (resource, command, user, error), and tells the start-failure sink
(``driftmend_replica_start_failures_total{kind,reason}``). The observation carries it as
facts and as its ``error``, so the reconcile pass writes it where ``driftmend get`` and the
dashboard show it. A start succeeds once the replica has passed its first health probe or,
without a probe, outlived its first moments (``EARLY_EXIT_WINDOW``).
"""

from __future__ import annotations

import logging
import os
import pwd
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from driftmend.drivers.base import StartFailureSink
from driftmend.drivers.process.state import START_REASONS, Exit, StartError, exit_reason
from driftmend.drivers.process.unit import Replica, Unit
from driftmend.errors import DriverError
from driftmend.redaction import redact

# One logger for the whole runtime, as when it was one module: log settings name it.
log = logging.getLogger("driftmend.drivers.process")

# Without a health probe, a replica that exits sooner than this after it started did not
# start: its last lines of output are why. With a probe, the probe's start-up window counts.
EARLY_EXIT_WINDOW = 10.0
TAIL_BYTES = 4096  # of the log, read back for an early exit's last lines
TAIL_LINES = 2
TAIL_LINE_CHARS = 300
# ``ensure`` tries a replica that could not be created again after 1 s, 2 s, 4 s ... 60 s.
RETRY_BASE, RETRY_CAP = 1.0, 60.0

_IN_USE = re.compile(r"address already in use|EADDRINUSE|could not bind", re.IGNORECASE)
_DENIED = re.compile(r"permission denied|EACCES|operation not permitted", re.IGNORECASE)
_MISSING = re.compile(r"no such file or directory|not found|ENOENT", re.IGNORECASE)


def _no_sink(kind: str, reason: str) -> None:
    """The start-failure sink before one is set: failures are still logged and kept."""


class Starts:
    """Keeps the start errors of every unit; ``clock`` stamps them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sink: StartFailureSink = _no_sink

    def failed(self, unit: Unit, index: int, reason: str, message: str, command: str) -> None:
        """Record that replica ``index`` of ``unit`` did not start, and say so."""
        reason = reason if reason in START_REASONS else "other"
        # Redacted here, where they enter the state file, the store, the log and a prompt:
        # an app that prints its DSN as it dies must not put it on the dashboard.
        message, command = redact(message.removeprefix(f"{unit.key}: ")), redact(command)
        user = _user(unit)
        unit.state.start_errors[index] = StartError(reason, message, self.clock(), command, user)
        try:
            unit.save()
        except DriverError as exc:
            log.warning("%s", exc)
        log.warning(
            "%s: replica %d did not start (command %s, user %s): %s",
            unit.key, index, command, user or _me(), message,
        )  # fmt: skip
        self.sink("Container", reason)

    def cannot_create(
        self, unit: Unit, index: int, reason: str, message: str, command: str
    ) -> None:
        """The process could not be created: record it, and hold ``ensure`` off a while."""
        self.failed(unit, index, reason, message, command)
        n = unit.failed_starts.get(index, 0) + 1
        unit.failed_starts[index] = n
        unit.retry_at[index] = self.clock() + min(RETRY_CAP, RETRY_BASE * 2 ** (n - 1))

    def may_try(self, unit: Unit, index: int) -> bool:
        """Whether ``ensure`` may try to create replica ``index`` now."""
        return self.clock() >= unit.retry_at.get(index, 0.0)

    def exited(self, unit: Unit, r: Replica, code: int | None) -> None:
        """A replica's process ended: within its first moments, its start failed."""
        if r.stopping:
            return
        ran = self.clock() - r.started_at
        if self._started(unit, r, ran):
            self.succeeded(unit, r.index)
            return
        tail = _tail(unit.dir / f"replica-{r.index}.log", r.log_offset)
        how = exit_reason(Exit(code=code, at=self.clock(), planned=False))
        message = f"replica {r.index} {how} {ran:.1f}s after it started"
        message += f": {tail}" if tail else " (it wrote nothing)"
        self.failed(unit, r.index, _classify(tail), message, " ".join(r.argv))

    def check(self, unit: Unit) -> None:
        """Clear the start error of every live replica whose start has succeeded by now."""
        now = self.clock()
        for i, r in unit.replicas.items():
            if (i in unit.state.start_errors or i in unit.failed_starts) and self._started(
                unit, r, now - r.started_at
            ):
                self.succeeded(unit, i)

    def succeeded(self, unit: Unit, index: int) -> None:
        """Replica ``index`` started: forget why an earlier start failed."""
        unit.failed_starts.pop(index, None)
        unit.retry_at.pop(index, None)
        if unit.state.start_errors.pop(index, None) is not None:
            log.info("%s: replica %d started", unit.key, index)
            try:
                unit.save()
            except DriverError as exc:
                log.warning("%s", exc)

    def _started(self, unit: Unit, r: Replica, ran: float) -> bool:
        probe = unit.spec.spec.health if unit.spec is not None else None
        if probe is not None:
            return r.probed_ok or ran >= probe.startup_timeout
        return ran >= EARLY_EXIT_WINDOW


def start_facts(unit: Unit, indexes: range) -> tuple[dict[str, str], str | None]:
    """The facts of the newest start error among ``indexes``, and the observation's error
    when that replica is down: ``("replica 0: <why>")``."""
    found = [(i, unit.state.start_errors[i]) for i in indexes if i in unit.state.start_errors]
    if not found:
        return {}, None
    i, e = max(found, key=lambda f: f[1].at)
    facts = {
        "start_error": e.message,
        "start_error_reason": e.reason,
        "start_error_at": datetime.fromtimestamp(e.at, UTC).isoformat(),
        "start_error_command": e.command,
    }
    if e.user:
        facts["start_error_user"] = e.user
    down = i not in unit.replicas
    message = e.message if e.message.startswith("replica ") else f"replica {i}: {e.message}"
    return facts, f"cannot start: {message}" if down else None


def _classify(tail: str) -> str:
    if _IN_USE.search(tail):
        return "address-in-use"
    if _DENIED.search(tail):
        return "permission-denied"
    if _MISSING.search(tail):
        return "not-found"
    return "exited-early"


def _tail(path: Path, offset: int | None) -> str:
    """The last lines a process wrote to its log since ``offset``, on one line."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(offset or 0, size - TAIL_BYTES)
            f.seek(start)
            raw = f.read(size - start)
    except OSError:
        return ""
    lines = [ln.strip() for ln in raw.decode("utf-8", "replace").splitlines() if ln.strip()]
    return " | ".join(ln[:TAIL_LINE_CHARS] for ln in lines[-TAIL_LINES:])


def _user(unit: Unit) -> str | None:
    """The user the replica runs as, when driftmend switches to it (as root)."""
    spec = unit.spec.spec.process if unit.spec is not None else None
    if spec is not None and spec.user and os.geteuid() == 0:
        return spec.user
    return None


def _me() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
