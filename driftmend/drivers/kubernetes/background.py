"""A loop run in one task of the running event loop, from ``start`` until ``close``.

Stage: *observe*. The watched caches (``cache.py``) and the pod log followers (``logs.py``)
each own one such task; this is the part they share: started at most once, cancelled and
awaited on close, whatever the task was doing.
"""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """Runs ``_run`` in a task named ``what``; subclasses write both."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    @property
    def what(self) -> str:
        """What the task does, for logs and the task's name (``pods in shop``)."""
        raise NotImplementedError

    async def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        """Begin, in a task of the running loop (a second call does nothing)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.what)

    async def close(self) -> None:
        """Stop: cancel the task and wait for it to end."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
