"""CustomResourceDefinitions generated from the spec models, as checked into ``crds/``.

Stage: *spec sources* (docs/ARCHITECTURE.md). The models are the single source of truth:
``driftmend crds --write crds`` (``make crds``) writes these, and a unit test fails when the
checked-in files are stale. ``driftmend operator`` watches custom resources of these kinds,
and the status models below are the shape it writes to their status subresource.

pydantic writes JSON Schema 2020-12; a Kubernetes API server wants its own *structural*
subset of OpenAPI v3.0, and refuses a CRD that breaks it. ``_structural`` translates:

- ``$ref`` is inlined (no references in a CRD), ``title``/``$defs``/``discriminator`` dropped;
- ``anyOf: [X, {type: null}]`` (an optional field) becomes ``X`` with ``nullable: true``; an
  ``anyOf`` of two types (a condition's flag-or-number value) has no structural type, so it
  becomes ``x-kubernetes-preserve-unknown-fields`` and the admission webhook checks the rest;
  so does a ``oneOf`` of different types (an env value: a string or a ``valueFrom``);
- a numeric ``exclusiveMinimum: 0`` (2020-12) becomes ``minimum: 0, exclusiveMinimum: true``
  (OpenAPI 3.0's boolean), and likewise ``exclusiveMaximum``;
- ``const: x`` becomes ``enum: [x]``; an ``enum`` of a nullable field also lists ``null``,
  or the API server refuses the null it just admitted as nullable;
- ``additionalProperties: false`` is dropped (a structural schema prunes unknown fields
  instead of refusing them), ``additionalProperties: true`` and a bare ``object`` become
  ``x-kubernetes-preserve-unknown-fields`` (kept whole, never pruned);
- ``format``s the API server does not know are dropped, and so are ``default: null``s; a
  duration default is written as the string the int-or-string pattern admits; an empty
  string default is dropped (the model fills it in; API server 1.20 reads it as null and
  refuses the CRD).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from driftmend.quantities import DURATION_PATTERN, POSITIVE_DURATION_PATTERN, format_duration
from driftmend.spec.documents import KINDS
from driftmend.spec.fields import GROUP, VERSION, Model

_PLURALS = {
    "Container": "containers",
    "PostgresDatabase": "postgresdatabases",
    "RedisCache": "rediscaches",
    "HealingPolicy": "healingpolicies",
}
_SHORT = {
    "Container": ["dmc"],
    "PostgresDatabase": ["dmpg"],
    "RedisCache": ["dmredis"],
    "HealingPolicy": ["hp"],
}
CATEGORY = "driftmend"
"""``kubectl get driftmend`` lists every kind."""

# The formats kube-openapi validates (k8s.io/kube-openapi/pkg/validation/strfmt); the API
# server refuses a CRD naming any other.
_FORMATS = frozenset(
    {"date-time", "date", "uuid", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "byte",
     "uri", "password", "duration", "datetime", "int32", "int64", "float", "double"}
)  # fmt: skip


# --- status: what the operator writes, what the CRDs declare --------------------------------


class StatusCondition(Model):
    """One of Kubernetes' standard conditions (the shape of ``metav1.Condition``)."""

    type: Literal["Ready", "Drifting", "Healing", "NeedsOperator"]
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        description="CamelCase, e.g. InSync",
    )
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class LastFix(Model):
    """The last fix of a resource (or by one of a policy's rules)."""

    id: int = Field(ge=0)
    at: datetime = Field(description="when the fix started")
    rule: str = Field(description="the rule, or the planner that wrote the plan")
    outcome: str = Field(description="fixed, failed, rejected, dry-run, running, interrupted...")
    seconds_to_recover: float | None = Field(
        default=None, ge=0, description="absent when not recovered"
    )
    summary: str | None = None


class PendingPlan(Model):
    """A plan waiting for an operator's approval."""

    id: int = Field(ge=0)
    since: datetime
    summary: str | None = None


class ResourceStatus(Model):
    """The status subresource of a Container, PostgresDatabase or RedisCache."""

    observed_generation: int | None = Field(default=None, ge=0)
    health: Literal["healthy", "drifting", "healing", "needs-operator", "unknown"] | None = None
    message: str | None = Field(default=None, description="one line, as the dashboard row says")
    conditions: list[StatusCondition] | None = None
    last_fix: LastFix | None = Field(default=None, description="absent until the first fix")
    pending_plan: PendingPlan | None = Field(
        default=None, description="absent unless a plan waits for approval"
    )


class PolicyStatus(Model):
    """The status subresource of a HealingPolicy."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[StatusCondition] | None = None
    matched_resources: int | None = Field(
        default=None, ge=0, description="declared resources this policy applies to"
    )
    last_fix: LastFix | None = Field(default=None, description="the last fix by one of its rules")


_STATUS: dict[str, type[BaseModel]] = {
    "Container": ResourceStatus,
    "PostgresDatabase": ResourceStatus,
    "RedisCache": ResourceStatus,
    "HealingPolicy": PolicyStatus,
}

_LAST_FIX = {"name": "Last Fix", "type": "string", "jsonPath": ".status.lastFix.outcome"}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_RESOURCE_COLUMNS = [
    {"name": "Health", "type": "string", "jsonPath": ".status.health"},
    _LAST_FIX,
    {"name": "Rule", "type": "string", "jsonPath": ".status.lastFix.rule"},
    {"name": "Fixed", "type": "date", "jsonPath": ".status.lastFix.at"},
    _AGE,
]
_POLICY_COLUMNS = [
    {"name": "Resources", "type": "integer", "jsonPath": ".status.matchedResources"},
    _LAST_FIX,
    _AGE,
]


# --- JSON Schema 2020-12 -> a structural OpenAPI v3.0 schema ----------------------------------


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` admitting null as well."""
    return {**schema, "nullable": True}


def _bounds(out: dict[str, Any]) -> None:
    """2020-12's numeric ``exclusiveMinimum``/``exclusiveMaximum`` as OpenAPI 3.0's booleans."""
    for exclusive, bound, stricter in (
        ("exclusiveMinimum", "minimum", max),
        ("exclusiveMaximum", "maximum", min),
    ):
        value = out.get(exclusive)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if bound in out and stricter(out[bound], value) == out[bound] and out[bound] != value:
            del out[exclusive]  # the inclusive bound is the stricter one
        else:
            out[bound], out[exclusive] = value, True


def _structural(node: Any, defs: Mapping[str, Any]) -> Any:
    """Inline ``$ref``s and turn pydantic's JSON schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [_structural(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        return _structural({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        non_null = [s for s in any_of if s.get("type") != "null"]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(non_null) == 1:
            merged: dict[str, Any] = {**_structural(non_null[0], defs), **_structural(rest, defs)}
            return _nullable(merged) if len(non_null) != len(any_of) else merged
        # A flag-or-number (a condition's value) has no structural type: allow any value.
        return {**_structural(rest, defs), "x-kubernetes-preserve-unknown-fields": True}
    one_of = node.get("oneOf")
    if one_of is not None and len({s.get("type") for s in one_of}) > 1:
        # A string-or-mapping (an env value or its valueFrom) has no structural type either.
        rest = {k: v for k, v in node.items() if k != "oneOf"}
        return {**_structural(rest, defs), "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs", "discriminator"):
            continue
        if key == "default" and value in (None, ""):
            continue  # the model fills it in; 1.20 reads an empty-string default as null
        if key == "format" and value not in _FORMATS:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "additionalProperties" and isinstance(value, bool):
            # false: structural schemas prune unknown fields by default; true: keep them all.
            if value:
                out["x-kubernetes-preserve-unknown-fields"] = True
            continue
        out[key] = (
            _structural(value, defs)
            if key not in ("enum", "required", "default", "example")
            else value
        )
    _bounds(out)
    durations = (DURATION_PATTERN, POSITIVE_DURATION_PATTERN)
    if out.get("pattern") in durations and isinstance(out.get("default"), int | float):
        out["default"] = format_duration(out["default"])
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of one pydantic model, ``$ref``s inlined."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _structural(raw, raw.get("$defs", {}))
    return schema


def status_schema(kind: str) -> dict[str, Any]:
    """The status subresource's schema of one kind: conditions merge by ``type``."""
    schema = _model_schema(_STATUS[kind])
    conditions = schema["properties"]["conditions"]
    # A list map keyed by type: server-side apply merges one condition, not the whole list.
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    # The list is written whole or not at all: never null, so no list-map of nulls.
    del conditions["nullable"]
    return schema


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of one kind, from its pydantic models (spec and status)."""
    model = KINDS[kind]
    spec_model = model.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _model_schema(spec_model),
            "status": status_schema(kind),
        },
    }


def crd(kind: str) -> dict[str, Any]:
    """A CustomResourceDefinition (apiextensions.k8s.io/v1) for one kind."""
    plural = _PLURALS[kind]
    columns = _POLICY_COLUMNS if kind == "HealingPolicy" else _RESOURCE_COLUMNS
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": _SHORT[kind],
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": crd_schema(kind)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in columns],
                }
            ],
        },
    }


def crds_yaml() -> dict[str, str]:
    """File name -> YAML text of every CRD, as checked into ``crds/``."""
    return {
        f"{_PLURALS[kind]}.{GROUP}.yaml": yaml.safe_dump(crd(kind), sort_keys=False)
        for kind in KINDS
    }
