"""The controller's loop under many resources: passes yield, events go first (issue 15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.controller_fakes import rig
from tests.unit.factories import container, policy

N = 300


async def test_passes_in_sync_leave_room_for_everything_else(tmp_path: Path) -> None:
    # Fake drivers answer without ever waiting: a worker that did not yield would run
    # every queued pass before anything else on the loop got a turn.
    r = rig(tmp_path, workers=2, resync_period=3600)
    r.apply([container(f"c{i:03d}") for i in range(N)], [policy()])
    passes: list[str] = []
    reconcile = r.controller.reconciler.reconcile

    async def counted(key: str, *, by_operator: bool = False) -> object:
        passes.append(key)
        return await reconcile(key, by_operator=by_operator)

    r.controller.reconciler.reconcile = counted  # type: ignore[method-assign]
    ran_after: list[int] = []
    await r.controller.start()
    try:
        asyncio.get_running_loop().call_soon(lambda: ran_after.append(len(passes)))
        while not ran_after:
            await asyncio.sleep(0)
        assert ran_after[0] <= 4  # the callback ran after a pass or two per worker
        while len(passes) < N:
            await asyncio.sleep(0.01)
    finally:
        await r.controller.stop()


async def test_an_exit_is_served_before_the_resync_queue(tmp_path: Path) -> None:
    r = rig(tmp_path, workers=1, resync_period=3600)
    r.apply([container(f"c{i:03d}") for i in range(N)], [policy()])
    passes: list[str] = []
    reconcile = r.controller.reconciler.reconcile

    async def counted(key: str, *, by_operator: bool = False) -> object:
        passes.append(key)
        return await reconcile(key, by_operator=by_operator)

    r.controller.reconciler.reconcile = counted  # type: ignore[method-assign]
    await r.controller.start()
    try:
        while len(passes) < 3:
            await asyncio.sleep(0)
        r.runtime.running["c250"] = False
        r.controller.on_event("Container/c250", "exit")
        seen = len(passes)
        while "Container/c250" not in passes:
            await asyncio.sleep(0)
        # Served next (one pass may have begun when the event came), not after 250 others.
        assert passes.index("Container/c250") <= seen + 1
    finally:
        await r.controller.stop()
