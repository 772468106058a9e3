"""Hostile input suite: every bad input gets one line that names it, changes nothing (changed=0), shows no
traceback and no secret, even at -vvv. docs/hostile-inputs.md lists the same cases (checked below).

Every case only reads its stack, and most of their time is Ansible starting and waiting on probes: `make test` runs
them on the twin standing in for the lab (on_a_twin), beside the fault tests of the main lab."""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from ansible_run import ROOT, run_playbook
from config import LabConfig
from conftest import assert_no_crash
from hostile_alerts import payload

pytestmark = pytest.mark.on_a_twin  # see tests/conftest.py
WRONG_SECRET = "Wr0ng-S3cret-for-the-test"
SECRETS = (LabConfig().db_password, LabConfig().clickhouse_password, WRONG_SECRET)
TABLE = {"source": "bronze_trades_binance", "target": "cold.bronze_trades_binance", "layer": "bronze",
         "timestamp_col": "exchange_timestamp", "sequence_col": "sequence_number", "columns": "*"}


def _diagnosis(**kw) -> dict:
    report = {"kind": "k2-offload-diagnosis", "report_version": 1, "host": "k2-lab", "status": "healthy",
              "generated_at": datetime.now(timezone.utc).isoformat(), "scenarios": [], "root_causes": [], "blind": [],
              "failing_tables": [], "causes": {}, "min_ttl_headroom_seconds": None, "ttl_headroom_seconds": {}}
    report.update(kw)
    return report


def _report_file(tmp: Path, content: str) -> list[str]:
    path = tmp / "diagnosis.json"
    path.write_text(content)
    return ["-e", "use_report=true", "-e", f"report_path={path}"]


def ev(**extra) -> list[str]:
    return ["-e", json.dumps(extra)]


def alert_var(name: str, value=None):
    """The alert-driven loop's extra var `name` carrying Jinja that touches tmp/<name> if anything renders it."""
    return lambda tmp: ev(**{name: payload(tmp, name) if value is None else value})


# (id, playbook, extra args (or a function of tmp_path), the one line expected). Cases that reach a probe run
# the diagnosis (slower); the rest stop at input validation, before the lock.
CASES = [
    ("forced scenario out of range", "remediate", ev(remediate_scenarios=7),
     r"remediate_scenarios must be among \[1, 2, 3, 4, 5\], got 7\."),
    ("forced scenario zero", "remediate", ev(remediate_scenarios="0"), r"remediate_scenarios must be among .*got 0\."),
    ("forced scenario not a number", "remediate", ev(remediate_scenarios="two"), r"remediate_scenarios .*got two\."),
    ("forced scenarios with a wrong separator", "remediate", ev(remediate_scenarios="1;2"),
     r"remediate_scenarios .*got 1;2\."),
    ("forced scenario as a dict", "remediate", ev(remediate_scenarios={"s": 1}), r"remediate_scenarios must be among"),
    ("negative budget", "remediate", ev(remediate_escalation_budget_seconds=-1),
     r"remediate_escalation_budget_seconds must be between 1 and 86400, got -1\."),
    ("huge budget", "remediate", ev(remediate_escalation_budget_seconds=10**12),
     r"remediate_escalation_budget_seconds must be between 1 and 86400, got 1000000000000\."),
    ("budget not a number", "remediate", ev(remediate_escalation_budget_seconds="soon"),
     r"remediate_escalation_budget_seconds must be a whole number of seconds, got 'soon'\."),
    ("unknown timeout mitigation", "remediate", ev(remediate_timeout_mitigation="rise"),
     r"remediate_timeout_mitigation must be one of auto, raise, manual, got 'rise'\."),
    ("empty timeout mitigation", "remediate", ev(remediate_timeout_mitigation=""),
     r"remediate_timeout_mitigation must be one of auto, raise, manual, got ''\."),
    ("empty table list", "remediate", ev(k2_tables=[]), r"k2_tables must be a non-empty list of tables, got \[\]\."),
    ("a string instead of a table list", "remediate", ev(k2_tables="bronze_trades_binance"),
     r"k2_tables must be a non-empty list of tables, got 'bronze_trades_binance'\."),
    ("duplicate tables", "remediate", ev(k2_tables=[TABLE, TABLE]), r"k2_tables lists 'bronze_trades_binance' twice\."),
    ("table name with SQL in it", "remediate", ev(k2_tables=[{**TABLE, "source": "x; DROP TABLE offload_watermarks"}]),
     r"k2_tables entries need a plain identifier as 'source'"),
    ("table entry without a source", "remediate", ev(k2_tables=[{"target": "cold.x"}]),
     r"k2_tables entries need a plain identifier as 'source', got \{\"target\": \"cold.x\"\}\."),
    ("unknown table (not in ClickHouse)", "diagnose",
     ev(k2_tables=[{**TABLE, "source": "no_such_table", "target": "cold.no_such_table"}]),
     r"no_such_table"),
    ("alert start time carrying Jinja", "remediate", alert_var("k2_alert_starts_at"),
     r"k2_alert_starts_at must be an RFC 3339 time such as 2026-12-07T10:00:00Z, got \"\{\{ lookup\('ansible.builtin.pip"
     r".*: the alert is refused and this run changes nothing\."),
    ("alert table carrying Jinja", "remediate", alert_var("k2_alert_table"), r"k2_alert_table must be a table name, got"),
    ("alert name carrying Jinja", "remediate", alert_var("k2_alert_name"),
     r"k2_alert_name must be a Prometheus alert name, got"),
    ("alert job carrying Jinja", "remediate", alert_var("k2_alert_job"), r"k2_alert_job must be a scrape job label, got"),
    ("alert fingerprint carrying Jinja", "remediate", alert_var("k2_alert_fingerprint"),
     r"k2_alert_fingerprint must be 16 hex digits \(Alertmanager's fingerprint\), got"),
    ("alert table this stack does not offload", "remediate", ev(k2_alert_table="bronze_trades_bybit"),
     r"k2_alert_table names a table this stack does not offload \('bronze_trades_bybit' is not among the 10 sources"),
    ("alert variable misspelt", "remediate", ev(k2_alert_start_at="2026-12-07T10:00:00Z"),
     r"k2_alert_start_at is not an alert variable \(known: k2_alert_name, .*\): this run changes nothing\."),
    ("alert field not a string", "remediate", ev(k2_alert_table={"{{ lookup('pipe', 'id') }}": 1}),
     r"k2_alert_table must be a string, got a dict: the alert is refused and this run changes nothing\."),
    ("report file is not JSON", "remediate", lambda tmp: _report_file(tmp, "{not json"),
     r"report .*diagnosis.json is not JSON: run diagnose.yml again or drop use_report\."),
    ("report file of another host", "remediate", lambda tmp: _report_file(tmp, json.dumps(_diagnosis(host="k2-prod-2"))),
     r"report .*diagnosis.json belongs to host 'k2-prod-2', not 'k2-lab'\."),
    ("stale report file", "remediate", lambda tmp: _report_file(tmp, json.dumps(_diagnosis(
        generated_at=(datetime.now(timezone.utc) - timedelta(hours=2)).isoformat()))),
     r"report .*diagnosis.json is stale: written 72\d\d s ago \(limit 900 s\); run diagnose.yml again\."),
    ("report file of another kind", "remediate",
     lambda tmp: _report_file(tmp, json.dumps({"kind": "k2-offload-remediation", "host": "k2-lab"})),
     r"report .*diagnosis.json is not a diagnosis report \(kind 'k2-offload-remediation'\)\."),
    ("report file missing", "remediate", ["-e", "use_report=true", "-e", "report_path=/nonexistent/diagnosis.json"],
     r"report /nonexistent/diagnosis.json cannot be read: No such file or directory"),
    ("report path not writable", "remediate", ev(remediation_report_path="/proc/k2/remediation.json"),
     r"/proc/k2"),
    ("lock path in an unusable place", "remediate", ev(k2_remediation_lock_path="/proc/k2/remediation.lock"),
     r"Remediation lock /proc/k2/remediation.lock: cannot create the lock directory /proc/k2"),
    ("lock path is a directory name", "remediate", ev(k2_remediation_lock_path="/tmp/"),
     r"path must name the lock file, got '/tmp/?'\."),
    ("report max age not a number", "remediate",
     lambda tmp: _report_file(tmp, json.dumps(_diagnosis())) + ev(remediate_report_max_age_seconds="old"),
     r"report_max_age_seconds.*unable to convert to int"),
    ("wrong PostgreSQL password", "remediate", ev(k2_postgres_password=WRONG_SECRET),
     r"ESCALATE \(root cause is unclear\): the diagnosis is blind - PostgreSQL watermarks \(offload_watermarks\): "
     r"Cannot connect to PostgreSQL .*password authentication failed"),
    ("empty PostgreSQL password", "remediate", ev(k2_postgres_password=""),
     r"ESCALATE \(root cause is unclear\): .*PostgreSQL watermarks"),
    ("wrong ClickHouse password", "remediate", ev(k2_clickhouse_password=WRONG_SECRET),
     r"ESCALATE \(root cause is unclear\): the diagnosis is blind - ClickHouse: .*Authentication failed"),
    ("unreachable PostgreSQL host", "remediate", ev(k2_postgres_port=1),
     r"ESCALATE \(root cause is unclear\): .*PostgreSQL watermarks .*Connection refused"),
    ("Prefect API URL not a URL", "remediate", ev(k2_prefect_api_url="prefect:4200"),
     r"ESCALATE \(root cause is unclear\): .*Prefect API: api_url 'prefect:4200' must start with http:// or https://"),
    ("unreachable Prefect API", "remediate", ev(k2_prefect_api_url="http://127.0.0.1:1/api"),
     r"ESCALATE \(root cause is unclear\): .*Prefect API: .*Connection refused"),
]


def _run(case, tmp_path):
    _, playbook, args, _ = case
    args = args(tmp_path) if callable(args) else args
    extra = ["-e", f"report_path={tmp_path / 'diagnosis.json'}"] if "use_report=true" not in args else []
    if playbook == "remediate":
        # Every path its own: these run beside other tests, and reports/ is the control node's (the alert-driven
        # loop's test counts the records of reports/incidents.jsonl).
        extra += ["-e", f"remediation_report_path={tmp_path / 'remediation.json'}",
                  "-e", f"remediate_incident_log={tmp_path / 'incidents.jsonl'}"]
        if "k2_remediation_lock_path" not in " ".join(args):  # cases run side by side: one lock each
            extra += ["-e", f"k2_remediation_lock_path={tmp_path / 'remediation.lock'}"]
    return run_playbook(f"playbooks/{playbook}.yml", *extra, *args, "-vvv", timeout=300)


@pytest.fixture(scope="module")
def outcomes(lab, tmp_path_factory):
    """Every case run once, two at a time: each only reads the lab (none gets past its escalation), and most of
    their time is Ansible waiting on probes."""
    dirs = {case[0]: tmp_path_factory.mktemp("hostile") for case in CASES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case[0]: pool.submit(_run, case, dirs[case[0]]) for case in CASES}
        return {name: (future.result(), dirs[name]) for name, future in futures.items()}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_line_naming_it_and_changes_nothing(outcomes, case):
    (rc, out, stderr), tmp_path = outcomes[case[0]]
    text = json.dumps(out) + stderr
    assert_no_crash(text)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("k2_alert_")], "an alert's field was rendered"
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} in the output"
    stats = out.get("stats", {}).get("k2-lab", {})
    assert stats.get("changed", 0) == 0, stats
    failures = [result.get("msg", "") for play in out.get("plays", []) for task in play["tasks"]
                for result in task["hosts"].values() if result.get("failed") and not result.get("skipped")]
    if case[1] == "diagnose":  # a table ClickHouse does not have is a finding in the report, not a crash
        assert rc == 0 and not failures, failures
        report = json.loads((tmp_path / "diagnosis.json").read_text())
        assert report["status"] != "healthy" and re.search(case[3], json.dumps(report)), report["status"]
        return
    assert rc != 0, text[-2000:]
    final = failures[-1] if failures else stderr
    assert "\n" not in final.strip() and "Traceback" not in final, final
    assert re.search(case[3], final), final


def test_the_docs_table_lists_every_case():
    doc = (ROOT / "docs" / "hostile-inputs.md").read_text()
    rows = {line.split("|")[1].strip() for line in doc.splitlines() if line.startswith("| ") and "---" not in line}
    assert {c[0] for c in CASES} <= rows, sorted({c[0] for c in CASES} - rows)
    assert len(CASES) >= 30
