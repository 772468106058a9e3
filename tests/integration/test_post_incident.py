"""playbooks/post_incident.yml beyond the passing case (which ends the AWX workflow test in test_awx_runner.py and
follows a remediation in test_lab_faults.py): a run failing in between, a remediation holding the lock, bad input."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from ansible_run import run_playbook


def post_incident(tmp_path, *extra: str) -> tuple[int, dict | None, str]:
    report = tmp_path / "post-incident.json"
    rc, out, stderr = run_playbook("playbooks/post_incident.yml", "-e", f"post_incident_report_path={report}", *extra,
                                   timeout=600)
    return rc, json.loads(report.read_text()) if report.exists() else None, json.dumps(out) + stderr


def test_a_run_failing_in_between_fails_with_its_evidence(clean_lab, tmp_path):
    lab = clean_lab
    lab.fault("spark-stopped")
    rc, report, output = post_incident(tmp_path)
    assert rc != 0
    assert report["status"] == "failed"
    checks = {c["check"]: c for c in report["checks"]}
    assert not checks["flow_runs"]["passed"]
    assert checks["flow_runs"]["evidence"].startswith(f"flow run {report['flow_runs'][0]['name']} ended FAILED")
    assert len(report["flow_runs"]) == 1 and report["created_runs"] == 1, "it stops at the first failed run"
    assert "POST-INCIDENT FAILED: flow_runs FAILED" in output


def test_a_remediation_holding_the_lock_means_nothing_is_verified(lab, tmp_path):
    """A remediation on another control node holds the stack's lock: post-incident verification must not create
    runs beside it (two runs at once double rows), nor take its lock."""
    lock = lab.cfg.state_dir / "locks" / "remediation.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lock.write_text(json.dumps({"who": "awx@awx-job-pod", "control_node": "awx-job-pod", "run_id": "awx-job-4242",
                                "pid": 7, "since": since, "token": "foreign-token"}))
    runs_before = lab.prefect.run_ids()
    try:
        rc, report, output = post_incident(tmp_path)
        assert json.loads(lock.read_text())["token"] == "foreign-token"
    finally:
        lock.unlink()
    assert rc != 0 and report is None
    assert "IN PROGRESS: awx-job-4242 holds the stack's lock" in output
    assert lab.prefect.run_ids() == runs_before


def test_bad_input_is_one_line_and_nothing_runs(lab, tmp_path):
    rc, report, output = post_incident(tmp_path, "-e", "post_incident_runs=0")
    assert rc != 0 and report is None
    assert "expected_runs must be between 1 and 20, got 0." in output and "Traceback" not in output
