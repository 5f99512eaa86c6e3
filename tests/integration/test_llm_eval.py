"""``driftmend eval`` on a private demo stack: real processes, real faults, real fixes.

The replay baseline through the command line, and the Gemini planner (the real
``google-genai`` client, a local ``generateContent`` server) that investigates with a read
tool on the real Redis before it proposes the fix the controller runs and the eval scores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from driftmend.eval import EvalOptions, add_eval_parser, run_eval
from driftmend.planners.gemini import GeminiPlanner
from driftmend.planners.replay import Recorded, ReplayPlanner
from driftmend.settings import Settings
from tests.fakes import gemini_server as gem
from tests.fakes.scripted import Reply, Request

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_the_replay_baseline_fixes_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)  # the example specs run the sample app from the repository
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers())
    out = tmp_path / "report.json"
    args = parser.parse_args(
        ["eval", "--planner", "replay", "-s", "app-crash", "-s", "redis-memory-full",
         "--out", str(out), "--deadline", "60", "--min-fix-rate", "1"]
    )  # fmt: skip
    assert args.func(args) == 0
    report = json.loads(out.read_text())
    assert report["overall"]["scenarios"] == 2 and report["overall"]["verified_fix_rate"] == 1.0
    by_name = {s["scenario"]: s for s in report["scenarios"]}
    assert by_name["app-crash"]["steps"] == ["container_restart"]
    assert by_name["redis-memory-full"]["steps"] == ["redis_memory_purge", "redis_set_policy"]
    for s in report["scenarios"]:
        assert s["fixed"] and s["outcome"] == "fixed" and s["time_to_recover_s"] > 0
    table = capsys.readouterr().out
    assert "app-crash" in table and "2/2 fixed (100%)" in table


def _gemini_operator(request: Request) -> Reply:
    """A model that reads the cache's state, then evicts; and declines anything else."""
    contents = request.json()["contents"]
    prompt = contents[0]["parts"][0]["text"]
    if "Resource: RedisCache/" not in prompt:
        return gem.text("Nothing I can do for this resource.")
    answered = [p for c in contents for p in c["parts"] if "functionResponse" in p]
    if not answered:
        return gem.calls(gem.call("redis_info"))
    return gem.calls(
        gem.call("redis_memory_purge"), gem.call("redis_set_policy", policy="allkeys-lru")
    )


async def test_a_gemini_plan_is_executed_verified_and_scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    with gem.fake_gemini() as server:
        server.script(*[_gemini_operator] * 20)
        planner = GeminiPlanner(
            api_key="AIzaSy-eval-test-key-0123456789abcdefghij", base_url=server.url,
            timeout_s=5, retries=1, retry_initial_delay=0.05,
        )  # fmt: skip
        try:
            report = await run_eval(
                EvalOptions(planner="gemini", scenarios=("redis-memory-full",), deadline_s=60),
                Settings(state_dir=tmp_path),
                planner,
            )
        finally:
            await planner.close()
        # The read went to the real Redis, and its answer back to the model.
        results = [
            p["functionResponse"]["response"]["output"]
            for r in server.requests
            for c in r.json()["contents"]
            for p in c["parts"]
            if "functionResponse" in p
        ]
    [scenario] = report.scenarios
    assert scenario.fixed and scenario.outcome == "fixed", scenario
    assert scenario.steps == ["redis_memory_purge", "redis_set_policy"]
    assert scenario.tokens_in >= 240 and scenario.tokens_out >= 60
    assert scenario.cost_usd > 0
    assert any(r["data"].get("maxmemory_policy") == "noeviction" for r in results), results
    overall: dict[str, Any] = report.overall()
    assert overall["verified_fix_rate"] == 1.0 and report.planner == "gemini"


async def test_a_plan_that_does_not_fix_scores_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Purging memory alone leaves a full cache under noeviction: the eval's own look says
    # "not fixed", whatever a planner's reasoning claims.
    monkeypatch.chdir(REPO)
    wrong = ReplayPlanner(
        (Recorded(steps=({"tool": "redis_memory_purge"},), reasoning="purge will do",
                  scenario="redis-memory-full"),)
    )  # fmt: skip
    report = await run_eval(
        EvalOptions(planner="replay", scenarios=("redis-memory-full",), deadline_s=60),
        Settings(state_dir=tmp_path),
        wrong,
    )
    [scenario] = report.scenarios
    assert not scenario.fixed and scenario.steps == ["redis_memory_purge"], scenario
    assert report.overall()["verified_fix_rate"] == 0.0
