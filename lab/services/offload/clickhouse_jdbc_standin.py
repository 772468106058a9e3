"""Stand-in for the one call of K2's job that cannot run here: `spark.read.jdbc(url, table, properties)` with the
ClickHouse JDBC driver 0.4.6, which is not obtainable offline. The same query is sent over HTTP and each column comes
back as that driver hands it to Spark 3.5 (docs/fidelity.md lists the mapping and where it could differ):

  ClickHouse                                  Spark (JDBC)        sent as
  Int8, UInt8, Int16, UInt16, Int32           int                 itself
  UInt32, Int64                               bigint              itself
  UInt64 / Int128, UInt128, Int256, UInt256   decimal(20, 0) / (38, 0)  itself
  Float32 / Float64                           float / double      itself
  Decimal(P, S), Decimal32/64/128/256(S)      decimal(min(P, 38), S)   itself
  Date, Date32                                date                toDate32
  DateTime, DateTime64 (any zone)             timestamp           toDateTime64(c, 6, 'UTC') - K2 runs in UTC
  Bool                                        boolean             itself
  String, FixedString, UUID, IPv4/6, Enum8/16 string              toString (an Enum's name, not its number)
  Nullable(T), LowCardinality(T)              as T (nullable)
  Array, Map, anything else                   unsupported (Spark's JDBC source refuses them; K2 leaves them out)

module_utils/offload_truth.py asks ClickHouse for the same forms (hot_expression) on purpose: the cold tier holds
what JDBC gave Spark. The two are kept apart, as the tests' oracle is from the truth check, so that a mistake in the
product's mapping is not copied into the twin that tests it.

The twin's job (offload_generic.py) reads through read(); the conformance lane's Spark 3.5 through
lab/services/conformance/sitecustomize.py, which builds a Spark DataFrame with spark_type(). Like Spark, the driver
class is loaded when the read starts: without the driver's jar the read fails with the ClassNotFoundException Py4J
reports, and ClickHouse is never asked.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

DRIVER_JAR = Path(os.environ.get("K2_JDBC_DRIVER", "/opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"))
DRIVER_CLASS = "com.clickhouse.jdbc.ClickHouseDriver"
_AS_TEXT = ("String", "FixedString", "UUID", "IPv4", "IPv6", "Enum8", "Enum16", "Enum")
_SPARK_TYPES = {"Int8": "int", "UInt8": "int", "Int16": "int", "UInt16": "int", "Int32": "int", "UInt32": "bigint",
                "Int64": "bigint", "UInt64": "decimal(20,0)", "Int128": "decimal(38,0)", "UInt128": "decimal(38,0)",
                "Int256": "decimal(38,0)", "UInt256": "decimal(38,0)", "Float32": "float", "Float64": "double",
                "Date": "date", "Date32": "date", "DateTime": "timestamp", "DateTime32": "timestamp",
                "DateTime64": "timestamp", "Bool": "boolean", "Boolean": "boolean",
                **{name: "string" for name in _AS_TEXT}}
_DECIMAL_PRECISION = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}


class DriverNotFound(RuntimeError):
    """What Py4J raises when the JDBC driver's class cannot be loaded."""


def _unwrapped(clickhouse_type: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        if clickhouse_type.startswith(wrapper):
            return _unwrapped(clickhouse_type[len(wrapper):-1])
    return clickhouse_type


def spark_type(clickhouse_type: str) -> str:
    """The Spark SQL type JDBC gives a column of this ClickHouse type (ValueError when Spark refuses it)."""
    kind = _unwrapped(clickhouse_type)
    base = kind.split("(")[0]
    if base in _SPARK_TYPES:
        return _SPARK_TYPES[base]
    if base == "Decimal" or base in _DECIMAL_PRECISION:
        numbers = [int(n) for n in re.findall(r"\d+", kind[len(base):])]
        precision, scale = (numbers + [0])[:2] if base == "Decimal" else (_DECIMAL_PRECISION[base], numbers[0])
        return f"decimal({min(precision, 38)},{scale})"
    raise ValueError(f"Unsupported type {clickhouse_type}: Spark's JDBC source cannot read it")


def jdbc_column(name: str, clickhouse_type: str) -> str:
    kind, quoted = _unwrapped(clickhouse_type), f"`{name}`"
    spark = spark_type(clickhouse_type)
    if spark == "timestamp":
        return f"toDateTime64({quoted}, 6, 'UTC') AS {quoted}"
    if spark == "date":
        return f"toDate32({quoted}) AS {quoted}"
    if spark == "string" and kind != "String":
        return f"toString({quoted}) AS {quoted}"
    return quoted


def describe(client, table: str) -> list[tuple[str, str]]:
    """[(column, ClickHouse type)] of `table`: a table name or K2's "(SELECT ...) AS incremental_query"."""
    probe = client.query(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - K2's validated names
    return [(name, kind.name) for name, kind in zip(probe.column_names, probe.column_types)]


def query(client, table: str, columns: list[tuple[str, str]]):
    """The rows of `table` as JDBC would give them, as a pyarrow Table."""
    return client.query_arrow(f"SELECT {', '.join(jdbc_column(n, t) for n, t in columns)} FROM {table}")  # noqa: S608


def read(client, table: str):
    if not DRIVER_JAR.is_file():
        raise DriverNotFound(f"An error occurred while calling o52.jdbc.\n: java.lang.ClassNotFoundException: "
                             f"{DRIVER_CLASS}\n\tat java.base/java.net.URLClassLoader.findClass(Unknown Source)")
    return query(client, table, describe(client, table))
