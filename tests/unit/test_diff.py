"""diff(): spec drifts, rule drifts, `for` windows and the pending memory. Pure, no I/O."""

from __future__ import annotations

from driftmend.diff import covered_signals, diff
from tests.unit.factories import container, obs, policy, postgres, redis, running

RATIO_RULE = {
    "name": "hot",
    "when": [
        {"signal": "container.cpu_used_ratio", "operator": ">", "value": 0.9, "for": "10s"},
        {"signal": "container.healthy", "operator": "==", "value": True},
    ],
    "do": [{"tool": "container_scale", "params": {"replicas": 2}}],
}


def test_running_container_is_in_sync() -> None:
    result = diff(container(), [policy()], running())
    assert result.in_sync and result.drifts == ()


def test_stopped_container_is_a_spec_drift_and_a_rule_drift() -> None:
    result = diff(container(), [policy()], obs(container__running=False, container__healthy=False))
    assert [d.signal for d in result.spec_drifts] == ["container.running"]
    assert result.spec_drifts[0].expected == "== true"
    assert [(d.policy, d.rule) for d in result.rule_drifts] == [("p", "restart")]
    assert result.rule_drifts[0].evidence["container.running"] is False


def test_dead_container_is_not_also_reported_unhealthy() -> None:
    c = container(health={"http": {"path": "/healthz"}}, port=8000)
    result = diff(c, [], obs(container__running=False, container__healthy=False))
    assert [d.signal for d in result.spec_drifts] == ["container.running"]


def test_unhealthy_running_container_with_probe() -> None:
    c = container(health={"http": {"path": "/healthz"}}, port=8000)
    result = diff(c, [], obs(container__running=True, container__healthy=False))
    assert [d.signal for d in result.spec_drifts] == ["container.healthy"]


def test_zero_replicas_promise_nothing() -> None:
    assert diff(container(replicas=0), [], obs(container__running=False)).in_sync


def test_database_and_cache_must_answer() -> None:
    assert [
        d.signal
        for d in diff(postgres(), [], obs("PostgresDatabase/db", postgres__up=False)).drifts
    ] == ["postgres.up"]
    assert diff(redis(), [], obs("RedisCache/cache", redis__up=True)).in_sync
    missing = diff(redis(), [], obs("RedisCache/cache"))  # unreadable is not "up"
    assert [d.signal for d in missing.drifts] == ["redis.up"]


def test_for_window_waits_then_fires() -> None:
    p = policy(rules=[RATIO_RULE])
    first = diff(container(), [p], running(at=100.0, container__cpu_used_ratio=0.95))
    assert first.drifts == () and first.waiting == {"p/hot": 10.0}
    assert not first.in_sync
    later = diff(container(), [p], running(at=105.0, container__cpu_used_ratio=0.97), first.pending)
    assert later.drifts == () and later.waiting == {"p/hot": 5.0}
    fired = diff(container(), [p], running(at=110.0, container__cpu_used_ratio=0.99), later.pending)
    assert [d.rule for d in fired.rule_drifts] == ["hot"]
    assert fired.rule_drifts[0].since == 100.0
    assert fired.rule_drifts[0].observed == 0.99


def test_condition_that_stops_holding_resets_its_window() -> None:
    p = policy(rules=[RATIO_RULE])
    first = diff(container(), [p], running(at=100.0, container__cpu_used_ratio=0.95))
    dip = diff(container(), [p], running(at=105.0, container__cpu_used_ratio=0.5), first.pending)
    assert dip.in_sync and "p|hot|0" not in dip.pending
    again = diff(container(), [p], running(at=112.0, container__cpu_used_ratio=0.95), dip.pending)
    assert again.drifts == () and again.waiting == {"p/hot": 10.0}


def test_all_conditions_must_hold() -> None:
    p = policy(rules=[RATIO_RULE])
    result = diff(
        container(),
        [p],
        obs(
            at=100.0,
            container__running=True,
            container__healthy=False,
            container__cpu_used_ratio=0.99,
        ),
        {"p|hot|0": 0.0},
    )
    assert result.rule_drifts == ()


def test_missing_signal_never_satisfies_a_condition() -> None:
    p = policy(rules=[RATIO_RULE])
    assert diff(container(), [p], running()).in_sync


def test_policy_selects_by_labels_and_kind() -> None:
    p = policy()
    other = container(labels={"app": "other"})
    assert diff(other, [p], obs(container__running=False)).rule_drifts  # no labels: all
    from driftmend.spec import HealingPolicy

    picky = HealingPolicy.model_validate(
        {
            **p.model_dump(by_alias=True),
            "spec": {
                **p.model_dump(by_alias=True)["spec"],
                "selector": {"kind": "Container", "matchLabels": {"app": "shop"}},
            },
        }
    )
    assert diff(other, [picky], obs(container__running=False)).rule_drifts == ()
    assert diff(container(), [picky], obs(container__running=False)).rule_drifts


def test_paused_policy_fires_nothing() -> None:
    p = policy(paused=True)
    result = diff(container(), [p], obs(container__running=False))
    assert result.rule_drifts == () and len(result.spec_drifts) == 1
    assert covered_signals(container(), [p]) == set()


def test_diff_is_pure() -> None:
    p = policy(rules=[RATIO_RULE])
    o = running(at=100.0, container__cpu_used_ratio=0.95)
    assert diff(container(), [p], o, {}) == diff(container(), [p], o, {})


def test_health_not_yet_known_is_not_a_drift_but_does_not_verify() -> None:
    from driftmend.model import Plan, PlanStep
    from driftmend.verify import cleared

    c = container(health={"http": {"path": "/healthz"}}, port=8000)
    pending = obs(container__running=True, container__healthy=None)
    assert diff(c, [policy()], pending).in_sync
    plan = Plan(c.key, (PlanStep("container_restart", c.key),), "rules", "t", "p", "restart")
    assert not cleared(c, [policy()], plan, pending)
    assert cleared(c, [policy()], plan, obs(container__running=True, container__healthy=True))


def test_a_drift_begins_when_the_last_of_its_conditions_began_to_hold() -> None:
    # The policy flag has been false all along; the memory spike is what starts the drift,
    # so its time to recover is counted from the spike, not from start-up.
    rule = {
        "name": "full",
        "when": [
            {"signal": "redis.memory_used_ratio", "operator": ">=", "value": 0.95},
            {"signal": "redis.evicting_policy", "operator": "==", "value": False},
        ],
        "do": [{"tool": "redis_memory_purge"}],
    }
    p = policy(kind="RedisCache", rules=[rule])
    calm = diff(redis(), [p], obs("RedisCache/cache", at=10.0, redis__up=True,
                                  redis__memory_used_ratio=0.1, redis__evicting_policy=False))  # fmt: skip
    assert calm.in_sync
    full = diff(redis(), [p], obs("RedisCache/cache", at=100.0, redis__up=True,
                                  redis__memory_used_ratio=0.99, redis__evicting_policy=False),
                pending=calm.pending)  # fmt: skip
    assert [d.since for d in full.rule_drifts] == [100.0]


def test_a_rule_drift_reads_as_the_rule_that_fired() -> None:
    p = policy(rules=[RATIO_RULE])
    first = diff(container(), [p], running(at=100.0, container__cpu_used_ratio=0.95))
    later = diff(container(), [p], running(at=111.0, container__cpu_used_ratio=0.95), first.pending)
    [drift] = later.rule_drifts
    assert drift.describe() == (
        "container.cpu_used_ratio is 0.95 (rule p/hot: container.cpu_used_ratio > 0.9 "
        "for 10s and container.healthy == true)"
    )
