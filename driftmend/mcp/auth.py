"""Who may call which tool over MCP: callers, scopes, bearer tokens and approvals.

Stage: *act*, at its outer edge. The guard admits the controller's own plans; these rules
admit the calls of everything else. ``AccessRules.check`` is pure (no I/O, no clock) and
answers with a refusal reason or None, so every rule has a unit test of its own.

The rules, in order:

1. The controller's own in-process session is trusted: the guard admitted the plan (its
   allowlist, budget and approval of destructive steps) before ``act`` calls the tool.
2. Every other caller needs the read scope (over HTTP: a valid read or write token).
3. A tool that changes the stack needs the server to allow writes and the caller to hold
   the write scope (over HTTP: the write token).
4. A destructive tool also needs an approval: the ``approval_token`` argument equal to the
   configured approval token. With no approval token configured it cannot run over MCP.

Secrets are ``SecretStr`` and compared in constant time; ``redact`` strips them from
arguments before anything is logged, returned or stored.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr

from driftmend.settings import Settings
from driftmend.tools.base import Effect

READ = "read"
WRITE = "write"
APPROVAL_ARG = "approval_token"
# Argument names whose values are never logged, returned or stored.
_SECRET_WORDS = ("token", "password", "secret", "authorization")


@dataclass(frozen=True)
class Caller:
    """Who makes a call, named for the audit trail, and the scopes it holds."""

    name: str
    scopes: frozenset[str]
    trusted: bool = False


# The controller's own in-memory session: its plans passed the guard before act runs.
CONTROLLER = Caller("controller", frozenset({READ, WRITE}), trusted=True)
# Whoever started `driftmend mcp --transport stdio`: a local user, limited by allow_writes.
LOCAL = Caller("mcp:stdio", frozenset({READ, WRITE}))
# An HTTP request that carried no valid token (the bearer middleware answers 401 first).
ANONYMOUS = Caller("mcp:http:anonymous", frozenset())


def http_caller(token: AccessToken | None) -> Caller:
    """The caller an HTTP request's verified bearer token stands for."""
    if token is None:
        return ANONYMOUS
    return Caller(f"mcp:http:{token.client_id}", frozenset(token.scopes))


@dataclass(frozen=True)
class AccessRules:
    """What outside callers may do on one server. Pure."""

    allow_writes: bool = False
    approval_token: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessRules:
        """The rules ``driftmend mcp`` serves under."""
        return cls(settings.mcp_allow_writes, settings.mcp_approval_token)

    def check(
        self, tool: str, effect: Effect, caller: Caller, approval: str | None = None
    ) -> str | None:
        """None when ``caller`` may call ``tool`` now; otherwise why not, in one sentence."""
        if caller.trusted:
            return None
        if READ not in caller.scopes:
            return f"{tool}: {caller.name} holds no read scope; send a read or write bearer token"
        if effect is Effect.READ:
            return None
        if not self.allow_writes:
            return (
                f"{tool} changes the stack ({effect.value}) and this server serves read tools "
                "only; start it with DRIFTMEND_MCP_ALLOW_WRITES=true to allow writes"
            )
        if WRITE not in caller.scopes:
            return (
                f"{tool} changes the stack ({effect.value}) and needs the write scope; "
                f"{caller.name} holds read scope only (use the write token)"
            )
        if effect is Effect.DESTRUCTIVE:
            if self.approval_token is None:
                return (
                    f"{tool} is destructive and no approval token is configured "
                    "(DRIFTMEND_MCP_APPROVAL_TOKEN), so it cannot be approved over MCP; "
                    "an operator can approve it in the dashboard"
                )
            if approval is None:
                return f"{tool} is destructive: pass the operator's {APPROVAL_ARG} to approve it"
            if not _same(approval, self.approval_token):
                return (
                    f"{tool} is destructive and the {APPROVAL_ARG} given is not the approval token"
                )
        return None

    def visible(self, effect: Effect, caller: Caller) -> bool:
        """Whether ``tools/list`` shows a tool of ``effect`` to ``caller``: the ones it may call.

        A destructive tool counts as callable when an approval token exists, since the
        caller may hold it.
        """
        approval = self.approval_token.get_secret_value() if self.approval_token else None
        return self.check("tool", effect, caller, approval) is None


class BearerTokens:
    """The SDK's ``TokenVerifier`` for the two static tokens of the settings.

    The write token grants read and write scopes, the read token the read scope; an unset
    token matches nothing, so with neither set every HTTP request is refused with 401.
    """

    def __init__(self, read: SecretStr | None, write: SecretStr | None) -> None:
        self._read = read
        self._write = write

    @classmethod
    def from_settings(cls, settings: Settings) -> BearerTokens:
        """The tokens of ``settings``."""
        return cls(settings.mcp_read_token, settings.mcp_write_token)

    @property
    def configured(self) -> bool:
        """True when at least one token can be presented."""
        return self._read is not None or self._write is not None

    async def verify_token(self, token: str) -> AccessToken | None:
        """The scopes ``token`` grants, or None when it is no token of ours."""
        # Compare against both tokens always, so timing does not tell which one matched.
        is_write = self._write is not None and _same(token, self._write)
        is_read = self._read is not None and _same(token, self._read)
        if is_write:
            return AccessToken(token="write-token", client_id="write-token", scopes=[READ, WRITE])
        if is_read:
            return AccessToken(token="read-token", client_id="read-token", scopes=[READ])
        return None


def redact(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``arguments`` with every secret-looking value replaced, safe to log, return or store."""
    return {
        k: "***" if any(w in k.lower() for w in _SECRET_WORDS) else v for k, v in arguments.items()
    }


def _same(given: str, secret: SecretStr) -> bool:
    expected = secret.get_secret_value()
    # An empty secret matches nothing: settings refuse one, and this keeps it so elsewhere.
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
