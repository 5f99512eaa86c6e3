"""The replay planner: recorded plans from a JSON file, for tests, demos and evals.

Stage: *plan* (escalation), with no model behind it. ``settings.replay_file`` holds the
recorded answers; the first entry that matches a request is its plan::

    {"plans": [
      {"scenario": "redis-memory-full",          # optional: only when evaluating it
       "key": "RedisCache/*",                     # optional: fnmatch on the resource key
       "signal": "redis.memory_used_ratio",       # optional: one of the drifts' signals
       "reasoning": "full under noeviction: evict instead",
       "steps": [{"tool": "redis_set_policy", "params": {"policy": "allkeys-lru"}}],
       "tokens_in": 0, "tokens_out": 0}           # optional: what a recorded model used
    ]}

A step may name a ``target``; without one it acts on the resource that drifted. An entry
with ``"error": "..."`` replays a failed answer. The file is read once, when the planner is
made: a bad file is a configuration error, reported then, not at the first escalation.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftmend.errors import ConfigurationError
from driftmend.model import Plan, PlanStep
from driftmend.planners.base import PlannerAnswer, PlanRequest
from driftmend.planners.conversation import LLMAnswer
from driftmend.planners.prompt import addressed_rule, build_prompt


@dataclass(frozen=True)
class Recorded:
    """One recorded answer and what it answers."""

    steps: tuple[Mapping[str, Any], ...]
    reasoning: str = ""
    scenario: str | None = None
    key: str | None = None
    signal: str | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, request: PlanRequest, scenario: str | None) -> bool:
        """True when this entry answers ``request`` (in ``scenario``, when one is set)."""
        if self.scenario is not None and self.scenario != scenario:
            return False
        if self.key is not None and not fnmatch.fnmatchcase(request.resource.key, self.key):
            return False
        return self.signal is None or any(d.signal == self.signal for d in request.drifts)


def load_recordings(path: Path) -> tuple[Recorded, ...]:
    """The entries of a replay file; ``ConfigurationError`` naming the problem otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"replay file {path}: {exc}") from exc
    entries = doc.get("plans") if isinstance(doc, dict) else doc
    if not isinstance(entries, list):
        raise ConfigurationError(f"replay file {path}: expected {{'plans': [...]}} or a list")
    out: list[Recorded] = []
    for i, e in enumerate(entries):
        where = f"replay file {path}: plans[{i}]"
        if not isinstance(e, dict):
            raise ConfigurationError(f"{where}: expected an object")
        steps = e.get("steps", [])
        if not isinstance(steps, list) or not all(
            isinstance(s, dict) and isinstance(s.get("tool"), str) for s in steps
        ):
            raise ConfigurationError(f"{where}.steps: expected a list of {{tool, params}}")
        if not steps and not e.get("error"):
            raise ConfigurationError(f"{where}: give steps, or an error to replay")
        out.append(
            Recorded(
                steps=tuple(steps),
                reasoning=str(e.get("reasoning") or ""),
                scenario=e.get("scenario"),
                key=e.get("key"),
                signal=e.get("signal"),
                error=e.get("error"),
                tokens_in=int(e.get("tokens_in") or 0),
                tokens_out=int(e.get("tokens_out") or 0),
                raw=e,
            )
        )
    return tuple(out)


class ReplayPlanner:
    """Answers with recorded plans; ``scenario`` selects entries recorded for one scenario."""

    name = "replay"

    def __init__(
        self,
        recordings: Sequence[Recorded],
        *,
        scenario: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recordings = tuple(recordings)
        self.scenario = scenario
        self.model = "replay"
        self._clock = clock

    @classmethod
    def from_file(cls, path: Path, scenario: str | None = None) -> ReplayPlanner:
        """A planner over the entries of ``path``."""
        return cls(load_recordings(path), scenario=scenario)

    async def plan(self, request: PlanRequest) -> PlannerAnswer:
        """The first matching recorded plan, or none (with why)."""
        started = self._clock()
        prompt = build_prompt(request).text  # stored like a real model's, for comparison
        found = next((r for r in self.recordings if r.matches(request, self.scenario)), None)
        plan: Plan | None = None
        error: str | None = None
        if found is None:
            signals = ", ".join(sorted({d.signal for d in request.drifts}))
            error = f"replay: no recorded plan for {request.resource.key} ({signals})"
        elif found.error:
            error = f"replay: {found.error}"
        else:
            key = request.resource.key
            plan = Plan(
                key=key,
                steps=tuple(
                    PlanStep(
                        str(s["tool"]), str(s.get("target") or key), dict(s.get("params") or {})
                    )
                    for s in found.steps
                ),
                source="replay",
                reasoning=found.reasoning or "a recorded plan",
                policy=request.policy,
                rule=addressed_rule(request),
                drifts=request.drifts,
            )
        return LLMAnswer(
            plan=plan,
            planner=self.name,
            model=self.model,
            prompt=prompt,
            response=json.dumps(dict(found.raw) if found else {}),
            tokens_in=found.tokens_in if found else 0,
            tokens_out=found.tokens_out if found else 0,
            latency_s=self._clock() - started,
            error=error,
            outcome="ok" if plan else "no-plan" if found is None else "error",
        )

    async def close(self) -> None:
        """Nothing to release."""
