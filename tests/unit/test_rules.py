"""The rules planner: the ladder, budgets, cooldowns and needs-operator. Pure, no I/O."""

from __future__ import annotations

from driftmend.diff import diff
from driftmend.model import FixAttempt
from driftmend.planners.rules import Verdict, plan_rules
from tests.unit.factories import container, obs, policy, running

LADDER = [
    {
        "name": "terminate-idle",
        "when": [{"signal": "container.memory_used_ratio", "operator": ">=", "value": 0.9}],
        "do": [{"tool": "container_restart", "params": {"replica": 0}}],
        "attempts": {"max": 1, "window": "10m"},
    },
    {
        "name": "scale-out",
        "when": [{"signal": "container.memory_used_ratio", "operator": ">=", "value": 0.9}],
        "do": [{"tool": "container_scale", "params": {"replicas": 2}}],
        "attempts": {"max": 1, "window": "10m"},
        "cooldown": "1m",
    },
]


def decide(policies, observation, history=(), now=1000.0):  # type: ignore[no-untyped-def]
    c = container()
    return plan_rules(c, policies, diff(c, policies, observation), list(history), now)


RESTART = {
    "name": "restart",
    "when": [{"signal": "container.running", "operator": "==", "value": False}],
    "do": [{"tool": "container_restart"}],
}


def attempt(rule: str, at: float, outcome: str = "fixed") -> FixAttempt:
    return FixAttempt("Container/shop", at, outcome, "p", rule)


def test_in_sync() -> None:
    assert decide([policy()], running()).verdict is Verdict.IN_SYNC


def test_crash_gives_the_declared_plan() -> None:
    d = decide([policy()], obs(container__running=False))
    assert d.verdict is Verdict.PLAN and d.plan is not None
    assert [(s.tool, s.target, dict(s.params)) for s in d.plan.steps] == [
        ("container_restart", "Container/shop", {})
    ]
    assert d.plan.source == "rules" and (d.plan.policy, d.plan.rule) == ("p", "restart")
    assert {x.signal for x in d.plan.drifts} == {"container.running"}


def test_budget_exhausted_on_a_holding_policy_needs_operator_and_runs_nothing() -> None:
    history = [attempt("restart", 900.0), attempt("restart", 950.0, "failed")]
    d = decide([policy(onExhausted="hold")], obs(container__running=False), history)
    assert d.verdict is Verdict.NEEDS_OPERATOR and d.plan is None
    assert "used 2/2 attempts in 5m" in d.reason and "onExhausted: hold" in d.reason
    assert d.exhausted is not None and "used 2/2 attempts in 5m" in d.exhausted
    assert d.retry_after == 900.0 + 300.0 - 1000.0


def test_an_exhausted_ladder_waits_its_backoff_then_retries_its_first_rung() -> None:
    history = [attempt("restart", 990.0), attempt("restart", 995.0, "failed")]
    waiting = decide([policy()], obs(container__running=False), history, now=1000.0)
    assert waiting.verdict is Verdict.NEEDS_OPERATOR and waiting.plan is None
    assert waiting.exhausted == "ladder exhausted: rule p/restart used 2/2 attempts in 5m"
    assert "retry 1 in 5s (backoff 10s doubling to 5m)" in waiting.reason
    assert waiting.retry_after == 5.0
    due = decide([policy()], obs(container__running=False), history, now=1005.0)
    assert due.verdict is Verdict.PLAN and due.plan is not None
    assert (due.plan.rule, due.plan.trigger) == ("restart", "backoff")
    assert due.exhausted == waiting.exhausted


def retried(at: float) -> FixAttempt:
    return FixAttempt("Container/shop", at, "failed", "p", "restart", trigger="backoff")


def test_backoff_doubles_with_each_retry_up_to_its_max() -> None:
    spec = {"backoff": {"initial": "10s", "max": "30s"}}
    ladder = [attempt("restart", 900.0), attempt("restart", 901.0)]
    for retries, wait in ((1, 20.0), (2, 30.0), (5, 30.0)):
        last = 902.0 + retries
        history = [*ladder, *(retried(902.0 + i) for i in range(1, retries + 1))]
        early = decide([policy(**spec)], obs(container__running=False), history, now=last + 1)
        assert early.verdict is Verdict.NEEDS_OPERATOR and early.retry_after == wait - 1
        on_time = decide([policy(**spec)], obs(container__running=False), history, now=last + wait)
        assert on_time.plan is not None and on_time.plan.trigger == "backoff"


def test_retries_do_not_use_a_rungs_attempts_and_attempts_replenish() -> None:
    # Both ladder attempts have left the 5m window; only backoff retries are recent.
    history = [attempt("restart", 600.0), attempt("restart", 650.0)]
    history += [retried(at) for at in (700.0, 800.0, 900.0, 990.0)]
    d = decide([policy()], obs(container__running=False), history, now=1000.0)
    assert d.verdict is Verdict.PLAN and d.plan is not None and d.plan.trigger == "ladder"


def test_attempts_of_an_earlier_incident_do_not_count() -> None:
    # A long window, but ten quiet minutes (twice backoff.max) since: a new incident.
    rules = [{**RESTART, "attempts": {"max": 1, "window": "1h"}}]
    earlier = [FixAttempt("Container/shop", 100.0, "fixed", "p", "restart", finished_at=101.0)]
    fresh = decide([policy(rules=rules)], obs(container__running=False), earlier, now=701.0)
    assert fresh.verdict is Verdict.PLAN and fresh.plan is not None
    assert fresh.plan.trigger == "ladder"
    same = decide([policy(rules=rules)], obs(container__running=False), earlier, now=699.0)
    assert same.exhausted == "ladder exhausted: rule p/restart used 1/1 attempts in 1h"
    assert same.plan is not None and same.plan.trigger == "backoff"


def test_a_later_rung_timing_its_for_gets_its_turn_before_the_ladder_is_exhausted() -> None:
    rules = [
        {**RESTART, "attempts": {"max": 1, "window": "5m"}},
        {
            "name": "unhealthy",
            "when": [
                {"signal": "container.healthy", "operator": "==", "value": False, "for": "10s"}
            ],
            "do": [{"tool": "container_restart"}],
        },
    ]
    pol = [policy(rules=rules)]
    c = container()
    down = obs(container__running=False, container__healthy=False)
    first = diff(c, pol, down)  # container.healthy starts timing its `for`
    d = plan_rules(c, pol, first, [attempt("restart", 990.0)], 1000.0)
    assert d.verdict is Verdict.WAIT and d.exhausted is None
    assert d.retry_after == 10.0
    later = diff(
        c, pol, obs(at=1010.0, container__running=False, container__healthy=False), first.pending
    )
    d = plan_rules(c, pol, later, [attempt("restart", 990.0)], 1010.0)
    assert d.verdict is Verdict.PLAN and d.plan is not None and d.plan.rule == "unhealthy"


def test_fix_now_runs_the_first_rung_whatever_its_budget() -> None:
    history = [attempt("restart", 990.0), attempt("restart", 995.0, "failed")]
    c = container()
    result = diff(c, [policy()], obs(container__running=False))
    d = plan_rules(c, [policy(onExhausted="hold")], result, history, 996.0, by_operator=True)
    assert d.verdict is Verdict.PLAN and d.plan is not None
    assert (d.plan.rule, d.plan.trigger) == ("restart", "operator")


def test_fix_now_runs_a_rung_still_timing_its_for() -> None:
    rules = [
        {
            "name": "unhealthy",
            "when": [
                {"signal": "container.healthy", "operator": "==", "value": False, "for": "1m"}
            ],
            "do": [{"tool": "container_restart"}],
        }
    ]
    c = container()
    pol = [policy(rules=rules)]
    result = diff(c, pol, obs(container__running=True, container__healthy=False))
    assert plan_rules(c, pol, result, [], 1000.0).verdict is Verdict.WAIT
    d = plan_rules(c, pol, result, [], 1000.0, by_operator=True)
    assert d.plan is not None and (d.plan.rule, d.plan.trigger) == ("unhealthy", "operator")


def test_attempts_outside_the_window_do_not_count() -> None:
    history = [attempt("restart", 100.0), attempt("restart", 200.0)]
    assert decide([policy()], obs(container__running=False), history).verdict is Verdict.PLAN


def test_ladder_moves_to_the_next_rung() -> None:
    p = policy(rules=LADDER)
    hot = running(container__memory_used_ratio=0.95)
    first = decide([p], hot)
    assert first.plan is not None and first.plan.rule == "terminate-idle"
    second = decide([p], hot, [attempt("terminate-idle", 990.0)])
    assert second.plan is not None and second.plan.rule == "scale-out"
    assert dict(second.plan.steps[0].params) == {"replicas": 2}


def test_cooldown_waits_instead_of_skipping_or_giving_up() -> None:
    p = policy(rules=[{**LADDER[1], "attempts": {"max": 5, "window": "10m"}}])
    d = decide([p], running(container__memory_used_ratio=0.95), [attempt("scale-out", 980.0)])
    assert d.verdict is Verdict.WAIT
    assert d.retry_after == 40.0 and "cooling down" in d.reason


def test_spec_drift_without_any_rule_needs_operator() -> None:
    d = decide([], obs(container__running=False))
    assert d.verdict is Verdict.NEEDS_OPERATOR
    assert "no HealingPolicy has a rule for container.running" in d.reason


def test_waiting_for_the_for_window() -> None:
    p = policy(
        rules=[
            {
                **LADDER[0],
                "when": [
                    {
                        "signal": "container.memory_used_ratio",
                        "operator": ">=",
                        "value": 0.9,
                        "for": "30s",
                    }
                ],
            }
        ]
    )
    d = decide([p], running(container__memory_used_ratio=0.95))
    assert d.verdict is Verdict.WAIT and d.retry_after == 30.0


def test_operator_plans_do_not_use_a_rules_budget() -> None:
    # An operator's plan (Fix now, an approval) is not an attempt of the rung it resembles.
    history = [FixAttempt("Container/shop", 990.0, "fixed", "p", "restart", source="operator")] * 3
    assert decide([policy()], obs(container__running=False), history).verdict is Verdict.PLAN


def test_a_cooling_rung_keeps_its_turn_over_the_next_rung() -> None:
    first = {**LADDER[0], "attempts": {"max": 5, "window": "10m"}, "cooldown": "1m"}
    p = policy(rules=[first, LADDER[1]])
    d = decide([p], running(container__memory_used_ratio=0.95), [attempt("terminate-idle", 980.0)])
    assert d.verdict is Verdict.WAIT and "cooling down" in d.reason and d.retry_after == 40.0


def test_a_cooling_rung_does_not_hold_up_another_policy() -> None:
    cpu = {
        "name": "cpu",
        "when": [{"signal": "container.cpu_used_ratio", "operator": ">=", "value": 0.9}],
        "do": [{"tool": "container_restart"}],
        "attempts": {"max": 5, "window": "10m"},
        "cooldown": "5m",
    }
    mem = {
        "name": "mem",
        "when": [{"signal": "container.memory_used_ratio", "operator": ">=", "value": 0.9}],
        "do": [{"tool": "container_scale", "params": {"replicas": 2}}],
    }
    a, b = policy("a-cpu", rules=[cpu]), policy("b-mem", rules=[mem])
    hot = running(container__cpu_used_ratio=0.95, container__memory_used_ratio=0.97)
    d = decide([a, b], hot, [FixAttempt("Container/shop", 990.0, "fixed", "a-cpu", "cpu")])
    assert d.verdict is Verdict.PLAN and d.plan is not None
    assert (d.plan.policy, d.plan.rule) == ("b-mem", "mem")
