"""playbooks/capacity_report.yml against the running lab, read-only (--check; it never clears or changes the lab, so it
may run beside other tests): a calm lab gets no recommendation; the figures behind that verdict are the lab's own
(the feed's rows per hour, the containers' memory limits, Prefect's task-run count); the chart is self-contained;
bad input is one line. The parallel-offload recommendation under a volume spike: capacity_checks.py, from the
volume-spike fault's test."""
from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lab_clients
import labctl
import pytest
import stack
from config import LabConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ansible_run import run_playbook  # noqa: E402
from capacity_checks import PLAYBOOK, capacity_report  # noqa: E402
from conftest import CRASH_MARKERS  # noqa: E402

TABLES = ["bronze_trades_binance", "bronze_trades_kraken", "bronze_trades_coinbase", "silver_trades", "ohlcv_1m",
          "ohlcv_5m", "ohlcv_15m", "ohlcv_30m", "ohlcv_1h", "ohlcv_1d"]
LAB_TASK_TIMEOUT = 30  # inventory/lab: k2_offload_task_timeout_seconds
LAB_NORMAL_ROWS = 300_000  # inventory/lab: k2_volume_normal_rows_per_hour


def offload_task_runs_since(cfg: LabConfig, since: datetime) -> int:
    """Prefect's own count of offload task runs started since `since` (not the module's paging)."""
    return lab_clients.http_json(f"http://127.0.0.1:{cfg.port_prefect}/api/task_runs/count", {
        "task_runs": {"name": {"like_": "offload-table"},
                      "start_time": {"after_": since.isoformat().replace("+00:00", "Z")}}})


@pytest.fixture(scope="module")
def calm():
    """The lab up and without an active fault (read-only check: no `lab` fixture, which clears the lab); the report
    of one --check run, and Prefect's task-run counts read just before and after it."""
    cfg = LabConfig()
    if labctl.status(cfg, None) != 0:
        pytest.fail("the lab is not healthy: run `make lab-up` (make test does it) and `make lab-status`")
    faults_file = cfg.state_dir / "faults.json"
    active = json.loads(faults_file.read_text()) if faults_file.exists() else {}
    if active:
        pytest.skip(f"the lab is not calm: fault(s) {', '.join(active)} active (another test is running)")
    before = offload_task_runs_since(cfg, datetime.now(timezone.utc) - timedelta(days=7))
    report, chart, text, stats = capacity_report()
    after = offload_task_runs_since(cfg, datetime.now(timezone.utc) - timedelta(days=7))
    return {"cfg": cfg, "report": report, "chart": chart, "text": text, "stats": stats, "task_runs": (before, after)}


def test_a_calm_lab_gets_no_recommendation(calm):
    report, text = calm["report"], calm["text"]
    for marker in CRASH_MARKERS:
        assert marker not in text
    assert "k2-lab-clickhouse" not in text and "k2-lab-clickhouse" not in calm["chart"]  # the password never shows
    assert report["status"] == "ok", report["summary_lines"]
    assert report["recommendations"] == [] and report["blind"] == []
    assert report["summary_lines"][0] == "CAPACITY OK: no recommendation over the last 7 days"
    assert "CAPACITY OK: no recommendation over the last 7 days" in text  # the summary is printed
    assert all(host["changed"] == 0 and host["failures"] == 0 for host in calm["stats"].values()), calm["stats"]
    assert report["kind"] == "k2-offload-capacity" and report["host"] == "k2-lab"


def test_the_thresholds_are_the_inventorys(calm):
    thresholds = calm["report"]["thresholds"]
    assert thresholds["normal_rows_per_hour"] == LAB_NORMAL_ROWS and thresholds["sustained_hours"] == 3
    assert thresholds["task_timeout_seconds"] == LAB_TASK_TIMEOUT and thresholds["warn_seconds"] == 24
    assert thresholds["memory_fraction"] == 0.8 and thresholds["trend_horizon_hours"] == 7 * 24


def test_rows_per_hour_are_the_lab_feeds(calm):
    """Every table has 7 x 24 hourly buckets; the last 60 minutes of each bronze table hold what the feed writes
    (it backfills the last hour at start), silver the three exchanges together."""
    per_hour = calm["cfg"].feed_rows_per_second * 3600
    tables = calm["report"]["tables"]
    assert sorted(tables) == sorted(TABLES)  # (the JSON report sorts its keys)
    for name, table in tables.items():
        assert table["error"] is None and len(table["rows_per_hour"]) == 7 * 24, name
        assert table["volume"]["last_hour"] == table["rows_per_hour"][-1]["rows"]
    for exchange in ("binance", "kraken", "coinbase"):
        last = tables[f"bronze_trades_{exchange}"]["volume"]["last_hour"]
        assert 0.95 * per_hour <= last <= 1.02 * per_hour, (exchange, last, per_hour)
    assert 0.95 * 3 * per_hour <= tables["silver_trades"]["volume"]["last_hour"] <= 1.02 * 3 * per_hour
    assert all(t["volume"]["max"] < LAB_NORMAL_ROWS and not t["volume"]["sustained"] for t in tables.values())


def test_every_offload_task_run_in_the_window_is_read(calm):
    before, after = calm["task_runs"]
    prefect = calm["report"]["sources"]["prefect"]
    assert before <= prefect["task_runs"] <= after and not prefect["task_runs_truncated"]
    attempts = sum(t["duration"]["completed"] + t["duration"]["timeouts"] + t["duration"]["failures"]
                   + t["duration"]["completed_without_duration"] for t in calm["report"]["tables"].values())
    assert attempts >= prefect["task_runs"] - prefect["task_runs_without_table"]  # each run logs >= 1 attempt
    for table in calm["report"]["tables"].values():
        duration = table["duration"]
        assert duration["timeout_seconds"] == LAB_TASK_TIMEOUT
        if duration["completed"]:
            assert 0 < duration["median_seconds"] <= duration["max_seconds"]
            assert sum(p["count"] for p in duration["hourly"]) == duration["completed"]


def test_memory_is_read_against_the_containers_own_limits(calm):
    dc = stack.client()
    for role, name in (("spark", "k2-spark-iceberg"), ("clickhouse", "k2-clickhouse")):
        memory = calm["report"]["memory"][role]
        limit = dc.containers.get(name).attrs["HostConfig"]["Memory"]
        assert memory["container"] == name and memory["limit_bytes"] == limit and memory["reason"] is None, memory
        assert 0 < memory["usage_bytes"] < limit and memory["fraction"] == round(memory["usage_bytes"] / limit, 4)
        assert memory["fraction"] <= 0.8


def test_the_chart_is_a_self_contained_page_with_every_table(calm):
    chart = calm["chart"]
    assert chart.startswith("<!DOCTYPE html>") and "<title>K2 offload capacity - k2-lab</title>" in chart
    lowered = chart.lower()
    for forbidden in ("<script", "http://", "https://", "src=", "href=", "@import", "url("):
        assert forbidden not in lowered, forbidden
    labels = re.findall(r'aria-label="([^"]+)"', chart)
    assert labels == [f"{t} {what}" for t in TABLES for what in ("rows per hour", "offload duration")]
    assert f"parallel offload above {LAB_NORMAL_ROWS // 1000}k/h for 3 h" in chart and "task timeout 30 s" in chart


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path):
    path = tmp_path / "capacity.json"
    rc, out, stderr = run_playbook(PLAYBOOK, "--check", "-e", f"capacity_report_path={path}",
                                   "-e", "capacity_report_days=0")
    text = str(out) + stderr
    assert rc != 0 and "days must be between 1 and 90, got 0." in text
    for marker in CRASH_MARKERS + ("Traceback",):
        assert marker not in text
    assert not path.exists() and not path.with_suffix(".html").exists()
