"""YAML decoding for specs, hardened: bad or hostile YAML becomes one line, never a traceback.

Stage: *spec sources* (docs/ARCHITECTURE.md). PyYAML's safe loader, stricter (no duplicate
keys, a depth limit), run one document at a time so a syntax error costs one document, and a
walk that refuses alias bombs and recursive aliases before validation sees them.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

from driftmend.spec.fields import shown

MAX_DEPTH = 64
"""The deepest nesting a document may have. Real specs stay under 15 levels; YAML much deeper
than this exhausts the parser's recursion (and later pydantic's) and ends in a traceback."""
MAX_VALUES = 100_000
"""The most values a document may expand to. YAML aliases let a few lines expand to billions
of values ("billion laughs"), which every later walk (validation, JSON, the store) would pay."""


class _DuplicateKeyError(ConstructorError):
    """A mapping names the same key twice; ``first_line`` is where it was first (0-based)."""

    def __init__(self, key: object, node: Node, first_line: int) -> None:
        super().__init__(None, None, f"duplicate key {shown(key)}", node.start_mark)
        self.first_line = first_line


class _TooDeepError(ComposerError):
    """The document nests deeper than ``MAX_DEPTH``."""


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stricter: no duplicate keys, no nesting beyond ``MAX_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        """Compose one node, refusing nesting beyond ``MAX_DEPTH`` with the line it starts on."""
        # The composer recurses once per level: stop at MAX_DEPTH with a line number, long
        # before Python's recursion limit (about 500 levels) stops it with a traceback.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # stubs lack it
                raise _TooDeepError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """One value; a scalar Python cannot hold becomes a YAML error with its line."""
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            # PyYAML lets Python's own errors escape for scalars it recognises but cannot
            # build: an integer of 5000 digits, a date with month 13.
            reason = str(exc).split(";")[0]
            raise ConstructorError(
                None, None, f"cannot read this value ({reason})", node.start_mark
            ) from exc
        except (AttributeError, KeyError, IndexError) as exc:
            # An explicit tag on a scalar that is not of its type trips PyYAML's own code
            # (`!!timestamp x`, `!!bool x`, `!!int ""`): its error says nothing to a reader.
            tag = str(node.tag).rsplit(":", 1)[-1]
            raise ConstructorError(
                None, None, f"cannot read this value as !!{tag}: remove the tag", node.start_mark
            ) from exc

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key given twice (PyYAML would let the last one win silently)."""
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first:
                    raise _DuplicateKeyError(key, key_node, first[key])
                first[key] = key_node.start_mark.line
            except TypeError:
                continue  # an unhashable key: PyYAML's own check reports it just below
        return super().construct_mapping(node, deep=deep)


# A document starts at `---` at the start of a line, followed by a blank or the line's end.
_DOCUMENT_START = re.compile(r"^---(?=[ \t\r]|$)", re.MULTILINE)
_KIND_LINE = re.compile(r"^kind:[ \t]*([A-Za-z]+)[ \t]*$", re.MULTILINE)
_NAME_LINE = re.compile(
    r"^metadata:[ \t]*(?:\{[^}\n]*?\bname:|\n[ \t]+name:)[ \t]*([\w.-]+)", re.MULTILINE
)


def split_documents(text: str) -> list[tuple[int, str]]:
    """``text`` cut before each ``---`` line, with the line number each piece starts on.

    YAML forbids a ``---`` line inside a document (PyYAML ends the document there, or fails),
    so each piece parses on its own, and a syntax error costs one document instead of the
    rest of the file. Directives (``%YAML``, ``%TAG``) belong to the document after them and
    would be cut off from it: a file with directives, rare in specs, is parsed whole.
    """
    if re.search(r"^%", text, re.MULTILINE):
        return [(0, text)]
    bounds = [0, *(m.start() for m in _DOCUMENT_START.finditer(text) if m.start() > 0)]
    pieces: list[tuple[int, str]] = []
    line = 0
    for start, end in zip(bounds, [*bounds[1:], len(text)], strict=True):
        pieces.append((line, text[start:end]))
        line += text.count("\n", start, end)
    return pieces


def _yaml_problem(exc: yaml.YAMLError, piece: str, first_line: int) -> str:
    """One line for a YAML error, with the line and column in the whole file."""
    if isinstance(exc, yaml.reader.ReaderError):
        # The reader checks every character before parsing, and reports an offset only.
        pos = exc.position
        line = first_line + piece.count("\n", 0, pos) + 1
        column = pos - (piece.rfind("\n", 0, pos) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return (
            f"YAML: character U+{char:04X} at line {line}, column {column} is not allowed "
            "(a control character): remove it"
        )
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {first_line + mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        if isinstance(exc, _DuplicateKeyError):
            return (
                f"YAML: {problem}{where} (first at line {first_line + exc.first_line + 1}): "
                "keep one of them"
            )
        if isinstance(exc, _TooDeepError):
            return f"YAML: {problem}{where}: flatten it"
        # Each document is parsed alone: its end is where the real stream had the next one.
        problem = problem.replace("'<stream end>'", "the end of the document")
        problem = problem.replace("'<document start>'", "the next document (---)")
        context = " ".join(str(exc.context or "").split())
        hint = f" ({context})" if context and context != problem else ""
        # A constructor error is about a value (a tag, a number too big), not the syntax.
        label = "YAML error" if isinstance(exc, ConstructorError) else "YAML syntax error"
        return f"{label}{where}: {problem}{hint}"
    return "YAML error: " + " ".join(str(exc).split())


def parse_piece(piece: str, first_line: int) -> tuple[list[object], str | None]:
    """The decoded documents of one piece, and what stopped it (one line) if anything did."""
    raws: list[object] = []
    try:
        loader = _SpecLoader(piece)  # the reader checks every character here
        try:
            while loader.check_data():  # type: ignore[no-untyped-call]  # stubs lack it
                raws.append(loader.get_data())
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        return raws, _yaml_problem(exc, piece, first_line)
    except RecursionError:  # the depth limit comes first; this is the last resort
        return raws, f"YAML: nested too deeply (the limit is {MAX_DEPTH} levels): flatten it"
    return raws, None


def guess_what(piece: str) -> str:
    """``Kind/name`` read off the lines of a document that would not parse, or ``""``."""
    kind = _KIND_LINE.search(piece)
    if kind is None:
        return ""
    name = _NAME_LINE.search(piece)
    return f"{kind.group(1)}/{name.group(1) if name else '?'}"


class UnsafeDocument(Exception):
    """A decoded document that must not reach validation; the message says why."""


def check_shape(raw: object) -> None:
    """Raise ``UnsafeDocument`` for a document that loops on itself or expands beyond the limits.

    Aliases make the decoded value a graph: sizes are memoised per shared value, so the walk
    costs the YAML's size, not its expansion; depth is checked along the way, so the walk's
    own recursion stays within ``MAX_DEPTH``.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values, height)
    active: set[int] = set()

    def walk(node: object, depth: int) -> tuple[int, int]:
        if not isinstance(node, dict | list):
            return 1, 0
        ident = id(node)
        if ident in sizes:
            size, height = sizes[ident]
        elif ident in active:
            raise UnsafeDocument(
                "YAML: an alias refers to a value that contains it (*x inside &x): "
                "a spec cannot be recursive"
            )
        else:
            active.add(ident)
            size, height = 1, 0
            for child in node.values() if isinstance(node, dict) else node:
                child_size, child_height = walk(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > MAX_VALUES:
                    raise UnsafeDocument(
                        f"YAML: the document expands to more than {MAX_VALUES} values "
                        "(through aliases): write it out, or use fewer aliases"
                    )
            active.discard(ident)
            sizes[ident] = (size, height)
        if depth + height > MAX_DEPTH:
            raise UnsafeDocument(
                f"YAML: nested deeper than {MAX_DEPTH} levels (through aliases): flatten it"
            )
        return size, height

    walk(raw, 0)
