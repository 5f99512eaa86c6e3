"""The report of ``driftmend eval``: each scenario's result, the totals, JSON and a table.

Stage: outside the loop, with the harness in ``driftmend.eval`` (which re-exports these).
Plain data: what the harness measured, summed and formatted, with no I/O.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ScenarioResult:
    """How the planner did on one scenario."""

    scenario: str
    key: str
    outcome: str = "timeout"  # fixed | not-fixed | no-plan | rejected | pending | timeout | error
    fixed: bool = False  # the eval's own check: the resource is in sync after the fix
    controller_verified: bool | None = None  # what the controller's verification said
    time_to_recover_s: float | None = None  # injection -> the controller's verification passed
    in_sync_after_s: float | None = None  # injection -> the eval saw the resource in sync
    steps: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    llm_calls: int = 0
    latency_s: float = 0.0
    detail: str = ""


@dataclass
class EvalReport:
    """Every scenario's result and the totals."""

    planner: str
    model: str
    started_at: float
    duration_s: float
    scenarios: list[ScenarioResult]
    approved: bool = False  # destructive steps ran without an operator (eval --approve)

    def overall(self) -> dict[str, Any]:
        """Verified-fix rate, time to recover, steps, tokens and cost over every scenario."""
        n = len(self.scenarios)
        fixed = [s for s in self.scenarios if s.fixed]
        ttr = [s.time_to_recover_s for s in fixed if s.time_to_recover_s is not None]
        return {
            "scenarios": n,
            "fixed": len(fixed),
            "verified_fix_rate": len(fixed) / n if n else 0.0,
            "time_to_recover_median_s": statistics.median(ttr) if ttr else None,
            "time_to_recover_max_s": max(ttr) if ttr else None,
            "steps": sum(len(s.steps) for s in self.scenarios),
            "tokens_in": sum(s.tokens_in for s in self.scenarios),
            "tokens_out": sum(s.tokens_out for s in self.scenarios),
            "cost_usd": round(sum(s.cost_usd for s in self.scenarios), 6),
            "llm_calls": sum(s.llm_calls for s in self.scenarios),
        }

    def to_json(self) -> dict[str, Any]:
        """The report as written to ``--out``."""
        return {
            "planner": self.planner,
            "model": self.model,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 2),
            "destructive_steps_approved": self.approved,
            "overall": self.overall(),
            "scenarios": [asdict(s) for s in self.scenarios],
        }

    def table(self) -> str:
        """A short table for the terminal."""
        head = f"{'scenario':<22} {'fixed':<6} {'outcome':<10} {'ttr_s':>6} {'steps':>5} {'tokens':>7} {'cost_usd':>9}"
        rows = [head, "-" * len(head)]
        for s in self.scenarios:
            ttr = f"{s.time_to_recover_s:.1f}" if s.time_to_recover_s is not None else "-"
            rows.append(
                f"{s.scenario:<22} {'yes' if s.fixed else 'no':<6} {s.outcome:<10} {ttr:>6} "
                f"{len(s.steps):>5} {s.tokens_in + s.tokens_out:>7} {s.cost_usd:>9.4f}"
            )
        o = self.overall()
        median = o["time_to_recover_median_s"]
        rows.append("-" * len(head))
        rows.append(
            f"{self.planner} ({self.model}): {o['fixed']}/{o['scenarios']} fixed "
            f"({o['verified_fix_rate']:.0%}), median time to recover "
            f"{'-' if median is None else f'{median:.1f}s'}, {o['steps']} steps, "
            f"{o['tokens_in'] + o['tokens_out']} tokens, ${o['cost_usd']:.4f}"
            + (", destructive steps approved (--approve)" if self.approved else "")
        )
        return "\n".join(rows)
