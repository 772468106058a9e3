"""offload_alert_event: the alert that started a run is data. Every field has Alertmanager's form or stops the run
with one line naming its variable; the module answers the same through AnsibleModule. (The rulebooks' conditions hold
the very same patterns: tests/integration/test_eda_rules.py.)"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from module_harness import load_module, run_main
from offload_alert_event import SHOWN_CHARS, VARIABLES, AlertEventError, alert_event

ROOT = Path(__file__).resolve().parents[2]
TABLES = ["bronze_trades_binance", "ohlcv_1h"]
JINJA = "{{ lookup('ansible.builtin.pipe', 'touch /tmp/pwned; echo 2026-12-07T10:00:00Z') }}"
GOOD = {"k2_alert_name": "IcebergOffloadConsecutiveFailures", "k2_alert_table": "bronze_trades_binance",
        "k2_alert_starts_at": "2026-12-07T10:00:00.123456789Z", "k2_alert_fingerprint": "4c1fa5b1e1d3a0e2"}


def test_an_alert_s_fields_come_back_as_given():
    assert alert_event(GOOD, TABLES) == {
        "name": "IcebergOffloadConsecutiveFailures", "table": "bronze_trades_binance", "job": None,
        "started_at": "2026-12-07T10:00:00.123456789Z", "fingerprint": "4c1fa5b1e1d3a0e2", "from_alert": True}


def test_the_metrics_down_alert_names_a_job_instead_of_a_table():
    alert = alert_event({"k2_alert_name": "IcebergOffloadMetricsDown", "k2_alert_job": "iceberg-scheduler",
                         "k2_alert_starts_at": "2026-12-07T10:00:00+02:00"}, TABLES)
    assert (alert["job"], alert["table"], alert["started_at"]) == ("iceberg-scheduler", None, "2026-12-07T10:00:00+02:00")


@pytest.mark.parametrize("raw", [{}, {name: None for name in VARIABLES}, {name: "" for name in VARIABLES}])
def test_a_run_not_started_by_an_alert_has_none(raw):
    assert alert_event(raw, TABLES) == {**{field: None for field in VARIABLES.values()}, "from_alert": False}


@pytest.mark.parametrize("variable", list(VARIABLES))
@pytest.mark.parametrize("value", [JINJA, "{% for x in range(9) %}{% endfor %}", "ok\nsecond line", " ok", "ok ",
                                   "a" * 200])
def test_a_field_not_in_alertmanager_s_form_stops_the_run_naming_its_variable(variable, value):
    with pytest.raises(AlertEventError) as refused:
        alert_event({**GOOD, variable: value}, TABLES)
    message = str(refused.value)
    assert message.startswith(f"{variable} must be ") and "\n" not in message
    assert message.endswith(": the alert is refused and this run changes nothing.")
    assert repr(value)[:SHOWN_CHARS - 3] in message and len(message) < 200 + SHOWN_CHARS


def test_a_refused_value_is_shown_cut():
    with pytest.raises(AlertEventError, match=re.escape(repr(JINJA)[:SHOWN_CHARS - 3] + "...: the alert")):
        alert_event({"k2_alert_starts_at": JINJA}, TABLES)
    just_fits = "-" * (SHOWN_CHARS - 2)  # quoted, exactly SHOWN_CHARS long: shown whole
    with pytest.raises(AlertEventError, match=re.escape(f"got {just_fits!r}: the alert")):
        alert_event({"k2_alert_table": just_fits}, TABLES)


@pytest.mark.parametrize("variable, value", [
    ("k2_alert_starts_at", "2026-12-07T10:00:00Z"), ("k2_alert_starts_at", "2026-12-07T10:00:00.1Z"),
    ("k2_alert_starts_at", "2026-12-07T10:00:00.123456789-05:30"), ("k2_alert_name", "Offload:ratio_high"),
    ("k2_alert_job", "k2-prefect.worker:8000"), ("k2_alert_fingerprint", "0123456789abcdef"), ("k2_alert_table", "ohlcv_1h"),
])
def test_alertmanager_s_forms_are_accepted(variable, value):
    assert alert_event({variable: value}, TABLES)[VARIABLES[variable]] == value


@pytest.mark.parametrize("variable, value", [
    ("k2_alert_starts_at", "2026-12-07 10:00:00Z"), ("k2_alert_starts_at", "2026-12-07T10:00:00"),
    ("k2_alert_starts_at", "2026-12-07T10:00:00.1234567890Z"), ("k2_alert_fingerprint", "0123456789ABCDEF"),
    ("k2_alert_fingerprint", "0123456789abcde"), ("k2_alert_table", "9table"), ("k2_alert_table", "a" * 64),
    ("k2_alert_name", "Offload-failing"), ("k2_alert_job", "a" * 129), ("k2_alert_job", "job/x"),
])
def test_near_misses_are_refused(variable, value):
    with pytest.raises(AlertEventError, match=f"^{variable} must be "):
        alert_event({variable: value}, TABLES)


def test_a_time_of_the_right_shape_that_is_no_time_is_refused():
    with pytest.raises(AlertEventError, match=r"^k2_alert_starts_at is not a valid time, got '2026-13-45T10:00:00Z': "
                                              r"the alert is refused and this run changes nothing\.$"):
        alert_event({"k2_alert_starts_at": "2026-13-45T10:00:00Z"}, TABLES)


def test_a_table_this_stack_does_not_offload_is_refused():
    with pytest.raises(AlertEventError, match=r"^k2_alert_table names a table this stack does not offload "
                                              r"\('silver_trades' is not among the 2 sources of k2_tables\)"):
        alert_event({"k2_alert_table": "silver_trades"}, TABLES)


def test_a_misspelt_alert_variable_is_refused_not_dropped():
    with pytest.raises(AlertEventError, match=r"^k2_alert_start_at is not an alert variable \(known: k2_alert_name, "
                                              r"k2_alert_table, k2_alert_job, k2_alert_starts_at, k2_alert_fingerprint\): "
                                              r"this run changes nothing\.$"):
        alert_event({**GOOD, "k2_alert_start_at": "2026-12-07T10:00:00Z"}, TABLES)


def test_the_module_answers_the_same(monkeypatch):
    module = load_module("offload_alert_event")
    done = run_main(module, monkeypatch, {"tables": TABLES, "_variables": GOOD}, check_mode=True)
    assert done["changed"] is False and done["alert"]["table"] == "bronze_trades_binance"
    assert done["msg"] == ("started by the alert: name IcebergOffloadConsecutiveFailures, table bronze_trades_binance, "
                           "started_at 2026-12-07T10:00:00.123456789Z, fingerprint 4c1fa5b1e1d3a0e2")
    assert run_main(module, monkeypatch, {"tables": TABLES})["msg"] == "not started by an alert"
    failed = run_main(module, monkeypatch, {"tables": TABLES, "_variables": {"k2_alert_fingerprint": JINJA}})
    assert failed["failed"] and failed["msg"].startswith("k2_alert_fingerprint must be 16 hex digits")
