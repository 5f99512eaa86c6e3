"""The no-fault control: under normal load and no fault, the controller does nothing.

Run by hand: ``.venv/bin/python -m bench.no_fault --minutes 10``. Starts the demo stack on
free ports with a controller process, drives the shop with the load generator for the
whole period, then reads the store: any fix, or any reconciliation that recorded a drift,
is a false positive. Prints one JSON line; exits 1 on any false positive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence

import httpx2

from bench.mttr import Controller, _until
from driftmend.store import Store
from tests.demo_stack import REPO, demo_stack

# The sample app is not an installed package (pytest finds it through its pythonpath):
# its load generator is imported from the checkout.
sys.path.insert(0, str(REPO / "sample-app"))
from shop.loadgen import run_load


async def run(minutes: float, rps: float) -> dict[str, object]:
    """The control run; returns what it counted."""
    stack = demo_stack()
    db = stack.state / "no-fault.db"
    controller = Controller(stack, db)
    try:
        async with httpx2.AsyncClient(timeout=3, trust_env=False) as client:

            async def healthy() -> bool:
                rows = await controller.api(client, "/api/resources")
                return bool(rows) and all(r["health"] == "healthy" for r in rows)

            await _until(healthy, 120, "healthy stack", controller)
        started = time.time()
        load = await run_load(
            f"http://127.0.0.1:{stack.app_port}", rps=rps, duration=minutes * 60, concurrency=8
        )
        controller.sample()
        store = Store(db)
        try:
            fixes = [f for f in store.fix_records.fixes(limit=1000) if f["detected_at"] >= started]
            drifts = [
                r
                for r in store.reconciliation_records.reconciliations(limit=1000)
                if r["started_at"] >= started
            ]
            counts = store.reconciliation_records.reconciliation_counts()
        finally:
            store.close()
        return {
            "minutes": minutes,
            "rps": rps,
            "requests": load["requests"],
            "errors": load["errors"],
            "fixes": len(fixes),
            "drift_reconciliations": len(drifts),
            "reconciliations": counts,
            "controller_peak_rss_mb": round(controller.peak_rss / 2**20, 1),
            "controller_cpu_percent_of_one_core": round(
                100 * controller.cpu_s / (time.time() - started), 1
            ),
        }
    finally:
        controller.stop()
        await stack.down()
        stack.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the control run."""
    parser = argparse.ArgumentParser(prog="python -m bench.no_fault")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rps", type=float, default=10.0)
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.minutes, args.rps))
    print(json.dumps(result))
    return 1 if result["fixes"] or result["drift_reconciliations"] else 0


if __name__ == "__main__":
    sys.exit(main())
