"""What the pages hand their script: the formatting rules, and the pieces of page it
fetches rendered (a live tile, a running fix's parts) instead of building markup."""

from __future__ import annotations

import json
import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from driftmend.dashboard.views import fix_label
from driftmend.formatting import UNITS, rules, signal_units
from driftmend.store import Store
from tests.unit.test_dashboard_api import BASE, XSS, FakeController, make_app, seed

STATIC = Path(__file__).parents[2] / "driftmend/dashboard/static"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, int]]]:
    with Store(tmp_path / "store.db") as store:
        ids = seed(store, time.time())
        with TestClient(make_app(store, FakeController(store)), base_url=BASE) as c:
            yield c, ids


def page_data(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    assert found is not None
    data: dict[str, object] = json.loads(found.group(1))
    return data


def test_every_page_hands_the_script_the_formatting_table(
    client: tuple[TestClient, dict[str, int]],
) -> None:
    c, ids = client
    for path in ("/", "/resources", "/logs", "/llm", "/fixes", f"/fixes/{ids['fixed']}"):
        data = page_data(c.get(path).text)
        assert data["formatting"] == rules(), path
        assert data["units"] == signal_units(), path
    handed = page_data(c.get("/").text)["formatting"]
    assert isinstance(handed, dict)
    assert handed["units"] == {
        unit: [
            {
                "suffix": s.suffix,
                "below": s.below,
                "multiply": s.multiply,
                "divide": s.divide,
                "decimals": s.decimals,
                "significant": s.significant,
            }
            for s in steps
        ]
        for unit, steps in UNITS.items()
    }


def test_pages_load_the_script_as_modules_from_static(
    client: tuple[TestClient, dict[str, int]],
) -> None:
    c, _ = client
    html = c.get("/").text
    assert '<script type="module" src="/static/js/main.js"></script>' in html
    main = c.get("/static/js/main.js")
    assert main.status_code == 200 and "javascript" in main.headers["content-type"]
    imported = set(re.findall(r'from "\./([\w-]+\.js)"|import "\./([\w-]+\.js)"', main.text))
    for name in {a or b for a, b in imported}:
        assert c.get(f"/static/js/{name}").status_code == 200, name
    assert "script-src 'self'" in main.headers["content-security-policy"]


def test_no_module_keeps_a_rule_of_its_own() -> None:
    script = "\n".join(p.read_text(encoding="utf-8") for p in (STATIC / "js").glob("*.js"))
    for copy in ('"Needs operator"', '"KiB"', '"MiB"', "toFixed(1)} %"):
        assert copy not in script, copy


def test_a_live_tile_is_rendered_by_the_server(client: tuple[TestClient, dict[str, int]]) -> None:
    c, _ = client
    html = c.get("/fragments/tiles/RedisCache.cache").text
    assert html.lstrip().startswith("<template data-fragments>")
    assert 'data-resource="RedisCache.cache"' in html and 'data-kind="RedisCache"' in html
    assert html.count("data-chart ") == 2 and html.count("data-strip ") == 1
    assert "Needs operator" in html and "80.0 %" in html
    shop = c.get("/fragments/tiles/Container.shop").text
    assert XSS not in shop and "&lt;script&gt;" in shop  # the message, escaped
    assert c.get("/fragments/tiles/Container.nope").status_code == 404
    assert c.get("/fragments/tiles/not-an-id").status_code == 404


def test_a_fix_page_and_its_fragments_carry_the_same_pieces(
    client: tuple[TestClient, dict[str, int]],
) -> None:
    c, ids = client
    names = re.compile(r'data-fragment="([\w-]+)"')
    page = c.get(f"/fixes/{ids['failed']}").text
    parts = c.get(f"/fragments/fixes/{ids['failed']}").text
    assert (
        names.findall(page)
        == names.findall(parts)
        == [
            "fix-state",
            "fix-message",
            "fix-actions",
            "fix-timeline",
            "fix-steps",
            "fix-signals",
        ]
    )
    assert "not healthy within 30s" in parts and "data-retry" in parts
    assert c.get("/fragments/fixes/999").status_code == 404


def test_fragments_pass_the_read_gate(tmp_path: Path) -> None:
    with Store(tmp_path / "store.db") as store:
        seed(store, time.time())
        app = make_app(store, FakeController(store), host="0.0.0.0")
        with TestClient(app, base_url=BASE) as c:
            assert c.get("/fragments/tiles/Container.shop").status_code == 401


def test_the_package_ships_every_template_and_static_file() -> None:
    root = STATIC.parent
    project = tomllib.loads((root.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["driftmend.dashboard"]
    shipped = {p for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    wanted = {p for d in ("static", "templates") for p in (root / d).rglob("*") if p.is_file()}
    assert wanted - shipped == set()


def test_a_last_fix_reads_in_the_servers_words() -> None:
    assert fix_label({"id": 3, "outcome": "fixed", "time_to_recover": 2.1}) == "#3 fixed in 2.10 s"
    assert fix_label({"id": 4, "outcome": None, "status": "running"}) == "#4 running"
