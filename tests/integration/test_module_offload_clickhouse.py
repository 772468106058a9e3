"""offload_clickhouse (action inspect) through real ansible-playbook against the lab's ClickHouse (127.0.0.1:8123).

Read-only: nothing here writes to the lab. Another process may be injecting faults (ClickHouse briefly down,
a feed reset), so the happy-path fixture retries a few times while ClickHouse is unreachable or a bronze table
shows no row in the last hour. The lab's `lab` fixture is deliberately not used: it clears faults.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from ansible_run import run_module, run_module_until  # noqa: E402
from config import LabConfig  # noqa: E402  (lab/, on sys.path through tests/conftest.py)

pytestmark = pytest.mark.beside_the_lab  # see tests/conftest.py

MODULE = "offload_clickhouse"
CFG = LabConfig()  # 127.0.0.1:8123, password k2-lab-clickhouse unless K2_LAB_* overrides them
PASSWORD = CFG.clickhouse_password
LAB = {"clickhouse_host": "127.0.0.1", "clickhouse_port": CFG.port_clickhouse, "clickhouse_user": "default",
       "clickhouse_password": PASSWORD, "clickhouse_database": "k2"}
BRONZE_TTL_COLUMN = {"bronze_trades_binance": "ingestion_timestamp", "bronze_trades_kraken": "ingestion_timestamp",
                     "bronze_trades_coinbase": "exchange_timestamp"}
BRONZE = list(BRONZE_TTL_COLUMN)
UNKNOWN = "no_such_table_k2_test"
TABLES = ([{"source": t, "timestamp_col": "exchange_timestamp", "layer": "bronze"} for t in BRONZE]
          + [{"source": "silver_trades", "timestamp_col": "timestamp", "layer": "silver"},
             {"source": "ohlcv_1d", "target": "cold.gold_ohlcv_1d", "layer": "gold", "timestamp_col": "window_start",
              "sequence_col": "trade_count", "columns": "*"},
             {"source": UNKNOWN, "timestamp_col": "ts"}])
WATERMARK_AGE = timedelta(hours=2)
WEEK = 7 * 86400
PER_TABLE_KEYS = {"exists", "layer", "engine", "rows_last_hour", "volume", "oldest_row", "oldest_row_age_seconds",
                  "ttl", "watermark", "ttl_deadline", "ttl_headroom_seconds", "error"}


def _iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"not UTC: {value}"
    return parsed


def _one_clean_line(msg: str) -> None:
    assert msg and "\n" not in msg.strip(), msg
    assert "Traceback" not in msg and 'File "' not in msg, msg


def _healthy(r: dict) -> bool:
    return (not r.get("failed") and r.get("reachable") is True
            and all((r["tables"][t]["rows_last_hour"] or 0) > 0 for t in BRONZE))


def _inspect(check: bool = False, attempts: int = 6, pause: float = 10) -> dict:
    """Run the module; retry while ClickHouse is (briefly) down or a bronze table has no fresh rows."""
    watermark = (datetime.now(timezone.utc) - WATERMARK_AGE).replace(microsecond=0)
    args = {**LAB, "tables": TABLES, "watermarks": {t: watermark.isoformat() for t in BRONZE}}
    result = run_module_until(MODULE, args, _healthy, check=check, attempts=attempts, pause=pause)
    result["_watermark"] = watermark
    return result


@pytest.fixture(scope="module")
def inspected() -> dict:
    return _inspect()


@pytest.fixture(scope="module")
def inspected_check() -> dict:
    return _inspect(check=True)


def test_reachable_with_version_and_latency(inspected):
    r = inspected
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is False
    assert r["reachable"] is True and r["error"] is None, r.get("error")
    assert r["version"].startswith("26"), r["version"]
    assert isinstance(r["latency_ms"], float) and r["latency_ms"] > 0  # measured and reported; its size is make bench's
    server = _iso(r["server_time"])
    assert abs((datetime.now(timezone.utc) - server).total_seconds()) < 600  # same machine, roughly same clock


def test_every_table_reported_with_the_same_keys(inspected):
    r = inspected
    assert sorted(r["tables"]) == sorted(t["source"] for t in TABLES)  # the callback sorts keys
    for name, table in r["tables"].items():
        assert set(table) == PER_TABLE_KEYS, name
    assert r["tables"]["ohlcv_1d"]["layer"] == "gold"


@pytest.mark.parametrize("table", BRONZE)
def test_bronze_ttl_read_from_server_is_seven_days(inspected, table):
    t = inspected["tables"][table]
    assert t["exists"] is True and t["engine"] == "MergeTree"
    ttl = t["ttl"]
    assert ttl["interval_seconds"] == 604800 and ttl["intervals"] == [[7, "DAY"]], ttl
    assert ttl["column"] == BRONZE_TTL_COLUMN[table] and ttl["reason"] is None and ttl["conditional"] is False
    assert "7" in ttl["expression"]  # as the server prints it, e.g. ingestion_timestamp + toIntervalDay(7)


def test_silver_and_gold_ttl_read_from_server(inspected):
    silver, gold = inspected["tables"]["silver_trades"]["ttl"], inspected["tables"]["ohlcv_1d"]["ttl"]
    assert (silver["column"], silver["interval_seconds"]) == ("timestamp", 30 * 86400)
    assert (gold["column"], gold["intervals"], gold["interval_seconds"]) == ("window_start", [[2, "YEAR"]],
                                                                             2 * 365 * 86400)


@pytest.mark.parametrize("table", BRONZE)
def test_bronze_has_rows_in_the_last_hour(inspected, table):
    t = inspected["tables"][table]
    assert t["error"] is None, t["error"]
    assert t["rows_last_hour"] > 0  # the feed writes 20 rows/s per exchange
    assert t["volume"] in ("normal", "elevated", "spike")
    if t["rows_last_hour"] < 5_000_000:
        assert t["volume"] == "normal"
    oldest = _iso(t["oldest_row"])
    assert oldest <= _iso(inspected["server_time"]) and t["oldest_row_age_seconds"] >= 0


@pytest.mark.parametrize("table", BRONZE)
def test_headroom_from_the_given_watermark(inspected, table):
    r, t = inspected, inspected["tables"][table]
    watermark = r["_watermark"]
    assert _iso(t["watermark"]) == watermark
    assert _iso(t["ttl_deadline"]) == watermark + timedelta(days=7)
    expected = (watermark + timedelta(days=7) - _iso(r["server_time"])).total_seconds()
    assert abs(t["ttl_headroom_seconds"] - expected) <= 1
    assert WEEK - WATERMARK_AGE.total_seconds() - 900 < t["ttl_headroom_seconds"] <= WEEK - WATERMARK_AGE.total_seconds()


def test_tables_without_watermark_have_no_headroom(inspected):
    for name in ("silver_trades", "ohlcv_1d"):
        t = inspected["tables"][name]
        assert t["watermark"] is None and t["ttl_headroom_seconds"] is None and t["ttl_deadline"] is None


def test_unknown_table_is_not_a_failure(inspected):
    t = inspected["tables"][UNKNOWN]
    assert t["exists"] is False and t["ttl"] is None and t["rows_last_hour"] is None and t["error"] is None


def test_values_are_bound_and_queries_reported(inspected):
    queries = inspected["queries"]
    assert queries[0] == {"sql": "SELECT 1", "parameters": {}}
    lookups = [q for q in queries if "system.tables" in q["sql"]]
    assert [q["parameters"]["table"] for q in lookups] == [t["source"] for t in TABLES]
    for q in lookups:
        assert "{table:String}" in q["sql"] and q["parameters"]["table"] not in q["sql"]
    assert any(q["sql"] == "SELECT count() FROM `k2`.`bronze_trades_binance` WHERE `exchange_timestamp` > now() - "
                           "INTERVAL 1 HOUR" for q in queries)


def test_long_running_queries_shape(inspected):
    for q in inspected["long_running_queries"]:
        assert set(q) == {"query_id", "user", "elapsed", "query", "tables"}
        assert q["elapsed"] > 60 and len(q["query"]) <= 300


def test_check_mode_gives_the_same_result(inspected, inspected_check):
    a, b = inspected, inspected_check
    assert not b.get("failed") and b["changed"] is False and b["reachable"] is True
    assert b["version"] == a["version"]
    assert [q["sql"] for q in b["queries"]] == [q["sql"] for q in a["queries"]]
    for name in a["tables"]:
        for key in ("exists", "engine", "ttl", "layer"):
            assert b["tables"][name][key] == a["tables"][name][key], (name, key)
        assert (b["tables"][name]["rows_last_hour"] is None) == (a["tables"][name]["rows_last_hour"] is None)


def test_hostile_table_name_fails_with_one_clear_line():
    r = run_module(MODULE, {**LAB, "tables": [{"source": "bronze_trades_binance`; DROP TABLE k2.silver_trades; --",
                                               "timestamp_col": "exchange_timestamp"}]})
    assert r.get("failed") is True
    _one_clean_line(r["msg"])
    assert "Invalid" in r["msg"] and "DROP TABLE" in r["msg"] and "letters, digits and underscores" in r["msg"]
    assert "reachable" not in r


def test_unreachable_port_is_a_finding_not_a_failure():
    r = run_module(MODULE, {**LAB, "clickhouse_port": 1, "connect_timeout": 3, "tables": TABLES[:1]})
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is False and r["reachable"] is False
    _one_clean_line(r["error"])
    assert "127.0.0.1:1" in r["error"] and "refused" in r["error"].lower()
    assert r["tables"] == {} and r["version"] is None and r["latency_ms"] is None


def test_wrong_password_is_a_finding_and_never_shown():
    wrong = "wrong-pw-Zq81x"
    for attempt in range(6):  # ClickHouse may be briefly down: then the error is "refused", not authentication
        r = run_module(MODULE, {**LAB, "clickhouse_password": wrong, "tables": TABLES[:1]})
        if r.get("failed") or "authentication" in (r.get("error") or "").lower() or attempt == 5:
            break
        time.sleep(10)
    assert not r.get("failed"), r.get("msg")
    assert r["changed"] is False and r["reachable"] is False
    _one_clean_line(r["error"])
    assert "authentication" in r["error"].lower()
    dumped = json.dumps(r)
    assert wrong not in dumped and PASSWORD not in dumped
