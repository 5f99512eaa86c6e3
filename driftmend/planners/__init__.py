"""Planners turn drifts into plans: ``rules`` (declared remedies) now, the LLM later.

Stage: *plan* in DESIGN.md. Every planner returns a frozen ``Plan``; only ``act`` runs tools.
"""
