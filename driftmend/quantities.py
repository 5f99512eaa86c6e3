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

import datetime
import math
import re
from decimal import Decimal

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

# Byte sizes follow Kubernetes' quantities, case-sensitive as Kubernetes is, plus Redis' own
# kb/mb/gb (see parse_bytes). [0-9], not \d, as above: a client that checks the published
# schema with Python's re (jsonschema does) would otherwise take other scripts' digits too.
# A fraction keeps at most three decimals (trailing zeros aside) and must come to whole
# bytes: always so with k..E (1000 and up); with a binary unit only in eighths, since n/1000
# of a power of two is whole exactly when 125 divides n. Written out as alternatives because
# a regular expression cannot check "whole bytes" in general, and the CRD must say the same
# as the parser.
_EIGHTHS = r"\.(0+|(125|25|375|5|625|75|875)0*)"
BYTES_PATTERN = (
    r"^[0-9]+("
    r"(\.0+)?"  # bare: bytes
    r"|(\.[0-9]{1,3}0*)?[kMGTPE]"  # powers of 1000
    rf"|({_EIGHTHS})?([KMGTPE]i|[kKmMgG][bB])"  # powers of 1024: Kubernetes', Redis'
    r")$"
)
_BYTES = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?(?P<unit>[A-Za-z]*)")
_DECIMAL = {"k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5, "E": 1000**6}
_BINARY = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6}
# Redis' spelling, read in any case (as Redis and Docker read it): powers of 1024.
_REDIS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
_BYTES_HINT = "write bytes, or a number with a unit like 512Mi, 1Gi, 500M or 64mb"

# Far beyond any real duration or size; above it float() of a YAML integer would overflow.
_LARGEST = 10**18


def _shown(value: object) -> str:
    """``value`` as quoted in a message: its repr, cut short (a message is one line)."""
    if value is None:  # YAML's empty value, as in `for:` with nothing after it
        return "an empty value"
    if isinstance(value, datetime.date):  # YAML's 2020-01-01: no Python repr in a message
        return value.isoformat()
    if isinstance(value, list | dict | set | bytes):  # their repr is Python's, not the file's
        return {list: "a list", dict: "a mapping", set: "a set"}.get(type(value), "binary data")
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


def _plain(number: Decimal) -> str:
    """``number``'s shortest digits without an exponent (``1000000``, ``0.0005``).

    Not ``:g``: from a million on it writes ``1e+06``, which the duration pattern refuses,
    and it keeps six digits only (1234567 s came back as 1234570 s).
    """
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` as a duration string."""
    if seconds and seconds < 1:
        # In decimal: 1e-07 * 1000 in floats is 9.999999999999999e-05.
        return f"{_plain(Decimal(repr(seconds)) * 1000)}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{_plain(Decimal(repr(seconds)))}s"


def _misspelt_unit(number: str, unit: str) -> str | None:
    """Why ``unit`` is refused and what to write instead, for the units people do write."""
    if unit == "m":
        return f"{number}m: a lowercase m means milli in Kubernetes and mega elsewhere; did you mean {number}Mi?"
    if unit in ("K", "g", "t", "p", "e"):
        # Docker reads each as a power of 1024, Kubernetes knows none of them: both spellings
        # Kubernetes has are offered, the binary first (what Docker meant).
        binary, decimal = unit.upper() + "i", "k" if unit == "K" else unit.upper()
        return (
            f"{number}{unit}: {unit} alone is no Kubernetes unit and Docker reads it as "
            f"{binary}; did you mean {number}{binary} or {number}{decimal}?"
        )
    lower = unit.lower()
    if lower in ("b", "byte", "bytes"):
        return f"{number}{unit}: a bare number is already bytes; did you mean {number}?"
    if lower.removesuffix("b") in ("ki", "mi", "gi", "ti", "pi", "ei"):  # mi, MI, MiB, kib...
        binary = lower[0].upper() + "i"
        return f"{number}{unit}: binary units are spelt as Kubernetes does; did you mean {number}{binary}?"
    if lower in ("tb", "pb", "eb"):  # Redis stops at gb
        return (
            f"{number}{unit}: Redis' spelling stops at gb; "
            f"did you mean {number}{lower[0].upper()}i or {number}{lower[0].upper()}?"
        )
    return None


def _unit_size(unit: str) -> int | None:
    """Bytes in one ``unit`` (``""`` is bytes), or None when the unit is not accepted."""
    if unit == "":
        return 1
    if unit in _DECIMAL:
        return _DECIMAL[unit]
    if unit in _BINARY:
        return _BINARY[unit]
    return _REDIS.get(unit.lower())


def parse_bytes(value: object) -> int:
    """Bytes from a size as Kubernetes writes it, or in Redis' spelling, or a bare number.

    Accepted, as in Kubernetes and case-sensitive: a bare whole number of bytes (``4096``);
    ``Ki Mi Gi Ti Pi Ei`` for powers of 1024 (``512Mi``); ``k M G T P E`` for powers of 1000
    (``500M``). Also Redis' ``kb mb gb`` in any case (``64mb``, ``64MB``), read as powers of
    1024 as Redis and Docker read them, because Redis users (and our examples'
    ``maxmemory: 128mb``) write sizes that way. A fraction (``1.5Gi``) is taken when it has
    at most three decimals and comes to whole bytes.

    Refused, each with the spelling to use instead, because readers disagree on them: a
    lowercase ``m`` (milli in Kubernetes, mega in Docker and Redis), ``K``, ``g``, ``t``
    alone (no Kubernetes unit; Docker reads powers of 1024), ``mi``/``MI``/``MiB`` (binary
    units are spelt ``Mi``), and a ``b``/``B`` suffix (Kubernetes has none: a bare number is
    bytes). ``BYTES_PATTERN`` accepts exactly the strings accepted here.
    """
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a size: {_BYTES_HINT}")
    if isinstance(value, int | float):
        return int(_bare_number(value, "size", "bytes", _BYTES_HINT))
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not a size: {_BYTES_HINT}")
    match = _BYTES.fullmatch(value)
    if match is None:
        raise ValueError(f"{_shown(value)} is not a size: {_BYTES_HINT}")
    whole, unit = match["whole"], match["unit"]
    number = whole if match["fraction"] is None else f"{whole}.{match['fraction']}"
    size = _unit_size(unit)
    if size is None:
        why = _misspelt_unit(number, unit) if len(value) <= 40 else None
        raise ValueError(why or f"{_shown(value)} is not a size: {_BYTES_HINT}")
    fraction = (match["fraction"] or "").rstrip("0")
    if len(fraction) > 3:
        raise ValueError(
            f"{_shown(value)}: a size takes at most three decimals; write it in a smaller unit"
        )
    # Exact integer arithmetic: floats would round 1.1Gi to a whole number of bytes.
    scaled = int(whole + fraction.ljust(3, "0")) * size
    if scaled % 1000:
        if not unit:
            raise ValueError(f"{_shown(value)}: a bare number means whole bytes; {_BYTES_HINT}")
        raise ValueError(
            f"{_shown(value)} is not a whole number of bytes ({scaled / 1000:.1f}): with a "
            "binary unit a fraction must be in eighths (1.5Gi, 0.25Mi); write a whole "
            "number of a smaller unit"
        )
    return scaled // 1000


def _exactly(size: int, unit: str, factor: int) -> str | None:
    """``size`` bytes in ``unit`` with at most three decimals (``1.5Gi``), or None."""
    if (size * 1000) % factor:
        return None
    text = f"{size * 1000 // factor:04d}"
    whole, fraction = text[:-3], text[-3:].rstrip("0")
    return f"{whole}.{fraction}{unit}" if fraction else f"{whole}{unit}"


def format_bytes(size: int) -> str:
    """The shortest exact spelling of ``size`` bytes that ``parse_bytes`` reads back.

    ``96Mi``, ``1.5Gi``, ``500M``, or bare bytes when no unit is shorter. Only units every
    reader agrees on are written (never ``m`` or ``mb``), so Kubernetes reads it the same.
    """
    if size < 0:
        raise ValueError(f"a size cannot be negative: {size}")
    spellings = [str(size)]
    for unit, factor in (*_BINARY.items(), *_DECIMAL.items()):
        if size >= factor and (exact := _exactly(size, unit, factor)):
            spellings.append(exact)
    # Shortest wins; on a tie the first: bytes, then binary (what Docker and Redis read for
    # their own spellings), then decimal.
    return min(spellings, key=len)


def human_bytes(size: int) -> str:
    """``size`` for people, in its largest binary unit: exact (``1.5Gi``) or ``~117.7Mi``.

    The ``~`` marks a rounded value, so nobody (an LLM reading a tool's result included)
    takes it for a size to write back: ``117.7Mi`` would be refused, as not whole bytes.
    """
    for unit, factor in reversed(_BINARY.items()):
        if size >= factor:
            return _exactly(size, unit, factor) or f"~{size / factor:.1f}{unit}"
    return str(size)
