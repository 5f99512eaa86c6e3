"""The dashboard's pages: overview, resources, logs, LLM interactions, fixes and evaluations.

Stage: *outputs* in docs/ARCHITECTURE.md. Each page is rendered whole on the server with
Jinja (which escapes every value: log lines and LLM text are attacker-controlled), then kept
current by the scripts in ``static/js/`` from the live stream, which write text only; where
a piece of a page must be drawn again (a tile that arrives live, a running fix), the script
fetches it rendered by the server (``driftmend.dashboard.fragments``) rather than building
markup. Charts are inline SVG drawn by the script from the JSON embedded in the page.
"""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from driftmend.dashboard.api import merged_resource, merged_resources
from driftmend.dashboard.dependencies import (
    AccessDep,
    Operations,
    OptionalOperationsDep,
    StoreDep,
    require_read,
)
from driftmend.dashboard.record_ids import FixId, InteractionId
from driftmend.dashboard.security import READ_COOKIE, Refusal
from driftmend.dashboard.stream import llm_rows, plan_summary
from driftmend.dashboard.templating import TEMPLATES, render
from driftmend.dashboard.views import (
    chart_signals,
    charts_for,
    downsample,
    evaluations,
    fix_summary,
    key_of,
    log_dict,
    resource_id,
    signal_changes,
)
from driftmend.logs import LEVELS
from driftmend.model import Health
from driftmend.store import Store

__all__ = [
    "TEMPLATES",
    "chart_specs",
    "error_page",
    "login_router",
    "page_router",
    "refusal_page",
]

page_router = APIRouter(include_in_schema=False, dependencies=[Depends(require_read)])
login_router = APIRouter(include_in_schema=False)

OVERVIEW_WINDOW = 15 * 60.0
RESOURCE_WINDOW = 30 * 60.0
LOG_RANGES: dict[str, float | None] = {"5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "all": None}


# --- shared context --------------------------------------------------------------------------


def _history(
    store: Store, rows: list[dict[str, Any]], window: float, points: int
) -> dict[str, Any]:
    """Chart samples per resource id, only the charted signals, thinned to ``points``."""
    since = time.time() - window
    out: dict[str, Any] = {}
    for r in rows:
        kind = str(r["kind"])
        samples = store.signal_records.signal_history(str(r["key"]), chart_signals(kind), since)
        out[str(r["id"])] = [[s["at"], s["signals"]] for s in downsample(samples, kind, points)]
    return out


def chart_specs(kind: str, with_errors: bool) -> list[dict[str, Any]]:
    """The charts of a resource of ``kind`` as the ``chart`` macro and the script read them."""
    return [
        {"signal": c.signal, "title": c.title, "unit": c.unit}
        for c in charts_for(kind, with_errors=with_errors)
    ]


def _charts(rows: list[dict[str, Any]], with_errors: bool) -> dict[str, Any]:
    return {str(r["id"]): chart_specs(str(r["kind"]), with_errors) for r in rows}


def _stats(store: Store) -> dict[str, Any]:
    day = store.fix_stats_records.fix_stats(time.time() - 86400)
    return {k: v for k, v in day.items() if k not in ("by_rule", "by_tool")}


def _logs_of(controller: Operations | None, key: str, limit: int) -> list[dict[str, Any]]:
    if controller is None:
        return []
    return [log_dict(key, line) for line in controller.logs.recent(key, limit=limit)]


# --- pages -----------------------------------------------------------------------------------


@page_router.get("/", response_class=HTMLResponse)
async def overview(
    request: Request, store: StoreDep, controller: OptionalOperationsDep
) -> HTMLResponse:
    """Every resource at a glance, what waits for an operator, recent fixes, how well it heals."""
    rows = merged_resources(store.resource_records.resources(), controller)
    fixes = store.fix_records.fixes(limit=500)
    evals = evaluations(store.fix_stats_records.fix_stats(), fixes[:200])
    counts = {h.value: sum(1 for r in rows if r["health"] == h) for h in Health}
    return render(
        request,
        "overview.html",
        "overview",
        {
            "resources": rows,
            "counts": counts,
            "fixes": [fix_summary(f) for f in fixes[:10]],
            "plans": [plan_summary(p) for p in store.pending_records.pending_plans()],
            "stats": _stats(store),
            "charts": _charts(rows, with_errors=False),
        },
        {
            "window": OVERVIEW_WINDOW,
            "history": _history(store, rows, OVERVIEW_WINDOW, 180),
            "charts": _charts(rows, with_errors=False),
            "ttr": evals["time_to_recover"][-100:],
            "stats_scope": "day",
        },
    )


def _resource_context(
    store: Store, controller: Operations | None, rows: list[dict[str, Any]], logs: int, fixes: int
) -> dict[str, Any]:
    return {
        "resources": rows,
        "logs": {r["id"]: _logs_of(controller, str(r["key"]), logs) for r in rows},
        "fixes": {
            r["id"]: [
                fix_summary(f) for f in store.fix_records.fixes(key=str(r["key"]), limit=fixes)
            ]
            for r in rows
        },
        "plans": {
            r["id"]: [
                plan_summary(p) for p in store.pending_records.pending_plans(key=str(r["key"]))
            ]
            for r in rows
        },
        "charts": _charts(rows, with_errors=True),
    }


@page_router.get("/resources", response_class=HTMLResponse)
async def resources(
    request: Request, store: StoreDep, controller: OptionalOperationsDep
) -> HTMLResponse:
    """A card per resource: health, signals, CPU and memory, recent logs, fixes, spec."""
    rows = merged_resources(store.resource_records.resources(), controller)
    return render(
        request,
        "resources.html",
        "resources",
        _resource_context(store, controller, rows, logs=12, fixes=5),
        {
            "window": RESOURCE_WINDOW,
            "history": _history(store, rows, RESOURCE_WINDOW, 240),
            "charts": _charts(rows, with_errors=True),
        },
    )


@page_router.get("/resources/{rid}", response_class=HTMLResponse)
async def resource(
    rid: str, request: Request, store: StoreDep, controller: OptionalOperationsDep
) -> HTMLResponse:
    """One resource in full: its card, then its reconciliations, guard verdicts and audit."""
    key, row = merged_resource(store.resource_records.resources(), controller, rid)
    rows = [row]
    return render(
        request,
        "resource.html",
        "resources",
        _resource_context(store, controller, rows, logs=50, fixes=20)
        | {
            "resource": rows[0],
            "reconciliations": store.reconciliation_records.reconciliations(key=key, limit=30),
            "counts": store.reconciliation_records.reconciliation_counts(key),
            "guard_decisions": store.audit_records.guard_decisions(key=key, limit=30),
            "actions": store.audit_records.actions(limit=30, key=key),
            "decided": store.pending_records.pending_plans(status=None, key=key)[-10:][::-1],
        },
        {
            "window": RESOURCE_WINDOW,
            "history": _history(store, rows, RESOURCE_WINDOW, 360),
            "charts": _charts(rows, with_errors=True),
        },
    )


@page_router.get("/logs", response_class=HTMLResponse)
async def logs(
    request: Request,
    store: StoreDep,
    controller: OptionalOperationsDep,
    q: Annotated[str | None, Query()] = None,
    resource: Annotated[str | None, Query()] = None,
    level: Annotated[str | None, Query()] = None,
    range: Annotated[str, Query()] = "1h",
) -> HTMLResponse:
    """Every resource's recent log lines, filtered; errors stand out; new lines flow in."""
    level = level.upper() if level and level.upper() in LEVELS else None
    window = LOG_RANGES.get(range, 3600)
    key = key_of(resource) if resource else None
    since = None if window is None else time.time() - window
    lines: list[dict[str, Any]] = []
    if controller is not None:
        found = controller.logs.search(q or None, key, level, since, limit=1000)
        lines = [log_dict(k, line) for k, line in found]
    keys = sorted(
        {r["key"] for r in merged_resources(store.resource_records.resources(), controller)}
        | (
            {
                str(k)
                for k in controller.logs.keys()  # noqa: SIM118 - a LogAccumulator, not a dict
            }
            if controller
            else set()
        )
    )
    filters = {
        "q": q or "",
        "resource": resource_id(key) if key else "",
        "level": level or "",
        "range": range if range in LOG_RANGES else "1h",
        "since": since,
    }
    errors = sum(1 for line in lines if LEVELS.get(str(line["level"]), 0) >= LEVELS["ERROR"])
    return render(
        request,
        "logs.html",
        "logs",
        {
            "lines": lines[::-1],
            "keys": keys,
            "levels": list(LEVELS),
            "filters": filters,
            "ranges": list(LOG_RANGES),
            "errors": errors,
        },
        {"filters": filters},
    )


@page_router.get("/llm", response_class=HTMLResponse)
def llm(request: Request, store: StoreDep) -> HTMLResponse:
    """What the LLM was asked and what it answered: time, resource, root cause, outcome."""
    rows = llm_rows(store, store.llm_records.llm_summaries(limit=200))
    return render(request, "llm.html", "llm", {"rows": rows})


@page_router.get("/llm/{iid}", response_class=HTMLResponse)
def llm_detail(iid: InteractionId, request: Request, store: StoreDep) -> HTMLResponse:
    """One interaction: full prompt and response, the plan, what became of it, each result."""
    found = store.llm_records.llm_interaction(iid)
    if found is None:
        raise HTTPException(404, f"no LLM interaction {iid}")
    summary = llm_rows(store, [found])[0]
    pid = summary["pending_plan_id"]
    parked = store.pending_records.pending_plan(int(pid)) if pid is not None else None
    return render(
        request,
        "llm_detail.html",
        "llm",
        {
            "i": found,
            "summary": summary,
            "fix": found.get("fix"),
            "parked": parked,
            "parked_summary": plan_summary(parked) if parked else None,
        },
    )


@page_router.get("/fixes", response_class=HTMLResponse)
def fixes(request: Request, store: StoreDep) -> HTMLResponse:
    """Every fix with its signals before and after; success by scenario and tool; recovery."""
    all_fixes = store.fix_records.fixes(limit=500)
    evals = evaluations(store.fix_stats_records.fix_stats(), all_fixes)
    rows = []
    for f in all_fixes[:200]:
        drifted = [str(d.get("signal")) for d in f.get("drifts") or []]
        changes = signal_changes(f.get("signals_before"), f.get("signals_after"), drifted)
        rows.append(fix_summary(f) | {"changes": [c for c in changes if c["drifted"]][:3]})
    return render(
        request,
        "fixes.html",
        "fixes",
        {"fixes": rows, "evals": evals},
        {"ttr": evals["time_to_recover"][-300:], "stats_scope": "all"},
    )


@page_router.get("/fixes/{fid}", response_class=HTMLResponse)
def fix(fid: FixId, request: Request, store: StoreDep) -> HTMLResponse:
    """One fix: why, what ran and what each step returned, before and after, how fast."""
    found = store.fix_records.fix(fid)
    if found is None:
        raise HTTPException(404, f"no fix {fid}")
    drifted = [str(d.get("signal")) for d in found.get("drifts") or []]
    return render(
        request,
        "fix.html",
        "fixes",
        {
            "fix": found,
            "summary": fix_summary(found),
            "changes": signal_changes(
                found.get("signals_before"), found.get("signals_after"), drifted
            ),
        },
        {"fix_id": fid},
    )


@page_router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> HTMLResponse:
    """The API, listed from the OpenAPI schema (Swagger UI would need a CDN: no internet)."""
    paths = request.app.openapi().get("paths", {})
    endpoints = [
        {
            "method": method.upper(),
            "path": path,
            "summary": op.get("summary", ""),
            "description": op.get("description", ""),
        }
        for path, ops in sorted(paths.items())
        for method, op in ops.items()
    ]
    return render(request, "docs.html", "docs", {"endpoints": endpoints})


# --- signing in (only when the dashboard listens beyond localhost) ---------------------------


@login_router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, access: AccessDep, next: str = "/") -> HTMLResponse:
    """A form for the token; on localhost reading is open and this only explains that."""
    access.check_host(request)
    return render(request, "login.html", "login", {"next": _safe_next(next), "error": None})


@login_router.post("/login", response_class=HTMLResponse, response_model=None)
async def login(request: Request, access: AccessDep) -> Response:
    """Check the token and set the read-only cookie (never valid for actions)."""
    access.check_host(request)
    access.check_same_origin(request)
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    target = _safe_next((form.get("next") or ["/"])[0])
    if not access.token_matches(token):
        return render(
            request,
            "login.html",
            "login",
            {"next": target, "error": "That is not the dashboard token."},
            status_code=401,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        READ_COOKIE,
        access.cookie_value(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
    )
    return response


def _safe_next(target: str) -> str:
    """Only a path on this server: ``//evil.example`` or a full URL would be an open redirect."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def refusal_page(request: Request, refusal: Refusal) -> HTMLResponse:
    """The page shown to a browser that the gate turned away."""
    return render(
        request,
        "error.html",
        "error",
        {
            "status": refusal.status,
            "message": refusal.message,
            "login": refusal.status == 401 and not request.url.path.startswith("/login"),
        },
        status_code=refusal.status,
    )


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """A plain error page (404 and friends) in the dashboard's frame."""
    return render(
        request,
        "error.html",
        "error",
        {"status": status, "message": message, "login": False},
        status_code=status,
    )
