"""The lab's offload pipeline end to end: ClickHouse -> Prefect flow -> Spark job -> Iceberg -> watermark."""
from __future__ import annotations

import subprocess
import sys

from stack import PROJECT_ROOT

LABCTL = [sys.executable, str(PROJECT_ROOT / "lab" / "labctl.py")]


def test_healthy_cycle_moves_data_and_advances_watermark(lab):
    tables = [t["source_table"] for t in labctl_tables(lab)]
    before = {t: lab.wm(t)["last_offload_timestamp"] for t in tables}
    run = lab.cycle(tables)
    assert run["state_type"] == "COMPLETED", run["state"]
    for table in tables:
        wm = lab.wm(table)
        assert wm["status"] == "success" and wm["failure_count"] == 0
        assert wm["last_offload_timestamp"] >= before[table]
        truth = lab.truth(table)
        assert truth["cold_rows"] > 0, truth
        assert truth["missing"] == 0 and truth["duplicated"] == 0, truth


def test_second_cycle_adds_only_new_rows(lab):
    lab.cycle()
    first = lab.truth()
    assert lab.cycle()["state_type"] == "COMPLETED"
    second = lab.truth()
    assert second["cold_rows"] > first["cold_rows"]  # the feed never stops, so each cycle finds new rows
    assert second["missing"] == 0 and second["duplicated"] == 0, second


def test_metrics_series_exist_at_zero_and_lag_is_set(lab):
    import lab_clients
    text = lab_clients.metric_text(lab.cfg)
    for t in labctl_tables(lab):
        for error_type in ("process_error", "timeout"):
            assert f'error_type="{error_type}",table="{t["source_table"]}"' in text or \
                   f'table="{t["source_table"]}",error_type="{error_type}"' in text
        assert f'offload_lag_minutes{{table="{t["source_table"]}"}}' in text
    assert "offload_cycles_total" in text and "offload_duration_seconds_bucket" in text


def test_lab_commands_reject_bad_input_in_one_line():
    for args, expected in ((["fault", "no-such-fault"], "unknown fault 'no-such-fault'"),
                           (["fault", "clickhouse-stopped", "--table", "x'; DROP TABLE t;--"], "unknown table")):
        proc = subprocess.run(LABCTL + args, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_lab_commands_say_what_to_do_when_lab_is_down(tmp_path):
    env = {"K2_LAB_PORT_PREFECT": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(LABCTL + ["cycle"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "lab" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def labctl_tables(lab):
    from table_config import TABLE_CONFIG
    return [t for t in TABLE_CONFIG if t["layer"] in lab.cfg.layers]

