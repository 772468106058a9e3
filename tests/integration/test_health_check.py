"""playbooks/health_check.yml on the lab: healthy on a healthy lab (exit 0), non-zero naming the component on a
fault. (Every remediated fault's diagnosis also goes through the same decision in test_lab_faults.py.)"""
from __future__ import annotations

import json

from ansible_run import run_playbook


def health_check(tmp_path, *extra: str) -> tuple[int, dict, str]:
    report = tmp_path / "health.json"
    rc, out, stderr = run_playbook("playbooks/health_check.yml", "-e", f"health_check_report_path={report}", *extra)
    return rc, json.loads(report.read_text()), json.dumps(out) + stderr


def test_a_healthy_lab_is_healthy(clean_lab, tmp_path):
    lab = clean_lab
    # A cycle of every table the lab offloads: the health check looks at every table's lag.
    assert lab.prefect.wait(lab.prefect.trigger(None), 240)["state_type"] == "COMPLETED"
    # Only the newest run: earlier tests' failed runs are history, not this lab's health.
    rc, report, output = health_check(tmp_path, "--check", "-e", "health_check_recent_runs=1")
    assert rc == 0, output[-3000:]
    assert report["status"] == "healthy", [c for c in report["checks"] if c["level"] != "ok"]
    assert {c["check"] for c in report["checks"]} == {"diagnosis", "containers", "flow_runs", "watermarks", "lag",
                                                      "warehouse_disk", "metrics"}
    disk = next(c for c in report["checks"] if c["check"] == "warehouse_disk")["disk"]
    assert 0 < disk["used_fraction"] < 1 and disk["total_bytes"] > 0
    assert lab.cfg.db_password not in output and lab.cfg.clickhouse_password not in output


def test_a_stopped_clickhouse_needs_a_human_and_is_named(clean_lab, tmp_path):
    clean_lab.fault("clickhouse-stopped")
    rc, report, output = health_check(tmp_path)
    assert rc != 0
    assert report["status"] == "needs_human"
    containers = next(c for c in report["checks"] if c["check"] == "containers")
    assert containers["level"] == "failed" and "k2-clickhouse exited" in containers["evidence"]
    assert "HEALTH NEEDS_HUMAN" in output
