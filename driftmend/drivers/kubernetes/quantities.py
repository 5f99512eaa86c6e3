"""Kubernetes resource quantities (``250m``, ``1.5``, ``128Mi``, ``1e3``) to numbers and back.

Stage: *observe* / *act*. Pure. The API writes CPU in cores or millicores and memory in bytes
with decimal or binary suffixes; metrics-server writes nanocores (``123456n``) and kibibytes.
Only what a pod template or metrics.k8s.io may hold is accepted.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(r"^(?P<number>[+-]?[0-9]*\.?[0-9]+)(?P<suffix>[a-zA-Z]*|[eE][+-]?[0-9]+)$")
_SUFFIXES = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3,
    "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


def parse_quantity(text: str | int | float) -> float:
    """A quantity's value in base units (cores, bytes); ``ValueError`` for anything else."""
    if isinstance(text, int | float):
        return float(text)
    found = _QUANTITY.match(text.strip())
    if found is None:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    number, suffix = float(found["number"]), found["suffix"]
    if suffix[:1] in ("e", "E") and suffix[1:].lstrip("+-").isdigit():
        return number * 10.0 ** int(suffix[1:])
    if suffix not in _SUFFIXES:
        raise ValueError(f"not a Kubernetes quantity: {text!r} (unknown suffix {suffix!r})")
    return number * _SUFFIXES[suffix]


def cpu_quantity(cores: float) -> str:
    """Cores as the API writes them back: whole cores bare, else millicores (``1500m``)."""
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_quantity(size: int) -> str:
    """Bytes as a quantity: the largest binary unit that divides it exactly (``256Mi``)."""
    for suffix, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0 and size >= factor:
            return f"{size // factor}{suffix}"
    return str(size)
