"""Properties of the spec loader, checked on inputs hypothesis builds: it never raises, every
problem is one readable line naming its file and field, a bad document never costs the good
ones, and sizes and durations read back what they wrote.

Derandomized (``derandomize=True``, no example database), so CI sees the same examples on
every run; the whole file stays well under 30 s.
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftmend.quantities import (
    format_bytes,
    format_duration,
    parse_bytes,
    parse_duration,
)
from driftmend.spec import SpecIssue, load_paths
from driftmend.spec.loading import load_text

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

API = "driftmend.dev/v1alpha1"
# Valid documents of each kind, with most of their fields: the mutations below start from
# them, so that validation reaches deep into the models rather than stopping at `kind`.
TEMPLATES: dict[str, dict[str, Any]] = {
    "Container": {
        "apiVersion": API,
        "kind": "Container",
        "metadata": {"name": "web", "labels": {"app": "shop"}},
        "spec": {
            "runtime": "process",
            "process": {"command": ["python3", "-m", "http.server"], "env": {"PORT": "8000"}},
            "port": 8000,
            "portEnv": "PORT",
            "replicas": 2,
            "limits": {"cpu": 0.5, "cpuCap": 1, "memory": "256Mi", "memoryCap": "1Gi"},
            "health": {"http": {"path": "/healthz"}, "interval": "5s", "timeout": "2s"},
        },
    },
    "PostgresDatabase": {
        "apiVersion": API,
        "kind": "PostgresDatabase",
        "metadata": {"name": "db", "labels": {"app": "shop"}},
        "spec": {
            "host": "127.0.0.1",
            "port": 55432,
            "database": "postgres",
            "user": "postgres",
            "maxConnectionsCap": 100,
        },
    },
    "RedisCache": {
        "apiVersion": API,
        "kind": "RedisCache",
        "metadata": {"name": "cache", "labels": {"app": "shop"}},
        "spec": {"host": "127.0.0.1", "port": 56379, "maxmemoryCap": "256mb"},
    },
    "HealingPolicy": {
        "apiVersion": API,
        "kind": "HealingPolicy",
        "metadata": {"name": "crash"},
        "spec": {
            "selector": {"kind": "Container", "matchLabels": {"app": "shop"}},
            "rules": [
                {
                    "name": "restart-on-exit",
                    "when": [{"signal": "container.running", "operator": "==", "value": False}],
                    "do": [{"tool": "container_restart"}],
                    "verify": {"timeout": "30s"},
                    "attempts": {"max": 3, "window": "5m"},
                },
                {
                    "name": "restart-when-unhealthy",
                    "when": [
                        {
                            "signal": "container.healthy",
                            "operator": "==",
                            "value": False,
                            "for": "10s",
                        }
                    ],
                    "do": [{"tool": "container_restart"}],
                    "cooldown": "30s",
                },
            ],
        },
    },
}

# What must never reach a reader: a traceback, Python's reprs of types and objects,
# pydantic's own wording and links.
NOISE = re.compile(
    r"Traceback|<class |<function |object at 0x|datetime\.|Value error,|pydantic|"
    r"For further information|validation error for|input_value=|input_type="
)


def _deep(depth: int) -> Any:
    """A value nested ``depth`` levels, alternating lists and mappings."""
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    # YAML's other types, as PyYAML builds them: dates, timestamps, !!binary.
    st.dates(),
    st.datetimes(),
    st.binary(max_size=4),
    st.sampled_from(["", "512m", "1.5Gi", "30s", "-1", "yes", "2020-01-01", "\x00", "ß" * 70]),
)
_JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
    ),
    max_leaves=8,
) | st.builds(_deep, st.integers(min_value=30, max_value=90))


def _paths(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (keys of mappings, indexes of lists)."""
    out = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*at, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_paths(value, (*at, i)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document of a random kind with a few random edits: a value replaced by junk
    (wrong types, nulls, huge numbers, NaN and infinities, deep nesting), a key removed, or
    an unknown key added."""
    doc = copy.deepcopy(TEMPLATES[draw(st.sampled_from(sorted(TEMPLATES)))])
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        paths = [p for p in _paths(doc) if p]
        path = draw(st.sampled_from(paths))
        parent = _parent(doc, path)
        edit = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if edit == "replace":
            parent[path[-1]] = draw(_JUNK)
        elif edit == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(_JUNK)
        else:
            parent.append(draw(_JUNK))
    return doc


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@st.composite
def document_texts(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A mutated document as YAML text; sometimes with one of its lines repeated, which
    (for a ``key: value`` line) gives a duplicate key."""
    doc = draw(mutated_documents())
    text = _dump(doc)
    if draw(st.booleans()):
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        text = "".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])
    return doc, text


def _write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _check_readable(issue: SpecIssue, file: Path) -> None:
    """One line, naming the file, with no Python noise."""
    line = str(issue)
    assert issue.file == str(file), issue
    assert line.startswith(str(file)) or line.startswith(f"warning: {file}"), line
    assert "\n" not in line and "\r" not in line, line
    assert not NOISE.search(line), line
    assert issue.message, issue


def _in_tmp(test: Callable[[Path], None]) -> None:
    # A fresh directory per example: pytest's tmp_path is one per test, not per example.
    with tempfile.TemporaryDirectory() as where:
        test(Path(where))


# --- (a) any text or bytes: documents or issues naming the file, never an exception -------


@settings(SETTINGS, max_examples=300)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_file_content_loads_or_says_why(content: str | bytes) -> None:
    def check(where: Path) -> None:
        file = _write(where, "spec.yaml", content)
        result = load_paths([where])
        assert result.documents or result.issues
        for issue in result.issues:
            _check_readable(issue, file)

    _in_tmp(check)


_YAMLISH = st.lists(
    st.sampled_from(
        [
            *("---", "...", "kind: Container", "metadata: {name: a}", "spec:", "  port: 80"),
            *("- a", "  - b", "key: &x [*x]", "a: *x", "? [a]\n: b", "%YAML 1.1", "%TAG ! x"),
            *(
                "!!python/object:os.system x",
                "!!binary QUJD",
                "!!set {a}",
                "!!timestamp 2020-01-01",
            ),
            *(
                "'unterminated",
                '"\\xzz"',
                "{",
                "[",
                "\t",
                "a: b: c",
                "|",
                ">-",
                "#",
                "a:\n  - b\n c",
            ),
            *("apiVersion: driftmend.dev/v1alpha1", "x: 1e999", "y: .nan", "z: 0x" + "f" * 40),
        ]
    ),
    max_size=12,
).map("\n".join)


@settings(SETTINGS, max_examples=300)
@given(_YAMLISH)
def test_yaml_shaped_text_loads_or_says_why(text: str) -> None:
    """Text made of YAML's own syntax (tags, anchors, directives, flows), so the parser and
    the constructors are reached, not just the reader."""

    def check(where: Path) -> None:
        file = _write(where, "spec.yaml", text)
        docs, issues = load_text(text, str(file))
        assert docs or issues
        for issue in issues:
            _check_readable(issue, file)

    _in_tmp(check)


# --- (b) documents with random field values: loaded, or issues naming a field path ----------


@settings(SETTINGS, max_examples=400)
@given(document_texts())
def test_mutated_documents_load_or_name_the_field(drawn: tuple[dict[str, Any], str]) -> None:
    doc, text = drawn

    def check(where: Path) -> None:
        file = _write(where, "spec.yaml", text)
        docs, issues = load_text(text, str(file))
        errors = [i for i in issues if i.severity == "error"]
        assert docs or errors, text
        for issue in issues:
            _check_readable(issue, file)
        for issue in errors:
            if issue.message.startswith("YAML"):
                # A duplicate key or a nesting too deep is found before any field exists:
                # the line says where.
                assert re.search(r"line \d+", issue.message), issue
                continue
            # The path starts at a key the document has (or a field it misses).
            names = {str(key) for key in doc} | {"apiVersion", "kind", "metadata", "spec"}
            assert any(
                issue.field == name or issue.field.startswith((f"{name}.", f"{name}["))
                for name in names
            ), (issue, text)

    _in_tmp(check)


# --- (c) a bad document never loses the good ones --------------------------------------------

_GOOD_KINDS = sorted(TEMPLATES)


def _good(kind: str, n: int) -> dict[str, Any]:
    doc = copy.deepcopy(TEMPLATES[kind])
    doc["metadata"]["name"] = f"good-{n}"
    return doc


_BAD_TEXT = st.one_of(
    document_texts().map(lambda drawn: drawn[1]),
    _YAMLISH,
    st.text(max_size=80),
)


@settings(SETTINGS, max_examples=150)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("good"), st.sampled_from(_GOOD_KINDS)),
            st.tuples(st.just("bad"), _BAD_TEXT),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)
def test_a_bad_document_never_loses_the_good_ones(
    pieces: list[tuple[str, str]], one_file: bool
) -> None:
    """Good and bad documents mixed in one file (or one file each in a directory): every
    good one is loaded, whatever the bad ones hold."""
    texts: list[str] = []
    wanted: set[str] = set()
    for n, (what, body) in enumerate(pieces):
        if what == "good":
            doc = _good(body, n)
            wanted.add(f"{body}/good-{n}")
            texts.append(_dump(doc))
        else:
            # A bad document must not be mistaken for a good one: its names are its own.
            texts.append(body.replace("good-", "bad-"))

    def check(where: Path) -> None:
        if one_file:
            _write(where, "all.yaml", "".join(f"---\n{t}\n" for t in texts))
        else:
            for n, text in enumerate(texts):
                _write(where, f"{n:02d}.yaml", text)
        result = load_paths([where])
        loaded = {d.doc.key for d in result.documents}
        assert wanted <= loaded, (wanted - loaded, [str(i) for i in result.issues])

    _in_tmp(check)


# --- (d) sizes and durations read back what was written -------------------------------------


@settings(SETTINGS, max_examples=300)
@given(st.integers(min_value=0, max_value=2**63))
def test_sizes_round_trip_through_a_spec(size: int) -> None:
    """A size written by ``format_bytes`` into a spec is read back as the same bytes."""
    assert parse_bytes(format_bytes(size)) == size
    doc = copy.deepcopy(TEMPLATES["Container"])
    doc["spec"]["limits"] = {"memory": format_bytes(size)}
    docs, issues = load_text(_dump(doc), "spec.yaml")
    assert not issues, issues
    memory = docs[0].doc.spec.limits.memory  # type: ignore[union-attr]
    assert memory == size


@settings(SETTINGS, max_examples=300)
@given(
    st.one_of(
        st.integers(min_value=0, max_value=10**9).map(float),
        st.integers(min_value=1, max_value=999).map(lambda ms: ms / 1000),
    )
)
def test_durations_round_trip(seconds: float) -> None:
    """What ``format_duration`` writes (the spec's own serializer), ``parse_duration`` reads."""
    text = format_duration(seconds)
    assert math.isclose(parse_duration(text), seconds, rel_tol=1e-9), text
