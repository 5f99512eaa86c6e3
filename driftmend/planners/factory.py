"""Which LLM planner a policy's ``escalate.planner`` names, built from settings, or why none.

Stage: composition for *plan* (escalation). ``build_planner`` makes one planner, or returns
None when its settings are missing (no ``GEMINI_API_KEY``, no ``openai_base_url``, no
``replay_file``): the controller then runs on rules alone and shows the escalation as
``needs-operator`` with ``unavailable_reason``'s words. ``Planners`` builds each on first use
and closes them all; ``configured_planners`` builds every one that settings allow, for the
``Controller``'s ``planners``/``unconfigured_planners`` arguments. Imports of the SDKs stay
inside the builders, so a controller without an LLM never loads them.

The SDKs are optional extras (``driftmend[gemini]``, ``driftmend[openai]``, both in
``driftmend[llm]``): a configured planner whose SDK is not installed is unavailable like an
unconfigured one, with a reason naming the extra to install, never an ``ImportError``.
"""

from __future__ import annotations

import importlib.util
import logging

from driftmend.planners.base import Planner
from driftmend.settings import Settings

log = logging.getLogger("driftmend.planners")

PLANNERS = ("gemini", "openai", "replay")

# The module each LLM planner's SDK provides, and the extra of this package that installs it.
SDKS: dict[str, tuple[str, str]] = {
    "gemini": ("google.genai", "gemini"),
    "openai": ("openai", "openai"),
}


def _sdk_installed(module: str) -> bool:
    """True when ``module`` can be imported; looked up without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # A missing parent package (``google``), or a module that sys.modules marks absent.
        return False


def missing_sdk(name: str) -> str | None:
    """Why planner ``name``'s SDK cannot be used (what to install), or None when it can."""
    if name not in SDKS:
        return None
    module, extra = SDKS[name]
    if _sdk_installed(module):
        return None
    return (
        f"the {name} planner's SDK ({module}) is not installed: "
        f"pip install 'driftmend[{extra}]' (or 'driftmend[llm]' for every LLM planner)"
    )


def unavailable_reason(name: str, settings: Settings) -> str | None:
    """Why planner ``name`` cannot be built from ``settings``, or None when it can.

    Settings are checked first, so an unconfigured planner reads as unconfigured; a
    configured one whose SDK is missing names the extra that installs it.
    """
    if name == "gemini":
        key = settings.gemini_api_key
        if key is None or not key.get_secret_value().strip():
            return "no Gemini API key (set GEMINI_API_KEY): escalations wait for an operator"
        return missing_sdk(name)
    if name == "openai":
        if not settings.openai_base_url:
            return (
                "no OpenAI-compatible endpoint (set DRIFTMEND_OPENAI_BASE_URL): "
                "escalations wait for an operator"
            )
        return missing_sdk(name)
    if name == "replay":
        if settings.replay_file is None:
            return "no replay file (set DRIFTMEND_REPLAY_FILE): escalations wait for an operator"
        if not settings.replay_file.is_file():
            return f"replay file {settings.replay_file} does not exist"
        return None
    return f"unknown planner {name!r}; known: {', '.join(PLANNERS)}"


def build_planner(name: str, settings: Settings, *, scenario: str | None = None) -> Planner | None:
    """Planner ``name`` configured from ``settings``; None (and a log line) when it cannot be.

    ``scenario`` only matters to the replay planner (an eval selects its recorded plans).
    A replay file that exists but is malformed raises ``ConfigurationError``: that is a
    mistake to fix, not a missing option.
    """
    reason = unavailable_reason(name, settings)
    if reason is not None:
        log.warning("LLM planner %s unavailable: %s", name, reason)
        return None
    if name in SDKS:
        try:
            return _gemini(settings) if name == "gemini" else _openai(settings)
        except ImportError as exc:
            # The SDK is there but does not import (a broken or incompatible install):
            # the same answer as a missing one, with the import's own words.
            log.warning(
                "LLM planner %s unavailable: its SDK does not import (%s): "
                "pip install --upgrade 'driftmend[%s]'",
                name,
                exc,
                SDKS[name][1],
            )
            return None
    from driftmend.planners.replay import ReplayPlanner

    assert settings.replay_file is not None
    return ReplayPlanner.from_file(settings.replay_file, scenario=scenario)


def _gemini(settings: Settings) -> Planner:
    from driftmend.planners.gemini import GeminiPlanner

    assert settings.gemini_api_key is not None  # checked by unavailable_reason
    return GeminiPlanner(
        api_key=settings.gemini_api_key.get_secret_value().strip(),
        model=settings.gemini_model,
        base_url=settings.gemini_base_url,
        temperature=settings.llm_temperature,
        timeout_s=settings.llm_timeout,
        retries=settings.llm_retries,
        max_output_tokens=settings.llm_max_output_tokens,
    )


def _openai(settings: Settings) -> Planner:
    from driftmend.planners.openai_compat import OpenAICompatPlanner

    assert settings.openai_base_url is not None  # checked by unavailable_reason
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    return OpenAICompatPlanner(
        base_url=settings.openai_base_url,
        model=settings.openai_model,
        api_key=key or None,
        temperature=settings.llm_temperature,
        timeout_s=settings.llm_timeout,
        retries=settings.llm_retries,
        max_output_tokens=settings.llm_max_output_tokens,
    )


class Planners:
    """The planners of one controller, built on first use and closed together."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: dict[str, Planner | None] = {}

    def get(self, name: str) -> Planner | None:
        """Planner ``name``, or None when unconfigured (``reason(name)`` says why)."""
        if name not in self._built:
            self._built[name] = build_planner(name, self._settings)
        return self._built[name]

    def reason(self, name: str) -> str | None:
        """Why ``name`` is unavailable, or None."""
        return unavailable_reason(name, self._settings)

    async def close(self) -> None:
        """Close every planner built so far."""
        built, self._built = self._built, {}
        for planner in built.values():
            if planner is not None:
                await planner.close()


def configured_planners(settings: Settings) -> tuple[dict[str, Planner], dict[str, str]]:
    """Every planner settings allow, and why each other one is not there."""
    ready: dict[str, Planner] = {}
    missing: dict[str, str] = {}
    for name in PLANNERS:
        reason = unavailable_reason(name, settings)
        if reason is not None:
            missing[name] = reason
            continue
        planner = build_planner(name, settings)
        if planner is not None:
            ready[name] = planner
    return ready, missing
