"""CustomResourceDefinitions generated from the spec models, as checked into ``crds/``.

Stage: *spec sources* (docs/ARCHITECTURE.md). The models are the single source of truth:
``driftmend crds --write crds`` (``make crds``) writes these, and a unit test fails when the
checked-in files are stale. driftmend itself reads specs from files only; the CRDs let a
Kubernetes API server (and ``jsonschema`` in the tests) accept what the models accept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel

from driftmend.quantities import DURATION_PATTERN, POSITIVE_DURATION_PATTERN, format_duration
from driftmend.spec.documents import KINDS
from driftmend.spec.fields import GROUP, VERSION

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
            if len(non_null) != len(any_of):
                merged["nullable"] = True
            return merged
        # A flag-or-number (a condition's value) has no structural type: allow any scalar.
        return {**_structural(rest, defs), "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs", "discriminator"):
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "additionalProperties" and value is False:
            continue  # structural schemas prune unknown fields by default
        out[key] = (
            _structural(value, defs)
            if key not in ("enum", "required", "default", "example")
            else value
        )
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


def crd_schema(kind: str) -> dict[str, Any]:
    """The openAPIV3Schema of one kind, from its pydantic model."""
    model = KINDS[kind]
    spec_model = model.model_fields["spec"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    raw = spec_model.model_json_schema(by_alias=True, mode="validation")
    spec_schema = _structural(raw, raw.get("$defs", {}))
    return {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }


def crd(kind: str) -> dict[str, Any]:
    """A CustomResourceDefinition (apiextensions.k8s.io/v1) for one kind."""
    plural = _PLURALS[kind]
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
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": crd_schema(kind)},
                    "subresources": {"status": {}},
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
