"""The post-incident verdict: each check alone passes and fails on its own evidence; a check not made fails."""
from __future__ import annotations

from datetime import datetime, timezone

import offload_post_incident as pi
import pytest

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
TABLES = ["bronze_trades_binance", "bronze_trades_kraken"]


def run(name, state="COMPLETED", message=None):
    return {"name": name, "state_type": state, "message": message}


def observed(*runs, timed_out=False):
    return {"observed_runs": list(runs), "timed_out": timed_out}


def watermarks(lag=1.0, status="success"):
    return {t: {"timestamp": "2026-11-29T11:59:00+00:00", "status": status, "lag_minutes": lag} for t in TABLES}


def alerts(firing=(), metrics=None, reachable=True):
    return {"reachable": reachable, "error": None if reachable else "http://127.0.0.1:9090 is unreachable",
            "alerts": [{"state": "firing", "labels": {"table": t}} for t in firing], "metrics": metrics or {}}


CLEAN_TRUTH = {"clean": True, "tables": [{"table": t, "missing": 0, "duplicated": 0} for t in TABLES]}
THREE_OK = observed(run("a"), run("b"), run("c"))


def decide(obs=THREE_OK, al=None, wm=None, truth=CLEAN_TRUTH, threshold=20.0):
    return pi.verdict(3, threshold, TABLES, obs, alerts() if al is None else al, watermarks() if wm is None else wm,
                      truth, NOW)


def check(result, name):
    return next(c for c in result["checks"] if c["check"] == name)


def test_a_recovered_stack_passes_every_check():
    result = decide()
    assert result["passed"] and result["status"] == "passed"
    assert [c["check"] for c in result["checks"]] == ["flow_runs", "lag", "alert", "truth"]
    assert all(c["passed"] for c in result["checks"])
    assert result["summary_lines"][0] == "POST-INCIDENT PASSED: flow_runs ok, lag ok, alert ok, truth ok"


def test_a_failed_run_in_between_fails_with_that_runs_evidence():
    result = decide(obs=observed(run("a"), run("b", "FAILED", "Offload failed for bronze_trades_binance")))
    runs = check(result, "flow_runs")
    assert not result["passed"] and not runs["passed"]
    assert runs["evidence"] == "flow run b ended FAILED: Offload failed for bronze_trades_binance"
    assert runs["runs"] == ["a COMPLETED", "b FAILED"]


@pytest.mark.parametrize("obs, evidence", [
    (observed(run("a"), run("b"), timed_out=True), "only 2 of 3 flow runs ended before the wait timed out"),
    (observed(), "only 0 of 3 flow runs ended (check mode creates none)"),
])
def test_fewer_runs_than_expected_fail(obs, evidence):
    runs = check(decide(obs=obs), "flow_runs")
    assert not runs["passed"] and runs["evidence"] == evidence


def test_lag_comes_from_prometheus_where_exported_else_from_the_watermark():
    metrics = {"offload_lag_minutes": [{"labels": {"table": "bronze_trades_binance"}, "value": 3.14}]}
    lag = check(decide(al=alerts(metrics=metrics), wm=watermarks(lag=2.0)), "lag")
    assert lag["lags"] == {"bronze_trades_binance": {"minutes": 3.1, "source": "prometheus"},
                           "bronze_trades_kraken": {"minutes": 2.0, "source": "watermark"}}
    assert lag["passed"]


def test_lag_from_the_watermark_timestamp_when_the_module_gave_no_lag():
    wm = {t: {"timestamp": "2026-11-29T11:30:00Z", "status": "success"} for t in TABLES}
    lag = check(decide(wm=wm), "lag")
    assert lag["lags"]["bronze_trades_kraken"] == {"minutes": 30.0, "source": "watermark"}
    assert not lag["passed"] and lag["evidence"].startswith("lag above 20 min:")


@pytest.mark.parametrize("lag_minutes, passed", [(20.0, True), (20.1, False)])
def test_the_lag_threshold_is_inclusive(lag_minutes, passed):
    assert check(decide(wm=watermarks(lag=lag_minutes)), "lag")["passed"] is passed


def test_unknown_lag_fails():
    wm = {"bronze_trades_binance": watermarks()["bronze_trades_binance"]}
    lag = check(decide(wm=wm), "lag")
    assert not lag["passed"] and lag["evidence"] == "lag unknown for bronze_trades_kraken (no metric, no watermark)"


def test_a_firing_alert_is_stale_once_the_runs_completed_and_no_watermark_fails():
    alert = check(decide(al=alerts(firing=["bronze_trades_binance"])), "alert")
    assert alert["passed"] and "stale" in alert["evidence"]


def test_a_firing_alert_fails_when_a_watermark_still_fails():
    alert = check(decide(al=alerts(firing=["bronze_trades_binance"]), wm=watermarks(status="failed")), "alert")
    assert not alert["passed"] and alert["evidence"] == ("alert firing for bronze_trades_binance, watermark "
                                                         "failing for bronze_trades_binance")


def test_a_firing_alert_fails_when_the_runs_did_not_complete():
    result = decide(obs=observed(run("a", "FAILED")), al=alerts(firing=["bronze_trades_binance"]))
    assert not check(result, "alert")["passed"]


def test_an_alert_of_another_table_is_not_this_incidents():
    assert check(decide(al=alerts(firing=["silver_trades"])), "alert")["evidence"].startswith("alert resolved")


def test_unreachable_prometheus_is_not_a_resolved_alert():
    alert = check(decide(al=alerts(reachable=False)), "alert")
    assert not alert["passed"] and alert["evidence"].startswith("alert state unknown: Prometheus http://127.0.0.1")


@pytest.mark.parametrize("truth, passed", [
    (CLEAN_TRUTH, True),
    ({"clean": False, "tables": [{"table": "bronze_trades_binance", "missing": 5, "duplicated": 0}]}, False),
    (None, False),
    ({"clean": True, "tables": []}, False),
])
def test_the_truth_check_must_be_made_and_clean(truth, passed):
    assert check(decide(truth=truth), "truth")["passed"] is passed


def test_the_summary_names_every_failed_check():
    result = decide(obs=observed(run("a", "CRASHED")), truth=None)
    assert result["summary_lines"][0] == "POST-INCIDENT FAILED: flow_runs FAILED, lag ok, alert ok, truth FAILED"
    assert "FAILED: flow run a ended CRASHED: no message" in result["summary_lines"]


@pytest.mark.parametrize("runs, threshold, tables, message", [
    ("x", 20, TABLES, "must be numbers"),
    (0, 20, TABLES, "expected_runs must be between 1 and 20, got 0."),
    (3, 0, TABLES, "lag_threshold_minutes must be above 0"),
    (3, 20, [], "tables must be a non-empty list"),
    (3, 20, "bronze_trades_binance", "tables must be a non-empty list"),
])
def test_bad_inputs_are_one_line(runs, threshold, tables, message):
    with pytest.raises(pi.PostIncidentError, match=message):
        pi.check_inputs(runs, threshold, tables)
