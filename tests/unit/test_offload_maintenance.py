"""The weekly watermark hygiene's decisions (module_utils/offload_maintenance.py, library/offload_maintenance_report.py):
history layout - prune after a backup, only when something is to delete; state layout - never a change, findings with
what to do; a table that cannot be maintained stops the run."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import offload_maintenance as M
import pytest

T = "bronze_trades_binance"
TABLES = [T, "bronze_trades_kraken", "silver_trades"]
SKIPPED = {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"}


def inspect(layout="history", anomalies=(), columns=()):
    return {"layout": layout, "anomalies": list(anomalies), "server_time": "2026-11-29T18:00:00+00:00",
            "columns": list(columns), "watermarks": {}}


def anomaly(code, table=T, detail="d"):
    return {"table": table, "code": code, "detail": detail}


PLAN = {"changed": False, "deleted": 55, "locked": [], "rows_before": {T: 150, "bronze_trades_kraken": 105,
                                                                       "silver_trades": 40},
        "rows_after": {T: 100, "bronze_trades_kraken": 100, "silver_trades": 40}}
BACKUP = {"changed": True, "backup_file": "/b/offload_watermarks-20261129T180000000000Z.csv", "rows": 295,
          "sha256": "ab" * 32}
BACKUP_CHECK = {"changed": True, "backup_file": "/b/offload_watermarks-20261129T180000000000Z.csv", "rows": None,
                "sha256": None}


def test_findings_put_what_needs_a_human_first_with_what_to_do():
    found = M.findings([anomaly("initial_watermark", "ohlcv_1d"), anomaly("stuck_running"),
                        anomaly("history_bloat"), anomaly("future_watermark", "silver_trades"),
                        anomaly("something_new", "ohlcv_1m")])
    assert [(f["table"], f["code"], f["action_needed"]) for f in found] == [
        (T, "stuck_running", True), ("silver_trades", "future_watermark", True),
        ("ohlcv_1d", "initial_watermark", False), ("ohlcv_1m", "something_new", False)]
    assert "remediate_scenarios=4" in found[0]["advice"] and f"no offload of {T} is in flight" in found[0]["advice"]
    assert "escalates (data loss)" in found[1]["advice"]
    assert found[3]["advice"] == "see playbooks/diagnose.yml"  # history_bloat is the prune's job, not a finding


@pytest.mark.parametrize("code", ["missing_row", "null_values", "future_watermark", "stuck_running"])
def test_each_corruption_pattern_needs_action(code):
    report = M.build_report(inspect("state", [anomaly(code)]), 100, TABLES)
    assert report["status"] == M.STATUS_ATTENTION and report["prune"] is None
    assert any(line.startswith(f"ACTION {T} {code}: d. What to do: ") for line in M.summary_lines(report))


def test_state_layout_is_never_pruned_and_a_clean_table_says_so():
    report = M.build_report(inspect("state", [anomaly("initial_watermark", "ohlcv_1d")]), 100, TABLES)
    assert report["status"] == M.STATUS_CLEAN and report["prune"] is None and "nothing to prune" in report["reason"]
    lines = M.summary_lines(report)
    assert lines[0] == "WATERMARK MAINTENANCE CLEAN: layout state, 3 table(s)"
    assert "no stuck, NULL, future or missing watermark" in lines
    assert lines[-1].startswith("info initial_watermark (ohlcv_1d): the 1970 seed")


def test_history_layout_pruned_after_a_backup():
    prune = {**PLAN, "changed": True}
    report = M.build_report(inspect(), 100, TABLES, PLAN, BACKUP, prune)
    part = report["prune"]
    assert report["status"] == M.STATUS_PRUNED and part["deleted"] == 55 and part["would_delete"] is None
    assert part["planned_deletions"] == 55 and part["backup"]["written"] and part["backup"]["rows"] == 295
    lines = M.summary_lines(report)
    assert "deleted 55 history row(s), keeping the newest 100 per table" in lines
    assert f"{T}: 150 -> 100 row(s)" in lines and "bronze_trades_kraken: 105 -> 100 row(s)" in lines
    assert not any(line.startswith("silver_trades:") for line in lines)  # untouched tables are not listed
    assert lines[lines.index(f"{T}: 150 -> 100 row(s)") + 2].startswith(f"backed up to {BACKUP['backup_file']} first")


def test_history_layout_in_check_mode_says_what_it_would_do():
    report = M.build_report(inspect(), 100, TABLES, PLAN, BACKUP_CHECK, {**PLAN, "changed": True}, check_mode=True)
    part = report["prune"]
    assert report["status"] == M.STATUS_WOULD_PRUNE and part["deleted"] == 0 and part["would_delete"] == 55
    assert part["backup"]["written"] is False
    lines = M.summary_lines(report)
    assert lines[0] == "WATERMARK MAINTENANCE WOULD PRUNE: layout history, 3 table(s)"
    assert "CHECK MODE - would delete 55 history row(s), keeping the newest 100 per table; nothing was changed" in lines
    assert any(line.startswith("would back up to /b/") for line in lines)


def test_history_layout_with_nothing_to_prune_takes_no_backup():
    plan = {**PLAN, "deleted": 0, "rows_after": PLAN["rows_before"]}
    report = M.build_report(inspect(), 200, TABLES, plan, SKIPPED, SKIPPED)
    assert report["status"] == M.STATUS_CLEAN and report["prune"]["backup"] is None
    assert report["prune"]["deleted"] == 0 and report["prune"]["rows_before"] == PLAN["rows_before"]


def test_findings_outrank_a_prune_and_locked_tables_are_named():
    locked = {**PLAN, "locked": ["silver_trades"]}
    report = M.build_report(inspect(anomalies=[anomaly("null_values")]), 100, TABLES, locked, BACKUP, locked)
    assert report["status"] == M.STATUS_ATTENTION and report["prune"]["deleted"] == 55
    assert "not pruned (a remediation holds the table's lock): silver_trades" in M.summary_lines(report)


@pytest.mark.parametrize("layout,columns,expected", [
    ("absent", (), "offload_watermarks layout is absent (the table does not exist)"),
    ("unknown", ("id", "table_name", "last_offload_timestamp"),
     "offload_watermarks layout is unknown (columns: id, table_name, last_offload_timestamp)"),
])
def test_a_table_that_cannot_be_maintained_is_unusable(layout, columns, expected):
    report = M.build_report(inspect(layout, columns=columns), 100, TABLES)
    assert report["status"] == M.STATUS_UNUSABLE and report["reason"].startswith(expected)
    assert M.summary_lines(report) == [f"WATERMARK MAINTENANCE UNUSABLE: {report['reason']}"]


# --- the module ---------------------------------------------------------------------------------------------

class Exit(Exception):
    pass


@pytest.fixture(scope="module")
def module_file():
    path = Path(__file__).resolve().parents[2] / "library" / "offload_maintenance_report.py"
    spec = importlib.util.spec_from_file_location("offload_maintenance_report_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(mod, monkeypatch, args, check_mode=False):
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", lambda self, **kw: (_ for _ in ()).throw(Exit(kw, False)))
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", lambda self, **kw: (_ for _ in ()).throw(Exit(kw, True)))
    with patch_module_args({**args, "_ansible_check_mode": check_mode}):
        with pytest.raises(Exit) as done:
            mod.main()
    result, failed = done.value.args
    return {**result, "failed": failed}


def test_module_reports_and_never_changes_anything(module_file, monkeypatch):
    r = run(module_file, monkeypatch, {"inspect": inspect(), "plan": PLAN, "backup": BACKUP_CHECK,
                                       "prune": {**PLAN, "changed": True}, "keep": 100, "tables": TABLES},
            check_mode=True)
    assert not r["failed"] and r["changed"] is False and r["status"] == "would_prune"
    assert r["summary_lines"][0].startswith("WATERMARK MAINTENANCE WOULD PRUNE")


@pytest.mark.parametrize("args,message", [
    ({"keep": 0}, "keep must be at least 1 (the newest row is the watermark), got 0."),
    ({"tables": ["t; drop"]}, "Invalid table name(s) 't; drop'"),
    ({"inspect": {"failed": True, "msg": "Cannot connect to PostgreSQL at 127.0.0.1:1/prefect"}},
     "inspect is not a result of offload_watermark_info (no layout): Cannot connect"),
])
def test_module_bad_input_is_one_line(module_file, monkeypatch, args, message):
    r = run(module_file, monkeypatch, {"inspect": inspect(), "keep": 100, "tables": TABLES, **args})
    assert r["failed"] and r["msg"].startswith(message) and "\n" not in r["msg"]
