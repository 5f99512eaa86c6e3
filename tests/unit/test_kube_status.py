"""The status a custom resource shows kubectl, and the Events of a fix (pure)."""

from __future__ import annotations

from driftmend.kube.status import (
    FixFacts,
    PendingFacts,
    conditions,
    fix_events,
    policy_status,
    resource_status,
    rfc3339,
)
from driftmend.model import Health

T0 = 1_800_000_000.0


def _fix(status: str = "done", outcome: str | None = "fixed", ttr: float | None = 0.5) -> FixFacts:
    return FixFacts(
        id=7,
        started_at=T0,
        rule="restart-on-exit",
        status=status,
        outcome=outcome,
        seconds_to_recover=ttr,
        summary="container_restart: the app exited",
        message="verified",
    )


def _by_type(conds: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conds}


def test_healthy_is_ready_and_nothing_else() -> None:
    conds = _by_type(conditions(Health.HEALTHY, "in sync", None, 3, [], T0))
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["reason"] == "InSync"
    assert conds["Drifting"]["status"] == "False"
    assert conds["Healing"]["status"] == "False"
    assert conds["NeedsOperator"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in conds.values())
    assert all(c["lastTransitionTime"] == rfc3339(T0) for c in conds.values())


def test_a_transition_time_moves_only_with_its_status() -> None:
    first = conditions(Health.DRIFTING, "app is not running", None, 1, [], T0)
    later = _by_type(conditions(Health.DRIFTING, "still not running", None, 1, first, T0 + 60))
    assert later["Drifting"]["lastTransitionTime"] == rfc3339(T0)
    assert later["Drifting"]["message"] == "still not running"
    healed = _by_type(conditions(Health.HEALTHY, "in sync", None, 1, list(later.values()), T0 + 90))
    assert healed["Drifting"]["status"] == "False"
    assert healed["Drifting"]["lastTransitionTime"] == rfc3339(T0 + 90)
    assert healed["Healing"]["lastTransitionTime"] == rfc3339(T0)  # never moved


def test_needs_operator_says_why_and_counts_as_drifting() -> None:
    conds = _by_type(conditions(Health.NEEDS_OPERATOR, "spent", "the ladder is spent", 2, [], T0))
    assert conds["NeedsOperator"] == {
        "type": "NeedsOperator",
        "status": "True",
        "reason": "LadderSpent",
        "message": "the ladder is spent",
        "lastTransitionTime": rfc3339(T0),
        "observedGeneration": 2,
    }
    assert conds["Drifting"]["status"] == "True"
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "NeedsOperator"


def test_unknown_health_is_not_claimed_either_way() -> None:
    conds = _by_type(conditions(Health.UNKNOWN, "", None, 1, [], T0))
    assert conds["Ready"]["status"] == "Unknown"
    assert conds["Drifting"]["status"] == "Unknown"


def test_resource_status_carries_last_fix_and_pending_plan() -> None:
    status = resource_status(
        generation=4,
        health=Health.HEALTHY,
        message="in sync",
        operator_reason=None,
        last_fix=_fix(ttr=0.5432),
        pending=PendingFacts(id=2, since=T0 + 5, summary="restart the cache"),
        previous=None,
        now=T0 + 10,
    )
    assert status["observedGeneration"] == 4
    assert status["health"] == "healthy"
    assert status["lastFix"] == {
        "id": 7,
        "at": rfc3339(T0),
        "rule": "restart-on-exit",
        "outcome": "fixed",
        "summary": "container_restart: the app exited",
        "secondsToRecover": 0.543,
    }
    assert status["pendingPlan"] == {
        "id": 2,
        "since": rfc3339(T0 + 5),
        "summary": "restart the cache",
    }


def test_no_fix_and_no_plan_are_nulls_so_a_merge_patch_clears_them() -> None:
    status = resource_status(
        generation=1, health=Health.HEALTHY, message="", operator_reason=None,
        last_fix=None, pending=None, previous=None, now=T0,
    )  # fmt: skip
    assert status["lastFix"] is None
    assert status["pendingPlan"] is None


def test_a_running_fix_shows_running_and_no_recovery_time() -> None:
    status = resource_status(
        generation=1, health=Health.HEALING, message="fixing", operator_reason=None,
        last_fix=_fix(status="running", outcome=None, ttr=None), pending=None, previous=None,
        now=T0,
    )  # fmt: skip
    assert status["lastFix"]["outcome"] == "running"
    assert "secondsToRecover" not in status["lastFix"]
    assert _by_type(status["conditions"])["Healing"]["status"] == "True"


def test_policy_status_accepted_and_refused() -> None:
    ok = policy_status(
        generation=2, accepted=True, problem=None, matched=3, last_fix=None, previous=None, now=T0
    )
    assert ok["matchedResources"] == 3
    assert ok["conditions"][0]["status"] == "True"
    assert ok["conditions"][0]["reason"] == "Accepted"
    bad = policy_status(
        generation=3, accepted=False, problem="spec.rules[0].do[0].tool: unknown tool",
        matched=0, last_fix=None, previous=ok, now=T0 + 5,
    )  # fmt: skip
    ready = bad["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "Invalid")
    assert ready["message"] == "spec.rules[0].do[0].tool: unknown tool"
    assert ready["lastTransitionTime"] == rfc3339(T0 + 5)


def test_fix_events_tell_start_then_end_once() -> None:
    running = _fix(status="running", outcome=None, ttr=None)
    started = fix_events(None, running)
    assert [(e.type, e.reason) for e in started] == [("Normal", "FixStarted")]
    done = fix_events(running, _fix())
    assert [(e.type, e.reason) for e in done] == [("Normal", "Fixed")]
    assert "0.50s" in done[0].message
    assert fix_events(_fix(), _fix()) == []


def test_a_failed_fix_is_a_warning_naming_its_outcome() -> None:
    failed = _fix(outcome="failed", ttr=None)
    events = fix_events(None, failed)
    assert [(e.type, e.reason) for e in events] == [
        ("Normal", "FixStarted"),
        ("Warning", "FixFailed"),
    ]
    assert "restart-on-exit" in events[1].message


def test_what_the_operator_writes_is_what_the_crds_declare() -> None:
    # The CRDs' status schema is generated from these models: a field written here that the
    # models do not know would be pruned by the API server without a word.
    from driftmend.spec.crds import PolicyStatus, ResourceStatus

    status = resource_status(
        generation=4, health=Health.NEEDS_OPERATOR, message="spent",
        operator_reason="the ladder is spent", last_fix=_fix(),
        pending=PendingFacts(id=2, since=T0, summary="restart"), previous=None, now=T0,
    )  # fmt: skip
    parsed = ResourceStatus.model_validate(status)
    assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json").keys() == status.keys()
    policy = policy_status(
        generation=1, accepted=True, problem=None, matched=2, last_fix=_fix(), previous=None, now=T0
    )
    assert PolicyStatus.model_validate(policy).matched_resources == 2
