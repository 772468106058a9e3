"""offload_watermark's write actions (repair, backup, restore) against the lab's PostgreSQL (state layout).

The history layout (prune, per-table cleanup vs the runbook's global one) is tested in test_history_layout.py.
"""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import lab_clients
import psycopg2
from ansible_run import run_module
from conftest import TABLE

PG = {"login_host": "127.0.0.1", "login_port": 15432, "login_password": "k2-lab-prefect"}


def _row(lab, table=TABLE):
    return lab.wm(table)


def _repair(lab, check=False, **extra):
    return run_module("offload_watermark", {"action": "repair", "tables": [TABLE], "cold": _cold(lab),
                                            "hot_oldest": {TABLE: _hot_oldest(lab)}, **PG, **extra}, check=check)


def _cold(lab):
    result = run_module("offload_iceberg_info", {"warehouse_path": str(lab.cfg.warehouse_dir),
                                                 "tables": [_table_config()]})
    return result["tables"]


def _hot_oldest(lab):
    return lab_clients.clickhouse(lab.cfg).query(f"SELECT min(exchange_timestamp) FROM {TABLE}").first_row[0].isoformat()


def _table_config():
    return {"source": TABLE, "target": f"cold.{TABLE}", "layer": "bronze", "timestamp_col": "exchange_timestamp",
            "sequence_col": "sequence_number"}


def _dump(path: str) -> bytes:
    return Path(path).read_bytes()


def test_backup_restore_round_trips_byte_for_byte(clean_lab, tmp_path):
    lab = clean_lab
    first = run_module("offload_watermark", {"action": "backup", "tables": [], "backup_dir": str(tmp_path), **PG})
    assert first["changed"] and first["rows"] >= 10, first
    assert hashlib.sha256(_dump(first["backup_file"])).hexdigest() == first["sha256"]
    lab.fault("watermark-missing")  # change the table
    assert _row(lab) is None
    restored = run_module("offload_watermark", {"action": "restore", "tables": [], "backup_file": first["backup_file"],
                                                **PG})
    assert restored["changed"] and restored["rows_after"] == first["rows"], restored
    second = run_module("offload_watermark", {"action": "backup", "tables": [], "backup_dir": str(tmp_path), **PG})
    assert second["backup_file"] != first["backup_file"]
    assert _dump(second["backup_file"]) == _dump(first["backup_file"])  # byte for byte, every row and column


def test_repair_in_check_mode_plans_and_changes_nothing(clean_lab):
    lab = clean_lab
    lab.fault("watermark-stuck-running")
    before = _row(lab)
    result = _repair(lab, check=True)
    assert result["changed"] and result["plans"][0]["action"] == "mark_failed", result
    assert any(q.startswith("UPDATE offload_watermarks SET status = 'failed'") for q in result["queries"])
    assert _row(lab) == before


def test_repair_recreates_a_missing_row_from_the_cold_tier(clean_lab):
    lab = clean_lab
    assert lab.cycle()["state_type"] == "COMPLETED"  # a cold tier to repair from
    cold_max = _cold(lab)[TABLE]["max_timestamp"]
    lab.fault("watermark-missing")
    result = _repair(lab)
    assert result["changed"] and result["plans"][0]["action"] == "create", result
    assert result["diff"]["before"][TABLE] is None and result["diff"]["after"][TABLE]["table_name"] == TABLE
    assert _row(lab)["last_offload_timestamp"].isoformat() == cold_max
    assert not _repair(lab)["changed"]  # idempotent


def test_a_remediation_holding_the_lock_makes_the_other_change_nothing(clean_lab):
    lab = clean_lab
    lab.fault("watermark-behind")
    before = _row(lab)
    with psycopg2.connect(host="127.0.0.1", port=15432, user="prefect", password="k2-lab-prefect",
                          dbname="prefect") as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"k2-offload-watermark.{TABLE}",))
        result = _repair(lab)
        cur.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"k2-offload-watermark.{TABLE}",))
    assert not result["changed"] and result["plans"][0]["action"] == "locked", result
    assert _row(lab) == before


def test_two_concurrent_repairs_act_exactly_once(clean_lab):
    lab = clean_lab
    assert lab.cycle()["state_type"] == "COMPLETED"
    lab.fault("watermark-behind")
    cold, hot = _cold(lab), _hot_oldest(lab)
    results = []

    def run():
        results.append(run_module("offload_watermark", {"action": "repair", "tables": [TABLE], "cold": cold,
                                                        "hot_oldest": {TABLE: hot}, **PG}))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r["changed"] for r in results) == [False, True], results
    loser = next(r for r in results if not r["changed"])
    assert loser["plans"][0]["action"] in ("locked", "none"), loser  # blocked by the lock, or saw the repaired row
    assert _row(lab)["last_offload_timestamp"].isoformat() == cold[TABLE]["max_timestamp"]


def test_offload_in_flight_is_refused(clean_lab):
    lab = clean_lab
    lab.fault("watermark-behind")
    before = _row(lab)
    result = _repair(lab, in_flight_tables=[TABLE])
    assert not result["changed"] and result["plans"][0]["action"] == "refused"
    assert _row(lab) == before


def test_bad_input_is_one_clear_line(lab):
    result = run_module("offload_watermark", {"action": "prune", "tables": ["x; DROP TABLE y"], "keep": 0, **PG})
    assert result["failed"] and "Invalid table name" in result["msg"] and "Traceback" not in result["msg"]
    result = run_module("offload_watermark", {"action": "prune", "tables": [TABLE], "keep": 0, **PG})
    assert result["failed"] and result["msg"].startswith("keep must be at least 1")
    result = run_module("offload_watermark", {"action": "prune", "tables": [TABLE], **PG})
    assert result["failed"] and "Nothing to prune" in result["msg"]  # K2's layout: one row per table
