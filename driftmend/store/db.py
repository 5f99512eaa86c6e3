"""The store's one SQLite connection: opening it, transactions, and SQLite's errors made ours.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). This is the seam to SQLite: every
statement of every record family runs through ``Database.write`` or ``Database.read``, and
both turn any ``sqlite3`` error into the ``StoreError`` family (``driftmend.errors``) naming
the store's file, so no caller ever sees ``sqlite3.OperationalError``. WAL mode, one
connection guarded by a lock: every call is short and synchronous.

A file that cannot be written (disk full, read-only, I/O errors) does not stop the
controller: ``write`` keeps the transactions it cannot commit in a bounded in-memory
``backlog.Backlog`` and replays them in order once the file takes writes again (tried at
most every ``retry_every_s``). The change is logged once each way, and listeners
(``on_writable``: the metrics) hear of it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from driftmend.errors import (
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreUnusableError,
)
from driftmend.store.backlog import Backlog, Cursor, Recorder
from driftmend.store.schema import migrate

log = logging.getLogger("driftmend.store")

__all__ = ["Database", "Row", "rowid", "translate"]

Row = sqlite3.Row

# SQLite's primary result codes (``sqlite_errorname`` starts with one) for a file that no
# retry will fix, and the words of their messages, for errors raised without a code.
_UNUSABLE_CODES = (
    "SQLITE_IOERR",
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CORRUPT",
    "SQLITE_NOTADB",
    "SQLITE_CANTOPEN",
    "SQLITE_PERM",
)
_UNUSABLE_WORDS = (
    "disk i/o error",
    "disk is full",
    "readonly database",
    "malformed",
    "not a database",
    "unable to open",
)
_BUSY_CODES = ("SQLITE_BUSY", "SQLITE_LOCKED")


def translate(exc: sqlite3.Error, path: Path) -> StoreError:
    """The ``StoreError`` for SQLite's ``exc`` on the store at ``path``; raise it ``from exc``.

    Temporary (locked, busy) and unusable (disk, I/O, read-only, corrupt) are told apart by
    SQLite's result code, or by its message when the error carries no code.
    """
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in lowered:
        return StoreClosedError(f"the store {path} is closed")
    if code.startswith(_BUSY_CODES) or "locked" in lowered or "busy" in lowered:
        return StoreBusyError(f"the store {path} is locked by another writer ({text})")
    if code.startswith(_UNUSABLE_CODES) or any(w in lowered for w in _UNUSABLE_WORDS):
        return StoreUnusableError(f"the store {path} cannot be used: {text}")
    return StoreError(f"the store {path} failed: {text}")


class Database:
    """The connection to one store file: ``write()`` transactions and ``read()`` queries.

    ``busy_timeout_s`` is how long a call waits for another process's write lock before it
    raises ``StoreBusyError``. Thread-safe: one lock around every statement.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 5.0,
        backlog_limit: int = 10_000,
        retry_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._backlog = Backlog(self.path, backlog_limit)
        self._retry_every = retry_every_s
        self._clock = clock
        self._unwritable_since: float | None = None  # clock time the file refused a write
        self._last_try = -float("inf")
        self._listeners: list[Callable[[bool], None]] = []
        # `driftmend get --db-path <a directory>` should say what is wrong in one line.
        if self.path.is_dir():
            raise StoreError(
                f"{self.path} is a directory: give the store's file, like {self.path / 'driftmend.db'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction spans
            # exactly one public call and nothing is left open between calls.
            conn = sqlite3.connect(
                str(self.path),
                check_same_thread=False,
                isolation_level=None,
                timeout=busy_timeout_s,
            )
        except OSError as exc:
            raise StoreUnusableError(f"cannot open the store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise _retitled(
                translate(exc, self.path), f"cannot open the store {self.path}: {exc}"
            ) from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn, self.path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise _retitled(
                    translate(exc, self.path),
                    f"{self.path} is not a usable driftmend store ({exc}): give another "
                    "--db-path, or move this file away",
                ) from exc
            raise
        self._conn = conn

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
                        self.path,
                        len(self._backlog),
                    )
                self._conn.close()
                self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"the store {self.path} is closed")
        return self._conn

    # -- writability -------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """False from a write the file refused until one it took."""
        return self._unwritable_since is None

    @property
    def backlog_size(self) -> int:
        """Transactions kept in memory, waiting for the file."""
        return len(self._backlog)

    @property
    def dropped(self) -> int:
        """Transactions given up since the store opened (the backlog was full, or the file
        refused the transaction itself on replay)."""
        return self._backlog.dropped

    def on_writable(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(writable)`` now and whenever the file stops or starts taking writes."""
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
            self.path,
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
            self.path,
            self._clock() - since,
            dropped,
            shifted,
        )
        self._tell(True)

    def _try_backlog(self, conn: sqlite3.Connection) -> bool:
        """Replay the backlog if it is time to try; True when nothing is left to replay."""
        if self._unwritable_since is None and not len(self._backlog):
            return True
        if self._clock() - self._last_try < self._retry_every:
            return False
        self._last_try = self._clock()
        while True:
            try:
                written = self._backlog.replay(conn)
            except sqlite3.Error as exc:
                error = translate(exc, self.path)
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

    def _failed_in_block(self, conn: sqlite3.Connection, exc: sqlite3.Error) -> bool:
        """A statement of a live block failed: when the file refuses writes, roll back and
        keep the block for later (True); otherwise let the error go (False)."""
        error = translate(exc, self.path)
        if not isinstance(error, StoreUnusableError):
            return False
        _rollback(conn)
        self._refused(error)
        return True

    # -- calls ---------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[Recorder]:
        """One write transaction under the lock, committed when the block ends.

        IMMEDIATE, so a second process waits for the lock (up to the busy timeout) instead
        of failing half-way; rolled back if the block raises; SQLite errors translated.
        When the file cannot be written the block is kept in the backlog instead (see the
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
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                error = translate(exc, self.path)
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
                _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise translate(exc, self.path) from exc
                raise
            if recorder.keeping:
                self._keep(recorder)
                return
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                error = translate(exc, self.path)
                if not isinstance(error, StoreUnusableError):
                    raise error from exc
                self._refused(error)
                self._keep(recorder)
                return
            self._took()

    def read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one query, under the lock; SQLite errors translated."""
        with self._lock:
            db = self._connection()
            try:
                return db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise translate(exc, self.path) from exc

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return int(self.read("SELECT MAX(version) FROM schema_version")[0][0])

    def journal_mode(self) -> str:
        """SQLite's journal mode of the open database (``wal``)."""
        return str(self.read("PRAGMA journal_mode")[0][0])


def _rollback(db: sqlite3.Connection) -> None:
    """Undo an open transaction; a failing rollback is dropped, since the error that caused
    it says more (SQLite may already have rolled back after a full disk or an I/O error)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _retitled(error: StoreError, message: str) -> StoreError:
    """``error``'s class with the open-time ``message`` callers and users already know."""
    if isinstance(error, StoreBusyError):
        return StoreBusyError(message, delay=error.delay)
    return type(error)(message)


def rowid(cur: Cursor) -> int:
    """The id SQLite gave the row an INSERT just added."""
    assert cur.lastrowid is not None  # an INSERT into a rowid table always sets it
    return cur.lastrowid
