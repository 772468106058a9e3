"""The capacity report's HTML page (module_utils/offload_capacity_chart.py): self-contained (no script, no external
resource), every text escaped, one rows chart and one duration chart per table, geometry inside the charts."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import offload_capacity as C
import offload_capacity_chart as H
import pytest

NOW = datetime(2026, 11, 29, 18, 0, tzinfo=timezone.utc)
HOSTILE = "k2-lab<script>alert(1)</script>"


def a_report(spark_fraction=0.95, with_samples=True):
    tables = [{"source": "bronze_trades_binance", "timestamp_col": "exchange_timestamp", "layer": "bronze"},
              {"source": "silver_trades", "timestamp_col": "timestamp", "layer": "silver"}]
    t0 = C.to_ms(NOW)
    logs, runs = [], []
    if with_samples:
        for h in range(10):
            run = f"r{h}"
            at = NOW - timedelta(hours=h, minutes=20)
            runs.append({"id": run, "state_type": "COMPLETED", "run_count": 1})
            logs += [{"task_run_id": run, "timestamp": at.isoformat(), "message": "✓ Offload completed: bronze_trades_binance"},
                     {"task_run_id": run, "timestamp": at.isoformat(), "message": f"  Duration: {500 + 3 * (10 - h)}s"}]
    clickhouse = {"reachable": True, "error": None, "t0_ms": t0,
                  "tables": {"bronze_trades_binance": {"rows": [{"hours_ago": h, "rows": 6_000_000} for h in range(5)],
                                                       "error": None},
                             "silver_trades": {"rows": None, "error": "Code: 60. <Unknown> table"}}}
    prefect = {"reachable": True, "error": None, "now": NOW, "task_runs": runs, "logs": logs, "truncated": False}
    docker = {"reachable": True, "error": None, "errors": {}, "containers": {
        "k2-spark-iceberg": {"exists": True, "status": "running", "memory_usage": int(spark_fraction * 2**31),
                             "memory_limit": 2**31, "memory_fraction": spark_fraction},
        "k2-clickhouse": {"exists": False, "status": "absent"}}}
    return C.build_report(tables, C.Thresholds(), 24, clickhouse, prefect, docker, "k2-spark-iceberg", "k2-clickhouse")


@pytest.fixture(scope="module")
def page():
    return H.render_html(a_report(), HOSTILE, NOW.isoformat())


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    lowered = page.lower()
    for forbidden in ("<script", "http://", "https://", "src=", "href=", "@import", "url(", "<link"):
        assert forbidden not in lowered, forbidden


def test_every_text_is_escaped(page):
    assert HOSTILE not in page and "k2-lab&lt;script&gt;" in page
    assert "Code: 60. &lt;Unknown&gt; table" in page  # the table's query error, shown in its empty chart


def test_one_rows_chart_and_one_duration_chart_per_table(page):
    labels = re.findall(r'aria-label="([^"]+)"', page)
    assert labels == ["bronze_trades_binance rows per hour", "bronze_trades_binance offload duration",
                      "silver_trades rows per hour", "silver_trades offload duration"]
    assert "parallel offload above 5M/h for 3 h" in page and "task timeout 600 s" in page and "warning 480 s" in page


def test_recommendations_are_listed_and_badged(page):
    report = a_report()
    rules = [(r["rule"], r["subject"]) for r in report["recommendations"]]
    assert rules == [("parallel_offload", "bronze_trades_binance"), ("timeout_or_parallelise", "bronze_trades_binance"),
                     ("spark_resources", "k2-spark-iceberg")]
    assert page.count('<span class="badge">') == 2  # the table's two rules; Spark is not a table
    assert ">RECOMMENDATIONS<" in page and "95.0%" in page and "the container does not exist" in page


def test_geometry_stays_inside_each_chart(page):
    for x, y in re.findall(r'cx="([0-9.\-]+)" cy="([0-9.\-]+)"', page):
        assert H.LEFT <= float(x) <= H.WIDTH - H.RIGHT and H.TOP <= float(y) <= H.HEIGHT - H.BOTTOM
    for points in re.findall(r'points="([^"]+)"', page):
        for pair in points.split():
            x, y = map(float, pair.split(","))
            assert H.LEFT <= x <= H.WIDTH - H.RIGHT and H.TOP <= y <= H.HEIGHT - H.BOTTOM


def test_trend_line_and_median_points_are_drawn(page):
    assert page.count('class="median"') == 10 and page.count('class="projection"') == 1
    assert page.count('class="trend"') == 1


def test_a_calm_report_without_samples_renders_and_says_so():
    html = H.render_html(a_report(spark_fraction=0.1, with_samples=False))
    assert "no timed successful offload in the window" in html and 'class="median"' not in html


@pytest.mark.parametrize("value,text", [(0, "0"), (12, "12"), (12.5, "12.5"), (72_000, "72k"), (5_200_000, "5.2M"),
                                        (300_000, "300k")])
def test_compact_numbers(value, text):
    assert H.compact(value) == text
