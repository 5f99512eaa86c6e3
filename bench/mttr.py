"""Time to detect and time to recover for the five classic failures, on the demo stack.

Run by hand (not a test): ``.venv/bin/python -m bench.mttr --trials 5 [--json out.json]``.

For each scenario and trial it starts a fresh controller process (``driftmend run``, a new
store, so that every trial meets the first rung of its policy) on the same demo stack (the
example specs on free ports; the stack's processes are adopted, not restarted), waits
until everything is healthy, injects the fault with the same code as ``driftmend chaos``,
and waits for the fix. Times are measured from the injection by the bench's own clock:
*detect* is when the controller decided to act, *recover* when verification passed. The
controller's own CPU and peak memory are sampled with psutil over every trial.

Baseline for app-crash: a plain supervisor that polls its child every 5 s and restarts it
on exit (docker-autoheal's default interval), timed the same way until /healthz answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import psutil

from driftmend.chaos import Stack, inject, revert
from driftmend.settings import Settings
from driftmend.spec import Container, load_paths
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check
from tests.demo_stack import REPO, DemoStack, demo_stack
from tests.services import free_port

RULES = {
    "app-crash": ("Container/shop", "restart-on-exit"),
    "app-cpu-burn": ("Container/shop", "restart-on-cpu-burn"),
    "app-memory-leak": ("Container/shop", "restart-on-memory-leak"),
    "pool-exhaustion": ("PostgresDatabase/shop-db", "terminate-idle-sessions"),
    "long-queries": ("PostgresDatabase/shop-db", "terminate-long-queries"),
    "redis-memory-full": ("RedisCache/shop-cache", "purge-and-evict"),
}


@dataclass
class Series:
    """Measurements of one scenario."""

    detect: list[float] = field(default_factory=list)
    recover: list[float] = field(default_factory=list)
    failures: int = 0

    def summary(self) -> dict[str, Any]:
        """Median and p95 of both times."""
        return {
            "trials": len(self.recover) + self.failures,
            "failures": self.failures,
            "detect_p50": _q(self.detect, 0.5),
            "detect_p95": _q(self.detect, 0.95),
            "recover_p50": _q(self.recover, 0.5),
            "recover_p95": _q(self.recover, 0.95),
        }


def _q(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]


class Controller:
    """One ``driftmend run`` process and its resource usage."""

    def __init__(self, stack: DemoStack, db: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(REPO / ".venv/bin/driftmend"), "run", "-f", str(stack.specs), "--state-dir", str(stack.state),
             "--db-path", str(db), "--http-port", str(self.port), "--no-watch"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self.cpu_s = 0.0

    def sample(self) -> None:
        """Track peak RSS and CPU seconds while the process lives."""
        try:
            self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            times = self.ps.cpu_times()
            self.cpu_s = times.user + times.system
        except psutil.Error:
            pass

    async def api(self, client: httpx2.AsyncClient, path: str) -> Any:
        resp = await client.get(f"http://127.0.0.1:{self.port}{path}")
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> None:
        self.sample()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


async def _until(
    check: Any, deadline: float, what: str, controller: Controller | None = None
) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if controller:
            controller.sample()
        try:
            value = await check()
        except (httpx2.HTTPError, ValueError):
            value = None
        if value:
            return value
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} not within {deadline}s")


async def trial(
    stack: DemoStack, scenario: str, db: Path, chaos: Stack, settings: Settings
) -> tuple[float, float, Controller]:
    """One injection and its fix; returns (detect, recover) seconds from the injection."""
    key, rule = RULES[scenario]
    controller = Controller(stack, db)
    async with httpx2.AsyncClient(timeout=3, trust_env=False) as client:
        try:

            async def healthy() -> bool:
                rows = await controller.api(client, "/api/resources")
                return bool(rows) and all(r["health"] == "healthy" for r in rows)

            await _until(healthy, 90, "healthy stack", controller)
            t0 = time.time()
            await inject(scenario, chaos, settings)

            async def fixed() -> dict[str, Any] | None:
                for fix in await controller.api(client, "/api/fixes?limit=5"):
                    if fix["key"] == key and fix["rule"] == rule and fix["status"] == "done":
                        return dict(fix)
                return None

            fix = await _until(fixed, 90, f"{scenario} fixed", controller)
            if fix["outcome"] != "fixed":
                raise RuntimeError(f"{scenario}: {fix['outcome']}: {fix['message']}")
            return fix["detected_at"] - t0, fix["recovered_at"] - t0, controller
        finally:
            await revert(scenario, chaos, settings)
            controller.stop()


async def baseline_app_crash(stack: DemoStack, trials: int, interval: float = 5.0) -> Series:
    """A plain supervisor: poll every ``interval`` seconds, restart on exit; no health check."""
    result = load_paths([stack.specs], tool_check(default_catalogue()))
    app = next(r for r in result.resources if isinstance(r, Container) and r.name == "shop")
    port = free_port()
    assert app.spec.process is not None
    env = {**os.environ, **app.spec.process.env, "SHOP_PORT": str(port)}
    cwd = REPO / (app.spec.process.working_dir or ".")
    argv = [str(REPO / app.spec.process.command[0]), *app.spec.process.command[1:]]
    series = Series()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    async def answers() -> bool:
        async with httpx2.AsyncClient(timeout=1, trust_env=False) as client:
            try:
                return (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            except httpx2.HTTPError:
                return False

    child = start()
    try:
        for _ in range(trials):
            await _until(answers, 60, "baseline app answers")
            # The supervisor's poll ticks on its own schedule: a crash lands anywhere in it.
            await asyncio.sleep(random.uniform(0, interval))
            t0 = time.time()
            child.kill()
            next_poll = (time.monotonic() // interval + 1) * interval
            await asyncio.sleep(max(0.0, next_poll - time.monotonic()))
            child.wait()
            child = start()
            series.detect.append(time.time() - t0)
            await _until(answers, 60, "baseline app recovered")
            series.recover.append(time.time() - t0)
    finally:
        child.kill()
        child.wait()
    return series


async def run(trials: int, scenarios: Sequence[str]) -> dict[str, Any]:
    """Every scenario ``trials`` times, and the baseline; returns the figures."""
    stack = demo_stack()
    settings = Settings(state_dir=stack.state)
    out: dict[str, Any] = {"scenarios": {}, "controller": {}}
    peak, cpu_s, wall = 0, 0.0, 0.0
    try:
        result = load_paths([stack.specs], tool_check(default_catalogue()))
        chaos = Stack.of(result.resources)
        n = 0
        for scenario in scenarios:
            series = Series()
            for _ in range(trials):
                n += 1
                started = time.monotonic()
                try:
                    detect, recover, ctl = await trial(
                        stack, scenario, stack.state / f"bench-{n}.db", chaos, settings
                    )
                    series.detect.append(detect)
                    series.recover.append(recover)
                    peak, cpu_s = max(peak, ctl.peak_rss), cpu_s + ctl.cpu_s
                except (RuntimeError, TimeoutError) as exc:
                    print(f"{scenario}: {exc}", file=sys.stderr)
                    series.failures += 1
                wall += time.monotonic() - started
            out["scenarios"][scenario] = series.summary()
            print(scenario, json.dumps(out["scenarios"][scenario]), flush=True)
        if "app-crash" in scenarios:
            out["baseline"] = {
                "app-crash (poll 5 s, restart on exit)": (
                    await baseline_app_crash(stack, trials)
                ).summary()
            }
        out["controller"] = {
            "peak_rss_mb": round(peak / 2**20, 1),
            "cpu_seconds": round(cpu_s, 2),
            "cpu_percent_of_one_core": round(100 * cpu_s / wall, 1) if wall else None,
        }
    finally:
        if await stack.down():
            stack.cleanup()
    out["machine"] = {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    out["date"] = time.strftime("%Y-%m-%d")
    return out


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    lines = [
        "| scenario | trials | failed | detect p50 | detect p95 | recover p50 | recover p95 |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = list(result["scenarios"].items()) + [
        (f"baseline: {k}", v) for k, v in result.get("baseline", {}).items()
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['trials']} | {s['failures']} | {f(s['detect_p50'])} | {f(s['detect_p95'])} | {f(s['recover_p50'])} | {f(s['recover_p95'])} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.mttr")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--scenario", action="append", choices=sorted(RULES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.trials, args.scenario or list(RULES)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    print(json.dumps({k: result[k] for k in ("controller", "machine", "date")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
