"""Stand-in for the one call of K2's job that cannot run here: `spark.read.jdbc(url, table, properties)` with the
ClickHouse JDBC driver 0.4.6, which is not obtainable offline. The same query is sent over HTTP and each column comes
back as that driver hands it to Spark (docs/fidelity.md lists the mapping and where it could differ):

- DateTime, DateTime64 -> a timestamp (microseconds, UTC: K2's containers run in UTC);
- Date -> a date; UUID, Enum8/16, IPv4/6 -> their text (the Enum's name, not its number);
- Nullable(T), LowCardinality(T) -> T; every other type as ClickHouse's Arrow output gives it.

Like Spark, the driver class is loaded when the read starts: without the driver's jar the read fails with the
ClassNotFoundException Py4J reports, and ClickHouse is never asked.
"""
from __future__ import annotations

import os
from pathlib import Path

DRIVER_JAR = Path(os.environ.get("K2_JDBC_DRIVER", "/opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"))
DRIVER_CLASS = "com.clickhouse.jdbc.ClickHouseDriver"
AS_TEXT = ("UUID", "IPv4", "IPv6", "Enum8(", "Enum16(")


class DriverNotFound(RuntimeError):
    """What Py4J raises when the JDBC driver's class cannot be loaded."""


def _unwrapped(clickhouse_type: str) -> str:
    for wrapper in ("Nullable(", "LowCardinality("):
        if clickhouse_type.startswith(wrapper):
            return _unwrapped(clickhouse_type[len(wrapper):-1])
    return clickhouse_type


def jdbc_column(name: str, clickhouse_type: str) -> str:
    kind, quoted = _unwrapped(clickhouse_type), f"`{name}`"
    if kind.startswith("DateTime"):
        return f"toDateTime64({quoted}, 6, 'UTC') AS {quoted}"
    if kind == "Date":
        return f"toDate32({quoted}) AS {quoted}"
    if kind.startswith(AS_TEXT):
        return f"toString({quoted}) AS {quoted}"
    return quoted


def read(client, table: str):
    """The rows of `table` (a table name or K2's "(SELECT ...) AS incremental_query") as a pyarrow Table."""
    if not DRIVER_JAR.is_file():
        raise DriverNotFound(f"An error occurred while calling o52.jdbc.\n: java.lang.ClassNotFoundException: "
                             f"{DRIVER_CLASS}\n\tat java.base/java.net.URLClassLoader.findClass(Unknown Source)")
    probe = client.query(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608 - K2's validated names
    columns = ", ".join(jdbc_column(name, kind.name) for name, kind in zip(probe.column_names, probe.column_types))
    return client.query_arrow(f"SELECT {columns} FROM {table}")  # noqa: S608
