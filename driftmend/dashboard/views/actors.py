"""Who acted, as the audit log records an operator of the dashboard.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure functions, no I/O.
"""

from __future__ import annotations

import re

__all__ = ["sanitize_actor"]

_ACTOR = re.compile(r"[^\w.@+-]+")


def sanitize_actor(name: str | None) -> str:
    """``dashboard:<name>`` for the audit log, the name reduced to a safe short word.

    The token is shared, so the name is what the operator says they are; it is recorded, not
    trusted, and kept short and plain so an audit row cannot carry markup or control bytes.
    """
    cleaned = _ACTOR.sub("-", (name or "").strip())[:40].strip("-")
    return f"dashboard:{cleaned}" if cleaned else "dashboard"
