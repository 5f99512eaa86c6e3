"""The ``Store``: the open database and one object per record family.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). The loop writes here after each stage
(observe, reconcile, guard, act, verify); the dashboard and ``driftmend get`` read it back.
One SQLite file in WAL mode, or a PostgreSQL server that replicas share (``db.Database``);
each table family has its own object:

==========================  ===============================================================
``store.resource_records``  resources as last observed, pause and operator flags
``store.signal_records``    signal samples for the charts
``store.reconciliation_records``  recorded passes and counts per outcome
``store.fix_records``       fixes and their step journal
``store.fix_stats_records`` success rates and times to recover
``store.audit_records``     guard decisions and audited actions
``store.pending_records``   plans parked for an operator
``store.llm_records``       LLM exchanges and what became of their plans
==========================  ===============================================================

Callers name the family they use (``store.fix_records.last_fix(key)``), so what a module
depends on is visible at the call; the small read Protocols of the family modules
(``FixHistory``, ``ParkedPlans``, ...) are what a fake in a test implements.

Reads return frozen records (``records.Record``) that read like the dicts they replaced.
Times are Unix float seconds (UTC). Nothing secret is stored here: callers redact first.
Every SQLite or PostgreSQL error reaches callers as a ``StoreError`` (``driftmend.errors``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import SecretStr

from driftmend.settings import Settings
from driftmend.store.audit import AuditRecords
from driftmend.store.db import Database
from driftmend.store.fixes import FixRecords
from driftmend.store.llm import LlmRecords
from driftmend.store.pending import PendingRecords
from driftmend.store.reconciliations import ReconciliationRecords
from driftmend.store.resources import ResourceRecords
from driftmend.store.retention import Retention, prune
from driftmend.store.signals import SignalRecords
from driftmend.store.stats import FixStats

__all__ = ["Store", "open_store"]


class Store:
    """The record of the controller, in SQLite or PostgreSQL. Thread-safe; every call is short.

    ``path`` is the SQLite file; a ``dsn`` (``postgresql://...``, plain or as the setting's
    ``SecretStr``) selects the PostgreSQL server it names instead, and ``path`` is ignored.

    It opens the database and holds one object per record family (see the module
    docstring); it has no record methods of its own.

    ``clock`` stamps the few rows whose time the caller does not pass (step start/finish).
    ``signal_retention_s`` bounds the signal history kept per resource for charts.
    ``retention`` bounds every history table by age and rows (``prune``).
    ``busy_timeout_s`` is how long a write waits for another process's lock before it
    raises ``StoreBusyError``.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        dsn: str | SecretStr | None = None,
        clock: Callable[[], float] = time.time,
        signal_retention_s: float = 24 * 3600.0,
        busy_timeout_s: float = 5.0,
        retention: Retention | None = None,
    ) -> None:
        if isinstance(dsn, SecretStr):
            dsn = dsn.get_secret_value()
        self._db = Database(path, dsn=dsn, busy_timeout_s=busy_timeout_s)
        self.retention = retention or Retention()
        # The SQLite file (None on PostgreSQL), and the store's name for messages.
        self.path = self._db.path
        self.where = self._db.where
        self.fix_records = FixRecords(self._db, clock)
        self.resource_records = ResourceRecords(self._db, self.fix_records, clock)
        self.signal_records = SignalRecords(self._db, signal_retention_s)
        self.reconciliation_records = ReconciliationRecords(self._db)
        self.fix_stats_records = FixStats(self._db)
        self.audit_records = AuditRecords(self._db)
        self.pending_records = PendingRecords(self._db)
        self.llm_records = LlmRecords(self._db, self.fix_records)

    # -- lifecycle

    def close(self) -> None:
        """Close the connection; later calls raise ``StoreClosedError``. Safe to call twice."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writability: a file that refuses writes is reported, and what it missed is kept

    @property
    def writable(self) -> bool:
        """False while the file refuses writes (disk full, read-only, I/O errors): writes
        are then kept in memory and written when it takes them again (``store/backlog.py``)."""
        return self._db.writable

    @property
    def backlog_size(self) -> int:
        """Write transactions kept in memory, waiting for the file."""
        return self._db.backlog_size

    def on_writable(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(writable)`` now and whenever the file stops or starts taking writes."""
        self._db.on_writable(listener)

    # -- upkeep: bounded history and its measure

    def prune(self, now: float) -> dict[str, int]:
        """Delete the history ``retention`` does not keep (``store/retention.py``); the rows
        deleted per table. Seconds at most on a large store: call it from a thread."""
        return prune(self._db, self.retention, now)

    def size_bytes(self) -> int:
        """The bytes the store takes: the SQLite file and its WAL, or on PostgreSQL the
        store's tables with their indexes and TOAST."""
        if self.path is not None:
            return sum(
                os.stat(p).st_size
                for p in (self.path, Path(f"{self.path}-wal"))
                if os.path.exists(p)
            )
        # Only the store's own tables: the database may hold others' too.
        rows = self._db.read(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = current_schema() "
            f"AND c.relname IN ({', '.join('?' for _ in STORE_TABLES)})",
            STORE_TABLES,
        )
        return int(rows[0][0])

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._db.schema_version()

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``), or ``postgresql``."""
        return self._db.journal_mode()


STORE_TABLES = (
    "schema_version", "resources", "operator_flags", "signal_samples", "reconciliations",
    "reconcile_counts", "fixes", "fix_steps", "guard_decisions", "actions", "pending_plans",
    "llm_interactions",
)  # fmt: skip


def open_store(settings: Settings) -> Store:
    """The store ``settings`` name: the PostgreSQL server of ``store_dsn`` when it is set
    (replicas share it), else the SQLite file ``store_path`` (the embedded default)."""
    retention = Retention(
        max_age_s=settings.retention_age,
        max_rows=settings.retention_rows,
        max_llm_rows=settings.retention_llm_rows,
    )
    return Store(settings.store_path, dsn=settings.store_dsn, retention=retention)
