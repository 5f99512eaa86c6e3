"""Fixes and their journal: the evaluation record of every plan that ran.

Stage: *act* and *verify* in docs/ARCHITECTURE.md's data flow write here; the planners, the guard and
the dashboard read it back. Crash safety is the point of the journal: ``claim_step``
commits a step *before* it runs, so after a crash ``mark_interrupted`` turns whatever was
still running into an honest "interrupted" record instead of a silent gap, and the next
controller resumes it (``resume_fix``) from what the journal says was done.

The journal is also the claim on a step: one row per (fix, step index), enforced by the
unique index ``fix_steps_fix_idx``, so two controllers sharing a store can never both run a
step. The SQL stays portable (plain INSERT, ``ON CONFLICT DO NOTHING`` and a row count).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.codec import plan_to_dict
from driftmend.errors import StoreError
from driftmend.model import Outcome, Plan, PlanStep, ToolResult
from driftmend.store.db import Database, Row, rowid
from driftmend.store.records import Record, dumps, kind_of, loads

__all__ = ["Fix", "FixHistory", "FixRecords", "FixStep", "FixSummary"]

_INTERRUPTED_MESSAGE = "interrupted: the controller stopped before this fix finished"
_CLAIM = """INSERT INTO fix_steps (fix_id, idx, tool, target, params, status, started_at)
            VALUES (?, ?, ?, ?, ?, 'started', ?)"""


@dataclass(frozen=True, eq=False)
class FixStep(Record):
    """One journaled step of a fix. ``result`` is None until the step finished:
    ``{"status", "data", "error"}`` as the tool returned it."""

    id: int
    fix_id: int
    index: int
    tool: str
    target: str
    params: dict[str, Any]
    # started, then ok, error or refused; interrupted when its controller stopped while it
    # ran; unknown once a resume found it so (its tool may or may not have acted: not rerun)
    status: str
    started_at: float
    finished_at: float | None
    duration_s: float | None
    result: dict[str, Any] | None
    error: str | None
    mcp_call: dict[str, Any] | None


@dataclass(frozen=True, eq=False)
class FixSummary(Record):
    """A fix without its steps, as lists show it: plan, outcome, signals, timings."""

    id: int
    key: str
    kind: str
    source: str
    reasoning: str
    policy: str | None
    rule: str | None
    root_cause: str
    dry_run: bool
    # running, done, interrupted (cut short by a shutdown or a crash: never an attempt;
    # ``verified`` then says 0 abandoned, None not resumed yet). A resumed fix runs again
    # (``resumed_at`` set) and ends done like any other.
    status: str
    outcome: Outcome | None
    verified: bool | None
    message: str
    drifts: list[dict[str, Any]]
    planned_steps: list[dict[str, Any]]
    plan: dict[str, Any]
    signals_before: dict[str, Any]
    signals_after: dict[str, Any] | None
    fault_at: float
    detected_at: float
    started_at: float
    finished_at: float | None
    recovered_at: float | None
    time_to_detect: float
    time_to_recover: float | None
    resumed_at: float | None  # when a later controller resumed it (None: never cut short)


@dataclass(frozen=True, eq=False)
class Fix(FixSummary):
    """A fix with its journaled steps, in order, each with its result."""

    steps: list[FixStep]


class FixHistory(Protocol):
    """The part of the fix record the reconciler and the escalation read: earlier fixes of
    a resource, newest first. A list of ``FixSummary`` (or of dicts) satisfies it in a test."""

    def fixes(
        self,
        key: str | None = None,
        limit: int = 100,
        outcome: Outcome | str | None = None,
        status: str | None = None,
    ) -> Sequence[Mapping[str, Any]]:
        """Fixes newest first, without their steps."""

    def fix(self, fix_id: int) -> Mapping[str, Any] | None:
        """One fix with its steps, or None."""


def fix_summary_of(r: Row) -> FixSummary:
    """The ``FixSummary`` of one ``fixes`` row."""
    return FixSummary(**_fix_fields(r))


def _fix_fields(r: Row) -> dict[str, Any]:
    plan = loads(r["plan"])
    return {
        "id": r["id"],
        "key": r["key"],
        "kind": r["kind"],
        "source": r["source"],
        "reasoning": r["reasoning"],
        "policy": r["policy"],
        "rule": r["rule"],
        "root_cause": r["root_cause"],
        "dry_run": bool(r["dry_run"]),
        "status": r["status"],
        "outcome": None if r["outcome"] is None else Outcome(r["outcome"]),
        "verified": None if r["verified"] is None else bool(r["verified"]),
        "message": r["message"],
        "drifts": plan["drifts"],
        "planned_steps": plan["steps"],
        "plan": plan,
        "signals_before": loads(r["signals_before"]),
        "signals_after": loads(r["signals_after"]),
        "fault_at": r["fault_at"],
        "detected_at": r["detected_at"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
        "recovered_at": r["recovered_at"],
        "time_to_detect": r["time_to_detect"],
        "time_to_recover": r["time_to_recover"],
        "resumed_at": r["resumed_at"],
    }


def _step_of(r: Row) -> FixStep:
    return FixStep(
        id=r["id"],
        fix_id=r["fix_id"],
        index=r["idx"],
        tool=r["tool"],
        target=r["target"],
        params=loads(r["params"]),
        status=r["status"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        duration_s=r["duration_s"],
        # ``finish_step`` always writes data: no data means the step never finished.
        result=None
        if r["data"] is None
        else {"status": r["status"], "data": loads(r["data"]), "error": r["error"]},
        error=r["error"],
        mcp_call=loads(r["mcp_call"]),
    )


class FixRecords:
    """Fixes and their step journal in the store's database.

    ``clock`` stamps the rows whose time the caller does not pass (fix start, step start
    and finish).
    """

    def __init__(self, db: Database, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock

    def begin_fix(
        self,
        key: str,
        plan: Plan,
        signals_before: Mapping[str, Any],
        fault_at: float,
        detected_at: float,
        root_cause: str,
        dry_run: bool = False,
    ) -> int:
        """Open a fix (status ``running``) before any step runs; returns its id."""
        with self._db.write() as db:
            cur = db.execute(
                """INSERT INTO fixes
                       (key, kind, source, reasoning, policy, rule, plan, root_cause, dry_run,
                        status, signals_before, fault_at, detected_at, started_at,
                        time_to_detect)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)""",
                (
                    key,
                    kind_of(key),
                    plan.source,
                    plan.reasoning,
                    plan.policy,
                    plan.rule,
                    dumps(plan_to_dict(plan)),
                    root_cause,
                    int(dry_run),
                    dumps(signals_before),
                    fault_at,
                    detected_at,
                    self._clock(),
                    detected_at - fault_at,
                ),
            )
            return rowid(cur)

    def claim_step(self, fix_id: int, index: int, step: PlanStep) -> int | None:
        """Commit step ``index`` of a fix (status ``started``) *before* it runs: the claim.

        Returns the step's id, or None when the step was already claimed (by this fix's
        earlier controller, or another one sharing the store): its tool must not be called.
        """
        args = (fix_id, index, step.tool, step.target, dumps(step.params), self._clock())
        with self._db.write() as db:
            if db.keeping:
                # The file refuses writes: the claim waits in memory and cannot be checked
                # now. One controller owns a SQLite store (ownership.py), so none other can
                # hold the step and healing goes on; should a row for it exist after all,
                # the replay refuses this plain INSERT and drops it (logged), rather than map
                # the step to another row.
                return rowid(db.execute(_CLAIM, args))
            cur = db.execute(_CLAIM + " ON CONFLICT (fix_id, idx) DO NOTHING", args)
            if db.keeping:  # the file refused this very INSERT: kept, as above
                return rowid(cur)
            return rowid(cur) if cur.rowcount == 1 else None

    def journal_step(self, fix_id: int, index: int, step: PlanStep) -> int:
        """``claim_step`` for a step known to be new; raises ``StoreError`` if it was not."""
        step_id = self.claim_step(fix_id, index, step)
        if step_id is None:
            raise StoreError(f"step {index} of fix {fix_id} is already journaled")
        return step_id

    def finish_step(
        self,
        step_id: int,
        result: ToolResult,
        duration_s: float,
        mcp_call: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how a journaled step ended (its status becomes the result's status)."""
        with self._db.write() as db:
            db.execute(
                """UPDATE fix_steps SET status = ?, finished_at = ?, duration_s = ?, data = ?,
                       error = ?, mcp_call = ?
                   WHERE id = ?""",
                (
                    str(result.status),
                    self._clock(),
                    duration_s,
                    dumps(result.data),
                    result.error,
                    None if mcp_call is None else dumps(mcp_call),
                    step_id,
                ),
            )

    def finish_fix(
        self,
        fix_id: int,
        outcome: Outcome,
        verified: bool,
        signals_after: Mapping[str, Any],
        finished_at: float,
        recovered_at: float | None,
        message: str = "",
    ) -> None:
        """Close a fix: outcome, verification and time to recover (None when not recovered)."""
        with self._db.write() as db:
            db.execute(
                """UPDATE fixes SET status = 'done', outcome = ?, verified = ?,
                       signals_after = ?, finished_at = ?, recovered_at = ?,
                       time_to_recover = CASE WHEN ? IS NULL THEN NULL ELSE ? - fault_at END,
                       message = ?
                   WHERE id = ?""",
                (
                    str(outcome),
                    int(verified),
                    dumps(signals_after),
                    finished_at,
                    recovered_at,
                    recovered_at,
                    recovered_at,
                    message,
                    fix_id,
                ),
            )

    def fixes(
        self,
        key: str | None = None,
        limit: int = 100,
        outcome: Outcome | str | None = None,
        status: str | None = None,
    ) -> list[FixSummary]:
        """Fixes newest first, without their steps; filter by key, outcome or status."""
        where, args = [], []
        for column, value in (("key", key), ("outcome", outcome), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(str(value))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.read(
            f"SELECT * FROM fixes {clause} ORDER BY id DESC LIMIT ?", [*args, limit]
        )
        return [fix_summary_of(r) for r in rows]

    def fix(self, fix_id: int) -> Fix | None:
        """One fix with its journaled steps (each with its result), or None."""
        rows = self._db.read("SELECT * FROM fixes WHERE id = ?", (fix_id,))
        return self._with_steps(rows[0]) if rows else None

    def fix_summaries(self, fix_ids: Sequence[int]) -> dict[int, FixSummary]:
        """The fixes with these ids, without steps, by id (missing ids are left out)."""
        if not fix_ids:
            return {}
        marks = ",".join("?" * len(fix_ids))
        rows = self._db.read(f"SELECT * FROM fixes WHERE id IN ({marks})", list(fix_ids))
        return {int(r["id"]): fix_summary_of(r) for r in rows}

    def last_fix(self, key: str) -> Fix | None:
        """The newest fix of a resource, with its steps, or None."""
        rows = self._db.read("SELECT MAX(id) FROM fixes WHERE key = ?", (key,))
        return None if rows[0][0] is None else self.fix(int(rows[0][0]))

    def interrupted_fixes(self, since: float | None = None) -> list[Fix]:
        """Fixes a crash cut short (``mark_interrupted``), newest first, with their steps."""
        rows = self._db.read(
            "SELECT * FROM fixes WHERE status = 'interrupted' AND finished_at >= ? "
            "ORDER BY id DESC",
            (-math.inf if since is None else since,),
        )
        return [self._with_steps(r) for r in rows]

    def mark_interrupted(self, now: float, message: str = _INTERRUPTED_MESSAGE) -> int:
        """Mark fixes still ``running`` and steps still ``started`` as ``interrupted``.

        Call at start-up, before any worker runs (a running fix then belongs to a controller
        that died), and at shutdown once the workers are stopped (``message`` says which).
        An interrupted fix is not an attempt of its rung: it is judged later
        (``close_interrupted``). Returns how many fixes were marked (of those written: a
        store that cannot be written marks the ones it kept when it writes them).
        """
        # Counted by a read, not the UPDATE's rowcount: a store that cannot be written keeps
        # the UPDATE for later (the fixes it kept too), where a rowcount cannot be known.
        running = int(self._db.read("SELECT COUNT(*) FROM fixes WHERE status = 'running'")[0][0])
        with self._db.write() as db:
            db.execute(
                """UPDATE fix_steps SET status = 'interrupted', finished_at = ?,
                       error = COALESCE(error, 'the controller stopped while this step ran')
                   WHERE status = 'started'""",
                (now,),
            )
            db.execute(
                """UPDATE fixes SET status = 'interrupted', finished_at = ?, message = ?
                   WHERE status = 'running'""",
                (now, message),
            )
        return running

    def unjudged_interrupted(self) -> dict[str, list[int]]:
        """Interrupted fixes neither resumed nor closed yet (``verified`` NULL), their ids by
        resource key, oldest first."""
        rows = self._db.read(
            "SELECT id, key FROM fixes WHERE status = 'interrupted' AND verified IS NULL "
            "ORDER BY id"
        )
        out: dict[str, list[int]] = {}
        for r in rows:
            out.setdefault(str(r["key"]), []).append(int(r["id"]))
        return out

    def close_interrupted(self, fix_ids: Sequence[int], recovered: bool, note: str) -> None:
        """Close interrupted fixes that are not resumed (their resource is gone, ...).

        ``recovered``: the resource was seen in sync (``verified`` 1), else the fix is
        abandoned (``verified`` 0); ``note`` is appended to its message. The status stays
        ``interrupted`` and the outcome NULL: no ladder counts it as an attempt, and no time
        to recover is claimed, since nobody saw when it recovered.
        """
        if not fix_ids:
            return
        marks = ",".join("?" * len(fix_ids))
        with self._db.write() as db:
            db.execute(
                f"""UPDATE fixes SET verified = ?, message = message || '; ' || ?
                    WHERE id IN ({marks}) AND status = 'interrupted' AND verified IS NULL""",
                (int(recovered), note, *fix_ids),
            )

    def resume_fix(self, fix_id: int, now: float, unknown_note: str) -> bool:
        """Take an interrupted fix up again: ``running`` once more, ``resumed_at`` now.

        A compare-and-set: True for the one caller that turned it from ``interrupted`` (and
        not closed) to ``running``, False for any other. Its steps that started and never
        finished become ``unknown``, with ``unknown_note`` as their error: their tools may
        or may not have acted, and they are not run again.
        """
        with self._db.write() as db:
            cur = db.execute(
                """UPDATE fixes SET status = 'running', resumed_at = ?, finished_at = NULL
                   WHERE id = ? AND status = 'interrupted' AND verified IS NULL""",
                (now, fix_id),
            )
            if cur.rowcount != 1:
                return False
            db.execute(
                """UPDATE fix_steps SET status = 'unknown', error = ?
                   WHERE fix_id = ? AND data IS NULL""",
                (unknown_note, fix_id),
            )
            return True

    def _with_steps(self, r: Row) -> Fix:
        steps = self._db.read(
            "SELECT * FROM fix_steps WHERE fix_id = ? ORDER BY idx, id", (int(r["id"]),)
        )
        return Fix(**_fix_fields(r), steps=[_step_of(s) for s in steps])
