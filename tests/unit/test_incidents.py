"""Incidents and the backoff of an exhausted ladder. Pure, no I/O."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftmend.incidents import current_incident, retry_delay, retry_turn
from driftmend.model import FixAttempt
from driftmend.spec import Backoff

KEY = "Container/shop"


def fix(
    at: float, end: float | None = None, trigger: str = "ladder", policy: str = "p"
) -> FixAttempt:
    return FixAttempt(KEY, at, "failed", policy, "restart", trigger=trigger, finished_at=end)


def test_fixes_closer_than_the_gap_are_one_incident() -> None:
    history = [fix(100.0, 130.0), fix(300.0, 330.0), fix(600.0, 610.0)]
    assert current_incident(history, 700.0, gap=600.0) == sorted(
        history, key=lambda a: a.started_at
    )


def test_a_quiet_gap_starts_a_new_incident() -> None:
    old, new = fix(100.0, 130.0), fix(800.0, 810.0)
    assert current_incident([new, old], 820.0, gap=600.0) == [new]


def test_a_quiet_gap_up_to_now_means_no_incident() -> None:
    assert current_incident([fix(100.0, 130.0)], 730.0, gap=600.0) == []
    assert current_incident([fix(100.0, 130.0)], 729.0, gap=600.0) != []


def test_a_fix_without_an_end_ends_when_it_started() -> None:
    assert current_incident([fix(100.0)], 700.0, gap=600.0) == []


def test_the_delay_doubles_from_initial_and_stops_at_max() -> None:
    backoff = Backoff(initial=10.0, max=300.0)
    assert [retry_delay(backoff, n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
    assert retry_delay(backoff, 10_000) == 300.0  # no overflow for a year-long crash loop


def test_the_next_retry_runs_from_the_end_of_the_policys_last_fix() -> None:
    backoff = Backoff(initial=10.0, max=300.0)
    incident = [fix(100.0, 130.0), fix(140.0, 150.0, "backoff"), fix(150.0, 155.0, policy="q")]
    turn = retry_turn("p", backoff, incident, 160.0)
    assert (turn.retries, turn.delay, turn.due_in) == (1, 20.0, 10.0)
    assert turn.describe(backoff) == "retry 2 in 10s (backoff 10s doubling to 5m)"
    assert retry_turn("p", backoff, incident, 171.0).describe(backoff).startswith("retry 2 now")


def test_backoff_max_below_initial_is_refused() -> None:
    with pytest.raises(ValidationError, match="make max at least initial"):
        Backoff(initial=60.0, max=10.0)
