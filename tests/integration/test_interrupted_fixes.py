"""A fix in flight when the controller stops is closed honestly: ``interrupted`` at once on a
SIGTERM (or at the next start after a crash), then recovered or abandoned by its resource's
first pass after the restart. Real ``driftmend run`` subprocesses on a tiny web app."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftmend.store import FixSummary, Store
from tests.integration.controllers import API, Stack, make_stack
from tests.services import free_port, poll_until

pytestmark = pytest.mark.integration

# /healthz answers 500 while the file $SICK exists, 200 otherwise.
WEB = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(500 if os.path.exists(os.environ['SICK']) else 200)\n"
    "        self.end_headers(); self.wfile.write(b'x')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)


def _docs(port: int, sick: Path) -> list[dict[str, Any]]:
    web = {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "process": {"command": [sys.executable, "-c", WEB], "env": {"SICK": str(sick)}},
            "port": port,
            "portEnv": "PORT",
            "health": {
                "http": {"path": "/healthz"},
                "interval": "200ms",
                "timeout": "500ms",
                "failureThreshold": 2,
                "startupTimeout": "1s",
            },
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
def sick(tmp_path: Path) -> Path:
    return tmp_path / "sick"


@pytest.fixture
def stack(tmp_path: Path, sick: Path) -> Iterator[Stack]:
    yield from make_stack(tmp_path, _docs(free_port(), sick))


def _fixes(stack: Stack) -> list[FixSummary]:
    with Store(stack.state / "driftmend.db") as store:
        return store.fix_records.fixes(key="Container/web")


def _fix_where(stack: Stack, what: str, **want: Any) -> FixSummary:
    def found() -> FixSummary | None:
        for f in _fixes(stack):
            if all(getattr(f, k) == v for k, v in want.items()):
                return f
        return None

    return poll_until(found, deadline_s=40, what=what)


def test_fixes_cut_short_are_closed_as_recovered_or_abandoned(stack: Stack, sick: Path) -> None:
    first = stack.start()
    first.wait_for("running: 1 resources")
    stack_pid = poll_until(lambda: stack.replica_pid("web"), deadline_s=20, what="web started")
    assert stack_pid
    sick.touch()
    fix = _fix_where(stack, "a fix in flight", status="running", rule="restart-when-unhealthy")

    # A clean SIGTERM closes the fix in flight at once, as interrupted by the shutdown.
    assert first.stop() == 0
    closed = next(f for f in _fixes(stack) if f.id == fix.id)
    assert closed.status == "interrupted" and closed.outcome is None
    assert "shut down while this fix ran" in closed.message
    assert closed.verified is None  # not judged yet: nobody has looked since

    # Healed while no controller ran: the next controller's first pass says it recovered.
    sick.unlink()
    second = stack.start()
    judged = _fix_where(stack, "the fix judged", id=fix.id, verified=True)
    assert judged.status == "interrupted" and judged.outcome is None
    assert "recovered: in sync at the first pass after the restart" in judged.message
    assert judged.time_to_recover is None  # nobody saw when

    # A crash (SIGKILL) mid-fix, and a resource still down after it: abandoned, and the new
    # controller's own fix takes over.
    sick.touch()
    fix2 = _fix_where(stack, "a second fix", status="running", rule="restart-when-unhealthy")
    assert second.stop(signal.SIGKILL) == -signal.SIGKILL
    assert next(f for f in _fixes(stack) if f.id == fix2.id).status == "running"
    sick.unlink()
    pid = stack.replica_pid("web")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    third = stack.start()
    judged2 = _fix_where(stack, "the crashed fix judged", id=fix2.id, verified=False)
    assert judged2.status == "interrupted"
    assert "crashed or killed" in judged2.message and "abandoned: still drifting" in judged2.message
    newer = _fix_where(stack, "the fix that took over", rule="restart-on-exit", status="done")
    assert newer.id > fix2.id and f"fix {newer.id} took over" in judged2.message
    assert third.stop() == 0
    assert stack.command("down").returncode == 0
