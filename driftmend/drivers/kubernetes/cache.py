"""Watched copies of one kind of object in one namespace: list once, then watch.

Stage: *observe*. The runtime reads workloads, pods and Events from these copies, so a
reconcile pass costs no request, and every change is reported at once (``on_change``) so
the loop reconciles on the event rather than at its next resync. When the watch breaks
(the API server restarts, a 410 Gone) the cache lists again after a short backoff; until it
has listed once, ``ready`` is unset and the runtime reads the API directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lightkube import AsyncClient

from driftmend.drivers.kubernetes.background import Background

log = logging.getLogger(__name__)

# The API server ends each watch after this long and the client resumes it from the last
# resourceVersion: a connection that died without a word is noticed within this time.
WATCH_SECONDS = 240
BACKOFF = (0.5, 30.0)  # first and longest wait before listing again after a failure

Change = Callable[[str, dict[str, Any]], None]
"""Called with (event type, object) for every ADDED, MODIFIED or DELETED object."""


class WatchedCache(Background):
    """The objects of ``resource`` in ``namespace`` by name, kept current by a watch
    (``start`` begins listing and watching, ``close`` stops)."""

    def __init__(
        self,
        client: AsyncClient,
        resource: Any,
        namespace: str,
        on_change: Change,
        keep: Callable[[dict[str, Any]], bool] = lambda obj: True,
    ) -> None:
        super().__init__()
        self.items: dict[str, dict[str, Any]] = {}
        self.ready = asyncio.Event()
        self.lists = 0  # how often it listed: more than once means the watch broke
        self.error: str | None = None
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._on_change = on_change
        self._keep = keep

    @property
    def what(self) -> str:
        """``pods in shop``, for logs."""
        return f"{self._resource._api_info.plural} in {self._namespace}"

    async def _run(self) -> None:
        wait = BACKOFF[0]
        while True:
            try:
                version = await self._list()
                wait = BACKOFF[0]
                async for kind, obj in self._client.watch(
                    self._resource,
                    namespace=self._namespace,
                    resource_version=version,
                    server_timeout=WATCH_SECONDS,
                ):
                    self._apply(kind, obj.to_dict())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("watching %s failed (%s); listing again in %gs", self.what, exc, wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, BACKOFF[1])

    async def _list(self) -> str:
        listing = self._client.list(self._resource, namespace=self._namespace)
        fresh: dict[str, dict[str, Any]] = {}
        async for obj in listing:
            data = obj.to_dict()
            if self._keep(data):
                fresh[data["metadata"]["name"]] = data
        gone = set(self.items) - set(fresh)
        changed = [o for name, o in fresh.items() if self.items.get(name) != o]
        self.items = fresh
        self.lists += 1
        self.error = None
        self.ready.set()
        for obj in changed:
            self._on_change("MODIFIED", obj)
        for name in gone:
            self._on_change("DELETED", {"metadata": {"name": name, "namespace": self._namespace}})
        return listing.resourceVersion

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.items.pop(name, None)
        elif kind in ("ADDED", "MODIFIED") and self._keep(obj):
            self.items[name] = obj
        else:
            return
        self._on_change(kind, obj)
