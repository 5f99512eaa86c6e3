"""The shared field types of every spec model: durations, sizes, names, the base model.

Stage: *spec sources* (docs/ARCHITECTURE.md). Everything here is used by more than one kind's
models, by the error rewording in ``issues`` and by the CRD generation in ``crds``.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema
from pydantic.alias_generators import to_camel

from driftmend.quantities import (
    BYTES_PATTERN,
    DURATION_PATTERN,
    POSITIVE_DURATION_PATTERN,
    format_duration,
    parse_bytes,
    parse_duration,
    parse_positive_duration,
)

GROUP = "driftmend.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Durations and sizes are int-or-string in the CRDs, as in Kubernetes' own types: a string
# matching the pattern, or a bare whole number (seconds, bytes). The parsers in
# ``quantities`` accept exactly that, so the generated CRDs and ``driftmend validate`` agree.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": DURATION_PATTERN,
            "minimum": 0,
            "example": "30s",
        }
    ),
]
PositiveDuration = Annotated[
    float,
    BeforeValidator(parse_positive_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": POSITIVE_DURATION_PATTERN,
            "minimum": 1,
            "example": "2s",
        }
    ),
]
ByteSize = Annotated[
    int,
    BeforeValidator(parse_bytes),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "pattern": BYTES_PATTERN,
            "minimum": 0,
            "example": "512Mi",
        }
    ),
]
DNS_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Model(BaseModel):
    """Base of every spec model: camelCase in YAML, snake_case in Python, unknown keys refused.

    ``allow_inf_nan=False``: YAML spells them ``.inf`` and ``.nan``, and no threshold, limit
    or ratio means anything as either (``x > .nan`` never holds, a limit of ``.inf`` is none).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
    )


class FieldError(ValueError):
    """A model validator's error about one field: ``path`` is relative to the model validated.

    Pydantic reports a model validator's error at the model itself (``spec``); loading reads
    ``path`` back from the error so the reader sees ``spec.rules[1].name``, not ``spec``.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def _as_yaml(value: object) -> object:
    """``value`` with YAML's dates, timestamps, ``!!binary`` and ``!!set`` as their YAML text."""
    if isinstance(value, datetime.date):  # a datetime is a date too
        return _Spelt(value.isoformat())
    if isinstance(value, bytes | bytearray):
        return _Spelt(f"!!binary ({len(value)} bytes)")
    if isinstance(value, set | frozenset):
        return [_as_yaml(v) for v in sorted(value, key=str)]
    if isinstance(value, list):
        return [_as_yaml(v) for v in value]
    if isinstance(value, dict):
        return {_as_yaml(k): _as_yaml(v) for k, v in value.items()}
    return value


class _Spelt(str):
    """Text that is shown as is, unquoted (a YAML date reads 2020-01-01, not '2020-01-01')."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def shown(value: object, limit: int = 40) -> str:
    """``value`` as quoted in a message, spelt as the YAML it came from and cut short: flags
    and nulls in YAML's words, dates as written (not ``datetime.date(2020, 1, 1)``),
    ``!!binary`` by its size. The walk is of what validation refused, which the loader has
    bounded (``MAX_VALUES``)."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return str(value).lower()
    text = repr(_as_yaml(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean x?"`` with the closest of ``choices`` (up to ``n``), or ``""``."""
    close = difflib.get_close_matches(word, sorted(choices), n=n)
    return f"; did you mean {' or '.join(close)}?" if close else ""
