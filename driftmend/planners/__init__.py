"""Planners turn drifts into plans: ``rules`` runs the declared remedies, and when a policy
escalates, an LLM planner (``gemini``, ``openai_compat``) or ``replay`` proposes one.

Stage: *plan* in docs/ARCHITECTURE.md. Every planner returns a frozen ``Plan``; only ``act``
runs tools. ``factory`` builds the LLM planners from settings; their SDKs are optional extras
(``driftmend[gemini]``, ``driftmend[openai]``) imported only by their own module.
"""
