"""LLM interactions: every exchange whole, what became of its plan, and what it cost.

Stage: *plan* (escalation) in docs/ARCHITECTURE.md's data flow records each exchange and, once the
guard and the operator decided, its outcome; the budgets read the tokens spent; shadow plans
are scored against the fix that ran; the dashboard's LLM pages read it all back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from driftmend.codec import plan_to_dict
from driftmend.model import LlmDecision, Plan, ShadowAgreement
from driftmend.store.db import Database, Row, rowid
from driftmend.store.fixes import Fix, FixRecords
from driftmend.store.records import Record, dumps, enum_or_text, loads

__all__ = [
    "LlmBudget",
    "LlmExchange",
    "LlmExchangeSummary",
    "LlmExchangeWithFix",
    "LlmRecords",
]


@dataclass(frozen=True, eq=False)
class LlmExchangeSummary(Record):
    """An LLM exchange without its prompt and response (which can be large).

    ``decision`` and ``agreement`` are the model's vocabularies (``LlmDecision``,
    ``ShadowAgreement``), or the stored text when an older or newer driftmend wrote another.
    """

    id: int
    key: str
    at: float
    planner: str
    model: str
    plan: dict[str, Any] | None
    tokens_in: int
    tokens_out: int
    latency_s: float
    error: str | None
    mode: str | None
    decision: LlmDecision | str | None
    reason: str | None
    fix_id: int | None
    cost_usd: float | None
    agreement: ShadowAgreement | str | None
    compared_fix_id: int | None
    pending_plan_id: int | None


@dataclass(frozen=True, eq=False)
class LlmExchange(LlmExchangeSummary):
    """An LLM exchange whole: the prompt sent and the response received, as JSON."""

    prompt: Any
    response: Any


@dataclass(frozen=True, eq=False)
class LlmExchangeWithFix(LlmExchange):
    """An LLM exchange with the fix its plan became (None when it ran none)."""

    fix: Fix | None


class LlmBudget(Protocol):
    """What the escalation's budgets read: tokens spent since a time."""

    def llm_tokens_since(self, key: str | None, since: float) -> int:
        """Tokens spent on ``key`` (None: on every resource) since ``since``."""


def _summary_fields(r: Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "key": r["key"],
        "at": r["at"],
        "planner": r["planner"],
        "model": r["model"],
        "plan": loads(r["plan"]),
        "tokens_in": r["tokens_in"],
        "tokens_out": r["tokens_out"],
        "latency_s": r["latency_s"],
        "error": r["error"],
        "mode": r["mode"],
        "decision": enum_or_text(LlmDecision, r["decision"]),
        "reason": r["reason"],
        "fix_id": r["fix_id"],
        "cost_usd": r["cost_usd"],
        "agreement": enum_or_text(ShadowAgreement, r["agreement"]),
        "compared_fix_id": r["compared_fix_id"],
        "pending_plan_id": r["pending_plan_id"],
    }


def _exchange_of(r: Row) -> LlmExchange:
    return LlmExchange(
        **_summary_fields(r), prompt=loads(r["prompt"]), response=loads(r["response"])
    )


def _newest(key: str | None, limit: int) -> tuple[str, tuple[Any, ...]]:
    where = "WHERE key = ?" if key is not None else ""
    sql = f"SELECT * FROM llm_interactions {where} ORDER BY at DESC, id DESC LIMIT ?"
    return sql, (key, limit) if key is not None else (limit,)


class LlmRecords:
    """The ``llm_interactions`` table; ``fixes`` finds the fix an exchange's plan became."""

    def __init__(self, db: Database, fixes: FixRecords) -> None:
        self._db = db
        self._fixes = fixes

    def record_llm_interaction(
        self,
        key: str,
        planner: str,
        model: str,
        prompt: Any,
        response: Any,
        plan: Plan | None,
        tokens_in: int,
        tokens_out: int,
        latency_s: float,
        at: float,
        error: str | None = None,
    ) -> int:
        """Store one LLM exchange whole: prompt, response, parsed plan, tokens, latency."""
        with self._db.write() as db:
            cur = db.execute(
                """INSERT INTO llm_interactions
                       (key, at, planner, model, prompt, response, plan, tokens_in, tokens_out,
                        latency_s, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    key,
                    at,
                    planner,
                    model,
                    dumps(prompt),
                    dumps(response),
                    None if plan is None else dumps(plan_to_dict(plan)),
                    tokens_in,
                    tokens_out,
                    latency_s,
                    error,
                ),
            )
            return rowid(cur)

    def llm_interactions(self, key: str | None = None, limit: int = 100) -> list[LlmExchange]:
        """LLM exchanges, newest first, whole."""
        return [_exchange_of(r) for r in self._db.read(*_newest(key, limit))]

    def llm_summaries(self, key: str | None = None, limit: int = 100) -> list[LlmExchangeSummary]:
        """LLM exchanges, newest first, without their prompt and response: what a list, or
        a live stream polling twice a second, needs."""
        return [
            LlmExchangeSummary(**_summary_fields(r)) for r in self._db.read(*_newest(key, limit))
        ]

    def llm_interaction(self, interaction_id: int) -> LlmExchangeWithFix | None:
        """One LLM exchange, with the fix its plan became (if any)."""
        rows = self._db.read("SELECT * FROM llm_interactions WHERE id = ?", (interaction_id,))
        if not rows:
            return None
        fields = _summary_fields(rows[0])
        return LlmExchangeWithFix(
            **fields,
            prompt=loads(rows[0]["prompt"]),
            response=loads(rows[0]["response"]),
            fix=self._fixes.fix(fields["fix_id"]) if fields["fix_id"] else None,
        )

    def llm_interaction_of_pending_plan(self, plan_id: int) -> LlmExchange | None:
        """The LLM exchange whose plan was parked as pending plan ``plan_id``, or None."""
        rows = self._db.read(
            "SELECT * FROM llm_interactions WHERE pending_plan_id = ? ORDER BY id DESC LIMIT 1",
            (plan_id,),
        )
        return _exchange_of(rows[0]) if rows else None

    def shadow_plans_to_compare(self, key: str, since: float) -> list[LlmExchange]:
        """Shadow-mode plans of ``key`` since ``since`` not yet compared with a fix."""
        rows = self._db.read(
            """SELECT * FROM llm_interactions WHERE key = ? AND at >= ? AND mode = 'shadow'
               AND decision = 'shadow' AND plan IS NOT NULL AND agreement IS NULL
               ORDER BY at, id""",
            (key, since),
        )
        return [_exchange_of(r) for r in rows]

    def set_shadow_agreement(self, interaction_id: int, agreement: str, fix_id: int) -> None:
        """Record whether a shadow plan agreed with the fix that was run instead."""
        with self._db.write() as db:
            db.execute(
                "UPDATE llm_interactions SET agreement = ?, compared_fix_id = ? WHERE id = ?",
                (agreement, fix_id, interaction_id),
            )

    def shadow_agreement(self) -> dict[str, dict[str, int]]:
        """Per policy, how many shadow plans agreed or differed with the fix that ran, and
        how many still wait for one: the measure to read before trusting a planner."""
        rows = self._db.read(
            """SELECT plan, COALESCE(agreement, 'pending') AS agreement FROM llm_interactions
               WHERE mode = 'shadow' AND decision = 'shadow' AND plan IS NOT NULL"""
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            policy = str((loads(r["plan"]) or {}).get("policy") or "-")
            counts = out.setdefault(policy, {"agrees": 0, "differs": 0, "pending": 0})
            counts[r["agreement"]] = counts.get(r["agreement"], 0) + 1
        return out

    def set_llm_outcome(
        self,
        interaction_id: int,
        *,
        mode: str,
        decision: str,
        reason: str,
        fix_id: int | None = None,
        cost_usd: float | None = None,
        pending_plan_id: int | None = None,
    ) -> None:
        """Record what became of an interaction's plan (admitted, rejected, over-budget,
        shadow, pending with the parked plan's id, no-plan, dry-run)."""
        with self._db.write() as db:
            db.execute(
                """UPDATE llm_interactions SET mode = ?, decision = ?, reason = ?, fix_id = ?,
                       cost_usd = COALESCE(?, cost_usd), pending_plan_id = ? WHERE id = ?""",
                (mode, decision, reason, fix_id, cost_usd, pending_plan_id, interaction_id),
            )

    def llm_tokens_since(self, key: str | None, since: float) -> int:
        """Tokens (in and out) spent on ``key`` (None: on every resource) since ``since``:
        the per-day budgets read this."""
        rows = self._db.read(
            f"""SELECT COALESCE(SUM(tokens_in + tokens_out), 0) AS n FROM llm_interactions
               WHERE at >= ? {"AND key = ?" if key is not None else ""}""",
            (since, key) if key is not None else (since,),
        )
        return int(rows[0]["n"])
