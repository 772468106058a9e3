"""The daily health check's decision: each check alone, its levels and edges; blind is never healthy."""
from __future__ import annotations

import copy

import offload_health as h
import pytest

NAMES = {"prefect_db": "k2-prefect-db", "prefect_server": "k2-prefect-server", "prefect_worker": "k2-prefect-worker",
         "clickhouse": "k2-clickhouse", "spark": "k2-spark-iceberg"}
THRESHOLDS = h.check_thresholds(10, 20, 24, 0.8, 0.9)
DISK = {"used_fraction": 0.42, "available_bytes": 50 * 2**30}
WM = {"exists": True, "lag_minutes": 4.0, "anomalies": []}


def healthy_report() -> dict:
    return {
        "kind": "k2-offload-diagnosis", "status": "healthy", "scenarios": [], "root_causes": [], "blind": [],
        "prometheus_metrics_exported": True, "ttl_headroom_seconds": {"bronze_trades_binance": 6 * 86400},
        "facts": {
            "docker": {"reachable": True}, "container_names": NAMES,
            "containers": {n: {"exists": True, "status": "running"} for n in NAMES.values()},
            "prefect": {"reachable": True, "flow_runs": [{"name": f"r{i}", "state_type": "COMPLETED"} for i in range(3)]},
            "watermarks": {"error": None, "anomalies": [],
                           "watermarks": {"bronze_trades_binance": dict(WM),
                                          "silver_trades": {"exists": True, "lag_minutes": 3e7,
                                                            "anomalies": ["initial_watermark"]}}},
        },
    }


def assess(report=None, disk=DISK):
    return h.assess(report or healthy_report(), disk, THRESHOLDS)


def level(result, name):
    return next(c for c in result["checks"] if c["check"] == name)


def test_a_healthy_stack_is_healthy_and_needs_nobody():
    result = assess()
    assert result["status"] == "healthy" and not result["needs_human"]
    assert [c["level"] for c in result["checks"]] == ["ok"] * 7
    assert result["summary_lines"] == ["HEALTH HEALTHY: diagnosis ok, containers ok, flow_runs ok, watermarks ok, lag ok, "
                                       "warehouse_disk ok, metrics ok"]


def test_a_never_offloaded_table_says_nothing_about_lag():
    assert "silver_trades" not in level(assess(), "lag")["tables"]


def test_a_stopped_container_needs_a_human_and_is_named():
    report = healthy_report()
    report["facts"]["containers"]["k2-prefect-worker"].update(status="exited", oom_killed=True)
    result = assess(report)
    assert result["status"] == "needs_human"
    assert level(result, "containers") == {"check": "containers", "level": "failed",
                                           "evidence": "not running: k2-prefect-worker exited (OOM-killed)"}


def test_an_unreachable_docker_api_is_not_healthy_containers():
    report = healthy_report()
    report["facts"]["docker"] = {"reachable": False}
    assert level(assess(report), "containers")["level"] == "failed"


def test_a_scenario_or_a_blind_probe_in_the_diagnosis_needs_a_human():
    report = healthy_report()
    report["scenarios"] = [{"scenario": 2, "title": "ClickHouse connectivity"}]
    assert level(assess(report), "diagnosis")["evidence"] == "scenario 2: run playbooks/remediate.yml"
    report = healthy_report()
    report["blind"] = [{"component": "prometheus", "probe": "alerts", "cause": "connection refused"}]
    result = assess(report)
    assert result["needs_human"] and "prometheus (connection refused)" in level(result, "diagnosis")["evidence"]


@pytest.mark.parametrize("states, expected", [
    (["COMPLETED", "FAILED", "COMPLETED"], "warning"),  # an old failure, the newest completed
    (["FAILED", "COMPLETED"], "failed"),  # the newest failed
    (["CRASHED"], "failed"),
    ([], "warning"),
])
def test_recent_flow_runs(states, expected):
    report = healthy_report()
    report["facts"]["prefect"]["flow_runs"] = [{"name": f"r{i}", "state_type": s} for i, s in enumerate(states)]
    assert level(assess(report), "flow_runs")["level"] == expected


def test_only_the_last_n_runs_count():
    report = healthy_report()
    report["facts"]["prefect"]["flow_runs"] = [{"name": "new", "state_type": "COMPLETED"},
                                               {"name": "old", "state_type": "FAILED"}]
    thresholds = h.check_thresholds(1, 20, 24, 0.8, 0.9)
    assert level(h.assess(report, DISK, thresholds), "flow_runs")["level"] == "ok"


def test_unreachable_prefect_fails_the_flow_run_check():
    report = healthy_report()
    report["facts"]["prefect"] = {"reachable": False, "error": "Prefect API http://127.0.0.1:4200/api is unreachable"}
    assert level(assess(report), "flow_runs")["evidence"] == ("flow runs unknown: Prefect API http://127.0.0.1:4200/api"
                                                              " is unreachable")


def test_a_watermark_anomaly_needs_a_human_the_1970_seed_does_not():
    report = healthy_report()
    report["facts"]["watermarks"]["anomalies"] = [{"table": "silver_trades", "code": "initial_watermark"}]
    assert level(assess(report), "watermarks")["level"] == "ok"
    report["facts"]["watermarks"]["anomalies"].append({"table": "bronze_trades_binance", "code": "stuck_running"})
    assert level(assess(report), "watermarks")["evidence"] == "bronze_trades_binance: stuck_running"


@pytest.mark.parametrize("lag, expected", [(20.0, "ok"), (20.5, "warning")])
def test_lag_threshold(lag, expected):
    report = healthy_report()
    report["facts"]["watermarks"]["watermarks"]["bronze_trades_binance"]["lag_minutes"] = lag
    assert level(assess(report), "lag")["level"] == expected


@pytest.mark.parametrize("hours, expected", [(24, "ok"), (23.9, "failed")])
def test_ttl_headroom_below_the_threshold_needs_a_human(hours, expected):
    report = healthy_report()
    report["ttl_headroom_seconds"]["bronze_trades_binance"] = hours * 3600
    assert level(assess(report), "lag")["level"] == expected


@pytest.mark.parametrize("used, expected", [(0.79, "ok"), (0.8, "warning"), (0.9, "failed")])
def test_warehouse_disk_levels(used, expected):
    assert level(assess(disk={"used_fraction": used, "available_bytes": 2**30}), "warehouse_disk")["level"] == expected


def test_unknown_disk_usage_fails():
    assert level(assess(disk=None), "warehouse_disk")["level"] == "failed"


def test_metrics_not_exported_is_a_warning_not_a_page():
    report = healthy_report()
    report["prometheus_metrics_exported"] = False
    result = assess(report)
    assert result["status"] == "warning" and not result["needs_human"]


def test_df_output_is_parsed_as_df_counts_use():
    out = ("Filesystem       1-blocks       Used   Available Capacity Mounted on\n"
           "overlay      105089261568 52544630784 47169847296      53% /\n")
    disk = h.parse_df(out)
    assert disk["total_bytes"] == 105089261568 and disk["mount"] == "/"
    assert disk["used_fraction"] == round(52544630784 / (52544630784 + 47169847296), 4)
    assert h.parse_df("") is None and h.parse_df("header only\n") is None and h.parse_df("a\nb c d e f g") is None


@pytest.mark.parametrize("args, message", [
    ((0, 20, 24, 0.8, 0.9), "recent_runs must be between 1 and 200"),
    ((10, 0, 24, 0.8, 0.9), "must be above 0"),
    ((10, 20, 24, 0.95, 0.9), "0 < warning <= critical <= 1"),
    (("x", 20, 24, 0.8, 0.9), "must be numbers"),
])
def test_bad_thresholds_are_one_line(args, message):
    with pytest.raises(h.HealthError, match=message):
        h.check_thresholds(*args)


def test_assess_does_not_change_its_input():
    report = healthy_report()
    before = copy.deepcopy(report)
    assess(report)
    assert report == before
