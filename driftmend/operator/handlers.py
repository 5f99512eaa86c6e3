"""kopf's handlers for the driftmend.dev custom resources: thin, by design.

Stage: *spec sources* (docs/ARCHITECTURE.md). Each handler only hands a custom resource to the
replica's ``KubernetesSource`` (``on.event``: the first listing, creations, changes,
deletions) or answers admission with the validator's own message (``on.validate``). The
reconcile pass, the guard, the tools, the store and the dashboard are the ones ``driftmend
run`` uses.

``driftmend operator`` runs these; so does ``kopf run -m driftmend.operator.handlers`` (which
is how ``kopf.testing.KopfRunner`` runs them in the tests), configured from the environment.

``on.event`` rather than ``on.create``/``on.update``/``on.delete``: those keep kopf's progress
and diff-base in annotations and need a finalizer to hear a deletion for sure, all to run a
handler once per change. The source is idempotent (it parses the object it is given, every
time), so the plain event stream is all it needs, and a custom resource is never held by a
finalizer of an operator that is not running.
"""

from __future__ import annotations

from typing import Any

import kopf

from driftmend.operator import runtime as _runtime
from driftmend.sources.kubernetes import PLURALS, admission_problem
from driftmend.spec.fields import GROUP, VERSION
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check

_CHECK = tool_check(default_catalogue())


@kopf.on.startup()
async def start_replica(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf for driftmend and start this replica's runtime.

    A replica that cannot start (no credentials, a state dir another controller owns, a
    store it cannot open) ends the operator with its reason: kopf's default, a retry a
    minute later with a traceback, hides the one line that says what to fix.
    """
    try:
        memo["replica"] = await _runtime.replica_for_kopf(settings)
    except Exception as exc:
        raise kopf.PermanentError(f"driftmend cannot start: {exc}") from exc


@kopf.on.cleanup()
async def stop_replica(memo: kopf.Memo, **_: Any) -> None:
    """Stop acting, release the Lease, close the store."""
    replica = memo.get("replica")
    if replica is not None:
        await replica.stop()


async def custom_resource_event(
    event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A custom resource was listed, created, changed or deleted: tell the source."""
    replica = memo.get("replica")
    if replica is None:
        return
    if event.get("type") == "DELETED":
        replica.source.remove(dict(body))
        return
    replica.source.put(dict(body))  # it logs what it refuses, and keeps the last valid


def validate_custom_resource(body: kopf.Body, **_: Any) -> None:
    """Refuse what ``driftmend validate`` refuses, with the same one-line message."""
    problem = admission_problem(dict(body), _CHECK)
    if problem is not None:
        raise kopf.AdmissionError(problem, code=422)


for _plural in PLURALS.values():
    kopf.on.event(GROUP, VERSION, _plural, id=f"source-{_plural}")(custom_resource_event)
    kopf.on.validate(
        GROUP,
        VERSION,
        _plural,
        id=f"validate-{_plural}",
        operations=["CREATE", "UPDATE"],
        # With every replica down, let applies through rather than refuse them all: the
        # source checks every object again and keeps the last valid spec in force.
        ignore_failures=True,
    )(validate_custom_resource)
