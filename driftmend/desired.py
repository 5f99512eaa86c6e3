"""The desired state the controller holds: declared resources and healing policies.

Stage: *source* -> every other stage, in docs/ARCHITECTURE.md. A spec source (files today)
hands ``Controller.apply`` a whole new ``LoadResult``; the parts of the controller share this
one object, updated in place, so none of them keeps a stale copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from driftmend.errors import PermanentError
from driftmend.spec import HealingPolicy, Resource

__all__ = ["DesiredState"]


@dataclass
class DesiredState:
    """Resources by key, and the policies that apply to them."""

    resources: dict[str, Resource] = field(default_factory=dict)
    policies: list[HealingPolicy] = field(default_factory=list)

    def require(self, key: str) -> Resource:
        """The resource declared as ``key``; PermanentError names it when there is none."""
        resource = self.resources.get(key)
        if resource is None:
            raise PermanentError(f"no resource {key} is declared")
        return resource
