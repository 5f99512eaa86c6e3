"""Many resources on one controller: CPU, memory, pass lag, healing and HTTP at N resources.

Run by hand: ``.venv/bin/python -m bench.scale --n 100 1000 3000 --json bench/scale.json``.
For each N it declares N ``Container`` resources on the process runtime (each a ``sleep``),
one restart-on-exit policy, and starts ``driftmend run`` (resync 1 s) on a fresh state
directory. Once every replica runs it measures, over ``--window`` seconds of steady state:

- the controller's CPU (percent of one core) and RSS, with nothing asking it anything;
- passes per second from ``driftmend_reconcile_duration_seconds``, the mean time between two
  passes over one resource (``pass_lag``) and the pass p99 from the histogram's buckets;
- the rows written per minute to the tables a pass writes (signal samples, passes recorded
  in full) and the store's size;

then how long ``/healthz``, ``/metrics`` and ``/api/resources`` take to answer, asked in turn
``--http`` times.

Then it SIGKILLs one replica at a time (``--kills``), then ``--burst`` replicas at once, and
reads the fixes from the store itself (SQLite, read-only: the bench must not wait on the
controller's HTTP to time the controller): the exit to the fix's start (``seen``), the exit
to the fix's end (``healed``) and how far the fix's ``fault_at`` is from the real exit
(``dated``). Last, the time SIGTERM takes to stop the controller and ``driftmend down``
takes to stop the N replicas. Prints a JSON object per N, and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx2
import psutil

from tests.demo_stack import REPO
from tests.services import free_port

DRIFTMEND = REPO / ".venv" / "bin" / "driftmend"

POLICY = """\
apiVersion: driftmend.dev/v1alpha1
kind: HealingPolicy
metadata:
  name: restart-on-exit
spec:
  selector:
    kind: Container
    matchLabels: {bench: scale}
  rules:
    - name: restart-on-exit
      when:
        - {signal: container.running, operator: "==", value: false}
      do:
        - tool: container_restart
      verify: {timeout: 30s}
      attempts: {max: 100, window: 5m}
"""

CONTAINER = """\
---
apiVersion: driftmend.dev/v1alpha1
kind: Container
metadata:
  name: c{i:05d}
  labels: {{bench: scale}}
spec:
  runtime: process
  process:
    command: [sleep, "86400"]
"""


def write_specs(directory: Path, n: int) -> None:
    """The policy and ``n`` Containers, in two files."""
    directory.mkdir(parents=True)
    (directory / "policy.yaml").write_text(POLICY)
    (directory / "containers.yaml").write_text("".join(CONTAINER.format(i=i) for i in range(n)))


def q(values: Sequence[float], quantile: float) -> float | None:
    """The ``quantile`` of ``values`` (nearest rank), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(quantile * (len(ordered) - 1)))]


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and max of ``values``, rounded to ms."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "p50": r(q(values, 0.5)),
        "p95": r(q(values, 0.95)),
        "max": r(max(values, default=None)),
    }


def histogram(text: str, name: str) -> tuple[float, dict[float, float]]:
    """The count and cumulative buckets (``le`` -> count, summed over labels) of ``name``."""
    count = 0.0
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return count, buckets


def bucket_quantile(
    before: dict[float, float], after: dict[float, float], quantile: float
) -> float | None:
    """The upper bound of the bucket holding ``quantile`` of the observations in between."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le in sorted(delta):
        if delta[le] >= quantile * total:
            return le
    return None


class Run:
    """One controller over ``n`` resources in a temporary directory."""

    def __init__(self, n: int, root: Path) -> None:
        self.n = n
        self.specs = root / "specs"
        self.state = root / "state"
        self.db = self.state / "driftmend.db"
        write_specs(self.specs, n)
        self.port = free_port()
        self.log = (root / "controller.log").open("wb")
        self.proc = subprocess.Popen(
            [str(DRIFTMEND), "run", "-f", str(self.specs), "--state-dir", str(self.state),
             "--http-port", str(self.port), "--no-watch", "--resync-period", "1"],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0

    def cpu_s(self) -> float:
        """CPU seconds the controller has used so far (user and system)."""
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        """Resident memory now; keeps the peak."""
        rss = self.ps.memory_info().rss
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def store_bytes(self) -> int:
        """The store's files on disk: database, WAL and shared memory."""
        return sum(p.stat().st_size for p in self.state.glob("driftmend.db*") if p.is_file())

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read the store directly, read-only (the controller keeps writing)."""
        if not self.db.exists():
            return []
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # not created yet
        finally:
            con.close()

    def rows(self) -> dict[str, int]:
        """Rows in the tables a pass writes to (signal samples, passes recorded in full)."""
        out = {}
        for table in ("signal_samples", "reconciliations"):
            found = self.query(f"SELECT COUNT(*) FROM {table}")
            out[table] = int(found[0][0]) if found else 0
        return out

    def replicas(self) -> dict[str, int]:
        """The live replica pid of each resource, from the runtime's pid files."""
        out: dict[str, int] = {}
        for pid_file in self.state.glob("containers/*/replica-0.pid"):
            try:
                pid = json.loads(pid_file.read_text())["pid"]
                key = json.loads((pid_file.parent / "state.json").read_text())["key"]
            except (OSError, ValueError, KeyError):
                continue
            out[key] = pid
        return out

    async def get(self, client: httpx2.AsyncClient, path: str) -> tuple[float, str]:
        """Seconds ``path`` took to answer, and its body."""
        t0 = time.monotonic()
        resp = await client.get(f"http://127.0.0.1:{self.port}{path}")
        resp.raise_for_status()
        return time.monotonic() - t0, resp.text

    def stop(self) -> float:
        """SIGTERM the controller; seconds until it exited (killed after 10 minutes)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(600)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        return time.monotonic() - t0

    def down(self) -> float:
        """``driftmend down`` of the N replicas; seconds it took."""
        t0 = time.monotonic()
        subprocess.run(
            [str(DRIFTMEND), "down", "-f", str(self.specs), "--state-dir", str(self.state)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800,
            check=False,
        )  # fmt: skip
        return time.monotonic() - t0


async def until(
    check: Callable[[], Awaitable[Any]], deadline: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``check`` until it returns something true; TimeoutError after ``deadline``."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what} not within {deadline:g}s")


async def healed(
    run: Run, kills: dict[str, tuple[int, float]], deadline: float
) -> list[dict[str, float]]:
    """Wait until each killed resource has a finished fix after its kill; their timings."""
    first_id = 0

    async def all_fixed() -> list[dict[str, float]] | None:
        rows = run.query(
            "SELECT key, fault_at, started_at, finished_at, outcome FROM fixes WHERE id > ?",
            first_id,
        )
        out = []
        for key, (_, killed_at) in kills.items():
            done = [r for r in rows if r[0] == key and r[3] is not None and r[2] >= killed_at - 0.5]
            if not done:
                return None
            _, fault_at, started_at, finished_at, outcome = done[0]
            out.append({
                "seen": started_at - killed_at,
                "healed": finished_at - killed_at,
                "dated": fault_at - killed_at,
                "fixed": float(outcome == "fixed"),
            })  # fmt: skip
        return out

    timings: list[dict[str, float]] = await until(all_fixed, deadline, f"{len(kills)} fix(es)")
    return timings


def kill(run: Run, keys: Sequence[str]) -> dict[str, tuple[int, float]]:
    """SIGKILL the replica of each key; the pid and the moment of each kill."""
    pids = run.replicas()
    out = {}
    for key in keys:
        pid = pids[key]
        at = time.time()
        os.kill(pid, signal.SIGKILL)
        out[key] = (pid, at)
    return out


async def measure(
    n: int, window: float, kills: int, burst: int, http_samples: int, root: Path
) -> dict[str, Any]:
    """Every figure for ``n`` resources."""
    result: dict[str, Any] = {"n": n}
    t_start = time.monotonic()
    run = Run(n, root)
    try:

        async def all_running() -> bool:
            run.rss()
            return (
                len(run.replicas()) >= n
                and len(run.query("SELECT key FROM resources WHERE health = 'healthy'")) >= n
            )

        # Polled once a second: reading N pid files shares the machine with the controller.
        await until(all_running, 1800, f"{n} healthy resources", interval=1.0)
        result["all_healthy_after_s"] = round(time.monotonic() - t_start, 1)
        async with httpx2.AsyncClient(timeout=600, trust_env=False) as client:
            # CPU first, with nothing asking the controller anything but /metrics at both
            # ends: polling HTTP twice a second would be most of what is measured.
            _, metrics_before = await run.get(client, "/metrics")
            cpu0, wall0, rows0 = run.cpu_s(), time.monotonic(), run.rows()
            while time.monotonic() - wall0 < window:
                run.rss()
                await asyncio.sleep(1.0)
            wall = time.monotonic() - wall0
            cpu = run.cpu_s() - cpu0
            rows1 = run.rows()
            _, metrics_after = await run.get(client, "/metrics")
            name = "driftmend_reconcile_duration_seconds"
            count0, buckets0 = histogram(metrics_before, name)
            count1, buckets1 = histogram(metrics_after, name)
            passes_per_s = (count1 - count0) / (time.monotonic() - wall0)
            # Then HTTP, as a Prometheus scrape or a dashboard would ask: one at a time.
            latencies: dict[str, list[float]] = {
                "/healthz": [],
                "/metrics": [],
                "/api/resources": [],
            }
            for _ in range(http_samples):
                for path in latencies:
                    took, _ = await run.get(client, path)
                    latencies[path].append(took)
                await asyncio.sleep(0.25)
            result["steady"] = {
                "window_s": round(wall, 1),
                "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
                "rss_mb": round(run.rss() / 2**20, 1),
                "passes_per_s": round(passes_per_s, 1),
                "pass_lag_s": round(n / passes_per_s, 2) if passes_per_s else None,
                "pass_p99_le_s": bucket_quantile(buckets0, buckets1, 0.99),
                "store_rows_per_min": {t: round((rows1[t] - rows0[t]) / wall * 60) for t in rows1},
                "store_mb": round(run.store_bytes() / 2**20, 1),
                "http_s": {path: summary(v) for path, v in latencies.items()},
            }
            print(json.dumps({"n": n, "steady": result["steady"]}), file=sys.stderr, flush=True)
            keys = sorted(run.replicas())
            random.seed(n)
            singles: list[dict[str, float]] = []
            for key in random.sample(keys, min(kills, len(keys))):
                singles += await healed(run, kill(run, [key]), 600)
            result["kill"] = {
                m: summary([s[m] for s in singles]) for m in ("seen", "healed", "dated")
            }
            result["kill"]["fixed"] = sum(s["fixed"] for s in singles)
            print(json.dumps({"n": n, "kill": result["kill"]}), file=sys.stderr, flush=True)
            t0 = time.monotonic()
            many = await healed(run, kill(run, random.sample(keys, min(burst, len(keys)))), 1800)
            result["burst"] = {
                "killed": len(many),
                "all_healed_s": round(max(s["healed"] for s in many), 2),
                "fixed": sum(s["fixed"] for s in many),
                "wall_s": round(time.monotonic() - t0, 2),
            }
            result["peak_rss_mb"] = round(run.peak_rss / 2**20, 1)
    finally:
        result["stop_s"] = round(run.stop(), 2)
        result["down_s"] = round(run.down(), 2)
    return result


Cell = Callable[[dict[str, Any]], str]


def table(results: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the figures, one column per N."""
    rows: list[tuple[str, Cell]] = [
        ("all healthy after start", lambda r: f"{r['all_healthy_after_s']} s"),
        ("CPU, % of one core", lambda r: f"{r['steady']['cpu_percent_of_one_core']}"),
        ("RSS (peak)", lambda r: f"{r['steady']['rss_mb']} MB ({r['peak_rss_mb']} MB)"),
        ("passes per second", lambda r: f"{r['steady']['passes_per_s']}"),
        ("time between passes of one resource", lambda r: f"{r['steady']['pass_lag_s']} s"),
        ("pass p99 (histogram bucket)", lambda r: f"<= {r['steady']['pass_p99_le_s']} s"),
        (
            "signal samples written",
            lambda r: f"{r['steady']['store_rows_per_min']['signal_samples']} /min",
        ),
        ("store size after the window", lambda r: f"{r['steady']['store_mb']} MB"),
    ]

    def http(path: str) -> Cell:
        def cell(r: dict[str, Any]) -> str:
            took = r["steady"]["http_s"][path]
            return f"{took['p50']} / {took['max']} s"

        return cell

    rows += [
        (f"{path} p50 / max", http(path)) for path in ("/healthz", "/metrics", "/api/resources")
    ]
    rows += [
        (
            "kill -9: fix started p50 / max",
            lambda r: f"{r['kill']['seen']['p50']} / {r['kill']['seen']['max']} s",
        ),
        (
            "kill -9: healed p50 / max",
            lambda r: f"{r['kill']['healed']['p50']} / {r['kill']['healed']['max']} s",
        ),
        ("kill -9: fault_at minus exit, max", lambda r: f"{r['kill']['dated']['max']} s"),
        (
            "burst: all healed",
            lambda r: f"{r['burst']['killed']} in {r['burst']['all_healed_s']} s",
        ),
        ("SIGTERM to exit", lambda r: f"{r['stop_s']} s"),
        ("`driftmend down`", lambda r: f"{r['down_s']} s"),
    ]
    head = "| measure | " + " | ".join(f"N = {r['n']}" for r in results) + " |"
    out = [head, "|---" * (len(results) + 1) + "|"]
    for label, cell in rows:
        cells = []
        for r in results:
            try:
                cells.append(cell(r))
            except (KeyError, TypeError):
                cells.append("-")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every N in turn, each on a fresh state directory."""
    results = []
    for n in args.n:
        with tempfile.TemporaryDirectory(prefix=f"driftmend-scale-{n}-") as tmp:
            try:
                results.append(
                    await measure(n, args.window, args.kills, args.burst, args.http, Path(tmp))
                )
            except TimeoutError as exc:
                results.append({"n": n, "error": str(exc)})
            print(json.dumps(results[-1]), flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the scale bench."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--window", type=float, default=30.0, help="seconds of steady state")
    parser.add_argument("--kills", type=int, default=5, help="single kills, one after another")
    parser.add_argument("--burst", type=int, default=50, help="replicas killed at once")
    parser.add_argument("--http", type=int, default=20, help="requests to each HTTP path")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table([r for r in results if "error" not in r]))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
