"""Leader election on a ``coordination.k8s.io/v1`` Lease: one replica acts, the others wait.

Stage: *High availability* in docs/ARCHITECTURE.md. Modelled on client-go's leaderelection:
every ``retry_period`` a candidate reads the Lease and asks the pure ``driftmend.lease.decide``
whether to take it; the leader renews it every ``retry_period`` and gives up leadership
(``on_stopped_leading``) when no renewal succeeded for ``renew_deadline``, which is shorter
than ``lease_duration`` so that it stops before a standby may take over. Writes name the
``resourceVersion`` they read: a 409 means another replica wrote first and this one lost
the race. ``release()`` on a clean shutdown clears the holder so a standby takes over at its
next try instead of waiting for the lease to expire.

Why a Lease of our own and not kopf's peering: kopf's peering freezes every replica of equal
priority as soon as it sees another, so two replicas of one Deployment would both freeze.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Protocol

import httpx2

from driftmend.errors import DriverError
from driftmend.kube.client import KubeApiError, KubeClient
from driftmend.lease import (
    LeaseRecord,
    Verdict,
    decide,
    from_manifest,
    released,
    to_manifest,
)
from driftmend.metrics import Metrics

__all__ = [
    "HttpLeaseApi",
    "LeaderElector",
    "LeaseApi",
    "LeaseConflict",
    "LeaseError",
    "default_identity",
]

log = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None]]


class LeaseError(DriverError):
    """A Lease could not be read or written: the API server unreachable, or it refused."""


class LeaseConflict(LeaseError):
    """409: another replica wrote first (a stale ``resourceVersion``, or it created the Lease)."""


class LeaseApi(Protocol):
    """Reads and writes one kind of object: Leases. Writes raise ``LeaseConflict`` on a 409,
    every other failure is a ``LeaseError``."""

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        ...

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease; ``LeaseConflict`` when another replica created it first."""
        ...

    async def replace(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease if it is still at ``record.resource_version``; else ``LeaseConflict``."""
        ...


class HttpLeaseApi:
    """``LeaseApi`` over the API server's REST interface, through ``KubeClient``."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    @staticmethod
    def _path(namespace: str, name: str | None = None) -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    async def _call(
        self, method: str, path: str, body: Any = None, *, missing_ok: bool = False
    ) -> LeaseRecord | None:
        # The seam: httpx2's and the client's errors become the two the elector steers on.
        try:
            answer = await self.client.request(method, path, body=body, missing_ok=missing_ok)
        except KubeApiError as exc:
            error = LeaseConflict if exc.status == 409 else LeaseError
            raise error(str(exc)) from exc
        except httpx2.HTTPError as exc:
            raise LeaseError(f"{method} {path}: {type(exc).__name__}") from exc
        return None if answer is None else from_manifest(answer)

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease, or None when it does not exist."""
        return await self._call("GET", self._path(namespace, name), missing_ok=True)

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Create the Lease (409 AlreadyExists: ``LeaseConflict``)."""
        body = to_manifest(record, name=name, namespace=namespace)
        return _written(await self._call("POST", self._path(namespace), body))

    async def replace(self, namespace: str, name: str, record: LeaseRecord) -> LeaseRecord:
        """Replace the Lease at ``record.resource_version`` (409 Conflict: ``LeaseConflict``)."""
        body = to_manifest(record, name=name, namespace=namespace)
        return _written(await self._call("PUT", self._path(namespace, name), body))


def _written(record: LeaseRecord | None) -> LeaseRecord:
    if record is None:
        raise LeaseError("the API server answered a Lease write with no object")
    return record


def default_identity() -> str:
    """Host name plus a random suffix, as client-go suggests, when no pod name is given."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _failed(task: asyncio.Future[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


class _Try(Enum):
    LEADING = "leading"  # acquired or renewed
    HELD = "held"  # another holder keeps it alive
    FAILED = "failed"  # lost a race or the API failed: try again


class LeaderElector:
    """Campaigns for one Lease and keeps it while leading; see the module docstring."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 4.0,
        renew_deadline: float = 3.0,
        retry_period: float = 1.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "leader election needs 0 < retry_period < renew_deadline < lease_duration, got "
                f"{retry_period} / {renew_deadline} / {lease_duration}"
            )
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.monotonic = monotonic
        self.metrics = metrics
        self.is_leader = False
        # The last record read or written, and since when (our monotonic clock) it has not
        # changed: the expiry of another's lease is measured on our clock only.
        self._record: LeaseRecord | None = None
        self._observed_at = 0.0
        self._stop = asyncio.Event()  # set by release(): campaign and renew no more
        self._released = asyncio.Event()  # release() is done with the API
        # Never a renewal and a release on the wire at once: the release must win.
        self._api_lock = asyncio.Lock()
        if metrics is not None:
            metrics.set_leader(identity, False)

    async def run(self, on_started_leading: Callback, on_stopped_leading: Callback) -> None:
        """Campaign until elected, call on_started_leading, renew every retry_period;
        when a renewal fails past renew_deadline call on_stopped_leading and return.

        ``on_started_leading`` runs as a task beside the renewals (it may return at once, or
        run while leading); it is cancelled when leadership ends (lost, released, or ``run``
        cancelled), then ``on_stopped_leading`` is awaited, in every one of those cases:
        ``released`` tells a clean shutdown from a loss. If it raises, leadership is released and the error re-raised here.
        """
        elected_at = await self._campaign()
        if elected_at is None or self._stop.is_set():
            # Released while campaigning (perhaps as our acquisition was on the wire: the
            # release, which waited for it, cleared it again): never start leading.
            await self._released.wait()
            return
        self._set_leader(True)
        log.info("%s leads lease %s/%s", self.identity, self.namespace, self.name)
        leading: asyncio.Future[None] = asyncio.ensure_future(on_started_leading())
        failed: BaseException | None = None
        try:
            await self._renew_until_lost(leading, elected_at)
        finally:
            self._set_leader(False)
            leading.cancel()
            await asyncio.wait([leading])  # never raises: its outcome is read below
            if not leading.cancelled():
                failed = leading.exception()
            await on_stopped_leading()
            if self._stop.is_set():
                # Returning before release() cleared the lease would let a caller that
                # exits when run() returns cut the release short.
                await self._released.wait()
        if failed is not None:
            await self.release()
            raise failed

    @property
    def released(self) -> bool:
        """True once ``release()`` was called: ``on_stopped_leading`` can tell a clean
        shutdown from a lost lease by it."""
        return self._stop.is_set()

    async def release(self) -> None:
        """Give the lease up on a clean shutdown: stop renewing, clear its holder."""
        self._stop.set()
        try:
            await self._release_locked()
        finally:
            self._released.set()

    async def _release_locked(self) -> None:
        async with self._api_lock:
            record = self._record
            self._set_leader(False)
            if record is None or record.holder != self.identity:
                return
            try:
                self._remember(
                    await self.api.replace(self.namespace, self.name, released(record, self._now()))
                )
                log.info("%s released lease %s/%s", self.identity, self.namespace, self.name)
            except LeaseError as exc:
                # Another holder already, or the API is gone: the lease expires on its own.
                log.warning("could not release lease %s/%s: %s", self.namespace, self.name, exc)

    # -- the two loops

    async def _campaign(self) -> float | None:
        """Try every retry_period until leading (the try's start) or released (None)."""
        while not self._stop.is_set():
            started = self.monotonic()
            if await self._try() is _Try.LEADING:
                return started
            await self._pause()
        return None

    async def _renew_until_lost(self, leading: asyncio.Future[None], last_renewal: float) -> None:
        # A renewal counts from before its request was sent, never from its answer: the
        # server wrote it earlier than we heard back, and a standby's expiry counts from when
        # it saw that write, so counting from the answer could keep us acting past it.
        while not self._stop.is_set() and not _failed(leading):
            await self._pause(leading)
            if self._stop.is_set() or _failed(leading):
                return
            started = self.monotonic()
            remaining = last_renewal + self.renew_deadline - started
            outcome = _Try.FAILED
            if remaining > 0:
                try:
                    async with asyncio.timeout(remaining):
                        outcome = await self._try()
                except TimeoutError:
                    log.warning("renewing lease %s/%s timed out", self.namespace, self.name)
            if outcome is _Try.LEADING:
                last_renewal = started
            elif outcome is _Try.HELD:
                log.warning("lease %s/%s taken by %s", self.namespace, self.name, self._holder())
                return
            elif self.monotonic() - last_renewal >= self.renew_deadline:
                log.warning(
                    "%s lost lease %s/%s: no renewal for %.1fs",
                    self.identity,
                    self.namespace,
                    self.name,
                    self.renew_deadline,
                )
                return

    async def _pause(self, leading: asyncio.Future[None] | None = None) -> None:
        """Wait retry_period, or less when released or the leading task failed."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stop.wait())]
        if leading is not None:
            waits.append(leading)
        try:
            await asyncio.wait(waits, timeout=self.retry_period, return_when="FIRST_COMPLETED")
        finally:
            waits[0].cancel()

    # -- one try

    async def _try(self) -> _Try:
        async with self._api_lock:
            if self._stop.is_set():
                return _Try.FAILED
            try:
                return await self._try_locked()
            except LeaseConflict:
                return _Try.FAILED  # another replica wrote first
            except LeaseError as exc:
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
                return _Try.FAILED

    async def _try_locked(self) -> _Try:
        current = await self.api.get(self.namespace, self.name)
        if current is not None:
            self._remember(current)
        decision = decide(
            current,
            identity=self.identity,
            now=self._now(),
            unchanged_for=self.monotonic() - self._observed_at,
            lease_duration=self.lease_duration,
        )
        if decision.verdict is Verdict.HELD or decision.record is None:
            return _Try.HELD
        if current is None:
            written = await self.api.create(self.namespace, self.name, decision.record)
        else:
            written = await self.api.replace(self.namespace, self.name, decision.record)
        self._remember(written)
        if decision.verdict is Verdict.ACQUIRE and self.metrics is not None:
            self.metrics.leader_transition()
        return _Try.LEADING

    def _remember(self, record: LeaseRecord) -> None:
        previous = self._record
        if previous is None or previous.resource_version != record.resource_version:
            self._observed_at = self.monotonic()
        self._record = record

    def _holder(self) -> str:
        return (self._record.holder if self._record else None) or "nobody"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _set_leader(self, leading: bool) -> None:
        self.is_leader = leading
        if self.metrics is not None:
            self.metrics.set_leader(self.identity, leading)
