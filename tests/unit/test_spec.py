"""Spec models and loading: every kind of bad input gives one clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from controller.spec import HealingPolicy, crds_yaml, load_paths
from controller.tools.catalogue import default_catalogue
from controller.validate import load_and_check

REPO = Path(__file__).resolve().parents[2]

GOOD = """
apiVersion: driftmend.dev/v1alpha1
kind: Container
metadata: {name: shop, labels: {app: shop}}
spec:
  process: {command: [python3, -m, http.server]}
  port: 8000
---
apiVersion: driftmend.dev/v1alpha1
kind: HealingPolicy
metadata: {name: crash}
spec:
  selector: {kind: Container, matchLabels: {app: shop}}
  rules:
    - name: restart
      when: [{signal: container.running, value: false, for: 2s}]
      do: [{tool: container_restart}]
      verify: {timeout: 1m}
      attempts: {max: 3, window: 10m}
      cooldown: 500ms
"""


def write(tmp_path: Path, text: str, name: str = "specs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def messages(tmp_path: Path, text: str) -> list[str]:
    return [str(i) for i in load_and_check([write(tmp_path, text)], default_catalogue()).issues]


def test_good_documents_load_with_parsed_durations(tmp_path: Path) -> None:
    result = load_and_check([write(tmp_path, GOOD)], default_catalogue())
    assert result.errors == []
    assert [d.doc.key for d in result.documents] == ["Container/shop", "HealingPolicy/crash"]
    policy = result.policies[0]
    rule = policy.spec.rules[0]
    assert rule.when[0].for_ == 2.0
    assert rule.verify.timeout == 60.0
    assert rule.attempts.window == 600.0
    assert rule.cooldown == 0.5
    assert policy.selects(result.resources[0])


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    out = messages(tmp_path, "kind: Container\nmetadata: [unclosed\n")
    assert len(out) == 1
    assert "specs.yaml" in out[0] and "YAML syntax error at line" in out[0]


def test_unknown_kind_lists_known_kinds(tmp_path: Path) -> None:
    out = messages(
        tmp_path, "apiVersion: driftmend.dev/v1alpha1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n"
    )
    assert out == [
        "%s: document 0 (Pod/x): kind: unknown kind 'Pod'; known kinds: Container, PostgresDatabase, RedisCache, HealingPolicy"
        % (tmp_path / "specs.yaml")
    ]


def test_wrong_type_names_field_path(tmp_path: Path) -> None:
    text = GOOD.replace("port: 8000", "port: eight-thousand")
    out = messages(tmp_path, text)
    assert any("document 0 (Container/shop): spec.port:" in m for m in out), out


def test_unknown_field_is_refused_with_a_hint(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("port: 8000", "prot: 8000"))
    assert any("spec.prot: unknown field" in m for m in out), out


def test_unknown_signal(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("container.running", "container.runing"))
    assert any(
        "spec.rules[0].when[0].signal: unknown signal 'container.runing'" in m for m in out
    ), out


def test_signal_of_another_kind(tmp_path: Path) -> None:
    out = messages(
        tmp_path,
        GOOD.replace("signal: container.running, value: false", "signal: redis.up, value: false"),
    )
    assert any("redis.up is not a signal of Container" in m for m in out), out


def test_flag_compared_with_number(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("value: false", "value: 3"))
    assert any("container.running is a flag" in m for m in out), out


def test_unknown_tool_suggests_the_closest(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("tool: container_restart", "tool: container_restrat"))
    assert any(
        "spec.rules[0].do[0].tool: unknown tool 'container_restrat'; did you mean container_restart?"
        in m
        for m in out
    ), out


def test_tool_params_are_validated(tmp_path: Path) -> None:
    out = messages(
        tmp_path,
        GOOD.replace("tool: container_restart}", "tool: container_scale, params: {replicas: -1}}"),
    )
    assert any("spec.rules[0].do[0].params.replicas" in m for m in out), out


def test_tool_of_another_kind(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("tool: container_restart", "tool: redis_flush"))
    assert any(
        "redis_flush acts on RedisCache, but the policy selects Container" in m for m in out
    ), out


@pytest.mark.parametrize("bad", ["2 seconds", "-1s", "5x", "true"])
def test_bad_duration(tmp_path: Path, bad: str) -> None:
    out = messages(tmp_path, GOOD.replace("for: 2s", f"for: {bad}"))
    assert any("spec.rules[0].when[0].for" in m for m in out), out


def test_duplicate_names_keep_the_first(tmp_path: Path) -> None:
    text = GOOD + "---\n" + GOOD.split("---")[0]
    result = load_and_check([write(tmp_path, text)], default_catalogue())
    assert [str(e) for e in result.errors] == [
        f"{tmp_path / 'specs.yaml'}: document 2 (Container/shop): metadata.name: duplicate name: Container/shop is already defined in {tmp_path / 'specs.yaml'} document 0; rename one"
    ]
    assert len(result.resources) == 1


def test_policy_selecting_nothing_is_a_warning(tmp_path: Path) -> None:
    result = load_and_check(
        [write(tmp_path, GOOD.replace("matchLabels: {app: shop}", "matchLabels: {app: nope}"))],
        default_catalogue(),
    )
    assert result.errors == []
    assert len(result.warnings) == 1 and "selects no resource" in str(result.warnings[0])


def test_one_bad_document_never_stops_the_others(tmp_path: Path) -> None:
    bad = "apiVersion: driftmend.dev/v1alpha1\nkind: Container\nmetadata: {name: Bad_Name}\nspec: {process: {command: []}}\n"
    result = load_and_check([write(tmp_path, bad + "---\n" + GOOD)], default_catalogue())
    assert len(result.errors) == 2  # bad name, empty command
    assert {d.doc.key for d in result.documents} == {"Container/shop", "HealingPolicy/crash"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "just a string",
        "- a\n- list",
        "42",
        "apiVersion: v1\n",
        "kind: Container\n",
        "\x00\x01",
        "spec: [1, 2]\nkind: HealingPolicy",
    ],
)
def test_garbage_never_raises(tmp_path: Path, text: str) -> None:
    result = load_and_check([write(tmp_path, text)], default_catalogue())
    assert all(str(i) for i in result.issues)
    assert result.documents == []


def test_missing_path_is_an_issue(tmp_path: Path) -> None:
    result = load_paths([tmp_path / "nope.yaml"])
    assert [str(e) for e in result.errors] == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory"
    ]


def test_directories_are_searched(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", GOOD, "a.yml")
    (tmp_path / "README.md").write_text("not yaml")
    assert len(load_paths([tmp_path]).documents) == 2


def test_examples_are_valid() -> None:
    result = load_and_check([REPO / "manifests" / "examples"], default_catalogue())
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.warnings == []
    assert any(isinstance(d.doc, HealingPolicy) for d in result.documents)


def test_checked_in_crds_are_current() -> None:
    for name, text in crds_yaml().items():
        path = REPO / "crds" / name
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text() == text, f"{path} is stale: run `make crds`"


def test_crds_are_structural() -> None:
    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node and "anyOf" not in node and "const" not in node, path
            if "properties" in node:
                assert node.get("type") == "object", path
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}[{i}]")

    for text in crds_yaml().values():
        crd = yaml.safe_load(text)
        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "schema")


def test_examples_validate_against_the_crd_schemas() -> None:
    """What `kubectl apply` would check: every example document against its CRD's schema."""
    import jsonschema

    schemas = {
        crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for crd in (yaml.safe_load(t) for t in crds_yaml().values())
    }
    checked = 0
    for path in sorted((REPO / "manifests" / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                jsonschema.validate(doc, schemas[doc["kind"]])
                checked += 1
    assert checked >= 10
    bad = {
        "apiVersion": "driftmend.dev/v1alpha1",
        "kind": "Container",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two"},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["Container"])


def test_external_mcp_tools_are_accepted_by_name(tmp_path: Path) -> None:
    text = GOOD.replace("tool: container_restart", "tool: external.postgres-mcp/explain_query")
    result = load_and_check([write(tmp_path, text)], default_catalogue())
    assert result.errors == []
    assert result.policies[0].spec.allowed_tools() == {"external.postgres-mcp/explain_query"}
