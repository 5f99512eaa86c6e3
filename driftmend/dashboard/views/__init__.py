"""What the dashboard shows, shaped from the store's records: pure functions, no I/O.

Stage: *outputs* in docs/ARCHITECTURE.md. The routes read the store and the controller, then
hand the plain dicts they got to these functions: resource ids in URLs (``ids``), tiles and
cards (``resources``), which signals are charted per kind and their series (``charts``),
drifts in words and before/after signal tables (``drifts``), fix rows and evaluations
(``fixes``), log lines (``logs``), what became of an LLM interaction's plan (``llm``) and
the audited actor (``actors``). Keeping this pure lets the unit tests pin every rule without
a server.

How values read (``format_value``, ``NO_VALUE``, ``signal_units``) lives in
``driftmend.formatting``, shared with the script and the CLI; it is re-exported here, as
is every name this module had before it became a package.
"""

from __future__ import annotations

from driftmend.dashboard.views.actors import sanitize_actor
from driftmend.dashboard.views.charts import (
    CHARTED_KINDS,
    ChartSpec,
    chart_signals,
    charts_for,
    downsample,
)
from driftmend.dashboard.views.drifts import (
    describe_drift,
    drift_lines,
    format_threshold,
    root_cause_text,
    signal_changes,
)
from driftmend.dashboard.views.fixes import evaluations, fix_label, fix_summary, scenario_of
from driftmend.dashboard.views.ids import key_of, resource_id
from driftmend.dashboard.views.llm import LLM_DECISIONS, llm_outcome, llm_summary, pending_plan_id
from driftmend.dashboard.views.logs import log_dict
from driftmend.dashboard.views.resources import HEALTH_LABELS, resource_summary, up_state
from driftmend.formatting import MISSING as NO_VALUE
from driftmend.formatting import format_value, signal_units

__all__ = [
    "CHARTED_KINDS",
    "HEALTH_LABELS",
    "LLM_DECISIONS",
    "NO_VALUE",
    "ChartSpec",
    "chart_signals",
    "charts_for",
    "describe_drift",
    "downsample",
    "drift_lines",
    "evaluations",
    "fix_label",
    "fix_summary",
    "format_threshold",
    "format_value",
    "key_of",
    "llm_outcome",
    "llm_summary",
    "log_dict",
    "pending_plan_id",
    "resource_id",
    "resource_summary",
    "root_cause_text",
    "sanitize_actor",
    "scenario_of",
    "signal_changes",
    "signal_units",
    "up_state",
]
