"""What a tool is, what it may reach, and the catalogue that holds them.

Stage: *act*. A tool is a typed async function with a name, a description written for an
LLM, a pydantic parameter model (its JSON schema is what clients see), the kinds it acts on
and an effect. Tools return ``ToolResult`` values and never raise: a driver's error becomes a
failed result that an operator or an LLM can read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from driftmend.drivers.base import ContainerRuntime, LogSource, PostgresDriver, RedisDriver
from driftmend.errors import DriftmendError, RefusedError
from driftmend.keys import ResourceKey
from driftmend.model import ToolResult
from driftmend.spec import Container, PostgresDatabase, RedisCache, Resource


class Effect(StrEnum):
    """What a tool does to the world: the guard and MCP annotations read this."""

    READ = "read"
    REVERSIBLE = "reversible"
    DESTRUCTIVE = "destructive"


class Params(BaseModel):
    """Base of tool parameter models: unknown parameters are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """This tool takes no parameters."""


@dataclass
class ToolContext:
    """Everything a tool may reach: the drivers, the logs and the declared resources."""

    runtime: ContainerRuntime
    postgres: PostgresDriver
    redis: RedisDriver
    logs: LogSource
    resources: Mapping[str, Resource]

    def host_of(self, resource: PostgresDatabase | RedisCache) -> Container | None:
        """The Container that hosts a database or cache (its ``runtimeRef``), if declared."""
        ref = resource.spec.runtime_ref
        if ref is None:
            return None
        ns = resource.metadata.namespace
        key = str(ResourceKey.of(ref.kind, ref.name, ns))
        found = self.resources.get(key)
        return found if isinstance(found, Container) else None


P = TypeVar("P", bound=Params)
ToolFn = Callable[[ToolContext, Any, Any], Awaitable[ToolResult]]


@dataclass(frozen=True)
class Tool(Generic[P]):
    """One tool of the catalogue."""

    name: str
    description: str
    params: type[P]
    kinds: tuple[str, ...]
    effect: Effect
    fn: Callable[[ToolContext, Any, P], Awaitable[ToolResult]]

    def validate(self, raw: Mapping[str, Any]) -> P:
        """The parameters as the tool's model, or ``ValidationError``."""
        return self.params.model_validate(dict(raw))

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema of the parameters, as MCP clients and the LLM see it."""
        return self.params.model_json_schema()

    async def call(
        self, ctx: ToolContext, resource: Resource, raw: Mapping[str, Any]
    ) -> ToolResult:
        """Validate, then run; every failure comes back as a ``ToolResult``, never raised."""
        if resource.kind not in self.kinds:
            return ToolResult.refused(
                f"{self.name} acts on {', '.join(self.kinds)}, not on {resource.kind} {resource.key}"
            )
        try:
            params = self.validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}"
                for e in exc.errors()
            )
            return ToolResult.refused(f"invalid parameters for {self.name}: {problems}")
        try:
            return await self.fn(ctx, resource, params)
        except RefusedError as exc:  # nothing was done: a refusal, not a failure
            return ToolResult.refused(str(exc))
        except DriftmendError as exc:
            return ToolResult.failure(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a tool must never throw through the executor
            return ToolResult.failure(f"unexpected {type(exc).__name__}: {exc}")


class Catalogue:
    """The tools by name; one instance feeds the controller, the MCP server and validation."""

    def __init__(self, tools: Iterable[Tool[Any]]) -> None:
        self._tools: dict[str, Tool[Any]] = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name}")
            self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Any:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool[Any] | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def names(self) -> list[str]:
        """Every tool name, sorted."""
        return sorted(self._tools)

    def for_kind(self, kind: str) -> list[Tool[Any]]:
        """The tools that act on ``kind``."""
        return [t for t in self._tools.values() if kind in t.kinds]
