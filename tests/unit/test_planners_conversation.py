"""The escalation protocol shared by the LLM planners, over a scripted ``Chat`` (our seam)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from driftmend.model import ToolResult
from driftmend.planners.base import PlannerAnswer
from driftmend.planners.conversation import (
    LLMAnswer,
    ModelError,
    ModelReply,
    converse,
    outcome_of,
)
from driftmend.planners.prompt import ToolCall, build_prompt
from driftmend.tools.base import Tool
from tests.fakes.escalation import KEY, ReadTools, policy, request

SECRET = "AIzaSyTHE-SECRET-KEY-0123456789abcdefghij"


class Scripted:
    """A ``Chat`` that answers from a list and records what it was asked and told."""

    def __init__(self, *replies: ModelReply | ModelError | Exception) -> None:
        self.replies = list(replies)
        self.declared: list[list[str]] = []
        self.answered: list[list[Mapping[str, Any]]] = []

    async def ask(self, tools: Sequence[Tool[Any]]) -> ModelReply:
        self.declared.append([t.name for t in tools])
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def answer(self, reply: ModelReply, results: Sequence[Mapping[str, Any]]) -> None:
        self.answered.append(list(results))


def reply(*calls: ToolCall, text: str = "", tokens: tuple[int, int] = (100, 10)) -> ModelReply:
    return ModelReply(tuple(calls), text, tokens[0], tokens[1], {"calls": len(calls)})


async def run(chat: Scripted, **kw: Any) -> LLMAnswer:
    req = kw.pop("req", None) or request(read_tool=kw.pop("read_tool", ReadTools()))
    return await converse(
        chat, req, build_prompt(req), planner="gemini", source="gemini", model="m", **kw
    )


async def test_reads_first_then_the_plan() -> None:
    reads = ReadTools()
    chat = Scripted(
        reply(ToolCall("redis_info"), text="let me look"),
        reply(ToolCall("redis_set_policy", {"policy": "allkeys-lru"}), text="evict"),
    )
    answer = await run(chat, read_tool=reads, prices=(1.0, 2.0))
    assert answer.error is None and answer.outcome == "ok"
    assert answer.plan is not None
    assert [(s.tool, s.target) for s in answer.plan.steps] == [("redis_set_policy", KEY)]
    assert answer.plan.reasoning == "let me look\nevict"
    assert reads.calls == [("redis_info", {})]
    assert chat.answered[0][0]["status"] == "ok"
    assert answer.tokens_in == 200 and answer.tokens_out == 20
    assert answer.cost_usd == (200 * 1.0 + 20 * 2.0) / 1e6
    assert [t["turn"] for t in answer.turns] == [1, 2]
    assert answer.turns[0]["results"][0]["data"]["maxmemory_policy"] == "noeviction"


async def test_the_last_turn_declares_write_tools_only() -> None:
    chat = Scripted(
        reply(ToolCall("redis_info")),
        reply(ToolCall("container_logs", {"lines": 20})),
        reply(ToolCall("redis_set_policy", {"policy": "allkeys-lru"})),
    )
    answer = await run(chat)
    assert answer.plan is not None
    assert "redis_info" in chat.declared[0]
    assert chat.declared[2] == [
        "redis_memory_purge",
        "redis_set_maxmemory",
        "redis_set_policy",
        "redis_flush",
    ]


async def test_turns_spent_reading_give_no_plan() -> None:
    req = request(policy(max_turns=1), read_tool=ReadTools())
    answer = await run(Scripted(reply(ToolCall("redis_info"))), req=req)
    assert answer.plan is None and answer.outcome == "no-plan"
    assert "only investigated" in (answer.error or "")


async def test_reads_in_the_plan_answer_are_dropped_and_writes_kept_in_order() -> None:
    chat = Scripted(
        reply(
            ToolCall("redis_memory_purge"),
            ToolCall("redis_info"),
            ToolCall("redis_set_policy", {"policy": "allkeys-lru"}),
        )
    )
    answer = await run(chat)
    assert answer.plan is not None
    assert [s.tool for s in answer.plan.steps] == ["redis_memory_purge", "redis_set_policy"]


async def test_undeclared_and_unknown_tools_are_plan_steps_not_reads() -> None:
    reads = ReadTools()
    answer = await run(Scripted(reply(ToolCall("pg_sessions"), ToolCall("rm_rf"))), read_tool=reads)
    assert reads.calls == []
    assert answer.plan is not None and [s.tool for s in answer.plan.steps] == [
        "pg_sessions",
        "rm_rf",
    ]


async def test_a_text_answer_says_why_there_is_no_plan() -> None:
    answer = await run(Scripted(reply(text="No declared tool can add memory to the host.")))
    assert answer.plan is None and answer.outcome == "no-plan"
    assert (
        answer.error
        == "the model proposed no tool call: No declared tool can add memory to the host."
    )


async def test_model_errors_and_bugs_become_error_answers() -> None:
    answer = await run(Scripted(ModelError("rate-limited", "rate limited after retries")))
    assert answer.plan is None and answer.outcome == "rate-limited"
    assert answer.error == "gemini: rate limited after retries"
    answer = await run(Scripted(KeyError("surprise")))
    assert answer.plan is None and answer.outcome == "error"
    assert "unexpected KeyError" in (answer.error or "")


async def test_read_tools_missing_or_raising_are_results_for_the_model() -> None:
    class Raising(ReadTools):
        async def __call__(self, name: str, params: Mapping[str, Any]) -> ToolResult:
            raise RuntimeError("driver exploded")

    for read_tool in (None, Raising()):
        chat = Scripted(reply(ToolCall("redis_info")), reply(ToolCall("redis_memory_purge")))
        req = request(read_tool=read_tool)
        answer = await converse(
            chat, req, build_prompt(req), planner="gemini", source="gemini", model="m"
        )
        assert answer.plan is not None
        assert chat.answered[0][0]["status"] in ("refused", "error")


async def test_the_secret_is_scrubbed_from_everything_the_answer_holds() -> None:
    chat = Scripted(
        reply(ToolCall("redis_info"), text=f"I saw {SECRET}"),
        reply(ToolCall("redis_set_policy", {"policy": SECRET}), text=SECRET),
    )
    reads = ReadTools({"redis_info": ToolResult.success(echo=SECRET)})
    answer = await run(chat, read_tool=reads, secrets=[SECRET])
    assert answer.plan is not None
    assert SECRET not in repr(answer)
    assert SECRET not in repr(chat.answered)  # nor was it sent back to the model
    error_answer = await run(
        Scripted(ModelError("error", f"HTTP 400: bad key {SECRET}")), secrets=[SECRET]
    )
    assert SECRET not in repr(error_answer)


def test_outcome_of_any_answer() -> None:
    plain = PlannerAnswer(plan=None, planner="x", model="m", prompt="", response="", error="boom")
    assert outcome_of(plain) == "error"
    assert outcome_of(LLMAnswer(None, "x", "m", "", "", outcome="timeout")) == "timeout"
