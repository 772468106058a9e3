"""offload_alerts through real ansible-playbook against the lab's Prometheus (read-only module).

The alert's state depends on faults that another process injects into the shared lab: assertions are about the
module's contract and about what the lab has when Prometheus is up (the offload metrics exported, the runbook's
rules loaded). Lane 1 stops Prometheus in one test (test_safety_edges) and a restarted Prometheus has no series
until its first scrape: the reads that expect an answer retry until Prometheus gives it (`answered`)."""
from __future__ import annotations

import pytest
from ansible_run import run_module, run_module_until

pytestmark = pytest.mark.beside_the_lab  # see tests/conftest.py

MODULE = "offload_alerts"
ALERT = "IcebergOffloadConsecutiveFailures"
LAG = "offload_lag_minutes"
ERRORS = "sum(increase(offload_errors_total[15m])) by (table, error_type)"
TOP_KEYS = {"reachable", "api_url", "error", "alerts", "alert_tables", "rule", "rule_loaded", "metrics",
            "metric_errors", "metrics_empty", "changed"}


def answered(args: dict, check: bool = False, lag: bool = True) -> dict:
    """The module's result once Prometheus answers, with the lab's lag metric if `lag` (or the last attempt's)."""
    return run_module_until(MODULE, args, lambda r: r.get("failed") or (
        r.get("reachable") and (not lag or r.get("metrics", {}).get(LAG))), check=check)


@pytest.fixture(scope="module")
def default_read() -> dict:
    return answered({})


def test_reads_the_alert_and_the_default_metrics(default_read):
    result = default_read
    assert not result.get("failed"), result.get("msg")
    assert TOP_KEYS <= set(result)
    assert result["changed"] is False
    assert result["reachable"] is True and result["error"] is None
    assert result["api_url"] == "http://127.0.0.1:9090"
    assert set(result["metrics"]) == {LAG, ERRORS} and result["metric_errors"] == {}
    lag = result["metrics"][LAG]
    assert lag, "the lab exports offload_lag_minutes"
    assert all(s["labels"]["__name__"] == LAG and "table" in s["labels"] for s in lag)
    assert all(s["value"] is None or isinstance(s["value"], float) for s in lag)
    assert result["metrics_empty"] is False


def test_alert_entries_match_their_tables(default_read):
    result = default_read
    assert result["rule_loaded"] is True
    assert result["rule"]["query"] and "offload_errors_total" in result["rule"]["query"]
    for alert in result["alerts"]:
        assert alert["labels"]["alertname"] == ALERT
        assert alert["state"] in ("pending", "firing")
        assert alert["active_at"]
        assert alert["value"] is None or alert["value"] >= 3
    tables = {a["labels"]["table"] for a in result["alerts"] if a["labels"].get("table")}
    assert result["alert_tables"] == sorted(tables)


def test_check_mode_reads_the_same():
    result = answered({"metrics": [LAG]}, check=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["reachable"] is True
    assert result["metrics"][LAG] and result["metrics_empty"] is False


def test_unknown_alert_is_an_empty_list_and_an_unloaded_rule():
    result = answered({"alert_name": "NoSuchAlertAnywhere", "metrics": ["absent_metric_k2_lab"]}, lag=False)
    assert not result.get("failed"), result.get("msg")
    assert result["reachable"] is True
    assert result["alerts"] == [] and result["alert_tables"] == []
    assert result["rule"] is None and result["rule_loaded"] is False
    assert result["metrics"] == {"absent_metric_k2_lab": []}
    assert result["metrics_empty"] is True  # nothing exported: a finding, not a failure


def test_bad_promql_is_reported_not_failed():
    result = answered({"metrics": ["sum(", LAG]})
    assert not result.get("failed"), result.get("msg")
    assert "parse error" in result["metric_errors"]["sum("]
    assert result["metrics"]["sum("] == [] and result["metrics"][LAG]
    assert result["metrics_empty"] is False
    assert "sum(" in result["error"] and "\n" not in result["error"]


def test_unreachable_prometheus_is_a_finding_not_a_failure():
    result = run_module(MODULE, {"api_url": "http://127.0.0.1:1", "timeout": 3})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["reachable"] is False
    assert "127.0.0.1:1" in result["error"] and "\n" not in result["error"]
    assert result["alerts"] == [] and result["metrics"] == {} and result["metrics_empty"] is None


@pytest.mark.parametrize("args, expected", [
    ({"api_url": "localhost:9090"}, "must start with http:// or https://"),
    ({"api_url": "http://127.0.0.1:9090/?x=1"}, "query string"),
    ({"alert_name": " "}, "alert_name must not be empty"),
    ({"metrics": ["offload_lag_minutes", ""]}, "empty expressions"),
])
def test_bad_input_fails_with_one_clear_line(args, expected):
    result = run_module(MODULE, args)
    assert result.get("failed") is True
    assert expected in result["msg"] and "\n" not in result["msg"] and "Traceback" not in result["msg"]
