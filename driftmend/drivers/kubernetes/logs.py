"""Pods' output copied to ``pod-<name>.log``, so the log accumulator reads a workload's pods
exactly as it reads processes and Docker containers.

Stage: *observe*. One follower task per pod streams the container's log through the API
server (``follow``, with the kubelet's timestamps) and appends each line to the pod's file,
in the accumulator's format (``driftmend.log_lines.render``). After a broken stream it asks
again from a little before the newest line it wrote and skips what it already has, so a
line is written once; a container that has not started yet is asked again after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import datetime
from pathlib import Path

from lightkube import AsyncClient

from driftmend.drivers.kubernetes.background import Background
from driftmend.log_lines import render
from driftmend.model import LogLine

log = logging.getLogger(__name__)

FIRST_TAIL = 200  # lines of history copied when a pod is first followed
RETRY = (1.0, 15.0)  # first and longest wait before asking for a pod's log again


def split_stamp(line: str) -> tuple[int | None, str]:
    """``2026-12-05T10:00:00.123456789Z text`` -> (Unix nanoseconds, text)."""
    stamp, _, text = line.partition(" ")
    whole, _, frac = stamp.rstrip("Z").partition(".")
    try:
        seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    except ValueError:
        return None, line
    return int(seconds) * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0")), text


class PodLog(Background):
    """Follows one pod's container log into ``path`` from ``start`` until ``close``."""

    def __init__(
        self, client: AsyncClient, namespace: str, pod: str, container: str | None, path: Path
    ) -> None:
        super().__init__()
        self.path = path
        self._client = client
        self._namespace = namespace
        self._pod = pod
        self._container = container
        self._newest: int | None = None  # nanoseconds of the newest line written
        self._previous: LogLine | None = None

    @property
    def what(self) -> str:
        """``log of pod shop/web-5d9c-abcde``."""
        return f"log of pod {self._namespace}/{self._pod}"

    async def _run(self) -> None:
        wait = RETRY[0]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                await self._follow()
                wait = RETRY[0]  # the stream ended cleanly (the container exited): ask again
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("%s: %s", self.what, exc)
            await asyncio.sleep(wait)
            wait = min(wait * 2, RETRY[1])

    async def _follow(self) -> None:
        since = None
        if self._newest is not None:
            since = max(1, math.ceil(time.time() - self._newest / 1e9) + 1)
        lines = self._client.log(
            self._pod,
            namespace=self._namespace,
            container=self._container,
            follow=True,
            timestamps=True,
            tail_lines=FIRST_TAIL if since is None else None,
            since=since,
            newlines=False,
        )
        with self.path.open("a", encoding="utf-8") as out:
            async for raw in lines:
                ns, text = split_stamp(raw)
                if ns is not None and self._newest is not None and ns <= self._newest:
                    continue  # already written before the stream broke
                line, self._previous = render(ns, text, self._previous)
                out.write(line + "\n")
                out.flush()
                if ns is not None:
                    self._newest = ns
