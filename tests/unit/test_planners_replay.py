"""The replay planner: recorded plans matched by scenario, resource and signal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from driftmend.errors import ConfigurationError
from driftmend.planners.conversation import outcome_of
from driftmend.planners.replay import ReplayPlanner, load_recordings
from tests.fakes.escalation import KEY, guard, request


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "replays.json"
    path.write_text(json.dumps(doc))
    return path


PLANS = {
    "plans": [
        {"scenario": "other", "steps": [{"tool": "redis_flush"}]},
        {"key": "PostgresDatabase/*", "steps": [{"tool": "pg_restart"}]},
        {
            "key": "RedisCache/*",
            "signal": "redis.memory_used_ratio",
            "reasoning": "full under noeviction: evict",
            "steps": [{"tool": "redis_set_policy", "params": {"policy": "allkeys-lru"}}],
            "tokens_in": 900,
            "tokens_out": 40,
        },
    ]
}


async def test_the_first_matching_recording_is_the_plan(tmp_path: Path) -> None:
    planner = ReplayPlanner.from_file(write(tmp_path, PLANS), scenario="redis-memory-full")
    answer = await planner.plan(request())
    await planner.close()
    assert answer.error is None and answer.plan is not None
    assert (
        answer.plan.source == "replay" and answer.plan.reasoning == "full under noeviction: evict"
    )
    assert [(s.tool, s.target, dict(s.params)) for s in answer.plan.steps] == [
        ("redis_set_policy", KEY, {"policy": "allkeys-lru"})
    ]
    assert (answer.tokens_in, answer.tokens_out) == (900, 40)
    assert "redis.memory_used_ratio" in answer.prompt  # the prompt a model would have seen
    assert guard(answer.plan).admitted


async def test_scenario_entries_answer_their_scenario_only(tmp_path: Path) -> None:
    planner = ReplayPlanner.from_file(write(tmp_path, PLANS), scenario="other")
    answer = await planner.plan(request())
    assert answer.plan is not None and answer.plan.steps[0].tool == "redis_flush"
    assert "destructive and not approved" in guard(answer.plan).reason


async def test_no_match_and_recorded_errors_give_no_plan(tmp_path: Path) -> None:
    planner = ReplayPlanner.from_file(
        write(tmp_path, [{"key": "Container/*", "steps": [{"tool": "x"}]}])
    )
    answer = await planner.plan(request())
    assert answer.plan is None and outcome_of(answer) == "no-plan"
    assert answer.error == f"replay: no recorded plan for {KEY} (redis.memory_used_ratio)"
    planner = ReplayPlanner.from_file(write(tmp_path, [{"error": "HTTP 429 after retries"}]))
    answer = await planner.plan(request())
    assert answer.plan is None and answer.error == "replay: HTTP 429 after retries"


async def test_a_recorded_target_is_kept(tmp_path: Path) -> None:
    doc = [
        {
            "steps": [
                {
                    "tool": "redis_set_policy",
                    "target": "RedisCache/other",
                    "params": {"policy": "allkeys-lru"},
                }
            ]
        }
    ]
    answer = await ReplayPlanner.from_file(write(tmp_path, doc)).plan(request())
    assert answer.plan is not None
    assert (
        "targets RedisCache/other, but only RedisCache/shop-cache drifted"
        in guard(answer.plan).reason
    )


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("not json", "replay file"),
        ({"plans": {}}, "expected {'plans': [...]} or a list"),
        (["x"], "plans[0]: expected an object"),
        ([{"steps": [{"params": {}}]}], "plans[0].steps"),
        ([{"steps": []}], "give steps, or an error"),
    ],
)
def test_a_bad_file_is_a_configuration_error(tmp_path: Path, doc: Any, problem: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ConfigurationError, match=problem.replace("[", r"\[").replace("{", r"\{")):
        load_recordings(path)
