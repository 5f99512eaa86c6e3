"""A local server speaking the Gemini API's ``generateContent`` REST protocol, scriptably.

Faithful to the public reference (``POST /v1beta/models/{model}:generateContent``): the key
travels in the ``x-goog-api-key`` header (or the ``key`` query parameter); a request carries
``contents`` (and here ``tools[].functionDeclarations``, ``toolConfig``,
``systemInstruction``, ``generationConfig``); an answer carries
``candidates[].content.parts[].functionCall {name, args}``, ``finishReason`` and
``usageMetadata {promptTokenCount, candidatesTokenCount, totalTokenCount}``; an error is
``{"error": {"code", "message", "status"}}`` with the HTTP status of ``code``.

Tests queue answers with ``script(...)``: ``calls(...)`` (function calls), ``text(...)``,
``error(429)``, ``raw(...)`` (a malformed body) and ``slow(...)`` (held past a timeout).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.scripted import Reply, Request, ScriptedServer, serving

PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")
STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error(code: int, message: str = "", **kw: Any) -> Reply:
    """An error answer as Google APIs send it."""
    body = {
        "error": {
            "code": code,
            "message": message or f"fake error {code}",
            "status": STATUS.get(code, "UNKNOWN"),
        }
    }
    return Reply(code, body, **kw)


def answer(
    parts: list[dict[str, Any]],
    *,
    tokens: tuple[int, int] = (120, 30),
    finish: str = "STOP",
    model: str = "gemini-2.5-flash",
) -> Reply:
    """A ``GenerateContentResponse`` with one candidate made of ``parts``."""
    return Reply(
        200,
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": finish,
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": tokens[0],
                "candidatesTokenCount": tokens[1],
                "totalTokenCount": tokens[0] + tokens[1],
            },
            "modelVersion": model,
            "responseId": "fake-response",
        },
    )


def call(name: str, **args: Any) -> dict[str, Any]:
    """One ``functionCall`` part."""
    return {"functionCall": {"name": name, "args": args}}


def calls(*parts: dict[str, Any], tokens: tuple[int, int] = (120, 30)) -> Reply:
    """An answer made of function-call parts (``call(...)``), optionally with a text part."""
    return answer(list(parts), tokens=tokens)


def text(words: str, tokens: tuple[int, int] = (120, 30)) -> Reply:
    """An answer with text and no function call."""
    return answer([{"text": words}], tokens=tokens)


def raw(body: bytes | Any, status: int = 200) -> Reply:
    """A body as given: malformed JSON, or JSON of the wrong shape."""
    return Reply(status, body)


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """``then`` (default: an empty answer), held back for ``seconds``."""
    base = then or text("late")
    return Reply(base.status, base.body, base.headers, delay=seconds)


def _route(request: Request, server: ScriptedServer) -> Reply:
    url = urlsplit(request.path)
    if PATH.match(url.path) is None:
        return error(404, f"unknown path {url.path}")
    key = request.headers.get("x-goog-api-key") or parse_qs(url.query).get("key", [""])[0]
    if not key:
        return error(403, "Method doesn't allow unregistered callers. Please use an API key.")
    try:
        body = request.json()
    except ValueError:
        return error(400, "Invalid JSON payload received.")
    if not isinstance(body, dict) or not body.get("contents"):
        return error(400, "* GenerateContentRequest.contents: contents is not specified")
    problem = _invalid(body)
    if problem is not None:
        return error(400, problem)
    reply = server.next_reply(request)
    return reply if reply is not None else error(500, "the fake's script is used up")


# Function names as the API reference allows them.
NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.-]{0,63}$")


def _invalid(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in ``body`` with a 400, in its words; None if valid."""
    for tool in body.get("tools") or []:
        for d in tool.get("functionDeclarations") or []:
            if not NAME.match(str(d.get("name", ""))):
                return f"* GenerateContentRequest.tools[0].function_declarations: invalid name {d.get('name')!r}"
            if "parameters" in d and "parametersJsonSchema" in d:
                return "* parameters and parameters_json_schema cannot both be set"
    limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        return "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
    contents = body["contents"]
    for i, content in enumerate(contents):
        answered = [p["functionResponse"]["name"] for p in content.get("parts") or []
                    if "functionResponse" in p]  # fmt: skip
        if not answered:
            continue
        before = contents[i - 1] if i > 0 else {}
        called = [p["functionCall"]["name"] for p in before.get("parts") or []
                  if "functionCall" in p]  # fmt: skip
        if before.get("role") != "model" or sorted(answered) != sorted(called):
            return (
                "Please ensure that function response turn comes immediately after a "
                "function call turn, with one response per call."
            )
    if contents[-1].get("role") == "model":
        return "Please ensure that the last turn is a user turn (or a function response)."
    return None


@contextmanager
def fake_gemini() -> Iterator[ScriptedServer]:
    """A started fake Gemini API; ``.url`` is the client's ``base_url``."""
    with serving(_route) as server:
        yield server


def sent_contents(request: Request) -> list[dict[str, Any]]:
    """The ``contents`` of a recorded request."""
    contents: list[dict[str, Any]] = request.json()["contents"]
    return contents


def declared(request: Request) -> list[str]:
    """The function names a recorded request declared."""
    body = request.json()
    return [
        d["name"]
        for tool in body.get("tools") or []
        for d in tool.get("functionDeclarations") or tool.get("function_declarations") or []
    ]
