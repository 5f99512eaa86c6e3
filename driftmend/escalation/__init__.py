"""Escalation: when the declared rules hand a drift over to an LLM planner.

``policy`` (pure: which policy escalates, its allowlist, what becomes of a plan), ``asking``
(the request, the token budgets, the stored exchange) and ``handling`` (budget, ask, guard,
then the policy's mode). The pure part is re-exported here.
"""

from driftmend.escalation.policy import allowed_tools, escalation_policy, shadow_agreement

__all__ = ["allowed_tools", "escalation_policy", "shadow_agreement"]
