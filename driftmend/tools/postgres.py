"""The PostgreSQL tools: terminate sessions, scale connections, restart, vacuum, analyze, inspect.

Stage: *act* in docs/ARCHITECTURE.md. Each tool reaches the database only through ``ctx.postgres``
(the ``PostgresDriver`` seam) and restarts it only through the runtime that hosts it
(``ctx.host_of(db)`` and ``ctx.runtime``). Caps declared in the spec are checked here, before
anything changes, and a refusal says which cap and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import Field

from driftmend.errors import DriftmendError
from driftmend.model import Observation, ToolResult
from driftmend.spec import PostgresDatabase
from driftmend.tools.base import Effect, NoParams, Params, Tool, ToolContext
from driftmend.tools.container import restart_failure

KIND = ("PostgresDatabase",)
RESTART_DEADLINE_S = 30.0
_POLL_S = 0.5
# Room left above the sessions open now, so the new limit does not refuse clients at once.
_HEADROOM = 5

SessionState = Literal["active", "idle", "idle in transaction", "idle in transaction (aborted)"]


@runtime_checkable
class SessionLister(Protocol):
    """A ``PostgresDriver`` that can also list sessions (``PsycopgDriver`` can)."""

    async def sessions(self, db: PostgresDatabase, limit: int = 10) -> list[dict[str, Any]]:
        """The ``limit`` oldest client sessions, busiest first."""


# --- waiting for the database ------------------------------------------------------------


async def _wait_up(
    ctx: ToolContext,
    db: PostgresDatabase,
    ready: Callable[[Observation], bool] = lambda _: True,
    deadline_s: float = RESTART_DEADLINE_S,
) -> tuple[Observation, float]:
    """Observe until the database is up and ``ready``, or the deadline; the last observation."""
    started = time.monotonic()
    while True:
        obs = await ctx.postgres.observe(db)
        waited = time.monotonic() - started
        if (obs.get("postgres.up") is True and ready(obs)) or waited >= deadline_s:
            return obs, round(waited, 3)
        await asyncio.sleep(_POLL_S)


def _no_host(db: PostgresDatabase) -> str:
    ref = db.spec.runtime_ref
    if ref is None:
        return (
            f"{db.key} declares no spec.runtimeRef, so driftmend cannot restart it; "
            "declare the Container that runs it"
        )
    return f"{db.key} names runtimeRef {ref.kind}/{ref.name}, which is not declared"


# --- pg_terminate_queries ----------------------------------------------------------------


class TerminateParams(Params):
    """Which sessions to end: by state and by age."""

    min_duration_seconds: float = Field(
        default=60.0,
        ge=0,
        le=7 * 86400,
        description="only sessions at least this old: since query start when active, "
        "since the last state change otherwise",
    )
    states: tuple[SessionState, ...] = Field(
        default=("idle in transaction",),
        min_length=1,
        max_length=4,
        description="session states to end; 'idle in transaction' holds locks and a "
        "connection slot, 'active' is a running query",
    )


async def _terminate(ctx: ToolContext, db: PostgresDatabase, p: TerminateParams) -> ToolResult:
    ended = await ctx.postgres.terminate(db, p.min_duration_seconds, list(p.states))
    return ToolResult.success(terminated=ended, count=len(ended))


# --- pg_scale_connections ----------------------------------------------------------------


class ScaleParams(Params):
    """The new connection limit."""

    max_connections: int = Field(
        ge=1,
        le=10000,
        description="new max_connections; at most spec.maxConnectionsCap and at least "
        f"the sessions open now plus {_HEADROOM}",
    )


async def _scale(ctx: ToolContext, db: PostgresDatabase, p: ScaleParams) -> ToolResult:
    wanted = p.max_connections
    cap = db.spec.max_connections_cap
    if wanted > cap:
        return ToolResult.refused(
            f"max_connections {wanted} is above {db.key}'s spec.maxConnectionsCap ({cap})"
        )
    host = ctx.host_of(db)
    if host is None:
        return ToolResult.refused(_no_host(db))
    before = await ctx.postgres.observe(db)
    if before.get("postgres.up") is not True:
        return ToolResult.failure(f"cannot read {db.key}'s current connections: {before.error}")
    used = int(before.get("postgres.connections_used") or 0)
    current = int(before.get("postgres.max_connections") or 0)
    reserved = int(before.facts.get("superuser_reserved_connections", "0"))
    floor = max(used + _HEADROOM, reserved + 1)
    if wanted < floor:
        return ToolResult.refused(
            f"max_connections {wanted} is below {floor}: {used} sessions are open now and "
            f"{_HEADROOM} more must fit (and it must exceed the {reserved} superuser slots)"
        )
    if wanted == current:
        return ToolResult.success(changed=False, max_connections=current)
    change = await ctx.postgres.set_max_connections(db, wanted)
    try:
        restart = await ctx.runtime.restart(host)
    except DriftmendError as exc:
        return ToolResult.failure(
            f"ALTER SYSTEM set max_connections={wanted} but restarting {host.key} failed "
            f"({exc}); the value applies at the next restart",
            change=change,
        )
    after, waited = await _wait_up(ctx, db, lambda o: o.get("postgres.max_connections") == wanted)
    observed = after.get("postgres.max_connections")
    if after.get("postgres.up") is not True or observed != wanted:
        why = after.error if after.get("postgres.up") is not True else f"it reports {observed}"
        return ToolResult.failure(
            f"{db.key} did not come back with max_connections={wanted} within "
            f"{RESTART_DEADLINE_S:g}s: {why}",
            change=change,
            restart=restart,
        )
    return ToolResult.success(
        changed=True,
        max_connections_before=current,
        max_connections=wanted,
        restart=restart,
        seconds_to_ready=waited,
    )


# --- pg_restart --------------------------------------------------------------------------


async def _restart(ctx: ToolContext, db: PostgresDatabase, p: NoParams) -> ToolResult:
    host = ctx.host_of(db)
    if host is None:
        return ToolResult.refused(_no_host(db))
    before = await ctx.postgres.observe(db)
    started_before = before.facts.get("started_at")
    restart = await ctx.runtime.restart(host)
    failed = restart_failure(host.key, restart)
    if failed is not None:  # it died at start: no use waiting for it to answer
        return ToolResult.failure(failed, restart=restart)
    # A server that was up must show a new start time, so the old one is not mistaken for it.
    after, waited = await _wait_up(
        ctx, db, lambda o: started_before is None or o.facts.get("started_at") != started_before
    )
    if after.get("postgres.up") is not True:
        return ToolResult.failure(
            f"{db.key} is not up {RESTART_DEADLINE_S:g}s after the restart: {after.error}",
            restart=restart,
        )
    return ToolResult.success(restart=restart, seconds_to_ready=waited)


# --- pg_vacuum, pg_analyze ---------------------------------------------------------------


def _table() -> Any:
    return Field(
        default=None,
        min_length=1,
        max_length=200,
        description="a table's exact name, or schema.name; omit for the whole database",
    )


class VacuumParams(Params):
    """Which table to vacuum, and whether to refresh its statistics too."""

    table: str | None = _table()
    analyze: bool = Field(default=True, description="also refresh planner statistics")


class AnalyzeParams(Params):
    """Which table to analyze."""

    table: str | None = _table()


async def _vacuum(ctx: ToolContext, db: PostgresDatabase, p: VacuumParams) -> ToolResult:
    return ToolResult.success(**await ctx.postgres.vacuum(db, p.table, p.analyze))


async def _analyze(ctx: ToolContext, db: PostgresDatabase, p: AnalyzeParams) -> ToolResult:
    return ToolResult.success(**await ctx.postgres.analyze(db, p.table))


# --- pg_sessions -------------------------------------------------------------------------


class SessionsParams(Params):
    """How many sessions to list."""

    limit: int = Field(default=10, ge=1, le=50, description="how many sessions, oldest first")


async def _sessions(ctx: ToolContext, db: PostgresDatabase, p: SessionsParams) -> ToolResult:
    obs = await ctx.postgres.observe(db)
    if obs.get("postgres.up") is not True:
        return ToolResult.failure(f"{db.key} is not reachable: {obs.error}")
    summary: dict[str, Any] = {
        name.removeprefix("postgres."): value
        for name, value in obs.signals.items()
        if name != "postgres.up"
    }
    if isinstance(ctx.postgres, SessionLister):
        sessions: Sequence[Any] = await ctx.postgres.sessions(db, p.limit)
    else:  # a driver without the listing: the observation's top queries are what we have
        sessions = obs.facts.get("longest_queries", "").splitlines()[: p.limit]
    return ToolResult.success(**summary, sessions=sessions)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="pg_terminate_queries",
        description=(
            "End PostgreSQL sessions (pg_terminate_backend) in the given states that are at "
            "least min_duration_seconds old. Use it when connections are exhausted or locks "
            "are held by sessions left idle in transaction, or when a runaway query runs far "
            "too long. Risk: the ended sessions' clients get an error and their open "
            "transactions roll back; the clients can reconnect. Returns the sessions ended."
        ),
        params=TerminateParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_terminate,
    ),
    Tool(
        name="pg_scale_connections",
        description=(
            "Raise (or lower) PostgreSQL's max_connections with ALTER SYSTEM, then restart the "
            "server through the Container that hosts it and wait until it answers with the new "
            "value. Use it when connections_used_ratio stays high with legitimate load, after "
            "terminating stuck sessions did not help. Risk: every session is dropped during "
            "the restart (seconds of downtime); more connections use more memory. Refused above "
            "spec.maxConnectionsCap, below the open sessions plus 5, or without a runtimeRef."
        ),
        params=ScaleParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_scale,
    ),
    Tool(
        name="pg_restart",
        description=(
            "Restart the PostgreSQL server through the Container that hosts it, then wait "
            "until it accepts connections again. Use it when the database is down or wedged "
            "and gentler tools failed. Risk: every session is dropped and clients see errors "
            "for a few seconds; committed data is kept. Refused without a runtimeRef."
        ),
        params=NoParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_restart,
    ),
    Tool(
        name="pg_vacuum",
        description=(
            "VACUUM (by default with ANALYZE) one table or the whole database: reclaims space "
            "from dead rows and refreshes planner statistics. Use it when a table is bloated "
            "or queries slowed after heavy updates or deletes. Risk: extra I/O while it runs; "
            "reads and writes continue, only schema changes on the table wait for it."
        ),
        params=VacuumParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_vacuum,
    ),
    Tool(
        name="pg_analyze",
        description=(
            "ANALYZE one table or the whole database: refreshes the planner's statistics. Use "
            "it when queries picked bad plans after a bulk load or large change. Risk: low; "
            "brief extra reads, and schema changes on the table wait for it."
        ),
        params=AnalyzeParams,
        kinds=KIND,
        effect=Effect.REVERSIBLE,
        fn=_analyze,
    ),
    Tool(
        name="pg_sessions",
        description=(
            "Read-only: the database's connection numbers and its oldest client sessions "
            "(pid, state, age in seconds, user, application, first 200 characters of the "
            "query), busy sessions first. Use it to decide what to terminate before calling "
            "pg_terminate_queries. Changes nothing."
        ),
        params=SessionsParams,
        kinds=KIND,
        effect=Effect.READ,
        fn=_sessions,
    ),
)
