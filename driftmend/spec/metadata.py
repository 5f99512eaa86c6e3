"""The metadata of every document, and the references a resource may hold.

Stage: *spec sources* (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from driftmend.spec.fields import DNS_NAME, ENV_NAME, Model


class Metadata(Model):
    """Kubernetes-style metadata: a DNS-safe name, a namespace and labels."""

    name: str = Field(pattern=DNS_NAME, description="DNS-1123 name, unique per kind")
    namespace: str = Field(default="default", pattern=DNS_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SecretRef(Model):
    """Where a secret comes from: an environment variable of the controller, never the file."""

    env: str = Field(pattern=ENV_NAME, description="environment variable name")


class RuntimeRef(Model):
    """The resource that hosts a database or cache: restarts and resizes go through it."""

    kind: Literal["Container"] = "Container"
    name: str = Field(pattern=DNS_NAME)
