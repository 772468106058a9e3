"""The soak's own decisions (lab/soak.py), with no lab: what it draws for a seed, and how it judges an episode from
the incident records the loop's remediations left."""
from __future__ import annotations

import random

import faults
import pytest
import soak

TABLES = ["bronze_trades_binance", "bronze_trades_kraken"]


def record(status, scenarios=(), rule=None, run="cli-1"):
    return {"outcome": {"status": status, "escalation_rule": rule}, "plan": {"scenarios": list(scenarios)},
            "run": {"run_id": run}}


def episode(names, kind="single", records=(), truth=None):
    e = soak.Episode(1, kind, list(names), TABLES[0], records=list(records))
    e.truth = truth or {}
    soak.judge(e)
    return e


def test_a_seed_draws_the_same_soak_and_pairs_never_share_a_component():
    draws = [soak.draw(random.Random(7), n, TABLES, 2) for n in range(1, 4)]
    again = [soak.draw(random.Random(7), n, TABLES, 2) for n in range(1, 4)]
    assert [(d.kind, d.faults, d.table) for d in draws] == [(d.kind, d.faults, d.table) for d in again]
    rng = random.Random(3)
    for _ in range(300):
        drawn = soak.draw(rng, 1, TABLES, 2)
        assert set(drawn.faults) <= set(soak.POOL) and drawn.table in TABLES
        if len(drawn.faults) == 2:
            assert faults.FAULTS[drawn.faults[0]].scenario != faults.FAULTS[drawn.faults[1]].scenario
    assert all(soak.draw(rng, 1, TABLES, 1).kind == "single" for _ in range(50))  # one fault left: one drawn


def test_every_lab_fault_is_drawn_or_says_why_not():
    assert set(soak.POOL) | set(soak.NOT_DRAWN) | {"worker-killed"} >= set(faults.FAULTS)
    assert not set(soak.POOL) & set(soak.NOT_DRAWN)


def test_a_recovery_of_the_faults_scenario_is_healed_and_right():
    e = episode(["clickhouse-stopped"], records=[record("in_progress"), record("recovered", [2])])
    assert e.outcome == "healed" and e.wrong_actions == [] and soak.ok(e)


def test_a_scenario_no_fault_calls_for_is_a_wrong_action():
    e = episode(["clickhouse-stopped"], records=[record("recovered", [2, 4], run="cli-9")])
    assert e.wrong_actions == ["scenario 4 remediated by run cli-9"] and not soak.ok(e)


@pytest.mark.parametrize(("names", "kind", "rule", "right"), [
    (["jdbc-missing"], "single", "code or infrastructure change needed", True),
    (["jdbc-missing"], "single", "root cause is unclear", False),
    (["spark-stopped"], "single", "root cause is unclear", False),   # it should have healed
    (["spark-stopped", "worker-oom"], "during a remediation", "root cause is unclear", True),  # stopped in doubt
    (["spark-stopped", "worker-oom"], "two at once", "data loss suspected", False),
])
def test_an_escalation_is_judged_by_its_rule(names, kind, rule, right):
    e = episode(names, kind, records=[record("escalated", rule=rule)])
    assert e.outcome == "escalated" and e.escalation_rules == [rule] and e.rule_right is right
    assert soak.ok(e) is right


def test_nothing_handled_or_rows_lost_fail_the_episode():
    assert not soak.ok(episode(["spark-stopped"]))
    lost = episode(["spark-stopped"], records=[record("recovered", [3])],
                   truth={TABLES[0]: {"missing": 3, "duplicated": 0}})
    assert lost.outcome == "healed" and not soak.ok(lost)
    assert soak.ok(soak.Episode(1, "single", [], TABLES[0], outcome="not injected"))
