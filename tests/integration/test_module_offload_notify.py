"""offload_notify through real ansible-playbook against the lab's Alertmanager (API v2): the escalation is posted,
read back with GET /api/v2/alerts, carries the runbook's labels and annotations and none of the lab's passwords, and
is resolved again. Every alert posted here has its own `stack` label, so the shared lab is never confused with it and
is left with nothing active (the lab's Alertmanager routes to a null receiver: nothing leaves the machine)."""
from __future__ import annotations

import json
import urllib.parse
import urllib.request
import uuid
from dataclasses import fields
from datetime import datetime, timedelta, timezone

import pytest
from ansible_run import run_module
from config import LabConfig

pytestmark = pytest.mark.beside_the_lab  # see tests/conftest.py

MODULE = "offload_notify"
CFG = LabConfig()
AM = f"http://127.0.0.1:{CFG.port_alertmanager}"
PASSWORDS = [getattr(CFG, f.name) for f in fields(CFG) if "password" in f.name]
TABLES = ["bronze_trades_binance", "bronze_trades_kraken"]


def am_alerts(stack: str) -> list[dict]:
    query = urllib.parse.urlencode({"filter": f'stack="{stack}"'})
    with urllib.request.urlopen(f"{AM}/api/v2/alerts?{query}", timeout=10) as resp:
        return json.loads(resp.read())


def resolve_directly(alerts: list[dict]) -> None:
    """Leave the lab's Alertmanager as found, whatever a failed test left active."""
    if not alerts:
        return
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = json.dumps([{"labels": a["labels"], "startsAt": now, "endsAt": now} for a in alerts]).encode()
    request = urllib.request.Request(f"{AM}/api/v2/alerts", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


@pytest.fixture
def stack():
    name = f"k2-notify-test-{uuid.uuid4().hex[:10]}"
    yield name
    resolve_directly(am_alerts(name))


def escalation(stack: str, **kw) -> dict:
    db, ch = CFG.db_password, CFG.clickhouse_password
    args = {"api_url": AM, "host": "k2-lab", "stack": stack, "tables": TABLES, "scenario": [2],
            "reason": "data loss suspected",
            "message": f"ESCALATE (data loss suspected): truth check failed; dsn postgresql://prefect:{db}@prefect-db/prefect",
            "evidence": [f"CLICKHOUSE_PASSWORD={ch}", f"connect with {db}", f"url-encoded {urllib.parse.quote(ch)}"],
            "report": "/tmp/reports/remediate-k2-lab.json", "run_id": "cli-4242", "secrets": PASSWORDS, "timeout": 5}
    args.update(kw)
    return args


def test_the_lab_has_passwords_to_hide():
    assert len(PASSWORDS) >= 2 and all(PASSWORDS)  # else the checks below would prove nothing


def test_escalation_reaches_alertmanager_with_labels_and_no_password(stack):
    result = run_module(MODULE, escalation(stack))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["sent"] == {"alertmanager": True, "webhook": None}
    got = am_alerts(stack)
    assert sorted(a["labels"]["table"] for a in got) == TABLES
    for alert in got:
        assert alert["labels"] == {"alertname": "IcebergOffloadRemediationEscalated", "severity": "critical",
                                   "stack": stack, "host": "k2-lab", "scenario": "2", "table": alert["labels"]["table"]}
        assert alert["status"]["state"] in ("active", "unprocessed")
        notes = alert["annotations"]
        assert notes["reason"] == "Data loss suspected" and notes["escalation_rule"] == "data loss suspected"
        assert notes["report"] == "/tmp/reports/remediate-k2-lab.json" and notes["run_id"] == "cli-4242"
        assert notes["description"].startswith("ESCALATE (data loss suspected): truth check failed; dsn postgresql://")
        assert "CLICKHOUSE_PASSWORD=********" in notes["evidence"]
        ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
        assert ends - datetime.now(timezone.utc) > timedelta(hours=23)  # stays open: no "resolved" after 5 min
    text = json.dumps(got) + json.dumps(result)
    for password in PASSWORDS:
        assert password not in text and urllib.parse.quote(password) not in text


def test_resolved_closes_the_escalation(stack):
    assert not run_module(MODULE, escalation(stack)).get("failed")
    assert len(am_alerts(stack)) == 2
    result = run_module(MODULE, {"api_url": AM, "host": "k2-lab", "stack": stack, "tables": TABLES, "scenario": [2],
                                 "state": "resolved"})
    assert not result.get("failed"), result.get("msg")
    assert am_alerts(stack) == []


def test_check_mode_posts_nothing(stack):
    result = run_module(MODULE, escalation(stack), check=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["sent"] == {"alertmanager": None, "webhook": None}
    assert [a["labels"]["table"] for a in result["alerts"]] == TABLES
    assert am_alerts(stack) == []


def test_unreachable_alertmanager_is_one_line_naming_it(stack):
    result = run_module(MODULE, escalation(stack, api_url="http://127.0.0.1:1", timeout=3))
    assert result.get("failed") is True
    assert result["msg"].startswith("Alertmanager http://127.0.0.1:1/api/v2/alerts did not take the notification: ")
    assert "\n" not in result["msg"] and "Traceback" not in json.dumps(result)
    assert "module_stderr" not in result and result["sent"] == {"alertmanager": False, "webhook": None}
