"""Who may read the dashboard and who may act through it.

Stage: *outputs* in docs/ARCHITECTURE.md: the gate in front of the dashboard's routes.

The rules, in one place:

- **Actions** (fix, pause, approve, reject, analyze) need the token
  (``DRIFTMEND_DASHBOARD_TOKEN``) in an ``Authorization: Bearer <token>`` header. A browser
  never attaches that header on its own, and a cross-site page cannot add it without a CORS
  preflight that this server never answers, so actions are safe against cross-site requests
  by construction. As a second wall, a request whose ``Origin`` or ``Sec-Fetch-Site`` says
  it comes from another site is refused. With no token configured, actions are refused with
  a message saying how to set one.
- **Reading** is open when the server listens on a loopback address. Then the ``Host``
  header must name a loopback host too, so a web page that rebinds its own DNS name to
  127.0.0.1 cannot read the dashboard either. When the server listens beyond localhost,
  reading needs the token: as the same header, or as a read-only cookie set by ``/login``
  (a browser cannot put headers on page loads or on an ``EventSource``). The cookie holds a
  digest of the token, not the token, is ``HttpOnly`` and ``SameSite=Strict``, and never
  authorizes an action.
- ``/metrics``, ``/docs`` and ``/openapi.json`` are read like any page: open on loopback to
  requests addressed to localhost, else with the token (Prometheus sends it as a bearer
  token from its scrape config). Only ``/healthz`` (a liveness probe that says nothing but
  "ok") and ``/static`` (the dashboard's own files) are open to everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request

__all__ = ["READ_COOKIE", "Access", "Refusal"]

READ_COOKIE = "driftmend_read"
TOKEN_ENV = "DRIFTMEND_DASHBOARD_TOKEN"
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, maybe in brackets) is this machine only."""
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The host of a ``Host`` header, without its port (``[::1]:8080`` -> ``::1``)."""
    return urlsplit(f"//{header}").hostname or ""


class Refusal(Exception):
    """A request the gate turned away: the status code and a message that says what to do."""

    def __init__(self, status: int, message: str, challenge: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenge = challenge  # 401 with ``WWW-Authenticate: Bearer``


@dataclass(frozen=True)
class Access:
    """The gate's configuration: the token (if any) and whether reading is open."""

    token: str | None
    open_reads: bool

    @classmethod
    def of(cls, http_host: str, token: str | None) -> Access:
        """Reading is open exactly when the server listens on loopback only."""
        return cls(token=token or None, open_reads=is_loopback(http_host))

    # -- tokens

    def _presented(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    def token_matches(self, presented: str | None) -> bool:
        """Constant-time comparison with the configured token."""
        if self.token is None or presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self.token.encode())

    def cookie_value(self) -> str:
        """The read cookie's value: a keyed digest of the token, useless for actions."""
        assert self.token is not None
        return hmac.new(
            self.token.encode(), b"driftmend-dashboard-read", hashlib.sha256
        ).hexdigest()

    def _cookie_matches(self, request: Request) -> bool:
        value = request.cookies.get(READ_COOKIE)
        if self.token is None or not value:
            return False
        return hmac.compare_digest(value.encode(), self.cookie_value().encode())

    # -- checks

    def check_host(self, request: Request) -> None:
        """On loopback, a request must name a loopback host (no DNS rebinding)."""
        if not self.open_reads:
            return
        host = _host_name(request.headers.get("host", ""))
        if not is_loopback(host):
            raise Refusal(
                403,
                f"host {host or '(none)'!r} refused: this dashboard listens on localhost and "
                "answers only requests addressed to localhost, 127.0.0.1 or [::1]",
            )

    def check_read(self, request: Request) -> None:
        """Reading: open on loopback (right host); else the token, as header or cookie."""
        self.check_host(request)
        if self.open_reads:
            return
        if self.token is None:
            raise Refusal(
                403,
                "this dashboard listens beyond localhost, so reading needs a token, and none "
                f"is configured: set {TOKEN_ENV}=<a long random secret> in the controller's "
                "environment and restart it",
            )
        if self.token_matches(self._presented(request)) or self._cookie_matches(request):
            return
        raise Refusal(
            401,
            "reading this dashboard needs the token: send 'Authorization: Bearer <token>' "
            "or sign in at /login",
            challenge=True,
        )

    def check_same_origin(self, request: Request) -> None:
        """Refuse a request a browser marks as coming from another site."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refusal(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        if origin is None:
            return  # not a browser, or a same-origin GET: the token below still decides
        expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.lower() != expected.lower():
            raise Refusal(403, f"cross-origin request refused: Origin {origin} is not {expected}")

    def check_action(self, request: Request) -> None:
        """Actions: same origin, and the token in the ``Authorization`` header (never a cookie)."""
        self.check_host(request)
        self.check_same_origin(request)
        if self.token is None:
            raise Refusal(
                403,
                "dashboard actions are disabled because no token is configured: set "
                f"{TOKEN_ENV}=<a long random secret> in the controller's environment, restart "
                "it, then enter the token in the dashboard (the key button) or send "
                "'Authorization: Bearer <token>'",
            )
        if not self.token_matches(self._presented(request)):
            raise Refusal(
                401,
                "this action needs the dashboard token: send 'Authorization: Bearer <token>' "
                "(in the dashboard: the key button, top right)",
                challenge=True,
            )
