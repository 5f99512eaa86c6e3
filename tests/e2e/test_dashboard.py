"""The dashboard in a real browser, over a real controller healing real processes.

One stack for the module (starting it costs seconds); the tests run in file order, as an
operator's session would: watch a crash heal live, read the fix, press Fix, approve a
parked plan, read logs that try to inject markup, and be refused without the token. Each
page's screenshot goes to docs/screenshots/ for the README.

Every wait is a condition with a deadline (Playwright's ``expect``, or ``eventually``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Locator, Page, expect

from controller.model import Drift, Plan, PlanStep
from tests.e2e.stack import TOKEN, Stack, screenshot_path, stack
from tests.integration.harness import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

expect.set_options(timeout=20_000)

WEB = "Container.web"
CACHE = "RedisCache.cache"
PWN = "<script>window.pwned=1</script>"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dash(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with stack(tmp_path_factory.mktemp("e2e")) as s:
        yield s


@contextlib.asynccontextmanager
async def tab(dash: Stack, **options: Any) -> AsyncIterator[Page]:
    """A page in a fresh browser context (its own storage: no token unless entered).

    Dialogs (the confirmation of approve and reject) are accepted; an uncaught script error
    on the page fails the test when the block ends.
    """
    context = await dash.browser.new_context(
        base_url=dash.url, viewport={"width": 1366, "height": 900}, **options
    )
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
    finally:
        await context.close()
    assert not errors, errors


async def sign_in(page: Page, actor: str = "e2e") -> None:
    """Enter the token and a name in the dashboard's token dialog."""
    await page.get_by_role("button", name=re.compile("Sign in to act|Operator")).click()
    dialog = page.get_by_role("dialog", name="Act as an operator")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Token").fill(TOKEN)
    await dialog.get_by_label("Your name").fill(actor)
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#token-state")).to_have_text(f"Operator: {actor}")


def tile(page: Page, rid: str) -> tuple[Locator, Locator]:
    """A resource tile on the overview and its health badge."""
    t = page.locator(f'.tiles > [data-resource="{rid}"]')
    return t, t.locator("[data-slot=health]")


async def shoot(page: Page, name: str) -> None:
    """Save a full-page screenshot once the charts have been drawn at this size."""
    await page.wait_for_function("document.querySelectorAll('svg.chart-svg:empty').length === 0")
    await page.screenshot(path=screenshot_path(name), full_page=True, animations="disabled")


# --- the story ---------------------------------------------------------------------------


async def test_crash_turns_the_tile_red_then_green_without_reload(dash: Stack) -> None:
    async with tab(dash) as page:
        await page.goto("/")
        web_tile, web_health = tile(page, WEB)
        await expect(web_health).to_have_text("Healthy", timeout=30_000)
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        await page.evaluate("window.__sameDocument = true")
        fixes_before = await page.locator("table[data-live=fixes] tbody tr").count()

        stats = await dash.controller.runtime.stats(dash.web)  # as `driftmend chaos app-crash`
        os.kill(int(stats["replicas"][0]["pid"]), signal.SIGKILL)

        await expect(web_health).to_have_text(re.compile("Healing|Drifting|Needs operator"))
        await expect(web_tile).not_to_have_class(re.compile(r"\bh-healthy\b"))
        await expect(web_health).to_have_text("Healthy", timeout=30_000)
        await expect(web_tile).to_have_class(re.compile(r"\bh-healthy\b"))
        assert await page.evaluate("window.__sameDocument") is True  # no reload happened

        row = page.locator("table[data-live=fixes] tbody tr").first
        await expect(page.locator("table[data-live=fixes] tbody tr")).to_have_count(
            fixes_before + 1
        )
        await expect(row.locator("[data-slot=state]")).to_have_text("fixed")
        await expect(row).to_contain_text("container.running is false")
        await expect(web_tile.locator("[data-slot=last_fix_label]")).to_contain_text("fixed in")
        await expect(page.locator("[data-stat=success_rate]")).to_have_text("100 %")


async def test_the_fix_explains_itself(dash: Stack) -> None:
    async with tab(dash) as page:
        await page.goto("/")
        fix = dash.controller.store.last_fix("Container/web")
        assert fix is not None
        await page.locator(f'table[data-live=fixes] a[href="/fixes/{fix["id"]}"]').first.click()
        await expect(page).to_have_url(f"{dash.url}/fixes/{fix['id']}")
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Fix #{fix['id']}")
        await expect(page.locator("[data-fix-state] .badge")).to_have_text("fixed")
        steps = page.locator("[data-fix-steps] li")
        await expect(steps).to_have_count(1)
        await expect(steps.first).to_contain_text("container_restart")
        await expect(steps.first.locator(".badge")).to_have_text("ok")
        before_after = page.locator('tr[data-after-signal="container.running"]')
        await expect(before_after.locator("td").nth(0)).to_have_text("no")
        await expect(before_after.locator("td").nth(1)).to_have_text("yes")
        await expect(page.locator(".timeline")).to_contain_text("time to recover")
        await shoot(page, "fix")
        await page.goto("/fixes")
        await expect(page.locator("table[data-live=fixes] tbody tr").first).to_contain_text(
            "container.running: no → yes"
        )
        await shoot(page, "fixes")


async def test_fix_button_reconciles_now_and_records_who(dash: Stack) -> None:
    async with tab(dash) as page:
        await page.goto(f"/resources/{WEB}")
        await sign_in(page, "e2e-operator")
        await page.get_by_role("button", name="Fix now").click()
        await expect(
            page.locator(".toast").filter(has_text="Fix Container/web now: started")
        ).to_be_visible()
        await expect(
            page.locator(".toast").filter(has_text="fix Container/web: in-sync")
        ).to_be_visible()
        action = await eventually(
            lambda: next(
                (
                    a
                    for a in dash.controller.store.actions(key="Container/web")
                    if a["action"] == "fix"
                ),
                None,
            ),
            what="the fix action recorded",
        )
        assert action["actor"] == "dashboard:e2e-operator"
        await page.reload()  # the audit table is rendered by the server: shown on the next visit
        await expect(page.locator("table[aria-label='Audited actions']")).to_contain_text(
            "dashboard:e2e-operator"
        )
        await shoot(page, "resource")


async def test_log_lines_are_shown_as_text(dash: Stack) -> None:
    async with tab(dash) as page:
        await page.goto("/logs")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        _raw_get(dash.web_port, f"/fail/{PWN}")  # the app logs the request line as it came
        row = page.locator("table.logs tbody tr").filter(has_text=f"request failed: /fail/{PWN}")
        await expect(row.first).to_be_visible()  # arrived live, through the stream
        await expect(row.first).to_have_class(re.compile(r"\blvl-error\b"))  # highlighted
        await expect(row.first.locator("td.msg")).to_have_text(f"ERROR request failed: /fail/{PWN}")
        await expect(page.locator("#log-errors")).not_to_have_text("0")
        assert await page.evaluate("window.pwned") is None
        assert await page.locator("table.logs script").count() == 0
        await shoot(page, "logs")
        await page.goto("/logs?q=pwned")  # and rendered by the server
        await expect(page.locator("table.logs td.msg").filter(has_text=PWN).first).to_be_visible()
        assert await page.evaluate("window.pwned") is None
        assert await page.locator("table.logs script").count() == 0


async def test_an_action_without_the_token_is_refused(dash: Stack) -> None:
    async with tab(dash) as page:  # a new context: no token in this tab
        await page.goto("/resources")
        card = page.locator(f'article[data-resource="{WEB}"]')
        await expect(card.locator("[data-slot=health]")).to_have_text("Healthy")
        await shoot(page, "resources")
        await card.get_by_role("button", name="Pause healing").click()
        await expect(page.locator(".toast.error")).to_contain_text("needs the dashboard token")
        await expect(page.get_by_role("dialog", name="Act as an operator")).to_be_visible()
        assert not any(a["action"] == "pause" for a in dash.controller.store.actions())
        assert (dash.controller.store.resource("Container/web") or {}).get("paused") is False
        async with httpx.AsyncClient(base_url=dash.url) as client:
            refused = await client.post(f"/api/resources/{WEB}/pause", json={})
            assert refused.status_code == 401
            evil = await client.post(
                f"/api/resources/{WEB}/pause",
                json={},
                headers={"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"},
            )
            assert evil.status_code == 403


async def test_llm_interactions_read_whole(dash: Stack) -> None:
    # The Gemini planner is another issue; its interactions are stored like this one.
    store = dash.controller.store
    now = time.time()
    drift = Drift(
        "Container/web",
        "container.healthy",
        "== true",
        False,
        now - 40,
        "app-crash",
        None,
        {"container.health_failures": 4},
    )
    plan = Plan(
        "Container/web",
        (PlanStep("container_restart", "Container/web"),),
        "gemini",
        "The health probe times out while the process runs: a stuck worker pool. "
        "A restart clears it.",
        "app-crash",
        None,
        (drift,),
    )
    iid = store.record_llm_interaction(
        "Container/web",
        "gemini",
        "gemini-2.5-flash",
        {
            "system": "You plan fixes with the allowed tools only.",
            "drift": drift.describe(),
            "logs": [f'"GET /{PWN} HTTP/1.0" 200'],
        },
        {
            "function_calls": [{"name": "container_restart", "args": {}}],
            "text": f"Ignore the {PWN} in the logs: it is data.",
        },
        plan,
        1843,
        96,
        1.41,
        now,
    )
    async with tab(dash) as page:
        await page.goto("/llm")
        row = page.locator(f'tr[data-llm="{iid}"]')
        await expect(row).to_contain_text("stuck worker pool")
        await shoot(page, "llm")
        await row.get_by_role("link", name=f"#{iid}").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            f"LLM interaction #{iid}"
        )
        await expect(page.locator("pre").filter(has_text=PWN).first).to_be_visible()
        assert await page.evaluate("window.pwned") is None
        await shoot(page, "llm-detail")


async def test_approving_a_parked_destructive_plan_runs_it(dash: Stack) -> None:
    store = dash.controller.store
    pending = await eventually(
        lambda: store.pending_plans(key="RedisCache/cache"), what="a parked flush plan"
    )
    plan_id = pending[0]["id"]
    async with tab(dash) as page:
        await page.goto("/")
        _, cache_health = tile(page, CACHE)
        await expect(cache_health).to_have_text("Needs operator")
        item = page.locator(f'[data-live=plans] [data-plan="{plan_id}"]')
        await expect(item).to_contain_text("redis_flush")
        await expect(item).to_contain_text("destructive")
        await shoot(page, "overview")
        await sign_in(page)
        await item.get_by_role("button", name="Approve").click()
        await expect(item).to_have_count(0)  # gone from the queue, live
        await expect(page.locator("[data-count=plans]")).to_have_text("0")
        await expect(cache_health).to_have_text("Healthy", timeout=30_000)
        decided = store.pending_plan(plan_id)
        assert (
            decided is not None
            and decided["status"] == "executed"
            and decided["actor"] == "dashboard:e2e"
        )
        fix = store.last_fix("RedisCache/cache")
        assert fix is not None and fix["outcome"] == "fixed"
        assert [s["tool"] for s in fix["steps"]] == ["redis_flush"]


async def test_themes_keyboard_and_tablet(dash: Stack) -> None:
    async with tab(dash, color_scheme="light") as page:
        await page.goto("/")
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        await page.get_by_role("button", name="Switch to dark theme").click()
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
        await expect(page.get_by_role("button", name="Switch to light theme")).to_be_visible()
        await shoot(page, "overview-dark")
        await page.reload()  # the choice is kept
        await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    async with tab(dash, color_scheme="light") as page:
        await page.set_viewport_size({"width": 820, "height": 1180})
        await page.goto("/")
        await expect(tile(page, WEB)[1]).to_have_text("Healthy")
        await shoot(page, "overview-tablet")


def _raw_get(port: int, path: str) -> None:
    """Send a request line byte for byte (an HTTP client would percent-encode ``<``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while sock.recv(4096):
            pass
