"""The one spec loader: ``load_paths`` with a catalogue check, and with ``last_good``."""

from __future__ import annotations

from pathlib import Path

from driftmend.spec import Loaded, SpecIssue, load_paths
from driftmend.tools.catalogue import default_catalogue
from driftmend.validate import tool_check
from tests.unit.test_spec import GOOD

OTHER = GOOD.replace("name: shop", "name: cart").replace("app: shop", "app: cart")
OTHER = OTHER.replace("metadata: {name: crash}", "metadata: {name: cart-crash}")


def test_a_check_that_refuses_a_policy_keeps_every_other_document(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "b.yaml"
    bad.write_text(OTHER.replace("tool: container_restart", "tool: container_restrat"))
    result = load_paths([tmp_path], tool_check(default_catalogue()))
    assert [str(e) for e in result.errors] == [
        f"{bad}: document 1 (HealingPolicy/cart-crash): spec.rules[0].do[0].tool: unknown tool "
        "'container_restrat'; did you mean container_restart? (see `driftmend tools`)"
    ]
    assert [d.doc.key for d in result.documents] == [
        "Container/shop",
        "HealingPolicy/crash",
        "Container/cart",
    ]


def test_any_check_may_refuse_any_kind_and_warnings_refuse_nothing(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD + "---\n" + OTHER)

    def check(loaded: Loaded) -> list[SpecIssue]:
        doc = loaded.doc
        if doc.key == "Container/cart":
            return [SpecIssue(loaded.file, loaded.index, doc.key, "metadata.name", "refused")]
        if doc.key == "Container/shop":
            return [
                SpecIssue(loaded.file, loaded.index, doc.key, "spec", "noted", severity="warning")
            ]
        return []

    result = load_paths([tmp_path], check)
    assert [(i.field, i.message, i.severity) for i in result.issues[:2]] == [
        ("spec", "noted", "warning"),
        ("metadata.name", "refused", "error"),
    ]
    assert "Container/shop" in {d.doc.key for d in result.documents}
    assert "Container/cart" not in {d.doc.key for d in result.documents}


def test_without_a_check_the_tools_are_not_looked_at(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD.replace("tool: container_restart", "tool: nope"))
    assert load_paths([tmp_path]).errors == []


def test_last_good_keeps_a_broken_file_and_forgets_a_deleted_one(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text(OTHER)
    check = tool_check(default_catalogue())
    last_good: dict[str, list[Loaded]] = {}
    assert len(load_paths([tmp_path], check, last_good=last_good).documents) == 4

    # A tool typo is an error of the file like a YAML one: its last valid documents stay.
    b.write_text(OTHER.replace("tool: container_restart", "tool: container_restrat"))
    result = load_paths([tmp_path], check, last_good=last_good)
    assert len(result.documents) == 4
    assert [i.field for i in result.errors] == ["spec.rules[0].do[0].tool"]
    assert any(
        i.file == str(b) and "keeping this file's last valid documents" in i.message
        for i in result.warnings
    )

    b.unlink()
    result = load_paths([tmp_path], check, last_good=last_good)
    assert [d.doc.key for d in result.documents] == ["Container/shop", "HealingPolicy/crash"]
    assert set(last_good) == {str(a)}
