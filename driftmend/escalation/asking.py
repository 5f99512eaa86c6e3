"""Asking an LLM planner for a plan: the request, the token budgets, the stored exchange.

Stage: *plan* (rules -> LLM) in docs/ARCHITECTURE.md. ``Escalator.ask`` builds the request
(the resource, its drifts and signals, its recent fixes and logs, the tools the policy
allows), enforces the per-resource and fleet token budgets, lets the planner run read tools
while it investigates, and stores every interaction whole. What becomes of the plan is
``escalation.handling``'s business.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftmend.act import ToolInvoker
from driftmend.escalation.policy import allowed_tools
from driftmend.logs import LogAccumulator
from driftmend.metrics import Metrics
from driftmend.model import Drift, Observation, Plan, ToolResult
from driftmend.planners.base import Planner, PlanRequest
from driftmend.planners.conversation import outcome_of
from driftmend.spec import Escalate, HealingPolicy, Resource
from driftmend.store import FixSummary, Store
from driftmend.tools.base import Catalogue, Effect

log = logging.getLogger("driftmend.escalation")

DAY = 86400.0
HISTORY_FIXES = 5  # the newest fixes the model sees: enough to spot a loop, few tokens


@dataclass(frozen=True)
class Escalation:
    """What the planner proposed (or why nothing), and the stored interaction's id."""

    plan: Plan | None
    reason: str
    allowed: frozenset[str]
    interaction_id: int | None = None
    cost_usd: float = 0.0


def prompt_history(fix: FixSummary) -> dict[str, Any]:
    """One earlier fix as the prompt shows it: when, by what, which tools, how it ended.

    ``planners.prompt`` prints ``detected_at`` as the time and the plan's steps as the
    tools: a fix handed over without them reads to the model as a timeless, empty attempt.
    """
    return {
        "detected_at": fix.detected_at,
        "source": fix.source,
        "rule": fix.rule,
        "steps": [{"tool": s.get("tool"), "target": s.get("target")} for s in fix.planned_steps],
        "root_cause": fix.root_cause,
        "outcome": fix.outcome or fix.status,
        "message": fix.message,
    }


class Escalator:
    """Asks the configured planners; everything with I/O is passed in."""

    def __init__(
        self,
        *,
        planners: Mapping[str, Planner],
        store: Store,
        metrics: Metrics,
        catalogue: Catalogue,
        invoker: Callable[[], ToolInvoker],
        logs: LogAccumulator,
        clock: Callable[[], float],
        unconfigured: Mapping[str, str] | None = None,
        tokens_per_day: int | None = None,
        deadline: float = 120.0,
    ) -> None:
        self.planners = dict(planners)
        self.unconfigured = dict(unconfigured or {})
        self.store = store
        self.metrics = metrics
        self.catalogue = catalogue
        self._invoker = invoker
        self.logs = logs
        self.clock = clock
        self.tokens_per_day = tokens_per_day
        self.deadline = deadline

    @property
    def ready(self) -> bool:
        """True when some LLM planner is configured."""
        return bool(self.planners)

    async def close(self) -> None:
        """Close every planner's client."""
        for planner in self.planners.values():
            await planner.close()

    def describe(self) -> str:
        """One line for the start-up log: which planners answer, which do not and why."""
        ready = ", ".join(sorted(self.planners)) or "none"
        missing = "; ".join(f"{k}: {v}" for k, v in sorted(self.unconfigured.items()))
        return f"LLM planners: {ready}" + (f" (not configured: {missing})" if missing else "")

    async def ask(
        self,
        resource: Resource,
        policy: HealingPolicy,
        drifts: Sequence[Drift],
        obs: Observation,
        why: str,
    ) -> Escalation:
        """Ask the policy's planner for a plan; never raises."""
        esc: Escalate = policy.spec.escalate  # type: ignore[assignment]
        allowed = allowed_tools(policy, self.catalogue, resource.kind)
        planner = self.planners.get(esc.planner)
        if planner is None:
            reason = self.unconfigured.get(esc.planner, f"no {esc.planner} planner configured")
            return Escalation(None, f"rules only: {reason}", allowed)
        now = self.clock()
        spent = self.store.llm_records.llm_tokens_since(resource.key, now - DAY)
        if spent >= esc.token_budget_per_day:
            return Escalation(
                None,
                f"LLM token budget spent: {spent} of {esc.token_budget_per_day} tokens today",
                allowed,
            )
        if self.tokens_per_day is not None:
            fleet = self.store.llm_records.llm_tokens_since(None, now - DAY)
            if fleet >= self.tokens_per_day:
                return Escalation(
                    None,
                    f"the shared LLM token budget is spent: {fleet} of {self.tokens_per_day} "
                    "tokens today over every resource (DRIFTMEND_LLM_TOKENS_PER_DAY)",
                    allowed,
                )
        tools = tuple(t for t in self.catalogue if t.name in allowed and resource.kind in t.kinds)

        async def read_tool(name: str, params: Mapping[str, Any]) -> ToolResult:
            tool = self.catalogue.get(name)
            if tool is None or name not in allowed or tool.effect is not Effect.READ:
                return ToolResult.refused(f"{name} is not a read tool this policy allows")
            result, _ = await self._invoker().invoke(name, resource, params)
            return result

        history = tuple(
            prompt_history(f)
            for f in self.store.fix_records.fixes(key=resource.key, limit=HISTORY_FIXES)
        )
        request = PlanRequest(
            resource=resource,
            drifts=tuple(drifts),
            signals=dict(obs.signals),
            tools=tools,
            escalate=esc,
            policy=policy.name,
            history=history,
            logs=tuple(self.logs.recent(resource.key, 30)),
            reason=why,
            read_tool=read_tool,
            facts=dict(obs.facts),
        )
        try:
            # Retries and read turns included: a worker is held while the model thinks.
            async with asyncio.timeout(self.deadline):
                answer = await planner.plan(request)
        except TimeoutError:
            reason = f"{esc.planner} gave no plan within the {self.deadline:g}s deadline"
            interaction = self.store.llm_records.record_llm_interaction(
                resource.key, esc.planner, "-", {"note": "the prompt was not recorded: the "
                "planner was cut off by the deadline"}, {}, None, 0, 0, self.deadline,
                self.clock(), reason,
            )  # fmt: skip
            self.metrics.llm_request(esc.planner, "timeout", self.deadline, 0, 0)
            return Escalation(None, reason, allowed, interaction)
        if answer.plan is not None and not answer.plan.policy:
            # The record says which policy asked, whatever the planner filled in.
            answer = dataclasses.replace(
                answer, plan=dataclasses.replace(answer.plan, policy=policy.name)
            )
        # The read calls the model made on the way (and their results) are part of the record.
        response: Any = (
            {"response": answer.response, "turns": list(answer.turns)}
            if answer.turns
            else answer.response
        )
        interaction = self.store.llm_records.record_llm_interaction(
            resource.key,
            answer.planner,
            answer.model,
            answer.prompt,
            response,
            answer.plan,
            answer.tokens_in,
            answer.tokens_out,
            answer.latency_s,
            self.clock(),
            answer.error,
        )
        self.metrics.llm_request(
            answer.planner,
            outcome_of(answer),
            answer.latency_s,
            answer.tokens_in,
            answer.tokens_out,
        )
        if answer.plan is None:
            return Escalation(
                None,
                f"{answer.planner} proposed no plan: {answer.error or 'no tool calls'}",
                allowed,
                interaction,
                answer.cost_usd,
            )
        log.info(
            "%s proposed %d step(s) for %s", answer.planner, len(answer.plan.steps), resource.key
        )
        return Escalation(answer.plan, "planned", allowed, interaction, answer.cost_usd)
