"""A fix in flight when the controller stops is neither lost nor run twice: ``interrupted``
at once on a SIGTERM (left ``running`` by a kill -9), then resumed by the next controller on
the same fix row, from its step journal: finished steps are not run again, nor is a step
whose outcome is unknown. Real ``driftmend run`` subprocesses on a tiny web app that counts
its own starts, so a restart run twice would show."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftmend.model import Outcome
from driftmend.store import Fix, FixSummary, Store
from tests.integration import counting_app
from tests.integration.controllers import API, Controller, Stack, make_stack
from tests.services import free_port, poll_until

pytestmark = pytest.mark.integration


def _docs(port: int, files: Path) -> list[dict[str, Any]]:
    web = {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "process": {
                "command": [sys.executable, "-c", counting_app.SCRIPT],
                "env": counting_app.env(files),
                "stopTimeout": "4s",
            },
            "port": port,
            "portEnv": "PORT",
            "health": counting_app.HEALTH,
        },
    }
    policy = {
        "apiVersion": API,
        "kind": "HealingPolicy",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "web"}},
            "rules": [
                {
                    "name": "restart-on-exit",
                    "when": [{"signal": "container.running", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "10s", "interval": "100ms"},
                },
                {
                    # A restart of a sick app never verifies: the fix stays in flight.
                    "name": "restart-when-unhealthy",
                    "when": [{"signal": "container.healthy", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "5m", "interval": "100ms"},
                },
            ],
        },
    }
    return [web, policy]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from make_stack(tmp_path, _docs(free_port(), tmp_path))


def _starts(stack: Stack) -> int:
    """How many times the web app has started: once, plus one per restart that ran."""
    return counting_app.starts(stack.root)


def _fixes(stack: Stack) -> list[FixSummary]:
    with Store(stack.state / "driftmend.db") as store:
        return store.fix_records.fixes(key="Container/web")


def _fix(stack: Stack, fix_id: int) -> Fix:
    with Store(stack.state / "driftmend.db") as store:
        fix = store.fix_records.fix(fix_id)
    assert fix is not None
    return fix


def _fix_where(stack: Stack, what: str, **want: Any) -> FixSummary:
    def found() -> FixSummary | None:
        for f in _fixes(stack):
            if all(getattr(f, k) == v for k, v in want.items()):
                return f
        return None

    return poll_until(found, deadline_s=40, what=what)


def _started(stack: Stack) -> Controller:
    controller = stack.start()
    controller.wait_for("running: 1 resources")
    return controller


def _resumed(stack: Stack, fix_id: int) -> Fix:
    """The fix once a controller has taken it up again (running, ``resumed_at`` set)."""

    def found() -> Fix | None:
        fix = _fix(stack, fix_id)
        return fix if fix.resumed_at is not None else None

    return poll_until(found, deadline_s=40, what=f"fix {fix_id} resumed")


RESUMED = "resumed after the controller that began it stopped"


def test_a_fix_killed_while_it_verified_is_resumed_and_verified_not_rerun(stack: Stack) -> None:
    first = _started(stack)
    poll_until(lambda: _starts(stack) == 1, deadline_s=20, what="web started")
    (stack.root / "sick").touch()
    fix = _fix_where(stack, "a fix in flight", status="running", rule="restart-when-unhealthy")
    # Its restart has run (the app started again) and it now waits for a health that the
    # sick app never gives: kill -9 the controller there.
    poll_until(lambda: [s.status for s in _fix(stack, fix.id).steps] == ["ok"], deadline_s=20,
               what="the restart step finished")  # fmt: skip
    assert _starts(stack) == 2
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert _fix(stack, fix.id).status == "running"

    second = _started(stack)
    resumed = _resumed(stack, fix.id)
    assert resumed.status == "running" and resumed.outcome is None  # verifying, still sick
    (stack.root / "sick").unlink()
    done = _fix_where(stack, "the resumed fix closed", id=fix.id, status="done")
    assert (done.outcome, done.verified) == (Outcome.FIXED, True)
    assert done.message == f"{RESUMED} (crashed or killed): drift cleared"
    assert done.time_to_recover is not None and done.resumed_at is not None
    steps = _fix(stack, fix.id).steps
    assert [(s.index, s.tool, s.status) for s in steps] == [(0, "container_restart", "ok")]
    # The restart ran once in all: one start for it, and no other fix of the resource.
    assert _starts(stack) == 2
    assert [f.id for f in _fixes(stack)] == [fix.id]
    assert "resuming fix" in second.output()
    assert second.stop() == 0
    assert stack.command("down").returncode == 0


def test_a_step_killed_while_it_ran_is_not_run_again(stack: Stack) -> None:
    first = _started(stack)
    poll_until(lambda: _starts(stack) == 1, deadline_s=20, what="web started")
    (stack.root / "slow").touch()  # its restart now waits out the 4s stop timeout
    (stack.root / "sick").touch()
    fix = _fix_where(stack, "a fix in flight", status="running", rule="restart-when-unhealthy")
    poll_until(lambda: [s.status for s in _fix(stack, fix.id).steps] == ["started"],
               deadline_s=20, what="the restart step started")  # fmt: skip
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-step: SIGTERM sent, no SIGKILL
    assert _fix(stack, fix.id).steps[0].status == "started"

    second = _started(stack)
    resumed = _resumed(stack, fix.id)
    assert resumed.steps[0].status == "unknown" and "outcome unknown" in (
        resumed.steps[0].error or ""
    )
    (stack.root / "sick").unlink()  # the old replica, never killed, gets well
    done = _fix_where(stack, "the resumed fix closed", id=fix.id, status="done")
    assert (done.outcome, done.verified) == (Outcome.FIXED, True)
    assert done.message == (
        f"{RESUMED} (crashed or killed); the outcome of step 0 (container_restart) is unknown, "
        "so no step was run again: drift cleared"
    )
    # Nobody restarted the app: the dead controller's restart never got to start it, and the
    # resume did not run that step again.
    assert _starts(stack) == 1
    assert [f.id for f in _fixes(stack)] == [fix.id]
    (stack.root / "slow").unlink()
    assert second.stop() == 0
    assert stack.command("down").returncode == 0


def test_a_fix_a_shutdown_interrupted_says_so_then_is_resumed(stack: Stack) -> None:
    first = _started(stack)
    poll_until(lambda: _starts(stack) == 1, deadline_s=20, what="web started")
    (stack.root / "sick").touch()
    fix = _fix_where(stack, "a fix in flight", status="running", rule="restart-when-unhealthy")
    poll_until(lambda: [s.status for s in _fix(stack, fix.id).steps] == ["ok"], deadline_s=20,
               what="the restart step finished")  # fmt: skip

    # A clean SIGTERM closes the fix in flight at once, as interrupted by the shutdown.
    assert first.stop() == 0
    closed = _fix(stack, fix.id)
    assert closed.status == "interrupted" and closed.outcome is None
    assert "shut down while this fix ran" in closed.message
    assert closed.verified is None  # not closed for good: the next controller resumes it

    # Healed while no controller ran: the resume verifies it at once, on the same row.
    (stack.root / "sick").unlink()
    second = _started(stack)
    done = _fix_where(stack, "the resumed fix closed", id=fix.id, status="done")
    assert (done.outcome, done.verified) == (Outcome.FIXED, True)
    assert done.message == f"{RESUMED} (shut down): drift cleared"
    assert _starts(stack) == 2 and [f.id for f in _fixes(stack)] == [fix.id]
    assert second.stop() == 0
    assert stack.command("down").returncode == 0
