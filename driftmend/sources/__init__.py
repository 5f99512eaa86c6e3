"""Spec sources: where the desired state comes from (a watched directory; kopf later).

Stage: *spec sources* in DESIGN.md. Sources only parse and hand a ``LoadResult`` to the
controller; they hold no reconcile logic.
"""
