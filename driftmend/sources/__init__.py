"""Spec sources: where the desired state comes from (today a watched directory of files).

Stage: *spec sources* in docs/ARCHITECTURE.md. Sources only parse and hand a ``LoadResult`` to the
controller; they hold no reconcile logic.
"""
