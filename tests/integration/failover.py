"""Two operator replicas, one Lease, one PostgreSQL store, and a fix in flight when the leader dies.

Shared by ``test_operator_failover.py`` (one failover, asserted) and
``bench/operator_failover.py`` (many, measured). The replicas are real ``driftmend operator``
processes on the real API server; they share a state directory (one machine: its pid files
name the supervised process, and the new leader takes its lock once the kernel has released
the dead one's) and a PostgreSQL store (the fix records and their step journal).

The resource is ``counting_app``: a step that ran twice shows as an extra start, whatever
the records say. While it is sick a restart's verification waits: the fix stays in flight
long enough to kill the leader in the middle of it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from driftmend.store import Fix, FixSummary, Store
from tests.integration import counting_app
from tests.integration.operator_process import OperatorProcess, start_operator, wait_for_log
from tests.k8s import ApiServer
from tests.services import free_port, poll_until


def _manifests(namespace: str, port: int, files: Path, mark: str) -> list[dict[str, Any]]:
    api = "driftmend.dev/v1alpha1"
    web = {
        "apiVersion": api,
        "kind": "Container",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {
            "runtime": "process",
            "process": {
                "command": [sys.executable, "-c", counting_app.SCRIPT, mark],
                "env": counting_app.env(files),
            },
            "port": port,
            "portEnv": "PORT",
            "health": counting_app.HEALTH,
        },
    }
    policy = {
        "apiVersion": api,
        "kind": "HealingPolicy",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "web"}},
            "rules": [
                {
                    "name": "restart-when-unhealthy",
                    "when": [{"signal": "container.healthy", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "5m", "interval": "100ms"},
                    "attempts": {"max": 100, "window": "1h"},
                },
            ],
        },
    }
    return [web, policy]


@dataclass
class Failover:
    """What one failover took and did."""

    fix_id: int
    lead_s: float  # kill -9 of the leader -> the standby holds the Lease
    resume_s: float  # kill -9 -> the standby has taken the fix up again
    steps: list[tuple[int, str, str]]  # the fix's journal: (index, tool, status)
    starts: int  # app starts during this failover's fix (1: the restart ran once)
    outcome: str


@dataclass
class FailoverRig:
    """The namespace, the replicas and the app of one failover scenario."""

    api: ApiServer
    root: Path
    dsn: str
    namespace: str = "failover"
    replicas: dict[str, OperatorProcess] = field(default_factory=dict)
    # An argument only this rig's app has: what ``stop`` kills it by.
    mark: str = field(default_factory=lambda: f"driftmend-failover-{uuid.uuid4().hex[:12]}")

    @property
    def key(self) -> str:
        """The Container's resource key."""
        return f"Container/{self.namespace}/web"

    def setup(self) -> None:
        """The namespace and the custom resources (the operator is not running yet)."""
        self.api.kubectl("create", "namespace", self.namespace, check=False)
        docs = _manifests(self.namespace, free_port(), self.root, self.mark)
        self.api.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def start(self, identity: str) -> OperatorProcess:
        """Start (or start again) the replica ``identity``."""
        op = start_operator(
            self.api,
            self.root,
            namespaces=[self.namespace],
            identity=identity,
            extra=["--no-webhook", "--lease-namespace", self.namespace],
            env={"DRIFTMEND_STORE_DSN": self.dsn},
            state_dir=self.root / "state",
        )
        self.replicas[identity] = op
        return op

    def holder(self) -> str | None:
        """The Lease's holder now."""
        done = self.api.kubectl(
            "get", "lease", "driftmend-leader", "-n", self.namespace,
            "-o", "jsonpath={.spec.holderIdentity}", check=False,
        )  # fmt: skip
        return done.stdout.strip() or None if done.returncode == 0 else None

    def leader(self, deadline_s: float = 30) -> OperatorProcess:
        """The replica that leads and acts (waits for one)."""
        who = poll_until(
            lambda: (h := self.holder()) in self.replicas and h, deadline_s=deadline_s,
            what="a replica to hold the Lease",
        )  # fmt: skip
        op = self.replicas[str(who)]
        wait_for_log(op, "acting:", deadline_s)
        return op

    def starts(self) -> int:
        """How many times the app has started."""
        return counting_app.starts(self.root)

    def fixes(self) -> list[FixSummary]:
        """The Container's fixes, newest first."""
        with Store(dsn=self.dsn) as store:
            return store.fix_records.fixes(key=self.key)

    def fix(self, fix_id: int) -> Fix:
        """One fix with its step journal."""
        with Store(dsn=self.dsn) as store:
            found = store.fix_records.fix(fix_id)
        assert found is not None
        return found

    def failover(self, deadline_s: float = 60) -> Failover:
        """Make the app sick, kill -9 the leader while its restart verifies, let the standby
        resume, make the app well: what it took, from the store and the app's own count."""
        leader = self.leader()
        known = {f.id for f in self.fixes()}
        before = self.starts()
        (self.root / "sick").touch()
        fix = poll_until(
            lambda: next((f for f in self.fixes() if f.id not in known and f.status == "running"), None),
            deadline_s=deadline_s, what="a fix in flight",
        )  # fmt: skip
        poll_until(
            lambda: [s.status for s in self.fix(fix.id).steps] == ["ok"],
            deadline_s=deadline_s, what="the restart step done, verification waiting",
        )  # fmt: skip
        leader.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        leader.proc.wait(timeout=10)
        dead = next(k for k, v in self.replicas.items() if v is leader)
        poll_until(lambda: self.holder() not in (None, dead), deadline_s=deadline_s,
                   what="the standby to take the Lease")  # fmt: skip
        lead_s = time.monotonic() - killed
        poll_until(lambda: self.fix(fix.id).resumed_at is not None, deadline_s=deadline_s,
                   what=f"fix {fix.id} resumed")  # fmt: skip
        resume_s = time.monotonic() - killed
        (self.root / "sick").unlink()
        done = poll_until(
            lambda: (f := self.fix(fix.id)).status == "done" and f,
            deadline_s=deadline_s, what=f"fix {fix.id} closed",
        )  # fmt: skip
        self.start(dead)  # back as the standby
        return Failover(
            fix_id=fix.id,
            lead_s=lead_s,
            resume_s=resume_s,
            steps=[(s.index, s.tool, s.status) for s in done.steps],
            starts=self.starts() - before,
            outcome=str(done.outcome),
        )

    def stop(self) -> None:
        """Stop every replica and the app."""
        for op in self.replicas.values():
            if op.proc.poll() is None:
                op.stop(timeout=20)
        subprocess.run(["pkill", "-KILL", "-f", self.mark], check=False)
