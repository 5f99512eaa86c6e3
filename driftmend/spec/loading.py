"""The one spec loader: files and directories in, valid documents and issues out.

Stage: *spec sources* (docs/ARCHITECTURE.md). ``load_paths`` serves ``driftmend validate``,
``driftmend run`` (through ``FileSource``, which passes ``last_good``), the MCP server, the
evaluation and the benchmarks. Loading never raises for bad input: every problem becomes a
``SpecIssue``, and a bad document (or file) never stops the good ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from driftmend.keys import ResourceKey
from driftmend.spec.documents import (
    KINDS,
    Document,
    HealingPolicy,
    Loaded,
    LoadResult,
    PostgresDatabase,
    RedisCache,
    Resource,
)
from driftmend.spec.fields import did_you_mean, shown
from driftmend.spec.issues import SpecIssue, describe_errors
from driftmend.spec.yaml_loader import (
    UnsafeDocument,
    check_shape,
    guess_what,
    parse_piece,
    split_documents,
)

DocumentCheck = Callable[[Loaded], list[SpecIssue]]
"""A check ``load_paths`` runs on each valid document, beyond what its model checks.

It returns the document's problems; a document with an error among them is dropped. The spec
knows no tools: ``driftmend.validate.tool_check`` is the check of every tool a policy names.
"""

# Built once: building the adapter walks every model of every kind.
_DOCUMENT: TypeAdapter[Resource | HealingPolicy] = TypeAdapter(Document)


def spec_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[SpecIssue]]:
    """The YAML files under ``paths`` (files as given, directories searched, sorted).

    A path that does not exist is an error; a directory without YAML files is a warning,
    so that ``driftmend validate`` on the wrong directory does not answer a silent "ok".
    """
    files: list[Path] = []
    issues: list[SpecIssue] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
            )
            if not found:
                issues.append(SpecIssue(
                    str(path), None, "",
                    message="no .yaml or .yml file in this directory: nothing to check",
                    severity="warning",
                ))  # fmt: skip
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            issues.append(SpecIssue(str(path), None, "", message="no such file or directory"))
    return files, issues


def _what(raw: Mapping[Any, Any]) -> str:
    """``Kind/name`` as the document says, ``?`` for what is missing or not a string."""
    kind = raw.get("kind")
    meta = raw.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    kind_s = kind if isinstance(kind, str) and kind else "?"
    name_s = name if isinstance(name, str) and name else "?"
    return "" if kind_s == name_s == "?" else f"{kind_s[:40]}/{name_s[:70]}"


def parse_document(
    raw: object, file: str, index: int
) -> tuple[Resource | HealingPolicy | None, list[SpecIssue]]:
    """Validate one decoded YAML document; never raises for bad input."""
    if not isinstance(raw, Mapping):
        got = type(raw).__name__
        return None, [
            SpecIssue(
                file,
                index,
                "",
                message=f"a document must be a mapping with apiVersion, kind, metadata and spec, not a {got}",
            )
        ]
    what = _what(raw)
    try:
        check_shape(raw)
    except UnsafeDocument as exc:
        return None, [SpecIssue(file, index, what, "", str(exc))]
    kind = raw.get("kind")
    known = ", ".join(KINDS)
    if kind is None:
        return None, [SpecIssue(file, index, what, "kind", f"kind is missing: add one of {known}")]
    # isinstance first: a list or a mapping as the kind is unhashable, `in KINDS` would raise.
    if not isinstance(kind, str):
        return None, [
            SpecIssue(
                file, index, what, "kind",
                f"must be a string, one of {known}; got {shown(kind)}",
            )
        ]  # fmt: skip
    if kind not in KINDS:
        return None, [
            SpecIssue(
                file, index, what, "kind",
                f"unknown kind {shown(kind)}; known kinds: {known}{did_you_mean(kind, KINDS)}",
            )
        ]  # fmt: skip
    try:
        return _DOCUMENT.validate_python(raw), []
    except ValidationError as exc:
        return None, [
            SpecIssue(file, index, what, path, message)
            for path, message in describe_errors(exc, Document)
        ]


def load_text(text: str, file: str) -> tuple[list[Loaded], list[SpecIssue]]:
    """Every document of one multi-document YAML text; a broken document costs only itself.

    Documents are parsed one by one (see ``split_documents``): the valid documents before
    and after a YAML syntax error are kept, and the error names its document's index. A text
    without any document is a warning.
    """
    docs: list[Loaded] = []
    issues: list[SpecIssue] = []
    index = 0
    found = False
    for first_line, piece in split_documents(text):
        raws, problem = parse_piece(piece, first_line)
        for raw in raws:
            if raw is not None:  # an empty document (`---` twice) declares nothing
                found = True
                doc, doc_issues = parse_document(raw, file, index)
                issues.extend(doc_issues)
                if doc is not None:
                    docs.append(Loaded(doc, file, index))
            index += 1
        if problem is not None:
            found = True
            issues.append(SpecIssue(file, index, guess_what(piece), message=problem))
            index += 1
    if not found:
        issues.append(SpecIssue(
            file, None, "", message="no documents: the file is empty or holds only comments",
            severity="warning",
        ))  # fmt: skip
    return docs, issues


def load_paths(
    paths: Iterable[str | Path],
    check: DocumentCheck | None = None,
    *,
    last_good: dict[str, list[Loaded]] | None = None,
) -> LoadResult:
    """Load and check every document under ``paths``; bad documents never stop good ones.

    ``check`` runs on each document its model accepted (``validate.tool_check(catalogue)``
    checks the tools a policy names); a document it finds an error in is dropped. Then the
    checks across documents: duplicate names per kind and namespace, a runtimeRef to a
    missing Container (errors), and a policy that selects nothing (a warning).

    ``last_good`` is for a loader that runs again and again (``FileSource``): each file's
    last valid documents, updated in place. A file with errors (or that cannot be read) keeps
    the documents it had, so a typo saved in an editor never drops a resource; a file that
    is gone loses its entry.
    """
    files, issues = spec_files(paths)
    documents: list[Loaded] = []
    for file in files:
        docs, file_issues = _load_file(file, check)
        if last_good is not None:
            docs, file_issues = _or_last_good(str(file), docs, file_issues, last_good)
        documents.extend(docs or [])
        issues.extend(file_issues)
    if last_good is not None:
        for gone in set(last_good) - {str(f) for f in files}:
            del last_good[gone]
    return check_documents(documents, issues)


def _load_file(
    file: Path, check: DocumentCheck | None
) -> tuple[list[Loaded] | None, list[SpecIssue]]:
    """The valid documents of one file (None when it cannot be read), and its issues."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [SpecIssue(str(file), None, "", message=f"cannot read: {exc}")]
    docs, issues = load_text(text, str(file))
    if check is None:
        return docs, issues
    kept: list[Loaded] = []
    for loaded in docs:
        problems = check(loaded)
        issues.extend(problems)
        if not any(p.severity == "error" for p in problems):
            kept.append(loaded)
    return kept, issues


def _or_last_good(
    name: str,
    docs: list[Loaded] | None,
    issues: list[SpecIssue],
    last_good: dict[str, list[Loaded]],
) -> tuple[list[Loaded], list[SpecIssue]]:
    """A file's documents, or its last valid ones when it has errors; ``last_good`` updated."""
    if docs is None:  # unreadable: its read error is reported already
        return last_good.get(name, []), issues
    if any(i.severity == "error" for i in issues) and name in last_good:
        keeping = SpecIssue(
            name,
            None,
            "",
            message="keeping this file's last valid documents until it is fixed",
            severity="warning",
        )
        return last_good[name], [*issues, keeping]
    last_good[name] = docs
    return docs, issues


def check_documents(documents: list[Loaded], issues: list[SpecIssue]) -> LoadResult:
    """Cross-document checks; a duplicate is dropped (the first one wins) and reported.

    Documents are told apart by ``key``: kind, namespace and name. Two policies (or two
    Containers) of the same name in different namespaces are both kept.
    """
    seen: dict[str, Loaded] = {}
    kept: list[Loaded] = []
    for loaded in documents:
        key = loaded.doc.key
        if key in seen:
            first = seen[key]
            issues.append(SpecIssue(
                loaded.file, loaded.index, key, "metadata.name",
                f"duplicate name: {key} is already defined in {first.file} document {first.index}; rename one",
            ))  # fmt: skip
            continue
        seen[key] = loaded
        kept.append(loaded)
    resources = [d.doc for d in kept if not isinstance(d.doc, HealingPolicy)]
    for loaded in kept:
        doc = loaded.doc
        if isinstance(doc, PostgresDatabase | RedisCache) and doc.spec.runtime_ref:
            ref = doc.spec.runtime_ref
            ns = doc.metadata.namespace
            target = str(ResourceKey.of(ref.kind, ref.name, ns))
            if target not in seen:
                issues.append(SpecIssue(
                    loaded.file, loaded.index, doc.key, "spec.runtimeRef.name",
                    f"no {ref.kind} named {ref.name!r} is declared; declare it or remove runtimeRef",
                ))  # fmt: skip
        if isinstance(doc, HealingPolicy) and not any(doc.selects(r) for r in resources):
            sel = doc.spec.selector
            issues.append(SpecIssue(
                loaded.file, loaded.index, doc.key, "spec.selector",
                f"selects no resource (kind {sel.kind}, labels {sel.match_labels or '{}'}); check the labels",
                severity="warning",
            ))  # fmt: skip
    return LoadResult(kept, issues)
