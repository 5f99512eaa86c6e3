"""The pure decisions of a pass: triage, what the guard's verdict means, an LLM plan's fate."""

from __future__ import annotations

from typing import Any

from driftmend.decision import (
    DryRun,
    Escalate,
    Execute,
    Park,
    PassFacts,
    Settle,
    TryPlan,
    after_guard,
    policy_named,
    triage,
)
from driftmend.diff import diff
from driftmend.escalation.policy import LlmPark, LlmRecord, LlmRun, llm_next_step
from driftmend.guard import GuardDecision
from driftmend.model import FixAttempt, LlmDecision, Outcome
from tests.unit.factories import container, obs, policy, running

SHOP = container()


def facts(observation: Any = None, policies: Any = None, **kw: Any) -> PassFacts:
    policies = [policy()] if policies is None else policies
    observation = observation or obs(container__running=False)
    return PassFacts(
        resource=SHOP,
        policies=policies,
        result=diff(SHOP, policies, observation, {}),
        history=kw.pop("history", ()),
        now=kw.pop("now", 1000.0),
        **kw,
    )


def escalating(mode: str, when: str = "always") -> Any:
    return policy(escalate={"planner": "gemini", "mode": mode, "when": when})


def test_in_sync_settles_in_sync() -> None:
    step = triage(facts(running()))
    assert step == Settle(Outcome.IN_SYNC, "in sync")


def test_a_down_host_makes_a_hosted_resource_wait_for_it() -> None:
    step = triage(facts(host_down="Container/pg"))
    assert isinstance(step, Settle) and step.outcome is Outcome.WAITING
    assert "Container/pg is not running" in step.message and step.requeue_after == 1.0


def test_paused_settles_paused_unless_an_operator_asked() -> None:
    assert triage(facts(paused=True)) == Settle(
        Outcome.PAUSED, "healing is paused for this resource"
    )
    assert isinstance(triage(facts(paused=True, by_operator=True)), TryPlan)


def test_a_flagged_resource_whose_policy_holds_stays_with_the_operator() -> None:
    step = triage(facts(policies=[policy(onExhausted="hold")], needs_operator="ladder spent"))
    assert step == Settle(Outcome.NEEDS_OPERATOR, "ladder spent")


def test_a_flagged_resource_with_a_parked_plan_waits_for_its_approval() -> None:
    step = triage(facts(needs_operator="awaiting approval", parked=True))
    assert step == Settle(Outcome.NEEDS_OPERATOR, "awaiting approval")


def test_a_flagged_resource_keeps_converging_where_its_policy_retries() -> None:
    step = triage(facts(needs_operator="ladder spent"))
    assert isinstance(step, TryPlan) and step.plan.trigger == "ladder"


def test_a_flagged_resource_is_not_escalated_again() -> None:
    history = [FixAttempt("Container/shop", 990.0, "failed", "p", "restart")] * 2
    step = triage(
        facts(
            policies=[escalating("auto", when="no-rule")],
            history=history,
            needs_operator="the LLM had no plan",
            now=995.0,
        )
    )
    assert isinstance(step, Settle) and step.outcome is Outcome.NEEDS_OPERATOR
    assert "retry 1 in 5s" in step.message
    assert step.flag_operator == "ladder exhausted: rule p/restart used 2/2 attempts in 5m"


def test_fix_now_runs_on_a_flagged_holding_resource() -> None:
    history = [FixAttempt("Container/shop", 990.0, "failed", "p", "restart")] * 2
    step = triage(
        facts(
            policies=[policy(onExhausted="hold")],
            history=history,
            needs_operator="ladder spent",
            by_operator=True,
        )
    )
    assert isinstance(step, TryPlan) and step.plan.trigger == "operator"


def test_a_drift_with_a_rule_tries_the_rules_plan() -> None:
    step = triage(facts())
    assert isinstance(step, TryPlan)
    assert [s.tool for s in step.plan.steps] == ["container_restart"]


def test_a_condition_still_timing_its_for_waits() -> None:
    rules = [
        {
            "name": "noisy",
            "when": [
                {"signal": "logs.errors_per_minute", "operator": ">", "value": 5, "for": "30s"}
            ],
            "do": [{"tool": "container_restart"}],
        }
    ]
    noisy = running(logs__errors_per_minute=50.0)
    step = triage(facts(noisy, policies=[policy(rules=rules)]))
    assert isinstance(step, Settle) and step.outcome is Outcome.WAITING
    assert step.requeue_after is not None and 0 < step.requeue_after <= 30


def test_a_spent_ladder_flags_the_resource_for_an_operator() -> None:
    history = [FixAttempt("Container/shop", 990.0, "failed", "p", "restart")] * 2
    step = triage(facts(policies=[policy(onExhausted="hold")], history=history))
    assert isinstance(step, Settle) and step.outcome is Outcome.NEEDS_OPERATOR
    assert step.flag_operator == "ladder exhausted: rule p/restart used 2/2 attempts in 5m"
    assert step.message == f"{step.flag_operator} (onExhausted: hold)"


def test_a_spent_ladder_flags_the_resource_and_retries_after_its_backoff() -> None:
    history = [FixAttempt("Container/shop", 990.0, "failed", "p", "restart")] * 2
    waiting = triage(facts(history=history, now=995.0))
    assert isinstance(waiting, Settle) and waiting.outcome is Outcome.NEEDS_OPERATOR
    assert waiting.requeue_after == 5.0 and waiting.flag_operator is not None
    due = triage(facts(history=history, now=1000.0))
    assert isinstance(due, TryPlan) and due.plan.trigger == "backoff"
    assert due.flag_operator == waiting.flag_operator


def test_a_spent_ladder_escalates_when_a_policy_says_so() -> None:
    history = [FixAttempt("Container/shop", 990.0, "failed", "p", "restart")] * 2
    step = triage(facts(policies=[escalating("auto", when="no-rule")], history=history))
    assert isinstance(step, Escalate) and not step.record_only and step.then is None


def test_always_escalates_before_the_rules_in_auto_and_approve() -> None:
    for mode in ("auto", "approve"):
        step = triage(facts(policies=[escalating(mode)]))
        assert isinstance(step, Escalate) and not step.record_only


def test_shadow_beside_a_rules_plan_records_then_runs_the_rule() -> None:
    step = triage(facts(policies=[escalating("shadow")]))
    assert isinstance(step, Escalate) and step.record_only
    assert isinstance(step.then, TryPlan)


def test_no_rule_mode_leaves_a_rules_plan_alone() -> None:
    assert isinstance(triage(facts(policies=[escalating("auto", when="no-rule")])), TryPlan)


def test_after_guard_maps_every_verdict() -> None:
    assert after_guard(GuardDecision(False, "dry-run", dry_run=True)) == DryRun("dry-run")
    assert after_guard(GuardDecision(False, "needs approval", needs_approval=True)) == Park(
        "awaiting an operator's approval: needs approval"
    )
    refused = after_guard(GuardDecision(False, "cooling down", retry_after=30.0))
    assert refused == Settle(Outcome.REJECTED, "guard: cooling down", 30.0)
    assert after_guard(GuardDecision(True, "ok")) == Execute()


def test_an_llm_plan_follows_its_mode_and_the_guard() -> None:
    ok = GuardDecision(True, "ok")
    refused = GuardDecision(False, "not allowed")
    over = GuardDecision(False, "3 of 3 used", over_budget=True)
    approval = GuardDecision(False, "needs approval", needs_approval=True)
    shadow = llm_next_step("shadow", ok, "gemini")
    assert isinstance(shadow, LlmRecord) and shadow.decision is LlmDecision.SHADOW
    assert shadow.after_why
    dry = llm_next_step("auto", GuardDecision(False, "dry", dry_run=True), "gemini")
    assert isinstance(dry, LlmRecord) and dry.decision is LlmDecision.DRY_RUN
    assert isinstance(llm_next_step("approve", ok, "gemini"), LlmPark)
    assert isinstance(llm_next_step("auto", approval, "gemini"), LlmPark)
    assert isinstance(llm_next_step("auto", ok, "gemini"), LlmRun)
    for mode in ("auto", "approve"):
        no = llm_next_step(mode, refused, "gemini")
        assert isinstance(no, LlmRecord) and no.decision is LlmDecision.REJECTED
        spent = llm_next_step(mode, over, "gemini")
        assert isinstance(spent, LlmRecord) and spent.decision is LlmDecision.OVER_BUDGET


def test_policy_named_looks_only_in_the_resources_namespace() -> None:
    mine = policy("p")
    other = policy("p").model_copy(
        update={"metadata": policy("p").metadata.model_copy(update={"namespace": "prod"})}
    )
    assert policy_named(SHOP, [other, mine], "p") is mine
    assert policy_named(SHOP, [other], "p") is None
