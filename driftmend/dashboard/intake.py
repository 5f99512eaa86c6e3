"""What a request must pass before its body is read: the action gate, on headers alone, and
the body size limit.

Stage: *outputs* in docs/ARCHITECTURE.md: the outermost wall of the dashboard (issue 17,
"nothing unbounded"). FastAPI reads and parses a route's body before it runs the route's
dependencies, so ``require_action`` alone let an anonymous client make the server read a
body of any size before turning it away. ``Intake`` runs before the routing, as a plain
ASGI middleware (``BaseHTTPMiddleware`` would buffer the body it is meant to keep out):

- a request of any method but GET, HEAD and OPTIONS (every action is a POST) passes
  ``Access.check_action`` on its headers, the one exception being ``/login`` (its form
  carries the token it checks); the rules stay in ``driftmend.dashboard.security``, and the
  ``Request`` they are given has no receive channel, so a check that tried to read the body
  would fail loudly. A refusal is answered at once, 401 or 403 with the app's JSON error,
  not one body byte read;
- every request's body is bounded by ``Settings.dashboard_max_body``: a ``Content-Length``
  above it is answered 413 before reading; a body without one (chunked) is counted as it
  arrives and cut off with 413 once over the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftmend.dashboard.security import Access, Refusal

__all__ = ["MAX_BODY_ENV", "NOT_ACTIONS", "READ_METHODS", "BodyTooLarge", "Intake"]

MAX_BODY_ENV = "DRIFTMEND_DASHBOARD_MAX_BODY"
# Methods that never act: every route of another method is an action (``require_action``)
# or one of ``NOT_ACTIONS``, which test_dashboard_intake.py holds true of the routers.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths written to without the action token: signing in checks the token of its form.
NOT_ACTIONS = frozenset({"/login"})


class BodyTooLarge(HTTPException):
    """413: a request body over the limit; the message names the limit and its setting.

    An ``HTTPException``, so that when it is raised while a route reads its body, FastAPI
    passes it on (it turns any other error of the body's reading into a 400) and the app's
    own handler answers it in the app's error shape.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body too large: this dashboard reads at most {limit} bytes of a "
            f"request (its actions are small JSON); set {MAX_BODY_ENV} to change the limit",
        )


def _refuse(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The shape of the app's own errors (``create_app``'s handlers): ``{"detail": ...}``.
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class Intake:
    """The action gate on headers and the body size limit, in front of the whole app."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    @staticmethod
    def _is_action(scope: Scope) -> bool:
        # By method, not by matching the path against the routes that depend on
        # ``require_action``: that needs the router's own matching (FastAPI keeps included
        # routers as lazy branches, not a flat list of routes), and it fails open, since a
        # new POST route that forgot the dependency would skip this check too. By method it
        # fails closed: a new write is gated until it is listed in ``NOT_ACTIONS``. A write
        # to a read route or to no route is gated as well, and only then told 405 or 404.
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # served under a prefix: the routes' own path
        return scope["method"] not in READ_METHODS and path not in NOT_ACTIONS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._is_action(scope):
            access: Access = scope["app"].state.access
            try:
                # No receive channel: these checks read headers only.
                access.check_action(Request(scope))
            except Refusal as refusal:
                challenge = {"WWW-Authenticate": "Bearer"} if refusal.challenge else None
                await _refuse(refusal.status, refusal.message, challenge)(scope, receive, send)
                return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await _refuse(400, f"invalid Content-Length: {declared!r}")(scope, receive, send)
                return
            if length > self.max_body:
                too_large = BodyTooLarge(self.max_body)
                await _refuse(413, too_large.detail)(scope, receive, send)
                return
        await self._bounded(scope, receive, send)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive channel that stops at the limit."""
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            # Raised past the app's handlers (a reader that is not FastAPI's): answer it
            # here, unless an answer has begun, which only the server can end now.
            if started:
                raise
            await _refuse(exc.status_code, exc.detail)(scope, receive, send)
