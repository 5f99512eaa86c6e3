"""ResourceKey: the one place a resource key is built, parsed and turned into URL and dir names."""

from __future__ import annotations

import pytest

from driftmend.keys import ResourceKey
from driftmend.model import LlmDecision, PendingStatus, ShadowAgreement


@pytest.mark.parametrize(
    ("text", "kind", "namespace", "name"),
    [
        ("Container/shop", "Container", "default", "shop"),
        ("Container/prod/shop", "Container", "prod", "shop"),
        ("PostgresDatabase/db-1", "PostgresDatabase", "default", "db-1"),
    ],
)
def test_parse_and_str_round_trip(text: str, kind: str, namespace: str, name: str) -> None:
    key = ResourceKey.parse(text)
    assert (key.kind, key.namespace, key.name) == (kind, namespace, name)
    assert str(key) == text


def test_the_default_namespace_is_left_out_of_the_wire_form() -> None:
    assert str(ResourceKey.of("Container", "shop")) == "Container/shop"
    assert str(ResourceKey.of("Container", "shop", "default")) == "Container/shop"
    assert str(ResourceKey.of("Container", "shop", "prod")) == "Container/prod/shop"


@pytest.mark.parametrize(
    "text", ["", "Container", "Container/", "/shop", "Container/Shop", "Container/a/b/c", "9x/a"]
)
def test_parse_refuses_what_is_not_a_key_and_says_what_one_looks_like(text: str) -> None:
    with pytest.raises(ValueError, match="Kind/name or Kind/namespace/name"):
        ResourceKey.parse(text)
    assert ResourceKey.find(text) is None


def test_url_id_maps_back_to_the_same_key() -> None:
    for text in ("Container/shop", "Container/prod/shop"):
        key = ResourceKey.parse(text)
        assert "/" not in key.url_id
        assert ResourceKey.find(key.url_id) == key
        assert ResourceKey.find(text) == key


def test_directory_names_of_distinct_keys_never_collide() -> None:
    # The bug this type fixes: "{namespace}-{name}" gave both of these "shop-prod-db".
    a = ResourceKey.of("Container", "db", "shop-prod")
    b = ResourceKey.of("Container", "prod-db", "shop")
    assert a.dirname != b.dirname
    assert a.dirname == "shop-prod.db" and b.dirname == "shop.prod-db"


def test_keys_are_hashable_and_ordered() -> None:
    keys = {ResourceKey.parse("Container/b"), ResourceKey.parse("Container/a")}
    assert [str(k) for k in sorted(keys)] == ["Container/a", "Container/b"]


def test_the_vocabulary_of_llm_decisions_lives_in_the_model() -> None:
    assert LlmDecision("rejected").badge == "refused"
    assert LlmDecision.ADMITTED.badge == "admitted"
    assert all(d.label for d in LlmDecision)
    assert PendingStatus("superseded") is PendingStatus.SUPERSEDED
    assert {a.value for a in ShadowAgreement} == {"agrees", "differs", "pending"}
