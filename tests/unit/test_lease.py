"""The leader election's pure decision (driftmend.lease): take, keep or leave a Lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from driftmend.lease import (
    LeaseRecord,
    Verdict,
    decide,
    format_micro_time,
    from_manifest,
    parse_micro_time,
    released,
    to_manifest,
)

NOW = datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=30)


def held_by(holder: str | None, *, transitions: int = 3, seconds: int = 4) -> LeaseRecord:
    return LeaseRecord(holder, seconds, EARLIER, EARLIER, transitions, resource_version="41")


def test_an_absent_lease_is_created_with_me_as_holder_and_no_transition() -> None:
    d = decide(None, identity="a", now=NOW, unchanged_for=0, lease_duration=4.0)
    assert d.verdict is Verdict.ACQUIRE
    assert d.record == LeaseRecord("a", 4, NOW, NOW, 0)


def test_a_lease_held_by_another_and_renewed_lately_is_left_alone() -> None:
    d = decide(held_by("b"), identity="a", now=NOW, unchanged_for=3.9, lease_duration=4.0)
    assert d.verdict is Verdict.HELD
    assert d.record is None


def test_a_lease_unrenewed_for_its_duration_is_taken_and_counts_a_transition() -> None:
    d = decide(held_by("b"), identity="a", now=NOW, unchanged_for=4.0, lease_duration=4.0)
    assert d.verdict is Verdict.ACQUIRE
    assert d.record is not None
    assert d.record.holder == "a"
    assert d.record.transitions == 4
    assert d.record.acquire_time == NOW and d.record.renew_time == NOW
    # The write names the version it read: a concurrent writer makes it a 409.
    assert d.record.resource_version == "41"


def test_expiry_is_the_holders_promised_duration_not_ours() -> None:
    # The holder wrote leaseDurationSeconds 10: 5 s of silence is not enough, whatever ours is.
    record = held_by("b", seconds=10)
    assert decide(record, identity="a", now=NOW, unchanged_for=5, lease_duration=4).verdict is (
        Verdict.HELD
    )
    assert decide(record, identity="a", now=NOW, unchanged_for=10, lease_duration=4).verdict is (
        Verdict.ACQUIRE
    )


def test_clock_skew_a_holders_old_looking_renew_time_does_not_expire_its_lease() -> None:
    # The holder's clock runs an hour behind ours: its renewTime looks an hour old, but we saw
    # the record change a moment ago, so it is alive.
    skewed = LeaseRecord("b", 4, NOW - timedelta(hours=1), NOW - timedelta(hours=1), 2, "9")
    d = decide(skewed, identity="a", now=NOW, unchanged_for=0.5, lease_duration=4.0)
    assert d.verdict is Verdict.HELD


def test_clock_skew_a_renew_time_in_the_future_does_not_hold_a_dead_lease() -> None:
    # The holder's clock ran an hour ahead, then it died: silence on our clock expires it.
    ahead = LeaseRecord("b", 4, NOW + timedelta(hours=1), NOW + timedelta(hours=1), 2, "9")
    d = decide(ahead, identity="a", now=NOW, unchanged_for=4.0, lease_duration=4.0)
    assert d.verdict is Verdict.ACQUIRE


def test_my_own_lease_is_renewed_keeping_acquire_time_and_transitions() -> None:
    d = decide(held_by("a"), identity="a", now=NOW, unchanged_for=100, lease_duration=4.0)
    assert d.verdict is Verdict.RENEW
    assert d.record == LeaseRecord("a", 4, EARLIER, NOW, 3, resource_version="41")


def test_a_released_lease_is_taken_at_once_and_counts_a_transition() -> None:
    free = released(held_by("b"), NOW)
    assert free.holder is None and free.transitions == 3
    d = decide(free, identity="a", now=NOW, unchanged_for=0, lease_duration=4.0)
    assert d.verdict is Verdict.ACQUIRE
    assert d.record is not None and d.record.holder == "a" and d.record.transitions == 4


@pytest.mark.parametrize(("duration", "seconds"), [(4.0, 4), (2.5, 3), (0.2, 1)])
def test_lease_duration_seconds_is_a_whole_number_rounded_up(duration: float, seconds: int) -> None:
    d = decide(None, identity="a", now=NOW, unchanged_for=0, lease_duration=duration)
    assert d.record is not None and d.record.lease_duration_seconds == seconds


def test_micro_time_is_rfc3339_utc_with_microseconds() -> None:
    assert format_micro_time(NOW) == "2026-12-05T12:00:00.123456Z"
    east = NOW.astimezone(timezone(timedelta(hours=2)))
    assert format_micro_time(east) == "2026-12-05T12:00:00.123456Z"
    assert parse_micro_time("2026-12-05T12:00:00.123456Z") == NOW
    assert parse_micro_time("2026-12-05T12:00:00Z") == NOW.replace(microsecond=0)
    assert parse_micro_time(None) is None


def test_manifest_round_trip() -> None:
    record = held_by("b")
    manifest = to_manifest(record, name="driftmend-leader", namespace="ops")
    assert manifest["apiVersion"] == "coordination.k8s.io/v1"
    assert manifest["metadata"] == {
        "name": "driftmend-leader",
        "namespace": "ops",
        "resourceVersion": "41",
    }
    assert manifest["spec"]["renewTime"] == "2026-12-05T11:59:30.123456Z"
    assert from_manifest(manifest) == record


def test_a_released_lease_has_no_holder_identity_in_its_manifest() -> None:
    manifest = to_manifest(released(held_by("b"), NOW), name="l", namespace="ops")
    assert "holderIdentity" not in manifest["spec"]
    assert from_manifest(manifest).holder is None
