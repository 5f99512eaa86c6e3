"""Where a runtime keeps a Container's files: one directory per key, and the move from the
older ``<namespace>-<name>`` form, which gave ``shop-prod/db`` and ``shop/prod-db`` one
directory. Plain files in a temporary directory; no runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftmend.drivers.state_files import legacy_dirname, resource_dir
from driftmend.keys import ResourceKey

A = ResourceKey.of("Container", "db", "shop-prod")
B = ResourceKey.of("Container", "prod-db", "shop")


def legacy(root: Path, key: ResourceKey, recorded: str | None) -> Path:
    """A directory as an older controller left it, its state.json naming ``recorded``."""
    directory = root / legacy_dirname(key)
    directory.mkdir(parents=True)
    (directory / "replica-0.log").write_text("old output\n")
    if recorded is not None:
        (directory / "state.json").write_text(json.dumps({"key": recorded, "created": [0]}))
    return directory


def test_keys_that_shared_a_directory_get_one_each(tmp_path: Path) -> None:
    assert legacy_dirname(A) == legacy_dirname(B)  # the bug
    assert resource_dir(tmp_path, A) != resource_dir(tmp_path, B)
    assert resource_dir(tmp_path, A) == tmp_path / "shop-prod.db"


def test_a_legacy_directory_moves_to_the_key_its_state_names(tmp_path: Path) -> None:
    old = legacy(tmp_path, A, str(A))
    assert resource_dir(tmp_path, B) == tmp_path / B.dirname  # not B's: left alone
    assert not (tmp_path / B.dirname).exists() and not old.is_symlink()

    moved = resource_dir(tmp_path, A)
    assert moved == tmp_path / "shop-prod.db"
    assert json.loads((moved / "state.json").read_text())["key"] == str(A)
    assert (moved / "replica-0.log").read_text() == "old output\n"
    # The old path still leads there, for processes that were handed it.
    assert old.is_symlink() and old.resolve() == moved.resolve()
    assert resource_dir(tmp_path, A) == moved  # once only


def test_without_a_state_file_only_an_unambiguous_name_moves(tmp_path: Path) -> None:
    legacy(tmp_path, B, None)  # "shop-prod-db": shop-prod/db's or shop/prod-db's?
    assert not (resource_dir(tmp_path, A)).exists()
    assert not (resource_dir(tmp_path, B)).exists()

    web = ResourceKey.of("Container", "web")
    legacy(tmp_path, web, None)  # "default-web": only default/web's
    assert (resource_dir(tmp_path, web) / "replica-0.log").exists()


def test_a_directory_of_the_new_form_wins(tmp_path: Path) -> None:
    web = ResourceKey.of("Container", "web")
    old = legacy(tmp_path, web, str(web))
    (tmp_path / web.dirname).mkdir()
    assert resource_dir(tmp_path, web) == tmp_path / "default.web"
    assert old.is_dir() and not old.is_symlink()  # not moved over the newer one


@pytest.mark.parametrize("bad", ["{not json", json.dumps(["a list"])])
def test_an_unreadable_state_file_counts_as_none(tmp_path: Path, bad: str) -> None:
    web = ResourceKey.of("Container", "web")
    old = legacy(tmp_path, web, None)
    (old / "state.json").write_text(bad)
    assert (resource_dir(tmp_path, web) / "replica-0.log").exists()
