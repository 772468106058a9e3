"""playbooks/diagnose.yml on the lab: healthy, read-only, published for AWX/EDA, clean on bad input.
(Each fault's scenario is asserted in test_lab_faults.py, which reuses the fault's failing cycles.)"""
from __future__ import annotations

import json

from ansible_run import run_playbook
from conftest import TABLE, diagnose


def test_healthy_lab_diagnoses_healthy(lab):
    assert lab.cycle()["state_type"] == "COMPLETED"
    report = diagnose()
    assert report["status"] == "healthy" and report["scenarios"] == [], report["scenarios"]
    assert report["report_version"] == 1 and report["min_ttl_headroom_seconds"] > 6 * 86400
    assert report["facts"]["watermarks"]["layout"] == "state"
    assert report["facts"]["iceberg"]["tables"][TABLE]["total_records"] > 0


def test_diagnose_is_read_only_in_check_mode_and_publishes_stats(lab, tmp_path):
    report_path = tmp_path / "r.json"
    rc, out, stderr = run_playbook("playbooks/diagnose.yml", "--check", "-e", f"report_path={report_path}")
    assert rc == 0, stderr[-2000:]
    stats = out["stats"]["k2-lab"]
    assert stats["changed"] == 0 and stats["failures"] == 0
    published = out["global_custom_stats"]["k2_offload_diagnosis"]
    assert list(published) == ["k2-lab"], "keyed by inventory host, so that several stacks do not overwrite each other"
    assert published["k2-lab"]["status"] == json.loads(report_path.read_text())["status"]
    assert "facts" not in published["k2-lab"], "raw facts stay in the report file"


def test_no_secret_in_output(lab, tmp_path):
    _, out, stderr = run_playbook("playbooks/diagnose.yml", "-e", f"report_path={tmp_path / 'r.json'}")
    text = json.dumps(out) + stderr + (tmp_path / "r.json").read_text()
    assert lab.cfg.db_password not in text and lab.cfg.clickhouse_password not in text


def test_hostile_table_name_is_refused_in_one_line(lab, tmp_path):
    bad = '[{"source": "x\\"; DROP TABLE offload_watermarks;--", "target": "cold.x", "layer": "bronze", ' \
          '"timestamp_col": "ts", "sequence_col": "seq"}]'
    rc, out, stderr = run_playbook("playbooks/diagnose.yml", "-e", f'{{"k2_tables": {bad}}}',
                                   "-e", f"report_path={tmp_path / 'r.json'}")
    assert rc != 0
    assert "plain identifier" in json.dumps(out) and "Traceback" not in json.dumps(out) + stderr
    assert lab.wm() is not None  # nothing was dropped


def test_unreachable_components_are_findings_not_crashes(lab, tmp_path):
    report = diagnose("-e", '{"k2_prometheus_url": "http://127.0.0.1:1", "k2_clickhouse_port": 1}')
    assert report["facts"]["alerts"]["reachable"] is False
    assert report["facts"]["clickhouse"]["reachable"] is False
    assert any(s["scenario"] == 2 for s in report["scenarios"])  # ClickHouse unreachable from the host
