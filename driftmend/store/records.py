"""What the store's reads return: frozen records that still read like the dicts they were.

Stage: *outputs* in docs/ARCHITECTURE.md's data flow (``store``). A record is a frozen dataclass with
typed fields (``fix.outcome``), and also a read-only ``Mapping`` over those same fields
(``fix["outcome"]``, ``fix.get("outcome")``, ``dict(fix)``, ``**fix``), so callers written
against the old dicts keep working while they move to attributes. Equality is a mapping's:
a record equals any mapping with the same keys and values, a dict literal included. A union
with a mapping (``record | {"extra": 1}``) gives a plain dict of JSON values. ``to_json()``
gives the JSON-ready dict the store used to return.

Also the JSON column helpers every family shares (pure, no I/O).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, TypeVar

__all__ = ["Record", "dumps", "enum_or_text", "json_value", "kind_of", "loads"]

_E = TypeVar("_E", bound=Enum)


@dataclass(frozen=True, eq=False)
class Record(Mapping[str, Any]):
    """Base of every record the store returns: typed fields, read as a mapping too."""

    # Filled per subclass on first use: the field names, in declaration order.
    _names_cache: ClassVar[dict[type, tuple[str, ...]]] = {}

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        names = Record._names_cache.get(cls)
        if names is None:
            names = tuple(f.name for f in fields(cls))
            Record._names_cache[cls] = names
        return names

    def __getitem__(self, name: str) -> Any:
        # The dataclass's own field dict: a hash lookup (the dashboard reads 15 fields of
        # each of 1,000 rows per request).
        if name in self.__dataclass_fields__:
            return getattr(self, name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The field ``name``, or ``default`` (Mapping's own goes through a KeyError)."""
        if name in self.__dataclass_fields__:
            return getattr(self, name)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    # Records hold dicts and lists; equal to a dict, they cannot be hashed like one either.
    __hash__ = None  # type: ignore[assignment]

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.to_json(), **other}

    def __ror__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return {**other, **self.to_json()}

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON values: nested records as dicts, enums as their text."""
        return {name: json_value(getattr(self, name)) for name in self._names()}


def json_value(value: Any) -> Any:
    """``value`` with records and mappings as dicts, sequences as lists, enums as text."""
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def enum_or_text(kind: type[_E], value: str | None) -> _E | str | None:
    """``value`` as a member of ``kind``, or the text itself when it is not one: a column
    written by an older or newer driftmend must not make a read fail."""
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        return value


# --- JSON columns -------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with mappings as dicts, sequences as lists and non-finite floats as None.

    A ratio over a zero limit can be ``inf``; JSON has no such number and the dashboard's
    JSON responses refuse it, so it is stored as "unknown" rather than failing the write.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def dumps(value: Any) -> str:
    """``value`` as the compact JSON text of a column."""
    return json.dumps(_jsonable(value), allow_nan=False, separators=(",", ":"))


def loads(text: str | None) -> Any:
    """A JSON column's value; None for NULL."""
    return None if text is None else json.loads(text)


def kind_of(key: str) -> str:
    """The kind part of a ``Kind/name`` key."""
    return key.partition("/")[0]
