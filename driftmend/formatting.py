"""How values read to people: one table of rules, for the dashboard, its script and the CLI.

Stage: *outputs* in docs/ARCHITECTURE.md. Pure data and pure functions, no I/O. The rules
are kept as data rather than code so that the browser can apply the very same table: the
dashboard hands ``rules()`` to its script as JSON (``format.js`` reads it), and a unit test
checks that what the page carries equals ``UNITS`` here. Changing how a value reads is one
edit to ``UNITS``, seen by the pages, the live updates and ``driftmend get`` alike.

A rule is a tuple of ``Step``s tried in order; the first whose ``below`` exceeds the value's
magnitude (or that has no ``below``) writes it. Numbers are rounded as Python's ``format``
rounds them: the exact binary value, a tie to even (``42.5`` s reads ``42 s``); the script
rounds the same way on the same digits, not with ``toFixed``, which breaks ties upwards.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from driftmend.model import Health
from driftmend.signals import SIGNALS

__all__ = [
    "FLAGS",
    "MISSING",
    "UNITS",
    "Step",
    "format_number",
    "format_value",
    "health_label",
    "rules",
    "signal_units",
    "unit_of",
]

MISSING = "\u2013"
"""An en dash: what a value that was not measured (or is not finite) reads as."""

FLAGS: dict[str, str] = {"true": "yes", "false": "no"}
"""How a flag reads, by its JSON spelling (the script looks it up with ``String(flag)``)."""


@dataclass(frozen=True)
class Step:
    """One way of writing a number: ``value * multiply / divide`` then ``suffix``.

    ``decimals`` fixes the digits after the point; without it, a whole number is written
    whole and any other to ``significant`` digits, trailing zeros dropped (never with an
    exponent). The step serves while ``abs(value) < below``; the last step has no ``below``.
    """

    suffix: str
    below: float | None = None
    multiply: float = 1.0
    divide: float = 1.0
    decimals: int | None = None
    significant: int = 3


_KIB = 1024.0

UNITS: dict[str, tuple[Step, ...]] = {
    # A count, or a number whose catalogue entry has no unit.
    "": (Step(""),),
    "bytes": (
        Step(" B", below=_KIB, decimals=0),
        Step(" KiB", below=_KIB**2, divide=_KIB, decimals=1),
        Step(" MiB", below=_KIB**3, divide=_KIB**2, decimals=1),
        Step(" GiB", divide=_KIB**3, decimals=1),
    ),
    # A share of one (``*_ratio`` signals) reads as a percentage.
    "ratio": (Step(" %", multiply=100, decimals=1),),
    "%": (Step(" %", decimals=1),),
    "s": (Step(" s", below=10, decimals=2), Step(" s", decimals=0)),
    "/min": (Step(" /min", significant=6),),
    # Not signal units: how the dashboard writes a time taken (to detect, to recover, a
    # step's duration) and a success rate.
    "duration": (Step(" s", below=60, decimals=2), Step(" min", divide=60, decimals=1)),
    "share": (Step(" %", multiply=100, decimals=0),),
}
"""The rules, by unit: a signal's display unit (``unit_of``) or ``duration`` / ``share``."""


def unit_of(signal: str) -> str:
    """The display unit of a catalogued signal: its catalogue unit, ``ratio`` for a
    ``*_ratio`` signal, ``""`` for an unknown name."""
    info = SIGNALS.get(signal)
    if info is None:
        return ""
    if signal.endswith("_ratio"):
        return "ratio"
    return info.unit


def signal_units() -> dict[str, str]:
    """The display unit of every catalogued signal (the script formats live values with it)."""
    return {name: unit_of(name) for name in SIGNALS}


def health_label(health: str | None) -> str:
    """The words next to a health colour (``needs-operator`` -> ``Needs operator``); an
    unknown word is shown as it is."""
    if health is None:
        return ""
    try:
        return Health(str(health)).label
    except ValueError:
        return str(health)


def _significant(value: float, digits: int) -> str:
    if value.is_integer():
        return str(int(value))
    # ``g`` rounds correctly; Decimal then writes the result without an exponent.
    text = format(Decimal(f"{value:.{digits}g}"), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_number(value: float, steps: tuple[Step, ...]) -> str:
    """A finite number written by the first of ``steps`` that serves its magnitude."""
    step = next((s for s in steps if s.below is None or abs(value) < s.below), steps[-1])
    scaled = value * step.multiply / step.divide
    if step.decimals is not None:
        return f"{scaled:.{step.decimals}f}{step.suffix}"
    return _significant(float(scaled), step.significant) + step.suffix


def format_value(value: Any, unit: str | None = None, signal: str | None = None) -> str:
    """A value as people read it: ``yes``/``no``, ``12.5 %``, ``48.2 MiB``, ``1.50 s``.

    ``unit`` is a key of ``UNITS``; it defaults to ``signal``'s display unit. A missing or
    non-finite number reads as ``MISSING``; text is shown as it is.
    """
    if unit is None:
        unit = unit_of(signal or "")
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return FLAGS[str(value).lower()]
    if not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return MISSING
    return format_number(value, UNITS.get(unit, UNITS[""]))


def rules() -> dict[str, Any]:
    """The whole table as JSON-ready data, as the dashboard hands it to its script."""
    return {
        "missing": MISSING,
        "flags": dict(FLAGS),
        "units": {unit: [asdict(s) for s in steps] for unit, steps in UNITS.items()},
        "health": {h.value: h.label for h in Health},
    }
