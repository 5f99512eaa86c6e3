"""Resource ids in URLs: a key with ``/`` turned into ``.``, and back.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

from driftmend.keys import ResourceKey

__all__ = ["key_of", "resource_id"]


def resource_id(key: str) -> str:
    """The URL-safe id of a resource key: ``Container/shop`` -> ``Container.shop``."""
    parsed = ResourceKey.find(key)
    return parsed.url_id if parsed is not None else key.replace("/", ".")


def key_of(rid: str) -> str | None:
    """The key of a resource id (``Container.shop`` or ``Container/shop``), None if malformed."""
    parsed = ResourceKey.find(rid)
    return str(parsed) if parsed is not None else None
