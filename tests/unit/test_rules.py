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


def test_budget_exhausted_needs_operator() -> None:
    history = [attempt("restart", 900.0), attempt("restart", 950.0, "failed")]
    d = decide([policy()], obs(container__running=False), history)
    assert d.verdict is Verdict.NEEDS_OPERATOR
    assert "used 2/2 attempts in 5m" in d.reason
    assert d.retry_after == 900.0 + 300.0 - 1000.0


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
