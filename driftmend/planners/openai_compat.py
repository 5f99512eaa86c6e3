"""The OpenAI-compatible planner: escalations answered by a local or private model.

Stage: *plan* (escalation). Any server that speaks OpenAI's Chat Completions with tool
calls (Ollama, vLLM, llama.cpp server, OpenAI itself) through the ``openai`` SDK pointed at
``settings.openai_base_url``. Same protocol as the Gemini planner (``conversation``), other
wire format: tools are ``{"type": "function", "function": {...}}``, calls come back in
``choices[0].message.tool_calls`` with JSON-text ``arguments``, results go back as ``tool``
messages. Retries with backoff on 408/409/429/5xx and timeouts are the SDK's
(``max_retries``, honouring ``Retry-After``); ``timeout`` is per attempt.

Local servers often need no key: a placeholder is sent then, since the SDK insists on one.
A real key is treated like Gemini's: never logged, never prompted, scrubbed from answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import openai
from openai.types.chat import ChatCompletion

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

NO_KEY = "no-key"  # what a keyless local server is sent


class OpenAICompatPlanner:
    """Asks an OpenAI-compatible server for a plan of tool calls; see the module docstring.

    ``prices`` (USD per million tokens in, out) feed the cost estimate: 0 for a local model.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        temperature: float = 0.1,
        timeout_s: float = 30.0,
        retries: int = 3,
        prices: tuple[float, float] = (0.0, 0.0),
        max_output_tokens: int = 2048,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model = model
        self._key = api_key
        self._max_output_tokens = max_output_tokens
        self._temperature = temperature
        self._prices = prices
        self._clock = clock
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=retries,
        )

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        """Propose a plan for ``request``; never raises for a model's or a network's fault."""
        prompt = build_prompt(request)
        chat = _OpenAIChat(
            self._client, self.model, prompt, self._temperature, self._max_output_tokens
        )
        return await converse(
            chat,
            request,
            prompt,
            planner=self.name,
            source="openai",
            model=self.model,
            secrets=(self._key,) if self._key else (),
            prices=self._prices,
            clock=self._clock,
        )

    async def close(self) -> None:
        """Close the SDK's HTTP client."""
        await self._client.close()


class _OpenAIChat:
    """One conversation in Chat Completions' terms: ``messages`` grow turn by turn."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        prompt: Prompt,
        temperature: float,
        max_output_tokens: int,
    ):
        self._client = client
        self._model = model
        self._temperature = temperature
        self._max_output_tokens = max_output_tokens
        self._messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        self._last: dict[str, Any] | None = None

    async def ask(self, tools: Sequence[Tool[Any]]) -> ModelReply:
        declared = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": tool_description(t),
                    "parameters": parameters_schema(t),
                },
            }
            for t in tools
        ]
        extra: dict[str, Any] = {"tools": declared, "tool_choice": "auto"} if declared else {}
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=self._messages,  # type: ignore[arg-type]  # plain dicts, as sent
                temperature=self._temperature,
                # max_tokens, not max_completion_tokens: what Ollama, vLLM and llama.cpp read.
                max_tokens=self._max_output_tokens,
                **extra,
            )
        except openai.APITimeoutError as exc:
            raise ModelError("timeout", "no answer in time after retries") from exc
        except openai.RateLimitError as exc:
            raise ModelError(
                "rate-limited", f"rate limited after retries ({_status(exc)})"
            ) from exc
        except openai.InternalServerError as exc:
            raise ModelError(
                "server-error", f"server error after retries ({_status(exc)})"
            ) from exc
        except openai.APIStatusError as exc:
            raise ModelError("error", _status(exc)) from exc
        except openai.APIConnectionError as exc:
            raise ModelError("error", f"cannot reach the server: {exc}") from exc
        except ValueError as exc:  # a body that is not JSON
            raise ModelError("malformed", f"malformed answer: {_first_line(exc)}") from exc
        # The SDK does not validate the body's shape: a JSON list comes back as a list.
        if not isinstance(response, ChatCompletion):
            raise ModelError("malformed", "malformed answer: not a chat.completion object")
        return self._reply(response)

    def _reply(self, response: ChatCompletion) -> ModelReply:
        raw = response.model_dump(mode="json", exclude_none=True)
        usage = response.usage
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        if not response.choices:
            return ModelReply((), "the answer has no choice", tokens_in, tokens_out, raw)
        choice = response.choices[0]
        message = choice.message
        calls: list[ToolCall] = []
        for tc in message.tool_calls or []:
            fn = getattr(tc, "function", None)  # custom (non-function) tool calls have none
            if fn is None or not fn.name:
                raise ModelError("malformed", "malformed answer: a tool call has no function name")
            try:
                args = json.loads(fn.arguments or "{}")
            except ValueError as exc:
                raise ModelError(
                    "malformed", f"malformed answer: {fn.name} arguments are not JSON: {exc}"
                ) from exc
            if not isinstance(args, dict):
                raise ModelError(
                    "malformed", f"malformed answer: {fn.name} arguments are not an object"
                )
            calls.append(ToolCall(fn.name, args, tc.id))
        self._last = message.model_dump(mode="json", exclude_none=True)
        text = message.content or message.refusal or ""
        return ModelReply(tuple(calls), text, tokens_in, tokens_out, raw, choice.finish_reason)

    def answer(self, reply: ModelReply, results: Sequence[Mapping[str, Any]]) -> None:
        if self._last is not None:
            self._messages.append(self._last)
        for call, result in zip(reply.calls, results, strict=True):
            self._messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id or call.name,
                    "content": json.dumps(result),
                }
            )


def _status(exc: openai.APIStatusError) -> str:
    return f"HTTP {exc.status_code}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
