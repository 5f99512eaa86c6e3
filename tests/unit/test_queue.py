"""The work queue: de-duplication, no key twice at once, delayed adds."""

from __future__ import annotations

import asyncio
from collections import deque

from driftmend.queue import WorkQueue, backoff_delay


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


# --- backoff -------------------------------------------------------------------------------


def test_backoff_doubles_then_stops_at_the_cap() -> None:
    delays = [backoff_delay(n, base=1.0, cap=60.0) for n in range(1, 9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


def test_backoff_never_overflows_however_long_a_key_fails() -> None:
    # base * 2 ** (n - 1) raised OverflowError past about 1,024 failures in a row.
    assert backoff_delay(5000, base=1.0, cap=60.0) == 60.0
    assert backoff_delay(10**9, base=0.5, cap=300.0) == 300.0


def test_jitter_adds_at_most_a_tenth() -> None:
    assert backoff_delay(3, 1.0, 60.0, jitter=0.0) == 4.0
    assert backoff_delay(3, 1.0, 60.0, jitter=0.999) < 4.4
    assert backoff_delay(3, 1.0, 60.0, jitter=0.5) == 4.2


async def test_a_rate_limited_key_is_held_back_events_included() -> None:
    q = WorkQueue(backoff_base=0.2, backoff_cap=10.0, jitter=lambda: 0.0)
    assert q.add_rate_limited("a") == 0.2
    assert q.failures("a") == 1
    q.add("a")  # an event during the backoff does not cut it short
    assert len(q) == 0 and q.held_back("a") > 0.1
    assert await asyncio.wait_for(q.get(), 2) == "a"
    q.done("a")
    assert q.add_rate_limited("a") == 0.4  # the second failure in a row doubles it


async def test_forget_ends_the_backoff() -> None:
    q = WorkQueue(backoff_base=30.0, jitter=lambda: 0.0)
    q.add_rate_limited("a")
    q.forget("a")
    assert q.failures("a") == 0 and q.held_back("a") == 0.0
    q.add("a")
    assert len(q) == 1


async def test_discard_drops_delayed_adds_of_a_deleted_key() -> None:
    q = WorkQueue()
    q.add("a", delay=0.05)
    q.discard("a")
    await asyncio.sleep(0.1)
    assert len(q) == 0


async def test_an_event_goes_ahead_of_the_resync() -> None:
    q = WorkQueue()
    for key in ("a", "b", "c", "d"):
        q.add(key)  # a resync
    q.add("c", urgent=True)  # an exit on c
    q.add("e", urgent=True)
    served = [await q.get() for _ in range(len(q))]
    assert served == ["c", "e", "a", "b", "d"]  # c once, and first
    assert len(q) == 0 and q._urgent == deque() and q._ready == deque()


async def test_an_event_during_a_pass_runs_the_key_again_ahead() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("b")
    q.add("a", urgent=True)  # the exit came while a's pass ran
    q.done("a")
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_a_resync_does_not_demote_an_urgent_key() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("b", urgent=True)
    q.add("b")
    assert [await q.get(), await q.get()] == ["b", "a"]
    q.done("b")
    q.add("b")  # queued again after being served: one entry, the new one
    assert await q.get() == "b" and len(q) == 0
