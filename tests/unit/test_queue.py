"""The work queue: de-duplication, no key twice at once, delayed adds."""

from __future__ import annotations

import asyncio

from driftmend.queue import WorkQueue


async def test_keys_are_deduplicated() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_a_key_added_while_processing_runs_again_after() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    q.done("a")
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_delayed_add_keeps_the_earliest() -> None:
    q = WorkQueue()
    q.add("a", delay=30)
    q.add("a", delay=0.05)
    assert await asyncio.wait_for(q.get(), 2) == "a"


async def test_close_wakes_waiters() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.close()
    assert await asyncio.wait_for(waiter, 1) is None
