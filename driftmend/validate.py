"""Validation that needs the tool catalogue: the tools and parameters a policy names.

Stage: *spec sources* (docs/ARCHITECTURE.md). ``spec.load_paths`` checks each document and
the references between them; ``tool_check(catalogue)``, passed to it as its ``check``, adds
the check of every tool a policy names (its rules' ``do`` steps and its escalation's
``allowedTools``) against the catalogue, so a typo in a tool name is caught by
``driftmend validate`` and not at 3 a.m. by the guard.
"""

from __future__ import annotations

import difflib

from pydantic import ValidationError

from driftmend.spec import DocumentCheck, HealingPolicy, Loaded, SpecIssue, describe_errors
from driftmend.tools.base import Catalogue

# Tools of external MCP servers (`settings.mcp_servers`) are named `external.<server>/<tool>`.
# Which servers exist is configuration, not spec: such names are checked for their shape
# here, and against the configured servers when a plan reaches them.
EXTERNAL_PREFIX = "external."


def tool_problem(name: str, kind: str, catalogue: Catalogue) -> str | None:
    """What is wrong with naming tool ``name`` in a policy that selects ``kind``, or None."""
    if name.startswith(EXTERNAL_PREFIX):
        server, slash, tool_name = name.removeprefix(EXTERNAL_PREFIX).partition("/")
        if server and slash and tool_name:
            return None
        return (
            f"{name!r} is not an external tool name: write external.<server>/<tool>, "
            "like external.postgres-mcp/explain_query"
        )
    tool = catalogue.get(name)
    if tool is None:
        close = difflib.get_close_matches(name, catalogue.names(), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown tool {name!r}{hint} (see `driftmend tools`)"
    if kind not in tool.kinds:
        # A tool of the wrong kind is most often its sibling for another target
        # (redis_restart for container_restart): suggest the closest one that fits.
        fitting = [t.name for t in catalogue.for_kind(kind)]
        close = difflib.get_close_matches(name, fitting, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"{name} acts on {', '.join(tool.kinds)}, but the policy selects {kind}{hint}"
    return None


def _policy_problems(loaded: Loaded, doc: HealingPolicy, catalogue: Catalogue) -> list[SpecIssue]:
    """Every tool a policy names, in its rules' steps and its escalation's allowlist, checked."""
    problems: list[SpecIssue] = []

    def issue(field: str, message: str) -> None:
        problems.append(SpecIssue(loaded.file, loaded.index, doc.key, field, message))

    kind = doc.spec.selector.kind
    for i, rule in enumerate(doc.spec.rules):
        for j, step in enumerate(rule.do):
            where = f"spec.rules[{i}].do[{j}]"
            problem = tool_problem(step.tool, kind, catalogue)
            if problem is not None:
                issue(f"{where}.tool", problem)
            tool = catalogue.get(step.tool)
            if tool is None:
                continue  # unknown (reported above) or external: no schema to check here
            try:
                tool.validate(step.params)
            except ValidationError as exc:
                for field, message in describe_errors(exc, tool.params, f"{where}.params"):
                    issue(field, message)
    if doc.spec.escalate is not None:
        # The LLM may only call what is listed here: a typo would silently shrink its
        # allowlist, and a tool of another kind could never run on the selected resources.
        for k, name in enumerate(doc.spec.escalate.allowed_tools):
            problem = tool_problem(name, kind, catalogue)
            if problem is not None:
                issue(f"spec.escalate.allowedTools[{k}]", problem)
    return problems


def tool_check(catalogue: Catalogue) -> DocumentCheck:
    """The ``check`` for ``spec.load_paths``: every tool a policy names, against ``catalogue``.

    A policy with a problem is dropped, with one issue per problem; documents of other kinds
    name no tools and pass as they are.
    """

    def check(loaded: Loaded) -> list[SpecIssue]:
        doc = loaded.doc
        if not isinstance(doc, HealingPolicy):
            return []
        return _policy_problems(loaded, doc, catalogue)

    return check
