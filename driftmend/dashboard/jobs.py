"""Operator actions that take a while (a fix, an approved plan), run in the background.

Stage: *outputs* in docs/ARCHITECTURE.md: the dashboard's side of the controller's operator actions.
A fix runs its steps and then verifies for up to its policy's timeout, so the request that
starts it answers at once (``202`` with a job) and the outcome reaches the page through the
live stream. A ``JobBoard`` holds the running tasks (so they are not garbage-collected) and
the last results, in memory: the durable record is the controller's, in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from driftmend.errors import DriftmendError

log = logging.getLogger("driftmend.dashboard")

__all__ = ["Job", "JobBoard"]


@dataclass
class Job:
    """One action in flight or done: what, on which resource, by whom, and how it ended."""

    id: int
    action: str
    key: str | None
    actor: str
    started_at: float
    status: str = "running"  # running | done | error
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    finished_at: float | None = None
    seq: int = 0  # the board's change counter when the job last changed
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON."""
        return {
            "id": self.id,
            "action": self.action,
            "key": self.key,
            "actor": self.actor,
            "status": self.status,
            "result": self.result,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class JobBoard:
    """Starts jobs as tasks on the running loop and remembers the newest ``keep`` of them."""

    def __init__(self, keep: int = 200, clock: Callable[[], float] = time.time) -> None:
        self._keep = keep
        self._clock = clock
        self._jobs: OrderedDict[int, Job] = OrderedDict()
        self._ids = itertools.count(1)
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def seq(self) -> int:
        """A counter that grows whenever a job starts or ends (the stream's cursor)."""
        return self._seq

    def start(
        self,
        action: str,
        key: str | None,
        actor: str,
        run: Callable[[], Awaitable[dict[str, Any]]],
    ) -> Job:
        """Run ``run()`` in the background as a job; its dict result becomes the job's."""
        self._seq += 1
        job = Job(next(self._ids), action, key, actor, self._clock(), seq=self._seq)
        self._jobs[job.id] = job
        while len(self._jobs) > self._keep:
            self._jobs.popitem(last=False)
        task = asyncio.create_task(self._run(job, run), name=f"dashboard-{action}-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def _run(self, job: Job, run: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        try:
            job.result = await run()
            job.status = "done"
        except asyncio.CancelledError:
            job.status, job.error = "error", "cancelled: the server is shutting down"
            raise
        except Exception as exc:
            # PermanentError and friends carry a message meant for the operator.
            job.status, job.error = "error", str(exc) or type(exc).__name__
            if not isinstance(exc, DriftmendError):  # anything else is a bug: keep its trace
                log.exception("dashboard action %s on %s failed", job.action, job.key)
        finally:
            job.finished_at = self._clock()
            self._seq += 1
            job.seq = self._seq
            job.done.set()

    def get(self, job_id: int) -> Job | None:
        """A remembered job, or None."""
        return self._jobs.get(job_id)

    def changed_since(self, seq: int) -> list[Job]:
        """Jobs that started or ended after the counter was ``seq``, oldest change first."""
        return sorted((j for j in self._jobs.values() if j.seq > seq), key=lambda j: j.seq)

    async def wait(self, job: Job, within: float) -> None:
        """Wait until ``job`` ends, or ``within`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.done.wait(), within)

    async def close(self) -> None:
        """Cancel the jobs still running and wait for them (shutdown, tests)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
