"""The store: the durable record of every resource, reconciliation, fix and decision.

Stage: *outputs* in DESIGN.md's data flow (``store``). The loop writes here after each
stage (observe, reconcile, guard, act, verify); the dashboard and ``driftmend get`` read
it back. One SQLite file in WAL mode, one connection guarded by a lock: every call is
short and synchronous, so the async loop calls it directly.

Crash safety is the point of the fix journal: ``journal_step`` commits a step *before* it
runs, so after a crash ``mark_interrupted`` turns whatever was still running into an
honest "interrupted" record instead of a silent gap.

Everything returned is a plain dict of JSON values. Times are Unix float seconds (UTC).
Nothing secret is stored here: callers redact before they write.
"""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from driftmend.errors import ConfigurationError, StoreError
from driftmend.model import (
    Drift,
    DriftCondition,
    Health,
    Outcome,
    PendingStatus,
    Plan,
    PlanSource,
    PlanStep,
    ToolResult,
)

__all__ = [
    "PENDING_STATUSES",
    "SCHEMA_VERSION",
    "Store",
    "drift_from_dict",
    "drift_to_dict",
    "plan_from_dict",
    "plan_to_dict",
]

# Each entry moves the schema one version forward. Append only: a released entry is never
# edited, because databases in the field have already run it.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE resources (
            key TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            spec TEXT NOT NULL DEFAULT '{}',
            health TEXT NOT NULL DEFAULT 'unknown',
            signals TEXT NOT NULL DEFAULT '{}',
            observed_at REAL,
            message TEXT NOT NULL DEFAULT '',
            paused INTEGER NOT NULL DEFAULT 0
        )""",
        """CREATE TABLE operator_flags (
            key TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            at REAL NOT NULL
        )""",
        """CREATE TABLE signal_samples (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            signals TEXT NOT NULL
        )""",
        "CREATE INDEX signal_samples_key_at ON signal_samples (key, at)",
        """CREATE TABLE reconciliations (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            started_at REAL NOT NULL,
            duration_s REAL NOT NULL,
            outcome TEXT NOT NULL,
            drifts TEXT NOT NULL,
            signals TEXT NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX reconciliations_key_at ON reconciliations (key, started_at)",
        "CREATE INDEX reconciliations_at ON reconciliations (started_at)",
        """CREATE TABLE reconcile_counts (
            key TEXT NOT NULL,
            outcome TEXT NOT NULL,
            count INTEGER NOT NULL,
            last_at REAL NOT NULL,
            PRIMARY KEY (key, outcome)
        )""",
        """CREATE TABLE fixes (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            reasoning TEXT NOT NULL,
            policy TEXT,
            rule TEXT,
            plan TEXT NOT NULL,
            root_cause TEXT NOT NULL,
            dry_run INTEGER NOT NULL,
            status TEXT NOT NULL,
            outcome TEXT,
            verified INTEGER,
            message TEXT NOT NULL DEFAULT '',
            signals_before TEXT NOT NULL,
            signals_after TEXT,
            fault_at REAL NOT NULL,
            detected_at REAL NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            recovered_at REAL,
            time_to_detect REAL NOT NULL,
            time_to_recover REAL
        )""",
        "CREATE INDEX fixes_key_id ON fixes (key, id)",
        "CREATE INDEX fixes_detected_at ON fixes (detected_at)",
        "CREATE INDEX fixes_status ON fixes (status)",
        """CREATE TABLE fix_steps (
            id INTEGER PRIMARY KEY,
            fix_id INTEGER NOT NULL REFERENCES fixes (id),
            idx INTEGER NOT NULL,
            tool TEXT NOT NULL,
            target TEXT NOT NULL,
            params TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            duration_s REAL,
            data TEXT,
            error TEXT,
            mcp_call TEXT
        )""",
        "CREATE INDEX fix_steps_fix ON fix_steps (fix_id, idx)",
        "CREATE INDEX fix_steps_status ON fix_steps (status)",
        """CREATE TABLE guard_decisions (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            admitted INTEGER NOT NULL,
            reason TEXT NOT NULL,
            source TEXT NOT NULL,
            policy TEXT,
            rule TEXT,
            plan TEXT NOT NULL
        )""",
        "CREATE INDEX guard_decisions_key_at ON guard_decisions (key, at)",
        "CREATE INDEX guard_decisions_at ON guard_decisions (at)",
        """CREATE TABLE actions (
            id INTEGER PRIMARY KEY,
            key TEXT,
            at REAL NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX actions_at ON actions (at)",
        "CREATE INDEX actions_key_at ON actions (key, at)",
        """CREATE TABLE pending_plans (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            reason TEXT NOT NULL,
            plan TEXT NOT NULL,
            status TEXT NOT NULL,
            actor TEXT,
            decided_at REAL
        )""",
        "CREATE INDEX pending_plans_status_at ON pending_plans (status, at)",
        "CREATE INDEX pending_plans_key_at ON pending_plans (key, at)",
        """CREATE TABLE llm_interactions (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            at REAL NOT NULL,
            planner TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt TEXT NOT NULL,
            response TEXT NOT NULL,
            plan TEXT,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            latency_s REAL NOT NULL,
            error TEXT
        )""",
        "CREATE INDEX llm_interactions_key_at ON llm_interactions (key, at)",
        "CREATE INDEX llm_interactions_at ON llm_interactions (at)",
    ),
    (
        # What became of an LLM's plan: the mode it ran under, the guard's decision, the fix.
        "ALTER TABLE llm_interactions ADD COLUMN mode TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN decision TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN reason TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN fix_id INTEGER",
        "ALTER TABLE llm_interactions ADD COLUMN cost_usd REAL",
    ),
    (
        # A shadow plan against the fix that was then run: agrees or differs, and which fix.
        "ALTER TABLE llm_interactions ADD COLUMN agreement TEXT",
        "ALTER TABLE llm_interactions ADD COLUMN compared_fix_id INTEGER",
        # The plan parked for an operator's approval, when the mode or a step asked for one.
        "ALTER TABLE llm_interactions ADD COLUMN pending_plan_id INTEGER",
        # Why a plan was parked: 'incident' (a drift's plan, superseded when the drift is
        # over) or 'asked' (an operator asked the LLM; it waits for them whatever happens).
        "ALTER TABLE pending_plans ADD COLUMN origin TEXT NOT NULL DEFAULT 'incident'",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

PENDING_STATUSES = frozenset(s.value for s in PendingStatus)
_PLAN_SOURCES: frozenset[str] = frozenset(get_args(PlanSource))
_INTERRUPTED_MESSAGE = "interrupted: the controller stopped before this fix finished"


# --- plans as data ------------------------------------------------------------------------


def drift_to_dict(drift: Drift) -> dict[str, Any]:
    """A drift as JSON-ready data; ``id`` and ``description`` are derived, for display."""
    return {
        "key": drift.key,
        "signal": drift.signal,
        "expected": drift.expected,
        "observed": drift.observed,
        "since": drift.since,
        "policy": drift.policy,
        "rule": drift.rule,
        "evidence": dict(drift.evidence),
        "conditions": [
            {"signal": c.signal, "operator": c.operator, "value": c.value, "for": c.hold}
            for c in drift.conditions
        ],
        "id": drift.id,
        "description": drift.describe(),
    }


def drift_from_dict(d: Mapping[str, Any]) -> Drift:
    """The inverse of ``drift_to_dict``; derived fields are ignored."""
    return Drift(
        key=str(d["key"]),
        signal=str(d["signal"]),
        expected=str(d["expected"]),
        observed=d.get("observed"),
        since=float(d["since"]),
        policy=d.get("policy"),
        rule=d.get("rule"),
        evidence=dict(d.get("evidence") or {}),
        conditions=tuple(
            DriftCondition(str(c["signal"]), str(c["operator"]), c["value"], float(c["for"]))
            for c in d.get("conditions") or ()
        ),
    )


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """A plan as JSON-ready data, enough for ``plan_from_dict`` to rebuild it exactly."""
    return {
        "key": plan.key,
        "source": plan.source,
        "reasoning": plan.reasoning,
        "policy": plan.policy,
        "rule": plan.rule,
        "steps": [
            {"tool": s.tool, "target": s.target, "params": dict(s.params)} for s in plan.steps
        ],
        "drifts": [drift_to_dict(d) for d in plan.drifts],
        "verify_timeout": plan.verify_timeout,
        "verify_interval": plan.verify_interval,
    }


def plan_from_dict(d: Mapping[str, Any]) -> Plan:
    """Rebuild a ``Plan`` from ``plan_to_dict`` output (an approved pending plan, a replay).

    Raises ``ValueError`` for an unknown source: a plan of unknown origin must not run.
    """
    source = str(d["source"])
    if source not in _PLAN_SOURCES:
        raise ValueError(f"unknown plan source {source!r}; expected one of {sorted(_PLAN_SOURCES)}")
    return Plan(
        key=str(d["key"]),
        steps=tuple(
            PlanStep(
                tool=str(s["tool"]), target=str(s["target"]), params=dict(s.get("params") or {})
            )
            for s in d.get("steps") or ()
        ),
        source=source,  # type: ignore[arg-type]  # checked against PlanSource just above
        reasoning=str(d.get("reasoning") or ""),
        policy=d.get("policy"),
        rule=d.get("rule"),
        drifts=tuple(drift_from_dict(x) for x in d.get("drifts") or ()),
        verify_timeout=float(d.get("verify_timeout", 30.0)),
        verify_interval=float(d.get("verify_interval", 0.5)),
    )


# --- JSON columns -------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with mappings as dicts, sequences as lists and non-finite floats as None.

    A ratio over a zero limit can be ``inf``; JSON has no such number and the dashboard's
    JSON responses refuse it, so it is stored as "unknown" rather than failing the write.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), allow_nan=False, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _kind_of(key: str) -> str:
    """The kind part of a ``Kind/name`` key."""
    return key.partition("/")[0]


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks, as numpy does."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lower = math.floor(pos)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (pos - lower)


def _summary(values: Sequence[float]) -> tuple[float | None, float | None]:
    return (statistics.median(values) if values else None, _percentile(values, 0.95))


# --- the store ----------------------------------------------------------------------------


class Store:
    """The SQLite-backed record of the controller. Thread-safe; every call is short.

    ``clock`` stamps the few rows whose time the caller does not pass (step start/finish).
    ``signal_retention_s`` bounds the signal history kept per resource for charts.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        signal_retention_s: float = 24 * 3600.0,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._retention = signal_retention_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # The seam to SQLite: its errors (and the file system's) become StoreError here, so
        # `driftmend get --db-path <a directory>` says what is wrong in one line.
        if self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory: give the store's file, like {self.path / 'driftmend.db'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans
            # exactly one public call and nothing is left open between calls.
            self._conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None, timeout=5.0
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        try:
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except BaseException as exc:
            self._conn.close()
            self._conn = None
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(
                    f"{self.path} is not a usable driftmend store ({exc}): give another "
                    "--db-path, or move this file away"
                ) from exc
            raise

    # -- lifecycle

    def close(self) -> None:
        """Close the connection; later calls raise. Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the store is closed")
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; IMMEDIATE so a second process waits, not fails."""
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db().execute(sql, args).fetchall()

    def _migrate(self) -> None:
        db = self._db()
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at REAL)"
        )
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = int(row[0] or 0)
        if current > SCHEMA_VERSION:
            raise ConfigurationError(
                f"{self.path}: store schema version {current} is newer than this driftmend "
                f"({SCHEMA_VERSION}); upgrade driftmend or use another state directory"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[version - 1]:
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self._read("SELECT MAX(version) FROM schema_version")[0][0])

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``)."""
        return str(self._read("PRAGMA journal_mode")[0][0])

    # -- resources

    def upsert_resource(
        self,
        key: str,
        kind: str,
        spec: Mapping[str, Any],
        health: Health,
        signals: Mapping[str, Any],
        observed_at: float,
        message: str = "",
        paused: bool | None = None,
    ) -> None:
        """Record the latest observed state of a resource; ``paused=None`` keeps the flag.

        A healthy resource no longer needs an operator, so that flag is cleared here.
        """
        with self._tx() as db:
            db.execute(
                """INSERT INTO resources
                       (key, kind, spec, health, signals, observed_at, message, paused)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET
                       kind = excluded.kind, spec = excluded.spec, health = excluded.health,
                       signals = excluded.signals, observed_at = excluded.observed_at,
                       message = excluded.message,
                       paused = CASE WHEN ? IS NULL THEN resources.paused
                                     ELSE excluded.paused END""",
                (
                    key,
                    kind,
                    _dumps(spec),
                    str(health),
                    _dumps(signals),
                    observed_at,
                    message,
                    int(bool(paused)),
                    None if paused is None else int(paused),
                ),
            )
            if health == Health.HEALTHY:
                db.execute("DELETE FROM operator_flags WHERE key = ?", (key,))

    def resources(self) -> list[dict[str, Any]]:
        """Every resource with its observed state, operator flag and last fix, by key."""
        return self._resources_where("", ())

    def resource(self, key: str) -> dict[str, Any] | None:
        """One resource as in ``resources()``, or None."""
        found = self._resources_where("WHERE r.key = ?", (key,))
        return found[0] if found else None

    def _resources_where(self, where: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        rows = self._read(
            f"""SELECT r.*, o.reason AS operator_reason, o.at AS operator_at,
                       (SELECT MAX(f.id) FROM fixes f WHERE f.key = r.key) AS last_fix_id
                FROM resources r LEFT JOIN operator_flags o ON o.key = r.key
                {where} ORDER BY r.key""",
            args,
        )
        fix_ids = [r["last_fix_id"] for r in rows if r["last_fix_id"] is not None]
        fixes: dict[int, dict[str, Any]] = {}
        if fix_ids:
            marks = ",".join("?" * len(fix_ids))
            for f in self._read(f"SELECT * FROM fixes WHERE id IN ({marks})", fix_ids):
                fixes[int(f["id"])] = self._fix_dict(f)
        return [
            {
                "key": r["key"],
                "kind": r["kind"],
                "health": r["health"],
                "signals": _loads(r["signals"]),
                "observed_at": r["observed_at"],
                "message": r["message"],
                "paused": bool(r["paused"]),
                "spec": _loads(r["spec"]),
                "needs_operator": r["operator_reason"] is not None,
                "needs_operator_reason": r["operator_reason"],
                "needs_operator_at": r["operator_at"],
                "last_fix": fixes.get(r["last_fix_id"]) if r["last_fix_id"] else None,
            }
            for r in rows
        ]

    def set_paused(self, key: str, paused: bool) -> None:
        """Pause or resume healing of a resource (its row is created if not yet observed)."""
        with self._tx() as db:
            db.execute(
                """INSERT INTO resources (key, kind, paused) VALUES (?, ?, ?)
                   ON CONFLICT (key) DO UPDATE SET paused = excluded.paused""",
                (key, _kind_of(key), int(paused)),
            )

    def remove_resource(self, key: str) -> None:
        """Forget a deleted resource's current state; its reconciliations and fixes stay."""
        with self._tx() as db:
            db.execute("DELETE FROM resources WHERE key = ?", (key,))
            db.execute("DELETE FROM operator_flags WHERE key = ?", (key,))
            # Chart data of a resource that no longer exists is not history anyone reads,
            # and per-key pruning would never reach it again.
            db.execute("DELETE FROM signal_samples WHERE key = ?", (key,))

    def needs_operator(self, key: str) -> bool:
        """Whether the resource waits for an operator (an escalation nobody could plan)."""
        return bool(self._read("SELECT 1 FROM operator_flags WHERE key = ?", (key,)))

    def set_needs_operator(self, key: str, reason: str | None, at: float | None = None) -> None:
        """Flag a resource as needing an operator with ``reason``, or clear it with None."""
        with self._tx() as db:
            if reason is None:
                db.execute("DELETE FROM operator_flags WHERE key = ?", (key,))
            else:
                db.execute(
                    """INSERT INTO operator_flags (key, reason, at) VALUES (?, ?, ?)
                       ON CONFLICT (key) DO UPDATE SET reason = excluded.reason""",
                    (key, reason, self._clock() if at is None else at),
                )

    # -- signal history

    def record_signals(self, key: str, at: float, signals: Mapping[str, Any]) -> None:
        """Append one sample of a resource's signals; samples older than the retention go."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO signal_samples (key, at, signals) VALUES (?, ?, ?)",
                (key, at, _dumps(signals)),
            )
            # A range delete on the (key, at) index: cheap, and usually deletes one row.
            db.execute(
                "DELETE FROM signal_samples WHERE key = ? AND at < ?", (key, at - self._retention)
            )

    def signal_history(
        self, key: str, names: Sequence[str] | None, since: float
    ) -> list[dict[str, Any]]:
        """Samples since ``since``, oldest first: ``{"at", "signals"}``, only ``names`` if given."""
        rows = self._read(
            "SELECT at, signals FROM signal_samples WHERE key = ? AND at >= ? ORDER BY at, id",
            (key, since),
        )
        wanted = None if names is None else set(names)
        out = []
        for r in rows:
            signals: dict[str, Any] = _loads(r["signals"])
            if wanted is not None:
                signals = {k: v for k, v in signals.items() if k in wanted}
            out.append({"at": r["at"], "signals": signals})
        return out

    # -- reconciliations

    def record_reconciliation(
        self,
        key: str,
        kind: str,
        started_at: float,
        duration_s: float,
        outcome: Outcome,
        drifts: Sequence[Drift],
        signals: Mapping[str, Any],
        error: str | None = None,
    ) -> int:
        """Record an interesting pass (drift or error) in full; it is counted too.

        Call this *or* ``count_reconciliation`` once per pass, never both.
        """
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO reconciliations
                       (key, kind, started_at, duration_s, outcome, drifts, signals, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    key,
                    kind,
                    started_at,
                    duration_s,
                    str(outcome),
                    _dumps([drift_to_dict(d) for d in drifts]),
                    _dumps(signals),
                    error,
                ),
            )
            self._count(db, key, outcome, started_at)
            return _rowid(cur)

    def count_reconciliation(self, key: str, outcome: Outcome, at: float) -> None:
        """Count an uneventful pass (in sync, waiting, paused) without storing its details."""
        with self._tx() as db:
            self._count(db, key, outcome, at)

    @staticmethod
    def _count(db: sqlite3.Connection, key: str, outcome: Outcome, at: float) -> None:
        db.execute(
            """INSERT INTO reconcile_counts (key, outcome, count, last_at) VALUES (?, ?, 1, ?)
               ON CONFLICT (key, outcome) DO UPDATE SET
                   count = count + 1, last_at = MAX(last_at, excluded.last_at)""",
            (key, str(outcome), at),
        )

    def reconciliation_counts(self, key: str | None = None) -> dict[str, int]:
        """Passes per outcome, for one resource or all."""
        if key is None:
            rows = self._read(
                "SELECT outcome, SUM(count) AS n FROM reconcile_counts GROUP BY outcome"
            )
        else:
            rows = self._read(
                "SELECT outcome, count AS n FROM reconcile_counts WHERE key = ?", (key,)
            )
        return {r["outcome"]: int(r["n"]) for r in rows}

    def reconciliations(self, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Recorded passes, newest first."""
        rows = self._read(
            f"""SELECT * FROM reconciliations {"WHERE key = ?" if key is not None else ""}
                ORDER BY started_at DESC, id DESC LIMIT ?""",
            (key, limit) if key is not None else (limit,),
        )
        return [
            {
                "id": r["id"],
                "key": r["key"],
                "kind": r["kind"],
                "started_at": r["started_at"],
                "duration_s": r["duration_s"],
                "outcome": r["outcome"],
                "drifts": _loads(r["drifts"]),
                "signals": _loads(r["signals"]),
                "error": r["error"],
            }
            for r in rows
        ]

    # -- fixes: the evaluation record

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
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO fixes
                       (key, kind, source, reasoning, policy, rule, plan, root_cause, dry_run,
                        status, signals_before, fault_at, detected_at, started_at,
                        time_to_detect)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)""",
                (
                    key,
                    _kind_of(key),
                    plan.source,
                    plan.reasoning,
                    plan.policy,
                    plan.rule,
                    _dumps(plan_to_dict(plan)),
                    root_cause,
                    int(dry_run),
                    _dumps(signals_before),
                    fault_at,
                    detected_at,
                    self._clock(),
                    detected_at - fault_at,
                ),
            )
            return _rowid(cur)

    def journal_step(self, fix_id: int, index: int, step: PlanStep) -> int:
        """Commit a step (status ``started``) *before* it runs; returns the step id."""
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO fix_steps (fix_id, idx, tool, target, params, status, started_at)
                   VALUES (?, ?, ?, ?, ?, 'started', ?)""",
                (fix_id, index, step.tool, step.target, _dumps(step.params), self._clock()),
            )
            return _rowid(cur)

    def finish_step(
        self,
        step_id: int,
        result: ToolResult,
        duration_s: float,
        mcp_call: Mapping[str, Any] | None = None,
    ) -> None:
        """Record how a journaled step ended (its status becomes the result's status)."""
        with self._tx() as db:
            db.execute(
                """UPDATE fix_steps SET status = ?, finished_at = ?, duration_s = ?, data = ?,
                       error = ?, mcp_call = ?
                   WHERE id = ?""",
                (
                    str(result.status),
                    self._clock(),
                    duration_s,
                    _dumps(result.data),
                    result.error,
                    None if mcp_call is None else _dumps(mcp_call),
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
        with self._tx() as db:
            db.execute(
                """UPDATE fixes SET status = 'done', outcome = ?, verified = ?,
                       signals_after = ?, finished_at = ?, recovered_at = ?,
                       time_to_recover = CASE WHEN ? IS NULL THEN NULL ELSE ? - fault_at END,
                       message = ?
                   WHERE id = ?""",
                (
                    str(outcome),
                    int(verified),
                    _dumps(signals_after),
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
    ) -> list[dict[str, Any]]:
        """Fixes newest first, without their steps; filter by key, outcome or status."""
        where, args = [], []
        for column, value in (("key", key), ("outcome", outcome), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(str(value))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(f"SELECT * FROM fixes {clause} ORDER BY id DESC LIMIT ?", [*args, limit])
        return [self._fix_dict(r) for r in rows]

    def fix(self, fix_id: int) -> dict[str, Any] | None:
        """One fix with its journaled steps (each with its result), or None."""
        rows = self._read("SELECT * FROM fixes WHERE id = ?", (fix_id,))
        if not rows:
            return None
        fix = self._fix_dict(rows[0])
        fix["steps"] = self._steps(fix_id)
        return fix

    def last_fix(self, key: str) -> dict[str, Any] | None:
        """The newest fix of a resource, with its steps, or None."""
        rows = self._read("SELECT MAX(id) FROM fixes WHERE key = ?", (key,))
        return None if rows[0][0] is None else self.fix(int(rows[0][0]))

    def interrupted_fixes(self, since: float | None = None) -> list[dict[str, Any]]:
        """Fixes a crash cut short (``mark_interrupted``), newest first, with their steps."""
        rows = self._read(
            "SELECT * FROM fixes WHERE status = 'interrupted' AND finished_at >= ? "
            "ORDER BY id DESC",
            (-math.inf if since is None else since,),
        )
        out = []
        for r in rows:
            fix = self._fix_dict(r)
            fix["steps"] = self._steps(int(r["id"]))
            out.append(fix)
        return out

    def mark_interrupted(self, now: float) -> int:
        """Mark fixes still ``running`` and steps still ``started`` as ``interrupted``.

        Call once at start-up, before any worker runs: a running fix at that moment belongs
        to a controller that died. Returns how many fixes were marked.
        """
        with self._tx() as db:
            db.execute(
                """UPDATE fix_steps SET status = 'interrupted', finished_at = ?,
                       error = COALESCE(error, 'the controller stopped while this step ran')
                   WHERE status = 'started'""",
                (now,),
            )
            cur = db.execute(
                """UPDATE fixes SET status = 'interrupted', finished_at = ?, message = ?
                   WHERE status = 'running'""",
                (now, _INTERRUPTED_MESSAGE),
            )
            return cur.rowcount

    def fix_stats(self, since: float | None = None) -> dict[str, Any]:
        """How well fixing works: count, success rate, time to recover; by rule and by tool.

        Dry runs are left out (they fix nothing). Success rate is ``fixed`` over closed fixes
        (done or interrupted); times to recover are over recovered fixes only.
        """
        floor = -math.inf if since is None else since
        rows = self._read(
            """SELECT id, source, policy, rule, status, outcome, time_to_detect, time_to_recover
               FROM fixes WHERE dry_run = 0 AND detected_at >= ?""",
            (floor,),
        )
        steps = self._read(
            """SELECT s.tool, s.status, s.duration_s, f.outcome
               FROM fix_steps s JOIN fixes f ON f.id = s.fix_id
               WHERE f.dry_run = 0 AND f.detected_at >= ?""",
            (floor,),
        )
        by_rule: dict[str, list[sqlite3.Row]] = {}
        for r in rows:
            # Rule names are unique only within their policy; an LLM plan has no rule at all.
            label = (
                f"{r['policy']}/{r['rule']}"
                if r["policy"] and r["rule"]
                else (r["rule"] or r["source"])
            )
            by_rule.setdefault(label, []).append(r)
        by_tool: dict[str, list[sqlite3.Row]] = {}
        for s in steps:
            by_tool.setdefault(s["tool"], []).append(s)
        return {
            "since": since,
            **_fix_group_stats(rows),
            "by_rule": {label: _fix_group_stats(group) for label, group in sorted(by_rule.items())},
            "by_tool": {tool: _step_group_stats(group) for tool, group in sorted(by_tool.items())},
        }

    def _steps(self, fix_id: int) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM fix_steps WHERE fix_id = ? ORDER BY idx, id", (fix_id,))
        return [
            {
                "id": r["id"],
                "fix_id": r["fix_id"],
                "index": r["idx"],
                "tool": r["tool"],
                "target": r["target"],
                "params": _loads(r["params"]),
                "status": r["status"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "duration_s": r["duration_s"],
                # ``finish_step`` always writes data: no data means the step never finished.
                "result": None
                if r["data"] is None
                else {"status": r["status"], "data": _loads(r["data"]), "error": r["error"]},
                "error": r["error"],
                "mcp_call": _loads(r["mcp_call"]),
            }
            for r in rows
        ]

    @staticmethod
    def _fix_dict(r: sqlite3.Row) -> dict[str, Any]:
        plan = _loads(r["plan"])
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
            "outcome": r["outcome"],
            "verified": None if r["verified"] is None else bool(r["verified"]),
            "message": r["message"],
            "drifts": plan["drifts"],
            "planned_steps": plan["steps"],
            "plan": plan,
            "signals_before": _loads(r["signals_before"]),
            "signals_after": _loads(r["signals_after"]),
            "fault_at": r["fault_at"],
            "detected_at": r["detected_at"],
            "started_at": r["started_at"],
            "finished_at": r["finished_at"],
            "recovered_at": r["recovered_at"],
            "time_to_detect": r["time_to_detect"],
            "time_to_recover": r["time_to_recover"],
        }

    # -- guard decisions

    def record_guard_decision(
        self, key: str, plan: Plan, admitted: bool, reason: str, at: float
    ) -> int:
        """Record the guard's verdict on a plan, admitted or not, with the reason."""
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO guard_decisions
                       (key, at, admitted, reason, source, policy, rule, plan)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    key,
                    at,
                    int(admitted),
                    reason,
                    plan.source,
                    plan.policy,
                    plan.rule,
                    _dumps(plan_to_dict(plan)),
                ),
            )
            return _rowid(cur)

    def guard_decisions(self, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Guard verdicts, newest first."""
        rows = self._read(
            f"""SELECT * FROM guard_decisions {"WHERE key = ?" if key is not None else ""}
                ORDER BY at DESC, id DESC LIMIT ?""",
            (key, limit) if key is not None else (limit,),
        )
        return [
            {
                "id": r["id"],
                "key": r["key"],
                "at": r["at"],
                "admitted": bool(r["admitted"]),
                "reason": r["reason"],
                "source": r["source"],
                "policy": r["policy"],
                "rule": r["rule"],
                "plan": _loads(r["plan"]),
            }
            for r in rows
        ]

    # -- audit

    def record_action(
        self, key: str | None, action: str, actor: str, detail: Mapping[str, Any], at: float
    ) -> int:
        """Audit one action by a person or the controller (pause, approve, chaos, ...)."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO actions (key, at, action, actor, detail) VALUES (?, ?, ?, ?, ?)",
                (key, at, action, actor, _dumps(detail)),
            )
            return _rowid(cur)

    def actions(self, limit: int = 100, key: str | None = None) -> list[dict[str, Any]]:
        """Audited actions, newest first."""
        rows = self._read(
            f"""SELECT * FROM actions {"WHERE key = ?" if key is not None else ""}
                ORDER BY at DESC, id DESC LIMIT ?""",
            (key, limit) if key is not None else (limit,),
        )
        return [
            {
                "id": r["id"],
                "key": r["key"],
                "at": r["at"],
                "action": r["action"],
                "actor": r["actor"],
                "detail": _loads(r["detail"]),
            }
            for r in rows
        ]

    # -- pending plans (operator approval)

    def add_pending_plan(
        self, key: str, plan: Plan, reason: str, at: float, origin: str = "incident"
    ) -> int:
        """Park a plan until an operator approves or rejects it; returns its id.

        ``origin`` is ``incident`` (superseded once the drift is over) or ``asked`` (an
        operator's own request: it waits for them)."""
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO pending_plans (key, at, reason, plan, status, origin)
                   VALUES (?, ?, ?, ?, 'pending', ?)""",
                (key, at, reason, _dumps(plan_to_dict(plan)), origin),
            )
            return _rowid(cur)

    def pending_plans(
        self, status: str | None = "pending", key: str | None = None
    ) -> list[dict[str, Any]]:
        """Parked plans with ``status`` (None: any), oldest first like a queue."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if key is not None:
            where.append("key = ?")
            args.append(key)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(f"SELECT * FROM pending_plans {clause} ORDER BY at, id", args)
        return [_pending_dict(r) for r in rows]

    def pending_plan(self, plan_id: int) -> dict[str, Any] | None:
        """One parked plan, or None; ``plan_from_dict(d["plan"])`` rebuilds the ``Plan``."""
        rows = self._read("SELECT * FROM pending_plans WHERE id = ?", (plan_id,))
        return _pending_dict(rows[0]) if rows else None

    def set_pending_status(
        self,
        plan_id: int,
        status: str,
        actor: str,
        at: float,
        expected: str | None = None,
    ) -> bool:
        """Move a parked plan to ``status``; with ``expected``, only from that status.

        Returns whether a row changed: ``expected="pending"`` makes approval a compare-and-set,
        so two operators clicking at once cannot both run the plan.
        """
        if status not in PENDING_STATUSES:
            raise ValueError(
                f"unknown pending status {status!r}; expected one of {sorted(PENDING_STATUSES)}"
            )
        with self._tx() as db:
            cur = db.execute(
                """UPDATE pending_plans SET status = ?, actor = ?, decided_at = ?
                   WHERE id = ? AND (? IS NULL OR status = ?)""",
                (status, actor, at, plan_id, expected, expected),
            )
            return cur.rowcount > 0

    # -- LLM interactions

    def record_llm_interaction(
        self,
        key: str,
        planner: str,
        model: str,
        prompt: Any,
        response: Any,
        plan: Plan | None,
        tokens_in: int,
        tokens_out: int,
        latency_s: float,
        at: float,
        error: str | None = None,
    ) -> int:
        """Store one LLM exchange whole: prompt, response, parsed plan, tokens, latency."""
        with self._tx() as db:
            cur = db.execute(
                """INSERT INTO llm_interactions
                       (key, at, planner, model, prompt, response, plan, tokens_in, tokens_out,
                        latency_s, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    key,
                    at,
                    planner,
                    model,
                    _dumps(prompt),
                    _dumps(response),
                    None if plan is None else _dumps(plan_to_dict(plan)),
                    tokens_in,
                    tokens_out,
                    latency_s,
                    error,
                ),
            )
            return _rowid(cur)

    def llm_interactions(self, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """LLM exchanges, newest first, whole."""
        rows = self._read(
            f"""SELECT * FROM llm_interactions {"WHERE key = ?" if key is not None else ""}
                ORDER BY at DESC, id DESC LIMIT ?""",
            (key, limit) if key is not None else (limit,),
        )
        return self._llm_dicts(rows)

    @staticmethod
    def _llm_dicts(rows: Sequence[sqlite3.Row]) -> list[dict[str, Any]]:
        return [
            {
                "id": r["id"],
                "key": r["key"],
                "at": r["at"],
                "planner": r["planner"],
                "model": r["model"],
                "prompt": _loads(r["prompt"]),
                "response": _loads(r["response"]),
                "plan": _loads(r["plan"]),
                "tokens_in": r["tokens_in"],
                "tokens_out": r["tokens_out"],
                "latency_s": r["latency_s"],
                "error": r["error"],
                "mode": r["mode"],
                "decision": r["decision"],
                "reason": r["reason"],
                "fix_id": r["fix_id"],
                "cost_usd": r["cost_usd"],
                "agreement": r["agreement"],
                "compared_fix_id": r["compared_fix_id"],
                "pending_plan_id": r["pending_plan_id"],
            }
            for r in rows
        ]

    def llm_interaction(self, interaction_id: int) -> dict[str, Any] | None:
        """One LLM exchange, with the fix its plan became (if any)."""
        rows = self._read("SELECT * FROM llm_interactions WHERE id = ?", (interaction_id,))
        if not rows:
            return None
        item = self._llm_dicts(rows)[0]
        item["fix"] = self.fix(item["fix_id"]) if item["fix_id"] else None
        return item

    def shadow_plans_to_compare(self, key: str, since: float) -> list[dict[str, Any]]:
        """Shadow-mode plans of ``key`` since ``since`` not yet compared with a fix."""
        rows = self._read(
            """SELECT * FROM llm_interactions WHERE key = ? AND at >= ? AND mode = 'shadow'
               AND decision = 'shadow' AND plan IS NOT NULL AND agreement IS NULL
               ORDER BY at, id""",
            (key, since),
        )
        return self._llm_dicts(rows)

    def set_shadow_agreement(self, interaction_id: int, agreement: str, fix_id: int) -> None:
        """Record whether a shadow plan agreed with the fix that was run instead."""
        with self._tx() as db:
            db.execute(
                "UPDATE llm_interactions SET agreement = ?, compared_fix_id = ? WHERE id = ?",
                (agreement, fix_id, interaction_id),
            )

    def shadow_agreement(self) -> dict[str, dict[str, int]]:
        """Per policy, how many shadow plans agreed or differed with the fix that ran, and
        how many still wait for one: the measure to read before trusting a planner."""
        rows = self._read(
            """SELECT plan, COALESCE(agreement, 'pending') AS agreement FROM llm_interactions
               WHERE mode = 'shadow' AND decision = 'shadow' AND plan IS NOT NULL"""
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            policy = str((_loads(r["plan"]) or {}).get("policy") or "-")
            counts = out.setdefault(policy, {"agrees": 0, "differs": 0, "pending": 0})
            counts[r["agreement"]] = counts.get(r["agreement"], 0) + 1
        return out

    def set_llm_outcome(
        self,
        interaction_id: int,
        *,
        mode: str,
        decision: str,
        reason: str,
        fix_id: int | None = None,
        cost_usd: float | None = None,
        pending_plan_id: int | None = None,
    ) -> None:
        """Record what became of an interaction's plan (admitted, rejected, over-budget,
        shadow, pending with the parked plan's id, no-plan, dry-run)."""
        with self._tx() as db:
            db.execute(
                """UPDATE llm_interactions SET mode = ?, decision = ?, reason = ?, fix_id = ?,
                       cost_usd = COALESCE(?, cost_usd), pending_plan_id = ? WHERE id = ?""",
                (mode, decision, reason, fix_id, cost_usd, pending_plan_id, interaction_id),
            )

    def llm_interaction_of_pending_plan(self, plan_id: int) -> dict[str, Any] | None:
        """The LLM exchange whose plan was parked as pending plan ``plan_id``, or None."""
        rows = self._read(
            "SELECT * FROM llm_interactions WHERE pending_plan_id = ? ORDER BY id DESC LIMIT 1",
            (plan_id,),
        )
        return self._llm_dicts(rows)[0] if rows else None

    def llm_tokens_since(self, key: str | None, since: float) -> int:
        """Tokens (in and out) spent on ``key`` (None: on every resource) since ``since``:
        the per-day budgets read this."""
        rows = self._read(
            f"""SELECT COALESCE(SUM(tokens_in + tokens_out), 0) AS n FROM llm_interactions
               WHERE at >= ? {"AND key = ?" if key is not None else ""}""",
            (since, key) if key is not None else (since,),
        )
        return int(rows[0]["n"])

    # -- read-only queries for the dashboard (added at the end: others edit the methods above)

    def llm_summaries(self, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """LLM exchanges, newest first, without their prompt and response (which can be
        large): what a list, or a live stream polling twice a second, needs."""
        rows = self._read(
            f"""SELECT * FROM llm_interactions {"WHERE key = ?" if key is not None else ""}
                ORDER BY at DESC, id DESC LIMIT ?""",
            (key, limit) if key is not None else (limit,),
        )
        return [
            {k: r[k] for k in r.keys() if k not in ("prompt", "response")}  # noqa: SIM118 - a Row
            | {"plan": _loads(r["plan"])}
            for r in rows
        ]


def _rowid(cur: sqlite3.Cursor) -> int:
    assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
    return cur.lastrowid


def _pending_dict(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "key": r["key"],
        "at": r["at"],
        "reason": r["reason"],
        "plan": _loads(r["plan"]),
        "status": r["status"],
        "actor": r["actor"],
        "decided_at": r["decided_at"],
        "origin": r["origin"],
    }


def _fix_group_stats(rows: Sequence[sqlite3.Row]) -> dict[str, Any]:
    closed = [r for r in rows if r["status"] in ("done", "interrupted")]
    fixed = [r for r in closed if r["outcome"] == Outcome.FIXED]
    ttr = [float(r["time_to_recover"]) for r in rows if r["time_to_recover"] is not None]
    ttd = [float(r["time_to_detect"]) for r in rows]
    median_ttr, p95_ttr = _summary(ttr)
    median_ttd, p95_ttd = _summary(ttd)
    return {
        "count": len(rows),
        "running": sum(1 for r in rows if r["status"] == "running"),
        "closed": len(closed),
        "fixed": len(fixed),
        "interrupted": sum(1 for r in closed if r["status"] == "interrupted"),
        "success_rate": len(fixed) / len(closed) if closed else None,
        "median_time_to_recover": median_ttr,
        "p95_time_to_recover": p95_ttr,
        "median_time_to_detect": median_ttd,
        "p95_time_to_detect": p95_ttd,
    }


def _step_group_stats(rows: Sequence[sqlite3.Row]) -> dict[str, Any]:
    ok = sum(1 for r in rows if r["status"] == "ok")
    in_fixed = sum(1 for r in rows if r["outcome"] == Outcome.FIXED)
    durations = [float(r["duration_s"]) for r in rows if r["duration_s"] is not None]
    median_duration, p95_duration = _summary(durations)
    return {
        "steps": len(rows),
        "ok": ok,
        "step_success_rate": ok / len(rows) if rows else None,
        "in_fixed": in_fixed,
        "fix_success_rate": in_fixed / len(rows) if rows else None,
        "median_duration_s": median_duration,
        "p95_duration_s": p95_duration,
    }
