"""Which policy escalates, which tools its LLM may use, and what becomes of its plan. Pure.

Stage: *plan* (rules -> LLM) in docs/ARCHITECTURE.md. A policy's ``escalate`` block says when
the LLM is asked, which tools it may use, and its mode: ``auto`` runs an admitted plan,
``approve`` parks it for an operator, ``shadow`` records it beside what the rules do. These
functions answer from the policy, the catalogue and the guard's decision alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftmend.guard import GuardDecision
from driftmend.model import Drift, LlmDecision, Plan, ShadowAgreement
from driftmend.spec import HealingPolicy, Resource
from driftmend.tools.base import Catalogue, Effect

__all__ = [
    "LlmPark",
    "LlmRecord",
    "LlmRun",
    "allowed_tools",
    "escalation_policy",
    "llm_next_step",
    "shadow_agreement",
]


def escalation_policy(
    resource: Resource, policies: Sequence[HealingPolicy], drifts: Sequence[Drift] = ()
) -> HealingPolicy | None:
    """The policy that escalates for ``resource``: one whose own rule drifted, else the
    first (by name) that selects it and declares ``escalate``."""
    candidates = [
        p
        for p in sorted(policies, key=lambda p: p.name)
        if p.spec.escalate is not None and not p.spec.paused and p.selects(resource)
    ]
    drifted = {d.policy for d in drifts if d.policy}
    return next((p for p in candidates if p.name in drifted), None) or next(iter(candidates), None)


def allowed_tools(policy: HealingPolicy, catalogue: Catalogue, kind: str) -> frozenset[str]:
    """The LLM's allowlist: ``escalate.allowedTools``, else the rules' tools plus read tools."""
    esc = policy.spec.escalate
    assert esc is not None
    if esc.allowed_tools:
        return frozenset(esc.allowed_tools)
    reads = {t.name for t in catalogue.for_kind(kind) if t.effect is Effect.READ}
    return frozenset(policy.spec.allowed_tools() | reads)


def shadow_agreement(shadow: Plan, ran: Plan, catalogue: Catalogue) -> ShadowAgreement:
    """``agrees`` when a shadow plan would have changed the same things as the plan that was
    run instead (the same write tools on the same resources, in any order), else ``differs``.

    Read steps are left out: they investigate and change nothing. Parameters are left out
    too: a planner that restarts the right container has understood the failure, even if
    it would have asked for a longer grace period.
    """

    def writes(plan: Plan) -> list[tuple[str, str]]:
        def is_read(name: str) -> bool:
            tool = catalogue.get(name)
            return tool is not None and tool.effect is Effect.READ

        return sorted((s.tool, s.target) for s in plan.steps if not is_read(s.tool))

    mine = writes(shadow)
    return ShadowAgreement.AGREES if mine and mine == writes(ran) else ShadowAgreement.DIFFERS


@dataclass(frozen=True)
class LlmRecord:
    """Record the exchange as ``decision`` and hand the resource to an operator with
    ``operator`` (the message of the pass)."""

    decision: LlmDecision
    reason: str
    operator: str
    after_why: bool = False  # the message follows what the rules concluded


@dataclass(frozen=True)
class LlmPark:
    """Park the plan for an operator's approval."""


@dataclass(frozen=True)
class LlmRun:
    """The guard admitted the plan and the mode lets it run."""


def llm_next_step(mode: str, verdict: GuardDecision, source: str) -> LlmRecord | LlmPark | LlmRun:
    """What becomes of an LLM's plan, given the escalation's ``mode`` and the guard's verdict.

    Shadow and dry-run plans are recorded and never run (asking again on every pass would
    spend tokens on a plan that will not run either, so the resource waits for an
    operator); ``approve`` parks what the guard would admit; ``auto`` runs it.
    """
    if mode == "shadow":
        return LlmRecord(
            LlmDecision.SHADOW,
            f"recorded, not run (guard: {verdict.reason})",
            f"the {source} plan is recorded in shadow mode",
            after_why=True,
        )
    if verdict.dry_run:
        return LlmRecord(
            LlmDecision.DRY_RUN,
            verdict.reason,
            f"dry-run: the {source} plan is recorded and nothing runs",
        )
    refused = LlmRecord(
        verdict.refusal,
        verdict.reason,
        f"the {source} plan was rejected by the guard: {verdict.reason}",
    )
    if mode == "approve" or verdict.needs_approval:
        return LlmPark() if verdict.admitted or verdict.needs_approval else refused
    return LlmRun() if verdict.admitted else refused
