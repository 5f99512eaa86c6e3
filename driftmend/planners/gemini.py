"""The Gemini planner: escalations answered by Gemini function calling, via ``google-genai``.

Stage: *plan* (escalation). The only module that imports ``google-genai`` (STYLE rule 6).
The tools a policy allows are declared as functions from their JSON schemas
(``parameters_json_schema``); automatic function calling is off, because the controller,
not the SDK, decides what runs. The conversation protocol (read tools first, then the plan)
is ``conversation.converse``; this module is the wire format and the error seam:

- retries with exponential backoff on 408, 429 and 5xx and on connect/read timeouts are
  the SDK's own (``HttpRetryOptions``), ``settings.llm_retries`` of them;
- the request timeout is ``HttpOptions.timeout`` (milliseconds), per attempt;
- every SDK or HTTP error and every malformed answer becomes ``ModelError``, so ``plan``
  answers ``PlannerAnswer(plan=None, error=...)`` and never raises.

The API key is only ever in the client's ``x-goog-api-key`` header. It is never logged,
never put in a prompt, and scrubbed from the answer in case a server echoes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from driftmend.planners.base import PlannerAnswer, PlanRequest
from driftmend.planners.conversation import ModelError, ModelReply, converse
from driftmend.planners.prompt import (
    Prompt,
    ToolCall,
    build_prompt,
    parameters_schema,
    tool_description,
)
from driftmend.tools.base import Tool

# List prices in USD per million tokens (input, output), for the cost estimate only; the
# longest matching prefix of the model name wins. Checked November 2026; unknown models
# cost 0 in the estimate rather than a guess.
PRICES: dict[str, tuple[float, float]] = {
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}
RETRY_STATUS = [408, 429, 500, 502, 503, 504]
# The SDK's logger: its retry hook logs each failed attempt's error text at INFO.
SDK_LOGGER = "google_genai._api_client"


class _KeyScrubber(logging.Filter):
    """Blanks an API key out of the SDK's own log records, should an error text echo it."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self._key = key

    def filter(self, record: logging.LogRecord) -> bool:
        if self._key and self._key in record.getMessage():
            record.msg = record.getMessage().replace(self._key, "[redacted]")
            record.args = None
        return True


def price_of(model: str, prices: Mapping[str, tuple[float, float]] = PRICES) -> tuple[float, float]:
    """The (input, output) price per million tokens of ``model``; (0, 0) when unknown."""
    model = model.removeprefix("models/")
    best = max((p for p in prices if model.startswith(p)), key=len, default=None)
    return prices[best] if best else (0.0, 0.0)


class GeminiPlanner:
    """Asks Gemini for a plan of tool calls; see the module docstring.

    ``retry_initial_delay``/``retry_max_delay`` shape the SDK's backoff (seconds); tests
    shorten them, production keeps the defaults.
    """

    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "gemini-2.5-flash",
        base_url: str | None = None,
        temperature: float = 0.1,
        timeout_s: float = 30.0,
        retries: int = 3,
        retry_initial_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        max_output_tokens: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self._key = api_key
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._clock = clock
        self._scrubber = _KeyScrubber(api_key)
        logging.getLogger(SDK_LOGGER).addFilter(self._scrubber)
        # vertexai=False and an explicit key: the SDK must not pick a backend or a key from
        # the environment (settings.py is the one reader of the environment).
        self._client = genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version="v1beta",
                timeout=max(1, int(timeout_s * 1000)),
                retry_options=types.HttpRetryOptions(
                    attempts=retries + 1,
                    initial_delay=retry_initial_delay,
                    max_delay=retry_max_delay,
                    http_status_codes=RETRY_STATUS,
                ),
                # The SDK prefers aiohttp whenever it is installed (kopf brings it), and its
                # aiohttp session subclasses ClientSession, which aiohttp deprecates: a
                # transport of our own keeps it on httpx2, the project's one HTTP client.
                async_client_args={"transport": httpx2.AsyncHTTPTransport()},
            ),
        )

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        """Propose a plan for ``request``; never raises for a model's or a network's fault."""
        prompt = build_prompt(request)
        chat = _GeminiChat(
            self._client, self.model, prompt, self._temperature, self._max_output_tokens
        )
        return await converse(
            chat,
            request,
            prompt,
            planner=self.name,
            source="gemini",
            model=self.model,
            secrets=(self._key,),
            prices=price_of(self.model),
            clock=self._clock,
        )

    async def close(self) -> None:
        """Close both of the SDK's HTTP clients (it makes a sync and an async one)."""
        logging.getLogger(SDK_LOGGER).removeFilter(self._scrubber)
        await self._client.aio.aclose()
        self._client.close()


class _GeminiChat:
    """One conversation in ``generateContent``'s terms: ``contents`` grow turn by turn."""

    def __init__(
        self,
        client: genai.Client,
        model: str,
        prompt: Prompt,
        temperature: float,
        max_output_tokens: int,
    ):
        self._client = client
        self._model = model
        self._system = prompt.system
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._contents: list[types.Content] = [
            types.Content(role="user", parts=[types.Part(text=prompt.user)])
        ]
        self._last: types.Content | None = None

    def _config(self, tools: Sequence[Tool[Any]]) -> types.GenerateContentConfig:
        declarations = [
            types.FunctionDeclaration(
                name=t.name,
                description=tool_description(t),
                parameters_json_schema=parameters_schema(t),
            )
            for t in tools
        ]
        return types.GenerateContentConfig(
            system_instruction=self._system,
            temperature=self._temperature,
            max_output_tokens=self._max_output_tokens,
            tools=[types.Tool(function_declarations=declarations)] if declarations else None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            # AUTO, not ANY: a model that finds no fit tool may say so instead of guessing.
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=types.FunctionCallingConfigMode.AUTO
                )
            )
            if declarations
            else None,
        )

    async def ask(self, tools: Sequence[Tool[Any]]) -> ModelReply:
        try:
            response = await self._client.aio.models.generate_content(
                model=self._model, contents=list(self._contents), config=self._config(tools)
            )
        except genai_errors.APIError as exc:
            raise _translate_api_error(exc) from exc
        except (ValueError, pydantic.ValidationError) as exc:  # JSON or shape of the answer
            raise ModelError("malformed", f"malformed answer: {_first_line(exc)}") from exc
        except Exception as exc:  # the transport errors of whichever HTTP client the SDK runs on
            if "Timeout" in type(exc).__name__:
                raise ModelError("timeout", f"no answer in time ({type(exc).__name__})") from exc
            raise ModelError("error", f"{type(exc).__name__}: {_first_line(exc)}") from exc
        return self._reply(response)

    def _reply(self, response: types.GenerateContentResponse) -> ModelReply:
        raw = response.model_dump(mode="json", exclude_none=True, exclude={"sdk_http_response"})
        usage = response.usage_metadata
        tokens_in = (usage.prompt_token_count or 0) if usage else 0
        tokens_out = (
            (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0) if usage else 0
        )
        candidate = response.candidates[0] if response.candidates else None
        if candidate is None:
            feedback = response.prompt_feedback
            blocked = (
                f" (blocked: {feedback.block_reason.value})"
                if feedback and feedback.block_reason
                else ""
            )
            return ModelReply(
                (), f"the answer has no candidate{blocked}", tokens_in, tokens_out, raw
            )
        finish = str(candidate.finish_reason.value) if candidate.finish_reason else None
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        calls: list[ToolCall] = []
        texts: list[str] = []
        for part in parts:
            if part.function_call is not None:
                fc = part.function_call
                if not fc.name:
                    raise ModelError("malformed", "malformed answer: a function call has no name")
                calls.append(ToolCall(fc.name, dict(fc.args or {}), fc.id))
            elif part.text and not part.thought:
                texts.append(part.text)
        self._last = candidate.content
        return ModelReply(tuple(calls), "\n".join(texts), tokens_in, tokens_out, raw, finish)

    def answer(self, reply: ModelReply, results: Sequence[Mapping[str, Any]]) -> None:
        # The model's own content goes back unchanged: Gemini 3 needs the thought
        # signatures it carries on function-call parts.
        if self._last is not None:
            self._contents.append(self._last)
        self._contents.append(
            types.Content(
                role="user",
                parts=[
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=call.id, name=call.name, response={"output": dict(result)}
                        )
                    )
                    for call, result in zip(reply.calls, results, strict=True)
                ],
            )
        )


def _translate_api_error(exc: genai_errors.APIError) -> ModelError:
    code = exc.code
    detail = f"HTTP {code} {exc.status or ''}: {exc.message or ''}".strip()
    if code == 429:
        return ModelError("rate-limited", f"rate limited after retries ({detail})")
    if code in (408, 504):
        return ModelError("timeout", f"the API timed out ({detail})")
    if code >= 500:
        return ModelError("server-error", f"server error after retries ({detail})")
    return ModelError("error", detail)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
