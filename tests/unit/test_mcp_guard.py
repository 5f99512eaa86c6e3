"""The guard's target rule and external MCP tools: each rule fails its test when removed. Pure."""

from __future__ import annotations

from typing import Any

import jsonschema
import mcp_types as types
import pytest

from driftmend.guard import ToolFacts, admit, named_targets
from driftmend.mcp.client import ExternalServer, _validator, effect_of
from driftmend.model import Plan, PlanStep
from driftmend.spec import HealingPolicy
from driftmend.tools.catalogue import default_catalogue, tool_facts
from tests.unit.factories import policy

FACTS = tool_facts(default_catalogue())
KEY = "Container/shop"


def plan(*steps: PlanStep) -> Plan:
    return Plan(KEY, steps, "rules", "test", policy="p", rule="restart")


def check(p: Plan, pol: Any, **kw: Any) -> Any:
    return admit(
        p, kind="Container", policy=pol, tools=kw.pop("tools", FACTS), history=[], now=1000.0, **kw
    )


def test_a_step_on_another_resource_is_refused_by_default() -> None:
    d = check(plan(PlanStep("container_restart", "Container/worker")), policy())
    assert (
        not d.admitted and "targets Container/worker, but only Container/shop drifted" in d.reason
    )


def named_policy(*names: str) -> HealingPolicy:
    data = policy().model_dump(by_alias=True)
    data["spec"]["selector"]["names"] = list(names)
    return HealingPolicy.model_validate(data)


def test_a_step_on_a_resource_the_policy_names_is_admitted() -> None:
    named = named_policy("shop", "worker")
    assert named_targets(named) == {"Container/shop", "Container/worker"}
    p = plan(PlanStep("container_restart", "Container/worker"))
    assert check(p, named, targets=named_targets(named)).admitted
    # Without the policy naming it, the same step is refused: the names are what admit it.
    assert not check(p, named_policy("shop"), targets=named_targets(named_policy("shop"))).admitted


def test_a_named_target_is_checked_against_its_own_kind() -> None:
    p = plan(PlanStep("container_restart", "RedisCache/cache"))
    d = check(p, policy(), targets={"RedisCache/cache"})
    assert not d.admitted and "acts on Container, not RedisCache" in d.reason


def test_named_targets_of_no_policy() -> None:
    assert named_targets(None) == frozenset()


def external_facts(annotations: types.ToolAnnotations | None) -> dict[str, ToolFacts]:
    tool = types.Tool(
        name="query",
        input_schema={
            "type": "object",
            "properties": {"sql": {"type": "string"}},
            "required": ["sql"],
            "additionalProperties": False,
        },
        annotations=annotations,
    )
    facts = ToolFacts(("Container",), effect_of(annotations), _validator(tool))
    return {**FACTS, "external.pg/query": facts}


def ext_policy(approval: str = "operator") -> Any:
    return policy(
        rules=[
            {
                "name": "restart",
                "when": [{"signal": "container.running", "value": False}],
                "do": [{"tool": "external.pg/query", "params": {"sql": "select 1"}}],
            }
        ],
        approval=approval,
    )


def test_an_allowed_read_only_external_tool_is_admitted() -> None:
    tools = external_facts(types.ToolAnnotations(read_only_hint=True))
    p = plan(PlanStep("external.pg/query", KEY, {"sql": "select 1"}))
    assert check(p, ext_policy(), tools=tools).admitted


def test_external_parameters_are_checked_against_the_tool_schema() -> None:
    tools = external_facts(types.ToolAnnotations(read_only_hint=True))
    d = check(plan(PlanStep("external.pg/query", KEY, {"sql": 1})), ext_policy(), tools=tools)
    assert not d.admitted and "invalid parameters" in d.reason
    with pytest.raises(jsonschema.ValidationError):
        tools["external.pg/query"].validate({})


def test_an_unhinted_external_tool_counts_as_destructive() -> None:
    tools = external_facts(None)
    p = plan(PlanStep("external.pg/query", KEY, {"sql": "select 1"}))
    d = check(p, ext_policy(), tools=tools)
    assert not d.admitted and d.needs_approval
    assert check(p, ext_policy("auto"), tools=tools).admitted


def test_an_external_server_bound_to_other_kinds_is_refused() -> None:
    tools = external_facts(types.ToolAnnotations(read_only_hint=True))
    facts = tools["external.pg/query"]
    tools["external.pg/query"] = ToolFacts(("PostgresDatabase",), facts.effect, facts.validate)
    d = check(plan(PlanStep("external.pg/query", KEY, {"sql": "select 1"})), ext_policy(),
              tools=tools)  # fmt: skip
    assert not d.admitted and "acts on PostgresDatabase, not Container" in d.reason


def test_an_external_server_declares_its_kinds_and_distrusted_hints() -> None:
    server = ExternalServer.model_validate(
        {"name": "pg", "command": ["pg-mcp"], "kinds": ["PostgresDatabase"],
         "effects": {"query": "destructive"}}
    )  # fmt: skip
    assert server.kinds == ("PostgresDatabase",) and server.effects == {"query": "destructive"}
    with pytest.raises(ValueError, match="unknown kind"):
        ExternalServer.model_validate({"name": "pg", "command": ["x"], "kinds": ["Pod"]})
