"""playbooks/remediate.yml beyond the per-fault end-to-end tests: healthy stack, check mode, bad input."""
from __future__ import annotations

import json
import re
import time

from ansible_run import run_module, run_playbook
from conftest import TABLE, remediate
from test_lab_faults import assert_escalated_to_people


def test_healthy_stack_changes_nothing_and_says_so(lab):
    # A failed run an earlier test left behind is evidence the diagnosis rightly reports until a run completes.
    assert lab.cycle()["state_type"] == "COMPLETED"
    rc, report, output, stats = remediate()
    assert rc == 0, output[-2000:]
    assert "HEALTHY: the diagnosis found nothing to remediate; nothing was changed." in output
    assert stats["k2-lab"]["changed"] == 0, stats
    assert report["status"] == "healthy" and report["outcomes"] == [] and report["verification"] is None


def test_check_mode_prints_the_plan_and_changes_nothing(clean_lab):
    lab = clean_lab
    lab.fault("clickhouse-stopped")
    rc, report, output, stats = remediate("--check")
    assert rc == 0, output[-2000:]
    assert "CHECK MODE - would remediate scenario(s) 2" in output
    assert "start k2-clickhouse" in output
    assert lab.dc.containers.get("k2-clickhouse").status == "exited"  # still stopped
    assert report["status"] == "check"
    # Ansible's check mode reports what would change (starting ClickHouse) as changed; the container says nothing did.
    assert stats["k2-lab"]["changed"] >= 1, stats


def test_forced_scenario_out_of_range_is_one_clear_error(lab):
    rc, report, output, _ = remediate("-e", "remediate_scenarios=7")
    assert rc != 0 and report is None
    assert "remediate_scenarios must be among [1, 2, 3, 4, 5], got 7." in output
    assert "Traceback" not in output


def test_forced_scenario_runs_and_a_blown_budget_escalates(lab):
    """A forced scenario runs on a healthy stack (its role finds nothing to fix, the recovery is still verified);
    recovery later than the escalation budget is an escalation, with the evidence, not a success."""
    rc, report, output, _ = remediate("-e", "remediate_scenarios=2", "-e", "remediate_escalation_budget_seconds=1")
    assert rc != 0
    assert report["status"] == "escalated" and report["remediated_scenarios"] == [2], report
    assert "Recovered only after the escalation budget of 1 s" in report["escalation"]
    assert report["outcomes"][0]["actions"] == []  # nothing was broken, nothing was done
    assert_escalated_to_people(lab, report, "not resolved within 30 minutes")

    # People have the stack now: the alert-driven loop stands down (the runbook's 30 minutes), a person does not,
    # and that person's recovery ends the stand-down.
    alert = ("-e", "k2_alert_name=IcebergOffloadConsecutiveFailures", "-e", f"k2_alert_table={TABLE}",
             "-e", f"k2_alert_starts_at={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
             "-e", "k2_alert_fingerprint=8b1f1c2d3e4f5a6b", "-e", "remediate_scenarios=2")
    rc, _, output, stats = remediate(*alert)
    assert rc == 0 and stats["k2-lab"]["changed"] == 0, output[-3000:]
    assert "IN PROGRESS: escalated to people at " in output and "an alert-driven run stands down for 1800 s" in output
    marker = lab.cfg.state_dir / "locks" / "remediation.lock.escalation"
    assert json.loads(marker.read_text())["run_id"] == report["run_id"]
    rc, by_hand, output, _ = remediate("-e", "remediate_scenarios=2")
    assert rc == 0 and by_hand["status"] == "recovered", output[-3000:]
    assert not marker.exists()


def _flow_timeout(lab) -> int:
    return int(re.search(r"check=True, timeout=(\d+)\)", (lab.cfg.flows_dir / "iceberg_offload_flow.py").read_text())[1])


def test_timeout_revert_puts_the_normal_timeout_back_once_and_restarts_the_worker(clean_lab):
    """The pair of Scenario 5 mitigation A: --check changes nothing, the revert restarts the worker only when
    the flow file changed, a second revert is a no-op. (clean_lab's clear would also restore the file.)"""
    lab = clean_lab
    flow_file = lab.cfg.flows_dir / "iceberg_offload_flow.py"
    raised = run_module("offload_flow_timeout", {"path": str(flow_file), "timeout": 120})
    assert raised["changed"] and _flow_timeout(lab) == 120
    worker = lab.dc.containers.get("k2-prefect-worker")
    started_at = worker.attrs["State"]["StartedAt"]

    rc, out, _ = run_playbook("playbooks/timeout_revert.yml", "--check")
    assert rc == 0 and out["stats"]["k2-lab"]["changed"] >= 1, out.get("stats")
    assert _flow_timeout(lab) == 120

    rc, out, _ = run_playbook("playbooks/timeout_revert.yml")
    assert rc == 0, str(out)[-2000:]
    assert _flow_timeout(lab) == lab.cfg.task_timeout_seconds
    worker.reload()
    assert worker.attrs["State"]["StartedAt"] != started_at  # restarted to pick the file up (runbook)
    assert lab.prefect.worker_online()

    rc, out, _ = run_playbook("playbooks/timeout_revert.yml")
    assert rc == 0 and out["stats"]["k2-lab"]["changed"] == 0, out.get("stats")
