"""Pure logic of offload_watermark: layout detection, SQL per layout, anomaly rules at their thresholds, names."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import offload_watermark_logic as L
import pytest

import offload_common
from offload_common import invalid_identifiers, to_json_safe

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
US = timedelta(microseconds=1)

STATE_COLUMNS = ["table_name", "last_offload_timestamp", "last_offload_max_sequence", "last_offload_row_count",
                 "status", "last_successful_run", "last_run_duration_seconds", "failure_count",
                 "last_error_message", "created_at", "updated_at"]
HISTORY_COLUMNS = ["id", "table_name", "max_timestamp", "sequence_number", "created_at"]


def state_wm(**kw) -> dict:
    """A healthy state-layout watermark (normalized), 6 minutes behind NOW, overridable."""
    row = {"table_name": "bronze_trades_binance", "last_offload_timestamp": NOW - timedelta(minutes=6),
           "last_offload_max_sequence": 42, "last_offload_row_count": 100, "status": "success",
           "last_successful_run": NOW - timedelta(minutes=1), "last_run_duration_seconds": 7, "failure_count": 0,
           "last_error_message": None, "created_at": NOW - timedelta(days=1), "updated_at": NOW - timedelta(minutes=1),
           "row_count": 1}
    row.update(kw)
    return L.normalize_row(L.LAYOUT_STATE, row)


def history_wm(**kw) -> dict:
    row = {"table_name": "bronze_trades_binance", "id": 7, "max_timestamp": NOW - timedelta(minutes=6),
           "sequence_number": 42, "created_at": NOW - timedelta(minutes=1), "row_count": 3}
    row.update(kw)
    return L.normalize_row(L.LAYOUT_HISTORY, row)


DEFAULT_LIMITS = L.Thresholds()


def codes(wm, layout=L.LAYOUT_STATE, limits=DEFAULT_LIMITS, now=NOW):
    return [code for code, _ in L.anomalies(wm, now, layout, limits, "bronze_trades_binance")]


# --- layout detection ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("columns, layout", [
    (STATE_COLUMNS, "state"),
    (["table_name", "last_offload_timestamp", "last_offload_max_sequence"], "state"),  # K2 minimum
    ([c.upper() for c in STATE_COLUMNS], "state"),
    (STATE_COLUMNS + ["extra_note"], "state"),
    (HISTORY_COLUMNS, "history"),
    (list(reversed(HISTORY_COLUMNS)), "history"),
    (HISTORY_COLUMNS + ["note"], "history"),
    (None, "absent"),
    ([], "unknown"),  # exists, but no readable column (privileges) or a zero-column table
    (["table_name", "last_offload_timestamp"], "unknown"),  # state without its sequence
    (["table_name", "max_timestamp", "sequence_number", "created_at"], "unknown"),  # history without id
    (["source_table", "last_watermark"], "unknown"),  # the Phase-7 test doc's imaginary columns
    (STATE_COLUMNS + ["id", "max_timestamp", "sequence_number"], "unknown"),  # ambiguous mix of both
    (["foo"], "unknown"),
])
def test_detect_layout(columns, layout):
    assert L.detect_layout(columns) == layout


def test_missing_columns_only_for_state():
    assert L.missing_columns("state", STATE_COLUMNS) == []
    assert L.missing_columns("state", ["table_name", "last_offload_timestamp", "last_offload_max_sequence",
                                       "status"]) == [c for c in L.STATE_OPTIONAL if c != "status"]
    assert L.missing_columns("history", HISTORY_COLUMNS) == []
    assert L.missing_columns("absent", None) == []


# --- SQL -----------------------------------------------------------------------------------------------------

def test_state_sql_reads_every_k2_column_by_primary_key():
    sql = L.watermark_sql("state", STATE_COLUMNS)
    assert "NULL AS" not in sql
    assert "FROM offload_watermarks WHERE table_name = ANY(%(tables)s)" in sql
    for col in STATE_COLUMNS:
        assert col in sql


def test_state_sql_reads_absent_optional_columns_as_null():
    sql = L.watermark_sql("state", ["table_name", "last_offload_timestamp", "last_offload_max_sequence"])
    # literal names: a loop over L.STATE_OPTIONAL would assert nothing if the constant lost its entries
    optional = ["last_offload_row_count", "status", "last_successful_run", "last_run_duration_seconds",
                "failure_count", "last_error_message", "created_at", "updated_at"]
    assert re.findall(r"NULL AS (\w+)", sql) == optional


def test_state_sql_never_selects_a_column_outside_the_whitelist():
    sql = L.watermark_sql("state", STATE_COLUMNS + ["x; DROP TABLE offload_watermarks"])
    assert "DROP" not in sql


def test_history_sql_keeps_the_newest_row_and_counts_all():
    sql = L.watermark_sql("history", HISTORY_COLUMNS)
    assert "DISTINCT ON (table_name)" in sql
    assert "count(*) OVER (PARTITION BY table_name) AS row_count" in sql
    assert sql.endswith("ORDER BY table_name, created_at DESC, id DESC")


@pytest.mark.parametrize("layout", ["absent", "unknown"])
def test_no_sql_for_unreadable_layouts(layout):
    assert L.watermark_sql(layout, ["foo"]) is None


@pytest.mark.parametrize("sql,bound", [(L.SERVER_SQL, {"table"}), (L.COLUMNS_SQL, {"schema", "table"}),
                                       (L.watermark_sql("state", STATE_COLUMNS), {"tables"}),
                                       (L.watermark_sql("history", HISTORY_COLUMNS), {"tables"})])
def test_sql_is_one_line_and_only_uses_bound_values(sql, bound):
    assert "\n" not in sql
    assert "'" not in sql  # no literal: every value is a %(name)s parameter
    assert set(re.findall(r"%\((\w+)\)s", sql)) == bound  # exact: a subset test passes on no parameter at all


# --- timestamps ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (None, None),
    (datetime(2026, 1, 1, 10, 0), datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)),  # naive = UTC
    (datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
     datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)),
    ("2026-01-01T10:00:00+00:00", datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)),
    ("1970-01-01 00:00:00", L.EPOCH),
])
def test_to_utc(value, expected):
    result = L.to_utc(value)
    assert result == expected
    if result is not None:
        assert result.utcoffset() == timedelta(0)


def test_to_utc_rejects_non_timestamps():
    with pytest.raises(TypeError):
        L.to_utc(12345)


def test_normalize_state_row():
    wm = state_wm(updated_at=datetime(2026, 11, 26, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    assert wm["exists"] is True and wm["row_count"] == 1 and wm["sequence"] == 42 and wm["status"] == "success"
    assert wm["updated_at"] == datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    assert wm["updated_at"].tzinfo == timezone.utc


def test_normalize_history_row_has_no_state_fields():
    wm = history_wm()
    assert wm["exists"] is True and wm["row_count"] == 3 and wm["sequence"] == 42
    assert wm["timestamp"] == NOW - timedelta(minutes=6)
    assert wm["updated_at"] == wm["created_at"] == NOW - timedelta(minutes=1)
    assert (wm["status"], wm["failure_count"], wm["last_error_message"], wm["last_successful_run"]) == (None,) * 4


@pytest.mark.parametrize("layout", ["state", "history", "absent", "unknown"])
def test_normalize_missing_row(layout):
    wm = L.normalize_row(layout, None)
    assert wm["exists"] is False and wm["row_count"] == 0 and wm["timestamp"] is None


# --- anomaly rules -------------------------------------------------------------------------------------------

def test_healthy_watermark_has_no_anomaly():
    assert codes(state_wm()) == []
    assert codes(history_wm(), layout="history") == []


@pytest.mark.parametrize("age, status, expected", [
    (timedelta(minutes=30), "running", False),           # exactly at the limit: K2's recovery uses a strict <
    (timedelta(minutes=30) + US, "running", True),
    (timedelta(minutes=29, seconds=59), "running", False),
    (timedelta(minutes=45), "running", True),             # the lab's watermark-stuck-running fault
    (timedelta(days=3), "running", True),
    (timedelta(minutes=45), " RUNNING ", True),           # status compared case/space-insensitively
    (timedelta(minutes=45), "success", False),
    (timedelta(minutes=45), "initialized", False),
    (timedelta(minutes=45), None, False),
    (-timedelta(minutes=5), "running", False),            # updated_at in the future
])
def test_stuck_running_threshold(age, status, expected):
    wm = state_wm(status=status, updated_at=NOW - age)
    assert ("stuck_running" in codes(wm)) is expected


def test_stuck_running_with_null_updated_at():
    assert "stuck_running" in codes(state_wm(status="running", updated_at=None))


@pytest.mark.parametrize("stale, age, expected", [(0, US, True), (0, timedelta(0), False),
                                                   (20, timedelta(minutes=25), True),
                                                   (60, timedelta(minutes=45), False)])
def test_stuck_running_custom_limit(stale, age, expected):
    wm = state_wm(status="running", updated_at=NOW - age)
    assert ("stuck_running" in codes(wm, limits=L.Thresholds(stale_running_minutes=stale))) is expected


@pytest.mark.parametrize("count, expected", [(None, False), (0, False), (2, False), (3, True), (4, True), (1000, True)])
def test_consecutive_failures_threshold(count, expected):
    assert ("consecutive_failures" in codes(state_wm(failure_count=count))) is expected


def test_consecutive_failures_custom_threshold():
    assert "consecutive_failures" in codes(state_wm(failure_count=1), limits=L.Thresholds(consecutive_failures=1))


@pytest.mark.parametrize("status, expected", [("failed", True), ("FAILED", True), ("success", False),
                                              ("running", False), (None, False), ("failed_over", False)])
def test_failed_status(status, expected):
    assert ("failed" in codes(state_wm(status=status, failure_count=1))) is expected


@pytest.mark.parametrize("message, expected", [
    (None, "no error message recorded"),
    ("", "no error message recorded"),
    ("Failed to read from ClickHouse: Connection refused\nTraceback ...",
     "Failed to read from ClickHouse: Connection refused"),
    ("x" * 1000, "x" * 200 + "..."),
])
def test_failed_detail_is_the_first_line_of_the_error(message, expected):
    found = dict(L.anomalies(state_wm(status="failed", last_error_message=message), NOW, "state"))
    assert found["failed"] == f"status failed: {expected}"
    assert "\n" not in found["failed"]


@pytest.mark.parametrize("ahead, tolerance, expected", [
    (timedelta(seconds=60), 60, False),                 # exactly at the tolerance
    (timedelta(seconds=60) + US, 60, True),
    (timedelta(seconds=59), 60, False),
    (timedelta(0), 60, False),
    (timedelta(0), 0, False),
    (US, 0, True),
    (timedelta(minutes=30), 60, True),                  # the lab's watermark-ahead fault direction
    (timedelta(minutes=30), 3600, False),
    (-timedelta(days=2), 60, False),
])
def test_future_watermark_threshold(ahead, tolerance, expected):
    wm = state_wm(last_offload_timestamp=NOW + ahead)
    assert ("future_watermark" in codes(wm, limits=L.Thresholds(future_tolerance_seconds=tolerance))) is expected


@pytest.mark.parametrize("ts, seq, which", [(None, 42, "timestamp"), (NOW, None, "sequence"),
                                            (None, None, "timestamp and sequence")])
def test_null_values(ts, seq, which):
    wm = state_wm(last_offload_timestamp=ts, last_offload_max_sequence=seq)
    found = dict(L.anomalies(wm, NOW, "state"))
    assert which + " NULL" in found["null_values"]
    if ts is None:  # no time-based rule can fire on a NULL timestamp, and nothing raises
        assert "initial_watermark" not in found and "future_watermark" not in found
        assert L.lag_minutes(wm, NOW) is None


def test_null_values_in_history_layout():
    assert codes(history_wm(max_timestamp=None), layout="history") == ["null_values"]


@pytest.mark.parametrize("ts, expected", [
    (L.EPOCH, True),                                     # K2's seed value
    (datetime(1970, 1, 1), True),                        # naive epoch from a TIMESTAMP column
    (datetime(1970, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), True),  # same instant, other offset
    (L.EPOCH - timedelta(days=1), True),
    (L.EPOCH + US, False),
    (datetime(2000, 1, 1, tzinfo=timezone.utc), False),
])
def test_initial_watermark(ts, expected):
    assert ("initial_watermark" in codes(state_wm(last_offload_timestamp=ts, status="initialized"))) is expected


@pytest.mark.parametrize("rows, limit, expected", [(100, 100, False), (101, 100, True), (1, 100, False),
                                                   (151, 100, True), (1, 0, True), (0, 0, False), (10, 10, False)])
def test_history_bloat_threshold(rows, limit, expected):
    wm = history_wm(row_count=rows)
    assert ("history_bloat" in codes(wm, layout="history", limits=L.Thresholds(history_row_limit=limit))) is expected


def test_history_bloat_never_in_state_layout():
    assert "history_bloat" not in codes(state_wm(row_count=500), limits=L.Thresholds(history_row_limit=0))


@pytest.mark.parametrize("layout, needle", [("state", "Watermark not found for table: bronze_trades_binance"),
                                            ("history", "Watermark not found"),
                                            ("absent", "does not exist")])
def test_missing_row(layout, needle):
    found = L.anomalies(L.normalize_row(layout, None), NOW, layout, table="bronze_trades_binance")
    assert [c for c, _ in found] == ["missing_row"]
    assert needle in found[0][1]


def test_unknown_layout_is_one_finding_per_table():
    assert codes(L.normalize_row("unknown", None), layout="unknown") == ["unknown_layout"]


def test_many_anomalies_at_once_in_documented_order():
    wm = state_wm(last_offload_timestamp=L.EPOCH, status="failed", failure_count=7, last_error_message="boom")
    assert codes(wm) == ["initial_watermark", "failed", "consecutive_failures"]
    wm = state_wm(last_offload_timestamp=NOW + timedelta(hours=1), last_offload_max_sequence=None, status="running",
                  updated_at=NOW - timedelta(hours=2), failure_count=3)
    found = codes(wm)
    assert found == ["null_values", "future_watermark", "stuck_running", "consecutive_failures"]
    assert found == sorted(found, key=L.ANOMALY_CODES.index)


def test_now_may_be_naive_or_in_another_zone():
    wm = state_wm(status="running", updated_at=NOW - timedelta(minutes=31))
    assert "stuck_running" in codes(wm, now=NOW.replace(tzinfo=None))
    assert "stuck_running" in codes(wm, now=NOW.astimezone(timezone(timedelta(hours=-5))))


@pytest.mark.parametrize("delta, expected", [(timedelta(minutes=6), 6.0), (timedelta(seconds=90), 1.5),
                                             (-timedelta(minutes=30), -30.0), (timedelta(0), 0.0)])
def test_lag_minutes(delta, expected):
    assert L.lag_minutes(state_wm(last_offload_timestamp=NOW - delta), NOW) == expected


# --- whole result --------------------------------------------------------------------------------------------

def test_build_watermarks_state():
    rows = [{"table_name": "bronze_trades_kraken", "last_offload_timestamp": L.EPOCH, "last_offload_max_sequence": 0,
             "status": "initialized", "failure_count": 0, "updated_at": NOW, "row_count": 1},
            {"table_name": "bronze_trades_binance", "last_offload_timestamp": NOW - timedelta(minutes=6),
             "last_offload_max_sequence": 9, "status": "failed", "failure_count": 3, "last_error_message": "x",
             "updated_at": NOW, "row_count": 1}]
    tables = ["bronze_trades_binance", "bronze_trades_kraken", "nope"]
    wms, flat = L.build_watermarks("state", rows, tables, NOW)
    assert list(wms) == tables  # request order, not row order
    assert wms["bronze_trades_binance"]["anomalies"] == ["failed", "consecutive_failures"]
    assert wms["bronze_trades_binance"]["lag_minutes"] == 6.0
    assert wms["bronze_trades_kraken"]["anomalies"] == ["initial_watermark"]
    assert wms["nope"]["exists"] is False and wms["nope"]["anomalies"] == ["missing_row"]
    assert [(a["table"], a["code"]) for a in flat] == [
        ("bronze_trades_binance", "failed"), ("bronze_trades_binance", "consecutive_failures"),
        ("bronze_trades_kraken", "initial_watermark"), ("nope", "missing_row")]
    for a in flat:
        assert set(a) == {"table", "code", "detail"} and all(isinstance(v, str) and v for v in a.values())
    json.dumps(to_json_safe({"watermarks": wms, "anomalies": flat}))  # JSON-safe once converted


def test_build_watermarks_absent_and_unknown():
    wms, flat = L.build_watermarks("absent", [], ["a", "b"], NOW)
    assert [a["code"] for a in flat] == ["missing_row", "missing_row"] and wms["a"]["exists"] is False
    wms, flat = L.build_watermarks("unknown", [], ["a"], NOW)
    assert wms["a"]["exists"] is None and [a["code"] for a in flat] == ["unknown_layout"]


def test_build_watermarks_empty_request():
    assert L.build_watermarks("state", [], [], NOW) == ({}, [])


def test_json_safe_timestamps_are_utc_iso():
    wms, _ = L.build_watermarks("state", [{"table_name": "t", "last_offload_timestamp": datetime(2026, 1, 1, 12, 0),
                                           "last_offload_max_sequence": 1, "row_count": 1}], ["t"], NOW)
    assert to_json_safe(wms)["t"]["timestamp"] == "2026-01-01T12:00:00+00:00"


def test_unique_keeps_first_seen_order():
    assert L.unique(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


# --- hostile table names -------------------------------------------------------------------------------------

HOSTILE = [
    "bronze'trades", 'bronze"trades', "a;b", "x; DROP TABLE offload_watermarks; --", "x' OR '1'='1",
    "bronze_trades_binance;", "ünïcode", "表", "bronze_trades_binancé", "", " ", " bronze", "bronze ", "a b",
    "a-b", "cold.bronze_trades_binance", "1abc", "a" * 64, "a" * 200, "a\nb", "a\tb", "a\x00b", "%(tables)s",
    "a/*c*/", "$1", "\\", "\u200bzero_width",
]


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(n) for n in HOSTILE])
def test_hostile_names_are_rejected(name):
    assert invalid_identifiers([name]) == [name]


@pytest.mark.parametrize("name", [None, 123, 1.5, ["a"], {"source": "a"}])
def test_non_string_names_are_rejected(name):
    assert invalid_identifiers([name]) == [name]


@pytest.mark.parametrize("name", ["bronze_trades_binance", "ohlcv_1d", "_x", "A1", "a" * 63, "X" * 63])
def test_plain_names_are_accepted(name):
    assert invalid_identifiers([name]) == []


def test_trailing_newline_is_rejected():
    """re.match with "$" would accept "abc\n" (the anchor matches before a final newline): fullmatch must be used."""
    assert offload_common.invalid_identifiers(["abc\n", "abc\n\n", "\nabc"]) == ["abc\n", "abc\n\n", "\nabc"]


# --- exact texts and shapes (what the module returns and reports) ---------------------------------------------

def test_state_sql_without_a_column_list_reads_every_k2_column():
    assert L.watermark_sql("state") == (
        "SELECT table_name, last_offload_timestamp, last_offload_max_sequence, last_offload_row_count, status, "
        "last_successful_run, last_run_duration_seconds, failure_count, last_error_message, created_at, updated_at, "
        "1 AS row_count FROM offload_watermarks WHERE table_name = ANY(%(tables)s) ORDER BY table_name")


def test_history_sql_text():
    assert L.watermark_sql("history") == (
        "SELECT DISTINCT ON (table_name) table_name, id, max_timestamp, sequence_number, created_at, "
        "count(*) OVER (PARTITION BY table_name) AS row_count FROM offload_watermarks "
        "WHERE table_name = ANY(%(tables)s) ORDER BY table_name, created_at DESC, id DESC")


def test_to_utc_names_what_it_rejects():
    with pytest.raises(TypeError, match=r"^not a timestamp: 12345$"):
        L.to_utc(12345)


def test_to_utc_does_not_depend_on_the_machines_time_zone(monkeypatch):
    import time
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        result = L.to_utc(datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))
        assert result.isoformat() == "2026-01-01T10:00:00+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_missing_row_normalizes_to_the_empty_watermark():
    assert L.normalize_row("state", None) == {
        "exists": False, "timestamp": None, "sequence": None, "status": None, "failure_count": None,
        "last_error_message": None, "last_successful_run": None, "updated_at": None, "created_at": None,
        "last_offload_row_count": None, "last_run_duration_seconds": None, "row_count": 0, "lag_minutes": None,
        "anomalies": []}


def test_normalize_state_row_whole():
    plus_one = timezone(timedelta(hours=1))
    row = {"table_name": "t", "last_offload_timestamp": datetime(2026, 11, 26, 11, 54),
           "last_offload_max_sequence": 42, "last_offload_row_count": 100, "status": "success",
           "last_successful_run": datetime(2026, 11, 26, 12, 59, tzinfo=plus_one), "last_run_duration_seconds": 7,
           "failure_count": 0, "last_error_message": None, "created_at": "2026-11-25T12:00:00",
           "updated_at": datetime(2026, 11, 26, 11, 59), "row_count": 1}
    assert L.normalize_row("state", row) == {
        "exists": True, "timestamp": datetime(2026, 11, 26, 11, 54, tzinfo=timezone.utc), "sequence": 42,
        "status": "success", "failure_count": 0, "last_error_message": None,
        "last_successful_run": datetime(2026, 11, 26, 11, 59, tzinfo=timezone.utc),
        "updated_at": datetime(2026, 11, 26, 11, 59, tzinfo=timezone.utc),
        "created_at": datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc), "last_offload_row_count": 100,
        "last_run_duration_seconds": 7, "row_count": 1, "lag_minutes": None, "anomalies": []}


def test_norm_status():
    assert L._norm_status(None) is None
    assert L._norm_status("  Running\n") == "running"


@pytest.mark.parametrize("message, detail", [
    ("  \n  ", "status failed: "),                 # only blanks: an empty first line
    ("e" * 200, "status failed: " + "e" * 200),   # exactly the limit: kept whole
    ("e" * 201, "status failed: " + "e" * 200 + "..."),
])
def test_failed_detail_edges(message, detail):
    assert L.anomalies(state_wm(status="failed", last_error_message=message), NOW, "state") == [("failed", detail)]


def test_missing_row_detail_names_the_table_or_says_the_table():
    missing = L.normalize_row("state", None)
    assert L.anomalies(missing, NOW, "state") == [
        ("missing_row", "no row for the table in offload_watermarks: K2's job fails with 'Watermark not found for "
                        "table: <table>'")]
    assert L.anomalies(missing, NOW, "state", table="t1") == [
        ("missing_row", "no row for t1 in offload_watermarks: K2's job fails with 'Watermark not found for table: "
                        "t1'")]


def test_anomaly_details():
    assert L.anomalies(L.normalize_row("unknown", None), NOW, "unknown") == [
        ("unknown_layout", "offload_watermarks has neither K2's nor the runbook's columns (see columns): not read")]
    assert L.anomalies(state_wm(last_offload_timestamp=L.EPOCH), NOW, "state") == [
        ("initial_watermark", "watermark 1970-01-01T00:00:00+00:00 (the 1970 seed): the next run reads the whole hot "
                              "table in one batch (timeout / OOM risk)")]
    assert L.anomalies(state_wm(last_offload_timestamp=NOW + timedelta(seconds=120)), NOW, "state") == [
        ("future_watermark", "watermark 2026-11-26T12:02:00+00:00 is 120 s ahead of the server clock (tolerance 60 s): "
                             "rows up to it will never be offloaded")]
    assert L.anomalies(state_wm(status="running", updated_at=None), NOW, "state") == [
        ("stuck_running", "status running with updated_at NULL: K2's stale-run recovery never matches it")]
    assert L.anomalies(state_wm(status="running", updated_at=NOW - timedelta(minutes=45)), NOW, "state") == [
        ("stuck_running", "status running since 2026-11-26T11:15:00+00:00 (45.0 min > 30 min): the job was "
                          "interrupted (OOM / SIGKILL / timeout)")]
    assert L.anomalies(state_wm(failure_count=3), NOW, "state") == [
        ("consecutive_failures", "failure_count 3 >= 3 (the runbook's alert threshold)")]
    assert L.anomalies(history_wm(row_count=101), NOW, "history") == [
        ("history_bloat", "101 history rows > 100 (the runbook's 'HAVING COUNT(*) > 100' corruption check)")]


def test_lag_minutes_has_two_decimals():
    assert L.lag_minutes(state_wm(last_offload_timestamp=NOW - timedelta(seconds=10)), NOW) == 0.17


def test_build_watermarks_names_each_missing_table():
    _, flat = L.build_watermarks("state", [], ["t1"], NOW)
    assert flat == [{"table": "t1", "code": "missing_row",
                     "detail": "no row for t1 in offload_watermarks: K2's job fails with 'Watermark not found for "
                               "table: t1'"}]
