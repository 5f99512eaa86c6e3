"""``driftmend operator`` as a real process against the real API server of tests/k8s.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.k8s import ApiServer
from tests.services import free_port, poll_until

REPO = Path(__file__).resolve().parents[2]
DRIFTMEND = Path(sys.executable).with_name("driftmend")


@dataclass
class OperatorProcess:
    """One operator replica: its process, state dir, ports and log file."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    http_port: int
    webhook_port: int
    log: Path

    def output(self) -> str:
        """Everything the replica logged so far."""
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal the replica and wait for it to exit; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_operator(
    api: ApiServer,
    tmp: Path,
    *,
    namespaces: Sequence[str],
    identity: str = "replica-a",
    extra: Sequence[str] = (),
    env: dict[str, str] | None = None,
    state_dir: Path | None = None,
) -> OperatorProcess:
    """Start ``driftmend operator`` on ``namespaces`` with its own ports, and its own state
    dir unless ``state_dir`` is given (replicas on one machine share one)."""
    state = state_dir or tmp / f"state-{identity}"
    state.mkdir(parents=True, exist_ok=True)
    http_port, webhook_port = free_port(), free_port()
    log = tmp / f"{identity}.log"
    if log.exists():  # a replica started again under its name: keep what the last one said
        log.rename(log.with_suffix(f".{int(time.time() * 1000)}.log"))
    args = [
        str(DRIFTMEND), "operator",
        *[a for ns in namespaces for a in ("-n", ns)],
        "--identity", identity,
        "--webhook-addr", "127.0.0.1", "--webhook-port", str(webhook_port),
        "--http-port", str(http_port), "--state-dir", str(state),
        *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(api.kubeconfig), **(env or {})},
        )
    return OperatorProcess(proc, state, http_port, webhook_port, log)


def wait_for_log(op: OperatorProcess, text: str, deadline_s: float = 30) -> None:
    """Wait until the replica logs ``text``; fail with its log if it exits or never does."""

    def seen() -> bool:
        if op.proc.poll() is not None:
            raise AssertionError(f"the operator exited {op.proc.returncode}:\n{op.output()}")
        return text in op.output()

    try:
        poll_until(seen, deadline_s=deadline_s, what=f"the operator to log {text!r}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{op.output()[-4000:]}") from exc
