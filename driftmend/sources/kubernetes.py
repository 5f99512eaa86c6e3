"""The Kubernetes source: driftmend.dev custom resources, turned into the file source's documents.

Stage: *spec sources* (docs/ARCHITECTURE.md). The kopf handlers (``driftmend.operator``) only
hand each custom resource they hear of to ``KubernetesSource.put`` or ``remove``; this module
parses it with the same loader ``driftmend validate`` uses and gives the controller the same
``LoadResult`` a directory of files would. A custom resource that does not parse (one that got
past admission, say with the webhook not installed) keeps its last valid version in force, as a
file with a typo does, and its problem is logged and kept for its status.

``admission_problem`` is the webhook's answer: the validator's one-line message for a body, or
None when ``driftmend validate`` would accept it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from driftmend.spec import LoadResult
from driftmend.spec.crds import crd
from driftmend.spec.documents import KINDS, HealingPolicy, Loaded, Resource
from driftmend.spec.issues import SpecIssue
from driftmend.spec.loading import DocumentCheck, check_documents, parse_document

log = logging.getLogger("driftmend.sources.kubernetes")

__all__ = ["PLURALS", "CustomResource", "KubernetesSource", "admission_problem", "document_of"]

PLURALS: dict[str, str] = {kind: crd(kind)["spec"]["names"]["plural"] for kind in KINDS}
"""kind -> the plural its CRD serves (``Container`` -> ``containers``)."""

# Annotations that tools put on every object: not part of anyone's declared intent.
_FOREIGN_ANNOTATIONS = ("kubectl.kubernetes.io/", "kopf.zalando.org/", "driftmend.dev/")


@dataclass(frozen=True)
class CustomResource:
    """Where a declared resource lives in the cluster: enough to patch its status and post
    Events about it."""

    kind: str
    plural: str
    namespace: str
    name: str
    uid: str
    generation: int

    @property
    def where(self) -> str:
        """``namespace/plural/name``: how log lines and messages name the object."""
        return f"{self.namespace}/{self.plural}/{self.name}"


def _reference(body: Mapping[str, Any]) -> CustomResource | None:
    kind = body.get("kind")
    meta = body.get("metadata") or {}
    if not isinstance(kind, str) or kind not in PLURALS or not isinstance(meta, Mapping):
        return None
    return CustomResource(
        kind=kind,
        plural=PLURALS[kind],
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
    )


def document_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The spec document a custom resource declares: what a file holding it would say.

    The API server's own metadata (uid, resourceVersion, managedFields, ...) and the
    annotations tools add are dropped: the spec models refuse unknown keys, and none of it is
    the user's intent. ``status`` is ours and never read back.
    """
    meta = body.get("metadata") or {}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(_FOREIGN_ANNOTATIONS)
    }
    metadata: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": metadata,
        "spec": body.get("spec"),
    }


def _parse(
    body: Mapping[str, Any], check: DocumentCheck | None
) -> tuple[Resource | HealingPolicy | None, list[SpecIssue]]:
    ref = _reference(body)
    where = ref.where if ref is not None else "kubernetes"
    doc, issues = parse_document(document_of(body), where, 0)
    if doc is not None and check is not None:
        issues = [*issues, *check(Loaded(doc, where, 0))]
        if any(i.severity == "error" for i in issues):
            doc = None
    return doc, issues


def _one_line(issue: SpecIssue) -> str:
    field = f"{issue.field}: " if issue.field else ""
    return f"{field}{issue.message}"


def admission_problem(body: Mapping[str, Any], check: DocumentCheck | None) -> str | None:
    """What ``driftmend validate`` would refuse in this custom resource, as one line naming
    the field, what is wrong and the closest match; None when it is valid.

    Only what one document can be judged on: that a policy selects nothing, or a runtimeRef
    names a Container not created yet, depends on the order things are applied in, and is
    reported in the status instead.
    """
    doc, issues = _parse(body, check)
    errors = [i for i in issues if i.severity == "error"]
    if doc is not None or not errors:
        return None
    return "; ".join(_one_line(i) for i in errors)


class KubernetesSource:
    """The custom resources heard of so far, as documents; hands the controller each change.

    ``apply`` is the controller's; a burst of events (the first listing of a thousand
    objects) ends in one ``apply`` a moment later, not one per object.
    """

    def __init__(
        self,
        apply: Callable[[LoadResult], None],
        check: DocumentCheck | None = None,
        *,
        settle_s: float = 0.05,
    ) -> None:
        self._apply = apply
        self._check = check
        self._settle_s = settle_s
        self._docs: dict[str, Loaded] = {}
        self._refs: dict[str, CustomResource] = {}
        self._problems: dict[str, str] = {}
        self._statuses: dict[str, dict[str, Any]] = {}
        self._pending: asyncio.TimerHandle | None = None

    @staticmethod
    def _key(ref: CustomResource) -> str:
        return f"{ref.kind}/{ref.namespace}/{ref.name}"

    def put(self, body: Mapping[str, Any]) -> str | None:
        """A custom resource was created, changed or listed: parse it and schedule an apply.

        Returns its problem (one line) when it does not parse; its last valid version, if
        any, stays in force.
        """
        ref = _reference(body)
        if ref is None:
            return f"not a driftmend.dev kind: {body.get('kind')!r}"
        key = self._key(ref)
        self._refs[key] = ref
        status = body.get("status")
        self._statuses[key] = dict(status) if isinstance(status, Mapping) else {}
        doc, issues = _parse(body, self._check)
        for issue in issues:
            log.warning("%s", issue)
        if doc is None:
            problem = "; ".join(_one_line(i) for i in issues if i.severity == "error")
            self._problems[key] = problem
            return problem
        self._problems.pop(key, None)
        self._docs[key] = Loaded(doc, ref.where, 0)
        self._schedule()
        return None

    def remove(self, body: Mapping[str, Any]) -> None:
        """A custom resource was deleted: it leaves the desired state."""
        ref = _reference(body)
        if ref is None:
            return
        key = self._key(ref)
        self._refs.pop(key, None)
        self._problems.pop(key, None)
        self._statuses.pop(key, None)
        if self._docs.pop(key, None) is not None:
            self._schedule()

    def result(self) -> LoadResult:
        """Every valid document now, with the cross-document checks of the file source."""
        return check_documents(list(self._docs.values()), [])

    def custom_resources(self) -> list[CustomResource]:
        """Every custom resource heard of, valid or not."""
        return list(self._refs.values())

    def declared(self, ref: CustomResource) -> Resource | HealingPolicy | None:
        """The document in force for a custom resource (its last valid version), or None."""
        loaded = self._docs.get(self._key(ref))
        return loaded.doc if loaded is not None else None

    def status_of(self, ref: CustomResource) -> dict[str, Any]:
        """The status the API server last showed for a custom resource."""
        return self._statuses.get(self._key(ref), {})

    def problem(self, ref: CustomResource) -> str | None:
        """The last parse problem of a custom resource, None when its last version parsed."""
        return self._problems.get(self._key(ref))

    def flush(self) -> None:
        """Apply now whatever is scheduled (and cancel the scheduled apply)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        self._apply(self.result())

    def _schedule(self) -> None:
        if self._pending is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): apply at once
            self._apply(self.result())
            return

        def fire() -> None:
            self._pending = None
            try:
                self._apply(self.result())
            except Exception:  # an apply failing must not stop the next ones
                log.exception("applying the custom resources failed")

        self._pending = loop.call_later(self._settle_s, fire)
