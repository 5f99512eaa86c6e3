"""The live stream: server-sent events telling open pages what changed, without a reload.

Stage: *outputs* in docs/ARCHITECTURE.md. Each connection polls the store (and the controller's log
window) every half second, compares with what it last saw, and sends small JSON events:

=================== ==========================================================
``hello``           once, on connect: the server's time
``resource``        a resource's health, message, signals or last fix changed
``resource-removed`` a resource is gone from the store
``fix``             a fix started, progressed (a step journaled or finished) or ended
``stats``           fix statistics, after any fix change
``plans``           the list of plans waiting for an operator, after any change
``llm``             an LLM interaction arrived, or its recorded outcome changed
``logs``            new log lines (at most 200 per event)
``job``             a dashboard action started or ended
=================== ==========================================================

Polling a store that is written by one process keeps this simple and exact: no hook in the
loop, and a page that connects late still gets the current state (every resource and the
pending plans are sent on connect). A stream ends when the client goes away, when
``close_streams`` is called, when the store closes, or after ``max_age`` seconds (the
browser then reconnects by itself, with ``Last-Event-ID`` telling where its logs stopped), so
a server never waits on a forgotten stream to exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftmend.dashboard.dependencies import LogSearch
from driftmend.dashboard.jobs import JobBoard
from driftmend.dashboard.views import (
    drift_lines,
    fix_summary,
    llm_summary,
    log_dict,
    pending_plan_id,
    resource_summary,
    signal_changes,
)
from driftmend.store import Store

__all__ = ["StoreView", "Tracker", "encode", "event_stream", "read_store"]

Event = tuple[str, Any]

_FIX_HEAD = 30  # fixes watched for changes: the running ones are always among the newest
_LOG_WINDOW = 300  # per resource, lines compared between two polls
_LOG_BATCH = 200
_LLM_HEAD = 20  # interactions watched for a new outcome: the controller records it soon after


@dataclass(frozen=True)
class StoreView:
    """What one poll read from the store."""

    resources: Sequence[Mapping[str, Any]]
    fixes: Sequence[Mapping[str, Any]]
    steps: dict[int, list[tuple[str, str]]]  # running fix id -> (tool, status) per step
    plans: Sequence[Mapping[str, Any]]
    llm: Sequence[Mapping[str, Any]]  # the newest interactions, without prompt and response


def read_store(store: Store) -> StoreView:
    """One consistent-enough read of what the stream watches (several short queries)."""
    fixes = store.fix_records.fixes(limit=_FIX_HEAD)
    steps: dict[int, list[tuple[str, str]]] = {}
    for f in fixes:
        if f["status"] == "running":
            full = store.fix_records.fix(int(f["id"]))
            if full is not None:
                steps[int(f["id"])] = [(str(s["tool"]), str(s["status"])) for s in full["steps"]]
    return StoreView(
        resources=store.resource_records.resources(specs=False),
        fixes=fixes,
        steps=steps,
        plans=store.pending_records.pending_plans(),
        llm=store.llm_records.llm_summaries(limit=_LLM_HEAD),
    )


def _resource_signature(row: Mapping[str, Any]) -> tuple[Any, ...]:
    last = row.get("last_fix") or {}
    return (
        row["health"],
        row.get("message"),
        bool(row.get("paused")),
        row.get("needs_operator_reason"),
        row.get("observed_at"),
        last.get("id"),
        last.get("status"),
        last.get("outcome"),
    )


def _llm_signature(row: Mapping[str, Any]) -> tuple[Any, ...]:
    return (row.get("decision"), row.get("fix_id"), row.get("agreement"), row.get("error"))


def _log_identity(key: str, line: Mapping[str, Any]) -> tuple[Any, ...]:
    return (key, line["at"], line["level"], line["source"], line["message"])


@dataclass
class Tracker:
    """What a connection last saw; ``diff`` turns a new read into the events to send.

    Pure: it reads nothing itself, so the unit tests drive it with plain data.
    """

    resources: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    fixes: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    plans: tuple[tuple[int, str], ...] | None = None
    llm: dict[int, tuple[Any, ...]] | None = None
    logs: set[tuple[Any, ...]] | None = None
    jobs_seq: int = 0

    def diff(self, view: StoreView) -> tuple[list[Event], bool, list[Mapping[str, Any]]]:
        """Events for ``view``; whether fixes changed (then stats are sent); and the LLM
        interactions that arrived or whose outcome was recorded since, oldest first (the
        caller turns them into rows, which needs the store)."""
        events: list[Event] = []
        current: dict[str, tuple[Any, ...]] = {}
        for row in view.resources:
            sig = _resource_signature(row)
            current[row["key"]] = sig
            if self.resources.get(row["key"]) != sig:
                events.append(("resource", resource_summary(row)))
        for key in sorted(set(self.resources) - set(current)):
            events.append(("resource-removed", {"key": key, "id": key.replace("/", ".")}))
        self.resources = current

        fixes_changed = False
        seen: dict[int, tuple[Any, ...]] = {}
        for f in reversed(view.fixes):  # oldest first, so pages insert in order
            fid = int(f["id"])
            sig = (f["status"], f["outcome"], tuple(view.steps.get(fid, ())))
            seen[fid] = sig
            if self.fixes.get(fid) != sig:
                fixes_changed = True
                summary = fix_summary(f)
                summary["steps"] = [{"tool": t, "status": s} for t, s in view.steps.get(fid, ())]
                changes = signal_changes(
                    f.get("signals_before"), f.get("signals_after"), summary["drifted"]
                )
                summary["changes"] = [c for c in changes if c["drifted"]][:3]
                events.append(("fix", summary))
        self.fixes = seen

        plans = tuple((int(p["id"]), str(p["status"])) for p in view.plans)
        if plans != self.plans:
            events.append(("plans", [plan_summary(p) for p in view.plans]))
            self.plans = plans

        # The first poll only takes note: the page was rendered with what existed then.
        llm_seen = {int(i["id"]): _llm_signature(i) for i in view.llm}
        llm_changed: list[Mapping[str, Any]] = []
        if self.llm is not None:
            llm_changed = [
                i for i in reversed(view.llm) if self.llm.get(int(i["id"])) != _llm_signature(i)
            ]
        self.llm = llm_seen
        return events, fixes_changed, llm_changed

    def new_logs(
        self, lines: Iterable[dict[str, Any]], since: float | None
    ) -> list[dict[str, Any]]:
        """Lines not seen at the last poll; on the first poll, those at or after ``since``."""
        batch = list(lines)
        identities = {_log_identity(line["key"], line) for line in batch}
        if self.logs is None:
            fresh = [] if since is None else [line for line in batch if line["at"] >= since]
        else:
            fresh = [line for line in batch if _log_identity(line["key"], line) not in self.logs]
        self.logs = identities
        fresh.sort(key=lambda line: line["at"])
        return fresh[-_LOG_BATCH:]


def plan_summary(pending: Mapping[str, Any]) -> dict[str, Any]:
    """A pending plan as the approval panel shows it."""
    plan = pending.get("plan") or {}
    key = str(pending["key"])
    return {
        "id": pending["id"],
        "key": key,
        "resource_id": key.replace("/", "."),
        "at": pending["at"],
        "reason": pending.get("reason") or "",
        "status": pending.get("status"),
        "source": plan.get("source"),
        "policy": plan.get("policy"),
        "rule": plan.get("rule"),
        "reasoning": plan.get("reasoning") or "",
        "steps": [
            {"tool": s.get("tool"), "target": s.get("target"), "params": s.get("params") or {}}
            for s in plan.get("steps") or []
        ],
        "drifts": [line["text"] for line in drift_lines(plan.get("drifts") or [])],
    }


def llm_rows(store: Store, interactions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """List rows for ``interactions``, each with the outcome the controller recorded for it
    (for a plan that ran, its fix's outcome; for a parked one, what became of it)."""
    rows = []
    for i in interactions:
        fix = store.fix_records.fix(int(i["fix_id"])) if i.get("fix_id") else None
        pid = pending_plan_id(i)
        parked = store.pending_records.pending_plan(pid) if pid is not None else None
        rows.append(llm_summary(i, fix, parked))
    return rows


def _stats(store: Store, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    def head(stats: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in stats.items() if k not in ("by_rule", "by_tool")}

    return head(store.fix_stats_records.fix_stats()), head(
        store.fix_stats_records.fix_stats(now - 86400)
    )


def encode(event: str, data: Any, event_id: float | None = None) -> str:
    """One server-sent event. JSON has no raw newlines, so ``data`` is a single line."""
    head = f"id: {event_id:.3f}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return f"{head}event: {event}\ndata: {body}\n\n"


def read_logs(logs: LogSearch | None) -> list[dict[str, Any]]:
    """The newest lines of every resource's window (runs on the loop: the window is not
    thread-safe, and it is only ever touched from the loop)."""
    if logs is None:
        return []
    out: list[dict[str, Any]] = []
    for key in logs.keys():  # noqa: SIM118 - a LogAccumulator, not a dict
        out.extend(log_dict(key, line) for line in logs.recent(key, limit=_LOG_WINDOW))
    return out


async def event_stream(
    *,
    store: Store,
    logs: LogSearch | None,
    jobs: JobBoard,
    is_disconnected: Callable[[], Awaitable[bool]],
    closing: asyncio.Event,
    since: float | None,
    interval: float = 0.5,
    heartbeat: float = 15.0,
    max_age: float = 600.0,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[str]:
    """The events of one connection, until it ends (see the module docstring)."""
    tracker = Tracker(jobs_seq=jobs.seq)
    started = last_sent = time.monotonic()
    # Ask the browser to come back quickly after ``max_age`` or a restart.
    yield "retry: 1000\n\n"
    yield encode("hello", {"now": clock()}, clock())
    while not closing.is_set():
        try:
            view = await asyncio.to_thread(read_store, store)
        except RuntimeError:  # the store closed (a StoreClosedError is one): shutting down
            return
        now = clock()
        events, fixes_changed, llm_changed = tracker.diff(view)
        out = [encode(name, data, now) for name, data in events]
        if fixes_changed:
            # Both scopes: the overview shows the last day, the fixes page everything.
            every, day = await asyncio.to_thread(_stats, store, now)
            out.append(encode("stats", {"all": every, "day": day}, now))
        if llm_changed:
            for row in await asyncio.to_thread(llm_rows, store, llm_changed):
                out.append(encode("llm", row, now))
        lines = tracker.new_logs(read_logs(logs), since)
        if lines:
            out.append(encode("logs", lines, now))
        for job in jobs.changed_since(tracker.jobs_seq):
            out.append(encode("job", job.to_dict(), now))
        tracker.jobs_seq = jobs.seq
        if out:
            last_sent = time.monotonic()
            yield "".join(out)
        elif time.monotonic() - last_sent >= heartbeat:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"  # a comment: finds dead connections, keeps proxies open
        if time.monotonic() - started >= max_age or await is_disconnected():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), timeout=interval)
