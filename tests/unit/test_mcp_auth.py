"""The MCP access rules: each rule has a test that fails when the rule is removed. Pure."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from driftmend.mcp.auth import (
    ANONYMOUS,
    CONTROLLER,
    LOCAL,
    READ,
    WRITE,
    AccessRules,
    BearerTokens,
    Caller,
    http_caller,
    redact,
)
from driftmend.settings import Settings
from driftmend.tools.base import Effect

READER = Caller("mcp:http:read-token", frozenset({READ}))
WRITER = Caller("mcp:http:write-token", frozenset({READ, WRITE}))
APPROVAL = SecretStr("approve-me")
OPEN = AccessRules(allow_writes=True, approval_token=APPROVAL)


def test_the_controller_is_trusted_for_every_effect() -> None:
    closed = AccessRules()  # no writes, no approval token: only trust lets it through
    for effect in Effect:
        assert closed.check("t", effect, CONTROLLER) is None


def test_a_caller_without_read_scope_gets_nothing() -> None:
    reason = OPEN.check("redis_info", Effect.READ, ANONYMOUS)
    assert reason is not None and "no read scope" in reason


def test_read_tools_need_only_the_read_scope() -> None:
    assert AccessRules().check("redis_info", Effect.READ, READER) is None
    assert AccessRules().check("redis_info", Effect.READ, LOCAL) is None


def test_writes_need_the_server_to_allow_them() -> None:
    reason = AccessRules(allow_writes=False).check("container_restart", Effect.REVERSIBLE, LOCAL)
    assert reason is not None and "read tools only" in reason
    assert "DRIFTMEND_MCP_ALLOW_WRITES" in reason
    assert (
        AccessRules(allow_writes=True).check("container_restart", Effect.REVERSIBLE, LOCAL) is None
    )


def test_writes_need_the_write_scope() -> None:
    reason = OPEN.check("container_restart", Effect.REVERSIBLE, READER)
    assert reason is not None and "write scope" in reason
    assert OPEN.check("container_restart", Effect.REVERSIBLE, WRITER) is None


def test_destructive_needs_the_write_scope_too() -> None:
    reason = OPEN.check("redis_flush", Effect.DESTRUCTIVE, READER, "approve-me")
    assert reason is not None and "write scope" in reason


def test_destructive_needs_writes_allowed_even_with_approval() -> None:
    rules = AccessRules(allow_writes=False, approval_token=APPROVAL)
    reason = rules.check("redis_flush", Effect.DESTRUCTIVE, WRITER, "approve-me")
    assert reason is not None and "read tools only" in reason


def test_destructive_without_an_approval_is_refused() -> None:
    reason = OPEN.check("redis_flush", Effect.DESTRUCTIVE, WRITER)
    assert reason is not None and "approval_token" in reason


def test_destructive_with_a_wrong_approval_is_refused() -> None:
    reason = OPEN.check("redis_flush", Effect.DESTRUCTIVE, WRITER, "guess")
    assert reason is not None and "not the approval token" in reason
    assert "approve-me" not in reason


def test_destructive_cannot_be_approved_when_no_approval_token_is_configured() -> None:
    rules = AccessRules(allow_writes=True, approval_token=None)
    reason = rules.check("redis_flush", Effect.DESTRUCTIVE, WRITER, "anything")
    assert reason is not None and "no approval token is configured" in reason


def test_destructive_with_the_approval_runs() -> None:
    assert OPEN.check("redis_flush", Effect.DESTRUCTIVE, WRITER, "approve-me") is None


def test_the_listing_shows_each_caller_what_it_may_call() -> None:
    closed = AccessRules()
    assert closed.visible(Effect.READ, LOCAL)
    assert not closed.visible(Effect.REVERSIBLE, LOCAL)
    assert not closed.visible(Effect.DESTRUCTIVE, LOCAL)
    assert not OPEN.visible(Effect.READ, ANONYMOUS)
    assert OPEN.visible(Effect.READ, READER) and not OPEN.visible(Effect.REVERSIBLE, READER)
    assert OPEN.visible(Effect.REVERSIBLE, WRITER) and OPEN.visible(Effect.DESTRUCTIVE, WRITER)
    no_approval = AccessRules(allow_writes=True)
    assert not no_approval.visible(Effect.DESTRUCTIVE, WRITER)
    assert all(closed.visible(e, CONTROLLER) for e in Effect)


async def test_bearer_tokens_grant_their_scopes_and_carry_no_secret() -> None:
    tokens = BearerTokens(SecretStr("r-secret"), SecretStr("w-secret"))
    write = await tokens.verify_token("w-secret")
    read = await tokens.verify_token("r-secret")
    assert write is not None and set(write.scopes) == {READ, WRITE}
    assert read is not None and read.scopes == [READ]
    assert "secret" not in write.token and "secret" not in read.token
    assert await tokens.verify_token("nope") is None
    assert await tokens.verify_token("") is None
    assert http_caller(read).scopes == frozenset({READ})
    assert http_caller(None) is ANONYMOUS


@pytest.mark.parametrize("token", ["", "x", "None"])
async def test_unset_tokens_match_nothing(token: str) -> None:
    tokens = BearerTokens(None, None)
    assert not tokens.configured
    assert await tokens.verify_token(token) is None


def test_redact_hides_secret_arguments() -> None:
    out = redact({"resource": "RedisCache/c", "approval_token": "s3", "Password": "p", "n": 1})
    assert out == {"resource": "RedisCache/c", "approval_token": "***", "Password": "***", "n": 1}


async def test_an_empty_token_matches_nothing() -> None:
    empty = AccessRules(allow_writes=True, approval_token=SecretStr(""))
    writer = Caller("w", frozenset({"read", "write"}))
    assert empty.check("redis_flush", Effect.DESTRUCTIVE, writer, "") is not None
    assert await BearerTokens(SecretStr(""), SecretStr("")).verify_token("") is None


def test_settings_treat_an_empty_token_as_unset_and_refuse_a_short_one() -> None:
    assert Settings(mcp_approval_token="", mcp_read_token=" ").mcp_approval_token is None
    with pytest.raises(ValidationError, match="too easy to guess"):
        Settings(mcp_write_token="short")
