"""Validation that needs the tool catalogue: the tools and parameters a policy names.

Stage: *spec sources*. ``spec.load_paths`` checks each document and the references between
them; this adds the check of every rule's ``do`` steps against the catalogue, so a typo in a
tool name is caught by ``driftmend validate`` and not at 3 a.m. by the guard.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from controller.spec import HealingPolicy, LoadResult, SpecIssue, load_paths
from controller.tools.base import Catalogue

# Tools of external MCP servers (`settings.mcp_servers`) are named `external.<server>/<tool>`.
EXTERNAL_PREFIX = "external."


def check_tools(result: LoadResult, catalogue: Catalogue) -> LoadResult:
    """Drop policies whose steps name unknown tools or bad parameters, with one issue each."""
    kept = []
    issues = list(result.issues)
    for loaded in result.documents:
        doc = loaded.doc
        if not isinstance(doc, HealingPolicy):
            kept.append(loaded)
            continue
        problems: list[SpecIssue] = []
        kind = doc.spec.selector.kind
        for i, rule in enumerate(doc.spec.rules):
            for j, step in enumerate(rule.do):
                where = f"spec.rules[{i}].do[{j}]"
                if step.tool.startswith(EXTERNAL_PREFIX) and "/" in step.tool:
                    continue  # served by an external MCP server: checked when it is reached
                tool = catalogue.get(step.tool)
                if tool is None:
                    close = difflib.get_close_matches(step.tool, catalogue.names(), n=1)
                    hint = f"; did you mean {close[0]}?" if close else ""
                    problems.append(SpecIssue(
                        loaded.file, loaded.index, doc.key, f"{where}.tool",
                        f"unknown tool {step.tool!r}{hint} (see `driftmend tools`)",
                    ))  # fmt: skip
                    continue
                if kind not in tool.kinds:
                    problems.append(SpecIssue(
                        loaded.file, loaded.index, doc.key, f"{where}.tool",
                        f"{step.tool} acts on {', '.join(tool.kinds)}, but the policy selects {kind}",
                    ))  # fmt: skip
                try:
                    tool.validate(step.params)
                except ValidationError as exc:
                    for err in exc.errors():
                        loc = ".".join(str(p) for p in err["loc"])
                        problems.append(SpecIssue(
                            loaded.file, loaded.index, doc.key, f"{where}.params.{loc}".rstrip("."),
                            str(err["msg"]),
                        ))  # fmt: skip
        issues.extend(problems)
        if not problems:
            kept.append(loaded)
    return LoadResult(kept, issues)


def load_and_check(paths: Iterable[str | Path], catalogue: Catalogue) -> LoadResult:
    """Everything ``driftmend validate`` checks, in one call."""
    return check_tools(load_paths(paths), catalogue)
