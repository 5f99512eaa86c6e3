"""Small builders of specs and observations for the pure-core tests (no I/O)."""

from __future__ import annotations

from typing import Any

from driftmend.model import Observation
from driftmend.spec import Container, HealingPolicy, PostgresDatabase, RedisCache

API = "driftmend.dev/v1alpha1"


def container(name: str = "shop", labels: dict[str, str] | None = None, **spec: Any) -> Container:
    """A process Container."""
    body: dict[str, Any] = {"process": {"command": ["true"]}, **spec}
    return Container.model_validate(
        {
            "apiVersion": API,
            "kind": "Container",
            "metadata": {"name": name, "labels": labels or {"app": "shop"}},
            "spec": body,
        }
    )


def postgres(name: str = "db") -> PostgresDatabase:
    """A PostgresDatabase."""
    return PostgresDatabase.model_validate(
        {"apiVersion": API, "kind": "PostgresDatabase", "metadata": {"name": name}, "spec": {}}
    )


def redis(name: str = "cache") -> RedisCache:
    """A RedisCache."""
    return RedisCache.model_validate(
        {"apiVersion": API, "kind": "RedisCache", "metadata": {"name": name}, "spec": {}}
    )


def policy(
    name: str = "p", kind: str = "Container", rules: list[dict[str, Any]] | None = None, **spec: Any
) -> HealingPolicy:
    """A HealingPolicy; the default has one crash-restart rule."""
    rules = rules or [
        {
            "name": "restart",
            "when": [{"signal": "container.running", "operator": "==", "value": False}],
            "do": [{"tool": "container_restart"}],
            "attempts": {"max": 2, "window": "5m"},
        }
    ]
    return HealingPolicy.model_validate(
        {
            "apiVersion": API,
            "kind": "HealingPolicy",
            "metadata": {"name": name},
            "spec": {"selector": {"kind": kind}, "rules": rules, **spec},
        }
    )


def obs(key: str = "Container/shop", at: float = 1000.0, **signals: Any) -> Observation:
    """An observation; keyword names use __ for dots (container__running)."""
    return Observation(key, at, {k.replace("__", "."): v for k, v in signals.items()})


def running(at: float = 1000.0, **extra: Any) -> Observation:
    """A healthy running container."""
    return obs(at=at, container__running=True, container__healthy=True, **extra)
