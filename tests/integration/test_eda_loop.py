"""The alert-driven closed loop on the lab, no human command after the fault: the worker dies -> its metrics are gone
-> Prometheus fires IcebergOffloadMetricsDown (the runbook's own alert cannot fire: a dead worker runs nothing, so
nothing fails) -> Alertmanager posts to the rulebook's webhook -> ansible-rulebook runs remediate.yml -> the worker
is started and the recovery verified. This is worker-oom's end-to-end test (test_lab_faults.py leaves it here).
Throttling and resolved alerts are replayed exhaustively in test_eda_rules.py; here the real chain shows them once."""
from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import stack
from hostile_alerts import clean_alert, notification
from test_lab_faults import CHECKS

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT / "reports"
LOOP = ROOT / "scripts" / "loop.sh"


def _loop(command: str, lab) -> None:
    env = {**os.environ, "K2_LAB_PORT_EDA": str(lab.cfg.port_eda), "K2_LAB_STATE_DIR": str(lab.cfg.state_dir)}
    proc = subprocess.run([str(LOOP), command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _records() -> list[dict]:
    log = REPORTS / "incidents.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def loop(clean_lab):
    """The loop, started before the fault as it runs in production. Earlier tests' failures keep the runbook's alert
    firing for its 15-minute window: silenced here, so that only this test's fault reaches the loop."""
    now = datetime.now(timezone.utc)
    silence = clean_lab.alertmanager("POST", "silences", {
        "matchers": [{"name": "alertname", "value": "IcebergOffloadConsecutiveFailures", "isRegex": False}],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "tests/integration/test_eda_loop.py", "comment": "earlier tests' failures, not this test's"})
    _loop("up", clean_lab)
    try:
        yield clean_lab
    finally:
        _loop("down", clean_lab)
        clean_lab.alertmanager("DELETE", f"silence/{silence['silenceID']}")


def test_a_dead_worker_is_remediated_by_the_alert_driven_loop(loop):
    lab = loop
    report_file = REPORTS / "remediate-k2-lab.json"
    before = report_file.stat().st_mtime if report_file.exists() else 0.0
    records_before = len(_records())
    lab.fault("worker-oom")
    CHECKS["worker-oom"](lab)

    def finished():
        # The incident record is the remediation's last write (after its report and the lock's release).
        new = _records()[records_before:]
        if not new or not report_file.exists() or report_file.stat().st_mtime <= before:
            return None
        return json.loads(report_file.read_text())

    report = lab.wait("the loop's remediation and its incident record", finished, timeout=420)
    assert report["status"] == "recovered", report
    assert report["diagnosis"][0]["scenario"] == 1 and report["verification"]["flow_run"]["state_type"] == "COMPLETED"
    assert lab.dc.containers.get("k2-prefect-worker").status == "running"
    wm = lab.wm()
    assert wm["status"] == "success" and wm["failure_count"] == 0, wm
    lab.assert_no_row_lost_or_doubled()

    # Exactly one remediation: Alertmanager's repeats are throttled, and the alert resolving once the worker is back
    # (wait for it) starts nothing.
    lab.wait("IcebergOffloadMetricsDown resolved", lambda: not lab.active_alerts("IcebergOffloadMetricsDown"), timeout=120)
    new = _records()[records_before:]
    assert len(new) == 1, [r["run"] for r in new]
    record = new[0]
    assert record["outcome"]["status"] == "recovered"
    assert record["alert"]["started_at"], "the alert's startsAt came with the event"
    assert record["mttr"]["from"] == "alert_start" and record["mttr"]["seconds"] > 0, record["mttr"]


def test_an_alert_carrying_jinja_in_every_field_runs_none_of_it(loop, tmp_path):
    """Anyone who can reach the webhook chooses every field of the alert. Posted straight to the loop: the alerts
    whose forwarded field carries Jinja start nothing (the rules' conditions), and the one whose forwarded fields are
    clean is remediated with all the rest of the payload in ansible_eda.event, which nothing renders."""
    lab = loop
    markers = tmp_path / "markers"
    markers.mkdir()
    sent = notification(markers, "bronze_trades_binance")
    records_before = len(_records())
    log = lab.cfg.state_dir / "eda-loop.log"
    recaps_before = log.read_text().count("PLAY RECAP")
    token = stack.webhook_token(lab.cfg).read_text()

    def post(headers: dict) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{lab.cfg.port_eda}/endpoint", method="POST",
                                         data=json.dumps(sent).encode(),
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    # Without the webhook's token (or with another), the notification is refused before it is an event.
    assert post({}) == 401 and post({"Authorization": "Bearer not-the-token"}) == 401
    assert post({"Authorization": f"Bearer {token}"}) == 200

    # The loop takes a notification's alerts in order: the clean one is last, so its record comes after the others
    # were matched (or not).
    lab.wait("the clean alert's remediation to end", lambda: log.read_text().count("PLAY RECAP") > recaps_before,
             timeout=300)
    new = _records()[records_before:]
    assert len(new) == 1 and log.read_text().count("PLAY RECAP") == recaps_before + 1, [r["run"] for r in new]
    record = new[0]
    assert record["outcome"]["status"] == "healthy", record["outcome"]
    assert record["alert"]["name"] == "IcebergOffloadConsecutiveFailures"
    assert record["alert"]["started_at"].startswith(clean_alert(sent)["startsAt"][:19]), record["alert"]
    assert not sorted(p.name for p in markers.iterdir()), "a field of the alert was rendered"
    assert token not in log.read_text() and oct(log.stat().st_mode & 0o777) == "0o600"  # the operator's alone

