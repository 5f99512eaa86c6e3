"""MTTR on Docker: driftmend's crash healing side by side with Docker's ``restart: always``.

Outside the loop: a benchmark. The crash scenario (SIGKILL of a web container's process from
the host, as the OOM killer or a fatal signal would end it) runs N times against each healer,
on the same image, command and port. Not ``docker kill``: Docker counts that as a manual stop
and its restart policy leaves such a container alone.

- **driftmend**: a controller built by ``build_controller`` (the real composition root) with
  the Docker runtime; the container has no restart policy, and the policy ``app-crash``
  restarts it (``container_restart``) and verifies it with the HTTP health probe.
- **docker**: the same container with ``RestartPolicy: always`` and no controller.

Per trial, from the kill:

- ``detect``: until the healer acted: driftmend's fix was planned (``detected_at`` in the
  store); Docker's new run started (its ``StartedAt``: Docker has no separate detect step).
- ``recover``: until the app answered HTTP 200 again, seen by one poller every 10 ms, the same
  for both healers.
- ``verified`` (driftmend only): until the controller saw the fix hold (health probe passed).

Docker's restart delay starts at 100 ms and doubles while a container keeps dying within
10 s of its start, so the baseline's kills are spaced ``--gap`` seconds apart (default 11 s)
to measure isolated crashes, as driftmend's are. Needs a Docker engine with the
``local/hostbase`` image (``scripts/docker-engine.sh`` provides both, as root on Debian).

    .venv/bin/python -m bench.mttr_docker --trials 20
    .venv/bin/python -m bench.mttr_docker --trials 20 --json   # one JSON object

``run(trials, gap)`` returns the same figures for bench/mttr.py to print or record.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]  # docker-py ships no type information
import httpx2
import yaml
from prometheus_client import CollectorRegistry

from driftmend.app import build_controller
from driftmend.drivers.docker import parse_time_ns
from driftmend.settings import Settings
from driftmend.spec import load_paths

IMAGE = "local/hostbase"
MOUNTS = ["/usr:/usr:ro", "/lib:/lib:ro", "/lib64:/lib64:ro", "/bin:/bin:ro", "/etc:/etc:ro"]
LABEL = "driftmend.bench"
WEB = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\n"
    "    def log_message(self, *a): pass\n"
    "http.server.ThreadingHTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()\n"
)


@dataclass
class Series:
    """The trials of one healer, in seconds."""

    healer: str
    detect: list[float] = field(default_factory=list)
    recover: list[float] = field(default_factory=list)
    verified: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"healer": self.healer, "trials": len(self.recover)}
        for name in ("detect", "recover", "verified"):
            values: list[float] = getattr(self, name)
            if values:
                out[name] = {"median": _median(values), "p95": _p95(values)}
        return out


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3)


def _p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 3)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _crash(api: Any, name: str) -> float:
    """SIGKILL the container's process (its PID 1) from the host; returns when it was sent."""
    pid = int(api.inspect_container(name)["State"]["Pid"])
    if not pid:
        raise RuntimeError(f"{name} is not running")
    t0 = time.time()
    os.kill(pid, signal.SIGKILL)
    return t0


async def _until_answers(client: httpx2.AsyncClient, port: int, deadline: float = 30.0) -> float:
    """Poll every 10 ms until the app answers 200; returns the time it did."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(httpx2.HTTPError):
            if (await client.get(f"http://127.0.0.1:{port}/")).status_code == 200:
                return time.time()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port} within {deadline}s")


async def driftmend_series(api: Any, trials: int, settle: float) -> Series:
    """Kill the container ``trials`` times; driftmend heals each crash."""
    series = Series("driftmend")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="driftmend-bench-") as tmp:
        specs = Path(tmp) / "specs.yaml"
        specs.write_text(yaml.safe_dump_all(_specs(port), sort_keys=False))
        result = load_paths([specs])
        assert not result.errors, [str(e) for e in result.errors]
        settings = Settings(state_dir=Path(tmp) / "state", resync_period=30.0)
        controller = build_controller(settings, CollectorRegistry())
        controller.apply(result)
        await controller.start()
        name = "driftmend-default.web-0"
        try:
            async with httpx2.AsyncClient(trust_env=False, timeout=0.5) as client:
                await _until_answers(client, port)
                for _ in range(trials):
                    await asyncio.sleep(settle)
                    last = controller.store.fix_records.last_fix("Container/web")
                    t0 = _crash(api, name)
                    await asyncio.sleep(0.05)  # let the kill land before polling
                    recovered = await _until_answers(client, port)
                    fix = await _finished_fix(controller, last["id"] if last else 0)
                    series.detect.append(fix["detected_at"] - t0)
                    series.recover.append(recovered - t0)
                    if fix["recovered_at"] is not None:
                        series.verified.append(fix["recovered_at"] - t0)
        finally:
            await controller.stop()
            controller.store.close()
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(name, force=True)
    return series


async def _finished_fix(controller: Any, after: int, deadline: float = 30.0) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        fix = controller.store.fix_records.last_fix("Container/web")
        if fix and fix["id"] > after and fix["status"] == "done":
            if fix["outcome"] != "fixed":
                raise RuntimeError(f"the fix failed: {fix['message']}")
            return dict(fix)
        await asyncio.sleep(0.02)
    raise TimeoutError("driftmend did not finish a fix in time")


async def docker_series(api: Any, trials: int, gap: float) -> Series:
    """The same container with Docker's ``restart: always``, killed ``trials`` times."""
    series = Series("docker restart: always")
    port = _free_port()
    name = f"driftmend-bench-always-{port}"
    created = api.create_container(
        IMAGE,
        ["python3", "-c", WEB],
        name=name,
        environment={"PORT": str(port)},
        labels={LABEL: "1"},
        host_config=api.create_host_config(
            network_mode="host", binds=MOUNTS, restart_policy={"Name": "always"}
        ),
    )
    api.start(created["Id"])
    try:
        async with httpx2.AsyncClient(trust_env=False, timeout=0.5) as client:
            await _until_answers(client, port)
            for _ in range(trials):
                await asyncio.sleep(gap)
                before = api.inspect_container(name)["State"]["StartedAt"]
                t0 = _crash(api, name)
                await asyncio.sleep(0.05)
                recovered = await _until_answers(client, port)
                state = api.inspect_container(name)["State"]
                started = parse_time_ns(state["StartedAt"])
                if state["StartedAt"] == before or started is None:
                    raise RuntimeError("Docker did not restart the container")
                series.detect.append(started / 1e9 - t0)
                series.recover.append(recovered - t0)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(name, force=True)
    return series


def _specs(port: int) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "Container",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "runtime": "docker",
                "docker": {
                    "image": IMAGE,
                    "command": ["python3", "-c", WEB],
                    "volumes": MOUNTS,
                    "labels": {LABEL: "1"},
                },
                "port": port,
                "portEnv": "PORT",
                "health": {
                    "http": {"path": "/"},
                    "interval": "100ms",
                    "timeout": "500ms",
                    "failureThreshold": 2,
                },
            },
        },
        {
            "apiVersion": "driftmend.dev/v1alpha1",
            "kind": "HealingPolicy",
            "metadata": {"name": "app-crash"},
            "spec": {
                "selector": {"kind": "Container", "matchLabels": {"app": "web"}},
                "rules": [
                    {
                        "name": "restart-on-exit",
                        "when": [{"signal": "container.running", "value": False}],
                        "do": [{"tool": "container_restart"}],
                        "verify": {"timeout": "20s", "interval": "50ms"},
                        "attempts": {"max": 1000, "window": "1h"},
                    }
                ],
            },
        },
    ]


async def run(trials: int = 10, gap: float = 11.0, settle: float = 1.0) -> dict[str, Any]:
    """Both series; ``{"driftmend": {...}, "docker": {...}, "engine": version}``."""
    api = docker.APIClient(version="auto", timeout=30)
    try:
        try:
            version = api.version()["Version"]
            api.inspect_image(IMAGE)
        except (docker.errors.DockerException, OSError) as exc:
            raise SystemExit(
                f"needs a Docker engine with the {IMAGE} image ({exc}); "
                "run scripts/docker-engine.sh as root"
            ) from exc
        ours = await driftmend_series(api, trials, settle)
        baseline = await docker_series(api, trials, gap)
    finally:
        api.close()
    return {"engine": version, "driftmend": ours.summary(), "docker": baseline.summary()}


def _table(result: dict[str, Any]) -> str:
    rows = [
        f"MTTR on Docker {result['engine']}: a SIGKILL'd web container "
        f"({result['driftmend']['trials']} trials each), seconds from the kill",
        f"{'healer':<24} {'detect p50':>10} {'detect p95':>10} {'recover p50':>11} "
        f"{'recover p95':>11} {'verified p50':>12} {'verified p95':>12}",
    ]
    for key in ("driftmend", "docker"):
        s = result[key]
        verified = s.get("verified") or {}
        v50, v95 = (f"{verified[k]:.3f}" if verified else "-" for k in ("median", "p95"))
        rows.append(
            f"{s['healer']:<24} {s['detect']['median']:>10.3f} {s['detect']['p95']:>10.3f} "
            f"{s['recover']['median']:>11.3f} {s['recover']['p95']:>11.3f} {v50:>12} {v95:>12}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=10, help="kills per healer")
    parser.add_argument("--gap", type=float, default=11.0, help="seconds between baseline kills")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds between our kills")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.trials, args.gap, args.settle))
    print(json.dumps(result) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
