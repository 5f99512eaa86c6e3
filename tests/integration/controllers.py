"""Real ``driftmend`` commands as subprocesses on a temporary state directory, for tests.

The ownership of a state directory, ``driftmend down`` and shutdown are properties of the
``driftmend`` process itself (its lock, its signal handling), so these tests run the real
command, never an in-process controller.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tests.integration.harness import REPO
from tests.services import free_port, poll_until

API = "driftmend.dev/v1alpha1"
DRIFTMEND = (sys.executable, "-m", "driftmend.cli")


def sleeper(name: str, replicas: int = 1) -> dict[str, Any]:
    """A Container of ``sleep`` processes: the smallest thing to supervise."""
    return {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": name, "labels": {"app": "sleepers"}},
        "spec": {
            "replicas": replicas,
            "process": {"command": ["sleep", "3600"], "stopTimeout": "2s"},
        },
    }


def restart_on_exit(selector: str = "sleepers") -> dict[str, Any]:
    """A policy that restarts a Container of ``app: selector`` whose replica exited."""
    return {
        "apiVersion": API,
        "kind": "HealingPolicy",
        "metadata": {"name": f"restart-{selector}"},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": selector}},
            "rules": [
                {
                    "name": "restart-on-exit",
                    "when": [{"signal": "container.running", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "10s", "interval": "100ms"},
                    "attempts": {"max": 50, "window": "5m"},
                }
            ],
        },
    }


@dataclass
class Controller:
    """One ``driftmend run`` subprocess; its output goes to ``log``."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def pid(self) -> int:
        """The controller's pid."""
        return self.proc.pid

    def output(self) -> str:
        """Everything the controller printed so far."""
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, deadline_s: float = 30.0) -> None:
        """Block until ``text`` appears in the output (or the process ended)."""
        poll_until(
            lambda: text in self.output() or self.proc.poll() is not None,
            deadline_s=deadline_s,
            what=f"{text!r} in the controller's output",
        )
        assert text in self.output(), self.output()

    def stop(self, sig: signal.Signals = signal.SIGTERM, deadline_s: float = 20.0) -> int:
        """Signal the controller and wait for it to end; returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(deadline_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"the controller ignored {sig.name}:\n{self.output()}") from None


@dataclass
class Stack:
    """Specs and a state directory of one test, and the controllers it started."""

    root: Path
    specs: Path
    state: Path
    controllers: list[Controller] = field(default_factory=list)

    def command(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``driftmend ARGS -f specs --state-dir state`` to its end."""
        return subprocess.run(
            [*DRIFTMEND, *args, "-f", str(self.specs), "--state-dir", str(self.state)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *extra: str) -> Controller:
        """Start ``driftmend run`` on this stack (on a free HTTP port); does not wait."""
        port = free_port()
        log = self.root / f"controller-{len(self.controllers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    *(*DRIFTMEND, "run", "-f", str(self.specs), "--state-dir", str(self.state)),
                    *("--http-port", str(port), "--no-watch", "--resync-period", "1", *extra),
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        controller = Controller(proc, log, port)
        self.controllers.append(controller)
        return controller

    def pid_file(self, name: str, replica: int = 0) -> Path:
        """The pid file of a Container's replica (namespace ``default``)."""
        return self.state / "containers" / f"default.{name}" / f"replica-{replica}.pid"

    def replica_pid(self, name: str, replica: int = 0) -> int | None:
        """The pid recorded for a replica, or None without a pid file."""
        try:
            return int(json.loads(self.pid_file(name, replica).read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def processes(self) -> list[psutil.Process]:
        """Every live process started for this stack (its environment names the state dir)."""
        root = str(self.state.resolve())
        found = []
        for proc in psutil.process_iter():
            try:
                value = proc.environ().get("DRIFTMEND_STATE_DIR", "")
                if value.startswith(root) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def cleanup(self) -> None:
        """Stop the controllers, then every process of the stack, whatever the test left."""
        for c in self.controllers:
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait(10)
        for proc in self.processes():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()


def make_stack(root: Path, docs: list[dict[str, Any]]) -> Iterator[Stack]:
    """A ``Stack`` of ``docs`` under ``root``; everything it started is killed at the end."""
    import yaml

    specs = root / "specs.yaml"
    specs.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    stack = Stack(root, specs, root / "state")
    try:
        yield stack
    finally:
        stack.cleanup()
