"""Durations and byte quantities as users write them in YAML (``30s``, ``5m``, ``512Mi``).

Pure parsing, used by the spec models; each parser raises ``ValueError`` with a message that
says what is accepted, which pydantic turns into a field error.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_PATTERN = r"^\d+(\.\d+)?(ms|s|m|h|d)?$"

_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1024, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1024**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1024**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1024**4, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip
BYTES_PATTERN = r"^\d+(\.\d+)?([kKmMgGtT][iI]?[bB]?|[bB])?$"


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a bare number."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit, like 30s, 5m or 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    raise ValueError(
        f"{value!r} is not a duration: write a number with a unit, like 30s, 5m or 500ms"
    )


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` as a duration string."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_bytes(value: object) -> int:
    """Bytes from ``"512Mi"``, ``"64mb"`` (Redis spelling, powers of 1024), ``"1G"`` or a number."""
    if isinstance(value, bool):
        raise ValueError("a size is a number with a unit, like 64mb or 512Mi")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    if isinstance(value, str):
        match = _BYTES.match(value)
        if match:
            return int(float(match.group(1)) * _BYTE_UNITS[(match.group(2) or "").lower()])
    raise ValueError(f"{value!r} is not a size: write a number with a unit, like 64mb or 512Mi")
