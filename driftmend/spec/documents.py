"""The documents a spec file holds (one per kind), and what loading them returns.

Stage: *spec sources* (docs/ARCHITECTURE.md). ``Resource`` is every kind the controller
observes and heals; ``Document`` adds ``HealingPolicy``, told apart by ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from driftmend.keys import ResourceKey
from driftmend.spec.container import ContainerSpec
from driftmend.spec.datastores import PostgresDatabaseSpec, RedisCacheSpec
from driftmend.spec.fields import Model
from driftmend.spec.issues import SpecIssue
from driftmend.spec.metadata import Metadata
from driftmend.spec.policy import HealingPolicySpec


class _Resource(Model):
    api_version: Literal["driftmend.dev/v1alpha1"] = Field(alias="apiVersion")
    metadata: Metadata

    @property
    def name(self) -> str:
        """``metadata.name``: unique per kind and namespace only, so never a lookup key."""
        return self.metadata.name

    @property
    def key(self) -> str:
        """``Kind/name`` (``Kind/namespace/name`` outside the default namespace).

        Unique per (kind, namespace, name), and unambiguous: a DNS name holds no ``/``.
        """
        return str(self.resource_key)

    @property
    def resource_key(self) -> ResourceKey:
        """The typed key (``ResourceKey``): its ``dirname`` names the resource's state dir."""
        kind: str = getattr(self, "kind")  # noqa: B009 - set by every subclass
        return ResourceKey.of(kind, self.name, self.metadata.namespace)

    @property
    def labels(self) -> dict[str, str]:
        """``metadata.labels``."""
        return self.metadata.labels


class Container(_Resource):
    """An app container (or a supervised process on the ``process`` runtime)."""

    kind: Literal["Container"]
    spec: ContainerSpec


class PostgresDatabase(_Resource):
    """A PostgreSQL database."""

    kind: Literal["PostgresDatabase"]
    spec: PostgresDatabaseSpec


class RedisCache(_Resource):
    """A Redis cache."""

    kind: Literal["RedisCache"]
    spec: RedisCacheSpec


class HealingPolicy(_Resource):
    """A healing policy: selector, ladder of rules, escalation.

    Find a policy by ``key`` (``HealingPolicy/name``, or ``HealingPolicy/namespace/name``),
    not by ``name``: two namespaces may each declare a policy of the same name.
    """

    kind: Literal["HealingPolicy"]
    spec: HealingPolicySpec

    def selects(self, resource: Resource) -> bool:
        """True when this policy applies to ``resource`` (same kind, namespace, labels)."""
        sel = self.spec.selector
        if resource.kind != sel.kind or resource.metadata.namespace != self.metadata.namespace:
            return False
        if sel.names and resource.name not in sel.names:
            return False
        return all(resource.labels.get(k) == v for k, v in sel.match_labels.items())


Resource = Container | PostgresDatabase | RedisCache
Document = Annotated[Resource | HealingPolicy, Field(discriminator="kind")]
KINDS: dict[str, type[_Resource]] = {
    "Container": Container,
    "PostgresDatabase": PostgresDatabase,
    "RedisCache": RedisCache,
    "HealingPolicy": HealingPolicy,
}


@dataclass(frozen=True)
class Loaded:
    """One valid document and where it came from."""

    doc: Resource | HealingPolicy
    file: str
    index: int


@dataclass
class LoadResult:
    """Every valid document found, and every issue, for one or more paths."""

    documents: list[Loaded]
    issues: list[SpecIssue]

    @property
    def errors(self) -> list[SpecIssue]:
        """The issues that make a document (or a file) invalid."""
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[SpecIssue]:
        """The issues worth a look that invalidate nothing."""
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def resources(self) -> list[Resource]:
        """The valid resources (every kind but HealingPolicy)."""
        return [d.doc for d in self.documents if not isinstance(d.doc, HealingPolicy)]

    @property
    def policies(self) -> list[HealingPolicy]:
        """The valid policies."""
        return [d.doc for d in self.documents if isinstance(d.doc, HealingPolicy)]
