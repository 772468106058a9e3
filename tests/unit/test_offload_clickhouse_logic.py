"""Pure logic of offload_clickhouse (TTL parsing, volume, headroom, quoting, SQL, errors) and a thin main() smoke
test with a fake client (no server, no ansible-playbook)."""
from __future__ import annotations

import importlib.util
import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import offload_clickhouse_inspect
import offload_clickhouse_logic as L
import pytest

import offload_common

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
DAY = 86400
YEAR = 365 * DAY

# --- TTL: every K2 form of the fact sheet (section 6), as written in DDL and as ClickHouse 26.9 prints it ------

K2_FORMS = [
    # bronze_trades_binance (test report / MV setup) and the lab DDL
    ("ingestion_timestamp + INTERVAL 7 DAY", "ingestion_timestamp", 7 * DAY, [[7, "DAY"]]),
    ("TTL ingestion_timestamp + INTERVAL 7 DAY", "ingestion_timestamp", 7 * DAY, [[7, "DAY"]]),
    # bronze_trades_kraken (setup_kraken_bronze.sql) = what the server prints for binance and kraken
    ("ingestion_timestamp + toIntervalDay(7)", "ingestion_timestamp", 7 * DAY, [[7, "DAY"]]),
    ("TTL ingestion_timestamp + toIntervalDay(7)", "ingestion_timestamp", 7 * DAY, [[7, "DAY"]]),
    # v1 design 01-bronze-layer-fixed.sql (shorthand without INTERVAL)
    ("toDateTime(exchange_timestamp)+7 DAY", "exchange_timestamp", 7 * DAY, [[7, "DAY"]]),
    ("TTL toDateTime(exchange_timestamp)+7 DAY", "exchange_timestamp", 7 * DAY, [[7, "DAY"]]),
    # bronze_trades_coinbase (11-bronze-coinbase.sql) and as printed
    ("toDateTime(exchange_timestamp) + INTERVAL 7 DAY", "exchange_timestamp", 7 * DAY, [[7, "DAY"]]),
    ("toDateTime(exchange_timestamp) + toIntervalDay(7)", "exchange_timestamp", 7 * DAY, [[7, "DAY"]]),
    # silver_trades: schema file "TTL 30 DAY", live DDL, as printed
    ("30 DAY", None, 30 * DAY, [[30, "DAY"]]),
    ("TTL 30 DAY", None, 30 * DAY, [[30, "DAY"]]),
    ("toDateTime(timestamp) + INTERVAL 30 DAY", "timestamp", 30 * DAY, [[30, "DAY"]]),
    ("toDateTime(timestamp) + toIntervalDay(30)", "timestamp", 30 * DAY, [[30, "DAY"]]),
    # gold ohlcv_*: schema "window_start + 1 YEAR" (1d: 2 YEAR), lab DDL, as printed
    ("window_start + 1 YEAR", "window_start", YEAR, [[1, "YEAR"]]),
    ("window_start + 2 YEAR", "window_start", 2 * YEAR, [[2, "YEAR"]]),
    ("window_start + INTERVAL 1 YEAR", "window_start", YEAR, [[1, "YEAR"]]),
    ("window_start + INTERVAL 2 YEAR", "window_start", 2 * YEAR, [[2, "YEAR"]]),
    ("window_start + toIntervalYear(1)", "window_start", YEAR, [[1, "YEAR"]]),
    ("window_start + toIntervalYear(2)", "window_start", 2 * YEAR, [[2, "YEAR"]]),
]

OTHER_FORMS = [
    ("ts + INTERVAL 3 MONTH", "ts", 90 * DAY, [[3, "MONTH"]]),
    ("ts + toIntervalMonth(1)", "ts", 30 * DAY, [[1, "MONTH"]]),
    ("ts + INTERVAL 1 QUARTER", "ts", 90 * DAY, [[1, "QUARTER"]]),
    ("ts + toIntervalQuarter(2)", "ts", 180 * DAY, [[2, "QUARTER"]]),
    ("ts + INTERVAL 48 HOUR", "ts", 48 * 3600, [[48, "HOUR"]]),
    ("ts + toIntervalHour(12)", "ts", 12 * 3600, [[12, "HOUR"]]),
    ("ts + INTERVAL 90 MINUTE", "ts", 90 * 60, [[90, "MINUTE"]]),
    ("ts + toIntervalSecond(3600)", "ts", 3600, [[3600, "SECOND"]]),
    ("ts + INTERVAL 2 WEEK", "ts", 14 * DAY, [[2, "WEEK"]]),
    ("ts + toIntervalWeek(1)", "ts", 7 * DAY, [[1, "WEEK"]]),
    ("ts + INTERVAL 7 DAYS", "ts", 7 * DAY, [[7, "DAY"]]),
    ("ts + interval 7 day", "ts", 7 * DAY, [[7, "DAY"]]),
    ("ts + INTERVAL '7 day'", "ts", 7 * DAY, [[7, "DAY"]]),
    ("ts + INTERVAL '2 years'", "ts", 2 * YEAR, [[2, "YEAR"]]),
    ("ts+toIntervalDay(7)", "ts", 7 * DAY, [[7, "DAY"]]),
    ("  ts   +\n  INTERVAL\t7   DAY  ", "ts", 7 * DAY, [[7, "DAY"]]),
    ("`ingestion_timestamp` + toIntervalDay(7)", "ingestion_timestamp", 7 * DAY, [[7, "DAY"]]),
    ("`odd col` + INTERVAL 1 DAY", "odd col", DAY, [[1, "DAY"]]),
    ("toDateTime64(ts, 3) + INTERVAL 1 DAY", "ts", DAY, [[1, "DAY"]]),
    ("toDateTime(ts, 'UTC') + toIntervalDay(7)", "ts", 7 * DAY, [[7, "DAY"]]),
    ("toStartOfDay(`ts`) + toIntervalDay(1)", "ts", DAY, [[1, "DAY"]]),
    ("toIntervalDay(7) + ts", "ts", 7 * DAY, [[7, "DAY"]]),
    ("(ts + toIntervalDay(1)) + toIntervalHour(12)", "ts", DAY + 12 * 3600, [[1, "DAY"], [12, "HOUR"]]),
    ("ts + INTERVAL 1 MONTH + INTERVAL 1 DAY", "ts", 31 * DAY, [[1, "MONTH"], [1, "DAY"]]),
    ("ttl + INTERVAL 1 DAY", "ttl", DAY, [[1, "DAY"]]),  # a column named ttl is not the keyword
    ("TTL ttl + INTERVAL 1 DAY", "ttl", DAY, [[1, "DAY"]]),
    ("ts + INTERVAL 7 DAY DELETE", "ts", 7 * DAY, [[7, "DAY"]]),
    # several rules: the shortest row-removing one wins; moves and recompression do not delete
    ("ts + toIntervalMonth(3), ts + toIntervalHour(12) TO VOLUME 'cold'", "ts", 90 * DAY, [[3, "MONTH"]]),
    ("ts + INTERVAL 1 DAY TO DISK 'slow', ts + INTERVAL 30 DAY", "ts", 30 * DAY, [[30, "DAY"]]),
    ("ts + INTERVAL 1 DAY RECOMPRESS CODEC(ZSTD(12)), ts + INTERVAL 1 YEAR", "ts", YEAR, [[1, "YEAR"]]),
    ("d + INTERVAL 1 MONTH GROUP BY k1, k2 SET x = max(x), y = min(y)", "d", 30 * DAY, [[1, "MONTH"]]),
]


@pytest.mark.parametrize("clause,column,seconds,intervals", K2_FORMS + OTHER_FORMS)
def test_ttl_forms_parse(clause, column, seconds, intervals):
    ttl = L.parse_ttl(clause)
    assert ttl["reason"] is None, ttl
    assert (ttl["column"], ttl["interval_seconds"], ttl["intervals"]) == (column, seconds, intervals)
    assert ttl["conditional"] is False
    assert not ttl["expression"].upper().startswith("TTL ") or column == "ttl"


@pytest.mark.parametrize("clause", [
    "ts + toIntervalDay(7) WHERE symbol = 'BTC'",
    "ts + toIntervalDay(7) DELETE WHERE is_valid = 0",
    "ts + toIntervalDay(7) DELETE WHERE x = 1, ts + toIntervalDay(30) DELETE WHERE x = 2",
])
def test_conditional_delete_is_flagged(clause):
    ttl = L.parse_ttl(clause)
    assert ttl["interval_seconds"] == 7 * DAY and ttl["conditional"] is True and ttl["reason"] is None


HOSTILE_TTL = [
    ("", "empty"),
    ("   ", "empty"),
    ("TTL", "empty"),
    ("ts", "no interval"),
    ("ts + 30", "bare number"),  # Date + 30 is days, DateTime + 30 is seconds: unknowable from text
    ("d + 30 WHERE ts > now()", "bare number"),
    ("ts - INTERVAL 7 DAY", "unexpected '-'"),
    ("ts * INTERVAL 7 DAY", "unexpected '*'"),
    ("now() + INTERVAL 1 DAY", "not a plain column"),
    ("toDate(ts + 1) + INTERVAL 1 DAY", "not a plain column"),
    ("ts + ts + INTERVAL 1 DAY", "more than one"),
    ("ts + INTERVAL 7 FORTNIGHT", "unknown interval unit"),
    ("ts + toIntervalEon(1)", "unknown interval unit"),
    ("ts + INTERVAL -7 DAY", "followed by a number"),
    ("ts + INTERVAL 0 DAY", "positive"),
    ("ts + toIntervalDay(0)", "positive"),
    ("ts + INTERVAL 1.5 DAY", "whole number"),
    ("ts + INTERVAL 'seven days'", "whole number"),
    ("ts + INTERVAL '1 day 2 hours'", "cannot read interval"),
    ("ts + toIntervalDay('7')", "needs a number"),
    ("ts + toIntervalDay(7", "ends too early"),
    ("ts + INTERVAL 7", "ends too early"),
    ("ts + INTERVAL", "ends too early"),
    ("ts +", "ends too early"),
    ("ts + toIntervalMillisecond(10)", "sub-second"),
    ("ts + INTERVAL 5 NANOSECOND", "sub-second"),
    ("ts + INTERVAL 99999999999 YEAR", "implausibly large"),
    ("ts + INTERVAL \uff17 DAY", "unexpected character"),  # full-width digit 7
    ("ts + INTERVAL 7 DAY; DROP TABLE k2.bronze_trades_binance", "unexpected ';'"),
    ("'; DROP TABLE x; --", "unbalanced quote"),
    ("ts + INTERVAL 7 DAY DELETE DROP", "after DELETE"),
    ("ts + INTERVAL 7 DAY TO DISK 'cold'", "no DELETE rule"),
    ("ts + INTERVAL 1 DAY RECOMPRESS CODEC(ZSTD(12))", "no DELETE rule"),
    ("ts + toIntervalDay(7), garbage here", "cannot parse"),  # an unreadable rule could delete sooner
    ("ts + toIntervalDay(7),", "empty TTL element"),
    ("`unterminated + INTERVAL 1 DAY", "unbalanced quote"),
    ("\x00\x01\x02", "unexpected character"),
    ("ts + INTERVAL 7 DAY \u202e", "unexpected character"),
    ("(" * 20 + "ts" + ")" * 20 + " + INTERVAL 1 DAY", "nested too deeply"),
    ("toDateTime(" * 40 + "ts" + ")" * 40 + " + INTERVAL 1 DAY", "nested too deeply"),
    ("(" * 5000, "longer than"),
    ("ts + INTERVAL 1 DAY " + "x" * 5000, "longer than"),
    ("SETTINGS index_granularity = 8192", "cannot parse"),
]


@pytest.mark.parametrize("clause,reason", HOSTILE_TTL)
def test_hostile_or_unknown_ttl_gives_null_with_reason(clause, reason):
    ttl = L.parse_ttl(clause)
    assert ttl["interval_seconds"] is None and ttl["intervals"] is None and ttl["column"] is None
    assert reason in ttl["reason"], ttl["reason"]
    json.dumps(ttl)


@pytest.mark.parametrize("value,reason", [(None, "no TTL clause"), (42, "not text"), (b"ts + INTERVAL 1 DAY", "not text"),
                                          (["ts"], "not text")])
def test_non_text_ttl(value, reason):
    ttl = L.parse_ttl(value)
    assert ttl["interval_seconds"] is None and reason in ttl["reason"]


def test_parse_ttl_never_raises_on_random_input():
    rnd = random.Random(20261126)
    alphabet = list("ts+-*/(),'`\" 0123456789") + ["INTERVAL ", "DAY", "toIntervalDay(", "YEAR", "DELETE", "WHERE",
                                                   "TO DISK ", "GROUP BY ", "\\", "\n", "ä", "TTL "]
    for _ in range(1500):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        ttl = L.parse_ttl(text)
        assert set(ttl) == {"expression", "column", "interval_seconds", "intervals", "conditional", "reason"}
        assert (ttl["interval_seconds"] is None) == (ttl["reason"] is not None), (text, ttl)
        L.ttl_from_table(f"MergeTree ORDER BY ts TTL {text} SETTINGS index_granularity = 8192", None)


# --- TTL clause extraction from what the server returns (system.tables, ClickHouse 26.9) ----------------------

LAB_ENGINE_FULL = {  # captured from chdb 26.9 with lab/services/clickhouse/ddl.sql
    "bronze_trades_binance": ("MergeTree ORDER BY (exchange_timestamp, sequence_number) TTL ingestion_timestamp + "
                              "toIntervalDay(7) SETTINGS index_granularity = 8192", "ingestion_timestamp", 7 * DAY),
    "bronze_trades_kraken": ("MergeTree ORDER BY (exchange_timestamp, sequence_number) TTL ingestion_timestamp + "
                             "toIntervalDay(7) SETTINGS index_granularity = 8192", "ingestion_timestamp", 7 * DAY),
    "bronze_trades_coinbase": ("MergeTree PARTITION BY toYYYYMMDD(exchange_timestamp) ORDER BY (symbol, "
                               "exchange_timestamp, sequence_number) TTL toDateTime(exchange_timestamp) + "
                               "toIntervalDay(7) SETTINGS index_granularity = 8192", "exchange_timestamp", 7 * DAY),
    "silver_trades": ("MergeTree PARTITION BY (exchange, asset_class, toYYYYMMDD(timestamp)) ORDER BY (exchange, "
                      "asset_class, canonical_symbol, timestamp) TTL toDateTime(timestamp) + toIntervalDay(30) "
                      "SETTINGS index_granularity = 8192", "timestamp", 30 * DAY),
    "ohlcv_1m": ("SummingMergeTree((volume, quote_volume, trade_count)) PARTITION BY (exchange, "
                 "toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start) TTL window_start + "
                 "toIntervalYear(1) SETTINGS index_granularity = 8192", "window_start", YEAR),
    "ohlcv_1d": ("SummingMergeTree((volume, quote_volume, trade_count)) PARTITION BY (exchange, "
                 "toYYYYMM(window_start)) ORDER BY (exchange, canonical_symbol, window_start) TTL window_start + "
                 "toIntervalYear(2) SETTINGS index_granularity = 8192", "window_start", 2 * YEAR),
}


@pytest.mark.parametrize("table", sorted(LAB_ENGINE_FULL))
def test_ttl_from_engine_full_of_each_k2_table(table):
    engine_full, column, seconds = LAB_ENGINE_FULL[table]
    ttl = L.ttl_from_table(engine_full, None)
    assert (ttl["column"], ttl["interval_seconds"], ttl["reason"]) == (column, seconds, None)
    assert "SETTINGS" not in ttl["expression"] and not ttl["expression"].startswith("TTL")


@pytest.mark.parametrize("definition,expected", [
    ("MergeTree ORDER BY ts TTL ts + toIntervalDay(1)", "ts + toIntervalDay(1)"),
    ("MergeTree ORDER BY ts TTL ts + toIntervalDay(1) SETTINGS index_granularity = 8192", "ts + toIntervalDay(1)"),
    ("MergeTree ORDER BY ts TTL ts + toIntervalMonth(3), ts + toIntervalHour(12) TO VOLUME 'default' "
     "SETTINGS index_granularity = 8192", "ts + toIntervalMonth(3), ts + toIntervalHour(12) TO VOLUME 'default'"),
    ("MergeTree ORDER BY ts TTL ts + toIntervalDay(1) TO VOLUME 'it''s \\' SETTINGS'",
     "ts + toIntervalDay(1) TO VOLUME 'it''s \\' SETTINGS'"),
    ("MergeTree ORDER BY ts TTL ts + toIntervalDay(1) COMMENT 'TTL ts + toIntervalDay(99)'", "ts + toIntervalDay(1)"),
    ("MergeTree ORDER BY ts SETTINGS index_granularity = 8192", None),
    ("MergeTree ORDER BY ts SETTINGS storage_policy = 'TTL x'", None),
    ("MergeTree ORDER BY ts COMMENT 'TTL ts + INTERVAL 1 DAY'", None),
    ("MergeTree ORDER BY (ttl, ts) TTL ttl + toIntervalDay(3)", "ttl + toIntervalDay(3)"),
    ("MergeTree ORDER BY ttl TTL ttl + toIntervalDay(3)", "ttl + toIntervalDay(3)"),
    ("MergeTree ORDER BY ts TTL SETTINGS x = 1", None),
    ("", None),
    (None, None),
])
def test_extract_ttl_clause(definition, expected):
    assert L.extract_ttl_clause(definition) == expected


@pytest.mark.parametrize("definition", ["MergeTree ORDER BY ts TTL ts + toIntervalDay(1) TO VOLUME 'open",
                                        "MergeTree ORDER BY ts TTL ts + toIntervalDay(1) \\ x"])
def test_extract_ttl_clause_refuses_unreadable_definitions(definition):
    with pytest.raises(L.TTLParseError):
        L.extract_ttl_clause(definition)
    assert "cannot read the table definition" in L.ttl_from_table(definition, None)["reason"]


def test_ttl_falls_back_to_create_table_query_and_ignores_column_ttl():
    create = ("CREATE TABLE k2.t (`ts` DateTime, `note` String TTL ts + toIntervalDay(1)) ENGINE = MergeTree "
              "ORDER BY ts TTL ts + toIntervalMonth(3) SETTINGS index_granularity = 8192")
    ttl = L.ttl_from_table("", create)
    assert (ttl["column"], ttl["intervals"]) == ("ts", [[3, "MONTH"]])
    only_column_ttl = "CREATE TABLE k2.t (`ts` DateTime, `note` String TTL ts + toIntervalDay(1)) ENGINE = MergeTree ORDER BY ts"
    assert "no TTL clause" in L.ttl_from_table(None, only_column_ttl)["reason"]
    assert "no engine definition" in L.ttl_from_table("", "CREATE VIEW k2.v AS SELECT 1")["reason"]
    assert "no engine definition" in L.ttl_from_table(None, None)["reason"]
    assert "cannot read" in L.ttl_from_table("MergeTree ORDER BY ts TTL 'open", None)["reason"]


# --- volume thresholds ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rows,expected", [
    (0, "normal"), (1, "normal"), (4_999_999, "normal"),
    (5_000_000, "elevated"), (5_000_001, "elevated"), (9_999_999, "elevated"), (10_000_000, "elevated"),
    (10_000_001, "spike"), (10**12, "spike"), (None, None),
])
def test_volume_runbook_thresholds(rows, expected):
    assert L.classify_volume(rows, 5_000_000, 10_000_000) == expected


@pytest.mark.parametrize("rows,expected", [(99, "normal"), (100, "elevated"), (101, "spike")])
def test_volume_equal_thresholds(rows, expected):
    assert L.classify_volume(rows, 100, 100) == expected


# --- timestamps and headroom ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["2026-11-26T07:45:00Z", "2026-11-26T07:45:00+00:00", "2026-11-26 07:45:00",
                                  "2026-11-26T07:45:00", "2026-11-26T09:45:00+02:00", "2026-11-26T02:45:00-05:00",
                                  "2026-11-26T07:45:00.000000z"])
def test_parse_timestamp_is_aware_utc_equivalent(text):
    assert L.parse_timestamp(text) == datetime(2026, 11, 26, 7, 45, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["", "   ", "yesterday", "2026-13-01T00:00:00", "2026-11-26T25:00:00", None, 17,
                                 "2026-11-26; DROP TABLE x"])
def test_parse_timestamp_rejects_garbage(bad):
    with pytest.raises(ValueError):
        L.parse_timestamp(bad)


@pytest.mark.parametrize("watermark,intervals,expected", [
    (NOW - timedelta(hours=1), [[7, "DAY"]], 7 * DAY - 3600),           # healthy: a week minus an hour
    (NOW - timedelta(days=7), [[7, "DAY"]], 0),                          # exactly at the deadline
    (NOW - timedelta(days=7, seconds=1), [[7, "DAY"]], -1),              # one second late: data may be lost
    (NOW - timedelta(days=9), [[7, "DAY"]], -2 * DAY),                   # two days of rows possibly deleted
    (NOW - timedelta(days=7, milliseconds=500), [[7, "DAY"]], -1),       # floor, never rounds a loss away
    (NOW - timedelta(days=29), [[30, "DAY"]], DAY),
    ("2026-11-26T11:00:00Z", [[7, "DAY"]], 7 * DAY - 3600),
    ("2026-11-26 11:00:00", [[7, "DAY"]], 7 * DAY - 3600),               # naive = UTC
    ("2026-11-26T13:00:00+02:00", [[7, "DAY"]], 7 * DAY - 3600),
    (NOW, [[1, "DAY"], [12, "HOUR"]], DAY + 12 * 3600),
    (NOW + timedelta(hours=1), [[1, "HOUR"]], 7200),                     # watermark ahead of the clock
])
def test_headroom(watermark, intervals, expected):
    assert L.headroom_seconds(watermark, intervals, NOW) == expected


@pytest.mark.parametrize("watermark,intervals", [(None, [[7, "DAY"]]), (NOW, None), (NOW, []), (None, None),
                                                 ("not a time", [[7, "DAY"]]),
                                                 (datetime(9999, 12, 1, tzinfo=timezone.utc), [[1, "YEAR"]]),
                                                 (datetime(9999, 12, 30, tzinfo=timezone.utc), [[7, "DAY"]])])
def test_headroom_none_when_unknown_or_out_of_range(watermark, intervals):
    assert L.headroom_seconds(watermark, intervals, NOW) is None
    assert L.ttl_deadline(watermark, intervals) is None


@pytest.mark.parametrize("start,intervals,expected", [
    (datetime(2026, 1, 31, tzinfo=timezone.utc), [[1, "MONTH"]], datetime(2026, 2, 28, tzinfo=timezone.utc)),
    (datetime(2028, 1, 31, tzinfo=timezone.utc), [[1, "MONTH"]], datetime(2028, 2, 29, tzinfo=timezone.utc)),
    (datetime(2028, 2, 29, tzinfo=timezone.utc), [[1, "YEAR"]], datetime(2029, 2, 28, tzinfo=timezone.utc)),
    (datetime(2026, 11, 30, tzinfo=timezone.utc), [[1, "QUARTER"]], datetime(2027, 2, 28, tzinfo=timezone.utc)),
    (datetime(2026, 12, 15, 6, tzinfo=timezone.utc), [[2, "YEAR"]], datetime(2028, 12, 15, 6, tzinfo=timezone.utc)),
    (datetime(2026, 12, 15, tzinfo=timezone.utc), [[13, "MONTH"]], datetime(2028, 1, 15, tzinfo=timezone.utc)),
    (datetime(2026, 3, 28, 23, tzinfo=timezone.utc), [[2, "DAY"]], datetime(2026, 3, 30, 23, tzinfo=timezone.utc)),
])
def test_deadline_uses_calendar_arithmetic(start, intervals, expected):
    assert L.ttl_deadline(start, intervals) == expected


def test_nominal_interval_seconds():
    assert L.interval_seconds([[1, "YEAR"]]) == YEAR
    assert L.interval_seconds([[1, "MONTH"], [1, "QUARTER"]]) == 120 * DAY
    assert L.interval_seconds([[7, "DAY"], [1, "WEEK"], [1, "HOUR"], [1, "MINUTE"], [1, "SECOND"]]) == 14 * DAY + 3661


@pytest.mark.parametrize("ms,expected", [(None, None), (0, "1970-01-01T00:00:00+00:00"),
                                         (int(NOW.timestamp()) * 1000 + 123, "2026-11-26T12:00:00.123000+00:00"),
                                         (10**20, None)])
def test_epoch_ms_to_iso(ms, expected):
    assert L.epoch_ms_to_iso(ms) == expected


# --- identifiers and SQL --------------------------------------------------------------------------------------

HOSTILE_NAMES = ["a`b", "bronze`; DROP TABLE k2.silver_trades; --", "x; DROP TABLE y", "", " ", "1abc", "a b",
                 "k2.bronze", "a-b", "a/*", "a--", "naïve", "tab\tle", "new\nline", "`", "``", "'", '"',
                 "a" * 64, None, 7, "{table:String}", "$(id)", "\\", "x\x00", "bronze_trades_binance\n"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_identifiers_are_rejected(name):
    with pytest.raises(ValueError):
        L.quote_identifier(name)
    assert offload_common.invalid_identifiers([name]) == [name]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_sql_builders_refuse_hostile_names(name):
    for build in (L.rows_last_hour_sql, L.oldest_row_sql):
        with pytest.raises(ValueError):
            build("k2", name, "ts")
        with pytest.raises(ValueError):
            build("k2", "t", name)
        with pytest.raises(ValueError):
            build(name, "t", "ts")


@pytest.mark.parametrize("name", ["bronze_trades_binance", "_x", "A1", "timestamp", "ttl", "a" * 63])
def test_plain_identifiers_are_backtick_quoted(name):
    assert L.quote_identifier(name) == f"`{name}`"


def test_runbook_volume_query_per_table():
    assert L.rows_last_hour_sql("k2", "bronze_trades_binance", "exchange_timestamp") == (
        "SELECT count() FROM `k2`.`bronze_trades_binance` WHERE `exchange_timestamp` > now() - INTERVAL 1 HOUR")
    sql = L.oldest_row_sql("k2", "silver_trades", "timestamp")
    assert sql.startswith("SELECT toUnixTimestamp64Milli(toDateTime64(`timestamp`, 3, 'UTC')) FROM `k2`.`silver_trades`")
    assert sql.endswith("ORDER BY `timestamp` ASC LIMIT 1")


def test_fixed_sql_binds_every_value():
    binds = re.compile(r"\{(\w+):(\w+)\}")
    assert binds.findall(L.SQL_TABLE) == [("database", "String"), ("table", "String")]
    assert binds.findall(L.SQL_LONG_QUERIES) == [("max_chars", "UInt32"), ("min_elapsed", "Float64")]
    for sql in (L.SQL_PING, L.SQL_SERVER, L.SQL_TABLE, L.SQL_LONG_QUERIES):
        assert "%" not in sql and "'" not in binds.sub("", sql).replace("'UTC'", "")


# --- long-running queries and errors ----------------------------------------------------------------------------

def test_long_query_is_truncated_and_names_tables():
    row = {"query_id": "q1", "user": "default", "elapsed": 73.21234,
           "query": "SELECT * FROM k2.bronze_trades_binance JOIN k2.bronze_trades_binance_v2 " + "x" * 1000}
    out = L.long_query(row, ["bronze_trades_binance", "bronze_trades_kraken", "binance"])
    assert len(out["query"]) == L.LONG_QUERY_TEXT_CHARS == 300
    assert out["tables"] == ["bronze_trades_binance"] and out["elapsed"] == 73.212
    assert L.long_query({"query": None, "elapsed": None}, [])["query"] == ""


@pytest.mark.parametrize("raw,expected", [
    ("Received ClickHouse exception, code: 516, server response: Code: 516. DB::Exception: default: Authentication "
     "failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 26.9.2.1 "
     "(official build)) (for url http://127.0.0.1:8123)",
     "Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with "
     "such name. (AUTHENTICATION_FAILED)"),
    ("Error HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /?query_id=ae5b (Caused by "
     "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=1): Failed to establish a new connection: [Errno "
     "111] Connection refused\")) executing HTTP request attempt 1 (http://127.0.0.1:1)",
     "[Errno 111] Connection refused"),
    ("HTTPConnectionPool(host='127.0.0.1', port=8123): Read timed out. (read timeout=2)",
     "Read timed out. (read timeout=2)"),
    ("Error HTTPConnectionPool(host='10.1.1.1', port=8123): Max retries exceeded with url: / (Caused by "
     "ConnectTimeoutError(<urllib3.connection.HTTPConnection object at 0x7f>, 'Connection to 10.1.1.1 timed out. "
     "(connect timeout=1)'))", "Connection to 10.1.1.1 timed out. (connect timeout=1)"),
    ("Error HTTPConnectionPool(host='nohost', port=8123): Max retries exceeded (Caused by NameResolutionError(\"Failed "
     "to resolve 'nohost' ([Errno -2] Name or service not known)\"))", "[Errno -2] Name or service not known"),
    ("first line\n  second line\nTraceback (most recent call last):", "first line second line Traceback (most recent "
                                                                        "call last)"),
    ("", "unknown error"),
])
def test_one_line_error(raw, expected):
    assert L.one_line_error(raw) == expected


def test_one_line_error_masks_secrets_and_truncates():
    out = L.one_line_error("login with k2-lab-clickhouse failed\n" + "y" * 1000, secrets=["k2-lab-clickhouse", ""])
    assert "k2-lab-clickhouse" not in out and "********" in out and "\n" not in out and len(out) == 300


def test_connection_error_names_the_server_in_one_masked_line():
    params = {"clickhouse_host": "ch.internal", "clickhouse_port": 8123}
    refused = ConnectionRefusedError(111, "Connection refused with s3cr3t")
    assert L.connection_error(params, refused, secrets=["s3cr3t"]) == \
        "ClickHouse at ch.internal:8123: [Errno 111] Connection refused with ********"
    assert L.connection_error(params, TimeoutError()) == "ClickHouse at ch.internal:8123: TimeoutError"


# --- main() with a fake client: the module's flow without a server -------------------------------------------

class _Result:
    def __init__(self, rows):
        self._rows = rows

    def named_results(self):
        return iter(self._rows)


class FakeClient:
    """Answers the module's queries like the lab would; records what was sent."""

    def __init__(self, tables: dict, fail_on: str | None = None):
        self.tables, self.fail_on, self.sent = tables, fail_on, []

    def query(self, sql, parameters=None, settings=None):
        self.sent.append((sql, parameters, settings))
        if self.fail_on and self.fail_on in sql:
            raise RuntimeError("Code: 47. DB::Exception: Unknown identifier. (UNKNOWN_IDENTIFIER) (version 26.9)")
        if sql == L.SQL_PING:
            return _Result([{"1": 1}])
        if sql == L.SQL_SERVER:
            return _Result([{"version": "26.9.2.1", "now_ms": int(NOW.timestamp() * 1000), "timezone": "UTC"}])
        if sql == L.SQL_TABLE:
            engine = self.tables.get(parameters["table"])
            return _Result([] if engine is None else [{"engine": "MergeTree", "engine_full": engine,
                                                        "create_table_query": "CREATE TABLE ..."}])
        if sql.startswith("SELECT count()"):
            return _Result([{"count()": 6_000_000}])
        if sql.startswith("SELECT toUnixTimestamp64Milli"):
            return _Result([{"ms": int((NOW - timedelta(days=7)).timestamp() * 1000)}])
        if sql == L.SQL_LONG_QUERIES:
            return _Result([{"query_id": "q9", "user": "default", "elapsed": 75.0,
                             "query": "INSERT INTO k2.bronze_trades_binance SELECT ..."}])
        raise AssertionError(sql)


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


@pytest.fixture(scope="module")
def module_file():
    """library/offload_clickhouse.py imported with its ansible.module_utils.* names pointing at module_utils/."""
    spec = importlib.util.spec_from_file_location("offload_clickhouse_module", ROOT / "library" / "offload_clickhouse.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_main(mod, monkeypatch, args: dict, client=None, connect_error: Exception | None = None) -> dict:
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    def connect(params):
        if connect_error is not None:
            raise connect_error
        return client

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    monkeypatch.setattr(offload_clickhouse_inspect, "connect", connect)
    with patch_module_args(args):
        try:
            mod.main()
        except ExitJson as done:
            return {**done.args[0], "failed": False}
        except FailJson as failed:
            return {**failed.args[0], "failed": True}
    raise AssertionError("main() returned without exit_json/fail_json")


TABLES = [{"source": "bronze_trades_binance", "timestamp_col": "exchange_timestamp", "layer": "bronze"},
          {"source": "no_such_table", "timestamp_col": "ts"}]
PASSWORD = "pw-never-shown-42"


def test_main_inspect_with_fake_client(module_file, monkeypatch):
    client = FakeClient({"bronze_trades_binance": LAB_ENGINE_FULL["bronze_trades_binance"][0]})
    r = run_main(module_file, monkeypatch, {"tables": TABLES, "clickhouse_password": PASSWORD, "long_query_seconds": 60,
                                            "watermarks": {"bronze_trades_binance": "2026-11-26T11:00:00Z",
                                                           "unrelated_table": None}}, client)
    assert r["failed"] is False and r["changed"] is False and r["reachable"] is True and r["error"] is None
    assert r["version"] == "26.9.2.1" and r["server_time"] == NOW.isoformat()
    binance = r["tables"]["bronze_trades_binance"]
    assert binance["exists"] is True and binance["ttl"]["interval_seconds"] == 7 * DAY
    assert binance["rows_last_hour"] == 6_000_000 and binance["volume"] == "elevated"
    assert binance["ttl_headroom_seconds"] == 7 * DAY - 3600
    assert binance["ttl_deadline"] == "2026-12-03T11:00:00+00:00"
    assert binance["oldest_row"] == "2026-11-19T12:00:00+00:00" and binance["oldest_row_age_seconds"] == 7 * DAY
    assert r["tables"]["no_such_table"]["exists"] is False and r["tables"]["no_such_table"]["ttl"] is None
    assert r["long_running_queries"][0]["tables"] == ["bronze_trades_binance"]
    assert [q["sql"] for q in r["queries"]][:3] == [L.SQL_PING, L.SQL_SERVER, L.SQL_TABLE]
    assert {"database": "k2", "table": "bronze_trades_binance"} in [q["parameters"] for q in r["queries"]]
    # values are bound, never in the SQL text; every query carries max_execution_time (all() of nothing is true)
    assert len(client.sent) == len(r["queries"]) > 3
    assert all("bronze_trades_binance'" not in sql for sql, _, _ in client.sent)
    assert all(settings == {"max_execution_time": 30} for _, _, settings in client.sent)
    assert PASSWORD not in json.dumps(r)


def test_main_per_table_query_error_is_reported_not_failed(module_file, monkeypatch):
    client = FakeClient({"bronze_trades_binance": LAB_ENGINE_FULL["bronze_trades_binance"][0]}, fail_on="count()")
    r = run_main(module_file, monkeypatch, {"tables": TABLES[:1]}, client)
    t = r["tables"]["bronze_trades_binance"]
    assert r["failed"] is False and t["exists"] is True and t["rows_last_hour"] is None
    assert t["error"].startswith("Code: 47.") and t["oldest_row"] is not None


@pytest.mark.parametrize("error,expected", [
    (OSError("[Errno 111] Connection refused"), "[Errno 111] Connection refused"),
    (RuntimeError(f"Code: 516. DB::Exception: default: Authentication failed ({PASSWORD}). (AUTHENTICATION_FAILED)"),
     "Authentication failed"),
    (RuntimeError(""), "RuntimeError"),
])
def test_main_unreachable_is_a_finding(module_file, monkeypatch, error, expected):
    r = run_main(module_file, monkeypatch, {"tables": TABLES, "clickhouse_password": PASSWORD, "clickhouse_port": 1},
                 connect_error=error)
    assert r["failed"] is False and r["changed"] is False and r["reachable"] is False
    assert r["error"].startswith("ClickHouse at 127.0.0.1:1: ") and expected in r["error"]
    assert "\n" not in r["error"] and PASSWORD not in json.dumps(r)
    assert r["tables"] == {} and r["latency_ms"] is None and r["version"] is None


@pytest.mark.parametrize("args,message", [
    ({"tables": [{"source": "x`; DROP TABLE y", "timestamp_col": "ts"}]}, "Invalid database, table or column name"),
    ({"tables": [{"source": "t", "timestamp_col": "ts; --"}]}, "'ts; --'"),
    ({"tables": TABLES, "clickhouse_database": "k2`.`x"}, "'k2`.`x'"),
    ({"tables": TABLES, "volume_spike_rows_per_hour": 10}, "must not be below"),
    ({"tables": TABLES, "volume_normal_rows_per_hour": 0}, "at least 1"),
    ({"tables": TABLES, "long_query_seconds": -1}, "must not be negative"),
    ({"tables": TABLES, "query_timeout": 0}, "at least 1"),
    ({"tables": TABLES, "watermarks": {"bronze_trades_binance": "yesterday"}}, "not an ISO 8601 timestamp"),
    ({"tables": TABLES, "action": "repair"}, "value of action must be one of"),
    ({"tables": [{"source": "t"}]}, "timestamp_col"),
])
def test_main_bad_input_fails_with_one_line(module_file, monkeypatch, args, message):
    r = run_main(module_file, monkeypatch, args, FakeClient({}))
    assert r["failed"] is True and message in r["msg"] and "\n" not in r["msg"], r["msg"]


def test_main_missing_library(module_file, monkeypatch):
    monkeypatch.setattr(module_file, "HAS_CLICKHOUSE_CONNECT", False)
    r = run_main(module_file, monkeypatch, {"tables": TABLES}, FakeClient({}))
    assert r["failed"] is True and "clickhouse-connect" in r["msg"]


def test_main_accepts_inventory_k2_tables_as_is(module_file, monkeypatch):
    k2 = [{"source": "ohlcv_1d", "target": "cold.gold_ohlcv_1d", "layer": "gold", "timestamp_col": "window_start",
           "sequence_col": "trade_count", "columns": "*"}]
    r = run_main(module_file, monkeypatch, {"tables": k2}, FakeClient({"ohlcv_1d": LAB_ENGINE_FULL["ohlcv_1d"][0]}))
    assert r["failed"] is False and r["tables"]["ohlcv_1d"]["ttl"]["intervals"] == [[2, "YEAR"]]
    assert r["tables"]["ohlcv_1d"]["layer"] == "gold" and r["tables"]["ohlcv_1d"]["ttl_headroom_seconds"] is None
