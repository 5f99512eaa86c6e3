"""Durations and byte quantities as users write them in YAML (``30s``, ``5m``, ``512Mi``).

Stage: *spec sources* in docs/ARCHITECTURE.md's data flow: the spec models parse every duration and
size through here (and the tools that take a size reuse the byte parser). Pure parsing: each
parser raises ``ValueError`` with a message that says what is accepted, which pydantic turns
into a field error.

What is accepted is exactly what the generated CRDs accept (``x-kubernetes-int-or-string``
with the patterns below), so a file that ``driftmend validate`` passes is one the Kubernetes
API server takes too: a string matching the pattern, or a bare whole number (seconds or
bytes). Fractions are written with a unit (``500ms``), never as a bare ``0.5``, because an
int-or-string field holds integers only. Non-finite values (``.nan``, ``.inf``) are refused.
"""

from __future__ import annotations

import math
import re

# [0-9], not \d: Python's \d also matches other scripts' digits, the API server's does not.
DURATION_PATTERN = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$"
# The same, minus every spelling of zero (``0``, ``0.0s``, ``000ms``): for the intervals and
# timeouts where zero would make a loop spin.
POSITIVE_DURATION_PATTERN = (
    r"^([0-9]*[1-9][0-9]*(\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)(ms|s|m|h|d)?$"
)
_DURATION = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h|d)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_HINT = "write a number with a unit, like 30s, 5m or 500ms"

# \d here, not [0-9]: the tool catalogue's published schemas carry this exact string, and
# the API server's regular expressions (RE2) read \d as ASCII digits, as the parser below does.
BYTES_PATTERN = r"^\d+(\.\d+)?([kKmMgGtT][iI]?[bB]?|[bB])?$"
_BYTES = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[kKmMgGtT][iI]?[bB]?|[bB])?$")
_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1024, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1024**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1024**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1024**4, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip
_BYTES_HINT = "write a number with a unit, like 64mb or 512Mi"


# Far beyond any real duration or size; above it float() of a YAML integer would overflow.
_LARGEST = 10**18


def _shown(value: object) -> str:
    """``value`` as quoted in a message: its repr, cut short (a message is one line)."""
    if value is None:  # YAML's empty value, as in `for:` with nothing after it
        return "an empty value"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bare_number(value: int | float, what: str, unit: str, hint: str) -> float:
    """A bare YAML number as a count of ``unit``: finite, not negative, whole."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a {what}: {hint}")
    if value > _LARGEST:
        raise ValueError(f"{_shown(value)} is too large a {what}: {hint}")
    if value < 0:
        raise ValueError(f"a {what} cannot be negative: {hint}")
    if isinstance(value, float) and not value.is_integer():
        # The CRD declares int-or-string: a bare 0.5 would pass here and fail in Kubernetes.
        raise ValueError(f"{value:g}: a bare number means whole {unit}; {hint}")
    return float(value)


def parse_duration(value: object) -> float:
    """Seconds from ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a whole number."""
    if isinstance(value, bool):  # YAML's yes/no/on/off land here: not a duration
        raise ValueError(f"{str(value).lower()} is not a duration: {_DURATION_HINT}")
    if isinstance(value, int | float):
        return _bare_number(value, "duration", "seconds", _DURATION_HINT)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)  # not match: "$" also matches before a final newline
        if match:
            seconds = float(match["number"]) * _DURATION_UNITS[match["unit"] or "s"]
            if not math.isfinite(seconds):  # "9999...9d" overflows to inf
                raise ValueError(f"{_shown(value)} is too long a duration: {_DURATION_HINT}")
            return seconds
    raise ValueError(f"{_shown(value)} is not a duration: {_DURATION_HINT}")


def parse_positive_duration(value: object) -> float:
    """Like ``parse_duration``, but zero is refused: an interval of 0 spins, a timeout of 0 fails."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be more than 0 (zero would make the loop spin): {_DURATION_HINT}")
    return seconds


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
        raise ValueError(f"{str(value).lower()} is not a size: {_BYTES_HINT}")
    if isinstance(value, int | float):
        return int(_bare_number(value, "size", "bytes", _BYTES_HINT))
    if isinstance(value, str):
        match = _BYTES.fullmatch(value)
        if match:
            size = float(match["number"]) * _BYTE_UNITS[(match["unit"] or "").lower()]
            if not math.isfinite(size):
                raise ValueError(f"{_shown(value)} is too large a size: {_BYTES_HINT}")
            return int(size)
    raise ValueError(f"{_shown(value)} is not a size: {_BYTES_HINT}")
