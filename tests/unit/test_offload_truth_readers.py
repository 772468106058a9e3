"""The truth check's readers: the cold tier read from a real Iceberg table written by pyiceberg (then moved, as the
Docker host sees a warehouse that Spark wrote under another path), and the hot tier through a fake ClickHouse client
that records the SQL it is sent."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import offload_truth
import pyarrow as pa
import pytest

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
PLUS_2 = timezone(timedelta(hours=2))
COLUMNS = ["ts", "seq", "price", "note"]


def _rows(seconds, tz="UTC"):
    """Rows at T0 + s for each s: seq = s, price = s / 2, note = f"n{s}"."""
    times = [T0 + timedelta(seconds=s) for s in seconds]
    return pa.table({"ts": pa.array(times if tz else [t.replace(tzinfo=None) for t in times],
                                    pa.timestamp("us", tz=tz)),
                     "seq": pa.array(seconds, pa.int64()),
                     "price": pa.array([Decimal(s) / 2 for s in seconds], pa.decimal128(18, 8)),
                     "note": pa.array([f"n{s}" for s in seconds], pa.string())})


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """cold.trades (timestamptz, two appends: two data files), cold.naive (timestamp without zone) and cold.empty
    (created, never written), written under written/ and then moved to local/: every path in their metadata names
    written/, which no longer exists."""
    from pyiceberg.catalog.sql import SqlCatalog
    root = tmp_path_factory.mktemp("iceberg")
    written, local = root / "written", root / "local"
    catalog = SqlCatalog("unit", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=f"file://{written}")
    catalog.create_namespace("cold")
    for name, first, second in (("trades", _rows([0, 10, 20]), _rows([30, 40])),
                                ("naive", _rows([0, 10], tz=None), None),
                                ("empty", None, None)):
        schema = (first if first is not None else _rows([])).schema
        table = catalog.create_table(f"cold.{name}", schema=schema, location=f"file://{written}/cold/{name}")
        for batch in (first, second):
            if batch is not None:
                table.append(batch)
    written.rename(local)
    return {"written": str(written), "local": local}


def _read(warehouse, table, lower_s, upper_s, columns=COLUMNS, written=None):
    return offload_truth.read_cold(warehouse["local"], f"cold.{table}", columns, "ts", T0 + timedelta(seconds=lower_s),
                                   T0 + timedelta(seconds=upper_s), written or warehouse["written"])


def test_the_cold_rows_are_those_of_every_data_file_within_both_bounds_inclusive(warehouse):
    rows = _read(warehouse, "trades", 10, 30)
    assert sorted(rows.column("seq").to_pylist()) == [10, 20, 30]  # 10 and 30 are the bounds; 20 and 30 two files
    assert rows.column_names == COLUMNS
    assert sorted(rows.column("note").to_pylist()) == ["n10", "n20", "n30"]
    assert _read(warehouse, "trades", 11, 29).column("seq").to_pylist() == [20]
    assert _read(warehouse, "trades", 41, 50).num_rows == 0


@pytest.mark.parametrize("table", ["trades", "naive"])
def test_bounds_in_another_zone_mean_the_same_instants(warehouse, table):
    lower, upper = (T0 + timedelta(seconds=s) for s in (10, 10))
    rows = offload_truth.read_cold(warehouse["local"], f"cold.{table}", COLUMNS, "ts", lower.astimezone(PLUS_2),
                                   upper.astimezone(PLUS_2), warehouse["written"])
    assert rows.column("seq").to_pylist() == [10]


def test_only_the_asked_columns_are_read(warehouse):
    rows = _read(warehouse, "trades", 0, 40, columns=["ts", "seq"])
    assert rows.column_names == ["ts", "seq"] and rows.num_rows == 5


def test_a_timestamp_without_zone_is_compared_as_utc(warehouse):
    assert _read(warehouse, "naive", 10, 10).column("seq").to_pylist() == [10]
    assert _read(warehouse, "naive", 0, 60).num_rows == 2


def test_a_table_without_snapshot_is_empty_with_the_asked_columns_and_an_absent_one_is_none(warehouse):
    empty = _read(warehouse, "empty", 0, 60)
    assert empty.num_rows == 0 and empty.column_names == COLUMNS and set(empty.schema.types) == {pa.string()}
    assert _read(warehouse, "absent", 0, 60) is None


def test_files_are_read_where_the_host_sees_them_not_where_spark_wrote_them(warehouse):
    with pytest.raises(OSError):  # the written root no longer exists: only relocation finds the files
        _read(warehouse, "trades", 0, 60, written="/home/iceberg/warehouse")


@pytest.mark.parametrize(("location", "written_root", "local_root", "expected"), [
    ("/data/DX/cold/t/a.parquet", "/data/DX/", "/srv/LX/", "/srv/LX/cold/t/a.parquet"),  # only "/" is stripped
    ("/data/DX", "/data/DX", "/srv/LX", "/srv/LX"),
])
def test_relocate_strips_only_slashes_from_the_roots(location, written_root, local_root, expected):
    assert offload_truth.relocate(location, written_root, local_root) == expected


HOT_TYPES = [("ts", "DateTime64(6)", ""), ("seq", "UInt64", ""), ("price", "Decimal(18, 8)", ""),
             ("note", "LowCardinality(String)", ""), ("note_length", "UInt64", "MATERIALIZED")]


class FakeClickHouse:
    """query() answers min(ts) and DESCRIBE TABLE; query_arrow() the hot rows; both record what they were sent."""

    def __init__(self, oldest: datetime, hot: pa.Table) -> None:
        self.oldest, self.hot, self.sent = oldest, hot, []

    def query(self, sql):
        self.sent.append((sql, None))
        return type("Result", (), {"first_row": (self.oldest,), "result_rows": HOT_TYPES})()

    def query_arrow(self, sql, parameters):
        self.sent.append((sql, parameters))
        return self.hot


TABLE = {"source": "bronze_trades", "target": "cold.trades", "timestamp_col": "ts"}


def _truth(warehouse, client, upper, **table):
    return offload_truth.table_truth(client, {**TABLE, **table}, upper, warehouse["local"], warehouse["written"],
                                     database="k2", window_seconds=60)


def test_truth_reads_hot_rows_from_the_oldest_one_to_the_watermark_and_compares_them_with_cold(warehouse):
    hot = pa.concat_tables([_rows([0, 10, 20, 30]), _rows([30]), _rows([40])])  # 30 twice: one copy missing
    client = FakeClickHouse(T0.replace(tzinfo=None), hot)  # ClickHouse answers a naive UTC time
    watermark = (T0 + timedelta(seconds=40, microseconds=5)).astimezone(timezone(timedelta(hours=2)))
    result = _truth(warehouse, client, watermark)
    assert client.sent == [
        ("SELECT min(ts) FROM k2.bronze_trades", None),
        ("DESCRIBE TABLE k2.bronze_trades", None),  # SELECT * leaves the MATERIALIZED column out
        ("SELECT toDateTime64(`ts`, 6, 'UTC') AS `ts`, `seq`, `price`, `note` FROM (SELECT `ts`, `seq`, `price`, "
         "`note` FROM k2.bronze_trades WHERE ts >= %(lo)s AND ts <= %(hi)s)",
         {"lo": "2026-01-01 00:00:00.000000", "hi": "2026-01-01 00:00:40.000005"}),  # UTC, to the microsecond
    ]
    assert result == {"table": "bronze_trades", "watermark": "2026-01-01T00:00:40.000005+00:00",
                      "window_start": "2026-01-01T00:00:00+00:00", "hot_rows": 6, "cold_rows": 5, "missing": 1,
                      "duplicated": 0, "windows": [{"start": "2026-01-01T00:00:00+00:00",
                                                    "end": "2026-01-01T00:01:00+00:00", "missing": 1,
                                                    "duplicated": 0}]}


def test_truth_of_named_columns_without_database_counts_cold_rows_the_hot_tier_lost(warehouse):
    client = FakeClickHouse(T0 + timedelta(seconds=10), _rows([10, 20]).select(["ts", "seq"]))
    result = _truth(warehouse, client, (T0 + timedelta(seconds=30)).replace(tzinfo=None), columns="ts,seq")
    result_no_db = offload_truth.table_truth(client, {**TABLE, "columns": "ts,seq"}, T0 + timedelta(seconds=30),
                                             warehouse["local"], warehouse["written"])
    assert client.sent[0] == ("SELECT min(ts) FROM k2.bronze_trades", None)
    assert client.sent[2][0] == ("SELECT toDateTime64(`ts`, 6, 'UTC') AS `ts`, `seq` FROM (SELECT `ts`, `seq` FROM "
                                 "k2.bronze_trades WHERE ts >= %(lo)s AND ts <= %(hi)s)")
    assert client.sent[2][1] == {"lo": "2026-01-01 00:00:10.000000", "hi": "2026-01-01 00:00:30.000000"}
    assert client.sent[3:5] == [("SELECT min(ts) FROM bronze_trades", None), ("DESCRIBE TABLE bronze_trades", None)]
    assert (result["hot_rows"], result["cold_rows"], result["missing"], result["duplicated"]) == (2, 3, 0, 1)
    assert result["windows"] == [{"start": "2026-01-01T00:00:00+00:00", "end": "2026-01-01T00:01:00+00:00",
                                  "missing": 0, "duplicated": 1}]
    assert result_no_db == {**result, "windows": [{"start": "2026-01-01T00:00:00+00:00",  # an hour by default
                                                   "end": "2026-01-01T01:00:00+00:00", "missing": 0,
                                                   "duplicated": 1}]}


@pytest.mark.parametrize("upper", [None, datetime(1970, 1, 1, tzinfo=timezone.utc)])
def test_no_watermark_or_the_1970_seed_compares_nothing_and_asks_nothing(warehouse, upper):
    client = FakeClickHouse(T0, _rows([0]))
    assert _truth(warehouse, client, upper) == {"table": "bronze_trades", "watermark": None, "hot_rows": 0,
                                                "cold_rows": 0, "missing": 0, "duplicated": 0, "windows": []}
    assert client.sent == []


@pytest.fixture
def new_york(monkeypatch):
    """The control node's local zone is not UTC (a naive time must still be taken as UTC, never as local)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_truth_takes_naive_times_as_utc_and_converts_aware_ones_whatever_the_local_zone(warehouse, new_york):
    oldest = (T0 + timedelta(seconds=10)).astimezone(PLUS_2)  # a server answering in its own zone
    naive = _truth(warehouse, FakeClickHouse(oldest, _rows([10, 20])), (T0 + timedelta(seconds=20)).replace(tzinfo=None))
    aware = _truth(warehouse, FakeClickHouse(oldest, _rows([10, 20])), (T0 + timedelta(seconds=20)).astimezone(PLUS_2))
    for result in (naive, aware):
        assert result["watermark"] == "2026-01-01T00:00:20+00:00"
        assert result["window_start"] == "2026-01-01T02:00:10+02:00"  # the same instant as T0 + 10 s
        assert (result["hot_rows"], result["cold_rows"], result["missing"], result["duplicated"]) == (2, 2, 0, 0)
