"""Faults with the controller killed mid-fix: is every one healed, and how soon?

Run by hand (not a test): ``.venv/bin/python -m bench.controller_kills --trials 30``.

Issue 11 measured that, in 30 controller kills during faults, 18 ended in needs-operator:
interrupted fixes counted as attempts, and faults of one run shared them. Each trial here
starts ``driftmend run`` on the demo stack with the *same* store as the trials before it,
waits for a healthy stack, injects a fault of the app (a crash, a CPU burn or a memory
leak, in turn), SIGKILLs the controller as soon as a fix of it is running, starts a new
controller, and waits for the whole stack to be healthy again. It reports how many trials
ended healed, how many flagged needs-operator, and the time from the new controller's start
to a healthy stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx2

from bench.mttr import Controller, _q, _until
from driftmend.chaos import Stack, inject, revert
from driftmend.errors import DriftmendError
from driftmend.settings import Settings
from driftmend.spec import load_paths
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check
from tests.demo_stack import DemoStack, demo_stack

SCENARIOS = ("app-crash", "app-cpu-burn", "app-memory-leak")


async def _healthy(controller: Controller, client: httpx2.AsyncClient) -> bool:
    rows = await controller.api(client, "/api/resources")
    return bool(rows) and all(r["health"] == "healthy" for r in rows)


async def trial(
    stack: DemoStack, n: int, scenario: str, chaos: Stack, settings: Settings
) -> dict[str, Any]:
    """One fault, one controller killed mid-fix, one controller that must finish the job."""
    db = stack.state / "bench-kills.db"
    first = Controller(stack, db)
    async with httpx2.AsyncClient(timeout=3, trust_env=False) as client:
        try:
            await _until(lambda: _healthy(first, client), 90, "healthy stack", first)
            await inject(scenario, chaos, settings)

            async def fixing() -> bool:
                fixes = await first.api(client, "/api/fixes?limit=3")
                return any(f["key"] == "Container/shop" and f["status"] == "running" for f in fixes)

            await _until(fixing, 60, f"{scenario}: a fix running", first)
        finally:
            # Killed whatever happened: a controller left running would own the state
            # directory, and every later trial's controller would refuse to start.
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            # The fix in flight may have restarted the app already, which ends its chaos.
            with contextlib.suppress(httpx2.HTTPError, DriftmendError):
                await revert(scenario, chaos, settings)
        second = Controller(stack, db)
        started = time.monotonic()
        try:
            outcome = "healed"
            try:
                await _until(lambda: _healthy(second, client), 120, "healed", second)
            except TimeoutError:
                rows = await second.api(client, "/api/resources")
                flagged = [r["key"] for r in rows if r.get("needs_operator")]
                outcome = "needs-operator" if flagged else "not healed"
            return {
                "trial": n,
                "scenario": scenario,
                "outcome": outcome,
                "healthy_after_restart_s": round(time.monotonic() - started, 2),
            }
        finally:
            second.stop()


async def run(trials: int) -> dict[str, Any]:
    """``trials`` faults, each with its controller killed mid-fix; returns the figures."""
    stack = demo_stack()
    settings = Settings(state_dir=stack.state)
    rows: list[dict[str, Any]] = []
    try:
        result = load_paths([stack.specs], tool_check(default_catalogue()))
        chaos = Stack.of(result.resources)
        for n in range(trials):
            scenario = SCENARIOS[n % len(SCENARIOS)]
            try:
                row = await trial(stack, n, scenario, chaos, settings)
            except (RuntimeError, TimeoutError) as exc:
                row = {"trial": n, "scenario": scenario, "outcome": f"bench error: {exc}"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        await stack.down()
        stack.cleanup()
    times = [r["healthy_after_restart_s"] for r in rows if r["outcome"] == "healed"]
    return {
        "trials": rows,
        "summary": {
            "trials": len(rows),
            "healed": sum(r["outcome"] == "healed" for r in rows),
            "needs_operator": sum(r["outcome"] == "needs-operator" for r in rows),
            "other": sum(r["outcome"] not in ("healed", "needs-operator") for r in rows),
            "healthy_after_restart_p50": _q(times, 0.5),
            "healthy_after_restart_p95": _q(times, 0.95),
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; print the summary (and write every trial with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--json", help="write every trial here")
    args = parser.parse_args(argv)
    out = asyncio.run(run(args.trials))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    print(json.dumps(out["summary"], indent=2))
    return 0 if out["summary"]["needs_operator"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
