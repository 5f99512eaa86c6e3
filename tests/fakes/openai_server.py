"""A local server speaking OpenAI's Chat Completions protocol, as Ollama, vLLM and llama.cpp do.

Faithful to the public reference (``POST /v1/chat/completions``): the key travels as
``Authorization: Bearer ...``; a request carries ``model``, ``messages`` and ``tools``
(``{"type": "function", "function": {name, description, parameters}}``); an answer is a
``chat.completion`` whose ``choices[0].message.tool_calls[]`` hold
``{id, type: "function", function: {name, arguments}}`` with ``arguments`` a JSON *string*,
and ``usage {prompt_tokens, completion_tokens, total_tokens}``; an error is
``{"error": {"message", "type", "param", "code"}}``.

Tests queue answers with ``script(...)``: ``calls(...)``, ``text(...)``, ``error(429)``,
``raw(...)`` and ``slow(...)``, as for the Gemini fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.fakes.scripted import Reply, Request, ScriptedServer, serving

PATH = "/v1/chat/completions"
TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


def error(code: int, message: str = "", headers: dict[str, str] | None = None) -> Reply:
    """An error answer as the OpenAI API sends it."""
    body = {
        "error": {
            "message": message or f"fake error {code}",
            "type": TYPES.get(code, "server_error"),
            "param": None,
            "code": None,
        }
    }
    return Reply(code, body, headers or {})


def completion(
    message: dict[str, Any],
    *,
    finish: str = "stop",
    tokens: tuple[int, int] = (120, 30),
    model: str = "llama3.1",
) -> Reply:
    """A ``chat.completion`` with one choice holding ``message``."""
    return Reply(
        200,
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": tokens[0],
                "completion_tokens": tokens[1],
                "total_tokens": tokens[0] + tokens[1],
            },
        },
    )


def call(name: str, **args: Any) -> dict[str, Any]:
    """One tool call; ``arguments`` is JSON text, as the API sends it."""
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def calls(*tool_calls: dict[str, Any], tokens: tuple[int, int] = (120, 30)) -> Reply:
    """An assistant message made of tool calls (``call(...)``); ids are filled in."""
    numbered = [{"id": f"call_{i}", **c} for i, c in enumerate(tool_calls)]
    message = {"role": "assistant", "content": None, "tool_calls": numbered}
    return completion(message, finish="tool_calls", tokens=tokens)


def text(words: str, tokens: tuple[int, int] = (120, 30)) -> Reply:
    """An assistant message with text and no tool call."""
    return completion({"role": "assistant", "content": words}, tokens=tokens)


def raw(body: bytes | Any, status: int = 200) -> Reply:
    """A body as given: malformed JSON, or JSON of the wrong shape."""
    return Reply(status, body)


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """``then`` (default: a text answer), held back for ``seconds``."""
    base = then or text("late")
    return Reply(base.status, base.body, base.headers, delay=seconds)


def _route(request: Request, server: ScriptedServer) -> Reply:
    if request.path.split("?")[0] != PATH:
        return error(404, f"unknown path {request.path}")
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or not auth.removeprefix("Bearer ").strip():
        return error(401, "You didn't provide an API key.")
    try:
        body = request.json()
    except ValueError:
        return error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
        return error(400, "'messages' and 'model' are required properties")
    reply = server.next_reply(request)
    return reply if reply is not None else error(500, "the fake's script is used up")


@contextmanager
def fake_openai() -> Iterator[ScriptedServer]:
    """A started fake OpenAI-compatible API; the client's ``base_url`` is ``.url + "/v1"``."""
    with serving(_route) as server:
        yield server


def declared(request: Request) -> list[str]:
    """The function names a recorded request declared."""
    return [t["function"]["name"] for t in request.json().get("tools") or []]
