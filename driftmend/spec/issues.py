"""Problems found in specs as one line each: where (file, document, field) and the fix.

Stage: *spec sources* (docs/ARCHITECTURE.md). ``SpecIssue`` is one problem; ``describe_errors``
turns a pydantic ``ValidationError`` into ``(field path, message)`` pairs that name the field
as written in YAML and say how to fix it, instead of pydantic's own wording.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from driftmend.spec.fields import (
    API_VERSION,
    DNS_NAME,
    ENV_NAME,
    FieldError,
    did_you_mean,
    shown,
)


def _one_line(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x01``): a message stays one line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


@dataclass(frozen=True)
class SpecIssue:
    """One problem in one document: where it is and what is wrong, as one line."""

    file: str
    document: int | None
    what: str
    field: str = ""
    message: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file
        if self.document is not None:
            where += f": document {self.document}"
            if self.what:
                where += f" ({self.what})"
        field = f": {self.field}" if self.field else ""
        prefix = "warning: " if self.severity == "warning" else ""
        # Names, keys and values come from the file: a newline or a control character in
        # them must not split the line or reach the terminal raw.
        return _one_line(f"{prefix}{where}{field}: {self.message}")


@dataclass(frozen=True)
class _Where:
    """Where a pydantic error points: the readable path and what is expected there."""

    path: str
    annotation: Any  # the type expected at the path (Any when unknown)
    model: type[BaseModel] | None  # the model the last name was looked up in
    name: str | None  # the last name of the path (a field, or an unknown key)


def _unwrap(tp: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _model_field(model: type[BaseModel], name: str) -> Any:
    """The ``FieldInfo`` of ``model`` named ``name`` (by YAML alias or Python name), or None."""
    for field_name, info in model.model_fields.items():
        if name in (field_name, info.alias):
            return info
    return None


def _union_member(tp: Any, tag: str) -> Any:
    """The member of a union that pydantic's location ``tag`` names (its type or kind, or
    the ``Tag`` of a discriminated union such as an env value)."""
    for member in get_args(tp):
        inner = _unwrap(member)
        tags = get_args(member)[1:] if get_origin(member) is Annotated else ()
        if getattr(inner, "__name__", None) == tag or any(
            isinstance(t, Tag) and t.tag == tag for t in tags
        ):
            return inner
    return Any


def _locate(loc: Sequence[int | str], root: Any) -> _Where:
    """Follow a pydantic error location through the types from ``root``.

    The readable path drops what only pydantic needs: a union's branch names (``Container``
    of the document union, ``bool`` and ``float`` of a condition's value) and ``[key]``.
    """
    path = ""
    tp: Any = root
    model: type[BaseModel] | None = None
    name: str | None = None
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if part == "[key]":
            continue
        if origin in (typing.Union, types.UnionType) and isinstance(part, str):
            tp = _union_member(tp, part)
            continue
        if isinstance(part, int):
            path += f"[{part}]"
            args = get_args(tp)
            tp = args[0] if origin in (list, tuple, set, frozenset) and args else Any
            continue
        path = f"{path}.{part}" if path else part
        name = part
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            model = tp
            info = _model_field(tp, part)
            tp = info.annotation if info is not None else Any
        elif origin is dict:
            tp = get_args(tp)[1]
        else:
            tp = Any
    return _Where(path, tp, model, name)


# The noun phrase of what a type error expected, keyed by pydantic's error type.
_EXPECTED = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_HOW = {
    "a string": "put it in quotes",
    "a list": "write [a, b], or one `- item` per line",
    "a mapping": "write `key: value` pairs",
}
_NAME_PATTERNS = {
    DNS_NAME: "is not a valid name: use lowercase letters, digits and '-', starting and ending "
    "with a letter or digit, at most 63 characters (like shop-db)",
    ENV_NAME: "is not an environment variable name: use letters, digits and '_', not starting "
    "with a digit (like DB_PASSWORD)",
}


def _reworded(err: Mapping[str, Any], where: _Where) -> str:
    """Pydantic's message for one error, said as what is wrong and how to fix it."""
    kind = err["type"]
    ctx: Mapping[str, Any] = err.get("ctx") or {}
    got = shown(err.get("input"))
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
        how = _HOW.get(expected)
        if expected == "a string" and isinstance(err.get("input"), list | dict):
            how = None  # quotes would not turn a list or a mapping into a string
        return f"expected {expected}, got {got}" + (f": {how}" if how else "")
    if kind == "extra_forbidden":
        allowed = [
            info.alias or name
            for name, info in (where.model.model_fields if where.model else {}).items()
        ]
        hint = did_you_mean(where.name or "", allowed).removeprefix("; ")
        if hint:
            return f"unknown field: {hint}"
        return "unknown field: remove it" + (
            f" (allowed here: {', '.join(allowed)})" if allowed else ""
        )
    if kind == "missing":
        info = _model_field(where.model, where.name) if where.model and where.name else None
        about = f" ({info.description})" if info is not None and info.description else ""
        return f"required field is missing: add {where.name}{about}"
    if kind == "literal_error":
        if where.name == "apiVersion":
            return f"apiVersion must be {API_VERSION}, got {got}"
        choices = [str(c) for c in get_args(_unwrap(where.annotation))] or [
            str(ctx.get("expected"))
        ]
        close = did_you_mean(str(err.get("input")), choices)
        return f"must be one of {', '.join(choices)}; got {got}{close}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return f"{got} {_NAME_PATTERNS.get(pattern, f'does not match the pattern {pattern}')}"
    bounds = {
        "greater_than": ("more than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"must be {words} {ctx.get(key)}, got {got}"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "must not be empty: give at least one item"
        return f"needs at least {ctx.get('min_length')} items"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("too_long", "string_too_long"):
        unit = "characters" if kind == "string_too_long" else "items"
        return f"is too long: at most {ctx.get('max_length')} {unit}"
    if kind == "invalid_key":  # `5: x` or `null: x` where names are expected
        return "keys must be strings: quote this one, or remove it"
    if kind == "recursion_loop":
        return "refers to itself: a spec cannot be recursive"
    return " ".join(str(err["msg"]).removeprefix("Value error, ").split())


def describe_errors(exc: ValidationError, root: Any, base: str = "") -> list[tuple[str, str]]:
    """``(field path, message)`` per field of a ``ValidationError`` raised validating ``root``.

    One line per field: the alternatives of a union (a condition's ``value`` is a flag or
    a number) become one message; an error a model validator raised about one of its fields
    (``FieldError``) points at that field, not at the model. ``base`` prefixes every path.
    """
    grouped: dict[str, list[tuple[Mapping[str, Any], _Where]]] = {}
    for err in exc.errors():
        where = _locate(err["loc"], root)
        path = where.path
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, FieldError) and error.path:
            sep = "" if not path or error.path.startswith("[") else "."
            path = f"{path}{sep}{error.path}"
        if base:
            path = f"{base}.{path}" if path else base
        grouped.setdefault(path, []).append((err, where))
    out: list[tuple[str, str]] = []
    for path, errs in grouped.items():
        if len(errs) > 1 and all(e["type"] in _EXPECTED for e, _ in errs):
            # The branches of a union: "a flag (true or false) or a number", on one line.
            phrases = (_EXPECTED[e["type"]] for e, _ in errs)
            named = (f"a flag ({p})" if p == "true or false" else p for p in phrases)
            expected = " or ".join(dict.fromkeys(named))
            out.append((path, f"expected {expected}, got {shown(errs[0][0].get('input'))}"))
            continue
        out.append((path, "; ".join(dict.fromkeys(_reworded(e, w) for e, w in errs))))
    return out
