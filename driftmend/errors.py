"""The error tree of driftmend, drawn in one place.

Stage: every stage of docs/ARCHITECTURE.md's data flow raises these, and two places read them: the
reconcile loop (its queue requeues or gives up on a resource by class) and the ``driftmend``
command (one line on stderr, never a traceback).

::

    DriftmendError                 anything driftmend raises on purpose
    ├── SpecError                  a document is not a valid resource (file, document, field)
    ├── PermanentError             retrying will not help: count it, show it, do not requeue
    │   ├── RefusedError           an action refused before anything was done (a cap, a floor)
    │   └── ConfigurationError     the controller itself is misconfigured
    │       ├── SettingError       a setting (DRIFTMEND_* variable or flag) has a bad value
    │       └── StoreError         the store cannot be opened or used (names the file)
    │           ├── StoreBusyError     another writer held the file past the timeout (retry)
    │           ├── StoreUnusableError the file cannot be used: disk full, I/O, read-only, corrupt
    │           └── StoreClosedError   a call after ``close()`` (also a RuntimeError)
    └── TemporaryError(delay=)     the world is not ready: requeue the resource after `delay`
        └── DriverError            an adapter could not reach its target (Docker, SQL, RESP, ...)

The store translates SQLite's errors on every call, in one place (``driftmend.store.db``), so
no ``sqlite3`` exception reaches a caller. ``StoreBusyError`` is the one store error worth
retrying; it carries ``delay`` like a ``TemporaryError`` but stays a ``StoreError`` so that
code catching ``StoreError`` (the ``driftmend`` command, start-up) keeps catching it.

Adapters (``drivers/``, the store) catch their library's exceptions and raise these ``from
exc``, so the loop steers on two classes only. Anything else reaching the loop is a bug and is
logged with the resource key. Tools never raise across the executor: they return a
``ToolResult``.
"""

from __future__ import annotations


class DriftmendError(Exception):
    """Base of every error driftmend raises on purpose."""


class SpecError(DriftmendError):
    """A document failed validation; ``str()`` is the one-line message shown to the user."""


class PermanentError(DriftmendError):
    """Retrying the same thing will not help."""


class RefusedError(PermanentError):
    """An action was refused before anything was done (outside a declared cap, below a
    floor): a tool answers ``refused``, not ``failed``."""


class ConfigurationError(PermanentError):
    """The controller's own configuration is wrong (a setting, a missing binary)."""


class SettingError(ConfigurationError):
    """A setting has a bad value; ``str()`` names it (variable or flag) and the fix, one line."""


class StoreError(ConfigurationError):
    """The store cannot be opened or used: the path is a directory, not SQLite, unwritable."""


class StoreBusyError(StoreError):
    """Another connection kept the store locked longer than the busy timeout: temporary,
    worth retrying after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class StoreUnusableError(StoreError):
    """The store's file cannot be written or read: disk full, I/O error, read-only, corrupt.
    Retrying will not help until someone fixes the disk or the file."""


class StoreClosedError(StoreError, RuntimeError):
    """A call on a store that was closed. Also a ``RuntimeError``, as before the store had
    its own errors, so shutdown paths that catch ``RuntimeError`` keep working."""


class TemporaryError(DriftmendError):
    """Try again later: the resource is requeued after ``delay`` seconds."""

    def __init__(self, message: str, *, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class DriverError(TemporaryError):
    """A driver could not observe or act on its target."""
