"""The metadata of every document, and the references a resource may hold.

Stage: *spec sources* (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from driftmend.spec.fields import DNS_NAME, ENV_NAME, FieldError, Model


class Metadata(Model):
    """Kubernetes-style metadata: a DNS-safe name, a namespace and labels."""

    name: str = Field(pattern=DNS_NAME, description="DNS-1123 name, unique per kind")
    namespace: str = Field(default="default", pattern=DNS_NAME)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# Read when it is used (drivers/secret_refs.py), not when the spec loads, so a rotated
# secret is picked up by the next connection or replica start.
class SecretRef(Model):
    """A secret's source: a variable of the controller's environment, or a file; never the spec."""

    env: str | None = Field(
        default=None, pattern=ENV_NAME, description="environment variable of the controller"
    )
    file: str | None = Field(
        default=None,
        min_length=1,
        description="file holding the secret (a trailing newline is dropped); relative to the "
        "directory driftmend runs in",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise FieldError(
                "env",
                "give exactly one of env (an environment variable of the controller) "
                "or file (a file it can read)",
            )
        return self

    def __str__(self) -> str:
        return f"env {self.env}" if self.env is not None else f"file {self.file}"


class RuntimeRef(Model):
    """The resource that hosts a database or cache: restarts and resizes go through it."""

    kind: Literal["Container"] = "Container"
    name: str = Field(pattern=DNS_NAME)
