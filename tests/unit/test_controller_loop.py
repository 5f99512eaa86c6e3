"""The controller's loop under many resources: passes yield, events go first (issue 15)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from tests.unit.controller_fakes import Rig, rig
from tests.unit.factories import container, policy

N = 300


class Passes:
    """The keys passed over, in order; ``reached(test)`` waits until ``test(keys)`` holds."""

    def __init__(self, r: Rig) -> None:
        self.keys: list[str] = []
        self._waiting: list[tuple[Callable[[list[str]], bool], asyncio.Event]] = []
        reconcile = r.controller.reconciler.reconcile

        async def counted(key: str, *, by_operator: bool = False) -> object:
            self.keys.append(key)
            for test, event in self._waiting:
                if test(self.keys):
                    event.set()
            return await reconcile(key, by_operator=by_operator)

        r.controller.reconciler.reconcile = counted  # type: ignore[method-assign]

    async def reached(self, test: Callable[[list[str]], bool]) -> None:
        event = asyncio.Event()
        if test(self.keys):
            return
        self._waiting.append((test, event))
        await asyncio.wait_for(event.wait(), 10)


async def test_passes_in_sync_leave_room_for_everything_else(tmp_path: Path) -> None:
    # Fake drivers answer without ever waiting: a worker that did not yield would run
    # every queued pass before anything else on the loop got a turn.
    r = rig(tmp_path, workers=2, resync_period=3600)
    r.apply([container(f"c{i:03d}") for i in range(N)], [policy()])
    passes = Passes(r)
    ran = asyncio.Event()
    ran_after: list[int] = []

    def callback() -> None:
        ran_after.append(len(passes.keys))
        ran.set()

    await r.controller.start()
    try:
        asyncio.get_running_loop().call_soon(callback)
        await asyncio.wait_for(ran.wait(), 10)
        assert ran_after[0] <= 4  # the callback ran after a pass or two per worker
        await passes.reached(lambda keys: len(keys) >= N)
    finally:
        await r.controller.stop()


async def test_an_exit_is_served_before_the_resync_queue(tmp_path: Path) -> None:
    r = rig(tmp_path, workers=1, resync_period=3600)
    r.apply([container(f"c{i:03d}") for i in range(N)], [policy()])
    passes = Passes(r)
    await r.controller.start()
    try:
        await passes.reached(lambda keys: len(keys) >= 3)
        r.runtime.running["c250"] = False
        r.controller.on_event("Container/c250", "exit")
        seen = len(passes.keys)
        await passes.reached(lambda keys: "Container/c250" in keys)
        # Served next (one pass may have begun when the event came), not after 250 others.
        assert passes.keys.index("Container/c250") <= seen + 1
    finally:
        await r.controller.stop()
