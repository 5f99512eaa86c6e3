"""Spec models and loading: every kind of bad input gives one clear line, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from driftmend.spec import HealingPolicy, LoadResult, crds_yaml, load_paths
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check

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
    return [
        str(i) for i in load_paths([write(tmp_path, text)], tool_check(default_catalogue())).issues
    ]


def test_good_documents_load_with_parsed_durations(tmp_path: Path) -> None:
    result = load_paths([write(tmp_path, GOOD)], tool_check(default_catalogue()))
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
    assert any(
        "spec.rules[0].when[0].signal: redis.up is a signal of RedisCache, not of Container"
        " (`driftmend signals Container` lists them)" in m
        for m in out
    ), out


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
    result = load_paths([write(tmp_path, text)], tool_check(default_catalogue()))
    assert [str(e) for e in result.errors] == [
        f"{tmp_path / 'specs.yaml'}: document 2 (Container/shop): metadata.name: duplicate name: Container/shop is already defined in {tmp_path / 'specs.yaml'} document 0; rename one"
    ]
    assert len(result.resources) == 1


def test_policy_selecting_nothing_is_a_warning(tmp_path: Path) -> None:
    result = load_paths(
        [write(tmp_path, GOOD.replace("matchLabels: {app: shop}", "matchLabels: {app: nope}"))],
        tool_check(default_catalogue()),
    )
    assert result.errors == []
    assert len(result.warnings) == 1 and "selects no resource" in str(result.warnings[0])


def test_one_bad_document_never_stops_the_others(tmp_path: Path) -> None:
    bad = "apiVersion: driftmend.dev/v1alpha1\nkind: Container\nmetadata: {name: Bad_Name}\nspec: {process: {command: []}}\n"
    result = load_paths([write(tmp_path, bad + "---\n" + GOOD)], tool_check(default_catalogue()))
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
    path = write(tmp_path, text)
    result = load_paths([path], tool_check(default_catalogue()))
    assert result.documents == []
    assert result.issues, "garbage must be reported, not silently accepted"
    for issue in result.issues:
        line = str(issue)
        assert issue.file == str(path) and str(path) in line, line
        assert "\n" not in line and issue.message, line


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
    result = load_paths([REPO / "manifests" / "examples"], tool_check(default_catalogue()))
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.warnings == []
    assert any(isinstance(d.doc, HealingPolicy) for d in result.documents)


def test_checked_in_crds_are_current() -> None:
    for name, text in crds_yaml().items():
        path = REPO / "crds" / name
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text() == text, f"{path} is stale: run `make crds`"


def test_the_crds_kustomization_lists_every_crd() -> None:
    """manifests/kubernetes takes the CRDs through crds/Kustomization: none may be missing."""
    kustomization = yaml.safe_load((REPO / "crds" / "Kustomization").read_text())
    assert sorted(kustomization["resources"]) == sorted(crds_yaml())


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


def as_api_server(node: Any) -> Any:
    """A CRD schema as plain JSON Schema, with the API server's meaning of its extensions.

    ``x-kubernetes-int-or-string`` admits an integer or a string (jsonschema would ignore
    the keyword and admit anything); ``nullable`` admits null as well; OpenAPI 3.0's boolean
    ``exclusiveMinimum``/``exclusiveMaximum`` turn their bound exclusive.
    """
    if isinstance(node, list):
        return [as_api_server(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_api_server(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out["type"] = ["integer", "string"]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(exclusive) is True:
            out[exclusive] = out.pop(bound)
    return out


def crd_schemas() -> dict[str, Any]:
    """Kind -> its CRD's openAPIV3Schema, read as the API server reads it."""
    return {
        crd["spec"]["names"]["kind"]: as_api_server(
            crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        )
        for crd in (yaml.safe_load(t) for t in crds_yaml().values())
    }


def test_examples_validate_against_the_crd_schemas() -> None:
    """What `kubectl apply` would check: every example document against its CRD's schema."""
    import jsonschema

    schemas = crd_schemas()
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


def schema_nodes(node: Any, path: str = "schema") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node of a CRD schema (not the ``properties`` maps), with its path."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for name, child in node.get("properties", {}).items():
            found += schema_nodes(child, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += schema_nodes(node[key], f"{path}[{key}]")
    return found


def crd_documents() -> list[dict[str, Any]]:
    """The generated CRDs, parsed."""
    return [yaml.safe_load(t) for t in crds_yaml().values()]


def test_crds_speak_openapi_3_0_not_json_schema_2020() -> None:
    """What a real API server refuses a CRD for (it accepted none of these before)."""
    known_formats = {"date-time", "date", "uuid", "email", "hostname", "ipv4", "ipv6", "uri"}
    checked = 0
    for crd in crd_documents():
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in schema_nodes(root):
            checked += 1
            for exclusive, bound in (
                ("exclusiveMinimum", "minimum"),
                ("exclusiveMaximum", "maximum"),
            ):
                if exclusive in node:
                    assert node[exclusive] is True and bound in node, (path, node)
            assert node.get("format", "date-time") in known_formats, path
            assert node.get("default", 0) not in ("", None), path  # 1.20 reads "" as null
            assert None not in node.get("enum", []), path  # kubectl refuses a null enum value
            if "properties" in node:
                assert "additionalProperties" not in node, path
            untyped = "type" not in node
            extensions = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")
            assert not untyped or any(node.get(e) for e in extensions), path
    assert checked > 200


def test_crd_defaults_validate_against_their_schema() -> None:
    """The API server checks every default against its own schema and refuses the CRD."""
    import jsonschema

    defaults = 0
    for crd in crd_documents():
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in schema_nodes(root):
            if "default" in node:
                defaults += 1
                schema = as_api_server({k: v for k, v in node.items() if k != "default"})
                errors = [
                    e.message
                    for e in jsonschema.Draft202012Validator(schema).iter_errors(node["default"])
                ]
                assert errors == [], (path, errors)
    assert defaults > 50
    with pytest.raises(jsonschema.ValidationError):  # the check itself can fail
        jsonschema.validate("", as_api_server({"type": "integer", "minimum": 1}))


STATUS = {
    "observedGeneration": 3,
    "health": "healthy",
    "message": "one line, as the dashboard row says it",
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "InSync",
            "message": "...",
            "lastTransitionTime": "2026-12-05T12:00:00Z",
            "observedGeneration": 3,
        }
    ],
    "lastFix": {
        "id": 12,
        "at": "2026-12-05T12:00:00Z",
        "rule": "restart-on-crash",
        "outcome": "fixed",
        "secondsToRecover": 0.54,
        "summary": "container_restart: the app crashed",
    },
    "pendingPlan": {"id": 4, "since": "2026-12-05T12:00:00Z", "summary": "..."},
}


def test_crds_declare_the_status_the_operator_writes() -> None:
    import jsonschema

    from driftmend.spec.crds import PolicyStatus, ResourceStatus

    schemas = crd_schemas()
    for kind in ("Container", "PostgresDatabase", "RedisCache"):
        status = schemas[kind]["properties"]["status"]
        jsonschema.validate(STATUS, status)
        for bad in ({"health": "great"}, {"conditions": [{"type": "Ready"}]}):
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate({**STATUS, **bad}, status)
    policy = {"observedGeneration": 1, "matchedResources": 3, "lastFix": STATUS["lastFix"],
              "conditions": [{**STATUS["conditions"][0], "reason": "Accepted"}]}  # fmt: skip
    jsonschema.validate(policy, schemas["HealingPolicy"]["properties"]["status"])
    # The models the operator can build its patches from accept the same shapes.
    assert ResourceStatus.model_validate(STATUS).last_fix is not None
    assert PolicyStatus.model_validate(policy).matched_resources == 3


def test_crds_have_printer_columns_and_a_category() -> None:
    columns = {}
    for crd in crd_documents():
        assert crd["spec"]["names"]["categories"] == ["driftmend"]
        version = crd["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        columns[crd["spec"]["names"]["kind"]] = {
            c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]
        }
    assert (
        columns["Container"]
        == columns["RedisCache"]
        == columns["PostgresDatabase"]
        == {
            "Health": ("string", ".status.health"),
            "Last Fix": ("string", ".status.lastFix.outcome"),
            "Rule": ("string", ".status.lastFix.rule"),
            "Fixed": ("date", ".status.lastFix.at"),
            "Age": ("date", ".metadata.creationTimestamp"),
        }
    )
    assert list(columns["HealingPolicy"]) == ["Resources", "Last Fix", "Age"]
    assert columns["HealingPolicy"]["Resources"] == ("integer", ".status.matchedResources")


def test_external_mcp_tools_are_accepted_by_name(tmp_path: Path) -> None:
    text = GOOD.replace("tool: container_restart", "tool: external.postgres-mcp/explain_query")
    result = load_paths([write(tmp_path, text)], tool_check(default_catalogue()))
    assert result.errors == []
    assert result.policies[0].spec.allowed_tools() == {"external.postgres-mcp/explain_query"}


# --- bad input of every shape: one line each, never a traceback, nothing else lost --------

CONTAINER = """apiVersion: driftmend.dev/v1alpha1
kind: Container
metadata: {name: %s}
spec: {process: {command: [x]}}
"""


def lines(result: LoadResult) -> list[str]:
    out = [str(i) for i in result.issues]
    assert all("\n" not in line for line in out), out
    return out


@pytest.mark.parametrize("kind", ["[Container]", "{a: 1}", "42", "true"])
def test_a_kind_that_is_not_a_string_is_an_issue(tmp_path: Path, kind: str) -> None:
    text = CONTAINER.replace("kind: Container", f"kind: {kind}") % "a"
    result = load_paths(
        [write(tmp_path, text + "---\n" + CONTAINER % "b")], tool_check(default_catalogue())
    )
    out = lines(result)
    assert (
        len(out) == 1 and ": document 0 (?/a): kind: must be a string, one of Container" in out[0]
    ), out
    assert [d.doc.key for d in result.documents] == ["Container/b"]


def test_a_misspelt_kind_gets_the_closest(tmp_path: Path) -> None:
    out = messages(tmp_path, CONTAINER.replace("kind: Container", "kind: Contaner") % "a")
    assert out[0].endswith("; did you mean Container?"), out


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_an_issue_with_its_line(tmp_path: Path, depth: int) -> None:
    deep = CONTAINER.replace("{process:", "{env: " + "[" * depth + "]" * depth + ", process:")
    result = load_paths(
        [write(tmp_path, CONTAINER % "a" + "---\n" + deep % "b")], tool_check(default_catalogue())
    )
    out = lines(result)
    assert len(out) == 1, out
    assert "document 1 (Container/b): YAML: nested deeper than 64 levels at line 9" in out[0]
    assert [d.doc.key for d in result.documents] == ["Container/a"]


def test_recursive_and_exploding_aliases_are_issues(tmp_path: Path) -> None:
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{b}: &{b} [{', '.join([f'*{a}'] * 10)}]\n" for a, b in zip("abcde", "bcdef", strict=True)
    )
    text = laughs + "kind: Container\n---\nr: &r [1, *r]\nkind: Container\n"
    out = lines(load_paths([write(tmp_path, text)], tool_check(default_catalogue())))
    assert len(out) == 2, out
    assert "document 0 (Container/?): YAML: the document expands to more than 100000" in out[0]
    assert "document 1 (Container/?): YAML: an alias refers to a value that contains it" in out[1]


def test_duplicate_keys_are_refused_with_their_lines(tmp_path: Path) -> None:
    text = CONTAINER.replace("{name: %s}", "{name: a, name: b}") + "---\n" + CONTAINER % "c"
    result = load_paths([write(tmp_path, text)], tool_check(default_catalogue()))
    assert lines(result) == [
        f"{tmp_path / 'specs.yaml'}: document 0 (Container/a): YAML: duplicate key 'name' "
        "at line 3, column 21 (first at line 3): keep one of them"
    ]
    assert [d.doc.key for d in result.documents] == ["Container/c"]


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = "base: &base {name: a}\n" + CONTAINER.replace("{name: %s}", "{<<: *base, name: b}")
    result = load_paths(
        [write(tmp_path, text.replace("base: &base", "x-base: &base"))],
        tool_check(default_catalogue()),
    )
    # The unknown top-level key is reported, but not as a duplicate of `name`.
    assert not any("duplicate" in line for line in lines(result))


def test_a_control_character_is_one_line_with_its_position(tmp_path: Path) -> None:
    text = CONTAINER % "a" + "---\n" + (CONTAINER % "b").replace("[x]", "[x\x01]")
    result = load_paths([write(tmp_path, text)], tool_check(default_catalogue()))
    assert lines(result) == [
        f"{tmp_path / 'specs.yaml'}: document 1 (Container/b): YAML: character U+0001 at line 9, "
        "column 29 is not allowed (a control character): remove it"
    ]
    assert [d.doc.key for d in result.documents] == ["Container/a"]


def test_a_name_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    out = lines(
        load_paths([write(tmp_path, CONTAINER % '"a\\nb"')], tool_check(default_catalogue()))
    )
    assert (
        len(out) == 1 and "(Container/a\\nb): metadata.name: 'a\\nb' is not a valid name" in out[0]
    )


def test_a_syntax_error_keeps_the_documents_around_it(tmp_path: Path) -> None:
    broken = (CONTAINER % "b").replace("[x]}}", "[x]}")
    text = CONTAINER % "a" + "---\n" + broken + "---\n" + CONTAINER % "c"
    result = load_paths([write(tmp_path, text)], tool_check(default_catalogue()))
    out = lines(result)
    assert len(out) == 1, out
    assert out[0].startswith(
        f"{tmp_path / 'specs.yaml'}: document 1 (Container/b): YAML syntax error at line 10"
    )
    assert [(d.doc.key, d.index) for d in result.documents] == [
        ("Container/a", 0),
        ("Container/c", 2),
    ]


def test_an_empty_file_is_a_warning(tmp_path: Path) -> None:
    result = load_paths(
        [write(tmp_path, "# only a comment\n---\n")], tool_check(default_catalogue())
    )
    assert result.errors == []
    assert lines(result) == [
        f"warning: {tmp_path / 'specs.yaml'}: no documents: the file is empty or holds only comments"
    ]


def test_a_directory_without_yaml_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("apiVersion: nope")
    result = load_paths([tmp_path])
    assert result.errors == []
    assert lines(result) == [
        f"warning: {tmp_path}: no .yaml or .yml file in this directory: nothing to check"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("port: 8000", "port: eight-thousand"),
            "spec.port: expected a whole number, got 'eight-thousand'",
        ),
        (("port: 8000", "prot: 8000"), "spec.prot: unknown field: did you mean port?"),
        (
            ("port: 8000", "zzz: 8000"),
            "spec.zzz: unknown field: remove it (allowed here: runtime, process, docker",
        ),
        (
            ("{name: shop,", "{name: Shop_1,"),
            "metadata.name: 'Shop_1' is not a valid name: use lowercase letters",
        ),
        (
            ("labels: {app: shop}", "labels: {app: 1}"),
            "metadata.labels.app: expected a string, got 1: put it in quotes",
        ),
        (
            ("process: {command: [python3, -m, http.server]}", "runtime: dokcer"),
            "spec.runtime: must be one of process, docker, kubernetes; got 'dokcer'; did you mean "
            "docker?",
        ),
        (
            ("process: {command: [python3, -m, http.server]}", "process: {}"),
            "spec.process.command: required field is missing: add command",
        ),
        (
            ("process: {command: [python3, -m, http.server]}", "process: {command: []}"),
            "spec.process.command: must not be empty",
        ),
        (
            ("  port: 8000", "  port: 8000\n  replicas: 9"),
            "spec.replicas: replicas (9) is above maxReplicas (8)",
        ),
        (
            ("  port: 8000", "  port: 8000\n  docker: {image: x}"),
            "spec.docker: docker is set but runtime is process",
        ),
        (
            ("value: false, for: 2s", "value: maybe, for: 2s"),
            "spec.rules[0].when[0].value: expected a flag (true or false) or a number, got 'maybe'",
        ),
        (
            ("value: false, for: 2s", "value: .nan, for: 2s"),
            "spec.rules[0].when[0].value: expected a flag (true or false) or a finite number, got nan",
        ),
        (
            ("value: false, for: 2s", "value: 3, for: 2s"),
            "spec.rules[0].when[0].value: container.running is a flag",
        ),
        (
            ("value: false, for: 2s", "operator: '>', value: false, for: 2s"),
            "spec.rules[0].when[0].operator: container.running is a flag: use == or !=, not >",
        ),
        (
            ("verify: {timeout: 1m}", "verify: {timeout: 1m, interval: 0s}"),
            "spec.rules[0].verify.interval: must be more than 0",
        ),
        (
            ("verify: {timeout: 1m}", "verify: {timeout: .inf}"),
            "spec.rules[0].verify.timeout: inf is not a duration",
        ),
        (("cooldown: 500ms", "cooldown: .nan"), "spec.rules[0].cooldown: nan is not a duration"),
        (
            ("for: 2s", "for: 0.5"),
            "spec.rules[0].when[0].for: 0.5: a bare number means whole seconds",
        ),
        (
            (
                "apiVersion: driftmend.dev/v1alpha1\nkind: Container",
                "apiVersion: v1\nkind: Container",
            ),
            "apiVersion: apiVersion must be driftmend.dev/v1alpha1, got 'v1'",
        ),
    ],
)
def test_each_error_is_one_line_with_its_path_and_fix(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    assert change[0] in GOOD
    out = messages(tmp_path, GOOD.replace(*change, 1))
    matching = [line for line in out if expected in line]
    assert len(matching) == 1, out
    assert all("\n" not in line for line in out)


def test_duplicate_rule_names_point_at_the_rule(tmp_path: Path) -> None:
    rule = GOOD[GOOD.index("    - name: restart") :]
    out = messages(tmp_path, GOOD + rule)
    assert [line.split(": ", 2)[1:] for line in out] == [
        [
            "document 1 (HealingPolicy/crash)",
            "spec.rules[1].name: duplicate rule name 'restart': give each rule of a policy its own name",
        ]
    ], out


def test_an_unknown_signal_gets_the_closest_not_the_catalogue(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("container.running", "container.runing"))
    assert len(out) == 1
    assert "did you mean container.running" in out[0] and "`driftmend signals`" in out[0]
    assert "redis.up" not in out[0]  # not all 27 names


def test_bare_whole_seconds_are_durations(tmp_path: Path) -> None:
    result = load_paths(
        [write(tmp_path, GOOD.replace("for: 2s", "for: 5"))], tool_check(default_catalogue())
    )
    assert result.errors == []
    assert result.policies[0].spec.rules[0].when[0].for_ == 5.0


# --- keys across namespaces --------------------------------------------------------------


def test_same_name_in_two_namespaces_are_two_documents(tmp_path: Path) -> None:
    other = GOOD.replace("metadata: {name: shop,", "metadata: {name: shop, namespace: team-b,")
    other = other.replace("metadata: {name: crash}", "metadata: {name: crash, namespace: team-b}")
    result = load_paths([write(tmp_path, GOOD + "---\n" + other)], tool_check(default_catalogue()))
    assert result.errors == []
    keys = [p.key for p in result.policies]
    assert keys == ["HealingPolicy/crash", "HealingPolicy/team-b/crash"]
    default, team_b = result.policies
    assert [r.key for r in result.resources if default.selects(r)] == ["Container/shop"]
    assert [r.key for r in result.resources if team_b.selects(r)] == ["Container/team-b/shop"]


def test_same_name_in_one_namespace_is_a_duplicate(tmp_path: Path) -> None:
    policy = GOOD.split("---\n")[1].replace("{name: crash}", "{name: crash, namespace: default}")
    result = load_paths([write(tmp_path, GOOD + "---\n" + policy)], tool_check(default_catalogue()))
    assert [str(e).split(": ", 1)[1] for e in result.errors] == [
        f"document 2 (HealingPolicy/crash): metadata.name: duplicate name: HealingPolicy/crash is already defined in {tmp_path / 'specs.yaml'} document 1; rename one"
    ]
    assert len(result.policies) == 1


# --- escalate.allowedTools ---------------------------------------------------------------

ESCALATE = GOOD + "  escalate:\n    allowedTools: [%s]\n"


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (
            "container_restrat",
            "spec.escalate.allowedTools[0]: unknown tool 'container_restrat'; did you mean container_restart? (see `driftmend tools`)",
        ),
        (
            "container_logs, redis_restart",
            "spec.escalate.allowedTools[1]: redis_restart acts on RedisCache, but the policy selects Container; did you mean container_restart?",
        ),
        (
            "external.pg",
            "spec.escalate.allowedTools[0]: 'external.pg' is not an external tool name: write external.<server>/<tool>",
        ),
        ("external./explain", "is not an external tool name"),
    ],
)
def test_allowed_tools_are_checked(tmp_path: Path, tools: str, expected: str) -> None:
    result = load_paths([write(tmp_path, ESCALATE % tools)], tool_check(default_catalogue()))
    out = lines(result)
    assert len(out) == 1 and expected in out[0], out
    assert result.policies == [] and len(result.resources) == 1  # the policy only is dropped


def test_allowed_tools_of_the_kind_and_external_ones_pass(tmp_path: Path) -> None:
    tools = "container_logs, container_restart, external.postgres-mcp/explain_query"
    result = load_paths([write(tmp_path, ESCALATE % tools)], tool_check(default_catalogue()))
    assert result.errors == []
    esc = result.policies[0].spec.escalate
    assert esc is not None and esc.allowed_tools[-1] == "external.postgres-mcp/explain_query"


def test_malformed_external_steps_are_refused(tmp_path: Path) -> None:
    out = messages(tmp_path, GOOD.replace("tool: container_restart", "tool: external.x"))
    assert any(
        "spec.rules[0].do[0].tool: 'external.x' is not an external tool name" in m for m in out
    )


def test_approval_and_escalation_budget_fields(tmp_path: Path) -> None:
    text = GOOD.replace("cooldown: 500ms", "cooldown: 500ms\n      approval: operator")
    text += "  escalate:\n    attempts: {max: 2, window: 30m}\n    cooldown: 5m\n"
    result = load_paths([write(tmp_path, text)], tool_check(default_catalogue()))
    assert result.errors == []
    spec = result.policies[0].spec
    assert spec.rules[0].approval == "operator"
    assert spec.escalate is not None
    assert (spec.escalate.attempts.max, spec.escalate.attempts.window) == (2, 1800.0)
    assert spec.escalate.cooldown == 300.0
    bad = messages(tmp_path, text.replace("approval: operator", "approval: always"))
    assert any(
        "spec.rules[0].approval: must be one of operator, auto; got 'always'" in m for m in bad
    )


# --- the CRDs accept what the models accept -----------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["30s", "500ms", 5, 0, "0s", 0.5, "0.5", "5 s", -1, ".nan", ".inf", "[1]", "1e3", "true"],
)
def test_crd_and_model_agree_on_durations(tmp_path: Path, value: object) -> None:
    import jsonschema

    for before, field in (
        ("for: 2s", "for"),
        ("cooldown: 500ms", "cooldown"),
        ("timeout: 1m", "timeout"),
    ):
        text = GOOD.replace(before, f"{field}: {value}")
        doc = list(yaml.safe_load_all(text))[1]
        model_ok = not load_paths([write(tmp_path, text)], tool_check(default_catalogue())).errors
        try:
            jsonschema.validate(doc, crd_schemas()["HealingPolicy"])
            crd_ok = True
        except jsonschema.ValidationError:
            crd_ok = False
        assert model_ok == crd_ok, (field, value, model_ok, crd_ok)


@pytest.mark.parametrize("value", ["512Mi", "1G", 1048576, 1.5, "1.5Gi", "lots", -1, ".inf"])
def test_crd_and_model_agree_on_sizes(tmp_path: Path, value: object) -> None:
    import jsonschema

    text = GOOD.replace("  port: 8000", f"  port: 8000\n  limits: {{memory: {value}}}")
    doc = next(yaml.safe_load_all(text))
    model_ok = not load_paths([write(tmp_path, text)], tool_check(default_catalogue())).errors
    try:
        jsonschema.validate(doc, crd_schemas()["Container"])
        crd_ok = True
    except jsonschema.ValidationError:
        crd_ok = False
    assert model_ok == crd_ok, (value, model_ok, crd_ok)


def test_the_old_on_exhausted_value_names_the_two_new_ones(tmp_path: Path) -> None:
    text = GOOD.replace("  rules:\n", "  onExhausted: needs-operator\n  rules:\n")
    out = messages(tmp_path, text)
    assert any(
        "specs.yaml" in m and "spec.onExhausted" in m and "`retry`" in m and "`hold`" in m
        for m in out
    ), out


def test_a_backoff_whose_max_is_below_initial_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  rules:\n", "  backoff: {initial: 1m, max: 10s}\n  rules:\n")
    out = messages(tmp_path, text)
    assert any("spec.backoff.max" in m and "make max at least initial" in m for m in out), out


def test_backoff_and_on_exhausted_default_to_the_kubelets_retry(tmp_path: Path) -> None:
    policy = load_paths([write(tmp_path, GOOD)]).policies[0]
    assert policy.spec.on_exhausted == "retry"
    assert (policy.spec.backoff.initial, policy.spec.backoff.max) == (10.0, 300.0)
