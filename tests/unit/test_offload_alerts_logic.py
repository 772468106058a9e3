"""Pure logic of offload_alerts: Prometheus API envelopes, vectors, alerts, rules, empty results."""
from __future__ import annotations

import offload_alerts_logic as logic
import pytest

ALERT = "IcebergOffloadConsecutiveFailures"


def alert(name=ALERT, state="firing", table="bronze_trades_binance", value="2.1e+01", active="2026-11-26T07:30:56Z"):
    labels = {"alertname": name, "severity": "critical"}
    if table is not None:
        labels["table"] = table
    return {"labels": labels, "annotations": {"summary": f"failing for {table}"}, "state": state,
            "activeAt": active, "value": value}


# ---------------------------------------------------------------- envelopes

def test_unwrap_success():
    assert logic.unwrap({"status": "success", "data": {"alerts": []}}) == {"alerts": []}


@pytest.mark.parametrize("payload, text", [
    ({"status": "error", "errorType": "bad_data", "error": "1:5: parse error: unclosed left parenthesis"},
     "bad_data: 1:5: parse error"),
    ({"status": "error", "error": "first line\nsecond line"}, "error: first line"),
    ({"status": "error"}, "no error message"),
    ({"status": "error", "error": "  "}, "error: no error message"),
    ([], "not a Prometheus API response"),
    ("<html>", "not a Prometheus API response"),
    (None, "not a Prometheus API response"),
    ({"data": {}}, "error"),
])
def test_unwrap_errors_are_one_line(payload, text):
    with pytest.raises(logic.PrometheusError) as exc:
        logic.unwrap(payload, "/api/v1/query")
    assert text in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith("/api/v1/query")


# ---------------------------------------------------------------- sample values

@pytest.mark.parametrize("raw, expected", [
    ("5.60448075", 5.60448075), ("2.1036130289532295e+01", 21.036130289532295), ("0", 0.0), ("-1", -1.0),
    (3, 3.0), ("NaN", None), ("+Inf", None), ("-Inf", None), ("", None), (None, None), ("abc", None), ([1], None),
])
def test_sample_value(raw, expected):
    assert logic.sample_value(raw) == expected


# ---------------------------------------------------------------- query results

def test_vector_parsed_sorted_with_labels_values_and_raw():
    data = {"resultType": "vector", "result": [
        {"metric": {"__name__": "offload_lag_minutes", "table": "ohlcv_1m"}, "value": [1795679029.089, "29927983.8"]},
        {"metric": {"__name__": "offload_lag_minutes", "table": "bronze_trades_binance"},
         "value": [1795679029.089, "5.6"]},
        {"metric": {"__name__": "offload_lag_minutes", "table": "silver_trades"}, "value": [1795679029.089, "NaN"]},
    ]}
    rows = logic.parse_query_result(data)
    assert [r["labels"]["table"] for r in rows] == ["bronze_trades_binance", "ohlcv_1m", "silver_trades"]
    assert rows[0] == {"labels": {"__name__": "offload_lag_minutes", "table": "bronze_trades_binance"},
                       "value": 5.6, "raw": "5.6", "timestamp": 1795679029.089}
    assert rows[2]["value"] is None and rows[2]["raw"] == "NaN"


def test_aggregated_vector_without_name_and_unicode_labels():
    data = {"resultType": "vector", "result": [
        {"metric": {"error_type": "timeout", "table": "bronze_trades_kraken"}, "value": [1, "3"]},
        {"metric": {"error_type": "process_error", "table": "trädes_✗"}, "value": [1, "0"]},
    ]}
    rows = logic.parse_query_result(data)
    assert [(r["labels"]["error_type"], r["value"]) for r in rows] == [("process_error", 0.0), ("timeout", 3.0)]
    assert rows[0]["labels"]["table"] == "trädes_✗"


@pytest.mark.parametrize("data, expected", [
    ({"resultType": "vector", "result": []}, []),
    ({"resultType": "vector", "result": None}, []),
    ({"resultType": "vector", "result": ["junk", None]}, []),
    ({"resultType": "scalar", "result": [1795679029.12, "1795679029.12"]},
     [{"labels": {}, "value": 1795679029.12, "raw": "1795679029.12", "timestamp": 1795679029.12}]),
    ({"resultType": "string", "result": [1, "hello"]}, [{"labels": {}, "value": None, "raw": "hello", "timestamp": 1}]),
    ({"resultType": "matrix", "result": [{"metric": {"table": "t"}, "values": [[1, "1"], [2, "2"]]},
                                         {"metric": {"table": "u"}, "values": []}]},
     [{"labels": {"table": "t"}, "value": 2.0, "raw": "2", "timestamp": 2},
      {"labels": {"table": "u"}, "value": None, "raw": None, "timestamp": None}]),
    ({"resultType": "vector", "result": [{"metric": None, "value": [1, "7"]}]},
     [{"labels": {}, "value": 7.0, "raw": "7", "timestamp": 1}]),
    ({"resultType": "vector", "result": [{"metric": {}, "value": "broken"}]},
     [{"labels": {}, "value": None, "raw": None, "timestamp": None}]),
])
def test_query_result_shapes(data, expected):
    assert logic.parse_query_result(data) == expected


@pytest.mark.parametrize("data", [None, [], {"resultType": "histogram", "result": []}, {"result": []}])
def test_query_result_rejects_unknown_shapes(data):
    with pytest.raises(logic.PrometheusError):
        logic.parse_query_result(data)


@pytest.mark.parametrize("results, expected", [
    ({"offload_lag_minutes": [], "sum(...)": []}, True),       # K2 gotcha: nothing exported -> a finding
    ({"offload_lag_minutes": [{"labels": {}, "value": 1.0}], "sum(...)": []}, False),
    ({"x": [{"labels": {}, "value": 0.0}]}, False),           # a zero is a value
    ({}, None),
])
def test_metrics_empty(results, expected):
    assert logic.metrics_empty(results) is expected


# ---------------------------------------------------------------- alerts

def test_alerts_named_filters_and_orders_firing_first():
    data = {"alerts": [
        alert(state="pending", table="ohlcv_1m"),
        alert(name="IcebergOffloadLagCritical", table="ohlcv_1h"),
        alert(table="bronze_trades_kraken"),
        alert(table="bronze_trades_binance"),
        "junk",
        {"labels": None, "state": "firing"},
    ]}
    rows = logic.alerts_named(data, ALERT)
    assert [(r["state"], r["labels"]["table"]) for r in rows] == [
        ("firing", "bronze_trades_binance"), ("firing", "bronze_trades_kraken"), ("pending", "ohlcv_1m")]
    assert rows[0]["value"] == 21.0 and rows[0]["raw_value"] == "2.1e+01"
    assert rows[0]["active_at"] == "2026-11-26T07:30:56Z"
    assert rows[0]["annotations"] == {"summary": "failing for bronze_trades_binance"}
    assert logic.alert_tables(rows) == ["bronze_trades_binance", "bronze_trades_kraken", "ohlcv_1m"]


@pytest.mark.parametrize("data", [{"alerts": []}, {"alerts": None}, {}, None, [], {"alerts": [alert(name="Other")]}])
def test_unknown_or_no_alert_is_an_empty_list(data):
    assert logic.alerts_named(data, ALERT) == []
    assert logic.alerts_named(data, "NoSuchAlert") == []


def test_alert_tables_ignore_alerts_without_table_and_duplicates():
    rows = logic.alerts_named({"alerts": [alert(table=None), alert(table=""), alert(table="t"),
                                          alert(table="t", state="pending")]}, ALERT)
    assert logic.alert_tables(rows) == ["t"]


def test_alert_value_nan_is_null():
    rows = logic.alerts_named({"alerts": [alert(value="NaN")]}, ALERT)
    assert rows[0]["value"] is None and rows[0]["raw_value"] == "NaN"


# ---------------------------------------------------------------- rules

RULES = {"groups": [
    {"name": "iceberg_offload_info", "rules": [{"type": "recording", "name": ALERT, "query": "x"}]},
    {"name": "iceberg_offload_critical", "rules": [
        {"type": "alerting", "name": "IcebergOffloadLagCritical", "query": "offload_lag_minutes > 30"},
        {"type": "alerting", "name": ALERT, "query": "sum by (table) (increase(offload_errors_total[15m])) >= 3",
         "duration": 4, "health": "ok", "state": "firing", "lastError": ""},
    ]},
]}


def test_find_rule():
    rule = logic.find_rule(RULES, ALERT)
    assert rule == {"group": "iceberg_offload_critical",
                    "query": "sum by (table) (increase(offload_errors_total[15m])) >= 3", "duration": 4,
                    "health": "ok", "state": "firing", "last_error": ""}


@pytest.mark.parametrize("data", [{"groups": []}, {}, None, {"groups": [{"name": "g", "rules": None}]},
                                  {"groups": [None]}])
def test_rule_not_loaded(data):
    # K2's stock compose does not mount the rules directory: the rule is absent, a finding.
    assert logic.find_rule(data, ALERT) is None
    assert logic.find_rule(RULES, "NoSuchAlert") is None


@pytest.mark.parametrize("url, ok", [
    ("http://127.0.0.1:9090", True), ("http://127.0.0.1:9090/prometheus/", True), ("localhost:9090", False),
    ("http://:9090", False), ("http://127.0.0.1:9090/?q=1", False), ("http://127.0.0.1:70000", False), (" ", False),
])
def test_api_url_problem(url, ok):
    assert (logic.api_url_problem(url) is None) is ok
