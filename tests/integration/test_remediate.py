"""playbooks/remediate.yml beyond the per-fault end-to-end tests: healthy stack, check mode, bad input."""
from __future__ import annotations

from conftest import remediate


def test_healthy_stack_changes_nothing_and_says_so(lab):
    rc, report, output, stats = remediate()
    assert rc == 0, output[-2000:]
    assert "HEALTHY: the diagnosis found nothing to remediate; nothing was changed." in output
    assert stats["k2-lab"]["changed"] == 0, stats
    assert report is None  # nothing was remediated, so no remediation report


def test_check_mode_prints_the_plan_and_changes_nothing(clean_lab):
    lab = clean_lab
    lab.fault("clickhouse-stopped")
    rc, report, output, stats = remediate("--check")
    assert rc == 0, output[-2000:]
    assert "CHECK MODE - would remediate scenario(s) 2" in output
    assert "start k2-clickhouse" in output
    assert lab.dc.containers.get("k2-clickhouse").status == "exited"  # still stopped
    assert report["status"] == "check"
    assert stats["k2-lab"]["changed"] == 0 or lab.dc.containers.get("k2-clickhouse").status == "exited"


def test_forced_scenario_out_of_range_is_one_clear_error(lab):
    rc, report, output, _ = remediate("-e", "remediate_scenarios=7")
    assert rc != 0 and report is None
    assert "remediate_scenarios must be among [1, 2, 3, 4], got 7." in output
    assert "Traceback" not in output


def test_forced_scenario_runs_and_a_blown_budget_escalates(lab):
    """A forced scenario runs on a healthy stack (its role finds nothing to fix, the recovery is still verified);
    recovery later than the escalation budget is an escalation, with the evidence, not a success."""
    rc, report, output, _ = remediate("-e", "remediate_scenarios=2", "-e", "remediate_escalation_budget_seconds=0")
    assert rc != 0
    assert report["status"] == "escalated" and report["remediated_scenarios"] == [2], report
    assert "Recovered only after the escalation budget of 0 s" in report["escalation"]
    assert report["outcomes"][0]["actions"] == []  # nothing was broken, nothing was done
