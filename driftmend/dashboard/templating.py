"""The Jinja environment of the dashboard's pages and fragments: its filters, and the
frame every page is rendered in.

Stage: *outputs* in docs/ARCHITECTURE.md. Jinja escapes every value (log lines and LLM text
are attacker-controlled). Values are written by ``driftmend.formatting``, the same rules the
page hands its script as JSON (``page_data["formatting"]``), so a value rendered here and the
same value arriving live read alike.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from driftmend.dashboard.security import Access
from driftmend.dashboard.views import describe_drift, drift_lines, resource_id
from driftmend.formatting import MISSING, format_value, health_label, rules, signal_units

__all__ = ["TEMPLATES", "render"]

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _utc(ts: float | None, with_date: bool = False) -> str:
    """A Unix time as UTC text; the script rewrites it in the reader's local time."""
    if ts is None:
        return MISSING
    moment = datetime.fromtimestamp(float(ts), UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if with_date else "%H:%M:%S UTC")


def _iso(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(float(ts), UTC).isoformat()


def _pretty(value: Any) -> str:
    """JSON for people: indented, keys in order, non-ASCII kept."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, width=100).rstrip()


TEMPLATES.env.filters.update(
    utc=_utc,
    iso=_iso,
    seconds=lambda value: format_value(value, unit="duration"),
    percent=lambda value: format_value(value, unit="share"),
    pretty=_pretty,
    yaml=_yaml,
    fmt=lambda value, signal=None: format_value(value, signal=signal),
    rid=resource_id,
    drift=describe_drift,
    drift_lines=drift_lines,
    health_label=health_label,
    urlq=lambda s: quote(str(s), safe=""),
)


def render(
    request: Request,
    name: str,
    page: str,
    context: dict[str, Any],
    data: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """``name`` rendered in the dashboard's frame; ``data`` joins the JSON the script reads
    (``#page-data``), which always carries the signal units and the formatting rules."""
    access: Access = request.app.state.access
    controller = request.app.state.controller
    now = time.time()
    base = {
        "page": page,
        "now": now,
        "token_configured": access.token is not None,
        "store_writable": request.app.state.store.writable,
        "open_reads": access.open_reads,
        "controller_attached": controller is not None,
        "llm_available": controller is not None and controller.llm_ready,
        # The script reads this block as JSON; Jinja's ``tojson`` escapes <, > and & inside.
        "page_data": {
            "page": page,
            "now": now,
            "units": signal_units(),
            "formatting": rules(),
            **(data or {}),
        },
    }
    return TEMPLATES.TemplateResponse(request, name, base | context, status_code=status_code)
