"""The store's database: transactions, the lock, and errors made ours, on SQLite or PostgreSQL.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). Every statement of every
record family runs through ``Database.write`` or ``Database.read``, and both turn the
library's errors into the ``StoreError`` family (``driftmend.errors``) naming the store, so
no caller ever sees ``sqlite3.OperationalError`` or ``psycopg.OperationalError``. One
connection guarded by a lock: every call is short and synchronous.

Which server it is, is the ``connection.Connection`` underneath: a SQLite file in WAL mode
(``sqlite.py``, the embedded default), or a PostgreSQL server named by a DSN
(``postgres.py``), which two controllers can share. The statements are the same on both.

A store that cannot be written (disk full, read-only, I/O errors, a PostgreSQL server gone)
does not stop the controller: ``write`` keeps the transactions it cannot commit in a bounded
in-memory ``backlog.Backlog`` and replays them in order once the store takes writes again
(tried at most every ``retry_every_s``; a PostgreSQL connection is opened anew for it). The
change is logged once each way, and listeners (``on_writable``: the metrics) hear of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driftmend.errors import StoreBusyError, StoreClosedError, StoreError, StoreUnusableError
from driftmend.store.backlog import Backlog, Recorder
from driftmend.store.connection import Connection, Cursor, Row
from driftmend.store.sqlite import SqliteConnection, translate

log = logging.getLogger("driftmend.store")

__all__ = ["Database", "Row", "rowid", "translate"]


class Database:
    """The store's one connection: ``write()`` transactions and ``read()`` queries.

    A SQLite file at ``path``, or, when ``dsn`` is given, the PostgreSQL server it names
    (``path`` is then ignored). ``busy_timeout_s`` is how long a call waits for another
    writer's lock before it raises ``StoreBusyError``. Thread-safe: one lock around every
    statement.
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        dsn: str | None = None,
        busy_timeout_s: float = 5.0,
        backlog_limit: int = 10_000,
        retry_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        conn: Connection
        if dsn is not None:
            from driftmend.store.postgres import PostgresConnection

            conn = PostgresConnection(dsn, busy_timeout_s=busy_timeout_s)
            self.path: Path | None = None
        elif path is not None:
            conn = SqliteConnection(Path(path), busy_timeout_s=busy_timeout_s)
            self.path = conn.path
        else:
            raise TypeError("a store needs a path (SQLite) or a dsn (PostgreSQL)")
        # How the store is named in messages: the file, or the DSN without its password.
        self.where = conn.where
        self._lock = threading.Lock()
        self._conn: Connection | None = conn
        self._backlog = Backlog(self.where, backlog_limit)
        self._retry_every = retry_every_s
        self._clock = clock
        self._unwritable_since: float | None = None  # clock time the store refused a write
        self._last_try = -float("inf")
        self._listeners: list[Callable[[bool], None]] = []

    def close(self) -> None:
        """Close the connection (after a last try to write the backlog); later calls raise
        ``StoreClosedError``. Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                if self._unwritable_since is not None:
                    self._last_try = -float("inf")
                    self._try_backlog(self._conn)
                if len(self._backlog):
                    log.error(
                        "the store %s is closed with %d transaction(s) never written",
                        self.where,
                        len(self._backlog),
                    )
                self._conn.close()
                self._conn = None

    def _connection(self) -> Connection:
        if self._conn is None:
            raise StoreClosedError(f"the store {self.where} is closed")
        return self._conn

    # -- writability -------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """False from a write the store refused until one it took."""
        return self._unwritable_since is None

    @property
    def backlog_size(self) -> int:
        """Transactions kept in memory, waiting for the store."""
        return len(self._backlog)

    @property
    def dropped(self) -> int:
        """Transactions given up since the store opened (the backlog was full, or the store
        refused the transaction itself on replay)."""
        return self._backlog.dropped

    def on_writable(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(writable)`` now and whenever the store stops or starts taking writes."""
        self._listeners.append(listener)
        listener(self.writable)

    def _tell(self, writable: bool) -> None:
        for listener in self._listeners:
            try:
                listener(writable)
            except Exception:  # a listener's bug must not break a write
                log.exception("store writability listener failed")

    def _refused(self, error: StoreError) -> None:
        """The file refused a write: from now on, keep writes in the backlog."""
        self._last_try = self._clock()
        if self._unwritable_since is not None:
            return
        self._unwritable_since = self._clock()
        log.error(
            "the store %s cannot be written (%s); healing goes on, and what it would record "
            "is kept in memory (the newest %d transactions) and written when it can be",
            self.where,
            error,
            self._backlog.limit,
        )
        self._tell(False)

    def _took(self) -> None:
        """The file took a write: say so once if it had refused them."""
        if self._unwritable_since is None:
            return
        since, self._unwritable_since = self._unwritable_since, None
        dropped = f"; {self._backlog.dropped} could not be kept" if self._backlog.dropped else ""
        shifted = (
            f"; {self._backlog.shifted} row id(s) came back different, so links between "
            "those records may be wrong"
            if self._backlog.shifted
            else ""
        )
        log.warning(
            "the store %s can be written again after %.1fs; the transactions it missed are "
            "written%s%s",
            self.where,
            self._clock() - since,
            dropped,
            shifted,
        )
        self._tell(True)

    def _try_backlog(self, conn: Connection) -> bool:
        """Replay the backlog if it is time to try; True when nothing is left to replay."""
        if self._unwritable_since is None and not len(self._backlog):
            return True
        if self._clock() - self._last_try < self._retry_every:
            return False
        self._last_try = self._clock()
        while True:
            try:
                written = self._backlog.replay(conn)
            except conn.errors as exc:
                error = conn.translate(exc)
                if isinstance(error, StoreUnusableError | StoreBusyError):
                    return False  # still refused: keep everything, try again later
                # The file works but refuses this one transaction (a constraint): drop it,
                # or it would block every later one for ever.
                log.warning("dropped a transaction the store refused on replay: %s", error)
                self._backlog.drop_first()
                continue
            if written:
                self._took()
            return True

    def _keep(self, recorder: Recorder) -> None:
        self._backlog.keep(recorder.transaction)

    def _failed_in_block(self, conn: Connection, exc: Exception) -> bool:
        """A statement of a live block failed: when the store refuses writes, roll back and
        keep the block for later (True); otherwise let the error go (False)."""
        error = conn.translate(exc)
        if not isinstance(error, StoreUnusableError):
            return False
        conn.rollback()
        self._refused(error)
        return True

    # -- calls ---------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Recorder]:
        """One write transaction under the lock, committed when the block ends.

        A second writer waits for the lock (up to the busy timeout) instead of failing
        half-way; rolled back if the block raises; the library's errors translated.
        When the store cannot be written the block is kept in the backlog instead (see the
        module docstring); the caller's statements get placeholder row ids then.
        """
        with self._lock:
            db = self._connection()
            if not self._try_backlog(db):
                recorder = Recorder(self._backlog, None, lambda exc: False)
                yield recorder  # the block raising means it wants nothing kept
                self._keep(recorder)
                return
            try:
                db.begin()
            except db.errors as exc:
                error = db.translate(exc)
                if not isinstance(error, StoreUnusableError):
                    raise error from exc
                self._refused(error)
                recorder = Recorder(self._backlog, None, lambda exc: False)
                yield recorder
                self._keep(recorder)
                return
            recorder = Recorder(self._backlog, db, lambda exc: self._failed_in_block(db, exc))
            try:
                yield recorder
            except BaseException as exc:
                db.rollback()
                if isinstance(exc, db.errors):
                    raise db.translate(exc) from exc
                raise
            if recorder.keeping:
                self._keep(recorder)
                return
            try:
                db.commit()
            except db.errors as exc:
                db.rollback()
                error = db.translate(exc)
                if not isinstance(error, StoreUnusableError):
                    raise error from exc
                self._refused(error)
                self._keep(recorder)
                return
            self._took()

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """The rows of one query, under the lock; the library's errors translated."""
        with self._lock:
            db = self._connection()
            try:
                return db.execute(sql, args).fetchall()
            except OverflowError:
                # An argument beyond SQLite's 64-bit integers (an id typed into a URL or a
                # command): no row can hold it, so the answer is no row, as on PostgreSQL.
                return []
            except db.errors as exc:
                raise db.translate(exc) from exc

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self.read("SELECT MAX(version) FROM schema_version")[0][0])

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``), or ``postgresql``."""
        with self._lock:
            db = self._connection()
            try:
                return db.journal_mode()
            except db.errors as exc:
                raise db.translate(exc) from exc


def rowid(cur: Cursor) -> int:
    """The id the store gave the row an INSERT just added."""
    assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
    return cur.lastrowid
