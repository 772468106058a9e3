"""The truth check compares values by meaning, not by Arrow type. A real ClickHouse engine (chdb) holds K2's hot types
(DateTime, DateTime64, UUID, Enum8, LowCardinality, Decimal, Nullable, Bool, Date), on the current engine and on 24.5
(K2 pins 24.3). An Iceberg table holds the same rows as K2's Spark writes them through JDBC: timestamps in UTC, UUID
and Enum as text, Decimal(38, 8), BIGINT. A complete copy must read 0 missing / 0 duplicated; one changed value must
read 1 / 1."""
from __future__ import annotations

import subprocess
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import offload_truth
import pyarrow as pa
import pytest

chdb_session = pytest.importorskip("chdb.session", reason="chdb (the ClickHouse engine in process) is not installed")

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
UUIDS = ["0b7e5a3c-1f7d-4c1e-9a51-5d2f8e0c6a11", "9f0c2b44-7a1e-4d3b-8e6f-3c2d1a0b9e88",
         "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"]
HOT_DDL = """CREATE TABLE k2.silver (
    message_id UUID, side Enum8('buy' = 1, 'sell' = 2), exchange LowCardinality(String),
    timestamp DateTime64(3), ingestion_timestamp DateTime, trade_date Date, price Decimal(18, 8),
    quote_volume Decimal(38, 10), source_sequence Nullable(UInt64), kafka_partition UInt16, is_valid Bool
) ENGINE = MergeTree ORDER BY timestamp"""
COLUMNS = ("message_id,side,exchange,timestamp,ingestion_timestamp,trade_date,price,quote_volume,source_sequence,"
           "kafka_partition,is_valid")


def _hot_values(i: int) -> str:
    ts = T0 + timedelta(seconds=i, milliseconds=250)
    return (f"('{UUIDS[i]}', '{('buy', 'sell')[i % 2]}', 'binance', '{ts:%Y-%m-%d %H:%M:%S.%f}', "
            f"'{ts:%Y-%m-%d %H:%M:%S}', '{ts:%Y-%m-%d}', {i}.5, {i}.125, {'NULL' if i == 2 else i}, {i}, {i % 2})")


def _cold_rows(count: int = 3, **changed) -> pa.Table:
    """The rows as K2's Spark stores them (cold.silver_trades' types), with optional changes to row 0."""
    rows = {
        "message_id": pa.array(UUIDS[:count], pa.string()),
        "side": pa.array([("buy", "sell")[i % 2] for i in range(count)], pa.string()),
        "exchange": pa.array(["binance"] * count, pa.string()),
        "timestamp": pa.array([T0 + timedelta(seconds=i, milliseconds=250) for i in range(count)],
                              pa.timestamp("us", tz="UTC")),
        "ingestion_timestamp": pa.array([T0 + timedelta(seconds=i) for i in range(count)], pa.timestamp("us", tz="UTC")),
        "trade_date": pa.array([date(2026, 3, 1)] * count, pa.date32()),
        "price": pa.array([Decimal(f"{i}.5") for i in range(count)], pa.decimal128(38, 8)),
        "quote_volume": pa.array([Decimal(f"{i}.125") for i in range(count)], pa.decimal128(38, 8)),
        "source_sequence": pa.array([None if i == 2 else i for i in range(count)], pa.int64()),
        "kafka_partition": pa.array(range(count), pa.int32()),
        "is_valid": pa.array([bool(i % 2) for i in range(count)], pa.bool_()),
    }
    for name, value in changed.items():
        rows[name] = pa.array([value, *rows[name].to_pylist()[1:]], rows[name].type)
    return pa.table(rows)


class ChdbClient:
    """The two calls table_truth makes on a clickhouse-connect client, answered by the in-process engine."""

    def __init__(self, session) -> None:
        self.session = session

    def text(self, sql: str) -> str:
        return str(self.session.query(sql, "TabSeparatedWithNamesAndTypes"))

    def arrow(self, sql: str) -> pa.Table:
        return self.session.query(sql, "ArrowTable")

    def query(self, sql, parameters=None):
        lines = self.text(self._bound(sql, parameters)).splitlines()
        kinds = lines[1].split("\t")
        rows = [tuple(datetime.fromisoformat(value) if kind.startswith("DateTime") else value
                      for kind, value in zip(kinds, line.split("\t"))) for line in lines[2:]]
        return SimpleNamespace(first_row=rows[0], result_rows=rows)

    def query_arrow(self, sql, parameters):
        return self.arrow(self._bound(sql, parameters))

    @staticmethod
    def _bound(sql, parameters):
        for name, value in (parameters or {}).items():
            sql = sql.replace(f"%({name})s", f"'{value}'")
        return sql


@pytest.fixture(scope="module")
def hot():
    session = chdb_session.Session()
    session.query("CREATE DATABASE IF NOT EXISTS k2")
    session.query("DROP TABLE IF EXISTS k2.silver")
    session.query(HOT_DDL)
    session.query(f"INSERT INTO k2.silver VALUES {', '.join(_hot_values(i) for i in range(3))}")
    yield ChdbClient(session)
    session.query("DROP TABLE k2.silver")


@pytest.fixture
def cold_writer(tmp_path):
    from pyiceberg.catalog.sql import SqlCatalog
    catalog = SqlCatalog("unit", uri=f"sqlite:///{tmp_path / 'catalog.db'}", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("cold")

    def write(rows: pa.Table) -> str:
        catalog.create_table("cold.silver", schema=rows.schema, location=f"file://{tmp_path}/cold/silver").append(rows)
        return str(tmp_path)
    return write


def _truth(hot, warehouse: str) -> dict:
    table = {"source": "silver", "target": "cold.silver", "timestamp_col": "timestamp", "columns": COLUMNS}
    return offload_truth.table_truth(hot, table, T0 + timedelta(hours=1), warehouse, warehouse, database="k2")


def test_a_complete_copy_in_sparks_types_reads_clean(hot, cold_writer):
    result = _truth(hot, cold_writer(_cold_rows()))
    assert (result["hot_rows"], result["cold_rows"], result["missing"], result["duplicated"]) == (3, 3, 0, 0)


@pytest.mark.parametrize("column, value", [
    ("message_id", "00000000-0000-0000-0000-000000000000"),       # UUID vs its text
    ("side", "sell"),                                             # Enum8 vs its name (its number would be 1)
    ("exchange", "kraken"),                                       # LowCardinality(String)
    ("timestamp", T0 + timedelta(milliseconds=251)),              # DateTime64(3), one millisecond off
    ("ingestion_timestamp", T0 + timedelta(seconds=1)),           # DateTime (uint32 seconds in Arrow)
    ("trade_date", date(2026, 3, 2)),                             # Date
    ("price", Decimal("0.50000001")),                             # Decimal(18, 8) vs Decimal(38, 8)
    ("quote_volume", Decimal("0.12")),                            # Decimal(38, 10) vs Decimal(38, 8)
    ("source_sequence", None),                                    # Nullable(UInt64) vs BIGINT
    ("is_valid", True),                                           # Bool
])
def test_one_changed_value_of_each_type_is_one_missing_and_one_duplicated_row(hot, cold_writer, column, value):
    result = _truth(hot, cold_writer(_cold_rows(**{column: value})))
    assert (result["missing"], result["duplicated"]) == (1, 1)


def test_a_row_absent_from_the_cold_tier_is_missing(hot, cold_writer):
    result = _truth(hot, cold_writer(_cold_rows(count=2)))
    assert (result["missing"], result["duplicated"]) == (1, 0)


@pytest.mark.parametrize("clickhouse_type, expected", [
    ("DateTime", "toDateTime64(`c`, 6, 'UTC') AS `c`"),
    ("DateTime('Asia/Tokyo')", "toDateTime64(`c`, 6, 'UTC') AS `c`"),
    ("Nullable(DateTime64(9, 'UTC'))", "toDateTime64(`c`, 6, 'UTC') AS `c`"),
    ("Date", "toDate32(`c`) AS `c`"),
    ("UUID", "toString(`c`) AS `c`"),
    ("Enum8('buy' = 1, 'sell' = 2)", "toString(`c`) AS `c`"),
    ("LowCardinality(Nullable(Enum16('a' = 1)))", "toString(`c`) AS `c`"),
    ("IPv6", "toString(`c`) AS `c`"),
    ("LowCardinality(String)", "`c`"),
    ("Decimal(38, 8)", "`c`"),
    ("Date32", "`c`"),
    ("Nullable(UInt64)", "`c`"),
])
def test_each_clickhouse_type_is_sent_by_its_meaning(clickhouse_type, expected):
    assert offload_truth.hot_expression("c", clickhouse_type) == expected


def test_the_compared_columns_are_the_configured_ones_or_what_select_star_gives():
    described = [("a", "UInt64", ""), ("b", "String", "DEFAULT"), ("c", "UInt64", "MATERIALIZED"),
                 ("d", "String", "ALIAS")]
    assert offload_truth.hot_columns(described, "*") == {"a": "UInt64", "b": "String"}
    assert offload_truth.hot_columns(described, "b, c") == {"b": "String", "c": "UInt64"}
    with pytest.raises(ValueError, match="^column\\(s\\) x, y not in the hot table$"):
        offload_truth.hot_columns(described, "a,x,y")


@pytest.mark.parametrize("hot_value, cold_value", [
    (Decimal("1.50000000"), Decimal("1.5000000000")),
    (Decimal("10"), Decimal("10.00")),
    (Decimal("0E-8"), Decimal("0")),
    (Decimal("-2.10"), Decimal("-2.1")),
])
def test_decimals_of_any_scale_compare_by_value(hot_value, cold_value):
    hot = pa.table({"v": pa.array([hot_value], pa.decimal128(38, -hot_value.as_tuple().exponent))})
    cold = pa.table({"v": pa.array([cold_value], pa.decimal128(38, max(0, -cold_value.as_tuple().exponent)))})
    assert offload_truth.compare(hot, cold, ["v"])["missing"] == 0
    different = pa.table({"v": pa.array([cold_value + Decimal("0.01")], pa.decimal128(38, 8))})
    assert offload_truth.compare(hot, different, ["v"])["missing"] == 1


def test_a_dictionary_encoded_column_compares_by_its_values():
    hot = pa.table({"s": pa.array(["a", "b", "a"]).dictionary_encode()})
    cold = pa.table({"s": pa.array(["a", "a", "b"])})
    assert offload_truth.compare(hot, cold, ["s"])["missing"] == 0


@pytest.mark.parametrize("watermark_s, until_s, expected", [
    (0, 3600, 2),        # rows at +1.25 s and +2.25 s are newer than a watermark at +0.25 s ... (exclusive)
    (-1, 3600, 3),
    (1, 3600, 1),
    (0, 1, 0),           # ... and none of them is old enough for a run whose window ends at +1 s
    (None, 3600, 3),     # no watermark: every row is pending
])
def test_pending_rows_are_those_after_the_watermark_up_to_the_runs_window_end(hot, watermark_s, until_s, expected):
    table = {"source": "silver", "timestamp_col": "timestamp"}
    mark = None if watermark_s is None else T0 + timedelta(seconds=watermark_s, milliseconds=250)
    assert offload_truth.pending_rows(hot, table, mark, T0 + timedelta(seconds=until_s), database="k2") == expected


# K2 pins ClickHouse 24.3. chdb 2.0.4 (engine 24.5, scripts/bootstrap.sh's .venv-clickhouse24) runs in its own
# process: its module and the project's chdb-core share one name. Its tables live in a directory, so that each
# call (one process) sees the same data.
CLICKHOUSE_24 = Path(__file__).resolve().parents[2] / ".venv-clickhouse24/bin/python"
RUN_ON_24 = ("import sys\nfrom chdb import session\ns = session.Session(sys.argv[1])\n"
             "for q in sys.argv[3:-1]:\n    s.query(q)\nsys.stdout.buffer.write(s.query(sys.argv[-1], sys.argv[2]).bytes())")


class Clickhouse24Client(ChdbClient):
    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, fmt: str, *statements: str) -> bytes:
        proc = subprocess.run([str(CLICKHOUSE_24), "-c", RUN_ON_24, str(self.path), fmt, *statements],
                              capture_output=True, timeout=120)
        if proc.returncode:
            raise RuntimeError(proc.stderr.decode(errors="replace").strip().splitlines()[-1])
        return proc.stdout

    def text(self, sql: str) -> str:
        return self.run("TabSeparatedWithNamesAndTypes", sql).decode()

    def arrow(self, sql: str) -> pa.Table:
        return pa.ipc.open_stream(self.run("ArrowStream", sql)).read_all()


@pytest.fixture(scope="module")
def hot_24(tmp_path_factory):
    if not CLICKHOUSE_24.exists():
        pytest.skip(f"{CLICKHOUSE_24.parent.parent.name} missing (scripts/bootstrap.sh makes it)")
    client = Clickhouse24Client(tmp_path_factory.mktemp("clickhouse24"))
    client.run("TSV", "CREATE DATABASE IF NOT EXISTS k2", HOT_DDL,
               f"INSERT INTO k2.silver VALUES {', '.join(_hot_values(i) for i in range(3))}", "SELECT version()")
    return client


def test_on_clickhouse_24_a_uuid_cannot_be_sent_as_arrow_but_the_truth_check_reads_it_by_meaning(hot_24, cold_writer):
    with pytest.raises(RuntimeError, match="UNKNOWN_TYPE"):
        hot_24.arrow("SELECT message_id FROM k2.silver")
    result = _truth(hot_24, cold_writer(_cold_rows()))
    assert (result["hot_rows"], result["cold_rows"], result["missing"], result["duplicated"]) == (3, 3, 0, 0)


@pytest.mark.parametrize("column, value", [("message_id", "00000000-0000-0000-0000-000000000000"), ("side", "sell"),
                                           ("ingestion_timestamp", T0 + timedelta(seconds=1))])
def test_on_clickhouse_24_one_changed_value_is_one_missing_and_one_duplicated_row(hot_24, cold_writer, column, value):
    result = _truth(hot_24, cold_writer(_cold_rows(**{column: value})))
    assert (result["missing"], result["duplicated"]) == (1, 1)
