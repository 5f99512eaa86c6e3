"""Redaction: credentials taken out of text that comes from the running stack. Pure.

Stage: between *observe* and everything that shows or sends what was observed. Log lines
are redacted as the log accumulator takes them in, so the store, the dashboard, MCP clients
and an LLM prompt all see the same redacted text; a prompt redacts again, with the
planner's own keys, before anything leaves the machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by ``[REDACTED]``; ``secrets`` are removed verbatim.

    Pattern-based, so it errs towards hiding: a harmless ``token=abc`` is hidden too.
    """
    for secret in secrets:
        if len(secret) >= 4:  # a shorter "secret" would shred ordinary text
            text = text.replace(secret, REDACTED)
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# A private key spans lines; a log reader sees them one at a time (see LogAccumulator).
PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
PRIVATE_KEY_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY-----")
