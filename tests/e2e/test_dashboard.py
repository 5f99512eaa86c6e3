"""The dashboard in a real browser, over a real controller healing real processes.

One stack for the module (starting it costs seconds); the tests run in file order, as an
operator's session would: watch a crash heal live, read the fix, press Fix on a broken
resource, approve a parked plan, ask the LLM, read logs that try to inject markup, and be
refused without the token. Faults come from ``driftmend.chaos``, as `driftmend chaos` injects
them. Each page's screenshot goes to tests/artifacts/screenshots/ (`make screenshots`:
docs/screenshots/).

Every wait is a condition with a deadline (Playwright's ``expect``, or ``eventually``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from playwright.async_api import Locator, Page, Route, expect

from driftmend import chaos
from driftmend.formatting import UNITS, format_value
from driftmend.model import Drift, Outcome, Plan, PlanStep, ToolResult
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


async def crash_app(dash: Stack) -> str:
    """SIGKILL the web app the way `driftmend chaos app-crash` does."""
    target = chaos.Stack.of(dash.result.resources, app_name="web")
    return await chaos.inject("app-crash", target, dash.controller.settings)


async def focus_by_tab(page: Page, target: Locator, limit: int = 120) -> None:
    """Press Tab until ``target`` has the focus: it is reachable by keyboard alone."""
    handle = await target.element_handle()
    assert handle is not None
    for _ in range(limit):
        if await page.evaluate("el => document.activeElement === el", handle):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{target} not reached with {limit} presses of Tab")


async def sign_in_by_keyboard(page: Page, actor: str = "e2e") -> None:
    """Open the token dialog, fill it and save it with the keyboard only; the focus must
    come back to the key button when the dialog closes."""
    button = page.locator("#token-button")
    await focus_by_tab(page, button)
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Act as an operator")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_label("Token")).to_be_focused()
    await page.keyboard.type(TOKEN)
    await page.keyboard.press("Tab")
    await expect(dialog.get_by_label("Your name")).to_be_focused()
    await page.keyboard.type(actor)
    await page.keyboard.press("Enter")  # submits the dialog's form: Save
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#token-state")).to_have_text(f"Operator: {actor}")
    await expect(button).to_be_focused()


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

        assert "(SIGKILL)" in await crash_app(dash)

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
        # One line per signal, in words: the spec's promise and the rule are not repeated.
        await expect(row.locator("[data-slot=root_cause]")).to_have_text(
            "container.running is false, expected true"
        )
        await expect(web_tile.locator("[data-slot=last_fix_label]")).to_contain_text("fixed in")
        await expect(page.locator("[data-stat=success_rate]")).to_have_text("100 %")


async def test_the_fix_explains_itself(dash: Stack) -> None:
    async with tab(dash) as page:
        await page.goto("/")
        fix = dash.controller.store.fix_records.last_fix("Container/web")
        assert fix is not None
        await page.locator(f'table[data-live=fixes] a[href="/fixes/{fix["id"]}"]').first.click()
        await expect(page).to_have_url(f"{dash.url}/fixes/{fix['id']}")
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Fix #{fix['id']}")
        await expect(page.locator("[data-fix-state] .badge")).to_have_text("fixed")
        drifted = page.locator(".drifts > li")
        await expect(drifted).to_have_count(1)  # one signal, one line
        await expect(drifted.first).to_contain_text("container.running is false, expected true")
        await expect(drifted.first).to_contain_text("app-crash/restart-on-exit")
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


async def test_fix_button_heals_a_broken_resource(dash: Stack) -> None:
    store = dash.controller.store
    try:
        async with tab(dash) as page:
            await page.goto(f"/resources/{WEB}")
            card = page.locator(f'article[data-resource="{WEB}"]')
            health = card.locator("[data-slot=health]")
            await expect(health).to_have_text("Healthy", timeout=30_000)
            await expect(page.locator("#live")).to_have_attribute("data-state", "live")
            await sign_in_by_keyboard(page, "e2e-operator")

            # Paused, the controller watches the crash and leaves it alone...
            await card.get_by_role("button", name="Pause healing").click()
            await expect(card.locator(".paused-tag")).to_be_visible()
            fixes_before = len(store.fix_records.fixes(key="Container/web"))
            await crash_app(dash)
            await expect(health).to_have_text("Drifting")
            await expect(card.locator(".card-message")).to_contain_text("paused")
            assert len(store.fix_records.fixes(key="Container/web")) == fixes_before

            # ...until an operator presses Fix: reached and pressed with the keyboard.
            fix_button = card.get_by_role("button", name="Fix now")
            await focus_by_tab(page, fix_button)
            await page.keyboard.press("Enter")
            await expect(
                page.locator(".toast").filter(has_text="Fix Container/web now: started")
            ).to_be_visible()
            # An operator's Fix runs the ladder once; the pause stays for everything else.
            ended = page.locator(".toast").filter(has_text="fix Container/web: fixed")
            await expect(ended).to_be_visible(timeout=30_000)
            await expect(health).to_have_text("Healthy")
            await expect(card).to_have_class(re.compile(r"\bh-healthy\b"))
            await expect(fix_button).to_be_focused()  # the press did not throw the focus away
            fixed = store.fix_records.last_fix("Container/web")
            assert fixed is not None and fixed["outcome"] == "fixed"
            assert len(store.fix_records.fixes(key="Container/web")) == fixes_before + 1
            actions = [
                (a["action"], a["actor"]) for a in store.audit_records.actions(key="Container/web")
            ]
            assert ("fix", "dashboard:e2e-operator") in actions
            assert ("pause", "dashboard:e2e-operator") in actions

            await card.get_by_role("button", name="Resume healing").click()
            await expect(card.locator(".paused-tag")).to_be_hidden()
            await page.reload()  # the audit table is rendered by the server: on the next visit
            await expect(page.locator("table[aria-label='Audited actions']")).to_contain_text(
                "dashboard:e2e-operator"
            )
    finally:  # whatever happened, the next tests get a healthy, unpaused app
        dash.controller.operations.set_paused("Container/web", False, "e2e")
        await eventually(
            lambda: (
                (store.resource_records.resource("Container/web") or {}).get("health") == "healthy"
            ),
            deadline=30,
            what="the web app healthy again",
        )


async def test_approving_a_parked_destructive_plan_runs_it(dash: Stack) -> None:
    store = dash.controller.store
    pending = await eventually(
        lambda: store.pending_records.pending_plans(key="RedisCache/cache"),
        what="a parked flush plan",
    )
    plan_id = pending[0]["id"]
    async with tab(dash) as page:
        await page.goto("/")
        _, cache_health = tile(page, CACHE)
        await expect(cache_health).to_have_text("Needs operator")
        item = page.locator(f'[data-live=plans] [data-plan="{plan_id}"]')
        await expect(item).to_contain_text("redis_flush")
        await expect(item).to_contain_text("destructive")
        await expect(item).to_contain_text("redis.memory_used_ratio is")
        await expect(item).to_contain_text("over 50 %")  # the threshold in the signal's unit
        await shoot(page, "overview")
        await sign_in_by_keyboard(page)
        await focus_by_tab(page, item.get_by_role("button", name="Approve"))
        await page.keyboard.press("Enter")  # the confirmation is accepted by ``tab``
        await expect(item).to_have_count(0)  # gone from the queue, live
        await expect(page.locator("#approvals")).to_be_focused()  # not lost with the item
        await expect(page.locator("[data-count=plans]")).to_have_text("0")
        await expect(cache_health).to_have_text("Healthy", timeout=30_000)
        decided = store.pending_records.pending_plan(plan_id)
        assert (
            decided is not None
            and decided["status"] == "executed"
            and decided["actor"] == "dashboard:e2e"
        )
        fix = store.fix_records.last_fix("RedisCache/cache")
        assert fix is not None and fix["outcome"] == "fixed"
        assert [s["tool"] for s in fix["steps"]] == ["redis_flush"]


async def test_ask_the_llm(dash: Stack) -> None:
    store = dash.controller.store
    async with tab(dash) as page:
        await page.goto("/resources")
        await sign_in_by_keyboard(page)
        cache = page.locator(f'article[data-resource="{CACHE}"]')

        async def late(route: Route) -> None:
            # Held back on purpose: the job's end reaches the live stream before its own
            # 202 answer does, and the operator must still be told.
            response = await route.fetch()
            await asyncio.sleep(1.0)
            await route.fulfill(response=response)

        await page.route("**/api/llm/analyze", late)
        await cache.get_by_role("button", name="Ask the LLM").click()
        await expect(page.locator(".toast.error")).to_contain_text(
            "no HealingPolicy with an escalate block selects RedisCache/cache"
        )
        await page.unroute("**/api/llm/analyze")
        web = page.locator(f'article[data-resource="{WEB}"]')
        await web.get_by_role("button", name="Ask the LLM").click()
        answer = page.locator(".toast").filter(
            has_text=re.compile(r"Ask the LLM about Container/web: (pending|rejected)")
        )
        await expect(answer).to_be_visible()
        newest = store.llm_records.llm_interactions(key="Container/web", limit=1)[0]
        assert newest["planner"] == "replay" and newest["decision"] in ("pending", "rejected")
        await answer.get_by_role("link", name=f"Open interaction #{newest['id']}").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            f"LLM interaction #{newest['id']}"
        )
        # Parked for approval (the app is healthy, so the next pass may supersede it), or
        # refused by the guard: either way, what the controller recorded.
        await expect(page.locator("#h-outcome + p")).to_contain_text(
            re.compile(
                r"waiting for an operator's approval|parked as plan #\d+, then superseded"
                if newest["decision"] == "pending"
                else "refused by the guard"
            )
        )
        await expect(page.locator("pre").first).to_contain_text("container_restart")
    assert ("analyze", "dashboard:e2e") in [
        (a["action"], a["actor"]) for a in store.audit_records.actions(key="Container/web")
    ]


async def test_llm_outcomes_are_the_recorded_ones(dash: Stack) -> None:
    # Two identical plans as the controller records them: the first only in shadow mode,
    # the second run as a fix. Each must show its own outcome, not the other's fix.
    store = dash.controller.store
    now = time.time()
    drift = Drift(
        "Container/web",
        "container.healthy",
        "== true",
        False,
        now - 40,
        None,
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

    def record(at: float) -> int:
        return store.llm_records.record_llm_interaction(
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
            at,
        )

    fix = store.fix_records.last_fix("Container/web")
    assert fix is not None
    shadow = record(now - 2)
    store.llm_records.set_llm_outcome(
        shadow, mode="shadow", decision="shadow", reason="recorded, not run (guard: admitted)"
    )
    ran = record(now - 1)
    store.llm_records.set_llm_outcome(
        ran, mode="auto", decision="admitted", reason="fixed", fix_id=int(fix["id"])
    )
    budget = record(now)
    store.llm_records.set_llm_outcome(
        budget,
        mode="auto",
        decision="over-budget",
        reason="policy app-crash ran 3/3 LLM plans in 1h",
    )
    async with tab(dash) as page:
        await page.goto("/llm")
        rows = {i: page.locator(f'tr[data-llm="{i}"]') for i in (shadow, ran, budget)}
        await expect(rows[ran]).to_contain_text("stuck worker pool")
        await expect(rows[shadow].locator("[data-slot=outcome]")).to_have_text("shadow")
        await expect(rows[ran].locator("[data-slot=outcome]")).to_have_text("fixed")
        await expect(rows[ran]).to_contain_text(f"ran as fix #{fix['id']}")
        await expect(rows[budget].locator("[data-slot=outcome]")).to_have_text("over-budget")
        await shoot(page, "llm")
        await rows[shadow].get_by_role("link", name=f"#{shadow}").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            f"LLM interaction #{shadow}"
        )
        await expect(page.locator("[aria-labelledby=h-outcome]")).to_contain_text(
            "Shadow mode: the plan was recorded, not run."
        )
        assert await page.locator("[aria-labelledby=h-outcome] a[href^='/fixes/']").count() == 0
        await expect(page.locator("pre").filter(has_text=PWN).first).to_be_visible()
        assert await page.evaluate("window.pwned") is None
        await page.goto(f"/llm/{ran}")
        await expect(page.locator(f'a[href="/fixes/{fix["id"]}"]')).to_be_visible()
        await shoot(page, "llm-detail")


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
        await expect(page.locator("#log-errors-word")).to_have_text("error")  # not "1 errors"


async def test_with_follow_off_new_lines_wait_then_show(dash: Stack) -> None:
    async with tab(dash) as page:
        await page.goto("/logs?q=held-line")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        await page.get_by_label("Follow new lines").uncheck()
        _raw_get(dash.web_port, "/fail/held-line")  # an ERROR line and the request's INFO line
        await expect(page.locator("#log-held")).to_be_visible()
        await expect(page.locator("#log-held-count")).to_have_text("2")
        assert await page.locator("table.logs tbody tr").count() == 0  # held, not shown
        await page.get_by_label("Follow new lines").check()
        await expect(page.locator("table.logs tbody tr")).to_have_count(2)
        await expect(page.locator("#log-held")).to_be_hidden()
        await expect(page.locator("#log-count")).to_have_text("2")
        await expect(page.locator("#log-errors")).to_have_text("1")
        await expect(page.locator("#log-errors-word")).to_have_text("error")


async def test_an_action_without_the_token_is_refused(dash: Stack) -> None:
    async with tab(dash) as page:  # a new context: no token in this tab
        await page.goto("/resources")
        card = page.locator(f'article[data-resource="{WEB}"]')
        await expect(card.locator("[data-slot=health]")).to_have_text("Healthy")
        await shoot(page, "resources")
        await page.goto(f"/resources/{WEB}")
        await expect(page.locator("table[aria-label='Audited actions']")).to_contain_text(
            "dashboard:e2e"
        )
        await shoot(page, "resource")
        await page.goto("/resources")
        pause = card.get_by_role("button", name="Pause healing")
        paused_before = [
            a for a in dash.controller.store.audit_records.actions() if a["action"] == "pause"
        ]
        await pause.click()
        await expect(page.locator(".toast.error")).to_contain_text("needs the dashboard token")
        dialog = page.get_by_role("dialog", name="Act as an operator")
        await expect(dialog).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(pause).to_be_focused()  # back where the operator was
        paused_after = [
            a for a in dash.controller.store.audit_records.actions() if a["action"] == "pause"
        ]
        assert paused_after == paused_before
        assert (dash.controller.store.resource_records.resource("Container/web") or {}).get(
            "paused"
        ) is False
        async with httpx2.AsyncClient(base_url=dash.url) as client:
            refused = await client.post(f"/api/resources/{WEB}/pause", json={})
            assert refused.status_code == 401
            evil = await client.post(
                f"/api/resources/{WEB}/pause",
                json={},
                headers={"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example"},
            )
            assert evil.status_code == 403


async def test_a_tile_that_arrives_live_has_its_charts(dash: Stack) -> None:
    store = dash.controller.store
    async with tab(dash) as page:
        await page.goto("/")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        store.resource_records.upsert_resource(
            "RedisCache/late", "RedisCache", {}, "healthy", {"redis.up": True}, time.time(), "ok"
        )
        try:
            late, _ = tile(page, "RedisCache.late")
            await expect(late).to_be_visible()
            await expect(late.locator("figure[data-chart]")).to_have_count(2)
            await expect(late.locator("svg[data-strip]")).to_have_count(1)
            await expect(late.locator("figure[data-chart] svg.chart-svg").first).not_to_be_empty()
        finally:
            store.resource_records.remove_resource("RedisCache/late")
        await expect(late).to_have_count(0)


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
        # The time-to-recover axis fits the fixes: the dots spread over the chart.
        dots = page.locator("figure[data-ttr-chart] circle")
        assert await dots.count() >= 2
        xs = [float(await d.get_attribute("cx") or 0) for d in await dots.all()]
        width = (await page.locator("figure[data-ttr-chart] svg").bounding_box() or {})["width"]
        assert max(xs) - min(xs) > width * 0.5, (xs, width)
    async with tab(dash, color_scheme="light") as page:
        await page.set_viewport_size({"width": 820, "height": 1180})
        await page.goto("/")
        await expect(tile(page, WEB)[1]).to_have_text("Healthy")
        # The recent fixes keep their outcome and time to recover inside the panel.
        panel = await page.locator("section[aria-labelledby=h-fixes]").bounding_box()
        recover = await page.locator(
            "section[aria-labelledby=h-fixes] th", has_text="Recover"
        ).bounding_box()
        assert panel and recover and recover["x"] + recover["width"] <= panel["x"] + panel["width"]
        await shoot(page, "overview-tablet")


async def test_the_link_with_the_token_signs_the_tab_in(dash: Stack) -> None:
    # `make demo` prints http://127.0.0.1:8080/#token=...: the token is kept for this tab
    # and leaves the address bar; the page's script keeps running (``tab`` fails on an
    # uncaught error).
    async with tab(dash) as page:
        await page.goto(f"/#token={TOKEN}")
        await expect(page.locator("#token-state")).to_have_text("Operator: signed in")
        await expect(page).to_have_url(f"{dash.url}/")
        assert await page.evaluate("sessionStorage.getItem('driftmend.token')") == TOKEN
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")


async def test_the_browser_formats_values_as_the_server_does(dash: Stack) -> None:
    samples = [
        [value, unit]
        for unit in UNITS
        for value in (None, True, 0, 0.5, 2.5, 42.5, 0.125, 1023, 1536.5, 52_000_000, 1234.5)
    ]
    async with tab(dash) as page:
        await page.goto("/")
        shown = await page.evaluate(
            "samples => samples.map(([v, u]) => window.driftmend.formatValue(v, u))", samples
        )
    assert shown == [format_value(value, unit=unit) for value, unit in samples]


async def test_a_running_fix_page_follows_the_fix(dash: Stack) -> None:
    store = dash.controller.store
    now = time.time()
    key = "Container/ghost"  # no such resource: the controller leaves this fix alone
    drift = Drift(key, "container.running", "== true", False, now - 5)
    plan = Plan(key, (PlanStep("container_restart", key),), "rules", "restart it", drifts=(drift,))
    fid = store.fix_records.begin_fix(
        key, plan, {"container.running": False}, now - 5, now - 4, "down"
    )
    async with tab(dash) as page:
        await page.goto(f"/fixes/{fid}")
        await expect(page.locator("#live")).to_have_attribute("data-state", "live")
        await expect(page.locator("[data-fix-state] .badge")).to_have_text("running")
        await expect(page.locator("[data-retry]")).to_be_hidden()
        await expect(page.locator("[data-fix-steps] li")).to_have_text("No step has started yet.")
        step = store.fix_records.journal_step(fid, 0, plan.steps[0])
        store.fix_records.finish_step(step, ToolResult.failure("no such container"), 0.2)
        store.fix_records.finish_fix(
            fid, Outcome.FAILED, False, {"container.running": False}, time.time(), None, "gone"
        )
        await expect(page.locator("[data-fix-state] .badge")).to_have_text("failed")
        await expect(page.locator("[data-fix-message]")).to_have_text("gone")
        steps = page.locator("[data-fix-steps] li")
        await expect(steps).to_have_count(1)
        await expect(steps.first).to_contain_text("no such container")
        await expect(page.locator("[data-retry]")).to_be_visible()
        after = page.locator('tr[data-after-signal="container.running"] [data-after]')
        await expect(after).to_have_text("no")


def _raw_get(port: int, path: str) -> None:
    """Send a request line byte for byte (an HTTP client would percent-encode ``<``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while sock.recv(4096):
            pass
