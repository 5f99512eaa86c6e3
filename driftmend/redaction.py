"""Redaction: credentials taken out of text that comes from the running stack. Pure.

Stage: between *observe* and everything that shows or sends what was observed. Log lines
are redacted as the log accumulator takes them in, so the store, the dashboard, MCP clients
and an LLM prompt all see the same redacted text; a prompt redacts again, with the
planner's own keys, before anything leaves the machine.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

REDACTED = "[REDACTED]"
MAX_TEXT = 1000  # one string of tool output, a reasoning, a history message
MAX_ITEMS = 100  # items of one list in tool output or a spec

# Each pattern keeps what says *what* the secret is and replaces the secret itself.
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # -----BEGIN ... PRIVATE KEY----- blocks, whole.
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
        ),
        REDACTED,
    ),
    # user:password@ in any URL (postgresql://, redis://, https://).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*):([^\s@/]+)@"), rf"\1:{REDACTED}@"),
    # Authorization headers and bare bearer/basic credentials.
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(\S+\s+)?\S+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{12,}"), rf"\1 {REDACTED}"),
    # Basic credentials are base64: insist on a digit or padding so prose is left alone.
    (
        re.compile(r"(?i)\b(basic)\s+(?=[A-Za-z0-9+/=]*[0-9=])[A-Za-z0-9+/]{8,}={0,2}"),
        rf"\1 {REDACTED}",
    ),
    # key=value and key: value for names that hold secrets (also JSON "key": "value").
    (
        re.compile(
            r"""(?ix)
            (\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key
                |private[_-]?key|credentials?|auth[_-]?key|session[_-]?key|x-goog-api-key)\b
             ["']?\s*[:=]\s*["']?)
            ([^\s"'&,;}]+)
            """
        ),
        rf"\1{REDACTED}",
    ),
    # Well-known key shapes, wherever they appear.
    (re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"), REDACTED),  # Google API keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), REDACTED),  # OpenAI-style keys
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), REDACTED),  # GitHub tokens
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),  # Slack tokens
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), REDACTED),  # JWTs
)
# A mapping key naming a secret: anywhere for the unambiguous words, as a whole word part
# for the short ones (``tokens_in`` and ``author`` are not secrets).
SECRET_NAME = re.compile(
    r"(?i)(password|passwd|secret|credential|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|(^|[_.-])(pwd|token|auth)($|[_.-]))"
)


# The secrets this process has read from a ``SecretRef`` (``passwordFrom``, an env
# ``valueFrom``): removed verbatim from all text ``redact`` sees, as CI systems mask theirs,
# so an app that prints its DSN does not show it on the dashboard. Process-wide on purpose:
# the driver that reads a secret and the log reader that meets it share nothing else.
_REMEMBERED: set[str] = set()
_SHORTEST_REMEMBERED = 6  # shorter values are words, and masking them would shred logs


def remember_secret(value: str) -> None:
    """Have ``redact`` remove ``value`` verbatim from now on (values under 6 characters are
    not remembered: masking a word like ``admin`` everywhere would hide more than it saves)."""
    if len(value) >= _SHORTEST_REMEMBERED:
        _REMEMBERED.add(value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by ``[REDACTED]``; ``secrets`` and every remembered
    secret (``remember_secret``) are removed verbatim.

    Pattern-based, so it errs towards hiding: a harmless ``token=abc`` is hidden too.
    """
    for secret in (*secrets, *_REMEMBERED):
        if len(secret) >= 4:  # a shorter "secret" would shred ordinary text
            text = text.replace(secret, REDACTED)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# A private key spans lines; a log reader sees them one at a time (see LogAccumulator).
PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
PRIVATE_KEY_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def redact_data(
    value: Any, secrets: Iterable[str] = (), *, limit: int = MAX_TEXT, items: int = MAX_ITEMS
) -> Any:
    """JSON-ready ``value`` with every string redacted and cut to ``limit`` characters, every
    list cut to ``items``, and values of keys whose name says secret (``password``,
    ``api_key``, ...) replaced whole.

    Bounded as well as redacted: what an outside caller sends is stored and shown this way,
    so a 2 MiB argument costs a kilobyte, not 2 MiB per call.
    """
    secrets = tuple(secrets)
    if isinstance(value, str):
        return truncate(redact(value, secrets), limit)
    if isinstance(value, Mapping):
        kept = {
            truncate(str(k), limit): REDACTED
            if SECRET_NAME.search(str(k)) and isinstance(v, str | int | float) and v != ""
            else redact_data(v, secrets, limit=limit, items=items)
            for k, v in list(value.items())[:items]
        }
        if len(value) > items:
            kept["[cut]"] = f"{len(value) - items} more keys"
        return kept
    if isinstance(value, list | tuple):
        cut = [redact_data(v, secrets, limit=limit, items=items) for v in value[:items]]
        if len(value) > items:
            cut.append(f"[{len(value) - items} more items cut]")
        return cut
    if value is None or isinstance(value, bool | int | float):
        return value
    return truncate(redact(str(value), secrets), limit)


# The spec fields whose every value is hidden, whatever its name: a process's or container's
# environment is where DSNs and tokens are put, under names no pattern can know
# (``DATABASE``, ``UPSTREAM``). A ``valueFrom`` reference is kept: it names, not holds.
_HIDDEN_MAPS = frozenset({"env"})


def redact_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A resource or policy document (``model_dump(mode="json", by_alias=True)``) as it may be
    shown or stored: every ``env`` value hidden, secret-named fields hidden, credentials in
    any string (a DSN in a command line) redacted.

    Where a spec leaves the controller's memory (the store, the API, pages, an LLM prompt),
    it goes through here: a secret put in a spec is used, never shown.
    """
    shown: dict[str, Any] = redact_data(_hide_env(doc), limit=4 * MAX_TEXT, items=10 * MAX_ITEMS)
    return shown


# Specs are frozen: each model object is redacted once, not on every pass that stores it
# (about 0.3 ms a resource, which at a thousand resources and a 1 s resync is a third of a
# core). Keyed by the object's id, dropped when the object is (a reload makes new ones).
_SHOWN: dict[int, dict[str, Any]] = {}
_SHOWN_LOCK = threading.Lock()


def shown_spec(model: BaseModel) -> dict[str, Any]:
    """``redact_spec`` of a resource's or policy's document, computed once per model object.

    What the store's resource row (hence the API and the pages) holds of a spec. The dict
    is shared: callers must not change it.
    """
    ident = id(model)
    with _SHOWN_LOCK:
        cached = _SHOWN.get(ident)
    if cached is None:
        cached = redact_spec(model.model_dump(mode="json", by_alias=True))
        with _SHOWN_LOCK:
            _SHOWN[ident] = cached
        weakref.finalize(model, _forget_shown, ident)
    return cached


def _forget_shown(ident: int) -> None:
    with _SHOWN_LOCK:
        _SHOWN.pop(ident, None)


def _hide_env(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {
            k: (
                {name: v if isinstance(v, Mapping) else REDACTED for name, v in value.items()}
                if k in _HIDDEN_MAPS and isinstance(value, Mapping)
                else _hide_env(value)
            )
            for k, value in node.items()
        }
    if isinstance(node, list):
        return [_hide_env(v) for v in node]
    return node
