"""Chaos: break the demo stack in one of the known ways, so the controller can heal it.

Stage: outside the loop, a fault injector for demos, tests and benchmarks (`driftmend chaos`).
It speaks SQL and RESP only through the drivers (``drivers/postgres.py``, ``drivers/redis.py``),
whose errors arrive here as ``DriverError``.
Every scenario targets resources by what the specs declare (the web Container, the first
PostgresDatabase, the first RedisCache) and is undone by ``--stop`` where that means
something. The ``workload-*`` scenarios break a web Container on the ``kubernetes`` runtime
through the API (``drivers/kubernetes/chaos.py``). Faults that must outlive the command
(held connections, long queries) run in a detached worker process (``python -m
driftmend.chaos``) whose pid is kept under the state directory, so ``--stop`` can end it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from driftmend.drivers import postgres_chaos as pg
from driftmend.drivers import redis as rd
from driftmend.drivers.kubernetes.chaos import FAULTS as WORKLOAD_FAULTS
from driftmend.drivers.runtimes import RuntimeRouter
from driftmend.errors import DriftmendError, DriverError, PermanentError
from driftmend.settings import Settings
from driftmend.sources.files import FileSource
from driftmend.spec import Container, PostgresDatabase, RedisCache, Resource
from driftmend.tools.catalogue import default_catalogue

SCENARIOS = (
    "app-crash",
    "app-cpu-burn",
    "app-memory-leak",
    "pool-exhaustion",
    "long-queries",
    "redis-memory-full",
    *WORKLOAD_FAULTS,
)
CHAOS_ROLE = "driftmend_chaos"


@dataclass(frozen=True)
class Stack:
    """The resources a scenario may break."""

    app: Container | None
    db: PostgresDatabase | None
    cache: RedisCache | None
    workload: Container | None = None  # a Container on the kubernetes runtime

    @classmethod
    def of(cls, resources: Sequence[Resource], app_name: str = "shop") -> Stack:
        """Pick the web app (by name, else label ``tier: web``), the database, the cache, and
        the web workload (the first Container on the kubernetes runtime, ``tier: web`` first)."""
        containers = [r for r in resources if isinstance(r, Container)]
        local = [c for c in containers if c.spec.runtime != "kubernetes"]
        workloads = [c for c in containers if c.spec.runtime == "kubernetes"]
        app = next((c for c in local if c.name == app_name), None) or next(
            (c for c in local if c.labels.get("tier") == "web"), None
        )
        db = next((r for r in resources if isinstance(r, PostgresDatabase)), None)
        cache = next((r for r in resources if isinstance(r, RedisCache)), None)
        workload = next((c for c in workloads if c.labels.get("tier") == "web"), None) or next(
            iter(workloads), None
        )
        return cls(app, db, cache, workload)


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise PermanentError(f"the specs declare no {what} for this scenario")
    return value


def pg_conninfo(db: PostgresDatabase, user: str | None = None) -> str:
    """A libpq connection string for ``db`` (chaos uses trust auth on the demo stack)."""
    return pg.chaos_conninfo(db, user)


# --- the detached worker -----------------------------------------------------------------


def _pidfile(state_dir: Path, scenario: str) -> Path:
    return state_dir.resolve() / "chaos" / f"{scenario}.pid"


def _spawn(state_dir: Path, scenario: str, args: list[str]) -> int:
    pidfile = _pidfile(state_dir, scenario)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    log = str(pidfile.with_suffix(".log"))
    # posix_spawn in a new session, not Popen: the worker must outlive `driftmend chaos`,
    # and nothing here will ever wait for it (`--stop` ends it by its pid file).
    pid = os.posix_spawn(
        sys.executable,
        [sys.executable, "-m", "driftmend.chaos", *args],
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    pidfile.write_text(str(pid))
    return pid


def _kill_worker(state_dir: Path, scenario: str) -> bool:
    pidfile = _pidfile(state_dir, scenario)
    if not pidfile.exists():
        return False
    with contextlib.suppress(ProcessLookupError, ValueError, OSError):
        pid = int(pidfile.read_text())
        # The pid may have been reused since: only signal our own worker.
        if b"driftmend.chaos" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
    pidfile.unlink(missing_ok=True)
    return True


def _hold(conninfo: str, mode: str, count: int, duration: float) -> int:
    """Worker body: open connections and keep them busy until SIGTERM or ``duration``."""
    stop = False

    def _term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    end = time.monotonic() + duration
    pg.hold_sessions(
        conninfo,
        mode,
        count,
        keep=lambda: not stop and time.monotonic() < end,
        announce=lambda line: print(line, flush=True),
    )
    return 0


# --- scenarios ---------------------------------------------------------------------------


async def app_crash(stack: Stack, settings: Settings) -> str:
    """Kill every replica of the app with SIGKILL, as a crash would end it."""
    app: Container = _need(stack.app, "web Container")
    runtime = RuntimeRouter.for_state_dir(settings.state_dir, Path.cwd(), settings)
    try:
        stats = await runtime.stats(app)
    finally:
        await runtime.close()
    pids = [int(r["pid"]) for r in stats.get("replicas", []) if r.get("pid") and r.get("running")]
    if not pids:
        raise PermanentError(f"{app.key} has no running replica to kill")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return f"killed {app.key} pid {', '.join(map(str, pids))} (SIGKILL)"


async def _app_post(app: Container, path: str, body: dict[str, Any]) -> str:
    port = _need(app.spec.port, f"port on {app.key}")
    async with httpx2.AsyncClient(timeout=5, trust_env=False) as client:
        resp = await client.post(f"http://127.0.0.1:{port}{path}", json=body)
    if resp.status_code == 404:
        raise PermanentError(f"{app.key} has no chaos endpoints: set SHOP_CHAOS=1 in its env")
    resp.raise_for_status()
    return f"{app.key} {path}: {resp.text}"


async def app_cpu_burn(stack: Stack, seconds: float = 300.0) -> str:
    """Make the app burn a full core, past its CPU limit."""
    return await _app_post(
        _need(stack.app, "web Container"), "/chaos/cpu-burn", {"seconds": seconds, "threads": 1}
    )


async def app_memory_leak(stack: Stack, mb_per_second: float = 40.0, seconds: float = 300.0) -> str:
    """Make the app grow its resident memory steadily, past its memory limit."""
    body = {"mb_per_second": mb_per_second, "seconds": seconds}
    return await _app_post(_need(stack.app, "web Container"), "/chaos/memory-leak", body)


async def app_chaos_stop(stack: Stack) -> str:
    """Stop the app's CPU burn and memory leak."""
    return await _app_post(_need(stack.app, "web Container"), "/chaos/stop", {})


def _ensure_role(db: PostgresDatabase) -> None:
    # A role that is not a superuser: its connections stop at max_connections minus the
    # reserved slots, so the controller (a superuser) can still get in to heal.
    pg.ensure_login_role(pg_conninfo(db), CHAOS_ROLE)


def _chaos_sessions(db: PostgresDatabase) -> int:
    return pg.count_sessions(pg_conninfo(db), CHAOS_ROLE)


async def _wait(check: Any, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    raise PermanentError(f"chaos: {what} did not happen within {deadline:g}s")


async def pool_exhaustion(stack: Stack, settings: Settings, count: int = 200) -> str:
    """Hold connections idle in transaction until PostgreSQL refuses new ordinary ones."""
    db: PostgresDatabase = _need(stack.db, "PostgresDatabase")
    await asyncio.to_thread(_ensure_role, db)
    _kill_worker(settings.state_dir, "pool-exhaustion")
    _spawn(
        settings.state_dir,
        "pool-exhaustion",
        ["hold", pg_conninfo(db, CHAOS_ROLE), "idle-in-transaction", str(count)],
    )
    await _wait(lambda: _chaos_sessions(db) >= 5, 15, "holding connections")
    await asyncio.sleep(0.5)  # let the worker open the rest (it stops when refused)
    return f"{db.key}: {await asyncio.to_thread(_chaos_sessions, db)} connections held idle in transaction"


async def long_queries(stack: Stack, settings: Settings) -> str:
    """Run a query for an hour and hold a lock in an open transaction."""
    db: PostgresDatabase = _need(stack.db, "PostgresDatabase")
    await asyncio.to_thread(_ensure_role, db)
    await asyncio.to_thread(_grant_orders, db)
    _kill_worker(settings.state_dir, "long-queries")
    _spawn(
        settings.state_dir,
        "long-queries",
        ["hold", pg_conninfo(db, CHAOS_ROLE), "long-queries", "2"],
    )
    await _wait(lambda: _chaos_sessions(db) >= 2, 15, "the long query")
    return f"{db.key}: pg_sleep(3600) running and a lock on orders held in an idle transaction"


def _grant_orders(db: PostgresDatabase) -> None:
    # No orders table (another app than the shop): the lock is then skipped by the worker.
    pg.grant_table(pg_conninfo(db), "orders", CHAOS_ROLE)


def _stop_pg(stack: Stack, settings: Settings, scenario: str) -> str:
    db: PostgresDatabase = _need(stack.db, "PostgresDatabase")
    _kill_worker(settings.state_dir, scenario)
    ended = pg.terminate_sessions(pg_conninfo(db), CHAOS_ROLE)
    return f"{db.key}: ended {ended} chaos session(s)"


async def redis_memory_full(stack: Stack, settings: Settings) -> str:
    """Fill the cache to maxmemory under noeviction, so that writes fail."""
    cache: RedisCache = _need(stack.cache, "RedisCache")
    config = await rd.read_config(cache, "maxmemory*")
    saved = _pidfile(settings.state_dir, "redis-memory-full").with_suffix(".json")
    saved.parent.mkdir(parents=True, exist_ok=True)
    if not saved.exists():
        saved.write_text(json.dumps({k: config[k] for k in ("maxmemory", "maxmemory-policy")}))
    if int(config.get("maxmemory") or 0) == 0:
        raise PermanentError(
            f"{cache.key} has no maxmemory: filling it would take the host's memory; "
            "set maxmemory first"
        )
    await rd.write_config(cache, {"maxmemory-policy": "noeviction"})
    written = await rd.fill_until_refused(cache, "chaos:fill:")
    return f"{cache.key}: filled with {written} keys until writes were refused (OOM)"


async def redis_memory_full_stop(stack: Stack, settings: Settings) -> str:
    """Delete the chaos keys and restore the maxmemory settings found before the fault."""
    cache: RedisCache = _need(stack.cache, "RedisCache")
    removed = await rd.delete_keys(cache, "chaos:fill:*")
    saved = _pidfile(settings.state_dir, "redis-memory-full").with_suffix(".json")
    if saved.exists():
        await rd.write_config(
            cache, {str(k): str(v) for k, v in json.loads(saved.read_text()).items()}
        )
        saved.unlink()
    return f"{cache.key}: removed {removed} chaos keys, maxmemory settings restored"


async def _workload_fault(stack: Stack, settings: Settings, scenario: str, undo: bool) -> str:
    """Break (or mend) the web workload's pod template through the API."""
    app: Container = _need(
        stack.workload,
        "Container on the kubernetes runtime (see manifests/examples/kubernetes/workloads.yaml)",
    )
    runtime = RuntimeRouter.for_state_dir(settings.state_dir, Path.cwd(), settings).kubernetes
    try:
        if undo:
            return await runtime.revert_fault(app, scenario)
        return await runtime.inject_fault(app, scenario)
    finally:
        await runtime.close()


async def inject(scenario: str, stack: Stack, settings: Settings) -> str:
    """Start ``scenario``; returns one line saying what was done."""
    match scenario:
        case "app-crash":
            return await app_crash(stack, settings)
        case "app-cpu-burn":
            return await app_cpu_burn(stack)
        case "app-memory-leak":
            return await app_memory_leak(stack)
        case "pool-exhaustion":
            return await pool_exhaustion(stack, settings)
        case "long-queries":
            return await long_queries(stack, settings)
        case "redis-memory-full":
            return await redis_memory_full(stack, settings)
        case "workload-bad-image" | "workload-config-error":
            return await _workload_fault(stack, settings, scenario, undo=False)
    raise PermanentError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


async def revert(scenario: str, stack: Stack, settings: Settings) -> str:
    """Undo ``scenario`` (``driftmend chaos SCENARIO --stop``)."""
    match scenario:
        case "app-crash":
            return "app-crash is a one-shot fault: nothing to undo"
        case "app-cpu-burn" | "app-memory-leak":
            return await app_chaos_stop(stack)
        case "pool-exhaustion" | "long-queries":
            return await asyncio.to_thread(_stop_pg, stack, settings, scenario)
        case "redis-memory-full":
            return await redis_memory_full_stop(stack, settings)
        case "workload-bad-image" | "workload-config-error":
            return await _workload_fault(stack, settings, scenario, undo=True)
    raise PermanentError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


async def run_chaos(
    scenario: str, settings: Settings, paths: Sequence[str], *, stop: bool = False
) -> int:
    """``driftmend chaos SCENARIO [--stop]`` against the stack declared under ``paths``."""
    result = FileSource(paths, default_catalogue()).load()
    stack = Stack.of(result.resources)
    try:
        line = await (revert if stop else inject)(scenario, stack, settings)
    except (DriverError, httpx2.HTTPError, OSError) as exc:
        print(f"chaos {scenario}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except DriftmendError as exc:  # what the stack or the cluster refused: said, no traceback
        print(f"chaos {scenario}: {exc}", file=sys.stderr)
        return 1
    print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry of the detached worker: ``python -m driftmend.chaos hold CONNINFO MODE COUNT``."""
    parser = argparse.ArgumentParser(prog="python -m driftmend.chaos")
    sub = parser.add_subparsers(dest="cmd", required=True)
    hold = sub.add_parser("hold")
    hold.add_argument("conninfo")
    hold.add_argument("mode", choices=["idle-in-transaction", "long-queries"])
    hold.add_argument("count", type=int)
    hold.add_argument("--duration", type=float, default=3600.0)
    args = parser.parse_args(argv)
    return _hold(args.conninfo, args.mode, args.count, args.duration)


if __name__ == "__main__":
    sys.exit(main())
