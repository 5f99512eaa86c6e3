"""The guard: each admission rule has a test that fails when the rule is removed. Pure."""

from __future__ import annotations

from typing import Any

from driftmend.guard import admit
from driftmend.model import FixAttempt, Plan, PlanStep
from driftmend.tools.catalogue import default_catalogue, tool_facts
from tests.unit.factories import policy

FACTS = tool_facts(default_catalogue())
KEY = "Container/shop"


def plan(*steps: PlanStep, source: str = "rules", rule: str | None = "restart") -> Plan:
    return Plan(KEY, steps, source, "test", policy="p", rule=rule)  # type: ignore[arg-type]


def step(tool: str = "container_restart", target: str = KEY, **params: Any) -> PlanStep:
    return PlanStep(tool, target, params)


def check(p: Plan, pol: Any = None, history: Any = (), **kw: Any):  # type: ignore[no-untyped-def]
    return admit(
        p,
        kind=kw.pop("kind", "Container"),
        policy=policy() if pol is None else pol,
        tools=FACTS,
        history=list(history),
        now=1000.0,
        **kw,
    )


def test_a_good_plan_is_admitted() -> None:
    d = check(plan(step()))
    assert d.admitted and d.reason == "admitted"


def test_empty_plan() -> None:
    assert check(plan()).reason == "the plan has no steps"


def test_too_many_steps() -> None:
    d = check(plan(*[step()] * 9))
    assert not d.admitted and "at most 8" in d.reason


def test_unknown_tool() -> None:
    d = check(plan(step("rm_rf")))
    assert not d.admitted and d.reason == "step 1 (rm_rf): no such tool"


def test_tool_outside_the_allowlist() -> None:
    d = check(plan(step("container_scale", replicas=2)))
    assert (
        not d.admitted
        and "the policy does not allow this tool (allowed: container_restart)" in d.reason
    )


def test_other_target() -> None:
    d = check(plan(step(target="Container/other")))
    assert not d.admitted and "targets Container/other, but only Container/shop drifted" in d.reason


def test_tool_of_another_kind() -> None:
    rules = [
        {
            "name": "restart",
            "when": [{"signal": "container.running", "value": False}],
            "do": [{"tool": "redis_flush"}],
        }
    ]
    d = check(plan(step("redis_flush")), policy(rules=rules))
    assert not d.admitted and "acts on RedisCache, not Container" in d.reason


def test_invalid_params() -> None:
    d = check(plan(step(replica=-3)))
    assert not d.admitted and "invalid parameters" in d.reason


def test_unknown_params() -> None:
    d = check(plan(step(force=True)))
    assert not d.admitted and "invalid parameters" in d.reason


def destructive_policy(approval: str = "operator") -> Any:
    rules = [
        {
            "name": "flush",
            "when": [{"signal": "redis.up", "value": False}],
            "do": [{"tool": "redis_flush"}],
        }
    ]
    return policy(kind="RedisCache", rules=rules, approval=approval)


def test_destructive_needs_approval() -> None:
    p = Plan(
        "RedisCache/cache",
        (PlanStep("redis_flush", "RedisCache/cache"),),
        "rules",
        "t",
        "p",
        "flush",
    )
    refused = admit(
        p, kind="RedisCache", policy=destructive_policy(), tools=FACTS, history=[], now=0.0
    )
    assert not refused.admitted and "destructive and not approved" in refused.reason
    auto = admit(
        p, kind="RedisCache", policy=destructive_policy("auto"), tools=FACTS, history=[], now=0.0
    )
    assert auto.admitted
    by_operator = admit(
        p,
        kind="RedisCache",
        policy=destructive_policy(),
        tools=FACTS,
        history=[],
        now=0.0,
        approved=True,
    )
    assert by_operator.admitted


def test_attempts_per_window() -> None:
    history = [
        FixAttempt(KEY, 900.0, "failed", "p", "restart"),
        FixAttempt(KEY, 950.0, "fixed", "p", "restart"),
    ]
    d = check(plan(step()), history=history)
    assert not d.admitted and "used 2/2 attempts" in d.reason


def test_cooldown() -> None:
    rules = [
        {
            "name": "restart",
            "when": [{"signal": "container.running", "value": False}],
            "do": [{"tool": "container_restart"}],
            "cooldown": "60s",
            "attempts": {"max": 10},
        }
    ]
    d = check(plan(step()), policy(rules=rules), [FixAttempt(KEY, 990.0, "fixed", "p", "restart")])
    assert not d.admitted and "cooling down" in d.reason and d.retry_after == 50.0


def test_dry_run_admits_nothing() -> None:
    d = check(plan(step()), dry_run=True)
    assert not d.admitted and d.dry_run and d.reason.startswith("dry-run")


def test_no_policy_needs_an_operator() -> None:
    d = admit(plan(step()), kind="Container", policy=None, tools=FACTS, history=[], now=0.0)
    assert not d.admitted and "only an operator-approved plan" in d.reason


def test_an_llm_plan_is_held_to_the_escalation_allowlist() -> None:
    llm = Plan(KEY, (step("container_scale", replicas=2),), "gemini", "t", "p", None)
    refused = check(llm, allowed_tools={"container_restart", "container_logs"})
    assert not refused.admitted and "does not allow this tool" in refused.reason
    assert check(llm, allowed_tools={"container_scale"}).admitted


def redis_plan(*tools: str, source: str = "rules", rule: str | None = "flush") -> Plan:
    steps = tuple(
        PlanStep(
            t, "RedisCache/cache", {"policy": "allkeys-lru"} if t == "redis_set_policy" else {}
        )
        for t in tools
    )
    return Plan("RedisCache/cache", steps, source, "t", "p", rule)  # type: ignore[arg-type]


def redis_check(p: Plan, pol: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
    return admit(
        p,
        kind="RedisCache",
        policy=destructive_policy() if pol is None else pol,
        tools=FACTS,
        history=kw.pop("history", []),
        now=kw.pop("now", 0.0),
        **kw,
    )


def test_a_step_after_a_destructive_one_is_still_checked() -> None:
    # The operator is asked to approve only plans the guard would otherwise admit: a tool
    # outside the allowlist behind a destructive step is refused outright, not parked.
    d = redis_check(redis_plan("redis_flush", "redis_set_policy", source="gemini"),
                    allowed_tools={"redis_flush"})  # fmt: skip
    assert not d.admitted and not d.needs_approval
    assert "step 2 (redis_set_policy): the policy does not allow this tool" in d.reason


def test_approval_does_not_widen_the_allowlist() -> None:
    d = redis_check(redis_plan("redis_flush", "redis_set_policy", source="gemini"),
                    allowed_tools={"redis_flush"}, approved=True)  # fmt: skip
    assert not d.admitted and "does not allow this tool" in d.reason


def test_dry_run_wins_over_waiting_for_approval() -> None:
    d = redis_check(redis_plan("redis_flush"), dry_run=True)
    assert d.dry_run and not d.needs_approval


def test_a_rung_may_ask_for_an_operator_without_a_destructive_step() -> None:
    rules = [
        {
            "name": "restart",
            "when": [{"signal": "container.running", "value": False}],
            "do": [{"tool": "container_restart"}],
            "approval": "operator",
        }
    ]
    d = check(plan(step()), policy(rules=rules, approval="auto"))
    assert d.needs_approval and "rule restart waits for an operator" in d.reason
    assert check(plan(step()), policy(rules=rules), approved=True).admitted


def test_a_rung_may_approve_its_own_destructive_step() -> None:
    rules = [
        {
            "name": "flush",
            "when": [{"signal": "redis.up", "value": False}],
            "do": [{"tool": "redis_flush"}],
            "approval": "auto",
        }
    ]
    pol = policy(kind="RedisCache", rules=rules)  # the policy itself says approval: operator
    assert redis_check(redis_plan("redis_flush"), pol).admitted
    # ... but only for that rung's own plan: an LLM answering the same drift still needs one.
    llm = redis_check(redis_plan("redis_flush", source="gemini"), pol)
    assert llm.needs_approval and "destructive and not approved" in llm.reason


def escalating_policy(**escalate: Any) -> Any:
    return policy(
        rules=[
            {
                "name": "restart",
                "when": [{"signal": "container.running", "value": False}],
                "do": [{"tool": "container_restart"}],
            }
        ],
        escalate={"mode": "auto", **escalate},
    )


def test_llm_plans_have_attempts_per_window() -> None:
    pol = escalating_policy(attempts={"max": 2, "window": "1h"})
    llm = plan(step(), source="gemini", rule=None)
    history = [FixAttempt(KEY, 100.0, "failed", "p", None, "gemini"),
               FixAttempt(KEY, 200.0, "failed", "p", None, "openai")]  # fmt: skip
    d = check(llm, pol, history)
    assert not d.admitted and "ran 2/2 LLM plans in 1h" in d.reason and d.retry_after == 2700.0
    # The rules' own attempts do not count against the LLM's budget.
    rules_only = [FixAttempt(KEY, 100.0, "failed", "p", "restart", "rules")] * 2
    assert check(llm, pol, rules_only).admitted


def test_llm_plans_have_a_cooldown() -> None:
    pol = escalating_policy(cooldown="5m", attempts={"max": 10, "window": "1h"})
    llm = plan(step(), source="replay", rule=None)
    d = check(llm, pol, [FixAttempt(KEY, 900.0, "fixed", "p", None, "replay")])
    assert not d.admitted and "cooling down" in d.reason and d.retry_after == 200.0


def triggered(trigger: str) -> Plan:
    return Plan(KEY, (step(),), "rules", "test", policy="p", rule="restart", trigger=trigger)  # type: ignore[arg-type]


SPENT = [
    FixAttempt(KEY, 985.0, "failed", "p", "restart", finished_at=990.0),
    FixAttempt(KEY, 992.0, "failed", "p", "restart", finished_at=995.0),
]


def test_a_backoff_retry_waits_for_its_backoff_not_the_rungs_attempts() -> None:
    early = check(triggered("backoff"), history=SPENT)
    assert not early.admitted and early.over_budget and early.retry_after == 5.0
    assert "retry 1 in 5s (backoff 10s doubling to 5m)" in early.reason
    later = [*SPENT, FixAttempt(KEY, 900.0, "failed", "p", "restart", trigger="backoff")]
    due = admit(
        triggered("backoff"), kind="Container", policy=policy(), tools=FACTS,
        history=SPENT, now=1005.0,
    )  # fmt: skip
    assert due.admitted
    # One retry already ran in the incident: the next waits twice as long.
    assert not check(triggered("backoff"), history=later).admitted


def test_a_holding_policy_admits_no_backoff_retry() -> None:
    d = admit(
        triggered("backoff"), kind="Container", policy=policy(onExhausted="hold"), tools=FACTS,
        history=SPENT, now=1100.0,
    )  # fmt: skip
    assert not d.admitted and "onExhausted: hold" in d.reason


def test_fix_now_is_admitted_whatever_the_budget() -> None:
    assert not check(triggered("ladder"), history=SPENT).admitted
    assert check(triggered("operator"), history=SPENT).admitted


def test_attempts_of_an_earlier_incident_do_not_count() -> None:
    long_ago = [FixAttempt(KEY, 100.0, "fixed", "p", "restart", finished_at=101.0)] * 2
    # Ten quiet minutes (twice backoff.max of 5m) since the last fix: a new incident.
    assert check(triggered("ladder"), history=long_ago).admitted
