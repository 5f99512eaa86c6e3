"""The multi-turn exchange with a model, shared by the Gemini and OpenAI-compatible planners.

Stage: *plan* (escalation). A backend knows its wire format (a ``Chat``: ask, then answer
the model's calls); this module knows the protocol of an escalation, the same for both:

1. Ask with the prompt and the declared tools.
2. If the answer calls only declared read tools on the drifted resource, and turns remain,
   run them through ``request.read_tool`` and send their (redacted) results back; go to 1.
3. The first answer that calls anything else is the plan: its non-read calls, in order, as
   proposed (read calls in that same answer are dropped: they would only re-read). The
   last turn declares the write tools only, so the model must conclude.
4. An answer with no call, a turn budget spent on reading, an error or a malformed answer
   give no plan, and ``error`` says why.

Nothing here raises for a model's or a network's fault: a backend translates its SDK's
errors into ``ModelError`` at its seam, and anything unexpected becomes an error answer too.
The secrets the backend names (its API key) are scrubbed from everything the answer holds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from driftmend.model import PlanSource, ToolResult
from driftmend.planners.base import PlannerAnswer, PlanRequest
from driftmend.planners.prompt import (
    Prompt,
    ToolCall,
    is_read_call,
    plan_of,
    read_params,
    tool_output,
)
from driftmend.redaction import MAX_TEXT, REDACTED, truncate
from driftmend.tools.base import Effect, Tool

log = logging.getLogger("driftmend.planners")

# How a request to a model ended: the ``outcome`` label of ``driftmend_llm_requests_total``.
OUTCOMES = ("ok", "no-plan", "timeout", "rate-limited", "server-error", "malformed", "error")


class ModelError(Exception):
    """A backend's failure, translated at its seam: ``outcome`` is one of ``OUTCOMES``."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class ModelReply:
    """One answer of a model: its calls, its text, its tokens and the answer as JSON data."""

    calls: tuple[ToolCall, ...]
    text: str
    tokens_in: int
    tokens_out: int
    raw: Mapping[str, Any]
    finish: str | None = None


class Chat(Protocol):
    """One conversation with a model, in a backend's wire format."""

    async def ask(self, tools: Sequence[Tool[Any]]) -> ModelReply:
        """Send the conversation so far, declaring ``tools``; raises only ``ModelError``."""

    def answer(self, reply: ModelReply, results: Sequence[Mapping[str, Any]]) -> None:
        """Add ``reply`` and the results of its calls (in its calls' order) to the conversation."""


@dataclass(frozen=True)
class LLMAnswer(PlannerAnswer):
    """A ``PlannerAnswer`` with how the request ended and the model's price for ``cost_usd``."""

    outcome: str = "ok"
    usd_per_mtok_in: float = 0.0
    usd_per_mtok_out: float = 0.0

    @property
    def cost_usd(self) -> float:
        """Tokens times the model's list price: an estimate (no caching, no free tier)."""
        return (
            self.tokens_in * self.usd_per_mtok_in + self.tokens_out * self.usd_per_mtok_out
        ) / 1_000_000


def outcome_of(answer: PlannerAnswer) -> str:
    """The metrics outcome of any planner's answer."""
    if isinstance(answer, LLMAnswer):
        return answer.outcome
    return "ok" if answer.plan is not None else "error" if answer.error else "no-plan"


@dataclass
class _Tally:
    tokens_in: int = 0
    tokens_out: int = 0
    turns: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    last_raw: Mapping[str, Any] = field(default_factory=dict)


async def converse(
    chat: Chat,
    request: PlanRequest,
    prompt: Prompt,
    *,
    planner: str,
    source: PlanSource,
    model: str,
    secrets: Sequence[str] = (),
    prices: tuple[float, float] = (0.0, 0.0),
    clock: Callable[[], float] = time.monotonic,
) -> LLMAnswer:
    """Run the escalation protocol (see the module docstring) and answer, never raising."""
    started = clock()
    tally = _Tally()
    outcome, error, plan = "ok", None, None
    try:
        plan, error, outcome = await _turns(chat, request, tally, source, secrets)
    except ModelError as exc:
        outcome, error = exc.outcome, f"{planner}: {exc}"
    except Exception as exc:  # a bug or an SDK surprise must not stop the controller's loop
        log.exception("%s planner failed on %s", planner, request.resource.key)
        outcome, error = "error", f"{planner}: unexpected {type(exc).__name__}: {exc}"
    answer = LLMAnswer(
        plan=plan,
        planner=planner,
        model=model,
        prompt=prompt.text,
        response=json.dumps(tally.last_raw, ensure_ascii=False, default=str),
        tokens_in=tally.tokens_in,
        tokens_out=tally.tokens_out,
        latency_s=clock() - started,
        error=error,
        turns=tuple(tally.turns),
        outcome=outcome,
        usd_per_mtok_in=prices[0],
        usd_per_mtok_out=prices[1],
    )
    return scrub(answer, secrets)


async def _turns(
    chat: Chat,
    request: PlanRequest,
    tally: _Tally,
    source: PlanSource,
    secrets: Sequence[str],
) -> tuple[Any, str | None, str]:
    key = request.resource.key
    tools = request.tools
    writers = [t for t in tools if t.effect is not Effect.READ]
    max_turns = request.escalate.max_turns
    for turn in range(1, max_turns + 1):
        last = turn == max_turns
        declared = writers if last and writers else tools
        reply = await chat.ask(declared)
        tally.tokens_in += reply.tokens_in
        tally.tokens_out += reply.tokens_out
        tally.last_raw = reply.raw
        record: dict[str, Any] = {
            "turn": turn,
            "declared": [t.name for t in declared],
            "reply": reply.raw,
            "calls": [{"name": c.name, "args": dict(c.args)} for c in reply.calls],
        }
        tally.turns.append(record)
        if reply.text.strip():
            tally.texts.append(reply.text.strip())
        if not reply.calls:
            why = truncate(reply.text.strip(), MAX_TEXT) or f"finish reason {reply.finish}"
            return None, f"the model proposed no tool call: {why}", "no-plan"
        reads = [c for c in reply.calls if is_read_call(c, tools, key)]
        steps = [c for c in reply.calls if not is_read_call(c, tools, key)]
        if steps:
            reasoning = "\n".join(tally.texts)
            return plan_of(steps, request, source, reasoning), None, "ok"
        if last:
            return (
                None,
                f"the model only investigated ({len(reads)} read call(s) on the last of "
                f"{max_turns} turns) and proposed no fix",
                "no-plan",
            )
        results = [await _read(request, call, secrets) for call in reads]
        record["results"] = results
        chat.answer(reply, results)
    raise AssertionError("unreachable: the last turn always returns")  # pragma: no cover


async def _read(request: PlanRequest, call: ToolCall, secrets: Sequence[str]) -> dict[str, Any]:
    """Run one read call for the model; a failure is a result the model reads, not a raise."""
    if request.read_tool is None:
        result = ToolResult.refused("read tools are not available in this escalation")
    else:
        try:
            result = await request.read_tool(call.name, read_params(call))
        except Exception as exc:  # a ReadTool should return values; be safe if one raises
            result = ToolResult.failure(f"{type(exc).__name__}: {exc}")
    return tool_output(result, secrets)


def scrub(answer: LLMAnswer, secrets: Sequence[str]) -> LLMAnswer:
    """``answer`` with ``secrets`` (an API key) replaced wherever it appears, verbatim.

    The key only travels in a request header, so it should never be in an answer at all;
    this is the belt to those braces, because an answer is stored and shown whole. Only the
    exact secret is replaced: the plan's parameters are otherwise left as the model sent them.
    """
    secrets = [s for s in secrets if len(s) >= 4]
    if not secrets:
        return answer
    plan = answer.plan
    if plan is not None:
        plan = replace(
            plan,
            reasoning=_without(plan.reasoning, secrets),
            steps=tuple(
                replace(s, target=_without(s.target, secrets), params=_without(s.params, secrets))
                for s in plan.steps
            ),
        )
    return replace(
        answer,
        plan=plan,
        prompt=_without(answer.prompt, secrets),
        response=_without(answer.response, secrets),
        error=None if answer.error is None else _without(answer.error, secrets),
        turns=tuple(_without(t, secrets) for t in answer.turns),
    )


def _without(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {_without(str(k), secrets): _without(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without(v, secrets) for v in value]
    return value
