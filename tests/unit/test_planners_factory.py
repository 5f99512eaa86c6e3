"""Which planner settings give, why none, and the token budget."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from driftmend.planners.factory import (
    Planners,
    build_planner,
    configured_planners,
    unavailable_reason,
)
from driftmend.planners.gemini import GeminiPlanner, price_of
from driftmend.planners.openai_compat import OpenAICompatPlanner
from driftmend.planners.replay import ReplayPlanner
from driftmend.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for var in ("GEMINI_API_KEY", "DRIFTMEND_GEMINI_API_KEY", "DRIFTMEND_OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return Settings(state_dir=tmp_path)


def test_without_configuration_each_planner_says_why(settings: Settings) -> None:
    assert "no Gemini API key (set GEMINI_API_KEY)" in (
        unavailable_reason("gemini", settings) or ""
    )
    assert "DRIFTMEND_OPENAI_BASE_URL" in (unavailable_reason("openai", settings) or "")
    assert "DRIFTMEND_REPLAY_FILE" in (unavailable_reason("replay", settings) or "")
    assert "unknown planner 'claude'" in (unavailable_reason("claude", settings) or "")
    for name in ("gemini", "openai", "replay", "claude"):
        assert build_planner(name, settings) is None


def test_a_blank_key_is_no_key(settings: Settings) -> None:
    settings.gemini_api_key = SecretStr("  ")
    assert unavailable_reason("gemini", settings) is not None


async def test_configured_planners_are_built_and_closed(settings: Settings, tmp_path: Path) -> None:
    settings.gemini_api_key = SecretStr("AIzaSy-test")
    settings.gemini_base_url = "http://127.0.0.1:9"
    settings.openai_base_url = "http://127.0.0.1:9/v1"
    replays = tmp_path / "r.json"
    replays.write_text(json.dumps([{"steps": [{"tool": "redis_memory_purge"}]}]))
    settings.replay_file = replays
    planners = Planners(settings)
    assert isinstance(planners.get("gemini"), GeminiPlanner)
    assert isinstance(planners.get("openai"), OpenAICompatPlanner)
    assert isinstance(planners.get("replay"), ReplayPlanner)
    assert planners.get("gemini") is planners.get("gemini")
    assert planners.reason("gemini") is None
    await planners.close()
    ready, missing = configured_planners(settings)
    assert sorted(ready) == ["gemini", "openai", "replay"] and missing == {}
    for planner in ready.values():
        await planner.close()


def test_configured_planners_name_the_missing(settings: Settings) -> None:
    ready, missing = configured_planners(settings)
    assert ready == {} and sorted(missing) == ["gemini", "openai", "replay"]


def test_a_missing_replay_file_is_named(settings: Settings, tmp_path: Path) -> None:
    settings.replay_file = tmp_path / "nope.json"
    assert f"replay file {tmp_path / 'nope.json'} does not exist" == unavailable_reason(
        "replay", settings
    )


def test_prices_by_longest_model_prefix() -> None:
    assert price_of("gemini-2.5-flash") == (0.30, 2.50)
    assert price_of("models/gemini-2.5-flash-lite-preview") == (0.10, 0.40)
    assert price_of("my-local-model") == (0.0, 0.0)


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("gemini", "google.genai", "gemini"), ("openai", "openai", "openai")],
)
async def test_a_configured_planner_without_its_sdk_names_the_extra(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    module: str,
    extra: str,
) -> None:
    settings.gemini_api_key = SecretStr("AIzaSy-test")
    settings.openai_base_url = "http://127.0.0.1:9/v1"
    # None in sys.modules is how Python marks a module as absent: importing it fails.
    monkeypatch.setitem(sys.modules, module, None)
    reason = unavailable_reason(name, settings) or ""
    assert f"pip install 'driftmend[{extra}]'" in reason
    with caplog.at_level(logging.WARNING, logger="driftmend.planners"):
        assert build_planner(name, settings) is None
    assert f"driftmend[{extra}]" in caplog.text
    ready, missing = configured_planners(settings)
    assert name not in ready and f"driftmend[{extra}]" in missing[name]
    for planner in ready.values():
        await planner.close()


def test_an_unconfigured_planner_without_its_sdk_still_asks_for_its_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.genai", None)
    assert "set GEMINI_API_KEY" in (unavailable_reason("gemini", settings) or "")


def test_an_sdk_that_does_not_import_is_a_warning_not_a_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.openai_base_url = "http://127.0.0.1:9/v1"
    monkeypatch.setitem(sys.modules, "driftmend.planners.openai_compat", None)
    with caplog.at_level(logging.WARNING, logger="driftmend.planners"):
        assert build_planner("openai", settings) is None
    assert "pip install --upgrade 'driftmend[openai]'" in caplog.text
