"""The store: the durable record of every resource, reconciliation, fix and decision.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``); see ``facade`` for the tour. The
package holds the schema (``schema``), the one SQLite seam (``db``), one module per record
family, and the ``Store`` facade over them.

Re-exported for the import paths that predate the package: the plan codec (now
``driftmend.codec``), ``SCHEMA_VERSION`` and ``PENDING_STATUSES``.
"""

from driftmend.codec import drift_from_dict, drift_to_dict, plan_from_dict, plan_to_dict
from driftmend.store.audit import Action, AuditTrail, GuardDecision
from driftmend.store.facade import Store, open_store
from driftmend.store.fixes import Fix, FixHistory, FixStep, FixSummary
from driftmend.store.llm import LlmBudget, LlmExchange, LlmExchangeSummary, LlmExchangeWithFix
from driftmend.store.pending import PENDING_STATUSES, ParkedPlans, PendingPlan
from driftmend.store.reconciliations import Reconciliation, ReconciliationLog
from driftmend.store.records import Record
from driftmend.store.resources import ResourceFlags, ResourceState
from driftmend.store.schema import SCHEMA_VERSION
from driftmend.store.signals import SignalHistory, SignalSample

__all__ = [
    "PENDING_STATUSES",
    "SCHEMA_VERSION",
    "Action",
    "AuditTrail",
    "Fix",
    "FixHistory",
    "FixStep",
    "FixSummary",
    "GuardDecision",
    "LlmBudget",
    "LlmExchange",
    "LlmExchangeSummary",
    "LlmExchangeWithFix",
    "ParkedPlans",
    "PendingPlan",
    "Reconciliation",
    "ReconciliationLog",
    "Record",
    "ResourceFlags",
    "ResourceState",
    "SignalHistory",
    "SignalSample",
    "Store",
    "drift_from_dict",
    "drift_to_dict",
    "open_store",
    "plan_from_dict",
    "plan_to_dict",
]
